//! The `pcibind` command-line tool, run as a program on the example tree
//! (examples/example-sysfs.py) with the kernel-emulation shim preloaded for the commands that
//! write. The shim and the fake modprobe are compiled here from testkit/ with the system's C
//! compiler, so `cargo test` alone runs these.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const SRC: &str = env!("CARGO_MANIFEST_DIR");

/// The shim and the fake modprobe, built once per test run.
fn helpers() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let c = Path::new(SRC).join("testkit");
        let shim = out.join("kernel-shim.so");
        let modprobe = out.join("fake-modprobe");
        let run = |args: &[&str]| {
            let status = Command::new("cc")
                .args(args)
                .status()
                .expect("a C compiler");
            assert!(status.success(), "cc {args:?}");
        };
        run(&[
            "-shared",
            "-fPIC",
            "-O1",
            "-o",
            shim.to_str().unwrap(),
            c.join("kernel-shim.c").to_str().unwrap(),
            "-ldl",
            "-lpthread",
        ]);
        run(&[
            "-O1",
            "-o",
            modprobe.to_str().unwrap(),
            c.join("fake-modprobe.c").to_str().unwrap(),
            c.join("tree.c").to_str().unwrap(),
        ]);
        (shim, modprobe)
    })
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sys");
        let status = Command::new("python3")
            .arg(Path::new(SRC).join("examples/example-sysfs.py"))
            .arg(&root)
            .status()
            .expect("python3");
        assert!(status.success());
        Tree { _dir: dir, root }
    }

    /// Runs pcibind with the tree's global options and the shim preloaded.
    fn run(&self, args: &[&str]) -> Output {
        let (shim, modprobe) = helpers();
        Command::new(env!("CARGO_BIN_EXE_pcibind"))
            .arg("--sysfs-root")
            .arg(&self.root)
            .arg("--modules-dir")
            .arg(self.root.join("lib-modules"))
            .arg("--modprobe")
            .arg(modprobe)
            .arg("--lock-dir")
            .arg(self.root.join("locks"))
            .arg("--proc-root")
            .arg(self.root.join("proc"))
            .arg("--config-dir")
            .arg(self.config_dir())
            .args(args)
            .env("LD_PRELOAD", shim)
            .env("FAKE_SYSFS_ROOT", &self.root)
            .output()
            .unwrap()
    }

    fn driver(&self, bdf: &str) -> Option<String> {
        std::fs::read_link(self.root.join("bus/pci/devices").join(bdf).join("driver"))
            .ok()
            .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
    }

    fn driver_override(&self, bdf: &str) -> String {
        let s = std::fs::read_to_string(
            self.root
                .join("bus/pci/devices")
                .join(bdf)
                .join("driver_override"),
        )
        .unwrap();
        s.trim_end().to_owned()
    }

    /// Where this tree's saved overrides go (never the machine's /etc/driverctl.d).
    fn config_dir(&self) -> PathBuf {
        self.root.join("etc-driverctl.d")
    }

    /// The saved override file of a device, as driverctl names it.
    fn saved_file(&self, bdf: &str) -> PathBuf {
        self.config_dir().join(format!("pci-{bdf}"))
    }

    /// The e1000e's eth0 up, with an IPv4 route in the tree's net/route: the host's uplink.
    fn nic_carries_the_hosts_traffic(&self) {
        let net = self.root.join("devices/pci0000:00/0000:00:02.0/net/eth0");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("flags"), "0x1003\n").unwrap();
        std::fs::write(
            self.root.join("proc/net/route"),
            "Iface\tDestination\neth0\t0002000A\n",
        )
        .unwrap();
    }

    fn writes(&self) -> String {
        std::fs::read_to_string(self.root.join("write.log")).unwrap_or_default()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `text` says every one of `parts`.
fn says_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing in {text}");
    }
}

const VF: &str = "0000:3b:00.2"; // ConnectX-5 VF on mlx5_core
const NIC: &str = "0000:00:02.0"; // e1000e
const XE: &str = "0000:03:00.0"; // Intel Xe GPU
const GPU: &str = "0000:01:00.0"; // RTX 3090, its audio function at .1 in the same group

#[test]
fn list_shows_every_device_as_a_table() {
    let t = Tree::new();
    let o = t.run(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("ADDRESS"));
    assert_eq!(out.lines().count(), 9, "{out}");
    let vf = out.lines().find(|l| l.starts_with(VF)).unwrap();
    for cell in [
        "15b3:101e",
        "Ethernet controller",
        "mlx5_core",
        "no",
        "mlx5_vfio_pci",
        " 7 ",
    ] {
        assert!(vf.contains(cell), "{cell} missing in {vf}");
    }
    assert!(out
        .lines()
        .any(|l| l.starts_with(XE) && l.contains("xe_vfio_pci")));
}

/// The bridges (a PCIe root port on pcieport, an ISA/LPC bridge on no driver) get no VFIO
/// driver: no operation moves them, so `list` shows `-` there, as `show` and `--json` say.
#[test]
fn list_offers_no_vfio_driver_for_bridges() {
    let t = Tree::new();
    let out = stdout(&t.run(&["list"]));
    for bridge in ["0000:00:1c.0", "0000:00:1f.0"] {
        let line = out.lines().find(|l| l.starts_with(bridge)).unwrap();
        assert!(line.ends_with("  no    -"), "{line}");
    }
    let nic = out.lines().find(|l| l.starts_with(NIC)).unwrap();
    assert!(nic.ends_with("  vfio_pci"), "{nic}");
    let json = stdout(&t.run(&["list", "--json"]));
    let lpc = json.lines().find(|l| l.contains("0000:00:1f.0")).unwrap();
    assert!(lpc.contains("\"vfio_driver_module\": null"), "{lpc}");
    let o = t.run(&["show", "0000:00:1c.0"]);
    assert!(
        stdout(&o).contains("vfio driver:     (none: a bridge stays on the host)"),
        "{}",
        stdout(&o)
    );
}

/// Without module tables, the plan says no variant was looked for (not that aliases chose
/// vfio_pci), and the warning about the missing tables comes once per run, however many
/// devices are listed or planned.
#[test]
fn without_tables_the_plan_says_so_and_the_warning_comes_once() {
    let t = Tree::new();
    let none = t.root.join("no-modules");
    let none = none.to_str().unwrap();
    let o = t.run(&["bind", "--dry-run", "--modules-dir", none, VF, NIC, XE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(
        !plan.contains("aliases") && !plan.contains("by its alias"),
        "{plan}"
    );
    assert_eq!(
        plan.matches("without looking for a variant: cannot read")
            .count(),
        3,
        "{plan}"
    );
    // vfio-pci claims every device (its catch-all), tables or not; whether another driver
    // claims one, only the tables tell: the plan says it is not known, not that it passed.
    assert_eq!(
        plan.matches("the driver claims the device").count(),
        3,
        "{plan}"
    );
    let o = t.run(&["bind", "--dry-run", "--modules-dir", none, VF, "e1000e"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(
        plan.contains(
            "safety checks passed: not in use on the host, no SR-IOV VFs in the way, \
             whether the driver claims the device is not known (cannot read"
        ),
        "{plan}"
    );
    assert!(
        !plan.contains("in the way, the driver claims the device"),
        "{plan}"
    );
    assert_eq!(
        stderr(&o).matches("modules.alias").count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = t.run(&["list", "--modules-dir", none]);
    assert_eq!(
        stderr(&o).matches("modules.alias").count(),
        1,
        "{}",
        stderr(&o)
    );
    // With the tables, the plan names the alias that chose the variant.
    let plan = stdout(&t.run(&["bind", "--dry-run", VF]));
    assert!(
        plan.contains("choose mlx5_vfio_pci for 0000:3b:00.2 (pci:v000015B3d0000101E")
            && plan.contains("by its alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*"),
        "{plan}"
    );
    assert!(plan.contains("the driver claims the device"), "{plan}");
    assert!(!plan.contains("is not known"), "{plan}");
}

#[test]
fn list_json_has_one_object_per_device() {
    let t = Tree::new();
    let out = stdout(&t.run(&["list", "--json"]));
    assert!(out.trim_start().starts_with('[') && out.trim_end().ends_with(']'));
    assert_eq!(out.matches("\"address\": ").count(), 8);
    for key in [
        "vendor",
        "device",
        "class",
        "class_name",
        "driver",
        "driver_override",
        "iommu_group",
        "vfio_bound",
        "vfio_driver_module",
    ] {
        assert_eq!(out.matches(&format!("\"{key}\": ")).count(), 8, "{key}");
    }
    assert!(out.contains("\"address\": \"0000:00:1f.0\", \"vendor\": \"8086\", \"device\": \"a143\", \"class\": \"060100\", \"class_name\": \"ISA bridge\", \"driver\": null, \"driver_override\": null, \"iommu_group\": 4, \"vfio_bound\": false"));
}

#[test]
fn show_gives_group_and_in_use_verdict() {
    let t = Tree::new();
    let o = t.run(&["show", GPU]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("iommu group:     5"), "{out}");
    assert!(out.contains("0000:01:00.1  snd_hda_intel"), "{out}");
    assert!(
        out.contains("group viable:    no (blocking group members"),
        "{out}"
    );
    assert!(out.contains("in use on host:  no"), "{out}");
    let json = stdout(&t.run(&["show", GPU, "--json"]));
    assert!(json.contains("\"iommu_group_members\": [{\"address\": \"0000:01:00.0\", \"driver\": \"nouveau\", \"class\": \"blocking\"}"), "{json}");
    assert!(json.contains("\"iommu_group_viable\": false"));
    assert!(json.contains("\"in_use\": null"));
}

/// `show` of a device on vfio-pci lists the device nodes a VMM opens (under --dev-root here),
/// in the text and as a JSON array; a device on a host driver has none.
#[test]
fn show_lists_the_device_nodes_of_a_vfio_bound_device() {
    let t = Tree::new();
    let dev = t.root.join("dev");
    for node in ["vfio/vfio", "vfio/2", "iommu", "vfio/devices/vfio0"] {
        let path = dev.join(node);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }
    let dev_root = dev.to_str().unwrap();
    let json = stdout(&t.run(&["--dev-root", dev_root, "show", NIC, "--json"]));
    assert!(json.contains("\"vfio_device_nodes\": []"), "{json}");
    let o = t.run(&["bind", NIC, "vfio-pci", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&t.run(&["--dev-root", dev_root, "show", NIC]));
    let want = format!(
        "device nodes:    {0}/vfio/vfio {0}/vfio/2 {0}/iommu {0}/vfio/devices/vfio0",
        dev_root
    );
    assert!(out.contains(&want), "{out}");
    let json = stdout(&t.run(&["--dev-root", dev_root, "show", NIC, "--json"]));
    assert!(
        json.contains(&format!(
            "\"vfio_device_nodes\": [\"{dev_root}/vfio/vfio\", \"{dev_root}/vfio/2\", \"{dev_root}/iommu\", \"{dev_root}/vfio/devices/vfio0\"]"
        )),
        "{json}"
    );
}

/// `--group` moves the GPU and its audio function (one IOMMU group) together, and back.
#[test]
fn bind_and_reattach_a_whole_group() {
    let t = Tree::new();
    let o = t.run(&["bind", "--group", GPU, "vfio-pci"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(t.writes(), "");
    let o = t.run(&["bind", "--group", GPU, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("would move 0000:01:00.0 0000:01:00.1"),
        "{}",
        stdout(&o)
    );
    assert_eq!(t.writes(), "");
    let o = t.run(&["bind", "--group", GPU]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("group moved: 0000:01:00.0 0000:01:00.1"),
        "{}",
        stdout(&o)
    );
    assert_eq!(t.driver(GPU).as_deref(), Some("vfio-pci"));
    assert_eq!(t.driver("0000:01:00.1").as_deref(), Some("vfio-pci"));
    let o = t.run(&["reattach", "--group", "0000:01:00.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(GPU).as_deref(), Some("nouveau"));
    assert_eq!(t.driver("0000:01:00.1").as_deref(), Some("snd_hda_intel"));
}

#[test]
fn resolve_and_variant() {
    let t = Tree::new();
    let o = t.run(&["resolve", "xe_vfio_pci"]);
    assert_eq!(stdout(&o), "xe-vfio-pci\n", "{}", stderr(&o));
    assert_eq!(stdout(&t.run(&["resolve", "pcieportdrv"])), "pcieport\n");
    assert_eq!(stdout(&t.run(&["variant", VF])), "mlx5_vfio_pci\n");
    assert_eq!(stdout(&t.run(&["variant", NIC])), "vfio_pci\n");
}

#[test]
fn bind_auto_variant_then_reattach() {
    let t = Tree::new();
    let o = t.run(&["bind", VF, XE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{VF}: bound to mlx5_vfio_pci")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{XE}: bound to xe-vfio-pci")),
        "{out}"
    );
    assert!(out.contains("2 devices: 2 done, 0 failed"), "{out}");
    assert_eq!(t.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
    assert_eq!(t.driver_override(VF), "mlx5_vfio_pci");
    assert!(stdout(&t.run(&["list"]))
        .lines()
        .any(|l| l.starts_with(VF) && l.contains(" yes ")));

    let o = t.run(&["reattach", VF, XE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(VF).as_deref(), Some("mlx5_core"));
    assert_eq!(t.driver(XE).as_deref(), Some("xe"));
    assert_eq!(t.driver_override(VF), "(null)");
}

#[test]
fn driverctl_style_set_and_unset_override() {
    let t = Tree::new();
    assert_eq!(t.run(&["bind", NIC, "vfio_pci"]).status.code(), Some(0));
    assert_eq!(t.driver(NIC).as_deref(), Some("vfio-pci"));
    let overrides = stdout(&t.run(&["list", "--overrides"]));
    assert_eq!(overrides.lines().count(), 2, "{overrides}");
    assert!(overrides.contains(NIC));
    assert_eq!(t.run(&["reattach", NIC]).status.code(), Some(0));
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    assert_eq!(stdout(&t.run(&["list", "--overrides"])).lines().count(), 1);
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let t = Tree::new();
    let o = t.run(&["bind", VF, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("plan (nothing changed)"), "{out}");
    assert!(out.contains("mlx5_vfio_pci"), "{out}");
    assert!(out.contains("mlx5_core/unbind"), "{out}");
    assert_eq!(t.writes(), "");
    assert_eq!(t.driver(VF).as_deref(), Some("mlx5_core"));
    assert!(!t.root.join("modprobe.log").exists());
}

#[test]
fn unbind_leaves_devices_unbound() {
    let t = Tree::new();
    let o = t.run(&["unbind", NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC), None);
    assert_eq!(t.driver_override(NIC), "none");
}

#[test]
fn exit_codes_name_the_failure() {
    let t = Tree::new();
    let bad = t.run(&["bind", "0000:00:99.0", "vfio-pci"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("invalid PCI address"));
    assert_eq!(
        t.run(&["bind", "../etc", "vfio-pci"]).status.code(),
        Some(2)
    );
    assert_eq!(t.run(&["bind", NIC, "../evil"]).status.code(), Some(2));
    assert_eq!(t.run(&["show", "0000:09:00.0"]).status.code(), Some(3));
    assert_eq!(
        t.run(&["--modprobe", "none", "resolve", "no_such_driver"])
            .status
            .code(),
        Some(4)
    );
    // modprobe says no module has that name: no such driver, not a failed load.
    let unknown = t.run(&["resolve", "no_such_driver"]);
    assert_eq!(unknown.status.code(), Some(4), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("Module no_such_driver not found in directory"),
        "{}",
        stderr(&unknown)
    );
    let mut table = std::fs::read_to_string(t.root.join("modprobe.table")).unwrap();
    table.push_str("broken !modprobe: ERROR: could not insert 'broken': Operation not permitted\n");
    std::fs::write(t.root.join("modprobe.table"), table).unwrap();
    let load = t.run(&["resolve", "broken"]);
    assert_eq!(load.status.code(), Some(5), "{}", stderr(&load));
    assert!(
        stderr(&load).contains("could not insert"),
        "{}",
        stderr(&load)
    );
    // e1000e claims no ConnectX VF.
    let claim = t.run(&["bind", VF, "e1000e"]);
    assert_eq!(claim.status.code(), Some(9), "{}", stderr(&claim));
    assert!(stderr(&claim).starts_with(&format!("pcibind: {VF}: ")));
    assert_eq!(t.writes(), "");
    // A refused probe: restored, status 6.
    std::fs::write(t.root.join("fault.table"), "probe:vfio-pci ENODEV\n").unwrap();
    let refused = t.run(&["bind", NIC, "vfio-pci"]);
    assert_eq!(refused.status.code(), Some(6), "{}", stderr(&refused));
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    // Several devices: the worst status, and a summary.
    let mixed = t.run(&["bind", XE, NIC, "vfio-pci"]);
    assert_eq!(mixed.status.code(), Some(6));
    assert!(
        stdout(&mixed).contains("2 devices: 0 done, 2 failed"),
        "{}",
        stdout(&mixed)
    );
}

#[test]
fn lock_and_modprobe_timeouts() {
    use std::os::fd::AsRawFd;
    let t = Tree::new();
    assert_eq!(t.run(&["unbind", NIC]).status.code(), Some(0));
    // Another process holding the device's lock: with --lock-timeout 0, status 10 at once.
    let other = std::fs::File::open(t.root.join("locks").join(format!("{NIC}.lock"))).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX) }, 0);
    let start = std::time::Instant::now();
    let busy = t.run(&["--lock-timeout", "0", "reattach", NIC]);
    assert_eq!(busy.status.code(), Some(10), "{}", stderr(&busy));
    assert!(
        stderr(&busy).contains("lock timeout is 0"),
        "{}",
        stderr(&busy)
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    drop(other);
    // A hung modprobe: killed at --modprobe-timeout, status 5.
    let mut table = std::fs::read_to_string(t.root.join("modprobe.table")).unwrap();
    table.push_str("slowmod sleep=30\n");
    std::fs::write(t.root.join("modprobe.table"), table).unwrap();
    let start = std::time::Instant::now();
    let hung = t.run(&["--modprobe-timeout", "0.3", "resolve", "slowmod"]);
    assert_eq!(hung.status.code(), Some(5), "{}", stderr(&hung));
    assert!(
        stderr(&hung).contains("timed out after 300ms"),
        "{}",
        stderr(&hung)
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // No module loads in no time; a duration must be a number.
    assert_eq!(
        t.run(&["--modprobe-timeout", "0", "resolve", "vfio_pci"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        t.run(&["--lock-timeout", "soon", "list"]).status.code(),
        Some(2)
    );
}

impl Tree {
    /// True when nothing has been written and no module loaded: the drivers as the example
    /// tree has them, no override set.
    fn untouched(&self) -> bool {
        self.writes().is_empty()
            && !self.root.join("modprobe.log").exists()
            && self.driver(NIC).as_deref() == Some("e1000e")
            && self.driver(VF).as_deref() == Some("mlx5_core")
            && self.driver_override(NIC) == "(null)"
            && self.driver_override(VF) == "(null)"
    }
}

#[test]
fn a_driver_before_the_last_argument_is_refused_before_any_change() {
    let t = Tree::new();
    let o = t.run(&["bind", NIC, "vfio-pci", "e1000e"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("invalid PCI address \"vfio-pci\""), "{err}");
    assert!(
        err.contains("only the last argument may be a driver"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(stdout(&o), "");
    assert!(t.untouched(), "{}", t.writes());
}

#[test]
fn a_malformed_driver_name_is_refused_before_any_device_is_touched() {
    let t = Tree::new();
    let o = t.run(&["bind", NIC, VF, "bogus@"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("driver name \"bogus@\" contains '@'"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert!(t.untouched(), "{}", t.writes());
}

#[test]
fn every_bad_argument_is_named() {
    let t = Tree::new();
    let o = t.run(&["reattach", "0000:00:99.0", NIC, "../x", NIC, "vfio-pci"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    says_all(
        &stderr(&o),
        &[
            "\"0000:00:99.0\"",
            "\"../x\"",
            "0000:00:02.0 is given twice",
        ],
    );
    assert!(t.untouched(), "{}", t.writes());
    // A driver needs an address before it.
    let o = t.run(&["bind", "vfio-pci"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("a driver comes after the device addresses"));
    // unbind takes no driver at all.
    assert_eq!(t.run(&["unbind", NIC, "vfio-pci"]).status.code(), Some(2));
    assert!(t.untouched(), "{}", t.writes());
}

#[test]
fn a_missing_device_stops_the_command_before_any_change() {
    let t = Tree::new();
    let o = t.run(&["bind", NIC, "0000:09:00.0", VF, "0000:0a:00.0", "vfio-pci"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("0000:09:00.0: no PCI device"), "{err}");
    assert!(err.contains("0000:0a:00.0: no PCI device"), "{err}");
    assert_eq!(stdout(&o), "");
    assert!(t.untouched(), "{}", t.writes());
    assert_eq!(
        t.run(&["unbind", "0000:09:00.0", NIC]).status.code(),
        Some(3)
    );
    assert!(t.untouched(), "{}", t.writes());
}

#[test]
fn driver_none_leaves_the_device_unbound_and_never_runs_modprobe() {
    let t = Tree::new();
    let plan = t.run(&["bind", NIC, "none", "--dry-run"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    // The library's plan: the override `none`, then the unbind from e1000e.
    assert!(
        stdout(&plan).contains("write 'none' to") && stdout(&plan).contains("e1000e/unbind"),
        "{}",
        stdout(&plan)
    );
    assert!(t.untouched(), "{}", t.writes());

    let o = t.run(&["bind", NIC, "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{NIC}: unbound (driver_override none)\n")
    );
    assert_eq!(t.driver(NIC), None);
    assert_eq!(t.driver_override(NIC), "none");
    assert!(!t.root.join("modprobe.log").exists());

    // reattach ADDR none: the same.
    let o = t.run(&["reattach", VF, "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(VF), None);
    assert_eq!(t.driver_override(VF), "none");
    assert!(!t.root.join("modprobe.log").exists());
    // Resolving `none` explains itself instead.
    let o = t.run(&["resolve", "none"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("not a driver"), "{}", stderr(&o));
    assert!(!t.root.join("modprobe.log").exists());
}

#[test]
fn a_mistyped_driver_is_no_such_driver_and_nothing_changes() {
    let t = Tree::new();
    let o = t.run(&["bind", NIC, XE, "vfio-pcii"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("no PCI driver or module is named 'vfio-pcii'"),
        "{err}"
    );
    assert!(
        err.contains("modprobe: FATAL: Module vfio_pcii not found in directory"),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(t.writes(), "");
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    assert_eq!(t.driver(XE).as_deref(), Some("xe"));
    // Resolved once for the whole command, not once per device.
    let log = std::fs::read_to_string(t.root.join("modprobe.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("[-b] [vfio_pcii]"), "{log}");
}

#[test]
fn in_use_device_is_refused_unless_forced() {
    let t = Tree::new();
    t.nic_carries_the_hosts_traffic();
    let o = t.run(&["bind", NIC, "vfio-pci"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(stderr(&o).contains("eth0 is up"), "{}", stderr(&o));
    assert!(stdout(&t.run(&["show", NIC])).contains("in use on host:  yes"));
    assert_eq!(
        t.run(&["bind", NIC, "vfio-pci", "--force"]).status.code(),
        Some(0)
    );
}

/// One check at a time: `--allow in-use` lets the NIC go, `--allow unclaimed,sriov` does not;
/// `show` names the kinds; the refusal's hint names the options, the library's text none.
#[test]
fn allow_skips_one_check_and_show_names_the_kinds() {
    let t = Tree::new();
    t.nic_carries_the_hosts_traffic();
    let show = stdout(&t.run(&["show", NIC]));
    assert!(show.contains("in use on host:  yes (network): "), "{show}");
    let json = stdout(&t.run(&["show", NIC, "--json"]));
    assert!(json.contains("\"in_use_kinds\": [\"network\"]"), "{json}");
    let o = t.run(&["bind", NIC, "vfio-pci", "--allow", "unclaimed,sriov"]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(--allow in-use or --force overrides this check)"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("PCIBIND_"), "{}", stderr(&o));
    assert_eq!(t.writes(), "");
    let o = t.run(&["bind", NIC, "vfio-pci", "--allow", "in-use"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC).as_deref(), Some("vfio-pci"));
    let o = t.run(&["reattach", NIC, "--allow", "in-use"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = t.run(&["bind", NIC, "vfio-pci", "--allow", "everything"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `--require-vfio` refuses a host driver (status 9, no hint: forcing does not change it);
/// `--strict-variant` and `--require-vfio` with a VFIO driver bind.
#[test]
fn require_vfio_and_strict_variant() {
    let t = Tree::new();
    let o = t.run(&["bind", NIC, "e1000e", "--require-vfio", "--force"]);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a VFIO driver"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("--force overrides"), "{}", stderr(&o));
    let o = t.run(&["bind", NIC, "vfio-pci", "--require-vfio"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = t.run(&["bind", GPU, "--strict-variant", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// The plans of `unbind`, `reattach` and `bind ADDR none` are the library's: the sysfs writes,
/// or "nothing to do" for a device already unbound with the override `none`.
#[test]
fn unbind_and_reattach_dry_runs_print_the_librarys_plan() {
    let t = Tree::new();
    let o = t.run(&["unbind", NIC, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("drivers/e1000e/unbind"),
        "{}",
        stdout(&o)
    );
    let o = t.run(&["reattach", NIC, "vfio-pci", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // vfio-pci is not loaded in the example tree: the plan's first line is the load, through
    // the configured program, and its restore loads nothing back out.
    let (_, modprobe) = helpers();
    let load = format!(
        "run {} -b vfio_pci; its PCI driver is known once it is loaded",
        modprobe.display()
    );
    assert!(stdout(&o).lines().any(|l| l == load), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("a restore unloads no module"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("e1000e/unbind"), "{}", stdout(&o));
    assert_eq!(t.writes(), "");
    assert_eq!(t.run(&["unbind", NIC]).status.code(), Some(0));
    let o = t.run(&["bind", NIC, "none", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to do"), "{}", stdout(&o));
    let o = t.run(&["reattach", NIC, "--dry-run", "--persist"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn help_and_man_page() {
    let t = Tree::new();
    for cmd in [
        "list", "show", "resolve", "variant", "bind", "unbind", "reattach",
    ] {
        let o = t.run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        assert!(stdout(&o).contains("Usage: pcibind"), "{cmd}");
    }
    assert!(stdout(&t.run(&["--help"])).contains("set-override ADDR DRIVER"));
    let man = stdout(&t.run(&["man"]));
    assert!(man.contains(".TH pcibind"), "{man}");
}

#[test]
fn sriov_lists_and_sets_the_vfs() {
    let tree = Tree::new();
    let pf = tree.root.join("bus/pci/devices").join(NIC);
    for (file, value) in [
        ("sriov_totalvfs", "4\n"),
        ("sriov_numvfs", "0\n"),
        ("sriov_drivers_autoprobe", "1\n"),
    ] {
        std::fs::write(pf.join(file), value).unwrap();
    }
    std::fs::write(
        tree.root
            .join("bus/pci/drivers/e1000e/fake_sriov_configure"),
        "",
    )
    .unwrap();

    let o = tree.run(&["sriov", NIC]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let o = tree.run(&["sriov", NIC, "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0000:00:02.1\n0000:00:02.2\n");
    assert_eq!(tree.driver_override("0000:00:02.1"), "none");
    assert_eq!(tree.driver("0000:00:02.1"), None);
    let o = tree.run(&["sriov", NIC]);
    assert_eq!(stdout(&o), "0000:00:02.1\n0000:00:02.2\n");

    let o = tree.run(&["sriov", NIC, "5"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 4"), "{}", stderr(&o));
    let o = tree.run(&["sriov", NIC, "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = tree.run(&["bind", "0000:00:02.1", "vfio-pci"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tree.run(&["sriov", NIC, "0"]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = tree.run(&["sriov", NIC, "0", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

/// `sriov PF N --dry-run` prints the library's plan (the writes, what a failure restores),
/// refuses what the real command refuses, and changes nothing.
#[test]
fn sriov_dry_run_prints_the_librarys_plan() {
    let tree = Tree::new();
    let pf = tree.root.join("bus/pci/devices").join(NIC);
    for (file, value) in [
        ("sriov_totalvfs", "4\n"),
        ("sriov_numvfs", "0\n"),
        ("sriov_drivers_autoprobe", "1\n"),
    ] {
        std::fs::write(pf.join(file), value).unwrap();
    }
    std::fs::write(
        tree.root
            .join("bus/pci/drivers/e1000e/fake_sriov_configure"),
        "",
    )
    .unwrap();

    let o = tree.run(&["sriov", NIC, "2", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(plan.starts_with("plan (nothing changed):\n"), "{plan}");
    let dev = pf.display().to_string();
    for line in [
        format!("write '0' to {dev}/sriov_drivers_autoprobe\n"),
        format!("write '2' to {dev}/sriov_numvfs (create 2 VFs)\n"),
        format!("write 'none' to {dev}/virtfn1/driver_override"),
        format!("if parking a new VF fails, restore {NIC}"),
    ] {
        assert!(plan.contains(&line), "{line} not in {plan}");
    }
    assert_eq!(tree.writes(), "");
    assert_eq!(stdout(&tree.run(&["sriov", NIC])), "");

    let o = tree.run(&["sriov", NIC, "2", "--dry-run", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [(format!("{NIC} planned e1000e -"), true)]
    );
    assert!(
        stdout(&o).contains("sriov_numvfs (create 2 VFs)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(tree.writes(), "");

    let o = tree.run(&["sriov", NIC, "5", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [(format!("{NIC} refused e1000e INVALID_ARG"), false)]
    );
    let o = tree.run(&["sriov", NIC, "5", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 4"), "{}", stderr(&o));
    let o = tree.run(&["sriov", NIC, "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    assert!(tree.run(&["sriov", NIC, "2"]).status.success());
    let o = tree.run(&["bind", "0000:00:02.1", "vfio-pci"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let writes = tree.writes();
    let o = tree.run(&["sriov", NIC, "0", "--dry-run"]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = tree.run(&["sriov", NIC, "0", "--dry-run", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("(remove its 2 VFs) from a child process"),
        "{}",
        stdout(&o)
    );
    assert_eq!(tree.writes(), writes);
    assert_eq!(tree.driver("0000:00:02.1").as_deref(), Some("vfio-pci"));
}

#[test]
fn bind_does_many_devices_in_parallel_and_reports_in_order() {
    let tree = Tree::new();
    let pf = tree.root.join("bus/pci/devices").join(NIC);
    for (file, value) in [
        ("sriov_totalvfs", "8\n"),
        ("sriov_numvfs", "0\n"),
        ("sriov_drivers_autoprobe", "1\n"),
    ] {
        std::fs::write(pf.join(file), value).unwrap();
    }
    std::fs::write(
        tree.root
            .join("bus/pci/drivers/e1000e/fake_sriov_configure"),
        "",
    )
    .unwrap();
    let o = tree.run(&["sriov", NIC, "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let vfs: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(vfs.len(), 6);
    let mut args: Vec<&str> = vec!["bind"];
    args.extend(vfs.iter().map(String::as_str));
    args.push("vfio-pci");
    let o = tree.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: String = vfs
        .iter()
        .map(|vf| format!("{vf}: bound to vfio-pci\n"))
        .chain(std::iter::once("6 devices: 6 done, 0 failed\n".to_owned()))
        .collect();
    assert_eq!(stdout(&o), expected);
    for vf in &vfs {
        assert_eq!(tree.driver(vf).as_deref(), Some("vfio-pci"));
    }
    // They are on vfio-pci: only a forced removal takes them away.
    let o = tree.run(&["sriov", NIC, "0", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

// ---- Saved overrides (SPEC 3.11, driverctl's format) ----------------------------------------

/// A "reboot": a fresh tree, every device back on its host driver, with the saved overrides
/// of `before` in its configuration directory.
fn reboot(before: &Tree) -> Tree {
    let after = Tree::new();
    std::fs::create_dir_all(after.config_dir()).unwrap();
    for entry in std::fs::read_dir(before.config_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), after.config_dir().join(entry.file_name())).unwrap();
    }
    after
}

#[test]
fn bind_persist_saves_the_driver_and_apply_puts_it_back_after_a_reboot() {
    let t = Tree::new();
    // Named in its module's spelling, and chosen (no DRIVER): the exact driver names are
    // saved, as driverctl writes them into driver_override as they are.
    let o = t.run(&["bind", "--persist", NIC, "vfio_pci"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("saved vfio-pci in"), "{}", stdout(&o));
    let o = t.run(&["bind", "--persist", VF]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(t.saved_file(NIC)).unwrap(),
        "vfio-pci\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.saved_file(VF)).unwrap(),
        "mlx5_vfio_pci\n"
    );
    let listed = stdout(&t.run(&["list", "--persisted"]));
    assert!(
        listed.contains(&format!("{NIC}  vfio-pci       vfio-pci       yes")),
        "{listed}"
    );

    let t = reboot(&t);
    let listed = stdout(&t.run(&["list", "--persisted", "--json"]));
    assert!(listed.contains(&format!("{{\"address\": \"{NIC}\", \"saved_driver\": \"vfio-pci\", \"present\": true, \"driver\": \"e1000e\", \"applied\": false}}")), "{listed}");
    let o = t.run(&["apply"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC).as_deref(), Some("vfio-pci"));
    assert_eq!(t.driver_override(NIC), "vfio-pci");
    assert_eq!(t.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
    // Applied again: nothing to do, nothing written.
    let writes = t.writes();
    assert_eq!(t.run(&["apply", NIC]).status.code(), Some(0));
    assert_eq!(t.writes(), writes);

    // reattach --persist drops the saved override; the other stays.
    let o = t.run(&["reattach", "--persist", NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    assert!(!t.saved_file(NIC).exists());
    assert!(t.saved_file(VF).exists());
    let t = reboot(&t);
    assert_eq!(t.run(&["apply"]).status.code(), Some(0));
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    assert_eq!(t.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
}

/// driverctl's `set-override ADDR none` saves `none`: applied, the device is left unbound.
#[test]
fn a_saved_none_leaves_the_device_unbound_and_a_module_spelling_is_resolved() {
    let t = Tree::new();
    std::fs::create_dir_all(t.config_dir()).unwrap();
    std::fs::write(t.saved_file(NIC), "none\n").unwrap();
    let o = t.run(&["apply", NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC), None);
    assert_eq!(t.driver_override(NIC), "none");
    assert!(!t.root.join("modprobe.log").exists());
    // A hand-written module spelling, which driverctl could not bind, is resolved.
    std::fs::write(t.saved_file(XE), "xe_vfio_pci\n").unwrap();
    let o = t.run(&["apply", XE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(XE).as_deref(), Some("xe-vfio-pci"));
    let o = t.run(&["bind", "--persist", VF, "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(t.saved_file(VF)).unwrap(), "none\n");
}

#[test]
fn apply_of_named_devices_needs_a_saved_override_and_skips_nothing_silently() {
    let t = Tree::new();
    std::fs::create_dir_all(t.config_dir()).unwrap();
    std::fs::write(t.saved_file(NIC), "vfio-pci\n").unwrap();
    std::fs::write(t.saved_file("0000:09:00.0"), "vfio-pci\n").unwrap();
    // driverctl's files for other buses are not ours.
    std::fs::write(t.config_dir().join("usb-1-1"), "usbhid\n").unwrap();
    // Named: one without a saved override, one absent: refused, nothing changed.
    let o = t.run(&["apply", NIC, XE]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("nothing is saved for {XE}")),
        "{}",
        stderr(&o)
    );
    let o = t.run(&["apply", "0000:09:00.0"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(t.untouched(), "{}", t.writes());
    // All: the absent device's override waits for it, quietly.
    let o = t.run(&["apply"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{NIC}: bound to vfio-pci, as saved\n"));
    assert_eq!(stderr(&o), "");
    let listed = stdout(&t.run(&["list", "--persisted"]));
    assert!(
        listed.contains("0000:09:00.0  vfio-pci  (not present)  no"),
        "{listed}"
    );
    // A stray file (an editor's backup) is skipped with a warning, not a reason to apply
    // nothing; named, it would still be refused (it names no device).
    std::fs::write(t.config_dir().join(format!("pci-{XE}~")), "vfio-pci\n").unwrap();
    std::fs::write(t.saved_file(XE), "vfio-pci\n").unwrap();
    let o = t.run(&["apply"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipping"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("pci-{XE}~")), "{}", stderr(&o));
    assert_eq!(t.driver(XE).as_deref(), Some("vfio-pci"));
}

/// What pcibind-early.service runs at boot before udev's coldplug: each saved driver written
/// into the override of an unbound device, nothing else (no module load, no probe); a bound
/// device, an absent one and an unusable file are each left alone, the last named.
/// `apply --overrides-only --json`: a written override is outcome `preset`, the device still
/// on no driver.
#[test]
fn apply_overrides_only_json_says_preset() {
    const LPC: &str = "0000:00:1f.0"; // bound to no driver in the example tree
    let t = Tree::new();
    std::fs::create_dir_all(t.config_dir()).unwrap();
    std::fs::write(t.saved_file(LPC), "vfio-pci\n").unwrap();
    let o = t.run(&["apply", "--overrides-only", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_results(&o), [(format!("{LPC} preset - -"), false)]);
    assert_eq!(t.driver_override(LPC), "vfio-pci");
    assert_eq!(t.driver(LPC), None);
}

#[test]
fn apply_overrides_only_presets_unbound_devices_and_nothing_else() {
    const LPC: &str = "0000:00:1f.0"; // bound to no driver in the example tree
    let t = Tree::new();
    std::fs::create_dir_all(t.config_dir()).unwrap();
    std::fs::write(t.saved_file(LPC), "vfio-pci\n").unwrap();
    std::fs::write(t.saved_file(NIC), "vfio-pci\n").unwrap();
    std::fs::write(t.saved_file("0000:09:00.0"), "vfio-pci\n").unwrap();
    std::fs::write(t.saved_file(XE), "vfio-pci\nxe\n").unwrap();
    std::fs::write(t.config_dir().join(format!("pci-{VF}~")), "vfio-pci\n").unwrap();
    let o = t.run(&["apply", "--overrides-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "{NIC}: bound to e1000e: driver_override not written (`pcibind apply` moves it)\n\
             {LPC}: driver_override set to vfio-pci, as saved (not probed)\n\
             2 devices: 2 done, 0 failed\n"
        )
    );
    says_all(
        &stderr(&o),
        &[
            &format!(
                "warning: unexpected content in {}",
                t.saved_file(XE).display()
            ),
            "more than one line",
            &format!("pci-{VF}~"),
        ],
    );
    assert_eq!(t.driver_override(LPC), "vfio-pci");
    assert_eq!(t.driver(LPC), None);
    assert_eq!(t.driver_override(NIC), "(null)");
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    assert_eq!(t.driver_override(XE), "(null)");
    assert!(!t.root.join("modprobe.log").exists(), "a module was loaded");
    // Only the one override was written.
    let writes = t.writes();
    assert_eq!(writes.lines().count(), 1, "{writes}");
    assert!(
        writes.contains(LPC) && writes.contains("driver_override"),
        "{writes}"
    );
    // Again: the override is there already, nothing written.
    let o = t.run(&["apply", "--overrides-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("{LPC}: driver_override is vfio-pci already")),
        "{}",
        stdout(&o)
    );
    assert_eq!(t.writes(), writes);
    let o = t.run(&["apply", "--overrides-only", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [
            (format!("{NIC} unchanged e1000e -"), false),
            (format!("{LPC} unchanged - -"), false),
        ]
    );
    // It takes no device and no check options: it moves nothing.
    for args in [
        &["apply", "--overrides-only", LPC][..],
        &["apply", "--overrides-only", "--force"][..],
    ] {
        assert_eq!(t.run(args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(t.writes(), writes);
    // Nothing saved: nothing to do. A directory that cannot be read: the command fails.
    let t = Tree::new();
    let o = t.run(&["apply", "--overrides-only"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), String::new()));
    std::fs::write(t.config_dir(), "not a directory\n").unwrap();
    let o = t.run(&["apply", "--overrides-only"]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    assert!(t.untouched(), "{}", t.writes());
}

#[test]
fn malformed_saved_overrides_are_refused_with_their_reason() {
    let t = Tree::new();
    let dir = t.config_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &str); 4] = [
        ("0000:00:02.0", ""),
        ("0000:3b:00.2", "vfio-pci\nnvme\n"),
        ("0000:03:00.0", "../../evil\n"),
        ("0000:01:00.0", "\u{0}\u{1}binary"),
    ];
    for (bdf, content) in cases {
        std::fs::write(t.saved_file(bdf), content).unwrap();
    }
    std::os::unix::fs::symlink("/etc/hostname", t.saved_file("0000:01:00.1")).unwrap();
    std::fs::create_dir(t.saved_file("0000:00:01.0")).unwrap();
    std::fs::write(dir.join("pci-3b:00.2"), "vfio-pci\n").unwrap();

    let o = t.run(&["apply"]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    says_all(
        &stderr(&o),
        &[
            "pci-0000:00:02.0: empty",
            "pci-0000:3b:00.2: more than one line",
            "pci-0000:03:00.0: driver name \"../../evil\" contains '/'",
            "pci-0000:01:00.0: driver name",
            "pci-0000:01:00.1: a symbolic link; refusing to follow it",
            "pci-0000:00:01.0: not a regular file",
            "pci-3b:00.2: its name is no PCI address", // skipped, with a warning
            "nothing was changed",
        ],
    );
    assert!(t.untouched(), "{}", t.writes());
    let o = t.run(&["list", "--persisted"]);
    assert_eq!(o.status.code(), Some(11));
    assert!(
        stderr(&o).contains("pci-3b:00.2: the name is not pci- and a PCI address"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "ADDRESS  SAVED  DRIVER  APPLIED\n");

    // A saved file that is a link is not replaced, and that is found before the bind: no
    // device is moved that could not be recorded.
    let o = t.run(&["bind", "--persist", "0000:01:00.1", "vfio-pci"]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    says_all(
        &stderr(&o),
        &["a symbolic link; not replacing it", "nothing was changed"],
    );
    assert!(
        t.untouched(),
        "{} / {:?}",
        t.writes(),
        std::fs::read_to_string(t.root.join("modprobe.log"))
    );
    // Nor is a directory that cannot be written.
    let t2 = Tree::new();
    std::fs::write(t2.root.join("not-a-dir"), "").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pcibind"))
        .arg("--sysfs-root")
        .arg(&t2.root)
        .arg("--config-dir")
        .arg(t2.root.join("not-a-dir/sub"))
        .args(["bind", "--persist", NIC, "vfio-pci"])
        .env("LD_PRELOAD", &helpers().0)
        .env("FAKE_SYSFS_ROOT", &t2.root)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was changed"), "{}", stderr(&o));
    assert!(t2.untouched(), "{}", t2.writes());
    assert_eq!(
        std::fs::read_link(t.saved_file("0000:01:00.1")).unwrap(),
        Path::new("/etc/hostname")
    );
    // A dry run saves nothing: refused as a usage error.
    assert_eq!(
        t.run(&["bind", "--persist", "--dry-run", XE]).status.code(),
        Some(2)
    );
}

/// The whole group moves, and each member on a VFIO driver afterwards is saved with its driver,
/// also one that was there already: after a boot the group must be viable again.
#[test]
fn bind_group_persist_saves_every_member_on_vfio() {
    let t = Tree::new();
    assert_eq!(
        t.run(&["bind", "0000:01:00.1", "vfio-pci"]).status.code(),
        Some(0)
    );
    let o = t.run(&["bind", "--group", "--persist", GPU]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for bdf in [GPU, "0000:01:00.1"] {
        assert_eq!(
            std::fs::read_to_string(t.saved_file(bdf)).unwrap(),
            "vfio-pci\n"
        );
    }
    let o = t.run(&["reattach", "--group", "--persist", GPU]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(t.config_dir()).unwrap().count(), 0);
}

// ---- Network interface names for devices ------------------------------------------------------

impl Tree {
    /// A network interface below `device_dir` (relative to the root), with class/net/NAME, its
    /// device link and its `flags` (down: the in-use check refuses an interface whose flags it
    /// cannot read) as the kernel has them; `bus` is the device's subsystem link's target.
    fn add_interface(&self, name: &str, device_dir: Option<&str>, bus: Option<&str>) {
        use std::os::unix::fs::symlink;
        let class = self.root.join("class/net");
        std::fs::create_dir_all(&class).unwrap();
        let Some(device_dir) = device_dir else {
            let dir = self.root.join("devices/virtual/net").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("flags"), "0x1002\n").unwrap();
            symlink(
                format!("../../devices/virtual/net/{name}"),
                class.join(name),
            )
            .unwrap();
            return;
        };
        let device = self.root.join(device_dir);
        let dir = device.join("net").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("flags"), "0x1002\n").unwrap();
        let device_name = Path::new(device_dir).file_name().unwrap().to_str().unwrap();
        symlink(format!("../../../{device_name}"), dir.join("device")).unwrap();
        if let Some(bus) = bus {
            let up = "../".repeat(device_dir.matches('/').count() + 1);
            let _ = symlink(format!("{up}bus/{bus}"), device.join("subsystem"));
        }
        symlink(format!("../../{device_dir}/net/{name}"), class.join(name)).unwrap();
    }
}

#[test]
fn interface_names_stand_for_their_pci_devices() {
    let t = Tree::new();
    t.add_interface("eth0", Some("devices/pci0000:00/0000:00:02.0"), Some("pci"));
    // virtio-net: the interface's device is virtio0, on the virtio PCI function.
    t.add_interface(
        "eth1",
        Some("devices/pci0000:00/0000:00:01.0/virtio0"),
        Some("virtio"),
    );
    t.add_interface("br0", None, None);
    t.add_interface(
        "usb0",
        Some("devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0"),
        Some("usb"),
    );
    // The shell completions offer the interfaces that stand for a PCI device, and only those.
    let o = t.run(&["__complete", "interfaces"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "eth0\neth1\n");

    let shown = stdout(&t.run(&["show", "eth0", "--json"]));
    assert!(
        shown.contains(&format!("\"address\": \"{NIC}\"")),
        "{shown}"
    );
    assert_eq!(stdout(&t.run(&["variant", "eth1"])), "virtio_vfio_pci\n");
    // The last argument is a device when an interface has that name, so both are bound.
    let o = t.run(&["bind", "eth0", "eth1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC).as_deref(), Some("vfio-pci"));
    assert_eq!(t.driver("0000:00:01.0").as_deref(), Some("virtio_vfio_pci"));
    assert_eq!(
        t.run(&["reattach", NIC, "0000:00:01.0"]).status.code(),
        Some(0)
    );
    let writes = t.writes();

    for (name, why) in [
        ("br0", "network interface \"br0\" has no device"),
        (
            "usb0",
            "network interface \"usb0\" is on usb device \"1-1:1.0\", not on a PCI device",
        ),
        ("eth9", "no network interface is named \"eth9\""),
        ("averyverylongname", "is not a network interface name"),
        ("..", "is not a network interface name"),
    ] {
        let o = t.run(&["bind", name, "vfio-pci"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert_eq!(t.run(&["show", name]).status.code(), Some(2), "{name}");
    }
    // An interface that has a driver's name is not taken for its device in the DRIVER's
    // place: the NIC behind "e1000e" is not moved. So for a driver's other spelling
    // ("virtio_pci" for virtio-pci) and a module's name with no driver of that name ("8250-pci",
    // whose driver is "serial").
    for name in ["e1000e", "virtio_pci", "8250-pci"] {
        t.add_interface(name, Some("devices/pci0000:00/0000:00:02.0"), Some("pci"));
        let o = t.run(&["bind", "--dry-run", VF, name]);
        assert!(
            !stdout(&o).contains(NIC) && !stderr(&o).contains(NIC),
            "{name}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    assert_eq!(t.writes(), writes, "a dry run wrote");
    let o = t.run(&["unbind", NIC, "eth0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{NIC} is given twice")),
        "{}",
        stderr(&o)
    );
    assert_eq!(t.writes(), writes, "a refused command wrote");
}

// ---- The status view --------------------------------------------------------------------------

#[test]
fn status_groups_devices_by_driver_with_group_viability() {
    let t = Tree::new();
    assert_eq!(t.run(&["bind", "--group", GPU]).status.code(), Some(0));
    assert_eq!(t.run(&["unbind", XE]).status.code(), Some(0));
    let o = t.run(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let vfio = out.find("Devices on a VFIO driver").unwrap();
    let host = out.find("Devices on a host driver").unwrap();
    let none = out.find("Devices on no driver").unwrap();
    assert!(vfio < host && host < none, "{out}");
    let at = |line: &str| {
        out.find(line)
            .unwrap_or_else(|| panic!("{line} missing in {out}"))
    };
    let gpu = at(&format!(
        "{GPU} 10de:2204 'VGA controller' drv=vfio-pci iommu_group=5 viable"
    ));
    assert!(vfio < gpu && gpu < host);
    let nic = at(&format!(
        "{NIC} 8086:10d3 'Ethernet controller' drv=e1000e iommu_group=2 not viable: {NIC} on e1000e"
    ));
    assert!(host < nic && nic < none);
    let xe = at(&format!(
        "{XE} 8086:e20b 'VGA controller' drv=- iommu_group=6 viable"
    ));
    assert!(none < xe);

    let json = stdout(&t.run(&["status", "--json"]));
    let vfio = json.find("\"vfio\": [").unwrap();
    let host = json.find("\"host\": [").unwrap();
    let gpu = json.find(&format!("\"address\": \"{GPU}\"")).unwrap();
    assert!(vfio < gpu && gpu < host, "{json}");
    assert!(json.contains("\"vfio_bound\": true, \"vfio_driver_module\": \"vfio_pci\", \"iommu_group_viable\": true, \"iommu_group_blocking\": []"), "{json}");
    assert!(
        json.contains(&format!(
            "\"iommu_group_viable\": false, \"iommu_group_blocking\": [\"{NIC}\"]"
        )),
        "{json}"
    );
}

/// The tool hands the library the name as typed: `8250_pci` is the module of the built-in
/// driver `serial`, and only the module name finds its aliases for the claim check (0.2
/// resolved it to `serial` first, found no aliases, and allowed anything).
#[test]
fn a_module_name_reaches_the_claim_check_as_typed() {
    let t = Tree::new();
    let mut modinfo = Vec::new();
    modinfo.extend_from_slice(b"8250_pci.alias=pci:v*d*sv*sd*bc07sc00i*\0");
    std::fs::write(t.root.join("lib-modules/modules.builtin.modinfo"), modinfo).unwrap();
    let isa = "0000:00:1f.0"; // an ISA bridge: no serial port
    let o = t.run(&["bind", isa, "8250_pci"]);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    says_all(&stderr(&o), &["'serial' does not claim", "8250_pci"]);
    assert_eq!(t.writes(), "");
}

/// `unbind` and `reattach DRIVER` refuse the host's NIC as `bind` does, unless --force.
#[test]
fn unbind_and_reattach_refuse_an_in_use_nic_unless_forced() {
    let t = Tree::new();
    t.nic_carries_the_hosts_traffic();
    for args in [
        &["unbind", NIC][..],
        &["reattach", NIC, "vfio-pci"],
        &["bind", NIC, "none"],
    ] {
        let o = t.run(args);
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("eth0 is up"), "{}", stderr(&o));
    }
    assert_eq!(t.writes(), "");
    assert_eq!(t.run(&["unbind", NIC, "--force"]).status.code(), Some(0));
    assert_eq!(t.driver(NIC), None);
}

/// A transaction whose caller died: `status` and `show` say so, `recover` rolls it back.
#[test]
fn recover_rolls_back_what_status_shows_interrupted() {
    let t = Tree::new();
    // What a bind killed after its first write leaves: the override, and the record.
    std::fs::create_dir_all(t.root.join("locks")).unwrap();
    std::fs::write(
        t.root.join(format!("locks/{NIC}.lock")),
        "pcibind-record 1\npid 4242\ndoing binding to vfio-pci\ndriver e1000e\n\
         override-unset\nmay-leave vfio-pci\n",
    )
    .unwrap();
    std::fs::write(
        t.root
            .join(format!("bus/pci/devices/{NIC}/driver_override")),
        "vfio-pci\n",
    )
    .unwrap();
    let status = stdout(&t.run(&["status"]));
    says_all(
        &status,
        &[
            "Interrupted transactions",
            &format!(
                "{NIC} interrupted: binding to vfio-pci (process 4242), started bound to e1000e"
            ),
        ],
    );
    says_all(
        &stdout(&t.run(&["status", "--json"])),
        &[&format!(
            "\"interrupted\": [{{\"address\": \"{NIC}\", \"transaction\": \"binding to vfio-pci"
        )],
    );
    says_all(
        &stdout(&t.run(&["show", NIC])),
        &["transaction:     interrupted: binding to vfio-pci"],
    );
    let o = t.run(&["recover"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    says_all(&stdout(&o), &[&format!("{NIC}: rolled back")]);
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    assert_eq!(t.driver_override(NIC), "(null)");
    says_all(
        &stdout(&t.run(&["recover"])),
        &["no interrupted transaction to roll back"],
    );
    assert!(!stdout(&t.run(&["status"])).contains("Interrupted"));
}

/// A device on vfio-pci whose group node a process holds open (a running VM): `status` and
/// `show` name the process, and `reattach` refuses it unless --force.
#[test]
fn status_and_show_name_the_vmm_holding_a_device() {
    let t = Tree::new();
    let dev = t.root.join("dev");
    std::fs::create_dir_all(dev.join("vfio")).unwrap();
    let dev_arg = dev.to_str().unwrap();
    let o = t.run(&["--dev-root", dev_arg, "bind", NIC, "vfio-pci"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let node = dev.join("vfio/2");
    assert!(node.exists(), "the shim made the group node");
    let fd_dir = t.root.join("proc/4242/fd");
    std::fs::create_dir_all(&fd_dir).unwrap();
    std::fs::write(t.root.join("proc/4242/comm"), "qemu-system-x86\n").unwrap();
    std::os::unix::fs::symlink(&node, fd_dir.join("9")).unwrap();
    let status = stdout(&t.run(&["--dev-root", dev_arg, "status"]));
    says_all(
        &status,
        &[&format!(
            "{NIC} 8086:10d3 'Ethernet controller' drv=vfio-pci iommu_group=2 viable held by \
             process 4242 (qemu-system-x86)"
        )],
    );
    says_all(
        &stdout(&t.run(&["--dev-root", dev_arg, "status", "--json"])),
        &["\"vmm_holders\": [{\"pid\": 4242, \"command\": \"qemu-system-x86\"}]"],
    );
    says_all(
        &stdout(&t.run(&["--dev-root", dev_arg, "show", NIC])),
        &["held by a VMM: process 4242 (qemu-system-x86)"],
    );
    let o = t.run(&["--dev-root", dev_arg, "reattach", NIC]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert_eq!(t.driver(NIC).as_deref(), Some("vfio-pci"));
    let o = t.run(&["--dev-root", dev_arg, "reattach", NIC, "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
}

// ---- bind --owner: the VFIO nodes for a VMM that does not run as root -------------------------

/// The tree's dev root as the kernel would have it with the VFIO character device: the
/// container and /dev/iommu there from the start, group and device nodes made by the shim as
/// devices bind.
fn vfio_dev_root(t: &Tree) -> PathBuf {
    let dev = t.root.join("dev");
    std::fs::create_dir_all(dev.join("vfio/devices")).unwrap();
    std::fs::write(dev.join("vfio/vfio"), "").unwrap();
    std::fs::write(dev.join("iommu"), "").unwrap();
    dev
}

fn owner_of(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// Changing a node's owner needs root; these tests say so and check nothing otherwise.
fn can_chown() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED: not root, so --owner cannot change the fake nodes' owner");
    }
    root
}

const AUDIO: &str = "0000:01:00.1"; // the GPU's HDMI audio function, IOMMU group 5 with it

#[test]
fn owner_gives_the_group_node_and_the_cdev_and_reattach_gives_them_back() {
    if !can_chown() {
        return;
    }
    let t = Tree::new();
    let dev = vfio_dev_root(&t);
    let dev_arg = dev.to_str().unwrap();
    let o = t.run(&[
        "--dev-root",
        dev_arg,
        "bind",
        "--owner",
        "4242:4343",
        NIC,
        "vfio-pci",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (group, cdev) = (dev.join("vfio/2"), dev.join("vfio/devices/vfio0"));
    says_all(
        &stdout(&o),
        &[&format!(
            "{NIC}: bound to vfio-pci; {} and {} given to 4242:4343",
            group.display(),
            cdev.display()
        )],
    );
    assert_eq!(owner_of(&group), (4242, 4343));
    assert_eq!(owner_of(&cdev), (4242, 4343));
    // The nodes every device shares stay root's.
    assert_eq!(owner_of(&dev.join("vfio/vfio")), (0, 0));
    assert_eq!(owner_of(&dev.join("iommu")), (0, 0));

    // Both functions of group 5, USER alone: the owner changes, the group stays root's.
    let o = t.run(&["--dev-root", dev_arg, "bind", "--owner", "4242", GPU, AUDIO]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let group5 = dev.join("vfio/5");
    assert_eq!(owner_of(&group5), (4242, 0));
    for cdev in ["vfio/devices/vfio1", "vfio/devices/vfio2"] {
        assert_eq!(owner_of(&dev.join(cdev)), (4242, 0), "{cdev}");
    }
    // The GPU back to the host: the kernel removes its cdev; group 5's node stays (the audio
    // function is still on vfio-pci) and goes back to root.
    let o = t.run(&["--dev-root", dev_arg, "reattach", GPU]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    says_all(
        &stdout(&o),
        &[&format!(
            "{GPU}: bound to nouveau; {} given back to root",
            group5.display()
        )],
    );
    assert_eq!(owner_of(&group5), (0, 0));
    // A device whose nodes are root's already: reattach says nothing of them.
    let o = t.run(&["--dev-root", dev_arg, "reattach", AUDIO]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("given back"), "{}", stdout(&o));
}

/// A group node opens every member of the group: it is given only with all of them, and the
/// refusal names the others and changes nothing; --group gives the whole group.
#[test]
fn owner_refuses_a_group_node_shared_with_a_device_not_given() {
    if !can_chown() {
        return;
    }
    let t = Tree::new();
    let dev = vfio_dev_root(&t);
    let dev_arg = dev.to_str().unwrap();
    let o = t.run(&["--dev-root", dev_arg, "bind", "--owner", "4242", GPU]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    says_all(
        &stderr(&o),
        &[
            &format!("{GPU}: --owner 4242 would give its IOMMU group's node (vfio/5)"),
            &format!("opens {AUDIO} too"),
            "nothing was changed",
        ],
    );
    assert_eq!(t.writes(), "");
    assert_eq!(t.driver(GPU).as_deref(), Some("nouveau"));

    // A user by name, with its login group (`USER:`), where the system has `nobody`.
    let (user, ids) = match Command::new("id").args(["-u", "nobody"]).output() {
        Ok(o) if o.status.success() => {
            let uid: u32 = stdout(&o).trim().parse().unwrap();
            let g = Command::new("id").args(["-g", "nobody"]).output().unwrap();
            ("nobody:", (uid, stdout(&g).trim().parse::<u32>().unwrap()))
        }
        _ => ("4242:4242", (4242, 4242)),
    };
    let o = t.run(&[
        "--dev-root",
        dev_arg,
        "bind",
        "--group",
        "--owner",
        user,
        GPU,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(owner_of(&dev.join("vfio/5")), ids);
    assert_eq!(owner_of(&dev.join("vfio/devices/vfio0")), ids);
    assert_eq!(owner_of(&dev.join("vfio/devices/vfio1")), ids);
    // reattach --group gives back what is left of them (here: nothing, the kernel removed
    // them all with the group's last device).
    let o = t.run(&["--dev-root", dev_arg, "reattach", "--group", GPU]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!dev.join("vfio/5").exists());
}

/// --owner needs a VFIO driver and a known user, checked before anything changes; a dry run
/// says what it would give.
#[test]
fn owner_is_refused_for_a_non_vfio_target_or_an_unknown_user() {
    let t = Tree::new();
    let dev = vfio_dev_root(&t);
    let dev_arg = dev.to_str().unwrap();
    for (args, status, why) in [
        (
            vec!["bind", "--owner", "4242", NIC, "none"],
            2,
            "DRIVER `none` leaves them on no driver",
        ),
        (
            vec!["bind", "--owner", "4242", NIC, "nouveau"],
            9,
            "it is not a VFIO driver, and a VFIO driver was required",
        ),
        (
            vec!["bind", "--owner", "no-such-user-pcibind", NIC],
            2,
            "no user is named \"no-such-user-pcibind\"",
        ),
        (
            vec!["bind", "--owner", "4242:no-such-group-pcibind", NIC],
            2,
            "no group is named \"no-such-group-pcibind\"",
        ),
    ] {
        let mut all = vec!["--dev-root", dev_arg];
        all.extend(&args);
        let o = t.run(&all);
        assert_eq!(o.status.code(), Some(status), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
        assert_eq!(t.writes(), "", "{args:?} wrote");
        assert_eq!(t.driver(NIC).as_deref(), Some("e1000e"));
    }
    let o = t.run(&[
        "--dev-root",
        dev_arg,
        "bind",
        "--dry-run",
        "--owner",
        "4242",
        NIC,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    says_all(
        &stdout(&o),
        &["then give the device's VFIO group node and character device to 4242"],
    );
    assert_eq!(t.writes(), "");
}

// ---- --json results ----------------------------------------------------------------------------

/// The objects of a `--json` result, checked to be one valid JSON array (by Python's parser),
/// each as `address outcome driver error` with `-` for null, and whether it has a plan.
fn json_results(o: &Output) -> Vec<(String, bool)> {
    let script = r#"
import json, sys
items = json.load(sys.stdin)
assert isinstance(items, list), items
for i in items:
    keys = {"address", "outcome", "driver", "error", "message", "plan", "group_moved"}
    assert set(i) == keys or set(i) == {"address", "outcome", "driver", "vfs", "plan", "error", "message"}, i
    assert (i["error"] is None) == (i["message"] is None), i
    f = lambda v: "-" if v is None else v
    print(f(i["address"]), i["outcome"], f(i["driver"]), f(i["error"]), bool(i.get("plan")))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not a JSON result array: {}\n{}",
        stdout(o),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (fields, plan) = l.rsplit_once(' ').unwrap();
            (fields.to_owned(), plan == "True")
        })
        .collect()
}

#[test]
fn json_results_of_a_bind_that_succeeds_and_one_already_done() {
    let t = Tree::new();
    let o = t.run(&["bind", "--json", VF, XE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [
            (format!("{VF} moved mlx5_vfio_pci -"), false),
            (format!("{XE} moved xe-vfio-pci -"), false),
        ]
    );
    assert!(!stdout(&o).contains("devices:"), "no summary line in JSON");
    let o = t.run(&["bind", "--json", VF]);
    assert_eq!(
        json_results(&o),
        [(format!("{VF} unchanged mlx5_vfio_pci -"), false)]
    );
    let o = t.run(&["reattach", "--json", VF, XE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [
            (format!("{VF} moved mlx5_core -"), false),
            (format!("{XE} moved xe -"), false),
        ]
    );
    let o = t.run(&["unbind", "--json", NIC]);
    assert_eq!(json_results(&o), [(format!("{NIC} moved - -"), false)]);
}

/// A refused device: its code name and where it still is; the exit status as without --json.
/// With several devices one failing, each has its object, in the order given.
#[test]
fn json_results_of_a_refusal_and_of_several_devices_with_one_failing() {
    let t = Tree::new();
    t.nic_carries_the_hosts_traffic();
    let o = t.run(&["bind", "--json", NIC, "vfio-pci"]);
    assert_eq!(o.status.code(), Some(8));
    assert_eq!(
        json_results(&o),
        [(format!("{NIC} refused e1000e IN_USE"), false)]
    );
    assert!(stdout(&o).contains("--allow in-use or --force overrides this check"));
    assert!(stderr(&o).contains("eth0 is up"), "messages stay on stderr");

    let o = t.run(&["bind", "--json", VF, NIC, XE]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [
            (format!("{VF} moved mlx5_vfio_pci -"), false),
            (format!("{NIC} refused e1000e IN_USE"), false),
            (format!("{XE} moved xe-vfio-pci -"), false),
        ]
    );
    // Refused before any device is touched: one object per reason, nothing changed.
    let writes = t.writes();
    let o = t.run(&["unbind", "--json", GPU, "0000:77:00.0", "zz:1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        json_results(&o),
        [("zz:1 refused - INVALID_ADDRESS".to_owned(), false)]
    );
    let o = t.run(&["unbind", "--json", GPU, "0000:77:00.0"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        json_results(&o),
        [("0000:77:00.0 refused - NO_DEVICE".to_owned(), false)]
    );
    let o = t.run(&["bind", "--json", GPU, "no-such-driver"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        json_results(&o),
        [("- refused - NO_DRIVER".to_owned(), false)]
    );
    assert_eq!(t.writes(), writes, "a refused command wrote");
}

#[test]
fn json_results_of_dry_runs_hold_the_plan_and_change_nothing() {
    let t = Tree::new();
    let writes = t.writes();
    let o = t.run(&["bind", "--json", "--dry-run", VF, NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [
            (format!("{VF} planned - -"), true),
            (format!("{NIC} planned - -"), true),
        ]
    );
    assert!(
        stdout(&o).contains("by its alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*"),
        "{}",
        stdout(&o)
    );
    // vfio-pci is not loaded in the tree: only loading it would tell its driver's name.
    let o = t.run(&["reattach", "--json", "--dry-run", GPU, "vfio-pci"]);
    assert_eq!(json_results(&o), [(format!("{GPU} planned - -"), true)]);
    let o = t.run(&["reattach", "--json", "--dry-run", XE, "xe"]);
    assert_eq!(json_results(&o), [(format!("{XE} planned xe -"), true)]);
    let o = t.run(&["unbind", "--json", "--dry-run", XE]);
    assert_eq!(json_results(&o), [(format!("{XE} planned - -"), true)]);
    let o = t.run(&["bind", "--json", "--dry-run", "--group", GPU]);
    assert_eq!(json_results(&o), [(format!("{GPU} planned - -"), true)]);
    assert_eq!(t.writes(), writes, "a dry run wrote");
}

#[test]
fn json_results_of_apply_recover_and_sriov() {
    let t = Tree::new();
    let o = t.run(&["bind", "--persist", VF]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = t.run(&["reattach", VF]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = t.run(&["apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [(format!("{VF} moved mlx5_vfio_pci -"), false)]
    );
    let o = t.run(&["apply", "--json", NIC]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        json_results(&o),
        [("- refused - INVALID_ARG".to_owned(), false)]
    );

    let o = t.run(&["recover", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_results(&o), []);
    let o = t.run(&["recover", "--json", NIC]);
    assert_eq!(
        json_results(&o),
        [(format!("{NIC} unchanged e1000e -"), false)]
    );

    let o = t.run(&["sriov", "--json", XE]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    let results = json_results(&o);
    assert_eq!(results.len(), 1);
    assert!(
        results[0].0.starts_with(&format!("{XE} refused xe ")),
        "{results:?}"
    );
}

/// --owner with --json: a give that fails after the bind is the device's failure, an I/O error
/// (`failed`, on the driver it was bound to), as stderr says; refusals are `refused` objects;
/// a dry run's plan (text and JSON) ends with the give, and reattach's with the give back.
#[test]
fn owner_with_json_and_dry_run() {
    let t = Tree::new();
    let dev = vfio_dev_root(&t);
    let dev_arg = dev.to_str().unwrap();
    let writes = t.writes();
    let o = t.run(&[
        "--dev-root",
        dev_arg,
        "bind",
        "--json",
        "--dry-run",
        "--owner",
        "4242",
        NIC,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_results(&o), [(format!("{NIC} planned - -"), true)]);
    let note = "then give the device's VFIO group node and character device to 4242";
    assert!(
        stdout(&o).contains(&format!("\"{note}\"]")),
        "the plan's last line: {}",
        stdout(&o)
    );
    let o = t.run(&[
        "--dev-root",
        dev_arg,
        "bind",
        "--json",
        "--owner",
        "4242",
        GPU,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [(format!("{GPU} refused nouveau INVALID_ARG"), false)]
    );
    assert_eq!(t.writes(), writes, "nothing changed");

    // A dev root where the kernel made no node: the bind stands, the give fails.
    let empty = t.root.join("no-dev");
    std::fs::create_dir_all(&empty).unwrap();
    let o = t.run(&[
        "--dev-root",
        empty.to_str().unwrap(),
        "bind",
        "--json",
        "--owner",
        "4242",
        NIC,
        "vfio-pci",
    ]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [(format!("{NIC} failed vfio-pci IO"), false)]
    );
    says_all(
        &stdout(&o),
        &[
            "giving the VFIO nodes of a device bound to --owner",
            "no group or device node of",
        ],
    );
    says_all(
        &stderr(&o),
        &[&format!(
            "{NIC}: bound to vfio-pci, but it has no VFIO group or device node to give to 4242"
        )],
    );
    assert_eq!(t.driver(NIC).as_deref(), Some("vfio-pci"));
    let o = t.run(&["--dev-root", empty.to_str().unwrap(), "reattach", NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    if !can_chown() {
        return;
    }
    let o = t.run(&[
        "--dev-root",
        dev_arg,
        "bind",
        "--json",
        "--owner",
        "4242",
        NIC,
        "vfio-pci",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_results(&o),
        [(format!("{NIC} moved vfio-pci -"), false)]
    );
    let group = dev.join("vfio/2");
    assert_eq!(owner_of(&group), (4242, 0));
    let o = t.run(&["--dev-root", dev_arg, "reattach", "--dry-run", NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    says_all(
        &stdout(&o),
        &[
            &format!("then give {} and ", group.display()),
            "back to root",
        ],
    );
    assert_eq!(owner_of(&group), (4242, 0), "a dry run changed an owner");
    let o = t.run(&["--dev-root", dev_arg, "reattach", "--json", NIC]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_results(&o), [(format!("{NIC} moved e1000e -"), false)]);
}
