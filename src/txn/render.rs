//! The plan: a transaction's steps rendered one action per line, from the very list the
//! executor runs, followed by the restore a failure would run.

use crate::tables::VFIO_PCI_MODULE;
use crate::txn::{restore_to, DeviceTxn, Expect, Fallback, Known, Load, LoadFor, Override, Step};
use crate::types::address::PciAddress;
use crate::Context;

impl Context {
    /// The plan of one device's transaction, one action per line: exactly the steps
    /// [`Context::execute`] runs, with `checkpoint` (what the operation decides once its
    /// module loads ran: the safety checks) after the leading loads, then the restore it would
    /// run on failure.
    pub(crate) fn render(&self, txn: &DeviceTxn, checkpoint: &[String], lines: &mut Vec<String>) {
        let mut known = Known::Driver(txn.start.driver.clone());
        let mut checkpoint = Some(checkpoint);
        for step in &txn.steps {
            if !matches!(step, Step::Load(_)) {
                lines.extend(checkpoint.take().into_iter().flatten().cloned());
            }
            if let Some(line) = self.describe(&txn.address, step, &known) {
                lines.push(line);
            }
            known.after(step);
        }
        lines.extend(checkpoint.take().into_iter().flatten().cloned());
        lines.push(format!(
            "on failure, restore {} to {}:",
            txn.address, txn.start
        ));
        let mut known = Known::Unknown;
        for step in restore_to(&txn.start) {
            if let Some(line) = self.describe(&txn.address, &step, &known) {
                lines.push(format!("  {line}"));
            }
            known.after(&step);
        }
        let loaded: Vec<String> = txn
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Load(l) => Some(l.module.to_string()),
                _ => None,
            })
            .collect();
        if !loaded.is_empty() {
            lines.push(format!(
                "  (a restore unloads no module: other devices may already use {})",
                loaded.join(", ")
            ));
        }
    }

    /// One step as a plan line; `None` for a step that would do nothing.
    fn describe(&self, address: &PciAddress, step: &Step, known: &Known) -> Option<String> {
        let dev = self.sysfs.device_dir(address);
        Some(match step {
            Step::SetOverride(Override::Clear) => format!(
                "write '\\n' to {} (clear it)",
                dev.join("driver_override").display()
            ),
            Step::SetOverride(Override::Driver(t)) => {
                format!("write '{t}' to {}", dev.join("driver_override").display())
            }
            Step::SetOverride(Override::Value(v)) => {
                format!("write '{v}' to {}", dev.join("driver_override").display())
            }
            Step::Unbind { keep } => match (known, keep) {
                (Known::Driver(None), _) => return None,
                (Known::Driver(Some(d)), Some(k)) if k.driver() == Some(d) => return None,
                (Known::Driver(Some(d)), _) => format!(
                    "write '{address}' to {}",
                    self.sysfs.driver_dir(d).join("unbind").display()
                ),
                (Known::Unknown, None) => {
                    format!("write '{address}' to DRIVER/unbind of the driver holding it, if any")
                }
                (Known::Unknown, Some(k)) => format!(
                    "write '{address}' to DRIVER/unbind of the driver holding it, unless that \
                     is {k}"
                ),
            },
            Step::Probe => format!(
                "write '{address}' to {}",
                self.sysfs.root().join("bus/pci/drivers_probe").display()
            ),
            Step::Expect(Expect::Driver(t)) => {
                format!("check that {} points at {t}", dev.join("driver").display())
            }
            Step::Expect(Expect::Unbound) => {
                format!(
                    "check that {} is absent (unbound)",
                    dev.join("driver").display()
                )
            }
            Step::Expect(Expect::AnyDriver { may_stay_unbound }) => format!(
                "check that {} points at a driver{}",
                dev.join("driver").display(),
                if *may_stay_unbound {
                    " (or is absent: no host driver matches the device)"
                } else {
                    ""
                }
            ),
            Step::Load(Load { module, purpose }) => {
                let load = self.modprobe.describe_load(module);
                match purpose {
                    LoadFor::Host => format!("load host module {module}: {load}"),
                    LoadFor::Target(fallback) => format!(
                        "{load}; its PCI driver is known once it is loaded{}",
                        match fallback {
                            _ if module.as_str() == VFIO_PCI_MODULE => "",
                            Some(Fallback::VfioPci) => {
                                " (should it fail to load: vfio-pci instead)"
                            }
                            Some(Fallback::Strict) => {
                                " (should it fail to load: an error, no fallback)"
                            }
                            None => "",
                        }
                    ),
                }
            }
        })
    }
}
