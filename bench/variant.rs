//! Variant lookup benchmark (SPEC section 7): run with `cargo bench --bench variant`.
//!
//! Against the real Ubuntu 6.8 `modules.alias` (35,285 lines, 1.7 MB; a copy of
//! shared/data/kernel-6.8.0-151-generic in tests/data), all measured in one run:
//!   (a) the first lookup in a fresh context (parses the tables),
//!   (b) a lookup with the cached index,
//!   (c) one plain read() of modules.alias (the floor for (a)),
//!   (d) a straightforward read-every-line-and-split lookup of the kind libvirt does.
//! (a), (b) and (d) all start from the device address and read its modalias from a fake sysfs
//! tree. Also the heap the cached index keeps, counted by a wrapping allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use pcibind::internals::{glob_match, wildcard_count};
use pcibind::internals::{AliasIndex, VFIO_PREFIX};
use pcibind::{Context, Logger};

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
        if glob_match(pattern.as_bytes(), body.as_bytes()) {
            let wild = wildcard_count(pattern.as_bytes());
            if best.as_ref().is_none_or(|(w, _)| wild < *w) {
                best = Some((wild, fields[2].to_owned()));
            }
        }
    }
    best.map(|(_, m)| m).unwrap_or_else(|| "vfio_pci".into())
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

    // Heap kept by the index: live bytes after building it (the file buffer is freed by then).
    let alias_data = std::fs::read(&alias_path).unwrap();
    let modinfo = std::fs::read(data.join("modules.builtin.modinfo")).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let index = AliasIndex::parse(&alias_data, Some(&modinfo), &Logger::default());
    let kept = LIVE.load(Ordering::Relaxed) - before;
    drop(alias_data);

    println!("variant lookup, modules.alias of 6.8.0-151-generic ({size} bytes), medians of {rounds} rounds");
    println!("  (a) first lookup, fresh context   {:>10.1?}", a);
    println!("  (b) cached lookup                 {:>10.1?}", b);
    println!("  (c) one read() of modules.alias   {:>10.1?}", c);
    println!("  (d) naive read-and-scan lookup    {:>10.1?}", d);
    println!(
        "  (a)/(c) = {:.2}   (target: within 2x)",
        a.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  (d)/(b) = {:.0}   (target: at least 1000x)",
        d.as_secs_f64() / b.as_secs_f64()
    );
    println!("  (d)/(a) = {:.1}", d.as_secs_f64() / a.as_secs_f64());
    println!(
        "  cached index: {} vfio_pci aliases, {kept} bytes of heap (target: under 65536)",
        index.len()
    );
}
