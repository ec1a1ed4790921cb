//! Presetting a device's `driver_override` before any driver is loaded for it: what a boot
//! does for the saved overrides (`pcibind apply --overrides-only`, run before udev's
//! coldplug), so that a host driver loaded for another device never binds this one first.
//! Only the override is written, as a one-step transaction under the device's lock: no module
//! is loaded, no probe made, a bound device is left alone.

use crate::txn::{DeviceTxn, Override, Step};
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::log::Priority;
use crate::types::name::DriverName;
use crate::Context;

/// What [`Context::preset_override`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The device was unbound; its `driver_override` now holds the name.
    Written,
    /// The device was unbound with that name in its `driver_override` already: nothing written.
    AlreadySet,
    /// A driver holds the device: nothing written (writing `driver_override` never unbinds;
    /// moving it takes a bind).
    Bound(DriverName),
}

impl Context {
    /// Writes `name` into the `driver_override` of the device at `address` if no driver is
    /// bound to it, and does nothing else: the next probe of the device, by whichever driver
    /// registers, binds only the driver of that name (or nothing, for `none` or a name no
    /// driver has). The name is written as given, after the checks of a driver name; it is
    /// not resolved (resolving may load modules, which is what this must precede).
    pub fn preset_override(&self, address: &str, name: &str) -> Result<Preset> {
        let address = PciAddress::parse(address)?;
        let name = DriverName::new(name)?;
        self.on_locked_device(&address, |locked, _| {
            let start = self.state(&address)?;
            if let Some(driver) = start.driver {
                return Ok(Preset::Bound(driver));
            }
            if start.driver_override.as_deref() == Some(name.as_str()) {
                return Ok(Preset::AlreadySet);
            }
            let txn = DeviceTxn {
                address,
                start,
                steps: vec![Step::SetOverride(Override::Value(name.to_string()))],
                doing: format!("presetting driver_override to {name}"),
                forced: false,
            };
            self.engine().execute(&[txn], locked)?;
            self.log.log(
                Priority::Info,
                format_args!("{address}: driver_override set to {name}; no driver probed"),
            );
            Ok(Preset::Written)
        })
    }
}
