//! The only code that touches the file system under the sysfs root.
//!
//! Every path is built from the root and validated components (`PciAddress`, `DriverName`,
//! `ModuleName`), none of which can hold `/` or `..`; every open resolves beneath the root
//! (`beneath.rs`), so neither a path built here nor a link in a hostile tree leads outside it.
//! Names read back from the tree (directory entries, link targets) are validated before use,
//! and reads are bounded.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::beneath::{Beneath, EntryKind};

use crate::address::PciAddress;
use crate::error::{Error, Result};
use crate::modalias::Modalias;
use crate::name::{DriverName, ModuleName};

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
        let names = match self.list_dir(&dir, "listing a module's drivers") {
            Ok(names) => names,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
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
        match self.read_small(&path, "reading a module's initstate") {
            Ok(state) => Ok(Some(state.trim().to_owned())),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
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
    fn read_small(&self, path: &Path, step: &'static str) -> Result<String> {
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
        let mut names = match self.list_dir(&dir, "listing the device's vfio-dev") {
            Ok(names) => names,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
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
        match self.device_attr(address, "sriov_numvfs") {
            Ok(text) => text.trim().parse().map_err(|_| Error::Malformed {
                path: self.device_dir(address).join("sriov_numvfs"),
                detail: format!("{:?} is not a number", text.trim()),
            }),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The PF's `sriov_totalvfs`; `None` when the device has none (no SR-IOV, or a VF).
    pub fn sriov_totalvfs(&self, address: &PciAddress) -> Result<Option<u32>> {
        match self.device_attr(address, "sriov_totalvfs") {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| Error::Malformed {
                path: self.device_dir(address).join("sriov_totalvfs"),
                detail: format!("{:?} is not a number", text.trim()),
            }),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
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
    fn list_dir(&self, dir: &Path, step: &'static str) -> Result<Vec<String>> {
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
    fn link_basename(&self, link: &Path, step: &'static str) -> Result<Option<String>> {
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

/// A block device (a disk or a partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    pub name: String,
    /// `MAJOR:MINOR`, as in its `dev` attribute; empty when it has none.
    pub dev: String,
    /// Entries of its `holders/` (device-mapper, md, bcache, ... stacked on it).
    pub holders: Vec<String>,
    /// A disk nobody can open: an NVMe native-multipath per-path disk (`nvmeXcYnZ`), whose
    /// `hidden` attribute reads 1 (kernels that give hidden disks no device number show no
    /// `dev` instead). The usable disk of the namespace hangs under the `nvme-subsystem`
    /// device.
    pub hidden: bool,
    /// The `DEVNAME` of its `uevent`: the name of its node below the dev root, as devtmpfs
    /// makes it (`nvme0n1p2`); `None` when it has none or it is no safe relative path.
    pub devname: Option<String>,
    /// The disk this one is a partition of (the block device whose directory holds it).
    pub whole: Option<String>,
    /// What could not be read about it, each as "its holders/ (PATH: ERROR)": the in-use
    /// check refuses what it could not look at.
    pub unread: Vec<String>,
}

/// What a network interface is, as far as a reason needs to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// Has `bridge/`.
    Bridge,
    /// Has `bonding/`.
    Bond,
    /// Anything else (team, Open vSwitch, VLAN, macvlan, a plain NIC, ...).
    Other,
}

/// A link from a network interface to one directly above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpperLink {
    pub name: String,
    /// Named by the `master` link (a bridge, bond, team or Open vSwitch port), not only by
    /// an `upper_*` link (VLAN, macvlan).
    pub is_master: bool,
}

/// A network interface and the interfaces directly above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInterface {
    pub name: String,
    /// Its `flags` (IFF_UP is bit 0); 0 when unreadable (then `unread` says so).
    pub flags: u32,
    pub kind: NetKind,
    /// Its `master` and the targets of its `upper_*` links, master first, each once.
    pub uppers: Vec<UpperLink>,
    /// What could not be read about it ("its flags (PATH: ERROR)").
    pub unread: Vec<String>,
}

/// An NVMe controller (`nvme/nvmeN` below its PCI function) and its namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeController {
    pub name: String,
    /// Its `state` reads `live`: a live path to its namespaces.
    pub live: bool,
    /// The `nsid` of every disk directly below it: under native multipath, the namespaces it is
    /// a path to.
    pub path_nsids: Vec<u32>,
    /// Device and inode of its directory, so that one reached through the subsystem's link is
    /// recognised as the one found below the PCI function.
    identity: (u64, u64),
}

impl NvmeController {
    /// True when both are the same controller, however each was reached.
    pub fn is(&self, other: &NvmeController) -> bool {
        self.identity == other.identity
    }
}

/// A namespace's usable disk under native multipath, with its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeNamespace {
    /// Its `nsid`; `None` when unreadable.
    pub nsid: Option<u32>,
    pub disk: BlockDevice,
    pub partitions: Vec<BlockDevice>,
}

/// An NVMe subsystem (`class/nvme-subsystem/nvme-subsysN`): its controllers (the links in its
/// directory) and the multipath disks of its namespaces (the disks below it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeSubsystem {
    pub name: String,
    pub controllers: Vec<NvmeController>,
    pub namespaces: Vec<NvmeNamespace>,
}

/// A mounted btrfs file system (`fs/btrfs/UUID`, which exists while it is mounted) and the
/// names of its member block devices (`devices/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtrfsFilesystem {
    pub uuid: String,
    pub members: Vec<String>,
}

/// What lies below a PCI device in the device tree, as far as the in-use checks need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSubtree {
    /// Interfaces in a `net/` directory anywhere below (virtio-net: `BDF/virtioN/net/IF`).
    pub interfaces: Vec<NetInterface>,
    /// Disks and partitions anywhere below, hidden ones included.
    pub disks: Vec<BlockDevice>,
    /// Framebuffers (`graphics/fbN`) anywhere below.
    pub framebuffers: Vec<String>,
    /// NVMe controllers (`nvme/nvmeN`) anywhere below.
    pub nvme_controllers: Vec<NvmeController>,
    /// Mediated devices made on it: the entries of `mdev_supported_types/TYPE/devices/`
    /// (links to the mdev devices, named by UUID), in name order.
    pub mdevs: Vec<String>,
    /// Directories below that could not be looked at ("PATH (ERROR)"): what lies there is
    /// unknown, so the in-use check refuses.
    pub unread: Vec<String>,
}

/// How deep below a PCI device the walk goes: USB storage behind a controller is
/// `BDF/usb1/1-1/1-1.2/1-1.2:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1`, deeper behind
/// more hubs.
const MAX_SUBTREE_DEPTH: usize = 16;

/// How many directories below a PCI device the walk visits before giving up (with an error:
/// an in-use check that has not looked everywhere must not say "not in use").
const MAX_SUBTREE_DIRS: usize = 100_000;

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

/// True for an OS error that says the entry is not there (any more): `ENOENT`, `ENOTDIR` (a
/// file where a directory was), `ENODEV` (kernfs's answer for an attribute of a removed
/// device).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENODEV)
    )
}

/// What an error says could not be read, for an `unread` list: "PATH: ERROR".
fn unread_detail(e: &Error) -> String {
    match e {
        Error::Io { path, source, .. } => format!("{}: {source}", path.display()),
        e => e.to_string(),
    }
}

/// True for an error that says there is no such entry (or a file where a directory would be).
fn not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ENOTDIR))
}

impl Sysfs {
    /// Walks the device's subtree once (directories only, never through a link, at most
    /// `MAX_SUBTREE_DEPTH` deep) and collects its interfaces, disks, framebuffers and NVMe
    /// controllers. Children of a class directory are recognised by its name, as the kernel
    /// names them (`net`, `graphics`, `nvme`); disks by their `subsystem` link.
    ///
    /// The device itself missing is [`Error::NoDevice`]. Something below that went away while
    /// it was walked is skipped (the caller checks that the device is still there at the
    /// end); a directory or attribute that cannot be read is listed in `unread`, never taken
    /// for "nothing there".
    pub fn device_subtree(&self, address: &PciAddress) -> Result<DeviceSubtree> {
        let top = self.device_dir(address);
        let mut out = DeviceSubtree::default();
        let mut visited = 0usize;
        // Each directory with the block device whose directory holds it, if any.
        let mut stack = vec![(top.clone(), 0usize, None::<String>)];
        while let Some((dir, depth, block_parent)) = stack.pop() {
            let entries = match self.tree.read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if is_gone(&e) && depth == 0 => {
                    return Err(Error::NoDevice {
                        address: *address,
                        path: top,
                    })
                }
                // Something below went away while we looked (a device being removed).
                Err(e) if is_gone(&e) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    return Err(Error::io("walking the device's subtree", dir, e))
                }
                Err(e) => {
                    out.unread.push(format!("{} ({e})", dir.display()));
                    continue;
                }
            };
            let class = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // `BDF/mdev_supported_types/TYPE/devices/`: its entries are links, one per
            // mediated device of that type.
            let mdev_list = depth == 3
                && class == "devices"
                && dir
                    .parent()
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "mdev_supported_types");
            for (name, kind) in entries {
                if mdev_list {
                    out.mdevs.push(name.to_string_lossy().into_owned());
                    continue;
                }
                if kind != EntryKind::Dir {
                    continue;
                }
                visited += 1;
                if visited > MAX_SUBTREE_DIRS {
                    return Err(Error::Malformed {
                        path: top,
                        detail: format!("more than {MAX_SUBTREE_DIRS} directories below it"),
                    });
                }
                let path = dir.join(&name);
                let shown = name.to_string_lossy().into_owned();
                match class {
                    // Nothing the checks need lies below an interface or a framebuffer.
                    "net" => {
                        out.interfaces.push(self.read_interface(&path, shown));
                        continue;
                    }
                    "graphics" => {
                        out.framebuffers.push(shown);
                        continue;
                    }
                    "nvme" => match self.read_nvme_controller(&path, shown.clone()) {
                        Ok(Some(c)) => out.nvme_controllers.push(c),
                        Ok(None) => {}
                        Err(e) if not_found(&e) => continue,
                        Err(e @ Error::Escape { .. }) => return Err(e),
                        Err(e) => out.unread.push(unread_detail(&e)),
                    },
                    _ => {}
                }
                let mut parent_of_children = None;
                if self.is_block_device(&path) {
                    let mut disk = self.read_block_device(&path, shown.clone());
                    disk.whole = block_parent.clone();
                    out.disks.push(disk);
                    parent_of_children = Some(shown);
                }
                if depth + 1 < MAX_SUBTREE_DEPTH {
                    stack.push((path, depth + 1, parent_of_children));
                }
            }
        }
        out.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        out.disks.sort_by(|a, b| a.name.cmp(&b.name));
        out.framebuffers.sort();
        out.mdevs.sort();
        out.nvme_controllers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The names of every network interface (`class/net/`), in name order; names the kernel
    /// would not give an interface are skipped.
    pub fn net_interface_names(&self) -> Result<Vec<String>> {
        let dir = self.root.join("class/net");
        let mut names = match self.list_dir(&dir, "listing network interfaces") {
            Ok(names) => names,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        names.retain(|n| valid_ifname(n));
        names.sort();
        Ok(names)
    }

    /// The network interface `name` (`class/net/NAME`), or `None` when there is none.
    pub fn net_interface(&self, name: &str) -> Result<Option<NetInterface>> {
        if !valid_ifname(name) {
            return Ok(None);
        }
        let dir = self.root.join("class/net").join(name);
        if !self.tree.is_dir(&dir) {
            return Ok(None);
        }
        Ok(Some(self.read_interface(&dir, name.to_owned())))
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

    /// The interface whose directory is `dir`. What cannot be read (its flags, its links) is
    /// listed in `unread`, never taken for "down" or "nothing above".
    fn read_interface(&self, dir: &Path, name: String) -> NetInterface {
        let mut unread = Vec::new();
        let flags_path = dir.join("flags");
        let flags = match self.read_small(&flags_path, "reading an interface's flags") {
            Ok(t) => match u32::from_str_radix(t.trim().trim_start_matches("0x"), 16) {
                Ok(flags) => flags,
                Err(_) => {
                    unread.push(format!(
                        "its flags ({}: {:?})",
                        flags_path.display(),
                        t.trim()
                    ));
                    0
                }
            },
            Err(e) => {
                unread.push(format!("its flags ({})", unread_detail(&e)));
                0
            }
        };
        let kind = if self.tree.is_dir(&dir.join("bridge")) {
            NetKind::Bridge
        } else if self.tree.is_dir(&dir.join("bonding")) {
            NetKind::Bond
        } else {
            NetKind::Other
        };
        let mut uppers: Vec<UpperLink> = Vec::new();
        let mut links = match self.list_dir(dir, "listing an interface's links") {
            Ok(links) => links,
            Err(e) => {
                unread.push(format!("the interfaces above it ({})", unread_detail(&e)));
                Vec::new()
            }
        };
        // `master` first, so the relation shown is "a port of", not "below".
        links.sort_by_key(|l| l != "master");
        for link in links {
            let is_master = link == "master";
            if !is_master && !link.starts_with("upper_") {
                continue;
            }
            let Ok(Some(upper)) = self.link_basename(&dir.join(&link), "reading an upper link")
            else {
                continue;
            };
            if valid_ifname(&upper) && !uppers.iter().any(|u| u.name == upper) {
                uppers.push(UpperLink {
                    name: upper,
                    is_master,
                });
            }
        }
        NetInterface {
            name,
            flags,
            kind,
            uppers,
            unread,
        }
    }

    /// True when `dir` is a block device: its `subsystem` link names `block`.
    fn is_block_device(&self, dir: &Path) -> bool {
        self.tree
            .read_link(&dir.join("subsystem"))
            .ok()
            .flatten()
            .is_some_and(|t| t.file_name().is_some_and(|n| n == "block"))
    }

    /// The block device whose directory is `dir`. What cannot be read (its number, its
    /// `holders/`) is listed in `unread`.
    fn read_block_device(&self, dir: &Path, name: String) -> BlockDevice {
        let mut unread = Vec::new();
        // No `dev` at all: a hidden per-path disk of an older kernel.
        let dev = match self.read_small(&dir.join("dev"), "reading a block device's number") {
            Ok(t) => t.trim().to_owned(),
            Err(e) if not_found(&e) => String::new(),
            Err(e) => {
                unread.push(format!("its number ({})", unread_detail(&e)));
                String::new()
            }
        };
        let hidden = (dev.is_empty() && unread.is_empty())
            || self
                .read_small(&dir.join("hidden"), "reading a disk's hidden flag")
                .is_ok_and(|t| t.trim() == "1");
        let holders = match self.list_dir(&dir.join("holders"), "listing holders") {
            Ok(holders) => holders,
            Err(e) => {
                unread.push(format!("its holders/ ({})", unread_detail(&e)));
                Vec::new()
            }
        };
        BlockDevice {
            name,
            dev,
            holders,
            hidden,
            devname: self.read_devname(dir),
            whole: None,
            unread,
        }
    }

    /// `DEVNAME=` of the device's `uevent`, when it is a relative path of plain names (as
    /// devtmpfs names nodes: `nvme0n1`, `mapper/...` is not a disk's).
    fn read_devname(&self, dir: &Path) -> Option<String> {
        let uevent = self
            .read_small(&dir.join("uevent"), "reading a device's uevent")
            .ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        let safe = !name.is_empty()
            && !name.starts_with('/')
            && name
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        safe.then(|| name.to_owned())
    }

    /// The block devices directly below `dir`, in name order.
    fn child_block_devices(&self, dir: &Path) -> Vec<(PathBuf, BlockDevice)> {
        let mut out: Vec<(PathBuf, BlockDevice)> = self
            .tree
            .read_dir(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, kind)| *kind == EntryKind::Dir)
            .map(|(name, _)| dir.join(&name))
            .filter(|path| self.is_block_device(path))
            .map(|path| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let disk = self.read_block_device(&path, name);
                (path, disk)
            })
            .collect();
        out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        out
    }

    fn read_nsid(&self, disk: &Path) -> Option<u32> {
        self.read_small(&disk.join("nsid"), "reading a namespace id")
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// The controller at `dir` (reached directly or through a subsystem's link); `None` when
    /// it has no `state`, so is no NVMe controller.
    fn read_nvme_controller(&self, dir: &Path, name: String) -> Result<Option<NvmeController>> {
        let state = match self.read_small(&dir.join("state"), "reading a controller's state") {
            Ok(state) => state,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let identity = self
            .tree
            .identity(dir)
            .map_err(|e| Error::io("looking up an NVMe controller", dir, e))?;
        let path_nsids = self
            .child_block_devices(dir)
            .iter()
            .filter_map(|(path, _)| self.read_nsid(path))
            .collect();
        Ok(Some(NvmeController {
            name,
            live: state.trim() == "live",
            path_nsids,
            identity,
        }))
    }

    /// Every NVMe subsystem (`class/nvme-subsystem/`), with its controllers and the multipath
    /// disks of its namespaces; none when the class does not exist.
    pub fn nvme_subsystems(&self) -> Result<Vec<NvmeSubsystem>> {
        let class = self.root.join("class/nvme-subsystem");
        let names = match self.list_dir(&class, "listing NVMe subsystems") {
            Ok(names) => names,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for name in names {
            let dir = class.join(&name);
            let entries = match self.tree.read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("listing an NVMe subsystem", dir, e)),
            };
            let mut controllers = Vec::new();
            for (entry, kind) in entries {
                // The subsystem links each of its controllers by the controller's name.
                if kind != EntryKind::Link || entry == "subsystem" {
                    continue;
                }
                let shown = entry.to_string_lossy().into_owned();
                if let Some(c) = self.read_nvme_controller(&dir.join(&entry), shown)? {
                    controllers.push(c);
                }
            }
            controllers.sort_by(|a, b| a.name.cmp(&b.name));
            let namespaces = self
                .child_block_devices(&dir)
                .into_iter()
                .map(|(path, disk)| NvmeNamespace {
                    nsid: self.read_nsid(&path),
                    partitions: self
                        .child_block_devices(&path)
                        .into_iter()
                        .map(|(_, mut part)| {
                            part.whole = Some(disk.name.clone());
                            part
                        })
                        .collect(),
                    disk,
                })
                .collect();
            out.push(NvmeSubsystem {
                name,
                controllers,
                namespaces,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every mounted btrfs file system (`fs/btrfs/UUID/devices/`); none without btrfs.
    pub fn btrfs_filesystems(&self) -> Result<Vec<BtrfsFilesystem>> {
        let dir = self.root.join("fs/btrfs");
        let names = match self.list_dir(&dir, "listing btrfs file systems") {
            Ok(names) => names,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for uuid in names {
            // `features/` and anything else without `devices/` is no file system.
            let devices = dir.join(&uuid).join("devices");
            match self.list_dir(&devices, "listing a btrfs file system's devices") {
                Ok(mut members) => {
                    members.sort();
                    out.push(BtrfsFilesystem { uuid, members });
                }
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        Ok(out)
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
