//! libpcibind: move Linux PCI devices between kernel drivers for device assignment.
//!
//! The Rust API is [`Context`]; the C API (`src/ffi/`) is a thin layer over it. Data flows one
//! way: C API -> core (resolution, ...) -> `sysfs`, the only module that touches the file system.
//!
//! The C API's functions take raw pointers: they are `unsafe extern "C"` in a private module,
//! so safe Rust cannot reach them.
//!
//! ```compile_fail
//! let _ = pcibind::ffi::pcibind_version;
//! ```
//!
//! The parsers the fuzz targets drive are public only with the `internals` feature.
//!
//! ```compile_fail
//! let _ = pcibind::internals::Modalias::parse("pci:v0d0sv0sd0bc0sc0i0");
//! ```

mod context;
mod ffi;
mod ops;
mod os;
mod policy;
mod tables;
mod txn;
mod types;

/// IOMMU groups: a device's members, what each member's driver means for assigning the group,
/// and whether the group is viable (SPEC 3.4).
pub mod group {
    pub use crate::policy::group::{viability, GroupMember, MemberClass};
}

pub use context::{Context, DEFAULT_LOCK_DIR};
pub use ops::bind::{BindOptions, BindOutcome, Plan};
pub use ops::device::{class_name, DeviceInfo};
pub use ops::group::GroupOutcome;
pub use ops::recover::Interrupted;
pub use ops::sriov::SriovOptions;
pub use os::holders::Holder;
pub use os::lock::DEFAULT_LOCK_TIMEOUT;
pub use os::modprobe::{Modprobe, ModuleLoader, Refusal, DEFAULT_MODPROBE_TIMEOUT};
pub use os::sysfs::NO_DRIVER_OVERRIDE;
pub use policy::group::{GroupMember, MemberClass};
pub use policy::inuse::{InUse, InUseKinds};
pub use types::address::PciAddress;
pub use types::error::{Check, Error, Result};
pub use types::log::{Logger, Priority, Sink};
pub use types::name::{DriverName, ModuleName};

/// The parsers and matchers that the fuzz targets and benchmarks drive directly (feature
/// `internals`); not part of the stable API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::tables::{
        wildcard_count, AliasIndex, HostAliases, ModuleTables, Side, VFIO_PREFIX,
    };
    pub use crate::types::modalias::Modalias;
}
