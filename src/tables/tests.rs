//! The tables' owner: reads counted, freshness (a table rewritten in place, a re-pointed
//! directory, a modinfo that appears), the questions without tables.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const VF: &str = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";
const NIC: &str = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

fn tables_text(variant: &str) -> String {
    format!(
        "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n\
         alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n\
         alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
         alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* {variant}\n"
    )
}

fn m(name: &str) -> ModuleName {
    ModuleName::new(name).unwrap()
}

fn modalias(text: &str) -> Modalias {
    Modalias::parse(text).unwrap()
}

fn variant(tables: &ModuleTables) -> String {
    let address = PciAddress::parse("0000:3b:00.2").unwrap();
    tables
        .best_vfio_module(&address, &modalias(VF), &Logger::default())
        .to_string()
}

#[test]
fn claim_checks_and_host_lookups_read_the_tables_once() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(ALIAS_FILE), tables_text("mlx5_vfio_pci")).unwrap();
    let tables = ModuleTables::new(Some(dir.path().to_path_buf()));
    let log = Logger::default();
    for _ in 0..100 {
        let claims =
            |module, device, side| tables.claims(&m(module), &modalias(device), side, &log);
        assert_eq!(claims("e1000e", NIC, Side::Host).unwrap(), Some(true));
        assert_eq!(claims("e1000e", VF, Side::Host).unwrap(), Some(false));
        assert_eq!(claims("igb", NIC, Side::Host).unwrap(), None);
        assert_eq!(claims("mlx5_vfio_pci", VF, Side::Vfio).unwrap(), Some(true));
        assert_eq!(
            claims("mlx5_vfio_pci", NIC, Side::Vfio).unwrap(),
            Some(false)
        );
        assert_eq!(
            tables.host_modules(&modalias(VF), &log).unwrap(),
            [m("mlx5_core")]
        );
        assert!(tables.is_vfio_module(&m("mlx5_vfio_pci"), &log));
        assert!(!tables.is_vfio_module(&m("e1000e"), &log));
        assert_eq!(variant(&tables), "mlx5_vfio_pci");
    }
    // The host side was read first, and its pass filled the vfio_pci: side too.
    assert_eq!(tables.reads(), 1);
}

#[test]
fn a_variant_lookup_reads_only_the_vfio_side_then_a_host_question_reads_once_more() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(ALIAS_FILE), tables_text("mlx5_vfio_pci")).unwrap();
    let tables = ModuleTables::new(Some(dir.path().to_path_buf()));
    let log = Logger::default();
    assert_eq!(variant(&tables), "mlx5_vfio_pci");
    assert_eq!(tables.reads(), 1);
    for _ in 0..10 {
        assert_eq!(
            tables.host_modules(&modalias(NIC), &log).unwrap(),
            [m("e1000e")]
        );
        assert_eq!(variant(&tables), "mlx5_vfio_pci");
    }
    assert_eq!(tables.reads(), 2);
}

#[test]
fn a_table_rewritten_in_place_with_size_and_mtime_put_back_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ALIAS_FILE);
    fs::write(&path, tables_text("first_vfio_pci")).unwrap();
    let tables = ModuleTables::new(Some(dir.path().to_path_buf()));
    assert_eq!(variant(&tables), "first_vfio_pci");
    let before = fs::metadata(&path).unwrap();
    // Past the file system's timestamp granularity, so the rewrite gets a new ctime.
    std::thread::sleep(Duration::from_millis(50));
    // As `cp -p` over it would: same inode, same size, the old mtime set back.
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    io::Write::write_all(&mut &file, tables_text("other_vfio_pci").as_bytes()).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
    drop(file);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(
        (after.ino(), after.size(), after.modified().unwrap()),
        (before.ino(), before.size(), before.modified().unwrap())
    );
    assert_eq!(variant(&tables), "other_vfio_pci");
    assert_eq!(tables.reads(), 2);
    assert_eq!(variant(&tables), "other_vfio_pci");
    assert_eq!(tables.reads(), 2);
}

#[test]
fn a_re_pointed_modules_dir_symlink_leads_to_the_new_tables() {
    let base = tempfile::tempdir().unwrap();
    for (kernel, variant) in [("k1", "first_vfio_pci"), ("k2", "other_vfio_pci")] {
        fs::create_dir(base.path().join(kernel)).unwrap();
        fs::write(
            base.path().join(kernel).join(ALIAS_FILE),
            tables_text(variant),
        )
        .unwrap();
    }
    let current = base.path().join("current");
    symlink("k1", &current).unwrap();
    let tables = ModuleTables::new(Some(current.clone()));
    assert_eq!(variant(&tables), "first_vfio_pci");
    // Re-pointed atomically, as package managers switch a link.
    symlink("k2", base.path().join("current.new")).unwrap();
    fs::rename(base.path().join("current.new"), &current).unwrap();
    assert_eq!(variant(&tables), "other_vfio_pci");
    assert_eq!(tables.reads(), 2);
}

#[test]
fn a_builtin_modinfo_that_appears_or_changes_is_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(ALIAS_FILE), tables_text("mlx5_vfio_pci")).unwrap();
    let tables = ModuleTables::new(Some(dir.path().to_path_buf()));
    let log = Logger::default();
    let nvme = modalias("pci:v00008086d0000F1A8sv00008086sd0000390Bbc01sc08i02");
    assert_eq!(
        tables.host_modules(&nvme, &log).unwrap(),
        Vec::<ModuleName>::new()
    );
    fs::write(
        dir.path().join(BUILTIN_MODINFO_FILE),
        b"nvme.alias=pci:v*d*sv*sd*bc01sc08i02*\0nvme.license=GPL\0",
    )
    .unwrap();
    assert_eq!(tables.host_modules(&nvme, &log).unwrap(), [m("nvme")]);
    assert_eq!(tables.reads(), 2);
}

#[test]
fn known_variants_are_vfio_without_tables() {
    let dir = tempfile::tempdir().unwrap();
    let tables = ModuleTables::new(Some(dir.path().join("missing")));
    let log = Logger::default();
    for module in [
        "vfio_pci",
        "mlx5_vfio_pci",
        "xe_vfio_pci",
        "nvgrace_gpu_vfio_pci",
    ] {
        assert!(tables.is_vfio_module(&m(module), &log), "{module}");
    }
    assert!(!tables.is_vfio_module(&m("e1000e"), &log));
    assert!(tables
        .claims(&m("e1000e"), &modalias(NIC), Side::Host, &log)
        .is_err());
    // vfio-pci's catch-all claims every device, tables or not.
    let claim = tables.claims(&m("vfio_pci"), &modalias(NIC), Side::Vfio, &log);
    assert_eq!(claim.unwrap(), Some(true));
    assert_eq!(variant(&tables), "vfio_pci");
    assert_eq!(tables.reads(), 0);
}

#[test]
fn pci_modules_are_those_of_pci_and_vfio_pci_aliases_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}alias pci:v00008086d000010D4sv*sd*bc*sc*i* e1000e\n\
         alias usb:v1234p* usbthing\n\
         alias fs-ext4 ext4\n",
        tables_text("mlx5_vfio_pci")
    );
    fs::write(dir.path().join(ALIAS_FILE), text).unwrap();
    let tables = ModuleTables::new(Some(dir.path().to_path_buf()));
    let got = tables.pci_modules(&Logger::default()).unwrap();
    assert_eq!(
        got,
        [
            m("e1000e"),
            m("mlx5_core"),
            m("mlx5_vfio_pci"),
            m("vfio_pci")
        ]
    );
    let missing = ModuleTables::new(Some(dir.path().join("nowhere")));
    assert!(missing.pci_modules(&Logger::default()).is_err());
}
