//! Presetting a device's `driver_override` before any driver is loaded for it: what a boot
//! does for the saved overrides (`pcibind apply --overrides-only`, run before udev's
//! coldplug), so that a host driver loaded for another device never binds this one first.
//! Only the override is written, as a one-step transaction under the device's lock: no module
//! is loaded, no probe made, a bound device is left alone.

use crate::ops::recover;
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

/// [`Context::preset_override`].
pub(crate) fn preset_override(ctx: &Context, address: &str, name: &str) -> Result<Preset> {
    let address = PciAddress::parse(address)?;
    let name = DriverName::new(name)?;
    recover::on_locked_device(ctx, &address, |locked, _| {
        let start = ctx.state(&address)?;
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
        ctx.engine().execute(&[txn], locked)?;
        ctx.log.log(
            Priority::Info,
            format_args!("{address}: driver_override set to {name}; no driver probed"),
        );
        Ok(Preset::Written)
    })
}
