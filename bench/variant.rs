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
//!
//! Every figure is given twice: wall-clock time, and the CPU time of the measuring thread
//! (`CLOCK_THREAD_CPUTIME_ID`). On a loaded machine a round of 20 calls is preempted for a
//! few milliseconds more often than not, and the wall clock counts that wait: the wall-clock
//! (a)/(c) of one run then lands anywhere from 1.1 to 3 with the same code. CPU time leaves
//! the wait out and moves by a few percent between runs.
//!
//! Beside (c), three ways of finding the `vfio_pci:` lines with nothing parsed, to show where
//! the floor is: (h) one read() into a buffer sized from fstat, then one substring search;
//! (i) 64 KiB chunks, each searched while still in the CPU cache (what the library does);
//! (j) mmap(2) of the file and one search (not usable in the library: a file truncated by
//! another process while mapped kills the reader with SIGBUS).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Read;
use std::os::fd::AsRawFd;
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

/// The time per call of one round: wall clock, and CPU time of this thread (which leaves out
/// the time the thread waited for a CPU).
#[derive(Clone, Copy, Default)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

impl Timing {
    /// The medians of wall and CPU times, each taken on its own.
    fn median(samples: &[Timing]) -> Timing {
        Timing {
            wall: median(samples.iter().map(|t| t.wall).collect()),
            cpu: median(samples.iter().map(|t| t.cpu).collect()),
        }
    }

    /// Both ratios to `other`.
    fn ratio(self, other: Timing) -> (f64, f64) {
        (
            self.wall.as_secs_f64() / other.wall.as_secs_f64(),
            self.cpu.as_secs_f64() / other.cpu.as_secs_f64(),
        )
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wall = format!("{:.1?}", self.wall);
        let cpu = format!("{:.1?}", self.cpu);
        write!(f, "{wall:>10} wall {cpu:>10} cpu")
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The time per call of `f` over one round of `per_round` calls.
fn time(per_round: u32, mut f: impl FnMut()) -> Timing {
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    for _ in 0..per_round {
        f();
    }
    Timing {
        wall: wall.elapsed() / per_round,
        cpu: (thread_cpu_time() - cpu) / per_round,
    }
}

/// The number of `vfio_pci:` lines, found by (h) one read into a buffer sized from fstat and
/// one substring search over it.
fn search_one_read(path: &Path) -> usize {
    let finder = memchr::memmem::Finder::new(VFIO_PREFIX);
    let mut file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut buf = Vec::with_capacity(size as usize + 1);
    (&mut file).take(size + 1).read_to_end(&mut buf).unwrap();
    finder.find_iter(&buf).count()
}

/// The same by (i) reading 64 KiB chunks, each searched while in the cache (the library's way;
/// a line cut at the end of a chunk is carried over to the next).
fn search_chunks(path: &Path) -> usize {
    let finder = memchr::memmem::Finder::new(VFIO_PREFIX);
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut filled, mut found) = (0, 0);
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = file.read(&mut buf[filled..]).unwrap();
        if n == 0 {
            return found + finder.find_iter(&buf[..filled]).count();
        }
        filled += n;
        if let Some(last) = memchr::memrchr(b'\n', &buf[..filled]) {
            found += finder.find_iter(&buf[..=last]).count();
            buf.copy_within(last + 1..filled, 0);
            filled -= last + 1;
        }
    }
}

/// The same by (j) mapping the file and one substring search.
fn search_mapped(path: &Path) -> usize {
    let finder = memchr::memmem::Finder::new(VFIO_PREFIX);
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len() as usize;
    // SAFETY: a private read-only mapping of the benchmark's own copy, which nothing truncates
    // while it is mapped; unmapped before returning.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        let found = finder
            .find_iter(std::slice::from_raw_parts(map as *const u8, size))
            .count();
        libc::munmap(map, size);
        found
    }
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
    // PCIBIND_BENCH_MODULES: another copy of the tables (bench/compare-variant.sh points two
    // builds at the same one: copies of one file can differ in how the page cache holds them,
    // which moves (a) and (c) by a quarter).
    let data = std::env::var_os("PCIBIND_BENCH_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/kernel-6.8.0-151-generic")
        });
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
    let vfio_lines = search_one_read(&alias_path);
    assert_eq!(search_chunks(&alias_path), vfio_lines);
    assert_eq!(search_mapped(&alias_path), vfio_lines);

    // Warm the page cache, then measure all seven in one run, interleaved by round.
    for _ in 0..20 {
        black_box(std::fs::read(&alias_path).unwrap());
    }
    let rounds = 31;
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    let (mut h, mut i, mut j) = (vec![], vec![], vec![]);
    let cached = new_ctx();
    cached.find_vfio_variant(ADDRESS).unwrap();
    for _ in 0..rounds {
        c.push(time(20, || {
            black_box(std::fs::read(&alias_path).unwrap());
        }));
        a.push(time(20, || {
            let ctx = new_ctx();
            black_box(ctx.find_vfio_variant(ADDRESS).unwrap());
        }));
        b.push(time(2000, || {
            black_box(cached.find_vfio_variant(ADDRESS).unwrap());
        }));
        d.push(time(5, || {
            black_box(naive_lookup(tree.path(), &alias_path));
        }));
        h.push(time(20, || {
            black_box(search_one_read(&alias_path));
        }));
        i.push(time(20, || {
            black_box(search_chunks(&alias_path));
        }));
        j.push(time(20, || {
            black_box(search_mapped(&alias_path));
        }));
    }
    let [a, b, c, d, h, i, j] = [a, b, c, d, h, i, j].map(|s| Timing::median(&s));

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
    let mut m: Vec<[Vec<Timing>; 5]> = locales.iter().map(|_| Default::default()).collect();
    let warm = fresh_tables();
    claim(&warm);
    for _ in 0..rounds {
        for (k, locale) in locales.iter().enumerate() {
            locale.select();
            m[k][0].push(time(20, || {
                black_box(new_ctx().find_vfio_variant(ADDRESS).unwrap());
            }));
            m[k][1].push(time(2000, || {
                black_box(cached.find_vfio_variant(ADDRESS).unwrap());
            }));
            m[k][2].push(time(5, || {
                black_box(claim(&fresh_tables()));
            }));
            m[k][3].push(time(2000, || {
                black_box(claim(&warm));
            }));
            m[k][4].push(time(2000, || {
                black_box(warm.host_modules(&vf, &log).unwrap());
            }));
        }
    }
    Locale::C.select();
    let m: Vec<[Timing; 5]> = m
        .into_iter()
        .map(|s| s.map(|s| Timing::median(&s)))
        .collect();
    let (e, f, g) = (m[0][2], m[0][3], m[0][4]);

    // Heap kept by the cached tables, both sides: live bytes after the first claim check
    // (everything read is freed by then).
    let before = LIVE.load(Ordering::Relaxed);
    let kept_tables = fresh_tables();
    claim(&kept_tables);
    kept_tables.best_vfio_module(&address, &vf, &log);
    let kept = LIVE.load(Ordering::Relaxed) - before;

    println!(
        "module tables of 6.8.0-151-generic (modules.alias: {size} bytes), medians of {rounds} \
         rounds, wall clock and CPU time"
    );
    println!("  (a) first variant lookup, fresh context  {a}");
    println!("  (b) cached variant lookup                {b}");
    println!("  (c) one read() of modules.alias          {c}");
    println!("  (d) naive read-and-scan variant lookup   {d}");
    println!("  (e) first claim check, fresh tables      {e}");
    println!("  (f) cached claim check (e1000e)          {f}");
    println!("  (g) cached host-module lookup            {g}");
    let show = |(wall, cpu): (f64, f64), digits: usize| {
        format!("{wall:.digits$} wall, {cpu:.digits$} cpu")
    };
    println!(
        "  (a)/(c) = {}   (target: 1.5 at most)",
        show(a.ratio(c), 2)
    );
    println!(
        "  (d)/(b) = {}   (target: at least 1000x)",
        show(d.ratio(b), 0)
    );
    println!("  (d)/(a) = {}", show(d.ratio(a), 1));
    println!("  (e)/(c) = {}", show(e.ratio(c), 1));
    println!("  cached tables, both sides: {kept} bytes of heap (target: under the file's {size})");
    println!("finding the {vfio_lines} {VFIO_PREFIX} lines, nothing parsed (ratio to (c)):");
    for (name, t) in [
        ("(h) one read() sized by fstat, one search", h),
        ("(i) 64 KiB chunks, each searched in cache", i),
        ("(j) mmap, one search (SIGBUS if truncated)", j),
    ] {
        println!("  {name}  {t}   {}", show(t.ratio(c), 2));
    }
    println!(
        "the same in a process in the C and in the C.UTF-8 locale (medians of CPU time; ratio to C):"
    );
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
            .map(|n| format!("{:.1?} ({:.2})", m[k][n].cpu, m[k][n].ratio(m[0][n]).1))
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
