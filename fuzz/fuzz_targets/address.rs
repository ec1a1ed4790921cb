#![no_main]
//! PCI address parsing: never panics; whatever parses prints back in canonical form and parses
//! again to the same address; nothing with a '/' or white space parses.
use libfuzzer_sys::fuzz_target;
use pcibind::PciAddress;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(address) = PciAddress::parse(text) {
        assert!(!text.contains('/') && !text.chars().any(char::is_whitespace));
        let shown = address.to_string();
        assert_eq!(shown, shown.to_lowercase());
        assert_eq!(PciAddress::parse(&shown).unwrap(), address);
    }
});
