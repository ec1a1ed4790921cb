#![no_main]
//! The modules.alias parser, both sides, and the lookups on arbitrary files: never panics; a
//! variant lookup on a kernel-shaped modalias returns a module only if one of the file's
//! vfio_pci: aliases exists; the pci: side's ID index agrees with its claim check.
use libfuzzer_sys::fuzz_target;
use pcibind::internals::{AliasIndex, HostAliases, Modalias};
use pcibind::Logger;

fuzz_target!(|data: &[u8]| {
    let index = AliasIndex::parse(data, None, &Logger::default());
    let modalias = Modalias::parse("pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00").unwrap();
    if let Some(choice) = index.best_match(&modalias) {
        assert!(!index.is_empty());
        assert!(index.is_vfio_module(choice.module));
    }
    assert!(index.heap_bytes() <= data.len() * 64 + 64);

    let host = HostAliases::parse(data, None);
    for modalias in [
        modalias,
        Modalias::parse("pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00").unwrap(),
    ] {
        for module in host.matching_modules(&modalias) {
            assert_eq!(host.module_claims(&module, &modalias), Some(true));
        }
    }
    assert!(host.heap_bytes() <= data.len() * 64 + 64);
});
