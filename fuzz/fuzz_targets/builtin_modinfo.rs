#![no_main]
//! modules.builtin.modinfo parsing (NUL-separated MODULE.KEY=VALUE records): never panics;
//! every alias it keeps is a valid module's.
use libfuzzer_sys::fuzz_target;
use pcibind::internals::AliasIndex;
use pcibind::internals::Modalias;
use pcibind::Logger;

fuzz_target!(|data: &[u8]| {
    let index = AliasIndex::parse(b"", Some(data), &Logger::default());
    let modalias = Modalias::parse("pci:v00008086d0000E20Bsv00008086sd00001100bc03sc00i00").unwrap();
    if let Some(choice) = index.best_match(&modalias) {
        assert!(pcibind::ModuleName::new(choice.module.as_str()).is_ok());
    }
});
