//! Resolution beneath the root: the one-name-at-a-time walk resolves as `openat2` does, and
//! neither ever leaves the root.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;

/// base/root holds the tree, base/outside what no lookup may reach.
fn tree() -> (tempfile::TempDir, Beneath) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::create_dir_all(root.join("b")).unwrap();
    fs::create_dir_all(base.path().join("outside")).unwrap();
    fs::write(base.path().join("outside/secret"), "secret").unwrap();
    fs::write(root.join("a/f"), "f").unwrap();
    fs::write(root.join("b/g"), "g").unwrap();
    symlink("a", root.join("l")).unwrap();
    symlink("..", root.join("a/up")).unwrap();
    symlink("../..", root.join("a/out")).unwrap();
    symlink("../../outside/secret", root.join("a/secret")).unwrap();
    symlink(base.path().join("outside/secret"), root.join("a/abs")).unwrap();
    symlink("loop", root.join("a/loop")).unwrap();
    symlink("f", root.join("a/lf")).unwrap();
    symlink("../b", root.join("a/lb")).unwrap();
    symlink("./f/", root.join("a/slash")).unwrap();
    // c0 -> c1 -> ... -> c41 -> a/f: 41 links from c1, 40 from c2.
    for i in 0..41 {
        symlink(format!("c{}", i + 1), root.join(format!("c{i}"))).unwrap();
    }
    symlink("a/f", root.join("c41")).unwrap();
    let beneath = Beneath::new(&root).unwrap();
    (base, beneath)
}

fn identity(fd: &OwnedFd) -> (u64, u64) {
    let m = File::from(fd.try_clone().unwrap()).metadata().unwrap();
    (m.dev(), m.ino())
}

fn outcome(r: io::Result<OwnedFd>) -> Result<(u64, u64), i32> {
    r.map(|fd| identity(&fd))
        .map_err(|e| e.raw_os_error().unwrap())
}

const CASES: &[(&str, libc::c_int, Result<(), i32>)] = &[
    ("a/f", libc::O_RDONLY, Ok(())),
    ("l/f", libc::O_RDONLY, Ok(())),
    ("l/../b/g", libc::O_RDONLY, Ok(())),
    ("a/up/a/up/b/g", libc::O_RDONLY, Ok(())),
    ("a/lb/g", libc::O_WRONLY, Ok(())),
    ("a/lf", libc::O_RDONLY, Ok(())),
    ("a/lf", libc::O_PATH, Ok(())),
    ("a/lf", libc::O_PATH | libc::O_NOFOLLOW, Ok(())),
    ("a/lf", libc::O_WRONLY | libc::O_NOFOLLOW, Err(libc::ELOOP)),
    ("l", libc::O_RDONLY | libc::O_DIRECTORY, Ok(())),
    ("l", libc::O_PATH | libc::O_DIRECTORY, Ok(())),
    (".", libc::O_PATH | libc::O_DIRECTORY, Ok(())),
    ("a/..", libc::O_RDONLY | libc::O_DIRECTORY, Ok(())),
    ("a//./f", libc::O_RDONLY, Ok(())),
    ("c2", libc::O_RDONLY, Ok(())),
    ("c1", libc::O_RDONLY, Err(libc::ELOOP)),
    ("a/loop", libc::O_RDONLY, Err(libc::ELOOP)),
    ("a/loop/x", libc::O_PATH, Err(libc::ELOOP)),
    ("..", libc::O_PATH, Err(libc::EXDEV)),
    ("a/../..", libc::O_PATH, Err(libc::EXDEV)),
    ("a/out/outside/secret", libc::O_RDONLY, Err(libc::EXDEV)),
    ("a/secret", libc::O_RDONLY, Err(libc::EXDEV)),
    (
        "a/secret",
        libc::O_WRONLY | libc::O_NOFOLLOW,
        Err(libc::ELOOP),
    ),
    ("a/abs", libc::O_RDONLY, Err(libc::EXDEV)),
    ("a/abs", libc::O_PATH, Err(libc::EXDEV)),
    ("a/missing", libc::O_RDONLY, Err(libc::ENOENT)),
    ("missing/f", libc::O_RDONLY, Err(libc::ENOENT)),
    ("a/f/x", libc::O_RDONLY, Err(libc::ENOTDIR)),
    (
        "a/f",
        libc::O_RDONLY | libc::O_DIRECTORY,
        Err(libc::ENOTDIR),
    ),
    ("a/slash", libc::O_RDONLY, Err(libc::ENOTDIR)),
    ("a/lb/", libc::O_PATH | libc::O_NOFOLLOW, Ok(())),
    ("l/", libc::O_RDONLY, Ok(())),
];

/// The walk resolves as openat2(RESOLVE_BENEATH) does: the same file, or the same errno.
#[test]
fn walk_resolves_as_openat2_does() {
    let (_base, b) = tree();
    for &(rel, flags, expected) in CASES {
        let flags = flags | libc::O_CLOEXEC;
        let walked = outcome(b.walk(Path::new(rel), flags));
        assert_eq!(walked.map(drop), expected, "walk of {rel} ({flags:#x})");
        let c = CString::new(rel).unwrap();
        match openat2(b.fd.as_raw_fd(), &c, &open_how(flags)) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            r => assert_eq!(outcome(r), walked, "openat2 and walk of {rel} ({flags:#x})"),
        }
    }
}

/// O_PATH|O_NOFOLLOW on a link opens the link itself, as openat2 does.
#[test]
fn walk_opens_a_final_link_itself_when_told_not_to_follow() {
    let (_base, b) = tree();
    let fd = b
        .walk(Path::new("a/lf"), libc::O_PATH | libc::O_NOFOLLOW)
        .unwrap();
    assert!(is_link(&fd).unwrap());
    let fd = b.walk(Path::new("l/lf"), libc::O_PATH).unwrap();
    assert!(!is_link(&fd).unwrap());
}

/// A directory swapped for a link out of the root after the walk entered it: the walk
/// holds the directory it entered, so the file it opens is the one inside.
#[test]
fn walk_keeps_the_directory_it_entered() {
    let (base, b) = tree();
    let root = base.path().join("root");
    let a = b
        .walk(Path::new("a"), libc::O_PATH | libc::O_DIRECTORY)
        .unwrap();
    fs::rename(root.join("a"), root.join("a.moved")).unwrap();
    symlink(base.path().join("outside"), root.join("a")).unwrap();
    let f = openat(a.as_raw_fd(), c"f", libc::O_RDONLY | libc::O_NOFOLLOW).unwrap();
    assert_eq!(
        identity(&f),
        identity(&b.walk(Path::new("a.moved/f"), libc::O_RDONLY).unwrap())
    );
    assert_eq!(
        b.walk(Path::new("a/secret"), libc::O_RDONLY)
            .map(drop)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EXDEV)
    );
}

/// Writes go beneath the root too, and never through a final link.
#[test]
fn writes_stay_beneath_the_root() {
    let (base, b) = tree();
    let root = base.path().join("root");
    b.write(&root.join("l/f"), b"new").unwrap();
    assert_eq!(fs::read(root.join("a/f")).unwrap(), b"new");
    for rel in ["a/secret", "a/abs", "a/out/outside/secret", "a/lf"] {
        assert!(b.write(&root.join(rel), b"x").is_err(), "{rel}");
    }
    assert_eq!(
        fs::read(base.path().join("outside/secret")).unwrap(),
        b"secret"
    );
    assert_eq!(fs::read(root.join("a/f")).unwrap(), b"new");
    assert!(b.write(Path::new("/etc/hostname"), b"x").is_err());
}
