//! One scenario per shape of "in use on the host": build a small fake sysfs and proc tree laid
//! out as the kernel lays it out, ask, and check the reason (or its absence).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::in_use_reason;
use crate::os::sysfs::Sysfs;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::{Logger, Priority};

const ROUTE_HEADER: &str =
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n";
/// An interface that is up (IFF_UP | IFF_BROADCAST | IFF_MULTICAST).
const UP: &str = "0x1003\n";
const DOWN: &str = "0x1002\n";

/// A temp dir holding `sys/` (the sysfs root) and `proc/`.
struct Fake {
    dir: tempfile::TempDir,
}

/// What the check said: the reason, and the warnings it logged.
struct Answer {
    reason: Option<String>,
    warnings: Vec<String>,
}

impl Answer {
    fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or("(not in use)")
    }
}

impl Fake {
    fn new() -> Fake {
        let fake = Fake {
            dir: tempfile::tempdir().unwrap(),
        };
        fake.mkdir("sys/bus/pci/devices");
        fake.mkdir("proc/net");
        fake.mkdir("proc/self");
        fake
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.path(rel)).unwrap();
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn link(&self, rel: &str, target: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    /// A PCI device at `sys/devices/pci0000:00/BDF`; returns that path, relative to `sys/`.
    fn device(&self, bdf: &str) -> String {
        let dir = format!("devices/pci0000:00/{bdf}");
        self.mkdir(&format!("sys/{dir}"));
        self.link(
            &format!("sys/bus/pci/devices/{bdf}"),
            &format!("../../../{dir}"),
        );
        dir
    }

    /// An interface in `PARENT/net/NAME` (PARENT relative to `sys/`) with `class/net/NAME`
    /// linking to it.
    fn netdev(&self, parent: &str, name: &str, flags: &str) {
        let dir = format!("{parent}/net/{name}");
        self.write(&format!("sys/{dir}/flags"), flags);
        self.link(&format!("sys/class/net/{name}"), &format!("../../{dir}"));
    }

    /// A virtual interface (`devices/virtual/net/NAME`); `kind` "bridge" or "bonding" gives it
    /// that directory.
    fn virtual_netdev(&self, name: &str, flags: &str, kind: Option<&str>) {
        self.netdev("devices/virtual", name, flags);
        if let Some(kind) = kind {
            self.mkdir(&format!("sys/devices/virtual/net/{name}/{kind}"));
        }
    }

    /// `upper` is above `lower`: `upper_UPPER` in the lower's directory, and `master` too when
    /// `master` (a bridge, bond, team port).
    fn stack(&self, lower: &str, upper: &str, master: bool) {
        let target = format!("../../../virtual/net/{upper}");
        self.link(&format!("sys/class/net/{lower}/upper_{upper}"), &target);
        if master {
            self.link(&format!("sys/class/net/{lower}/master"), &target);
        }
    }

    /// A block device at `PARENT/NAME` (relative to `sys/`): `subsystem` names `block`, `dev`
    /// is `dev` (none when `None`), an empty `holders/`.
    fn disk(&self, parent: &str, name: &str, dev: Option<&str>) -> String {
        let dir = format!("{parent}/{name}");
        let depth = dir.matches('/').count() + 1;
        self.link(
            &format!("sys/{dir}/subsystem"),
            &format!("{}class/block", "../".repeat(depth)),
        );
        if let Some(dev) = dev {
            self.write(&format!("sys/{dir}/dev"), &format!("{dev}\n"));
        }
        self.mkdir(&format!("sys/{dir}/holders"));
        dir
    }

    /// A block device node `dev/REL` numbered MAJ:MIN (mknod, which needs root); false when
    /// this process may not make one.
    fn block_node(&self, rel: &str, (major, minor): (u32, u32)) -> bool {
        let path = self.path(&format!("dev/{rel}"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        let rc = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFBLK | 0o600,
                libc::makedev(major, minor),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EPERM),
                "mknod {}: {e}",
                path.display()
            );
            return false;
        }
        true
    }

    /// The in-use answer, errors included.
    fn try_check(&self, bdf: &str) -> Result<Option<String>> {
        let sysfs = Sysfs::new(self.path("sys")).unwrap();
        let address = PciAddress::parse(bdf).unwrap();
        in_use_reason(
            &sysfs,
            &self.path("proc"),
            &self.path("dev"),
            &Logger::default(),
            &address,
        )
    }

    fn check(&self, bdf: &str) -> Answer {
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let sink = warnings.clone();
        let log = Logger::new(
            Arc::new(move |_, m: &str| sink.lock().unwrap().push(m.to_owned())),
            Priority::Warning as i32,
        );
        let sysfs = Sysfs::new(self.path("sys")).unwrap();
        let address = PciAddress::parse(bdf).unwrap();
        let reason = in_use_reason(
            &sysfs,
            &self.path("proc"),
            &self.path("dev"),
            &log,
            &address,
        )
        .unwrap();
        let warnings = warnings.lock().unwrap().clone();
        Answer { reason, warnings }
    }
}

// --- network below the device ---

#[test]
fn virtio_net_interface_below_a_child_device_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:00:03.0");
    fake.netdev(&format!("{dev}/virtio2"), "eth0", UP);
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
    );

    let answer = fake.check("0000:00:03.0");

    assert_eq!(
        answer.reason(),
        "network interface eth0 is up with 1 IPv4 route(s)"
    );
}

#[test]
fn interface_that_is_down_is_not_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", DOWN);
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
    );

    assert_eq!(fake.check("0000:02:00.0").reason, None);
}

#[test]
fn interface_with_a_global_ipv6_address_is_in_use_but_not_with_a_link_local_one() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.write(
        "proc/net/if_inet6",
        "fe800000000000000000000000000001 02 40 20 80 eth0\n",
    );
    assert_eq!(fake.check("0000:02:00.0").reason, None);

    fake.write(
        "proc/net/if_inet6",
        "fe800000000000000000000000000001 02 40 20 80 eth0\n\
         fd000000000000000000000000000002 02 40 00 80 eth0\n",
    );
    assert_eq!(
        fake.check("0000:02:00.0").reason(),
        "network interface eth0 is up with IPv6 address fd000000000000000000000000000002"
    );
}

// --- network above an interface ---

#[test]
fn bridge_port_whose_bridge_has_a_route_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("br0", UP, Some("bridge"));
    fake.stack("eth0", "br0", true);
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}br0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
    );

    assert_eq!(
        fake.check("0000:02:00.0").reason(),
        "network interface eth0 is a port of bridge br0, which is up with 1 IPv4 route(s)"
    );
}

/// Open vSwitch: the NIC and the bridge's internal port are both ports of the datapath
/// `ovs-system` (down, no address); the internal port `br-ex` has the address.
#[test]
fn open_vswitch_port_is_in_use_when_an_internal_port_has_an_address() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("ovs-system", DOWN, None);
    fake.virtual_netdev("br-ex", UP, None);
    fake.stack("eth0", "ovs-system", true);
    fake.stack("br-ex", "ovs-system", true);
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}br-ex\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
    );
    assert_eq!(
        fake.check("0000:02:00.0").reason(),
        "network interface eth0 is a port of Open vSwitch, whose interface br-ex is up with 1 \
         IPv4 route(s)"
    );

    // No addressed interface on the datapath: not in use.
    fake.write("proc/net/route", ROUTE_HEADER);
    assert_eq!(fake.check("0000:02:00.0").reason, None);
}

#[test]
fn bridge_port_whose_bridge_has_no_address_is_not_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("br0", UP, Some("bridge"));
    fake.stack("eth0", "br0", true);
    // Only other interfaces have routes.
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
    );

    assert_eq!(fake.check("0000:02:00.0").reason, None);
}

#[test]
fn port_of_a_bridge_that_is_down_is_not_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("br0", DOWN, Some("bridge"));
    fake.stack("eth0", "br0", true);
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}br0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
    );

    assert_eq!(fake.check("0000:02:00.0").reason, None);
}

#[test]
fn bond_port_in_a_bridge_with_an_ipv6_address_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("bond0", UP, Some("bonding"));
    fake.virtual_netdev("br0", UP, Some("bridge"));
    fake.stack("eth0", "bond0", true);
    fake.stack("bond0", "br0", true);
    fake.write(
        "proc/net/if_inet6",
        "20010db8000000000000000000000001 05 40 00 80 br0\n",
    );

    assert_eq!(
        fake.check("0000:02:00.0").reason(),
        "network interface eth0 is a port of bond bond0, which is a port of bridge br0, which \
         is up with IPv6 address 20010db8000000000000000000000001"
    );
}

#[test]
fn lower_device_of_a_vlan_with_a_route_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("eth0.10", UP, None);
    fake.stack("eth0", "eth0.10", false);
    fake.write(
        "proc/net/route",
        &format!("{ROUTE_HEADER}eth0.10\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
    );

    assert_eq!(
        fake.check("0000:02:00.0").reason(),
        "network interface eth0 is the lower device of eth0.10, which is up with 1 IPv4 route(s)"
    );
}

#[test]
fn upper_links_in_a_loop_end() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.virtual_netdev("a", UP, None);
    fake.virtual_netdev("b", UP, None);
    fake.stack("eth0", "a", false);
    fake.stack("a", "b", false);
    fake.stack("b", "a", false);
    fake.stack("b", "eth0", false);

    assert_eq!(fake.check("0000:02:00.0").reason, None);
}

// --- storage ---

/// An NVMe controller at BDF/nvme/nvme0 with disk nvme0n1 (259:0) and partition nvme0n1p2
/// (259:2), as without multipath. Returns the partition's directory.
fn nvme_disk(fake: &Fake, bdf: &str) -> String {
    let dev = fake.device(bdf);
    fake.write(&format!("sys/{dev}/nvme/nvme0/state"), "live\n");
    let disk = fake.disk(&format!("{dev}/nvme/nvme0"), "nvme0n1", Some("259:0"));
    fake.disk(&disk, "nvme0n1p2", Some("259:2"))
}

#[test]
fn partition_mounted_by_number_is_in_use() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    fake.write(
        "proc/self/mountinfo",
        "29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n",
    );

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is mounted on /"
    );
}

#[test]
fn btrfs_with_an_anonymous_number_is_found_by_its_source() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    fake.write(
        "proc/self/mountinfo",
        "29 1 0:33 /root / rw,relatime shared:1 - btrfs /dev/nvme0n1p2 rw,subvol=/root\n\
         30 29 0:33 /home /home rw,relatime shared:2 - btrfs /dev/nvme0n1p2 rw,subvol=/home\n",
    );

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is mounted on /, /home"
    );
}

#[test]
fn member_of_a_multi_device_btrfs_mounted_from_another_disk_is_in_use() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    let uuid = "sys/fs/btrfs/1c3a2f0e-5b7d-4e2a-9f61-0d8c4b2e7a10";
    fake.link(
        &format!("{uuid}/devices/sda"),
        "../../../../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
    );
    fake.link(
        &format!("{uuid}/devices/nvme0n1p2"),
        "../../../../devices/pci0000:00/0000:04:00.0/nvme/nvme0/nvme0n1/nvme0n1p2",
    );
    fake.mkdir("sys/fs/btrfs/features");
    fake.write(
        "proc/self/mountinfo",
        "29 1 0:33 / /data rw,relatime shared:1 - btrfs /dev/sda rw\n",
    );

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is a member of the btrfs file system \
         1c3a2f0e-5b7d-4e2a-9f61-0d8c4b2e7a10 mounted on /data (from /dev/sda)"
    );
}

#[test]
fn btrfs_of_another_disk_is_not_in_use() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    fake.link(
        "sys/fs/btrfs/1c3a2f0e-5b7d-4e2a-9f61-0d8c4b2e7a10/devices/sda",
        "../../../../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
    );
    fake.write(
        "proc/self/mountinfo",
        "29 1 0:33 / / rw,relatime shared:1 - btrfs /dev/sda rw\n",
    );

    assert_eq!(fake.check("0000:04:00.0").reason, None);
}

#[test]
fn swap_partition_is_in_use() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    fake.write(
        "proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
         /dev/nvme0n1p2                          partition\t8388604\t\t0\t\t-2\n",
    );

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is used as swap"
    );
}

#[test]
fn held_partition_is_in_use() {
    let fake = Fake::new();
    let part = nvme_disk(&fake, "0000:04:00.0");
    fake.mkdir(&format!("sys/{part}/holders/dm-0"));

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is held by dm-0"
    );
}

#[test]
fn disk_deep_below_a_usb_controller_is_found() {
    let fake = Fake::new();
    let dev = fake.device("0000:00:14.0");
    let block = format!("{dev}/usb1/1-1/1-1.2/1-1.2.4/1-1.2.4:1.0/host3/target3:0:0/3:0:0:0/block");
    fake.disk(&block, "sdb", Some("8:16"));
    fake.write(
        "proc/self/mountinfo",
        "40 1 8:16 / /media/usb rw - vfat /dev/sdb rw\n",
    );

    assert_eq!(
        fake.check("0000:00:14.0").reason(),
        "block device sdb is mounted on /media/usb"
    );
}

#[test]
fn short_and_garbage_proc_lines_do_not_panic() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    let dev = "devices/pci0000:00/0000:04:00.0";
    fake.netdev(dev, "eth0", UP);
    fake.write(
        "proc/self/mountinfo",
        "\n29\n29 1\n29 1 259:2\n29 1 259:2 /\n - - - -\n\\\n29 1 0:5 / /x\\04 rw -\n\
         29 1 0:5 / /y rw - btrfs\n\u{fffd}\u{0}\n29 1 259:2 / /mnt/my\\040disk\n",
    );
    fake.write("proc/swaps", "\n \n/dev/\n");
    fake.write("proc/net/route", "eth0\n\n");
    fake.write("proc/net/if_inet6", "x\n1 2 3 zz 5 eth0\n1 2 3 0\n");

    // The one line that names the partition's number and a mount point counts; the first
    // route line is the header, so eth0 has none.
    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is mounted on /mnt/my disk"
    );
}

#[test]
fn non_utf8_bytes_in_mountinfo_do_not_hide_the_other_lines() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    let mut table = b"28 1 0:40 / /media/caf\xe9 rw - tmpfs tmpfs rw\n".to_vec();
    table.extend_from_slice(b"29 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n");
    fs::write(fake.path("proc/self/mountinfo"), table).unwrap();

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p2 is mounted on /"
    );
}

// --- NVMe native multipath ---

/// Subsystem nvme-subsys0 with namespace 1, whose multipath disk nvme0n1 (partition nvme0n1p1,
/// 259:1) hangs under the subsystem. Controllers: nvme0 at 0000:04:00.0 (`live`) and, when
/// `second` is given, nvme1 at 0000:05:00.0 in that state; each has its hidden path disk.
fn multipath(fake: &Fake, second: Option<&str>) {
    let subsys = "devices/virtual/nvme-subsystem/nvme-subsys0";
    fake.link(
        "sys/class/nvme-subsystem/nvme-subsys0",
        "../../devices/virtual/nvme-subsystem/nvme-subsys0",
    );
    fake.link(
        &format!("sys/{subsys}/subsystem"),
        "../../../../class/nvme-subsystem",
    );
    let head = fake.disk(subsys, "nvme0n1", Some("259:0"));
    fake.write(&format!("sys/{head}/nsid"), "1\n");
    fake.disk(&head, "nvme0n1p1", Some("259:1"));

    let controllers = [
        ("0000:04:00.0", "nvme0", Some("live")),
        ("0000:05:00.0", "nvme1", second),
    ];
    for (i, (bdf, name, state)) in controllers.into_iter().enumerate() {
        let Some(state) = state else { continue };
        let dev = fake.device(bdf);
        let ctrl = format!("{dev}/nvme/{name}");
        fake.write(&format!("sys/{ctrl}/state"), &format!("{state}\n"));
        // Hidden: on current kernels a `hidden` of 1, on older ones no `dev`.
        let path = fake.disk(&ctrl, &format!("nvme0c{i}n1"), None);
        fake.write(&format!("sys/{path}/hidden"), "1\n");
        fake.write(&format!("sys/{path}/nsid"), "1\n");
        fake.link(
            &format!("sys/{subsys}/{name}"),
            &format!("../../../pci0000:00/{bdf}/nvme/{name}"),
        );
    }
    fake.write(
        "proc/self/mountinfo",
        "29 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n",
    );
}

#[test]
fn nvme_controller_that_is_the_last_live_path_to_a_mounted_namespace_is_in_use() {
    let fake = Fake::new();
    multipath(&fake, None);

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "NVMe controller nvme0 is the last live path to namespace nvme0n1 of nvme-subsys0: \
         block device nvme0n1p1 is mounted on /"
    );
}

#[test]
fn nvme_controller_whose_other_path_is_not_live_is_in_use() {
    let fake = Fake::new();
    multipath(&fake, Some("connecting"));

    let answer = fake.check("0000:04:00.0");

    assert!(
        answer.reason().contains("nvme0 is the last live path"),
        "{}",
        answer.reason()
    );
}

#[test]
fn nvme_controller_with_another_live_path_is_allowed_with_a_warning() {
    let fake = Fake::new();
    multipath(&fake, Some("live"));

    let answer = fake.check("0000:04:00.0");

    assert_eq!(answer.reason, None);
    assert_eq!(
        answer.warnings,
        ["NVMe controller nvme0 is a path to namespace nvme0n1 of nvme-subsys0, which is in use \
          (block device nvme0n1p1 is mounted on /); allowed, since nvme1 remain(s) a live path \
          to it"]
    );
}

#[test]
fn nvme_controller_of_an_unused_namespace_is_not_in_use() {
    let fake = Fake::new();
    multipath(&fake, None);
    fake.write("proc/self/mountinfo", "");

    let answer = fake.check("0000:04:00.0");

    assert_eq!(answer.reason, None);
    assert!(answer.warnings.is_empty());
}

// --- display ---

#[test]
fn gpu_with_a_framebuffer_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:01:00.0");
    fake.mkdir(&format!("sys/{dev}/graphics/fb0"));
    fake.mkdir(&format!("sys/{dev}/drm/card0"));

    assert_eq!(
        fake.check("0000:01:00.0").reason(),
        "it drives framebuffer fb0, which the console may be using"
    );
}

#[test]
fn device_with_nothing_below_is_not_in_use() {
    let fake = Fake::new();
    fake.device("0000:03:00.0");

    let answer = fake.check("0000:03:00.0");

    assert_eq!(answer.reason, None);
    assert!(answer.warnings.is_empty());
}

// --- parsing ---

#[test]
fn mountinfo_escapes_are_undone_and_odd_ones_kept() {
    use super::storage::unescape;
    assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
    assert_eq!(unescape("/a\\134b"), "/a\\b");
    assert_eq!(unescape("\\777\\0\\"), "\\777\\0\\");
    assert_eq!(unescape("\\09x"), "\\09x");
}

// --- could not look is not "not in use" ---

/// Reading a directory as a file fails (EISDIR) even for root, which no mode bits stop.
#[test]
fn interface_whose_flags_cannot_be_read_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.mkdir(&format!("sys/{dev}/net/eth0/flags"));
    fake.link("sys/class/net/eth0", &format!("../../{dev}/net/eth0"));

    let answer = fake.check("0000:02:00.0");

    assert!(
        answer
            .reason()
            .starts_with("network interface eth0: could not read its flags ("),
        "{}",
        answer.reason()
    );
    assert!(answer
        .reason()
        .ends_with("so cannot tell whether it is in use"));
}

#[test]
fn interface_with_garbage_flags_is_in_use() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", "up\n");

    assert!(fake
        .check("0000:02:00.0")
        .reason()
        .contains("could not read its flags"));
}

#[test]
fn routes_that_cannot_be_read_refuse_an_interface_that_is_up() {
    let fake = Fake::new();
    let dev = fake.device("0000:02:00.0");
    fake.netdev(&dev, "eth0", UP);
    fake.mkdir("proc/net/route");

    let answer = fake.check("0000:02:00.0");

    assert!(
        answer
            .reason()
            .starts_with("network interface eth0 is up, and could not read "),
        "{}",
        answer.reason()
    );
    assert!(answer.reason().contains("proc/net/route"));

    // Down, it carries nothing whatever the tables say: they are not even read.
    fake.write(&format!("sys/{dev}/net/eth0/flags"), DOWN);
    assert_eq!(fake.check("0000:02:00.0").reason, None);
}

#[test]
fn disk_whose_holders_cannot_be_listed_is_in_use() {
    let fake = Fake::new();
    let part = nvme_disk(&fake, "0000:04:00.0");
    fs::remove_dir(fake.path(&format!("sys/{part}/holders"))).unwrap();
    fake.write(&format!("sys/{part}/holders"), "");

    let answer = fake.check("0000:04:00.0");

    assert!(
        answer
            .reason()
            .starts_with("block device nvme0n1p2 could not read its holders/ ("),
        "{}",
        answer.reason()
    );
}

#[test]
fn unreadable_mountinfo_refuses_a_device_with_disks() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    fake.mkdir("proc/self/mountinfo");

    let answer = fake.check("0000:04:00.0");

    assert!(
        answer.reason().starts_with("could not read ") && answer.reason().contains("mountinfo"),
        "{}",
        answer.reason()
    );
}

/// ENOENT of a whole proc file (a tree without it, a kernel without the feature) describes
/// nothing: the fake tree has no swaps, no iomem, no net/route.
#[test]
fn missing_proc_files_refuse_nothing() {
    let fake = Fake::new();
    nvme_disk(&fake, "0000:04:00.0");
    let dev = "devices/pci0000:00/0000:04:00.0";
    fake.netdev(dev, "eth0", UP);
    fs::remove_dir_all(fake.path("proc")).unwrap();

    assert_eq!(fake.check("0000:04:00.0").reason, None);
}

// --- a device removed while it is looked at ---

#[test]
fn device_that_is_gone_is_no_device_not_an_io_error() {
    let fake = Fake::new();
    let dev = fake.device("0000:04:00.0");
    fs::remove_dir_all(fake.path(&format!("sys/{dev}"))).unwrap();

    let err = fake.try_check("0000:04:00.0").unwrap_err();

    assert!(matches!(err, Error::NoDevice { .. }), "{err:?}");
}

/// Hot removal races with the walk: the kernel removes a device's children first, then the
/// device. The checks run again and again while the tree is removed below them: whatever the
/// walk met, each answer is an answer or NoDevice, never an I/O error; once it is gone,
/// NoDevice.
#[test]
fn device_removed_during_the_walk_is_no_device() {
    let mut overlapping = 0;
    for round in 0..8 {
        let fake = Fake::new();
        let part = nvme_disk(&fake, "0000:04:00.0");
        let dev = "devices/pci0000:00/0000:04:00.0";
        for i in 0..8 {
            fake.netdev(&format!("{dev}/virtio{i}"), &format!("eth{i}"), UP);
        }
        fake.mkdir(&format!("sys/{part}/holders/dm-0"));
        let top = fake.path(&format!("sys/{dev}"));
        let remover = std::thread::spawn(move || fs::remove_dir_all(&top).unwrap());
        while !remover.is_finished() {
            match fake.try_check("0000:04:00.0") {
                Ok(_) | Err(Error::NoDevice { .. }) => overlapping += 1,
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        remover.join().unwrap();
        let gone = fake.try_check("0000:04:00.0");
        assert!(matches!(gone, Err(Error::NoDevice { .. })), "{gone:?}");
    }
    eprintln!("{overlapping} checks ran while a device was being removed");
}

// --- the kernel's own answer for block devices (O_EXCL) ---

/// A block device of this machine that is mounted (so the kernel holds it exclusively and an
/// O_EXCL open fails with EBUSY, never succeeds): MAJ:MIN from this process's mountinfo.
fn mounted_block_device() -> Option<(u32, u32)> {
    let table = fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (major, minor) = f.get(2)?.split_once(':')?;
        let number = (major.parse().ok()?, minor.parse().ok()?);
        let is_block = fs::metadata(format!("/sys/dev/block/{major}:{minor}")).is_ok();
        (number.0 != 0 && is_block).then_some(number)
    })
}

/// The mounted block device and a tree whose disk nvme0n1 (no partition) has its number;
/// `None` (with the reason printed) where the test cannot run.
fn held_disk(fake: &Fake) -> Option<(u32, u32)> {
    let Some(number) = mounted_block_device() else {
        eprintln!("skipped: no mounted block device in this process's mountinfo");
        return None;
    };
    let dev = fake.device("0000:04:00.0");
    fake.write(&format!("sys/{dev}/nvme/nvme0/state"), "live\n");
    let disk = fake.disk(
        &format!("{dev}/nvme/nvme0"),
        "nvme0n1",
        Some(&format!("{}:{}", number.0, number.1)),
    );
    fake.write(
        &format!("sys/{disk}/uevent"),
        &format!(
            "MAJOR={}\nMINOR={}\nDEVNAME=nvme0n1\nDEVTYPE=disk\n",
            number.0, number.1
        ),
    );
    Some(number)
}

/// The errno of an O_EXCL open of the node `dev/REL` of the tree (0 if it opened): EBUSY for
/// a mounted disk; EPERM where a device cgroup (a container, this sandbox) forbids opening
/// block devices at all.
fn kernel_answer(fake: &Fake, rel: &str) -> i32 {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_NONBLOCK)
        .open(fake.path(&format!("dev/{rel}")))
        .err()
        .and_then(|e| e.raw_os_error())
        .unwrap_or(0)
}

/// What a ZFS pool member, an LIO backstore or a VM's exclusively opened disk look like: no
/// holders, no mount naming the disk, and yet the kernel refuses an exclusive open. Played
/// with a node (in the fake dev root) of a disk this machine has mounted. Where a device
/// cgroup forbids opening it (EPERM), the kernel could not be asked: that refuses too, saying
/// so.
#[test]
fn disk_the_kernel_says_is_held_is_in_use_though_nothing_lists_it() {
    let fake = Fake::new();
    let Some((major, minor)) = held_disk(&fake) else {
        return;
    };
    let node = format!("block/{major}:{minor}");
    if !fake.block_node(&node, (major, minor)) {
        eprintln!("skipped: mknod is not permitted here (not root)");
        return;
    }
    let held = "block device nvme0n1 is held open exclusively by something (not a mount, swap \
                or holder the host lists: e.g. a ZFS pool, an iSCSI/LIO backstore or a VM's \
                disk)";
    let not_asked = format!(
        "block device nvme0n1 could not be asked whether something holds it ({}: ",
        fake.path(&format!("dev/{node}")).display()
    );
    let errno = kernel_answer(&fake, &node);
    let answer = fake.check("0000:04:00.0");
    match errno {
        libc::EBUSY => assert_eq!(answer.reason(), held),
        libc::EPERM | libc::EACCES => {
            eprintln!("the kernel may not be asked here (errno {errno}): the refusal says so");
            assert!(
                answer.reason().starts_with(&not_asked),
                "{}",
                answer.reason()
            );
            assert!(answer
                .reason()
                .ends_with("so cannot tell whether it is in use"));
        }
        _ => panic!("an O_EXCL open of a mounted disk answered errno {errno}"),
    }

    // What the host lists still names the user.
    fake.write(
        "proc/self/mountinfo",
        "29 1 0:33 / /tank rw - zfs /dev/nvme0n1 rw\n",
    );
    let answer = fake.check("0000:04:00.0");
    assert!(
        answer
            .reason()
            .starts_with("block device nvme0n1 is mounted on /tank"),
        "{}",
        answer.reason()
    );
    if errno == libc::EBUSY {
        assert_eq!(answer.reason(), "block device nvme0n1 is mounted on /tank");
    }
}

/// Where udev does not run (an initramfs, a container) there is no `block/MAJ:MIN`: the node
/// is found by the DEVNAME of the disk's uevent, as devtmpfs names it.
#[test]
fn node_is_found_by_its_devname_without_udev_links() {
    let fake = Fake::new();
    let Some(number) = held_disk(&fake) else {
        return;
    };
    if !fake.block_node("nvme0n1", number) {
        eprintln!("skipped: mknod is not permitted here (not root)");
        return;
    }
    let expected = match kernel_answer(&fake, "nvme0n1") {
        libc::EBUSY => "is held open exclusively by something".to_owned(),
        _ => format!("({}: ", fake.path("dev/nvme0n1").display()),
    };

    let answer = fake.check("0000:04:00.0");

    assert!(answer.reason().contains(&expected), "{}", answer.reason());
}

/// A node numbered otherwise (stale, or another disk's), or a regular file, is never asked:
/// the host's tables alone decide, as without a dev root.
#[test]
fn node_of_another_number_or_no_node_at_all_is_not_trusted() {
    let fake = Fake::new();
    let Some((major, minor)) = held_disk(&fake) else {
        return;
    };
    if !fake.block_node(&format!("block/{major}:{minor}"), (major, minor + 1)) {
        eprintln!("skipped: mknod is not permitted here (not root)");
        return;
    }
    fake.write("dev/nvme0n1", "");
    assert_eq!(fake.check("0000:04:00.0").reason, None);

    fake.write(
        "proc/self/mountinfo",
        &format!("29 1 {major}:{minor} / /data rw - ext4 /dev/sdz rw\n"),
    );
    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1 is mounted on /data"
    );
}

/// The kernel claims the whole disk with a partition: the disk answers EBUSY too, and says
/// nothing of its own when a partition of it already explains why.
#[test]
fn whole_disk_held_through_its_partition_is_not_said_twice() {
    let fake = Fake::new();
    let Some((major, minor)) = held_disk(&fake) else {
        return;
    };
    let disk = "devices/pci0000:00/0000:04:00.0/nvme/nvme0/nvme0n1";
    // Both numbered as the mounted device, so both answer EBUSY.
    fake.disk(disk, "nvme0n1p1", Some(&format!("{major}:{minor}")));
    fake.write(
        &format!("sys/{disk}/nvme0n1p1/uevent"),
        "DEVNAME=nvme0n1p1\n",
    );
    if !fake.block_node("nvme0n1", (major, minor)) || !fake.block_node("nvme0n1p1", (major, minor))
    {
        eprintln!("skipped: mknod is not permitted here (not root)");
        return;
    }
    if kernel_answer(&fake, "nvme0n1") != libc::EBUSY {
        eprintln!("skipped: this process may not open block devices (a device cgroup)");
        return;
    }
    fake.write(
        "proc/self/mountinfo",
        "29 1 0:33 / / rw - btrfs /dev/nvme0n1p1 rw\n",
    );

    assert_eq!(
        fake.check("0000:04:00.0").reason(),
        "block device nvme0n1p1 is mounted on /"
    );
}

// --- the firmware's boot framebuffer ---

const IOMEM: &str = "00000000-00000fff : Reserved\n\
                     00001000-0009fbff : System RAM\n\
                     c0000000-febfffff : PCI Bus 0000:00\n  \
                     c0000000-c0ffffff : 0000:00:02.0\n    \
                     c0000000-c02fffff : BOOTFB\n      \
                     c0000000-c02fffff : simpledrm\n  \
                     fea00000-fea1ffff : 0000:00:03.0\n    \
                     fea00000-fea1ffff : e1000e\n";

/// A display controller at 00:02.0 with its BAR at c0000000-c0ffffff and a NIC at 00:03.0.
fn gpu_and_nic(fake: &Fake) {
    let gpu = fake.device("0000:00:02.0");
    fake.write(&format!("sys/{gpu}/class"), "0x030000\n");
    fake.write(
        &format!("sys/{gpu}/resource"),
        "0x00000000c0000000 0x00000000c0ffffff 0x0000000000042208\n\
         0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
         0x000000000000c000 0x000000000000c01f 0x0000000000040101\n",
    );
    let nic = fake.device("0000:00:03.0");
    fake.write(&format!("sys/{nic}/class"), "0x020000\n");
    fake.write(
        &format!("sys/{nic}/resource"),
        "0x00000000fea00000 0x00000000fea1ffff 0x0000000000040200\n",
    );
}

#[test]
fn gpu_whose_bar_holds_the_boot_framebuffer_is_in_use() {
    let fake = Fake::new();
    gpu_and_nic(&fake);
    fake.write("proc/iomem", IOMEM);

    let answer = fake.check("0000:00:02.0");

    assert!(
        answer.reason().starts_with(
            "its BAR holds the firmware's boot framebuffer (BOOTFB at c0000000-c02fffff in "
        ),
        "{}",
        answer.reason()
    );
    assert!(answer.reason().contains("simpledrm at c0000000-c02fffff"));
    assert!(answer.reason().ends_with("may be drawing the console on"));
    assert_eq!(fake.check("0000:00:03.0").reason, None);
}

/// Found by address too when /proc/iomem does not nest it (inserted before the BAR was).
#[test]
fn boot_framebuffer_not_nested_is_found_by_its_address() {
    let fake = Fake::new();
    gpu_and_nic(&fake);
    fake.write(
        "proc/iomem",
        "00000000-00000fff : Reserved\nc0000000-c02fffff : efifb\n",
    );

    assert!(fake
        .check("0000:00:02.0")
        .reason()
        .contains("(efifb at c0000000-c02fffff"));
    assert_eq!(fake.check("0000:00:03.0").reason, None);
}

/// What a reader without CAP_SYS_ADMIN sees: every address zero. Zero against zero must not
/// match every device, and a nesting still places the boot framebuffer.
#[test]
fn iomem_without_addresses_is_read_by_its_nesting() {
    let fake = Fake::new();
    gpu_and_nic(&fake);
    let zeroed: String = IOMEM
        .lines()
        .map(|l| {
            let indent = l.len() - l.trim_start().len();
            let name = l.split_once(" : ").unwrap().1;
            format!("{}00000000-00000000 : {name}\n", " ".repeat(indent))
        })
        .collect();
    fake.write("proc/iomem", &zeroed);

    assert!(fake
        .check("0000:00:02.0")
        .reason()
        .starts_with("its BAR holds the firmware's boot framebuffer (BOOTFB in "));
    assert_eq!(fake.check("0000:00:03.0").reason, None);

    // Nested in no device's range: which GPU holds it cannot be told, so display controllers
    // are refused as unreadable; the NIC is not.
    fake.write(
        "proc/iomem",
        "00000000-00000000 : Reserved\n00000000-00000000 : BOOTFB\n",
    );
    let answer = fake.check("0000:00:02.0");
    assert!(
        answer
            .reason()
            .starts_with("could not read where the firmware's boot framebuffer (BOOTFB) lies: "),
        "{}",
        answer.reason()
    );
    assert!(answer.reason().contains("CAP_SYS_ADMIN"));
    assert_eq!(fake.check("0000:00:03.0").reason, None);
}

#[test]
fn unreadable_iomem_refuses() {
    let fake = Fake::new();
    gpu_and_nic(&fake);
    fake.mkdir("proc/iomem");

    assert!(fake.check("0000:00:03.0").reason().contains("proc/iomem"));
}

#[test]
fn iomem_lines_that_are_odd_are_skipped() {
    use super::display::parse_iomem;
    let lines: Vec<String> = [
        "",
        "x",
        "zz-1 : a",
        "1-2:b",
        "   10-20 : c",
        "10-1f : BOOTFB ",
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    let entries = parse_iomem(&lines);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].name, "BOOTFB");
    assert_eq!(entries[1].parent, None);
}
