#![no_main]
//! The modules.alias parser and the ranking on arbitrary files: never panics, and a lookup on
//! a kernel-shaped modalias returns a module only if one of the file's vfio_pci: aliases exists.
use libfuzzer_sys::fuzz_target;
use pcibind::internals::AliasIndex;
use pcibind::internals::Modalias;
use pcibind::Logger;

fuzz_target!(|data: &[u8]| {
    let index = AliasIndex::parse(data, None, &Logger::default());
    let modalias = Modalias::parse("pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00").unwrap();
    if let Some(choice) = index.best_match(&modalias) {
        assert!(!index.is_empty());
        assert!(index.is_vfio_module(choice.module));
    }
    assert!(index.heap_bytes() <= data.len() * 64 + 64);
});
