//! Where a device is (its driver and `driver_override`), and the driver a move aims at: values
//! the transaction engine, the transaction record and the safety decision share.

use std::fmt;

use crate::types::name::{DriverName, ModuleName};

/// Where a device is: its driver and its `driver_override`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceState {
    pub driver: Option<DriverName>,
    pub driver_override: Option<String>,
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.driver {
            Some(d) => write!(f, "bound to {d}")?,
            None => f.write_str("bound to no driver")?,
        }
        match &self.driver_override {
            Some(o) => write!(f, ", driver_override '{o}'"),
            None => f.write_str(", driver_override unset"),
        }
    }
}

/// A driver a step names: a registered one, or, in a dry run, the one a module registers once
/// it is loaded (the plan can name it only by its module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Driver(DriverName),
    Unloaded(ModuleName),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Driver(d) => write!(f, "{d}"),
            Target::Unloaded(m) => write!(f, "<the PCI driver of module {m}>"),
        }
    }
}

impl Target {
    pub(crate) fn driver(&self) -> Option<&DriverName> {
        match self {
            Target::Driver(d) => Some(d),
            Target::Unloaded(_) => None,
        }
    }
}
