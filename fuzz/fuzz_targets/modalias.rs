#![no_main]
//! Modalias parsing: never panics; an accepted modalias has the kernel's exact shape.
use libfuzzer_sys::fuzz_target;
use pcibind::internals::Modalias;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = Modalias::parse(text) {
        assert_eq!(m.as_str().len(), 53);
        assert!(m.as_str().starts_with("pci:v"));
        assert_eq!(&m.as_str()[4..], m.body());
    }
});
