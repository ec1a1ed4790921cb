//! Reattach (SPEC 3.3 `reattach`): the device given back to the host, to the driver the kernel's
//! matching chooses or to a named one, as a transaction.

use crate::ops::bind::{checks_note, Plan, Prepared};
use crate::policy::safety::Destination;
use crate::txn::{self, DeviceTxn, Expect, Load, LoadFor, Loads, Override, Step, Target};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Result};
use crate::types::log::Priority;
use crate::types::name::DriverName;
use crate::types::options::BindOptions;
use crate::Context;

impl Context {
    /// Gives the device back to the host (SPEC 3.3 reattach), as a transaction. With no name:
    /// clears `driver_override`, unbinds and lets the kernel probe (loading first the host
    /// modules the alias tables name for the device); with a name, binds exactly that driver
    /// and then clears the override if the driver matches the device by its own ID table.
    /// Nothing is written when there is nothing to do: a device on a host driver with no
    /// override, asked back to the host or to the driver it is on; a device on a host driver
    /// whose override is set only has the override cleared (a host NIC must not flap). A
    /// named driver that is not the current one must claim the device, and a device taken off
    /// a host driver passes bind's safety checks, unless `options.force`. Returns the driver
    /// it ends on; `None` only when no name was given and the alias tables were read and name
    /// no host driver for the device. On failure the device is put back as it was.
    pub fn reattach(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<Option<DriverName>> {
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.on_locked_device(&address, |locked, _| {
            let start = self.state(&address)?;
            let (target, _) =
                self.run_prepared(locked, address, start, "reattaching to", |loads| {
                    self.prepare_reattach(loads, name.as_ref(), options)
                })?;
            match target {
                Some(t) => Ok(Some(t)),
                // The kernel chose; the transaction checked that it chose something, or nothing
                // because no host driver matches.
                None => self.sysfs.device_driver(&address),
            }
        })
    }

    /// What [`Context::reattach`] with the same arguments would do, without doing any of it:
    /// nothing is written or loaded; the checks that need no module load run as the real
    /// call's. The plan comes from the step list the real call executes.
    pub fn reattach_plan(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<Plan> {
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.plan_with(address, |loads| {
            self.prepare_reattach(loads, name.as_ref(), options)
        })
    }

    /// A reattach worked out: the module load of a named target through `loads`, then, on the
    /// device as the load left it, what to write; with no name, the host modules are loads
    /// among the steps (after the checks: they tell no target).
    pub(super) fn prepare_reattach(
        &self,
        loads: &mut Loads<'_>,
        name: Option<&DriverName>,
        options: BindOptions,
    ) -> Result<Prepared> {
        let address = &loads.address().to_owned();
        let mut notes = Vec::new();
        let target = name
            .map(|n| self.resolve_target(n, None, loads, &mut notes))
            .transpose()?;
        // Where the load left it (a host module may have probed an unbound device), and where
        // a failure restores it to.
        let now = loads.now()?;
        let start = loads.start().clone();
        let nothing = |target: Option<DriverName>| {
            self.log.log(
                Priority::Info,
                format_args!("{address} is already where it should be ({now}); nothing to do"),
            );
            Ok(Prepared {
                target,
                txn: None,
                notes: Vec::new(),
                checkpoint: Vec::new(),
            })
        };
        let Some(target) = target else {
            let on_host_driver = self.on_host_driver(address, now.driver.as_ref());
            if on_host_driver && now.driver_override.is_none() {
                return nothing(None);
            }
            let home = on_host_driver
                && now.driver.as_ref().is_some_and(|d| {
                    self.claims_by_id_table(address, &Target::Driver(d.clone()), None) == Some(true)
                });
            if home {
                // On a driver that claims it by its own ID table: only the override goes, with
                // no unbind and no probe. (A driver forced onto a device it does not claim is
                // no home: the device is reprobed below.)
                return Ok(Prepared {
                    target: now.driver.clone(),
                    txn: Some(DeviceTxn {
                        forced: false,
                        address: *address,
                        steps: vec![Step::SetOverride(Override::Clear)],
                        doing: "clearing driver_override (the device is on its host driver)"
                            .to_owned(),
                        start,
                    }),
                    notes: Vec::new(),
                    checkpoint: Vec::new(),
                });
            }
            self.check_move(address, &now, Destination::Host, None, &options)?;
            return self.prepare_reattach_to_host(address, start, &options);
        };
        // `None` only in a dry run whose target's module is not loaded: the device cannot be on
        // a driver nobody registered yet.
        let driver = target.driver().cloned();
        // A driver that matches the device by its own IDs keeps it after a reprobe without
        // the override; an override-only (VFIO) driver, or one forced onto a device it does
        // not claim, needs the override to stay.
        let host = self
            .claims_by_id_table(address, &target, name)
            .unwrap_or_else(|| !self.is_vfio_target(&target));
        let mut checkpoint = Vec::new();
        let steps = match &driver {
            Some(d) if now.driver.as_ref() == Some(d) => {
                let wanted_override = if host { None } else { Some(d.as_str()) };
                if now.driver_override.as_deref() == wanted_override {
                    return nothing(Some(d.clone()));
                }
                vec![Step::SetOverride(match wanted_override {
                    None => Override::Clear,
                    Some(_) => Override::Driver(target.clone()),
                })]
            }
            _ => {
                // `reattach(host NIC, "vfio-pci")` must not take what `bind` refuses.
                self.check_move(address, &now, Destination::Driver(&target), name, &options)?;
                checkpoint.push(checks_note(&options));
                let mut steps = txn::move_to(&target);
                if host {
                    steps.push(Step::SetOverride(Override::Clear));
                }
                steps
            }
        };
        Ok(Prepared {
            target: driver,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps,
                doing: format!("reattaching to {target}"),
            }),
            notes,
            checkpoint,
        })
    }

    /// Reattach with no name: the host modules the tables name for the device are loaded
    /// first (when not loaded yet: loads are the first steps), then the override is cleared
    /// and the kernel's matching chooses. The device may stay unbound only when no host
    /// driver matches it.
    fn prepare_reattach_to_host(
        &self,
        address: &PciAddress,
        start: txn::DeviceState,
        options: &BindOptions,
    ) -> Result<Prepared> {
        let modules = self.host_modules_for(address)?;
        let mut steps: Vec<Step> = modules
            .iter()
            .flatten()
            .filter(|m| !self.sysfs.module_exists(m) && !self.modprobe.is_disabled())
            .map(|m| {
                Step::Load(Load {
                    module: m.clone(),
                    purpose: LoadFor::Host,
                })
            })
            .collect();
        // Unreadable tables cannot say that no host driver matches: left unbound then, the
        // device is restored and the call fails.
        let may_stay_unbound = modules.as_ref().is_some_and(Vec::is_empty);
        if may_stay_unbound {
            self.log.log(
                Priority::Info,
                format_args!("no host driver matches {address}; it may stay unbound"),
            );
        }
        steps.extend([
            Step::SetOverride(Override::Clear),
            Step::Unbind { keep: None },
            Step::Probe,
            Step::Expect(Expect::AnyDriver { may_stay_unbound }),
        ]);
        Ok(Prepared {
            target: None,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps,
                doing: "reattaching to the host driver".to_owned(),
            }),
            notes: Vec::new(),
            checkpoint: Vec::new(),
        })
    }
}
