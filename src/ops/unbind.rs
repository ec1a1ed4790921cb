//! Unbind (SPEC 3.3 `unbind`): the device detached and kept on no driver, as a transaction.

use crate::ops::bind::{checks_note_of, Plan, Prepared};
use crate::os::sysfs::NO_DRIVER_OVERRIDE;
use crate::policy::safety::Destination;
use crate::txn::{self, DeviceTxn, Expect, Override, Step};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Result};
use crate::types::log::Priority;
use crate::types::options::BindOptions;
use crate::Context;

impl Context {
    /// Detaches the device at `address` from its driver and leaves it unbound. Its
    /// `driver_override` is first set to `none` (a name no driver has), so no later probe
    /// grabs it. Nothing is written when it is unbound with that override already. Taking a
    /// device off a host driver runs bind's safety checks unless `options.force` (unbinding
    /// the host's NIC cuts the host off as surely as binding it elsewhere). On failure the
    /// device is put back as it was.
    pub fn unbind(&self, address: &str, options: BindOptions) -> Result<()> {
        let address = PciAddress::parse(address)?;
        self.on_locked_device(&address, |locked, _| {
            let start = self.state(&address)?;
            match self.prepare_unbind(&address, start, options)?.txn {
                Some(txn) => self.execute(&[txn], locked),
                None => Ok(()),
            }
        })
    }

    /// What [`Context::unbind`] with the same arguments would do, without doing any of it:
    /// the checks run as the real call's, nothing is written. The plan comes from the step list
    /// the real call executes.
    pub fn unbind_plan(&self, address: &str, options: BindOptions) -> Result<Plan> {
        let address = PciAddress::parse(address)?;
        self.plan_with(address, |loads| {
            self.prepare_unbind(&address, loads.start().clone(), options)
        })
    }

    /// An unbind worked out from the device's `start`: nothing for a device unbound with the
    /// no-driver override already; else the checks, then override `none`, unbind, check.
    fn prepare_unbind(
        &self,
        address: &PciAddress,
        start: txn::DeviceState,
        options: BindOptions,
    ) -> Result<Prepared> {
        if start.driver.is_none() && start.driver_override.as_deref() == Some(NO_DRIVER_OVERRIDE) {
            let nothing = format!("{address} is unbound and kept so; nothing to do");
            self.log.log(Priority::Info, format_args!("{nothing}"));
            return Ok(Prepared {
                target: None,
                txn: None,
                notes: vec![nothing],
                checkpoint: Vec::new(),
            });
        }
        self.check_move(address, &start, Destination::Unbound, None, &options)?;
        Ok(Prepared {
            target: None,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps: vec![
                    Step::SetOverride(Override::Value(NO_DRIVER_OVERRIDE.to_owned())),
                    Step::Unbind { keep: None },
                    Step::Expect(Expect::Unbound),
                ],
                doing: "unbinding".to_owned(),
            }),
            notes: vec![checks_note_of(
                &options,
                &[
                    (Check::InUse, "not in use on the host"),
                    (Check::Sriov, "not a PF whose VFs are on VFIO drivers"),
                ],
            )],
            checkpoint: Vec::new(),
        })
    }
}
