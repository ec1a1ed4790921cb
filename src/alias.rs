//! The kernel's module alias tables (`modules.alias`, `modules.builtin.modinfo`), reduced to
//! the `vfio_pci:` aliases VFIO variant drivers declare, ranked by specificity, and cached per
//! context until the files change.
//!
//! A first lookup costs about one read of `modules.alias`: a SIMD substring search finds the
//! few `vfio_pci:` lines of the ~35,000, and only those are parsed. The cached index holds just
//! those lines (a few hundred bytes on real kernels), so later lookups cost two `stat`s and a
//! glob match per variant alias.

use std::ffi::CStr;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memchr::memmem::Finder;

use crate::glob::{glob_match, has_wildcard, wildcard_count};
use crate::log::{Logger, Priority};
use crate::modalias::{Modalias, FIELDS};
use crate::name::ModuleName;

/// The prefix depmod gives the aliases of `PCI_DRIVER_OVERRIDE_DEVICE_VFIO()` IDs.
pub const VFIO_PREFIX: &str = "vfio_pci:";
/// The module behind the catch-all `vfio_pci:v*d*sv*sd*bc*sc*i*` alias.
pub const VFIO_PCI_MODULE: &str = "vfio_pci";

pub const ALIAS_FILE: &str = "modules.alias";
pub const BUILTIN_MODINFO_FILE: &str = "modules.builtin.modinfo";
/// The same names for `fstatat` (`tests::file_names_agree` keeps the pairs equal).
const ALIAS_FILE_C: &CStr = c"modules.alias";
const BUILTIN_MODINFO_FILE_C: &CStr = c"modules.builtin.modinfo";

#[derive(Debug)]
struct VfioAlias {
    /// The glob after `vfio_pci:`, matched against a modalias after `pci:`.
    pattern: Box<str>,
    module: ModuleName,
    /// Modalias fields (v, d, sv, sd, bc, sc, i) the pattern leaves open: fewer is more specific.
    wild_fields: u8,
    /// Wildcards in the whole pattern: the tie-breaker after `wild_fields`.
    wild_chars: u16,
}

/// How many modalias fields a pattern leaves open. A field is open when its part of the pattern
/// holds a wildcard, or when the pattern has no such field at all (a `*` swallowed it).
fn wild_fields(pattern: &str) -> u8 {
    let mut open = 0;
    let mut pos = 0;
    let mut found: Vec<(usize, usize)> = Vec::with_capacity(FIELDS.len()); // (start of value, marker start)
    for (marker, _) in FIELDS {
        match pattern[pos..].find(marker) {
            Some(i) => {
                found.push((pos + i + marker.len(), pos + i));
                pos += i + marker.len();
            }
            None => open += 1,
        }
    }
    for (k, &(value_start, _)) in found.iter().enumerate() {
        let value_end = found
            .get(k + 1)
            .map_or(pattern.len(), |&(_, marker)| marker);
        if has_wildcard(&pattern.as_bytes()[value_start..value_end]) {
            open += 1;
        }
    }
    open
}

/// The parsed `vfio_pci:` aliases of one kernel, in file order (`modules.alias` first).
#[derive(Debug, Default)]
pub struct AliasIndex {
    aliases: Vec<VfioAlias>,
}

/// The winner of a lookup, borrowed from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<'a> {
    pub module: &'a ModuleName,
    /// The winning pattern, after `vfio_pci:`.
    pub pattern: &'a str,
    /// Another module whose alias matched exactly as specifically (it lost on file order).
    pub tie: Option<(&'a ModuleName, &'a str)>,
}

impl AliasIndex {
    /// Builds the index from the contents of `modules.alias` and, when present,
    /// `modules.builtin.modinfo`. Malformed `vfio_pci:` lines are skipped with a debug log.
    #[cfg(any(test, feature = "internals"))]
    pub fn parse(alias_file: &[u8], builtin_modinfo: Option<&[u8]>, log: &Logger) -> AliasIndex {
        let mut index = AliasIndex::default();
        index.scan_alias_lines(&Finder::new(VFIO_PREFIX), alias_file, 0, log);
        if let Some(modinfo) = builtin_modinfo {
            index.scan_builtin_modinfo(modinfo, log);
        }
        index
    }

    /// Reads `modules.alias` in chunks, so the 1-2 MB file is searched while it is still in
    /// the CPU cache and never held whole.
    fn read_alias_file(&mut self, mut file: impl Read, log: &Logger) -> io::Result<()> {
        const CHUNK: usize = 64 * 1024;
        let finder = Finder::new(VFIO_PREFIX);
        let mut buf = vec![0u8; CHUNK];
        let (mut filled, mut offset) = (0, 0);
        loop {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0); // one line longer than the buffer
            }
            let n = match file.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.scan_alias_lines(&finder, &buf[..filled], offset, log);
                return Ok(());
            }
            filled += n;
            // Scan the complete lines; carry the partial last one over to the next read.
            if let Some(last_newline) = memchr::memrchr(b'\n', &buf[..filled]) {
                let complete = last_newline + 1;
                self.scan_alias_lines(&finder, &buf[..complete], offset, log);
                buf.copy_within(complete..filled, 0);
                filled -= complete;
                offset += complete;
            }
        }
    }

    /// Parses the lines of `text` (whole lines, starting at byte `offset` of the file) that
    /// contain `vfio_pci:`; the others are never looked at.
    fn scan_alias_lines(&mut self, finder: &Finder<'_>, text: &[u8], offset: usize, log: &Logger) {
        let mut pos = 0;
        while let Some(found) = finder.find(&text[pos..]) {
            let hit = pos + found;
            let start = memchr::memrchr(b'\n', &text[..hit]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &text[hit..]).map_or(text.len(), |i| hit + i);
            self.parse_alias_line(&text[start..end], offset + start, log);
            pos = end;
        }
    }

    /// Finds the `MODULE.alias=vfio_pci:PATTERN` records among the NUL-separated ones.
    fn scan_builtin_modinfo(&mut self, modinfo: &[u8], log: &Logger) {
        let finder = Finder::new("alias=vfio_pci:");
        let mut pos = 0;
        while let Some(found) = finder.find(&modinfo[pos..]) {
            let hit = pos + found;
            let start = memchr::memrchr(0, &modinfo[..hit]).map_or(0, |i| i + 1);
            let end = memchr::memchr(0, &modinfo[hit..]).map_or(modinfo.len(), |i| hit + i);
            self.parse_modinfo_record(&modinfo[start..end], log);
            pos = end;
        }
    }

    fn parse_alias_line(&mut self, line: &[u8], offset: usize, log: &Logger) {
        let malformed = |why: &str| {
            log.log(
                Priority::Debug,
                format_args!(
                    "{ALIAS_FILE}: skipping malformed line at byte {offset} ({why}): {:?}",
                    String::from_utf8_lossy(line)
                ),
            )
        };
        let Ok(text) = std::str::from_utf8(line) else {
            return malformed("not UTF-8");
        };
        let mut words = text.split_ascii_whitespace();
        match words.next() {
            Some("alias") => {}
            Some(w) if w.starts_with('#') => return,
            _ => return malformed("not an alias line"),
        }
        let (Some(pattern), Some(module), None) = (words.next(), words.next(), words.next()) else {
            return malformed("expected: alias PATTERN MODULE");
        };
        // `vfio_pci:` elsewhere on an alias line (say, in a module name) is not a VFIO alias.
        if let Some(pattern) = pattern.strip_prefix(VFIO_PREFIX) {
            self.add(pattern, module, log, ALIAS_FILE);
        }
    }

    fn parse_modinfo_record(&mut self, record: &[u8], log: &Logger) {
        // Records are `MODULE.KEY=VALUE`; ours are `MODULE.alias=vfio_pci:PATTERN`.
        let Ok(text) = std::str::from_utf8(record) else {
            return;
        };
        let Some((module, rest)) = text.split_once('.') else {
            return;
        };
        if let Some(pattern) = rest
            .strip_prefix("alias=")
            .and_then(|a| a.strip_prefix(VFIO_PREFIX))
        {
            self.add(pattern, module, log, BUILTIN_MODINFO_FILE);
        }
    }

    fn add(&mut self, pattern: &str, module: &str, log: &Logger, origin: &str) {
        let module = match ModuleName::new(module) {
            Ok(m) => m,
            Err(e) => {
                log.log(
                    Priority::Debug,
                    format_args!("{origin}: skipping alias: {e}"),
                );
                return;
            }
        };
        if pattern.is_empty() || pattern.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            log.log(
                Priority::Debug,
                format_args!("{origin}: skipping malformed alias pattern {pattern:?} of {module}"),
            );
            return;
        }
        self.aliases.push(VfioAlias {
            wild_fields: wild_fields(pattern),
            wild_chars: wildcard_count(pattern.as_bytes()).min(u16::MAX as usize) as u16,
            pattern: pattern.into(),
            module,
        });
    }

    /// The number of `vfio_pci:` aliases held.
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    /// Bytes of heap the index holds (for the memory budget in the benchmarks).
    #[cfg(any(test, feature = "internals"))]
    pub fn heap_bytes(&self) -> usize {
        self.aliases.capacity() * std::mem::size_of::<VfioAlias>()
            + self
                .aliases
                .iter()
                .map(|a| a.pattern.len() + a.module.as_str().len())
                .sum::<usize>()
    }

    /// True when `module` declares `vfio_pci:` aliases: a VFIO driver's module.
    pub fn is_vfio_module(&self, module: &ModuleName) -> bool {
        self.aliases.iter().any(|a| a.module == *module)
    }

    /// True when one of `module`'s `vfio_pci:` aliases matches the device.
    pub fn vfio_module_matches(&self, module: &ModuleName, modalias: &Modalias) -> bool {
        let text = modalias.body().as_bytes();
        self.aliases
            .iter()
            .any(|a| a.module == *module && glob_match(a.pattern.as_bytes(), text))
    }

    /// The most specific `vfio_pci:` alias matching the device: fewest open fields, then fewest
    /// wildcards, then file order. `None` when nothing matches (not even a catch-all).
    pub fn best_match(&self, modalias: &Modalias) -> Option<Choice<'_>> {
        let text = modalias.body().as_bytes();
        let mut best: Option<&VfioAlias> = None;
        let mut tie: Option<&VfioAlias> = None;
        for alias in &self.aliases {
            if !glob_match(alias.pattern.as_bytes(), text) {
                continue;
            }
            let key = (alias.wild_fields, alias.wild_chars);
            match best {
                Some(b) if key > (b.wild_fields, b.wild_chars) => {}
                Some(b) if key == (b.wild_fields, b.wild_chars) => {
                    if tie.is_none() && alias.module != b.module {
                        tie = Some(alias);
                    }
                }
                _ => {
                    best = Some(alias);
                    tie = None;
                }
            }
        }
        best.map(|b| Choice {
            module: &b.module,
            pattern: &b.pattern,
            tie: tie.map(|t| (&t.module, &*t.pattern)),
        })
    }
}

/// What identifies one version of a file: a change of any of these means reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    /// The stamp of a regular file; anything else (a FIFO would block the reader) is refused.
    fn of(path: &Path) -> io::Result<Stamp> {
        let m = fs::metadata(path)?;
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

impl Stamp {
    /// The stamp of `name` in the directory `dir` (no path walk from `/`).
    fn at(dir: &OwnedFd, name: &CStr) -> io::Result<Stamp> {
        // SAFETY: a zeroed stat is valid; fstatat fills it from a valid descriptor and name.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
        })
    }
}

struct Cached<T> {
    dir: PathBuf,
    /// The directory as loaded, so a cached lookup checks the two files without walking the
    /// whole path again. (Should the directory itself be renamed away and replaced, this would
    /// keep checking the old one; deleting it makes the checks fail and forces a reload.)
    dir_fd: Option<OwnedFd>,
    stamps: (Stamp, Option<Stamp>),
    value: Arc<T>,
}

impl<T> Cached<T> {
    /// True when both tables are still the files the value was built from.
    fn fresh(&self, dir: &Path) -> bool {
        let Some(fd) = &self.dir_fd else { return false };
        // Byte comparison: cheaper than Path's component-wise one, and as exact.
        self.dir.as_os_str() == dir.as_os_str()
            && Stamp::at(fd, ALIAS_FILE_C).ok() == Some(self.stamps.0)
            && Stamp::at(fd, BUILTIN_MODINFO_FILE_C).ok() == self.stamps.1
    }
}

/// The value `build` makes from the tables in `dir` (`modules.alias`, and
/// `modules.builtin.modinfo` when it is a regular file), from `slot` while both files keep
/// their identity, size and mtime. Building happens under the slot's lock, so threads
/// arriving together build once.
fn cached<T>(
    slot: &Mutex<Option<Cached<T>>>,
    dir: &Path,
    log: &Logger,
    build: impl FnOnce(fs::File, Option<&Path>) -> io::Result<T>,
) -> Result<Arc<T>, TablesUnavailable> {
    // What `build` logs reaches the callback after the slot's lock is released.
    let _deferral = log.defer();
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cached) = slot.as_ref().filter(|c| c.fresh(dir)) {
        return Ok(Arc::clone(&cached.value));
    }
    let alias_path = dir.join(ALIAS_FILE);
    let builtin_path = dir.join(BUILTIN_MODINFO_FILE);
    let unavailable =
        |e: io::Error| TablesUnavailable(format!("cannot read {}: {e}", alias_path.display()));
    let stamps = (
        Stamp::of(&alias_path).map_err(unavailable)?,
        Stamp::of(&builtin_path).ok(),
    );
    let dir_fd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .ok()
        .map(OwnedFd::from);
    // Optional: only a regular file that had a stamp is read.
    let builtin = stamps.1.is_some().then_some(builtin_path.as_path());
    let value = fs::File::open(&alias_path)
        .and_then(|file| build(file, builtin))
        .map_err(unavailable)?;
    let value = Arc::new(value);
    *slot = Some(Cached {
        dir: dir.to_path_buf(),
        dir_fd,
        stamps,
        value: Arc::clone(&value),
    });
    Ok(value)
}

/// Why no alias index could be had: the tables are missing or unreadable.
#[derive(Debug)]
pub struct TablesUnavailable(pub String);

impl fmt::Display for TablesUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The alias tables of one context, shared by its threads and reloaded when the files change:
/// the `vfio_pci:` index, and the host drivers' `pci:` aliases (loaded on first use).
#[derive(Default)]
pub struct AliasCache {
    vfio: Mutex<Option<Cached<AliasIndex>>>,
    host: Mutex<Option<Cached<HostAliases>>>,
}

impl fmt::Debug for AliasCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AliasCache")
    }
}

impl AliasCache {
    /// The `vfio_pci:` index for the tables in `dir`.
    pub fn index(&self, dir: &Path, log: &Logger) -> Result<Arc<AliasIndex>, TablesUnavailable> {
        cached(&self.vfio, dir, log, |alias_file, builtin| {
            let mut index = AliasIndex::default();
            index.read_alias_file(alias_file, log)?;
            if let Some(path) = builtin {
                match fs::read(path) {
                    Ok(data) => index.scan_builtin_modinfo(&data, log),
                    Err(e) => log.log(
                        Priority::Warning,
                        format_args!("ignoring {}: {e}", path.display()),
                    ),
                }
            }
            log.log(
                Priority::Debug,
                format_args!(
                    "loaded {} vfio_pci aliases from {}",
                    index.len(),
                    dir.display()
                ),
            );
            Ok(index)
        })
    }

    /// The host drivers' `pci:` aliases for the tables in `dir`.
    pub fn host(&self, dir: &Path, log: &Logger) -> Result<Arc<HostAliases>, TablesUnavailable> {
        cached(&self.host, dir, log, |mut alias_file, builtin| {
            let mut text = Vec::new();
            alias_file.read_to_end(&mut text)?;
            let modinfo = builtin.and_then(|path| fs::read(path).ok());
            let host = HostAliases::parse(&text, modinfo.as_deref());
            log.log(
                Priority::Debug,
                format_args!(
                    "loaded {} pci aliases from {}",
                    host.aliases.len(),
                    dir.display()
                ),
            );
            Ok(host)
        })
    }
}

/// The plain `pci:` aliases of one kernel (the host drivers' ID tables), from `modules.alias`
/// and the `alias=pci:` records of `modules.builtin.modinfo`, in file order. Patterns that name
/// a literal vendor are also indexed by it, so a lookup matches the few dozen patterns that can
/// match a device rather than all ~10,000.
#[derive(Debug, Default)]
pub struct HostAliases {
    aliases: Vec<(ModuleName, Box<str>)>,
    /// Indices into `aliases` by the pattern's literal vendor ID.
    by_vendor: std::collections::HashMap<u32, Vec<u32>>,
    /// Indices of the patterns whose vendor is not a literal (class-based aliases).
    any_vendor: Vec<u32>,
}

/// The literal vendor ID at the start of a `pci:` pattern or modalias body (`v00008086d...`).
fn literal_vendor(s: &str) -> Option<u32> {
    let hex = s.strip_prefix('v')?.get(..8)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

impl HostAliases {
    pub fn parse(alias_file: &[u8], builtin_modinfo: Option<&[u8]>) -> HostAliases {
        let mut out = HostAliases::default();
        for line in alias_file.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let mut words = line.split_ascii_whitespace();
            if let (Some("alias"), Some(pattern), Some(module), None) =
                (words.next(), words.next(), words.next(), words.next())
            {
                out.add(pattern.strip_prefix("pci:"), module);
            }
        }
        for record in builtin_modinfo.unwrap_or_default().split(|&b| b == 0) {
            let Ok(record) = std::str::from_utf8(record) else {
                continue;
            };
            if let Some((module, rest)) = record.split_once('.') {
                out.add(rest.strip_prefix("alias=pci:"), module);
            }
        }
        out
    }

    fn add(&mut self, pattern: Option<&str>, module: &str) {
        let (Some(pattern), Ok(module)) = (pattern, ModuleName::new(module)) else {
            return;
        };
        let i = self.aliases.len() as u32;
        match literal_vendor(pattern) {
            Some(vendor) => self.by_vendor.entry(vendor).or_default().push(i),
            None => self.any_vendor.push(i),
        }
        self.aliases.push((module, pattern.into()));
    }

    /// True when the tables hold `pci:` aliases of `module`.
    pub fn has_module(&self, module: &ModuleName) -> bool {
        self.aliases.iter().any(|(m, _)| m == module)
    }

    /// The modules whose `pci:` aliases match `modalias`, each once, in table order.
    pub fn matching_modules(&self, modalias: &Modalias) -> Vec<ModuleName> {
        let body = modalias.body();
        let mut candidates: Vec<u32> = literal_vendor(body)
            .and_then(|v| self.by_vendor.get(&v))
            .map_or_else(Vec::new, Clone::clone);
        candidates.extend_from_slice(&self.any_vendor);
        candidates.sort_unstable();
        let mut out: Vec<ModuleName> = Vec::new();
        for i in candidates {
            let (module, pattern) = &self.aliases[i as usize];
            if !out.contains(module) && glob_match(pattern.as_bytes(), body.as_bytes()) {
                out.push(module.clone());
            }
        }
        out
    }

    /// Bytes held on the heap (for the benchmark's memory figure).
    #[cfg(feature = "internals")]
    pub fn heap_bytes(&self) -> usize {
        self.aliases.capacity() * std::mem::size_of::<(ModuleName, Box<str>)>()
            + self
                .aliases
                .iter()
                .map(|(m, p)| m.as_str().len() + p.len())
                .sum::<usize>()
            + self.by_vendor.capacity() * (4 + std::mem::size_of::<Vec<u32>>())
            + self
                .by_vendor
                .values()
                .map(|v| v.capacity() * 4)
                .sum::<usize>()
            + self.any_vendor.capacity() * 4
    }
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> Option<String> {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    unsafe {
        let mut uts: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut uts) != 0 {
            return None;
        }
        let release = std::ffi::CStr::from_ptr(uts.release.as_ptr());
        release.to_str().ok().map(str::to_owned)
    }
}

/// Where the tables are looked for when no modules dir is configured, in order.
pub fn default_modules_dirs() -> Vec<PathBuf> {
    match kernel_release() {
        Some(release) => vec![
            Path::new("/lib/modules").join(&release),
            Path::new("/usr/lib/modules").join(&release),
        ],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(alias: &str, modinfo: Option<&[u8]>) -> AliasIndex {
        AliasIndex::parse(alias.as_bytes(), modinfo, &Logger::default())
    }

    fn best(index: &AliasIndex, modalias: &str) -> Option<String> {
        index
            .best_match(&Modalias::parse(modalias).unwrap())
            .map(|c| c.module.to_string())
    }

    const MLX5_VF: &str = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";

    #[test]
    fn file_names_agree() {
        assert_eq!(ALIAS_FILE_C.to_str().unwrap(), ALIAS_FILE);
        assert_eq!(
            BUILTIN_MODINFO_FILE_C.to_str().unwrap(),
            BUILTIN_MODINFO_FILE
        );
    }

    #[test]
    fn counts_open_fields() {
        assert_eq!(wild_fields("v*d*sv*sd*bc*sc*i*"), 7);
        assert_eq!(wild_fields("v000015B3d0000101Esv*sd*bc*sc*i*"), 5);
        assert_eq!(
            wild_fields("v000015B3d0000101Esv000015B3sd00000048bc*sc*i*"),
            3
        );
        assert_eq!(wild_fields("v000015B3d0000101E*"), 6);
        assert_eq!(wild_fields("v000015B3d0000101Esv*sd*bc02sc00i00"), 2);
    }

    #[test]
    fn keeps_only_vfio_aliases_and_skips_junk() {
        let idx = index(
            "# Aliases extracted from modules themselves.\n\
             alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core\n\
             alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* bad/module\n\
             garbage vfio_pci:x y\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci extra\n\
             alias pci:v* not_vfio_pci:v*\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci",
            None,
        );
        assert_eq!(idx.len(), 2);
        assert_eq!(best(&idx, MLX5_VF).as_deref(), Some("mlx5_vfio_pci"));
    }

    #[test]
    fn builtin_modinfo_aliases_count() {
        let modinfo = b"vfio_pci.description=VFIO PCI\0xe_vfio_pci.alias=vfio_pci:v00008086d0000E20Bsv*sd*bc*sc*i*\0xe_vfio_pci.license=GPL\0";
        let idx = index(
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n",
            Some(modinfo),
        );
        assert_eq!(
            best(
                &idx,
                "pci:v00008086d0000E20Bsv00008086sd00001100bc03sc00i00"
            )
            .as_deref(),
            Some("xe_vfio_pci")
        );
    }

    #[test]
    fn more_specific_wins_then_file_order() {
        let idx = index(
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* generic_variant\n\
             alias vfio_pci:v000015B3d0000101Esv000015B3sd00000048bc*sc*i* subsys_variant\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc02sc07i* class_variant\n",
            None,
        );
        assert_eq!(best(&idx, MLX5_VF).as_deref(), Some("subsys_variant"));
        // Class 02/07: class_variant and subsys_variant don't both match; class wins over generic.
        assert_eq!(
            best(
                &idx,
                "pci:v000015B3d0000101Esv000015B3sd00000026bc02sc07i00"
            )
            .as_deref(),
            Some("class_variant")
        );
        let tie = index(
            "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* first_mod\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* second_mod\n",
            None,
        );
        let modalias = Modalias::parse(MLX5_VF).unwrap();
        let choice = tie.best_match(&modalias).unwrap();
        assert_eq!(choice.module.as_str(), "first_mod");
        assert_eq!(choice.tie.unwrap().0.as_str(), "second_mod");
    }

    #[test]
    fn no_match_at_all() {
        let idx = index(
            "alias vfio_pci:v00001AF4d*sv*sd*bc*sc*i* virtio_vfio_pci\n",
            None,
        );
        assert_eq!(best(&idx, MLX5_VF), None);
    }

    #[test]
    fn real_tables_rank_every_device_row() {
        // Copies of ../shared/data/kernel-*/ (see tests/data/README.md).
        for kernel in ["kernel-6.8.0-151-generic", "kernel-6.12.117+deb12-amd64"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(kernel);
            let alias = fs::read(dir.join(ALIAS_FILE)).unwrap();
            let modinfo = fs::read(dir.join(BUILTIN_MODINFO_FILE)).unwrap();
            let idx = AliasIndex::parse(&alias, Some(&modinfo), &Logger::default());
            assert!(idx.heap_bytes() < 64 * 1024);
            let rows = fs::read_to_string(dir.join("devices.tsv")).unwrap();
            for row in rows.lines().skip(1) {
                let cols: Vec<&str> = row.split('\t').collect();
                let expected = cols[2]
                    .split(',')
                    .find(|m| *m != VFIO_PCI_MODULE)
                    .unwrap_or(VFIO_PCI_MODULE);
                assert_eq!(
                    best(&idx, cols[1]).as_deref(),
                    Some(expected),
                    "{kernel} {}",
                    cols[0]
                );
            }
        }
    }

    /// The host side against what kmod's modprobe -R matched for every device row of both
    /// shipped kernels (order aside: kmod reports build order), and the vendor index against
    /// a scan of every pattern.
    #[test]
    fn host_aliases_match_what_kmod_matched() {
        for kernel in ["kernel-6.8.0-151-generic", "kernel-6.12.117+deb12-amd64"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(kernel);
            let modinfo = fs::read(dir.join(BUILTIN_MODINFO_FILE)).ok();
            let host =
                HostAliases::parse(&fs::read(dir.join(ALIAS_FILE)).unwrap(), modinfo.as_deref());
            let rows = fs::read_to_string(dir.join("devices.tsv")).unwrap();
            for row in rows.lines().skip(1) {
                let f: Vec<&str> = row.split('\t').collect();
                let modalias = Modalias::parse(f[1]).unwrap();
                let mut got: Vec<String> = host
                    .matching_modules(&modalias)
                    .iter()
                    .map(|m| m.to_string())
                    .collect();
                let mut scanned: Vec<String> = Vec::new();
                for (m, p) in &host.aliases {
                    if glob_match(p.as_bytes(), modalias.body().as_bytes())
                        && !scanned.contains(&m.to_string())
                    {
                        scanned.push(m.to_string());
                    }
                }
                assert_eq!(got, scanned, "{kernel} {}: vendor index vs full scan", f[0]);
                let mut kmod: Vec<String> = f
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
                got.sort();
                kmod.sort();
                assert_eq!(got, kmod, "{kernel} {}", f[0]);
            }
        }
    }

    #[test]
    fn host_aliases_cover_builtin_records_and_class_patterns() {
        let host = HostAliases::parse(
            b"alias pci:v*d*sv*sd*bc01sc08i02* nvme\nalias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n",
            Some(b"virtio_pci.alias=pci:v00001AF4d*sv*sd*bc*sc*i*\0virtio_pci.license=GPL\0"),
        );
        let nvme =
            Modalias::parse("pci:v00008086d0000F1A8sv00008086sd0000390Bbc01sc08i02").unwrap();
        let names = |m: &Modalias| -> Vec<String> {
            host.matching_modules(m)
                .iter()
                .map(|m| m.to_string())
                .collect()
        };
        assert_eq!(names(&nvme), ["nvme"]);
        let virtio =
            Modalias::parse("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00").unwrap();
        assert_eq!(names(&virtio), ["virtio_pci"]);
        assert!(host.has_module(&ModuleName::new("e1000e").unwrap()));
        assert!(!host.has_module(&ModuleName::new("igb").unwrap()));
    }
}
