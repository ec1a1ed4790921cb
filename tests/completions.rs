//! The shell completion scripts, as `pcibind completions SHELL` prints them: each parses in its
//! shell and completes commands, options, PCI addresses, interfaces and drivers on the example
//! tree, in each shell installed (build-aux/check-completions.py, which meson's `completions`
//! test also runs on the scripts the build installs).

use std::path::Path;
use std::process::Command;

const SRC: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn completion_scripts_parse_and_complete_in_their_shells() {
    let dir = tempfile::tempdir().unwrap();
    let pcibind = env!("CARGO_BIN_EXE_pcibind");
    let mut args = vec![
        Path::new(SRC).join("build-aux/check-completions.py"),
        pcibind.into(),
        SRC.into(),
    ];
    for (shell, file) in [
        ("bash", "pcibind"),
        ("zsh", "_pcibind"),
        ("fish", "pcibind.fish"),
    ] {
        let out = Command::new(pcibind)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        assert!(!out.stdout.is_empty(), "{shell}: empty script");
        let path = dir.path().join(file);
        std::fs::write(&path, &out.stdout).unwrap();
        args.push(format!("--{shell}").into());
        args.push(path);
    }
    let o = Command::new("python3").args(&args).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // bash is always there; a missing zsh or fish is reported skipped by the checker.
    assert_eq!(o.status.code(), Some(0), "{said}");
    for line in said.lines().filter(|l| l.starts_with("SKIPPED")) {
        eprintln!("{line}");
    }
    assert!(
        said.contains("ok: bash completes commands, options, addresses and drivers"),
        "{said}"
    );
}

/// `__complete` lists what the scripts offer: addresses, interfaces standing for a PCI device,
/// drivers and modules; a tree that cannot be read gives nothing, and no error.
#[test]
fn the_hidden_helper_lists_the_hosts_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys");
    assert!(Command::new("python3")
        .arg(Path::new(SRC).join("examples/example-sysfs.py"))
        .arg(&root)
        .status()
        .unwrap()
        .success());
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_pcibind"))
            .arg("--sysfs-root")
            .arg(&root)
            .arg("--modules-dir")
            .arg(root.join("lib-modules"))
            .arg("__complete")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let addresses = run(&["addresses"]);
    assert_eq!(addresses.lines().count(), 8, "{addresses}");
    assert!(
        addresses.lines().any(|l| l == "0000:3b:00.2"),
        "{addresses}"
    );
    // Registered drivers as they are spelled, modules whose driver is not registered yet, none.
    let drivers: Vec<String> = run(&["drivers"]).lines().map(str::to_owned).collect();
    for want in ["e1000e", "virtio-pci", "vfio_pci", "mlx5_vfio_pci", "none"] {
        assert!(drivers.iter().any(|d| d == want), "{want}: {drivers:?}");
    }
    assert!(!drivers.iter().any(|d| d == "virtio_pci"), "{drivers:?}");
    assert_eq!(run(&["interfaces"]), "", "the tree has no interfaces");
    let o = Command::new(env!("CARGO_BIN_EXE_pcibind"))
        .args([
            "--sysfs-root",
            "/nonexistent",
            "__complete",
            "addresses",
            "drivers",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty(), "{o:?}");
}
