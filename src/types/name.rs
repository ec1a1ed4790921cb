//! Driver and module names, validated before they become sysfs paths or modprobe arguments.
//!
//! A *module* name (what modprobe loads, `/sys/module/NAME`) always uses `_`; a PCI *driver* name
//! is whatever the driver's `.name` says and must be used exactly. Both share one alphabet.

use std::fmt;

use crate::types::error::Error;

/// Longest name accepted (bytes). Kernel module names are at most 55 bytes.
pub const MAX_NAME_LEN: usize = 64;

fn check(kind: &'static str, input: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::InvalidArg(format!(
            "{kind} name {} {why}",
            crate::types::error::quote(input)
        ))
    };
    if input.is_empty() {
        return Err(bad("is empty"));
    }
    if input.len() > MAX_NAME_LEN {
        return Err(bad(&format!("is longer than {MAX_NAME_LEN} bytes")));
    }
    if let Some(c) = input
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')))
    {
        return Err(bad(&format!(
            "contains {c:?}; only A-Z a-z 0-9 _ . + - are allowed"
        )));
    }
    if input.starts_with('-') || input.starts_with('.') {
        return Err(bad("must not start with '-' or '.'"));
    }
    if input.contains("..") {
        return Err(bad("must not contain '..'"));
    }
    Ok(())
}

/// The `_` spelling of a name, as modprobe normalizes module names.
fn underscored(s: &str) -> String {
    s.replace('-', "_")
}

/// A validated name as given by a user: possibly a driver name, possibly a module name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DriverName(String);

impl DriverName {
    pub fn new(input: &str) -> Result<DriverName, Error> {
        check("driver", input)?;
        Ok(DriverName(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with every `-` turned into `_`: how two spellings of one name compare.
    pub fn underscored(&self) -> DriverName {
        DriverName(underscored(&self.0))
    }

    /// True when both names are the same modulo `-`/`_`.
    pub fn same_modulo_dash(&self, other: &str) -> bool {
        underscored(&self.0) == underscored(other)
    }
}

impl fmt::Display for DriverName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated kernel module name, always in its `_` spelling.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleName(String);

impl ModuleName {
    /// Validates `input` and normalizes it the way modprobe does (`-` becomes `_`).
    pub fn new(input: &str) -> Result<ModuleName, Error> {
        check("module", input)?;
        Ok(ModuleName(underscored(input)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&DriverName> for ModuleName {
    fn from(name: &DriverName) -> ModuleName {
        ModuleName(underscored(&name.0))
    }
}

/// A module name is also a valid name as a user gives it (the same characters).
impl From<&ModuleName> for DriverName {
    fn from(name: &ModuleName) -> DriverName {
        DriverName(name.0.clone())
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names() {
        for n in [
            "vfio-pci",
            "vfio_pci",
            "mlx5_vfio_pci",
            "xe-vfio-pci",
            "4xxx",
            "qat_4xxx",
            "8250_pci",
            "agpgart-intel",
            "nvidia.drm+x",
            "a",
        ] {
            assert!(DriverName::new(n).is_ok(), "{n}");
            assert!(ModuleName::new(n).is_ok(), "{n}");
        }
        assert!(DriverName::new(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn rejects_paths_options_and_junk() {
        for n in [
            "",
            "-r",
            ".hidden",
            "..",
            "a/b",
            "/vfio-pci",
            "a..b",
            "vfio pci",
            "vfio-pci\n",
            "tab\tname",
            "nul\0x",
            "é",
            "a;b",
            "$(x)",
            "a*",
            "a:b",
        ] {
            assert!(DriverName::new(n).is_err(), "{n:?}");
            assert!(ModuleName::new(n).is_err(), "{n:?}");
        }
        assert!(DriverName::new(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn module_names_use_underscores() {
        assert_eq!(
            ModuleName::new("xe-vfio-pci").unwrap().as_str(),
            "xe_vfio_pci"
        );
        let d = DriverName::new("vfio-pci").unwrap();
        assert_eq!(ModuleName::from(&d).as_str(), "vfio_pci");
        assert!(d.same_modulo_dash("vfio_pci"));
        assert!(!d.same_modulo_dash("vfio_pcie"));
    }
}
