//! A PF's VF count change as data (SPEC 3.10): its own small step vocabulary, the step list of a
//! change, the restore a failure runs and the one a dead caller's successor runs, and the record
//! the change leaves. It is a transaction of its own rather than [`Step`](super::Step)s of a
//! [`DeviceTxn`](super::DeviceTxn): its start is a VF count and an autoprobe setting, not a
//! driver and an override, and its restore cannot reach that start (VFs removed do not come
//! back). `executor` runs it, `render` prints it, as they do a move.

use crate::os::record::{Record, Recorded};
use crate::types::address::PciAddress;
use crate::types::error::Error;

/// One change to a PF's SR-IOV state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SriovStep {
    /// Write 0 to `sriov_numvfs`: the PF's `count` VFs go. In a change, under their locks,
    /// taken before they were checked; with `wait_for_vmm` (forced past a VF on a VFIO
    /// driver, which a VMM may hold) by a child process, the call waiting a bounded time.
    RemoveVfs { count: u32, wait_for_vmm: bool },
    /// Write `sriov_drivers_autoprobe`.
    SetAutoprobe(bool),
    /// Write `count` (from 0) to `sriov_numvfs`: the kernel creates the VFs.
    CreateVfs(u32),
    /// Give each of the `count` new VFs the no-driver `driver_override`, each under its lock;
    /// a VF found bound (by a caller that held its lock first) is left where it is.
    ParkNewVfs(u32),
}

/// A PF's SR-IOV state: what a change records before its first write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SriovState {
    pub numvfs: u32,
    pub autoprobe: bool,
}

/// A PF's VF count change.
#[derive(Clone, Debug)]
pub(crate) struct SriovTxn {
    pub pf: PciAddress,
    /// Read under the PF's lock before any step: recorded, and what the restore aims for.
    pub start: SriovState,
    pub steps: Vec<SriovStep>,
    /// What the steps do, for messages and the record.
    pub doing: String,
}

/// The steps that take a PF from `start` to `numvfs` VFs (not `start.numvfs`): the VFs there
/// are go first (the kernel refuses one non-zero count after another). With `park` no host
/// driver gets a new VF: autoprobe is 0 while they are created (when it is not already), each
/// is parked, then autoprobe is put back.
pub(crate) fn change_numvfs(
    start: SriovState,
    numvfs: u32,
    park: bool,
    wait_for_vmm: bool,
) -> Vec<SriovStep> {
    let mut steps = Vec::new();
    if start.numvfs > 0 {
        steps.push(SriovStep::RemoveVfs {
            count: start.numvfs,
            wait_for_vmm,
        });
    }
    if numvfs == 0 {
        return steps;
    }
    let autoprobe_off = park && start.autoprobe;
    if autoprobe_off {
        steps.push(SriovStep::SetAutoprobe(false));
    }
    steps.push(SriovStep::CreateVfs(numvfs));
    if park {
        steps.push(SriovStep::ParkNewVfs(numvfs));
    }
    if autoprobe_off {
        steps.push(SriovStep::SetAutoprobe(true));
    }
    steps
}

/// The steps that undo `steps[..failed]` after `steps[failed]` failed, in reverse order. Each
/// runs only once the one before it succeeded: autoprobe back on is safe only when no unparked
/// VF is left. Created VFs not all parked are removed; autoprobe switched off is put back
/// (unless putting it back is what failed: that is left to the next holder of the PF's lock,
/// the VFs all parked). Removed VFs and parked ones stay as they are.
pub(crate) fn restore_sriov(steps: &[SriovStep], failed: usize) -> Vec<SriovStep> {
    let failed_step = steps[failed];
    let parked = steps[..failed]
        .iter()
        .any(|s| matches!(s, SriovStep::ParkNewVfs(_)));
    let mut undo = Vec::new();
    for step in steps[..failed].iter().rev() {
        match *step {
            SriovStep::CreateVfs(count) if !parked => undo.push(SriovStep::RemoveVfs {
                count,
                wait_for_vmm: false,
            }),
            SriovStep::SetAutoprobe(false) if failed_step != SriovStep::SetAutoprobe(true) => {
                undo.push(SriovStep::SetAutoprobe(true))
            }
            _ => {}
        }
    }
    undo
}

/// The steps that put a PF whose change was interrupted back to `recorded`, from `now`. A
/// count that differs is made anew, as the kernel makes VFs with autoprobe as recorded,
/// unless `keep_vfs` (one is on a VFIO driver: someone has used them since): then only
/// autoprobe goes back.
pub(crate) fn recover_sriov(
    now: SriovState,
    recorded: SriovState,
    keep_vfs: bool,
) -> Vec<SriovStep> {
    let mut steps = Vec::new();
    let count_back = now.numvfs != recorded.numvfs && !keep_vfs;
    if count_back && now.numvfs > 0 {
        steps.push(SriovStep::RemoveVfs {
            count: now.numvfs,
            wait_for_vmm: false,
        });
    }
    if now.autoprobe != recorded.autoprobe {
        steps.push(SriovStep::SetAutoprobe(recorded.autoprobe));
    }
    if count_back && recorded.numvfs > 0 {
        steps.push(SriovStep::CreateVfs(recorded.numvfs));
    }
    steps
}

/// The record a change leaves in the PF's lock file: its start.
pub(crate) fn record_of_sriov(txn: &SriovTxn) -> Record {
    Record {
        pid: std::process::id(),
        doing: txn.doing.clone(),
        what: Recorded::Sriov {
            autoprobe: txn.start.autoprobe,
            numvfs: txn.start.numvfs,
        },
    }
}

/// An error after the VFs were removed, with none created in their place: the old ones cannot
/// come back, and the error says so.
pub(crate) fn count_now_zero(e: Error, had: u32) -> Error {
    match e {
        Error::Io { path, source, .. } => Error::Io {
            step: "creating the new VFs after removing the old ones (the PF now has 0 VFs)",
            path,
            source,
        },
        Error::Unsupported { address, detail } => Error::Unsupported {
            address,
            detail: format!("{detail}; the PF now has 0 VFs (it had {had})"),
        },
        Error::InvalidArg(m) => {
            Error::InvalidArg(format!("{m}; the PF now has 0 VFs (it had {had})"))
        }
        Error::Malformed { path, detail } => Error::Malformed {
            path,
            detail: format!("{detail}; the PF now has 0 VFs (it had {had})"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::SriovStep::*;
    use super::*;

    fn state(numvfs: u32, autoprobe: bool) -> SriovState {
        SriovState { numvfs, autoprobe }
    }

    #[test]
    fn new_vfs_are_made_with_autoprobe_off_and_parked() {
        assert_eq!(
            change_numvfs(state(0, true), 2, true, false),
            vec![
                SetAutoprobe(false),
                CreateVfs(2),
                ParkNewVfs(2),
                SetAutoprobe(true)
            ]
        );
    }

    #[test]
    fn a_new_count_goes_through_zero() {
        assert_eq!(
            change_numvfs(state(2, true), 3, true, false),
            vec![
                RemoveVfs {
                    count: 2,
                    wait_for_vmm: false
                },
                SetAutoprobe(false),
                CreateVfs(3),
                ParkNewVfs(3),
                SetAutoprobe(true)
            ]
        );
    }

    #[test]
    fn zero_only_removes_them_waiting_for_a_vmm_when_forced_past_one() {
        assert_eq!(
            change_numvfs(state(4, true), 0, true, true),
            vec![RemoveVfs {
                count: 4,
                wait_for_vmm: true
            }]
        );
    }

    #[test]
    fn autoprobe_already_off_is_not_written() {
        assert_eq!(
            change_numvfs(state(0, false), 1, true, false),
            vec![CreateVfs(1), ParkNewVfs(1)]
        );
    }

    #[test]
    fn autoprobe_mode_writes_the_count_only() {
        assert_eq!(
            change_numvfs(state(2, true), 3, false, false),
            vec![
                RemoveVfs {
                    count: 2,
                    wait_for_vmm: false
                },
                CreateVfs(3)
            ]
        );
    }

    /// Where each step of `steps` may fail, the restore it gets.
    fn restores(steps: &[SriovStep]) -> Vec<Vec<SriovStep>> {
        (0..steps.len()).map(|i| restore_sriov(steps, i)).collect()
    }

    #[test]
    fn a_failure_puts_autoprobe_back_and_removes_unparked_vfs_first() {
        let steps = change_numvfs(state(2, true), 3, true, false);
        let remove_new = RemoveVfs {
            count: 3,
            wait_for_vmm: false,
        };
        assert_eq!(
            restores(&steps),
            vec![
                // Removing the old VFs, then switching autoprobe off: nothing written to undo.
                vec![],
                vec![],
                // Creating: autoprobe back.
                vec![SetAutoprobe(true)],
                // Parking: the new VFs go before autoprobe is back on.
                vec![remove_new, SetAutoprobe(true)],
                // Putting autoprobe back: the VFs are parked; left to the next holder.
                vec![],
            ]
        );
    }

    #[test]
    fn with_autoprobe_off_at_the_start_unparked_vfs_still_go() {
        let steps = change_numvfs(state(0, false), 2, true, false);
        assert_eq!(
            restores(&steps),
            vec![
                vec![],
                vec![RemoveVfs {
                    count: 2,
                    wait_for_vmm: false
                }]
            ]
        );
    }

    #[test]
    fn in_autoprobe_mode_nothing_is_restored() {
        let steps = change_numvfs(state(2, true), 3, false, false);
        assert_eq!(restores(&steps), vec![vec![], vec![]]);
    }

    #[test]
    fn an_interrupted_change_is_made_anew_with_autoprobe_as_recorded() {
        // Killed after creating 2 VFs from 0, autoprobe at 0.
        assert_eq!(
            recover_sriov(state(2, false), state(0, true), false),
            vec![
                RemoveVfs {
                    count: 2,
                    wait_for_vmm: false
                },
                SetAutoprobe(true)
            ]
        );
        // Killed after removing 2 VFs on the way to 3.
        assert_eq!(
            recover_sriov(state(0, false), state(2, true), false),
            vec![SetAutoprobe(true), CreateVfs(2)]
        );
        // Killed after switching autoprobe off only.
        assert_eq!(
            recover_sriov(state(0, false), state(0, true), false),
            vec![SetAutoprobe(true)]
        );
        // Where it started: nothing.
        assert_eq!(recover_sriov(state(1, true), state(1, true), false), vec![]);
    }

    #[test]
    fn vfs_used_since_stay_and_only_autoprobe_goes_back() {
        assert_eq!(
            recover_sriov(state(2, false), state(0, true), true),
            vec![SetAutoprobe(true)]
        );
    }

    #[test]
    fn the_record_is_the_start() {
        let txn = SriovTxn {
            pf: PciAddress::parse("0000:03:00.0").unwrap(),
            start: state(2, true),
            steps: change_numvfs(state(2, true), 3, true, false),
            doing: "changing the VF count from 2 to 3".into(),
        };
        let record = record_of_sriov(&txn);
        assert_eq!(record.doing, txn.doing);
        assert_eq!(
            record.what,
            Recorded::Sriov {
                autoprobe: true,
                numvfs: 2
            }
        );
    }
}
