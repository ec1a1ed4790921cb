//! One scenario per shape of "in use on the host": build a small fake sysfs and proc tree laid
//! out as the kernel lays it out, ask, and check the reason (or its absence).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::in_use_reason;
use crate::address::PciAddress;
use crate::log::{Logger, Priority};
use crate::sysfs::Sysfs;

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
    use super::unescape;
    assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
    assert_eq!(unescape("/a\\134b"), "/a\\b");
    assert_eq!(unescape("\\777\\0\\"), "\\777\\0\\");
    assert_eq!(unescape("\\09x"), "\\09x");
}
