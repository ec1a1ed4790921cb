//! The transaction as data (SPEC 3.3): every sequence that changes a device's binding is a list
//! of [`Step`]s, built by the operations in `bind.rs` and run here by one executor, which also
//! puts a device back where it started when a step fails, and renders the very same list as the
//! dry-run plan. A transaction is a list of per-device lists ([`DeviceTxn`]): a failure in one
//! device restores it and then every device already moved, in reverse order, so that moving the
//! members of an IOMMU group together runs on the same executor as binding one device.
//!
//! Here: the step vocabulary, the step lists of a move and of a restore, and the record a
//! transaction leaves; `executor` runs them, `render` prints them, and `load` runs the module
//! loads a move needs before its target is known (the transaction's first phase). A PF's VF
//! count change is a transaction of its own kind, with its own steps (`sriov`), on the same
//! executor and renderer. All of them are methods of an [`Engine`] (`engine`), which holds
//! only what the engine needs of a context; `recover` takes the locks, rolling back the
//! interrupted transaction a lock file records.

use crate::os::record::{Record, Recorded};
mod engine;
mod executor;
mod load;
mod recover;
mod render;
pub(crate) mod sriov;

use crate::types::address::PciAddress;
use crate::types::name::DriverName;
pub(crate) use crate::types::state::{DeviceState, Target};
pub(crate) use engine::{vmm_wait, Engine};
pub(crate) use executor::{Locked, Restored};
pub(crate) use load::{Fallback, Load, LoadFor, Loads};

/// A value for `driver_override`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Override {
    /// Written as `"\n"`: the kernel then matches drivers by their ID tables again.
    Clear,
    /// A driver's name: only that driver may bind at the next probe.
    Driver(Target),
    /// A value recorded from the device (restoring it), or the no-driver value of `unbind`.
    Value(String),
}

/// What a device must look like after a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Bound to exactly this driver.
    Driver(Target),
    /// Bound to no driver.
    Unbound,
    /// Bound to whichever driver the kernel's matching chose; unbound is accepted only when
    /// `may_stay_unbound` (no host driver matches the device).
    AnyDriver { may_stay_unbound: bool },
}

/// One change to the kernel's state, or one check of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write the device's `driver_override`.
    SetOverride(Override),
    /// Detach the device from the driver that holds it (`drivers/DRV/unbind`), unless that
    /// driver is `keep`; nothing when it is unbound.
    Unbind { keep: Option<Target> },
    /// Write the address to `bus/pci/drivers_probe`. The kernel answers success even when no
    /// driver took the device: an [`Step::Expect`] follows.
    Probe,
    /// Read the `driver` link and compare.
    Expect(Expect),
    /// Load a kernel module (SPEC 3.1 step 3, 3.6), through the configured program or the
    /// caller's loader. A failed load fails no transaction by itself: what it means is decided
    /// by what needed the module (the target's resolution, a warning for a host module). A
    /// load can probe the device (a host module taking an unbound device): a failure after it
    /// restores the device to its start. A restore never unloads a module: other devices may
    /// already use it.
    Load(Load),
}

/// The steps that move a device from where it is to `target` (SPEC 3.3 steps 6-7): the same
/// sequence works for override-only (VFIO) drivers and ordinary ones.
pub(crate) fn move_to(target: &Target) -> Vec<Step> {
    vec![
        Step::SetOverride(Override::Driver(target.clone())),
        Step::Unbind { keep: None },
        Step::Probe,
        Step::Expect(Expect::Driver(target.clone())),
    ]
}

/// The steps that put a device back to `start` (SPEC 3.3 step 8). A device that was on ORIG:
/// override := ORIG, unbind whatever holds it now, probe, check ORIG, then the recorded
/// override. Writing ORIG into the override first is what brings a device back onto an
/// override-only driver (vfio-pci refuses a plain `bind` and `drivers_probe` without it). A
/// device that was unbound: unbind, then the recorded override.
pub(crate) fn restore_to(start: &DeviceState) -> Vec<Step> {
    let recorded = match &start.driver_override {
        Some(v) => Override::Value(v.clone()),
        None => Override::Clear,
    };
    match &start.driver {
        Some(orig) => {
            let orig = Target::Driver(orig.clone());
            let mut steps = vec![
                Step::SetOverride(Override::Driver(orig.clone())),
                Step::Unbind {
                    keep: Some(orig.clone()),
                },
                Step::Probe,
                Step::Expect(Expect::Driver(orig.clone())),
            ];
            if start.driver_override.as_deref() != orig.driver().map(DriverName::as_str) {
                steps.push(Step::SetOverride(recorded));
            }
            steps
        }
        None => vec![
            Step::Unbind { keep: None },
            Step::SetOverride(recorded),
            Step::Expect(Expect::Unbound),
        ],
    }
}

/// One device's part of a transaction.
#[derive(Clone, Debug)]
pub(crate) struct DeviceTxn {
    pub address: PciAddress,
    /// Recorded before any step, under the device's lock: what a restore goes back to.
    pub start: DeviceState,
    pub steps: Vec<Step>,
    /// What the steps do, for messages: "binding to vfio-pci".
    pub doing: String,
    /// The checks were skipped: a VMM may hold a device leaving a VFIO driver, so that unbind
    /// waits a bounded time (unforced, the checks refused a held device).
    pub forced: bool,
}

/// The record a device's part of a transaction leaves in its lock file: its start, and every
/// override its steps write (what the trust rule accepts).
pub(crate) fn record_of(txn: &DeviceTxn) -> Record {
    let mut may_leave: Vec<Option<String>> = Vec::new();
    for step in &txn.steps {
        let value = match step {
            Step::SetOverride(Override::Clear) => None,
            Step::SetOverride(Override::Driver(t)) => Some(t.to_string()),
            Step::SetOverride(Override::Value(v)) => Some(v.clone()),
            _ => continue,
        };
        if !may_leave.contains(&value) {
            may_leave.push(value);
        }
    }
    Record {
        pid: std::process::id(),
        doing: txn.doing.clone(),
        what: Recorded::Move {
            start: txn.start.clone(),
            may_leave,
        },
    }
}

/// What the executor knows of a device's driver as it goes: known after reading it or after a
/// step that decides it, unknown after a probe. Spares a read of the `driver` link where the
/// answer is already known, and lets the plan name the driver an unbind writes to.
#[derive(Clone, Debug)]
pub(super) enum Known {
    Driver(Option<DriverName>),
    Unknown,
}

impl Known {
    pub(super) fn after(&mut self, step: &Step) {
        *self = match step {
            Step::SetOverride(_) => return,
            Step::Unbind { keep: None } => Known::Driver(None),
            Step::Unbind { keep: Some(k) } => match (&*self, k.driver()) {
                (Known::Driver(Some(d)), Some(k)) if d == k => return,
                (Known::Driver(_), _) => Known::Driver(None),
                (Known::Unknown, _) => Known::Unknown,
            },
            Step::Probe => Known::Unknown,
            Step::Expect(Expect::Driver(t)) => match t.driver() {
                Some(d) => Known::Driver(Some(d.clone())),
                None => Known::Unknown,
            },
            Step::Expect(Expect::Unbound) => Known::Driver(None),
            Step::Expect(Expect::AnyDriver { .. }) => Known::Unknown,
            // A new driver probes only unbound devices: a bound one stays where it is.
            Step::Load(_) => match self {
                Known::Driver(None) => Known::Unknown,
                Known::Driver(Some(_)) | Known::Unknown => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str) -> DriverName {
        DriverName::new(name).unwrap()
    }

    #[test]
    fn restore_from_vfio_pci_writes_the_override_first_and_keeps_it() {
        let start = DeviceState {
            driver: Some(d("vfio-pci")),
            driver_override: Some("vfio-pci".into()),
        };
        let vfio = Target::Driver(d("vfio-pci"));
        assert_eq!(
            restore_to(&start),
            vec![
                Step::SetOverride(Override::Driver(vfio.clone())),
                Step::Unbind {
                    keep: Some(vfio.clone())
                },
                Step::Probe,
                Step::Expect(Expect::Driver(vfio)),
            ]
        );
    }

    #[test]
    fn restore_of_a_host_driver_clears_the_override_last() {
        let start = DeviceState {
            driver: Some(d("e1000e")),
            driver_override: None,
        };
        let steps = restore_to(&start);
        assert_eq!(
            steps.first(),
            Some(&Step::SetOverride(Override::Driver(Target::Driver(d(
                "e1000e"
            )))))
        );
        assert_eq!(steps.last(), Some(&Step::SetOverride(Override::Clear)));
    }

    #[test]
    fn restore_of_an_unbound_device_leaves_it_unbound_with_its_override() {
        let start = DeviceState {
            driver: None,
            driver_override: Some("none".into()),
        };
        assert_eq!(
            restore_to(&start),
            vec![
                Step::Unbind { keep: None },
                Step::SetOverride(Override::Value("none".into())),
                Step::Expect(Expect::Unbound),
            ]
        );
    }

    #[test]
    fn known_driver_follows_the_steps() {
        let mut known = Known::Driver(Some(d("e1000e")));
        known.after(&Step::SetOverride(Override::Clear));
        assert!(matches!(&known, Known::Driver(Some(x)) if x.as_str() == "e1000e"));
        known.after(&Step::Unbind {
            keep: Some(Target::Driver(d("e1000e"))),
        });
        assert!(matches!(&known, Known::Driver(Some(_))));
        known.after(&Step::Unbind { keep: None });
        assert!(matches!(known, Known::Driver(None)));
        known.after(&Step::Probe);
        assert!(matches!(known, Known::Unknown));
    }

    fn load(m: &str) -> Step {
        Step::Load(Load {
            module: crate::types::name::ModuleName::new(m).unwrap(),
            purpose: LoadFor::Target(None),
        })
    }

    #[test]
    fn a_load_makes_an_unbound_device_unknown_and_leaves_a_bound_one() {
        let mut known = Known::Driver(None);
        known.after(&load("e1000e"));
        assert!(
            matches!(known, Known::Unknown),
            "a host module may probe it"
        );
        let mut known = Known::Driver(Some(d("mlx5_core")));
        known.after(&load("mlx5_vfio_pci"));
        assert!(matches!(&known, Known::Driver(Some(x)) if x.as_str() == "mlx5_core"));
    }

    #[test]
    fn the_record_of_a_transaction_with_loads_names_only_its_overrides() {
        let target = Target::Driver(d("mlx5_vfio_pci"));
        let mut steps = vec![load("mlx5_vfio_pci")];
        steps.extend(move_to(&target));
        let txn = DeviceTxn {
            address: PciAddress::parse("0000:3b:00.2").unwrap(),
            start: DeviceState {
                driver: None,
                driver_override: None,
            },
            steps,
            doing: "binding to mlx5_vfio_pci".into(),
            forced: false,
        };
        match record_of(&txn).what {
            Recorded::Move { start, may_leave } => {
                assert_eq!(start, txn.start);
                assert_eq!(may_leave, vec![Some("mlx5_vfio_pci".to_owned())]);
            }
            other => panic!("{other:?}"),
        }
        // A restore goes back to the start: it has no load to undo, and unloads nothing.
        assert!(!restore_to(&txn.start)
            .iter()
            .any(|s| matches!(s, Step::Load(_))));
    }
}
