//! PCI addresses (`DDDD:BB:DD.F`), validated before they become sysfs paths.

use std::fmt;
use std::str::FromStr;

use crate::types::error::Error;

/// A validated PCI address. Displayed the way the kernel names devices in sysfs: lower-case hex,
/// at least four domain digits (`0000:03:00.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

fn hex_field(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl PciAddress {
    /// Parses `DDDD:BB:DD.F` (domain 4 to 8 hex digits) or the short `BB:DD.F` (domain 0).
    /// Hex digits may be of either case; nothing else (no white space, no newline) is accepted.
    pub fn parse(input: &str) -> Result<PciAddress, Error> {
        let bad = |reason: &'static str| Error::InvalidAddress {
            input: crate::types::error::quote(input),
            reason,
        };
        let (head, function) = input
            .rsplit_once('.')
            .ok_or_else(|| bad("expected DDDD:BB:DD.F"))?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, s] => (
                hex_field(d, 4, 8).ok_or_else(|| bad("domain must be 4 to 8 hex digits"))?,
                *b,
                *s,
            ),
            [b, s] => (0, *b, *s),
            _ => return Err(bad("expected DDDD:BB:DD.F")),
        };
        let bus = hex_field(bus, 2, 2).ok_or_else(|| bad("bus must be 2 hex digits"))?;
        let device = hex_field(device, 2, 2)
            .filter(|&d| d < 0x20)
            .ok_or_else(|| bad("device must be 2 hex digits below 20"))?;
        let function = hex_field(function, 1, 1)
            .filter(|&f| f < 8)
            .ok_or_else(|| bad("function must be one digit 0-7"))?;
        Ok(PciAddress {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl FromStr for PciAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        PciAddress::parse(s)
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        PciAddress::parse(s).unwrap().to_string()
    }

    #[test]
    fn accepts_full_short_and_wide_forms() {
        assert_eq!(ok("0000:03:00.1"), "0000:03:00.1");
        assert_eq!(ok("03:00.1"), "0000:03:00.1");
        assert_eq!(ok("0000:AF:1F.7"), "0000:af:1f.7");
        assert_eq!(ok("10000:00:02.0"), "10000:00:02.0");
        assert_eq!(ok("FFFFFFFF:ff:00.0"), "ffffffff:ff:00.0");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "0000:03:00",
            "000:03:00.1",
            "123456789:03:00.1",
            "0000:3:00.1",
            "0000:03:0.1",
            "0000:03:20.0",
            "0000:03:00.8",
            "0000:03:00.10",
            "0000:03:00.1\n",
            " 0000:03:00.1",
            "0000:03:00.1 ",
            "0000-03-00.1",
            "0000:03:00:00.1",
            "+000:03:00.1",
            "0000:g3:00.1",
            "../../etc",
            "0000:03:00.1/..",
            "０000:03:00.1",
            "0:0:0:0:00:00.0",
        ] {
            assert!(PciAddress::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
