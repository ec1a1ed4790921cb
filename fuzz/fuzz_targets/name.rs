#![no_main]
//! Driver and module name validation: an accepted name can never become a path that leaves its
//! directory, an option, or a second argument.
use libfuzzer_sys::fuzz_target;
use pcibind::{DriverName, ModuleName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let driver = DriverName::new(text);
    let module = ModuleName::new(text);
    assert_eq!(driver.is_ok(), module.is_ok());
    if let Ok(name) = driver {
        let s = name.as_str();
        assert!(!s.is_empty() && s.len() <= 64);
        assert!(!s.contains('/') && !s.contains("..") && !s.starts_with('-') && !s.starts_with('.'));
        assert!(s.bytes().all(|b| b.is_ascii_graphic()));
        assert!(!module.unwrap().as_str().contains('-'));
    }
});
