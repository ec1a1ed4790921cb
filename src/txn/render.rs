//! The plan: a transaction's steps rendered one action per line, from the very list the
//! executor runs, followed by the restore a failure would run.

use crate::txn::{restore_to, DeviceTxn, Expect, Known, Override, Step};
use crate::types::address::PciAddress;
use crate::Context;

use crate::txn::sriov::{restore_sriov, SriovStep, SriovTxn};

impl Context {
    /// The plan of one device's transaction, one action per line: exactly the steps
    /// [`Context::execute`] runs, then the restore it would run on failure.
    pub(crate) fn render(&self, txn: &DeviceTxn, lines: &mut Vec<String>) {
        let mut known = Known::Driver(txn.start.driver.clone());
        for step in &txn.steps {
            if let Some(line) = self.describe(&txn.address, step, &known) {
                lines.push(line);
            }
            known.after(step);
        }
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
        })
    }
}

/// The plan of a PF's VF count change (`txn/sriov.rs`).
impl Context {
    /// The plan of a VF count change, one action per line: exactly the steps
    /// [`Context::execute_sriov`] runs, then for each step whose failure has something to
    /// restore, that restore.
    pub(crate) fn render_sriov(&self, txn: &SriovTxn, lines: &mut Vec<String>) {
        let pf = &txn.pf;
        for step in &txn.steps {
            lines.extend(self.describe_sriov(pf, step));
        }
        let mut restores = false;
        for (i, step) in txn.steps.iter().enumerate() {
            let undo = restore_sriov(&txn.steps, i);
            if undo.is_empty() {
                continue;
            }
            restores = true;
            let failing = match step {
                SriovStep::RemoveVfs { .. } => "removing the VFs",
                SriovStep::SetAutoprobe(_) => "writing sriov_drivers_autoprobe",
                SriovStep::CreateVfs(_) => "creating the VFs",
                SriovStep::ParkNewVfs(_) => "parking a new VF",
            };
            lines.push(format!(
                "if {failing} fails, restore {pf}{}:",
                if undo.len() > 1 {
                    " (each step only once the one before it succeeded)"
                } else {
                    ""
                }
            ));
            for undo in &undo {
                lines.extend(
                    self.describe_sriov(pf, undo)
                        .iter()
                        .map(|l| format!("  {l}")),
                );
            }
        }
        let creates = txn
            .steps
            .iter()
            .any(|s| matches!(s, SriovStep::CreateVfs(_)));
        if txn.start.numvfs > 0 && creates {
            lines.push(format!(
                "the {} removed first do not come back: a failure after their removal leaves \
                 {pf} with 0 VFs",
                vfs(txn.start.numvfs)
            ));
        } else if !restores {
            lines.push("on failure, nothing is restored".to_owned());
        }
    }

    /// One SR-IOV step as plan lines: one, or one per new VF for their parking.
    pub(crate) fn describe_sriov(&self, pf: &PciAddress, step: &SriovStep) -> Vec<String> {
        let dev = self.sysfs.device_dir(pf);
        let numvfs = dev.join("sriov_numvfs");
        let autoprobe = dev.join("sriov_drivers_autoprobe");
        match *step {
            SriovStep::RemoveVfs {
                count,
                wait_for_vmm: false,
            } => vec![format!(
                "write '0' to {} (remove its {})",
                numvfs.display(),
                vfs(count)
            )],
            SriovStep::RemoveVfs {
                count,
                wait_for_vmm: true,
            } => vec![format!(
                "write '0' to {} (remove its {}) from a child process that keeps the locks, \
                 waiting at most {:?} for a VMM holding a VF to let go of it",
                numvfs.display(),
                vfs(count),
                self.vmm_wait()
            )],
            SriovStep::SetAutoprobe(on) => {
                vec![format!(
                    "write '{}' to {}",
                    u8::from(on),
                    autoprobe.display()
                )]
            }
            SriovStep::CreateVfs(count) => vec![format!(
                "write '{count}' to {} (create {})",
                numvfs.display(),
                vfs(count)
            )],
            SriovStep::ParkNewVfs(count) => (0..count)
                .map(|i| {
                    format!(
                        "write '{}' to {}, unless the new VF is bound by then (by a caller \
                         that held its lock first)",
                        crate::os::sysfs::NO_DRIVER_OVERRIDE,
                        dev.join(format!("virtfn{i}/driver_override")).display()
                    )
                })
                .collect(),
        }
    }
}

/// "1 VF", "2 VFs".
fn vfs(count: u32) -> String {
    format!("{count} VF{}", if count == 1 { "" } else { "s" })
}
