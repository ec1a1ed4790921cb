//! The only code that touches the file system under the sysfs root.
//!
//! Every path is built from the root and validated components (`PciAddress`, `DriverName`,
//! `ModuleName`), none of which can hold `/` or `..`; every open resolves beneath the root
//! (`beneath.rs`), so neither a path built here nor a link in a hostile tree leads outside it.
//! Names read back from the tree (directory entries, link targets) are validated before use,
//! and reads are bounded.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::os::beneath::{Beneath, EntryKind};

use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::modalias::Modalias;
use crate::types::name::{DriverName, ModuleName};

#[derive(Debug)]
pub struct Sysfs {
    root: PathBuf,
    tree: Beneath,
}

impl Sysfs {
    /// Opens the tree at `root`, which must be a directory.
    pub fn new(root: PathBuf) -> Result<Sysfs> {
        let tree =
            Beneath::new(&root).map_err(|e| Error::io("opening the sysfs root", &root, e))?;
        Ok(Sysfs { root, tree })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn drivers_dir(&self) -> PathBuf {
        self.root.join("bus/pci/drivers")
    }

    pub fn driver_dir(&self, driver: &DriverName) -> PathBuf {
        self.drivers_dir().join(driver.as_str())
    }

    pub fn module_dir(&self, module: &ModuleName) -> PathBuf {
        self.root.join("module").join(module.as_str())
    }

    pub fn device_dir(&self, address: &PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(address.to_string())
    }

    /// True when `bus/pci/drivers/DRIVER` is a directory, i.e. the PCI driver is registered.
    pub fn driver_exists(&self, driver: &DriverName) -> bool {
        self.tree.is_dir(&self.driver_dir(driver))
    }

    pub fn module_exists(&self, module: &ModuleName) -> bool {
        self.tree.is_dir(&self.module_dir(module))
    }

    /// Every PCI device (`bus/pci/devices/`), in address order.
    pub fn devices(&self) -> Result<Vec<PciAddress>> {
        let dir = self.root.join("bus/pci/devices");
        let mut out: Vec<PciAddress> = self
            .list_dir(&dir, "listing PCI devices")?
            .iter()
            .filter_map(|n| PciAddress::parse(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Registered PCI drivers, in name order. Entries that are not valid names are skipped.
    pub fn drivers(&self) -> Result<Vec<DriverName>> {
        let dir = self.drivers_dir();
        let mut out = Vec::new();
        for name in self.list_dir(&dir, "listing PCI drivers")? {
            if let Ok(driver) = DriverName::new(&name) {
                if self.tree.is_dir(&dir.join(&name)) {
                    out.push(driver);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// PCI drivers a module registers (`module/MOD/drivers/pci:DRV`), in name order.
    /// A module without a `drivers/` directory (typical of built-ins) registers none we can see.
    pub fn module_pci_drivers(&self, module: &ModuleName) -> Result<Vec<DriverName>> {
        let dir = self.module_dir(module).join("drivers");
        let names = self
            .list_dir(&dir, "listing a module's drivers")
            .absent_means(Vec::new())?;
        let mut out: Vec<DriverName> = names
            .iter()
            .filter_map(|n| n.strip_prefix("pci:"))
            .filter_map(|n| DriverName::new(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The module's `initstate` (`live`, `coming` while its init runs, `going`), trimmed;
    /// `None` when the module has no such file: it is built in (or gone).
    pub fn module_initstate(&self, module: &ModuleName) -> Result<Option<String>> {
        let path = self.module_dir(module).join("initstate");
        Ok(self
            .read_small(&path, "reading a module's initstate")
            .map(Some)
            .absent_means(None)?
            .map(|state| state.trim().to_owned()))
    }

    /// The module a driver belongs to, from its `module` link (absent for built-in drivers).
    pub fn driver_module(&self, driver: &DriverName) -> Result<Option<ModuleName>> {
        let link = self.driver_dir(driver).join("module");
        Ok(self
            .link_basename(&link, "reading a driver's module link")?
            .and_then(|n| ModuleName::new(&n).ok()))
    }

    /// Fails with `NoDevice` unless `bus/pci/devices/ADDRESS` exists.
    pub fn require_device(&self, address: &PciAddress) -> Result<PathBuf> {
        let dir = self.device_dir(address);
        match self.tree.open(&dir, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(_) => Ok(dir),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Err(Error::NoDevice {
                    address: *address,
                    path: dir,
                })
            }
            Err(e) => Err(Error::io("looking up the device", dir, e)),
        }
    }

    /// The driver a device is bound to, from its `driver` link; `None` when unbound.
    pub fn device_driver(&self, address: &PciAddress) -> Result<Option<DriverName>> {
        let link = self.device_dir(address).join("driver");
        match self.link_basename(&link, "reading the device's driver link")? {
            None => {
                // No link: unbound, or no such device at all.
                self.require_device(address)?;
                Ok(None)
            }
            Some(name) => DriverName::new(&name).map(Some).map_err(|_| {
                Error::io(
                    "reading the device's driver link",
                    link,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("link names an invalid driver {name:?}"),
                    ),
                )
            }),
        }
    }
}

/// Largest sysfs attribute read; the kernel's are at most a page.
const MAX_ATTR: usize = 4096;

impl Sysfs {
    /// The content of the device attribute `name` (at most a page).
    pub fn device_attr(&self, address: &PciAddress, name: &'static str) -> Result<String> {
        let path = self.device_dir(address).join(name);
        match self.read_small(&path, "reading a device attribute") {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // Tell a missing device from a missing attribute.
                self.require_device(address)?;
                Err(Error::io("reading a device attribute", &path, source))
            }
            other => other,
        }
    }

    /// A small file under the root (at most a page), as UTF-8.
    pub(crate) fn read_small(&self, path: &Path, step: &'static str) -> Result<String> {
        let bytes = self
            .tree
            .read(path, MAX_ATTR)
            .map_err(|e| Error::io(step, path, e))?;
        if bytes.len() > MAX_ATTR {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                detail: format!("longer than {MAX_ATTR} bytes"),
            });
        }
        String::from_utf8(bytes).map_err(|_| Error::Malformed {
            path: path.to_path_buf(),
            detail: "not UTF-8".into(),
        })
    }

    /// The device's validated `modalias`.
    pub fn modalias(&self, address: &PciAddress) -> Result<Modalias> {
        let content = self.device_attr(address, "modalias")?;
        Modalias::parse(&content).map_err(|detail| Error::Malformed {
            path: self.device_dir(address).join("modalias"),
            detail,
        })
    }
}

/// The driver_override value that names no driver: what `unbind` leaves so nothing grabs the
/// device on a later probe.
pub const NO_DRIVER_OVERRIDE: &str = "none";

impl Sysfs {
    /// The device's `driver_override`: `None` when unset (the kernel shows `(null)`, some
    /// kernels an empty line).
    pub fn driver_override(&self, address: &PciAddress) -> Result<Option<String>> {
        let content = self.device_attr(address, "driver_override")?;
        let value = content.strip_suffix('\n').unwrap_or(&content);
        Ok(match value {
            "" | "(null)" => None,
            v => Some(v.to_owned()),
        })
    }

    /// Writes `value` to a kernel file in one write, opened beneath the root like every read.
    fn write_kernel_file(&self, path: PathBuf, value: &[u8], step: &'static str) -> Result<()> {
        self.tree
            .write(&path, value)
            .map_err(|e| Error::io(step, &path, e))
    }

    /// Sets (`Some`) or clears (`None`, written as `"\n"`) the device's `driver_override`.
    pub fn set_driver_override(&self, address: &PciAddress, value: Option<&str>) -> Result<()> {
        let path = self.device_dir(address).join("driver_override");
        let bytes = value.map_or(&b"\n"[..], str::as_bytes);
        self.write_kernel_file(path, bytes, "writing driver_override")
    }

    pub fn unbind(&self, driver: &DriverName, address: &PciAddress) -> Result<()> {
        let path = self.driver_dir(driver).join("unbind");
        self.write_kernel_file(path, address.to_string().as_bytes(), "unbinding")
    }

    /// Unbinds from `driver`, waiting at most `limit` for the kernel (`Duration::MAX`: as long
    /// as it takes): true when done, false when the write still waits (a VFIO driver waits for
    /// the process holding the device, a VMM, to let go, forever if its guest does not answer).
    /// The file is opened beneath the root here; the write is made by a child process, which
    /// holds nothing of ours but that file and `keep` (the device's lock file, whose lock it so
    /// keeps taken until the kernel answers): a thread waiting in the kernel would keep this
    /// process from exiting, a child does not. A child still waiting is reaped by a thread of
    /// ours once it ends (or by init once we are gone).
    pub fn unbind_within(
        &self,
        driver: &DriverName,
        address: &PciAddress,
        limit: Duration,
        keep: &[&File],
    ) -> Result<bool> {
        let path = self.driver_dir(driver).join("unbind");
        self.write_within(path, address.to_string(), limit, keep, "unbinding")
    }

    /// Sets the PF's VF count as [`Sysfs::set_sriov_numvfs`] does, waiting at most `limit` as
    /// [`Sysfs::unbind_within`] does: removing a VF that a VMM holds waits for it to let go.
    pub fn set_sriov_numvfs_within(
        &self,
        address: &PciAddress,
        numvfs: u32,
        limit: Duration,
        keep: &[&File],
    ) -> Result<bool> {
        let path = self.device_dir(address).join("sriov_numvfs");
        self.write_within(
            path,
            numvfs.to_string(),
            limit,
            keep,
            "writing sriov_numvfs",
        )
    }

    /// One write of `value` to the kernel file `path`, made by a child process that keeps the
    /// files `keep` (locks) open until the kernel answers; true when it answered within
    /// `limit`.
    fn write_within(
        &self,
        path: PathBuf,
        value: String,
        limit: Duration,
        keep: &[&File],
        step: &'static str,
    ) -> Result<bool> {
        let file = self
            .tree
            .open(&path, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .map_err(|e| Error::io(step, &path, e))?;
        let fd = file.as_raw_fd();
        // The child's answer comes through a pipe, not its exit status: a tool wrapping the
        // process (valgrind's --error-exitcode) may rewrite that, and a caller that reaps
        // every child (a SIGCHLD handler, SIG_IGN) may take it first.
        let mut pipe = [-1 as RawFd; 2];
        // SAFETY: pipe2 fills the two descriptors.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::io(step, &path, io::Error::last_os_error()));
        }
        // SAFETY: descriptors just made, owned by nothing else.
        let (answer, tell) =
            unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
        // What the child keeps, in order (the child only reads it).
        let mut kept: Vec<RawFd> = keep.iter().map(|f| f.as_raw_fd()).collect();
        kept.push(fd);
        kept.push(tell.as_raw_fd());
        kept.sort_unstable();
        kept.dedup();
        // SAFETY: fork; the child makes async-signal-safe system calls only (close_range or
        // getrlimit and close, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io(step, &path, io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: in the child, see above.
            unsafe { write_child(fd, tell.as_raw_fd(), &kept, value.as_bytes()) }
        }
        drop(file);
        drop(tell);
        let reap = move || {
            let mut status = 0;
            // SAFETY: waitpid on our own child (ECHILD when someone else reaped it).
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        };
        let timeout_ms: libc::c_int = if limit == Duration::MAX {
            -1
        } else {
            limit.as_millis().min(libc::c_int::MAX as u128) as libc::c_int
        };
        let started = Instant::now();
        loop {
            let mut pfd = libc::pollfd {
                fd: answer.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let left = if timeout_ms < 0 {
                -1
            } else {
                (timeout_ms as u128).saturating_sub(started.elapsed().as_millis()) as libc::c_int
            };
            // SAFETY: poll on one descriptor we own.
            let n = unsafe { libc::poll(&mut pfd, 1, left) };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n == 0 {
                // Still waiting in the kernel: reaped once it ends (the thread ends with it, or
                // with the process).
                let _ = thread::Builder::new()
                    .name("pcibind-write-reaper".into())
                    .spawn(reap);
                return Ok(false);
            }
            break;
        }
        let mut code = [0u8; 4];
        // SAFETY: read into a buffer we own; the pipe is ready (or at end: the child died).
        let got = unsafe { libc::read(answer.as_raw_fd(), code.as_mut_ptr().cast(), 4) };
        reap();
        match (got, i32::from_ne_bytes(code)) {
            (4, 0) => Ok(true),
            (4, errno) => Err(Error::io(step, &path, io::Error::from_raw_os_error(errno))),
            _ => Err(Error::io(
                "the process writing it ended without an answer",
                &path,
                io::Error::from_raw_os_error(libc::EINTR),
            )),
        }
    }

    /// Asks the kernel to probe drivers for an unbound device. The kernel reports success even
    /// when no driver took the device: callers must look at the `driver` link afterwards.
    pub fn probe(&self, address: &PciAddress) -> Result<()> {
        let path = self.root.join("bus/pci/drivers_probe");
        self.write_kernel_file(path, address.to_string().as_bytes(), "probing drivers")
    }

    /// True when the device has `vfio-dev/` (bound to a VFIO driver, kernel 6.1 or later).
    pub fn has_vfio_dev(&self, address: &PciAddress) -> bool {
        self.tree.is_dir(&self.device_dir(address).join("vfio-dev"))
    }

    /// The entries of the device's `vfio-dev/` (`vfio0`: its VFIO character device's name), in
    /// name order; empty when it has none.
    pub fn vfio_dev_names(&self, address: &PciAddress) -> Result<Vec<String>> {
        let dir = self.device_dir(address).join("vfio-dev");
        let mut names = self
            .list_dir(&dir, "listing the device's vfio-dev")
            .absent_means(Vec::new())?;
        names.retain(|n| {
            n.strip_prefix("vfio")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        });
        names.sort();
        Ok(names)
    }

    /// The PCI devices that consume this one through device links (`consumer:pci:BDF` entries
    /// of its directory: a GPU names its HDMI audio function so), in address order.
    pub fn pci_consumers(&self, address: &PciAddress) -> Result<Vec<PciAddress>> {
        let dir = self.require_device(address)?;
        let mut out: Vec<PciAddress> = self
            .list_dir(&dir, "listing the device's links")?
            .iter()
            .filter_map(|n| n.strip_prefix("consumer:pci:"))
            .filter_map(|n| PciAddress::parse(n).ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The device's IOMMU group number; `None` when it has none (no IOMMU).
    pub fn iommu_group(&self, address: &PciAddress) -> Result<Option<u32>> {
        let link = self.require_device(address)?.join("iommu_group");
        match self.link_basename(&link, "reading the device's iommu_group link")? {
            None => Ok(None),
            Some(name) => name.parse().map(Some).map_err(|_| Error::Malformed {
                path: link,
                detail: format!("names group {name:?}, not a number"),
            }),
        }
    }

    /// The members of IOMMU group `group`, in address order.
    pub fn iommu_group_devices(&self, group: u32) -> Result<Vec<PciAddress>> {
        let dir = self
            .root
            .join("kernel/iommu_groups")
            .join(group.to_string())
            .join("devices");
        let mut out: Vec<PciAddress> = self
            .list_dir(&dir, "listing an IOMMU group")?
            .iter()
            .filter_map(|n| PciAddress::parse(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The number of enabled SR-IOV virtual functions (0 for a device that is no PF).
    pub fn sriov_numvfs(&self, address: &PciAddress) -> Result<u32> {
        Ok(self.sriov_count(address, "sriov_numvfs")?.unwrap_or(0))
    }

    /// The PF's `sriov_totalvfs`; `None` when the device has none (no SR-IOV, or a VF).
    pub fn sriov_totalvfs(&self, address: &PciAddress) -> Result<Option<u32>> {
        self.sriov_count(address, "sriov_totalvfs")
    }

    /// A count attribute of an SR-IOV PF; `None` when the device has none.
    fn sriov_count(&self, address: &PciAddress, name: &'static str) -> Result<Option<u32>> {
        let Some(text) = self
            .device_attr(address, name)
            .map(Some)
            .absent_means(None)?
        else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| Error::Malformed {
            path: self.device_dir(address).join(name),
            detail: format!("{:?} is not a number", text.trim()),
        })
    }

    /// Writes the PF's `sriov_numvfs` (the kernel creates or removes the VFs before answering).
    pub fn set_sriov_numvfs(&self, address: &PciAddress, numvfs: u32) -> Result<()> {
        let path = self.device_dir(address).join("sriov_numvfs");
        self.write_kernel_file(path, numvfs.to_string().as_bytes(), "writing sriov_numvfs")
    }

    /// The PF's `sriov_drivers_autoprobe`: whether drivers may probe its VFs (at every probe of
    /// a VF that has no `driver_override`).
    pub fn sriov_drivers_autoprobe(&self, address: &PciAddress) -> Result<bool> {
        let text = self.device_attr(address, "sriov_drivers_autoprobe")?;
        match text.trim() {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(Error::Malformed {
                path: self.device_dir(address).join("sriov_drivers_autoprobe"),
                detail: format!("{other:?} is not 0 or 1"),
            }),
        }
    }

    pub fn set_sriov_drivers_autoprobe(&self, address: &PciAddress, on: bool) -> Result<()> {
        let path = self.device_dir(address).join("sriov_drivers_autoprobe");
        let value: &[u8] = if on { b"1" } else { b"0" };
        self.write_kernel_file(path, value, "writing sriov_drivers_autoprobe")
    }

    /// The PF's VFs, from its `virtfnN` links, in N order. Links whose target is no PCI
    /// address are skipped.
    pub fn sriov_virtfns(&self, address: &PciAddress) -> Result<Vec<PciAddress>> {
        let dir = self.require_device(address)?;
        let mut links: Vec<(u32, String)> = self
            .list_dir(&dir, "listing the PF's virtfn links")?
            .into_iter()
            .filter_map(|n| {
                let index = n.strip_prefix("virtfn")?;
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((index.parse().ok()?, n))
            })
            .collect();
        links.sort();
        let mut out = Vec::with_capacity(links.len());
        for (_, name) in links {
            if let Some(target) = self.link_basename(&dir.join(&name), "reading a virtfn link")? {
                if let Ok(vf) = PciAddress::parse(&target) {
                    out.push(vf);
                }
            }
        }
        Ok(out)
    }

    /// The UTF-8 names in a directory (others cannot be valid names and are skipped).
    pub(crate) fn list_dir(&self, dir: &Path, step: &'static str) -> Result<Vec<String>> {
        let entries = self
            .tree
            .read_dir(dir)
            .map_err(|e| Error::io(step, dir, e))?;
        Ok(entries
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect())
    }

    /// The last component of a symlink's target, or `None` when the link does not exist. A
    /// target whose last component is not UTF-8 is an error, not an absent link.
    pub(crate) fn link_basename(&self, link: &Path, step: &'static str) -> Result<Option<String>> {
        match self.tree.read_link(link) {
            Ok(None) => Ok(None),
            Ok(Some(target)) => match target.file_name().map(|n| n.to_str()) {
                Some(Some(name)) => Ok(Some(name.to_owned())),
                _ => Err(Error::Malformed {
                    path: link.to_path_buf(),
                    detail: format!("link target {target:?} has no usable last component"),
                }),
            },
            Err(e) => Err(Error::io(step, link, e)),
        }
    }
}

/// Reads of any path under the root, for the in-use checks (`policy/inuse/`), which know the
/// shapes of what lies below a device: each resolved beneath the root like every other read,
/// and none of them writes.
impl Sysfs {
    /// True when `path` is a directory under the root.
    pub(crate) fn is_dir(&self, path: &Path) -> bool {
        self.tree.is_dir(path)
    }

    /// The entries of the directory at `path`, with their kinds.
    pub(crate) fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
        self.tree.read_dir(path)
    }

    /// The target of the link at `path`; `None` when there is no link there.
    pub(crate) fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        self.tree.read_link(path)
    }

    /// Device and inode of what `path` leads to, to tell one directory reached two ways.
    pub(crate) fn identity(&self, path: &Path) -> io::Result<(u64, u64)> {
        self.tree.identity(path)
    }
}

/// What a network interface's `device` link leads to (`Sysfs::net_interface_device`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceDevice {
    NoInterface,
    /// An interface with no `device` link.
    Virtual,
    /// `name` is the device's directory name; `bus` what its `subsystem` link names.
    Device {
        name: String,
        bus: Option<String>,
    },
}

/// `IFNAMSIZ`: interface names are shorter.
const IFNAMSIZ: usize = 16;

/// True for a name the kernel accepts for a network interface (`dev_valid_name`), which is
/// then also a safe path component.
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

/// "Absent means empty": a read of a file or directory that is not there (`ENOENT`) gives
/// `empty` (no VFs, no drivers, no interfaces); any other error stays an error, since could
/// not read is not "nothing there".
pub(crate) trait AbsentMeans<T> {
    fn absent_means(self, empty: T) -> Result<T>;
}

impl<T> AbsentMeans<T> for Result<T> {
    fn absent_means(self, empty: T) -> Result<T> {
        match self {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(empty),
            other => other,
        }
    }
}

impl Sysfs {
    /// The names of every network interface (`class/net/`), in name order; names the kernel
    /// would not give an interface are skipped.
    pub fn net_interface_names(&self) -> Result<Vec<String>> {
        let dir = self.root.join("class/net");
        let mut names = self
            .list_dir(&dir, "listing network interfaces")
            .absent_means(Vec::new())?;
        names.retain(|n| valid_ifname(n));
        names.sort();
        Ok(names)
    }

    /// Where network interface `name`'s `device` link leads: the device's name and the bus
    /// its `subsystem` link names. `Ok(None)` when the interface exists without a `device`
    /// link (a virtual one: bridge, bond, VLAN, loopback); `NoInterface` when there is none.
    pub fn net_interface_device(&self, name: &str) -> Result<InterfaceDevice> {
        let dir = self.root.join("class/net").join(name);
        if !valid_ifname(name) || !self.tree.is_dir(&dir) {
            return Ok(InterfaceDevice::NoInterface);
        }
        let link = dir.join("device");
        let Some(device) = self.link_basename(&link, "reading an interface's device link")? else {
            return Ok(InterfaceDevice::Virtual);
        };
        let bus = self.link_basename(&link.join("subsystem"), "reading a device's bus")?;
        Ok(InterfaceDevice::Device { name: device, bus })
    }

    /// The PCI device that `child` (a device directory's name, such as `virtio0`) sits
    /// directly below, if any.
    pub fn pci_parent_of(&self, child: &str) -> Result<Option<PciAddress>> {
        if !valid_ifname(child) {
            return Ok(None);
        }
        Ok(self
            .devices()?
            .into_iter()
            .find(|a| self.tree.is_dir(&self.device_dir(a).join(child))))
    }
}

/// The child of [`Sysfs::write_within`]: closes every descriptor but those in `keep` (in
/// order: the kernel file `fd`, the pipe `tell` and the lock files), writes `value` to `fd` in
/// one write, tells the errno (0: done) through `tell`, and exits.
///
/// # Safety
/// Only in a child just forked: async-signal-safe system calls only, no allocation.
unsafe fn write_child(fd: RawFd, tell: RawFd, keep: &[RawFd], value: &[u8]) -> ! {
    // SAFETY: plain system calls on descriptors and on memory prepared before the fork.
    unsafe {
        // close_range (5.9); else one by one, up to the soft limit (at most 2^20).
        let close_gap = |from: RawFd, to: RawFd| {
            if from > to {
                return;
            }
            if libc::syscall(
                libc::SYS_close_range,
                from as libc::c_uint,
                to as libc::c_uint,
                0,
            ) == 0
            {
                return;
            }
            let mut limit: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(1 << 20) as RawFd
            } else {
                65536
            };
            let mut n = from;
            while n <= to && n < max {
                libc::close(n);
                n += 1;
            }
        };
        let mut from = 0;
        for &k in keep {
            close_gap(from, k - 1);
            from = k + 1;
        }
        close_gap(from, RawFd::MAX);
        let written = libc::write(fd, value.as_ptr().cast(), value.len());
        let code: i32 = if written == value.len() as isize {
            0
        } else if written < 0 {
            *libc::__errno_location()
        } else {
            libc::EIO
        };
        let bytes = code.to_ne_bytes();
        libc::write(tell, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}
