//! Module-table benchmark (SPEC section 7, issue #12): run with
//! `cargo bench --features internals --bench variant`.
//!
//! Against the real Ubuntu 6.8 `modules.alias` (35,285 lines, 1.7 MB; a copy of
//! shared/data/kernel-6.8.0-151-generic in tests/data), all measured in one run:
//!   (a) the first variant lookup in a fresh context (reads the vfio_pci: side of the tables),
//!   (b) a variant lookup with the cached index,
//!   (c) one plain read() of modules.alias (the floor for (a)),
//!   (d) a straightforward read-every-line-and-split lookup of the kind libvirt does,
//!   (e) the first claim check of a host driver in fresh tables (reads the pci: side too),
//!   (f) a claim check with the cached tables, (g) a host-module lookup with them.
//! (a), (b) and (d) start from the device address and read its modalias from a fake sysfs
//! tree. Also the heap the cached tables keep (both sides), counted by a wrapping allocator,
//! and (a), (b), (e), (f), (g) again in a process in the C.UTF-8 locale (a caller such as
//! libvirtd runs setlocale(LC_ALL, "")), beside the C locale: aliases are matched with
//! fnmatch(3) in the C locale whatever the caller's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use pcibind::internals::wildcard_count;
use pcibind::internals::{Modalias, ModuleTables, Side, VFIO_PREFIX};
use pcibind::{Context, Logger, ModuleName, PciAddress};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

const ADDRESS: &str = "0000:3b:00.2";
const MODALIAS: &str = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";
/// An Intel NIC: its vendor has 3,153 of the 10,073 pci: aliases.
const NIC: &str = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median time per call of `f`, over `rounds` rounds of `per_round` calls.
fn time(rounds: usize, per_round: u32, mut f: impl FnMut()) -> Duration {
    let samples = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed() / per_round
        })
        .collect();
    median(samples)
}

fn fnmatch(pattern: &str, text: &str) -> bool {
    let pattern = std::ffi::CString::new(pattern).unwrap();
    let text = std::ffi::CString::new(text).unwrap();
    // SAFETY: two NUL-terminated strings.
    unsafe { libc::fnmatch(pattern.as_ptr(), text.as_ptr(), 0) == 0 }
}

/// What a straightforward implementation does: read the whole file, split it into lines and
/// fields, glob-match every `vfio_pci:` alias, keep the one with the fewest wildcards.
fn naive_lookup(sysfs: &Path, alias_path: &Path) -> String {
    let modalias =
        std::fs::read_to_string(sysfs.join("bus/pci/devices").join(ADDRESS).join("modalias"))
            .unwrap();
    let body = modalias.trim_end().strip_prefix("pci:").unwrap();
    let content = std::fs::read_to_string(alias_path).unwrap();
    let mut best: Option<(usize, String)> = None;
    for line in content.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() != 3 || fields[0] != "alias" {
            continue;
        }
        let Some(pattern) = fields[1].strip_prefix(VFIO_PREFIX) else {
            continue;
        };
        if fnmatch(pattern, body) {
            let wild = wildcard_count(pattern.as_bytes());
            if best.as_ref().map_or(true, |(w, _)| wild < *w) {
                best = Some((wild, fields[2].to_owned()));
            }
        }
    }
    best.map(|(_, m)| m).unwrap_or_else(|| "vfio_pci".into())
}

/// The process's locale: the library matches in the C locale whatever it is.
#[derive(Clone, Copy)]
enum Locale {
    C,
    Utf8,
}

impl Locale {
    fn name(self) -> &'static str {
        match self {
            Locale::C => "C",
            Locale::Utf8 => "C.UTF-8",
        }
    }

    fn select(self) {
        let locale: &[u8] = match self {
            Locale::C => b"C\0",
            Locale::Utf8 => b"C.UTF-8\0",
        };
        // SAFETY: a NUL-terminated locale name; no other thread runs.
        let set = unsafe { libc::setlocale(libc::LC_ALL, locale.as_ptr().cast()) };
        assert!(!set.is_null(), "locale not available");
    }
}

fn main() {
    let data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/kernel-6.8.0-151-generic");
    let alias_path = data.join("modules.alias");
    let size = std::fs::metadata(&alias_path).unwrap().len();

    // A fake sysfs tree with the ConnectX-5 VF.
    let tree = tempfile::tempdir().unwrap();
    let dev = tree.path().join("devices/pci0000:3b").join(ADDRESS);
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("modalias"), format!("{MODALIAS}\n")).unwrap();
    std::fs::create_dir_all(tree.path().join("bus/pci/devices")).unwrap();
    // Relative, as the kernel's links are (an absolute one would be refused as leaving the root).
    std::os::unix::fs::symlink(
        format!("../../../devices/pci0000:3b/{ADDRESS}"),
        tree.path().join("bus/pci/devices").join(ADDRESS),
    )
    .unwrap();

    let new_ctx = || {
        let mut ctx = Context::new(tree.path()).unwrap();
        ctx.set_modules_dir(Some(data.clone())).unwrap();
        ctx
    };
    assert_eq!(
        new_ctx().find_vfio_variant(ADDRESS).unwrap().as_str(),
        "mlx5_vfio_pci"
    );
    assert_eq!(naive_lookup(tree.path(), &alias_path), "mlx5_vfio_pci");

    // Warm the page cache, then measure all four in one run, interleaved by round.
    for _ in 0..20 {
        black_box(std::fs::read(&alias_path).unwrap());
    }
    let rounds = 31;
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    let cached = new_ctx();
    cached.find_vfio_variant(ADDRESS).unwrap();
    for _ in 0..rounds {
        c.push(time(1, 20, || {
            black_box(std::fs::read(&alias_path).unwrap());
        }));
        a.push(time(1, 20, || {
            let ctx = new_ctx();
            black_box(ctx.find_vfio_variant(ADDRESS).unwrap());
        }));
        b.push(time(1, 2000, || {
            black_box(cached.find_vfio_variant(ADDRESS).unwrap());
        }));
        d.push(time(1, 5, || {
            black_box(naive_lookup(tree.path(), &alias_path));
        }));
    }
    let (a, b, c, d) = (median(a), median(b), median(c), median(d));

    // The host side: claim checks and host-module lookups.
    let log = Logger::default();
    let e1000e = ModuleName::new("e1000e").unwrap();
    let nic = Modalias::parse(NIC).unwrap();
    let vf = Modalias::parse(MODALIAS).unwrap();
    let address = PciAddress::parse(ADDRESS).unwrap();
    let fresh_tables = || ModuleTables::new(Some(data.clone()));
    let claim = |t: &ModuleTables| t.claims(&e1000e, &nic, Side::Host, &log).unwrap();
    assert_eq!(claim(&fresh_tables()), Some(true));
    let locales = [Locale::C, Locale::Utf8];
    // Per process locale: (a) first variant lookup, (b) cached one, (e) first claim check, (f) cached
    // claim check, (g) cached host-module lookup; interleaved by round.
    let mut m: Vec<[Vec<Duration>; 5]> = locales.iter().map(|_| Default::default()).collect();
    let warm = fresh_tables();
    claim(&warm);
    for _ in 0..rounds {
        for (k, locale) in locales.iter().enumerate() {
            locale.select();
            m[k][0].push(time(1, 20, || {
                black_box(new_ctx().find_vfio_variant(ADDRESS).unwrap());
            }));
            m[k][1].push(time(1, 2000, || {
                black_box(cached.find_vfio_variant(ADDRESS).unwrap());
            }));
            m[k][2].push(time(1, 5, || {
                black_box(claim(&fresh_tables()));
            }));
            m[k][3].push(time(1, 2000, || {
                black_box(claim(&warm));
            }));
            m[k][4].push(time(1, 2000, || {
                black_box(warm.host_modules(&vf, &log).unwrap());
            }));
        }
    }
    Locale::C.select();
    let m: Vec<[Duration; 5]> = m.into_iter().map(|s| s.map(median)).collect();
    let (e, f, g) = (m[0][2], m[0][3], m[0][4]);

    // Heap kept by the cached tables, both sides: live bytes after the first claim check
    // (everything read is freed by then).
    let before = LIVE.load(Ordering::Relaxed);
    let kept_tables = fresh_tables();
    claim(&kept_tables);
    kept_tables.best_vfio_module(&address, &vf, &log);
    let kept = LIVE.load(Ordering::Relaxed) - before;

    println!("module tables of 6.8.0-151-generic (modules.alias: {size} bytes), medians of {rounds} rounds");
    println!("  (a) first variant lookup, fresh context  {:>10.1?}", a);
    println!("  (b) cached variant lookup                {:>10.1?}", b);
    println!("  (c) one read() of modules.alias          {:>10.1?}", c);
    println!("  (d) naive read-and-scan variant lookup   {:>10.1?}", d);
    println!("  (e) first claim check, fresh tables      {:>10.1?}", e);
    println!("  (f) cached claim check (e1000e)          {:>10.1?}", f);
    println!("  (g) cached host-module lookup            {:>10.1?}", g);
    println!(
        "  (a)/(c) = {:.2}   (target: within 2x)",
        a.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  (d)/(b) = {:.0}   (target: at least 1000x)",
        d.as_secs_f64() / b.as_secs_f64()
    );
    println!("  (d)/(a) = {:.1}", d.as_secs_f64() / a.as_secs_f64());
    println!("  (e)/(c) = {:.1}", e.as_secs_f64() / c.as_secs_f64());
    println!("  cached tables, both sides: {kept} bytes of heap (target: under the file's {size})");
    println!("the same in a process in the C and in the C.UTF-8 locale (medians; ratio to C):");
    println!(
        "  {:<30} {:>18} {:>18} {:>18} {:>18} {:>18}",
        "process locale",
        "(a) first lookup",
        "(b) cached lookup",
        "(e) first claim",
        "(f) cached claim",
        "(g) host lookup"
    );
    for (k, locale) in locales.iter().enumerate() {
        let cells: Vec<String> = (0..5)
            .map(|i| {
                format!(
                    "{:.1?} ({:.2})",
                    m[k][i],
                    m[k][i].as_secs_f64() / m[0][i].as_secs_f64()
                )
            })
            .collect();
        println!(
            "  {:<30} {:>18} {:>18} {:>18} {:>18} {:>18}",
            locale.name(),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4]
        );
    }
}
