//! The views the layers below are given of a context: each holds only what its layer reads, so
//! the transaction engine, the safety checks and the classifier never see the whole context.

use crate::policy::classify::Classifier;
use crate::policy::safety::Safety;
use crate::tables::VfioChoice;
use crate::txn::{self, Engine};
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::modalias;
use crate::types::name::ModuleName;
use crate::types::state::DeviceState;
use crate::Context;

impl Context {
    /// The transaction engine's view of this context: the tree, the tables, the loader, the
    /// locks and the log, and how long a forced move waits for a VMM.
    pub(crate) fn engine(&self) -> Engine<'_> {
        Engine {
            sysfs: &self.sysfs,
            tables: &self.tables,
            log: &self.log,
            modprobe: &self.modprobe,
            modprobe_timeout: self.modprobe_timeout,
            locks: &self.locks,
            lock_dir: &self.lock_dir,
            vmm_wait: txn::vmm_wait(self.lock_timeout),
        }
    }

    /// The classifier of drivers on this context's tree and tables.
    pub(crate) fn classifier(&self) -> Classifier<'_> {
        Classifier {
            sysfs: &self.sysfs,
            tables: &self.tables,
            log: &self.log,
        }
    }

    /// The safety checks' view of this context: the classifier's, with the roots of `/proc`
    /// and `/dev` that the in-use checks read.
    pub(crate) fn safety(&self) -> Safety<'_> {
        Safety {
            sysfs: &self.sysfs,
            tables: &self.tables,
            log: &self.log,
            proc_root: &self.proc_root,
            dev_root: &self.dev_root,
        }
    }

    /// Where the device at `address` is now ([`Engine::state`]).
    pub(crate) fn state(&self, address: &PciAddress) -> Result<DeviceState> {
        self.engine().state(address)
    }

    pub(crate) fn vfio_variant_for(
        &self,
        address: &PciAddress,
        modalias: &modalias::Modalias,
    ) -> ModuleName {
        self.tables.best_vfio_module(address, modalias, &self.log)
    }

    /// `vfio_variant_for`, with what the choice rests on (for a plan to say).
    pub(crate) fn vfio_choice_for(
        &self,
        address: &PciAddress,
        modalias: &modalias::Modalias,
    ) -> VfioChoice {
        self.tables.vfio_choice(address, modalias, &self.log)
    }
}
