//! A PCI device's `modalias` (`pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X`), validated.

use std::fmt;

/// The fields of a PCI modalias, in order, with the number of hex digits each holds.
pub const FIELDS: [(&str, usize); 7] = [
    ("v", 8),
    ("d", 8),
    ("sv", 8),
    ("sd", 8),
    ("bc", 2),
    ("sc", 2),
    ("i", 2),
];

/// The PCI base class of bridges of every kind.
const BRIDGE_CLASS: u8 = 0x06;

/// A validated PCI modalias. The kernel prints upper-case hex; other case is accepted (and then
/// matches only case-insensitive aliases, as with kmod: alias matching is case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modalias(String);

impl Modalias {
    /// Parses the attribute's content; one trailing newline is allowed.
    pub fn parse(content: &str) -> Result<Modalias, String> {
        let text = content.strip_suffix('\n').unwrap_or(content);
        let mut rest = text.strip_prefix("pci:").ok_or_else(|| {
            format!(
                "{:?} does not start with \"pci:\"",
                text.escape_debug().to_string()
            )
        })?;
        for (marker, digits) in FIELDS {
            let value = rest
                .strip_prefix(marker)
                .filter(|r| r.len() >= digits && r.as_bytes()[..digits].iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(|| {
                    format!(
                        "{:?} is not pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X (at field \"{marker}\")",
                        text.escape_debug().to_string()
                    )
                })?;
            rest = &value[digits..];
        }
        if !rest.is_empty() {
            return Err(format!(
                "{:?} has trailing characters",
                text.escape_debug().to_string()
            ));
        }
        Ok(Modalias(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `pci:`, which is also what a `vfio_pci:` alias matches after its prefix.
    pub fn body(&self) -> &str {
        &self.0[4..]
    }

    fn hex(&self, range: std::ops::Range<usize>) -> u32 {
        // The shape was checked by `parse`.
        u32::from_str_radix(&self.body()[range], 16).unwrap_or(0)
    }

    pub fn vendor(&self) -> u16 {
        self.hex(1..9) as u16
    }

    pub fn device(&self) -> u16 {
        self.hex(10..18) as u16
    }

    /// Base class, subclass and programming interface.
    pub fn class(&self) -> (u8, u8, u8) {
        (
            self.hex(40..42) as u8,
            self.hex(44..46) as u8,
            self.hex(47..49) as u8,
        )
    }

    /// A bridge of any kind (base class 0x06: host, ISA/LPC, PCI-to-PCI, ...): part of the
    /// host's PCI topology, which no group move moves (SPEC 3.8: vfio-pci refuses devices whose
    /// header is not a normal one, and a chipset's LPC bridge belongs to the host), so no VFIO
    /// driver is chosen for it.
    pub fn is_bridge(&self) -> bool {
        self.class().0 == BRIDGE_CLASS
    }
}

impl fmt::Display for Modalias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_of_every_kind_are_bridges() {
        let with_class = |bc: &str, sc: &str| {
            Modalias::parse(&format!(
                "pci:v00008086d0000A110sv00008086sd00007270bc{bc}sc{sc}i00"
            ))
            .unwrap()
        };
        for sc in ["00", "01", "04", "80"] {
            assert!(with_class("06", sc).is_bridge(), "06{sc}");
        }
        for (bc, sc) in [("02", "00"), ("03", "00"), ("0C", "03"), ("60", "06")] {
            assert!(!with_class(bc, sc).is_bridge(), "{bc}{sc}");
        }
    }

    #[test]
    fn accepts_kernel_modaliases() {
        let m = Modalias::parse("pci:v000015B3d0000101Esv000015B3sd00000048bc02sc07i01\n").unwrap();
        assert_eq!(
            (m.vendor(), m.device(), m.class()),
            (0x15b3, 0x101e, (2, 7, 1))
        );
        assert_eq!(
            m.body(),
            "v000015B3d0000101Esv000015B3sd00000048bc02sc07i01"
        );
        assert!(Modalias::parse("pci:v000015b3d0000101esv000015b3sd00000048bc02sc00i00").is_ok());
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "\n",
            "usb:v1234p5678",
            "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00",
            "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00 ",
            "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00\n\n",
            "pci:v15B3d101Esv15B3sd48bc02sc00i00",
            "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc0Gi00",
            "pci:v*d*sv*sd*bc*sc*i*",
            "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i000",
        ] {
            assert!(Modalias::parse(bad).is_err(), "{bad:?}");
        }
    }
}
