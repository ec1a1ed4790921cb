//! The plan: a transaction's steps rendered one action per line, from the very list the
//! executor runs, followed by the restore a failure would run.

use crate::tables::VFIO_PCI_MODULE;
use crate::txn::Engine;
use crate::txn::{restore_to, DeviceTxn, Expect, Fallback, Known, Load, LoadFor, Override, Step};
use crate::types::address::PciAddress;

use crate::txn::sriov::{restore_sriov, SriovStep, SriovTxn};

impl Engine<'_> {
    /// The plan of one device's transaction, one action per line: exactly the steps
    /// [`Engine::execute`] runs, with `checkpoint` (what the operation decides once its
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

/// The plan of a PF's VF count change (`txn/sriov.rs`).
impl Engine<'_> {
    /// The plan of a VF count change, one action per line: exactly the steps
    /// [`Engine::execute_sriov`] runs, then for each step whose failure has something to
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
                self.vmm_wait
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{move_to, DeviceState, Fallback, Load, LoadFor, Target};
    use crate::types::name::{DriverName, ModuleName};
    use crate::Context;
    use crate::{Modprobe, ModuleLoader};

    const ADDR: &str = "0000:3b:00.2";

    fn context(dir: &tempfile::TempDir, modprobe: Modprobe) -> Context {
        let mut ctx = Context::new(dir.path()).unwrap();
        ctx.set_modprobe(modprobe).unwrap();
        ctx
    }

    fn module(name: &str) -> ModuleName {
        ModuleName::new(name).unwrap()
    }

    fn driver(name: &str) -> DriverName {
        DriverName::new(name).unwrap()
    }

    /// A bind to a variant not loaded yet, as a dry run lists it: the load, then the move to
    /// the driver its module registers.
    fn variant_bind(start: DeviceState) -> DeviceTxn {
        let target = Target::Unloaded(module("mlx5_vfio_pci"));
        let mut steps = vec![Step::Load(Load {
            module: module("mlx5_vfio_pci"),
            purpose: LoadFor::Target(Some(Fallback::VfioPci)),
        })];
        steps.extend(move_to(&target));
        DeviceTxn {
            address: PciAddress::parse(ADDR).unwrap(),
            start,
            steps,
            doing: format!("binding to {target}"),
            forced: false,
        }
    }

    fn on(d: &str) -> DeviceState {
        DeviceState {
            driver: Some(driver(d)),
            driver_override: None,
        }
    }

    fn unbound() -> DeviceState {
        DeviceState {
            driver: None,
            driver_override: None,
        }
    }

    #[test]
    fn a_load_renders_the_configured_program_then_the_checkpoint_then_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir, Modprobe::Program("/opt/kmod/modprobe".into()));
        let mut lines = Vec::new();
        let checks = vec!["safety checks passed: all".to_owned()];
        ctx.engine()
            .render(&variant_bind(on("mlx5_core")), &checks, &mut lines);
        assert_eq!(
            lines[0],
            "run /opt/kmod/modprobe -b mlx5_vfio_pci; its PCI driver is known once it is \
             loaded (should it fail to load: vfio-pci instead)"
        );
        assert_eq!(lines[1], checks[0]);
        assert!(
            lines[2].starts_with("write '<the PCI driver of module mlx5_vfio_pci>' to "),
            "{lines:#?}"
        );
        // The device is on a driver: a load probes only unbound devices, so the unbind is
        // still named.
        assert!(lines[3].ends_with("drivers/mlx5_core/unbind"), "{lines:#?}");
        let restore = lines
            .iter()
            .position(|l| l.starts_with("on failure"))
            .unwrap();
        assert!(!lines[restore..].iter().any(|l| l.contains("-b ")));
        assert_eq!(
            lines.last().unwrap(),
            "  (a restore unloads no module: other devices may already use mlx5_vfio_pci)"
        );
    }

    #[test]
    fn a_load_through_the_callers_loader_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir, Modprobe::Loader(ModuleLoader::new(|_| Ok(()))));
        let mut lines = Vec::new();
        ctx.engine()
            .render(&variant_bind(on("mlx5_core")), &[], &mut lines);
        assert_eq!(
            lines[0],
            "ask the caller's module loader for mlx5_vfio_pci; its PCI driver is known once it \
             is loaded (should it fail to load: vfio-pci instead)"
        );
    }

    #[test]
    fn after_a_load_an_unbound_device_may_be_on_a_driver() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir, Modprobe::Program("/sbin/modprobe".into()));
        let mut lines = Vec::new();
        ctx.engine()
            .render(&variant_bind(unbound()), &[], &mut lines);
        assert!(
            lines[2].contains("DRIVER/unbind of the driver holding it, if any"),
            "{lines:#?}"
        );
        // Without the load, an unbound device has nothing to unbind.
        let mut txn = variant_bind(unbound());
        txn.steps.remove(0);
        let mut lines = Vec::new();
        ctx.engine().render(&txn, &[], &mut lines);
        let restore = lines
            .iter()
            .position(|l| l.starts_with("on failure"))
            .unwrap();
        assert!(
            !lines[..restore].iter().any(|l| l.contains("unbind")),
            "{lines:#?}"
        );
    }

    #[test]
    fn host_modules_and_strict_variants_and_disabled_loading() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir, Modprobe::Disabled);
        let load = |m: &str, purpose| {
            Step::Load(Load {
                module: module(m),
                purpose,
            })
        };
        let known = Known::Unknown;
        let address = PciAddress::parse(ADDR).unwrap();
        assert_eq!(
            ctx.engine()
                .describe(&address, &load("e1000e", LoadFor::Host), &known)
                .unwrap(),
            "load host module e1000e: load e1000e (module loading is disabled: it would fail)"
        );
        let ctx = context(&dir, Modprobe::Program("/sbin/modprobe".into()));
        assert_eq!(
            ctx.engine()
                .describe(
                    &address,
                    &load("mlx5_vfio_pci", LoadFor::Target(Some(Fallback::Strict))),
                    &known
                )
                .unwrap(),
            "run /sbin/modprobe -b mlx5_vfio_pci; its PCI driver is known once it is loaded \
             (should it fail to load: an error, no fallback)"
        );
        // vfio_pci itself has nothing to fall back to.
        assert_eq!(
            ctx.engine()
                .describe(
                    &address,
                    &load("vfio_pci", LoadFor::Target(Some(Fallback::VfioPci))),
                    &known
                )
                .unwrap(),
            "run /sbin/modprobe -b vfio_pci; its PCI driver is known once it is loaded"
        );
    }
}
