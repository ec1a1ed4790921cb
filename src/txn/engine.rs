//! What the transaction engine works with: the tree it writes, the tables that tell a VFIO
//! driver (an unbind off one waits for a VMM), the loader of its `Load` steps, the locks whose
//! files carry its records, the log, and how long it waits for a VMM. The context makes one
//! with [`crate::Context::engine`]; the engine sees nothing else of it (no roots of `/proc` or
//! `/dev`, no settings of the operations), and the executor, the renderer, the load phase and
//! the roll-back of interrupted transactions are its methods.

use std::path::Path;
use std::time::Duration;

use crate::os::lock::DeviceLocks;
use crate::os::modprobe::Modprobe;
use crate::os::sysfs::Sysfs;
use crate::policy::classify::Classifier;
use crate::tables::ModuleTables;
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::log::Logger;
use crate::types::state::DeviceState;

/// How long a forced move off a VFIO driver waits for a VMM when the lock timeout is 0.
const VMM_WAIT: Duration = Duration::from_secs(10);

/// The transaction engine's view of a context.
#[derive(Clone, Copy)]
pub(crate) struct Engine<'a> {
    pub sysfs: &'a Sysfs,
    pub tables: &'a ModuleTables,
    pub log: &'a Logger,
    /// How `Load` steps load a module, and for how long at most.
    pub modprobe: &'a Modprobe,
    pub modprobe_timeout: Duration,
    /// The per-device locks and the directory of their files (which carry the records).
    pub locks: &'a DeviceLocks,
    pub lock_dir: &'a Path,
    /// How long a forced move off a VFIO driver waits for a VMM to let go of the device
    /// ([`vmm_wait`]).
    pub vmm_wait: Duration,
}

/// How long a forced move off a VFIO driver waits for a VMM to let go of the device: the lock
/// timeout, or [`VMM_WAIT`] when that is 0 (fail at once when locked is no answer for a wait
/// that has begun).
pub(crate) fn vmm_wait(lock_timeout: Duration) -> Duration {
    if lock_timeout.is_zero() {
        VMM_WAIT
    } else {
        lock_timeout
    }
}

impl<'a> Engine<'a> {
    /// The classifier on the engine's tree and tables: is the device on a VFIO driver.
    pub fn classifier(&self) -> Classifier<'a> {
        Classifier {
            sysfs: self.sysfs,
            tables: self.tables,
            log: self.log,
        }
    }

    /// Reads where a device is now.
    pub fn state(&self, address: &PciAddress) -> Result<DeviceState> {
        Ok(DeviceState {
            driver: self.sysfs.device_driver(address)?,
            driver_override: self.sysfs.driver_override(address)?,
        })
    }
}
