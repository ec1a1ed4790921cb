//! The operating system: the only code that reads or writes files, opens devices, runs
//! programs or talks to the kernel. `beneath` resolves every path inside the sysfs root;
//! `sysfs` is the kernel's PCI tree (reads, and each write a transaction step makes); `blockdev`
//! asks the block layer whether a disk is held (`O_EXCL`); `netlink` asks for addresses and
//! routes; `holders` reads which processes hold VFIO nodes; `modprobe` runs the module loader;
//! `lock` and `record` are the per-device lock files and the transaction record kept in them.

pub(crate) mod beneath;
pub(crate) mod blockdev;
pub(crate) mod dirstream;
pub(crate) mod files;
pub(crate) mod holders;
pub(crate) mod lock;
pub(crate) mod modprobe;
pub(crate) mod netlink;
pub(crate) mod procfs;
pub(crate) mod record;
pub(crate) mod sysfs;
