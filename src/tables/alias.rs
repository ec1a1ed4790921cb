//! The two alias formats of the module tables and the indexes built from them. A
//! `modules.alias` line is `alias PATTERN MODULE`; a `modules.builtin.modinfo` record is
//! `MODULE.alias=PATTERN` (NUL-separated). One parser reads both for both prefixes:
//!
//! - `vfio_pci:` patterns (what VFIO drivers declare) go to [`AliasIndex`], ranked by
//!   specificity for variant detection (SPEC 3.2). A first variant lookup reads only these: a
//!   SIMD substring search finds the few `vfio_pci:` lines of the ~35,000 while each chunk of the
//!   file is still in the CPU cache, so it costs about one read of the file.
//! - `pci:` patterns (the host drivers' ID tables) go to [`HostAliases`], indexed by the vendor
//!   and device IDs they name, for the claim check and the host-module lookup. Built on the
//!   first question about a host driver, in the same pass, which fills the `vfio_pci:` side too.
//!
//! No file is opened here: `tables.rs` owns the files and the cache.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, Read};

use memchr::memmem::Finder;

use crate::types::log::{Logger, Priority};
use crate::types::modalias::{Modalias, FIELDS};
use crate::types::name::ModuleName;

/// The prefix depmod gives the aliases of `PCI_DRIVER_OVERRIDE_DEVICE_VFIO()` IDs.
pub const VFIO_PREFIX: &str = "vfio_pci:";
/// The prefix of ordinary PCI ID-table aliases.
pub const PCI_PREFIX: &str = "pci:";

pub const ALIAS_FILE: &str = "modules.alias";
pub const BUILTIN_MODINFO_FILE: &str = "modules.builtin.modinfo";

/// A device's modalias as the matcher takes it: the part after `pci:`, NUL-terminated (it is
/// matched against patterns after their `pci:` or `vfio_pci:` prefix). While it lives, the
/// calling thread matches in the C locale (see [`CLocale`]).
pub struct Text {
    text: CString,
    _locale: CLocale,
}

impl Text {
    pub fn of(modalias: &Modalias) -> Text {
        Text {
            text: CString::new(modalias.body()).expect("a validated modalias has no NUL"),
            _locale: CLocale::enter(),
        }
    }
}

/// The C locale for the calling thread until dropped (`uselocale(3)`, a thread-local
/// switch): modprobe never calls `setlocale`, so kmod matches aliases in the C locale, byte by
/// byte; a caller that did (libvirtd runs `setlocale(LC_ALL, "")`) would otherwise send
/// every match through glibc's multibyte path, about twice as slow, and have patterns with
/// bytes invalid in its charset match nothing.
struct CLocale {
    /// The thread's locale before, or null when the C locale could not be had.
    previous: libc::locale_t,
}

impl CLocale {
    fn enter() -> CLocale {
        static C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        // SAFETY: newlocale with a valid name and no base; the result is kept for good.
        let c = *C.get_or_init(|| unsafe {
            libc::newlocale(libc::LC_ALL_MASK, c"C".as_ptr(), std::ptr::null_mut()) as usize
        }) as libc::locale_t;
        if c.is_null() {
            return CLocale {
                previous: std::ptr::null_mut(),
            };
        }
        // SAFETY: `c` is a valid locale object; uselocale returns the thread's previous one.
        CLocale {
            previous: unsafe { libc::uselocale(c) },
        }
    }
}

impl Drop for CLocale {
    fn drop(&mut self) {
        if !self.previous.is_null() {
            // SAFETY: puts back what uselocale returned (a locale or LC_GLOBAL_LOCALE).
            unsafe { libc::uselocale(self.previous) };
        }
    }
}

/// True when the alias pattern matches the text, with kmod's semantics: `fnmatch(3)` with
/// flags 0 (case-sensitive shell globs), in the C locale.
fn matches(pattern: &CStr, text: &Text) -> bool {
    // SAFETY: both are NUL-terminated strings that outlive the call.
    unsafe { libc::fnmatch(pattern.as_ptr(), text.text.as_ptr(), 0) == 0 }
}

/// The number of wildcards in a pattern: `*`, `?` and bracket expressions, as `fnmatch` reads
/// them (a backslash makes the next byte literal; a `[` with no closing `]` is a literal).
/// Only ranks aliases: fewer is more specific.
pub fn wildcard_count(pattern: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => i += 1,
            b'*' | b'?' => n += 1,
            b'[' => {
                if let Some(end) = bracket_end(pattern, i) {
                    n += 1;
                    i = end;
                }
            }
            _ => {}
        }
        i += 1;
    }
    n
}

/// The index of the `]` that closes the bracket expression opened at `pattern[open]`, or
/// `None` when nothing closes it. A `]` first in the set (after `!` or `^`) is a member, as
/// are `[:class:]`, `[=c=]` and `[.c.]` and backslash escapes.
fn bracket_end(pattern: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(pattern.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    if pattern.get(i) == Some(&b']') {
        i += 1;
    }
    while i < pattern.len() {
        match pattern[i] {
            b']' => return Some(i),
            b'\\' => i += 1,
            b'[' => {
                if let Some(&kind @ (b':' | b'=' | b'.')) = pattern.get(i + 1) {
                    // Skip to the matching `:]`, `=]` or `.]`, when there is one.
                    if let Some(close) = pattern[i + 2..].windows(2).position(|w| w == [kind, b']'])
                    {
                        i += 2 + close + 1;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
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
        if wildcard_count(&pattern.as_bytes()[value_start..value_end]) > 0 {
            open += 1;
        }
    }
    open
}

/// Why a `modules.alias` line is not an alias.
type Malformed = &'static str;

/// The pattern (with its prefix) and module of one `modules.alias` line; `None` for a comment.
fn alias_line(line: &[u8]) -> Result<Option<(&str, &str)>, Malformed> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8")?;
    let mut words = text.split_ascii_whitespace();
    match words.next() {
        Some("alias") => {}
        Some(w) if w.starts_with('#') => return Ok(None),
        None => return Ok(None),
        _ => return Err("not an alias line"),
    }
    match (words.next(), words.next(), words.next()) {
        (Some(pattern), Some(module), None) => Ok(Some((pattern, module))),
        _ => Err("expected: alias PATTERN MODULE"),
    }
}

/// The pattern (with its prefix) and module of a `MODULE.alias=PATTERN` record of
/// `modules.builtin.modinfo`; `None` for every other record.
fn modinfo_alias(record: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(record).ok()?;
    let (module, rest) = text.split_once('.')?;
    Some((rest.strip_prefix("alias=")?, module))
}

/// Calls `each(record, offset)` for every record of `text` (records end at `sep`; `offset` is
/// where the record starts in `text`) that contains `needle`; the others are never looked at.
fn records_with(finder: &Finder<'_>, text: &[u8], sep: u8, mut each: impl FnMut(&[u8], usize)) {
    let mut pos = 0;
    while let Some(found) = finder.find(&text[pos..]) {
        let hit = pos + found;
        let start = memchr::memrchr(sep, &text[..hit]).map_or(0, |i| i + 1);
        let end = memchr::memchr(sep, &text[hit..]).map_or(text.len(), |i| hit + i);
        each(&text[start..end], start);
        pos = end;
    }
}

/// A pattern fit for the matcher: not empty, no white space or control bytes (NUL included).
fn usable(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

/// Reads the tables into the indexes: the `vfio_pci:` side alone, or both sides.
pub struct Parser<'a> {
    log: &'a Logger,
    vfio: AliasIndex,
    host: Option<HostBuilder>,
    /// What a `modules.alias` line, and a `modules.builtin.modinfo` record, must contain to
    /// be looked at.
    line_needle: Finder<'static>,
    record_needle: Finder<'static>,
}

impl<'a> Parser<'a> {
    /// `host`: also build the `pci:` side (every PCI alias line is then parsed; every
    /// `vfio_pci:` line also holds `pci:`).
    pub fn new(host: bool, log: &'a Logger) -> Parser<'a> {
        let (line_needle, record_needle) = if host {
            (PCI_PREFIX, ".alias=")
        } else {
            (VFIO_PREFIX, ".alias=vfio_pci:")
        };
        Parser {
            log,
            vfio: AliasIndex::default(),
            host: host.then(HostBuilder::default),
            line_needle: Finder::new(line_needle),
            record_needle: Finder::new(record_needle),
        }
    }

    /// Reads `modules.alias` in chunks, so the 1-2 MB file is searched while it is still in
    /// the CPU cache and never held whole.
    pub fn read_alias_file(&mut self, mut file: impl Read) -> io::Result<()> {
        const CHUNK: usize = 64 * 1024;
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
                self.alias_lines(&buf[..filled], offset);
                return Ok(());
            }
            filled += n;
            // Scan the complete lines; carry the partial last one over to the next read.
            if let Some(last_newline) = memchr::memrchr(b'\n', &buf[..filled]) {
                let complete = last_newline + 1;
                self.alias_lines(&buf[..complete], offset);
                buf.copy_within(complete..filled, 0);
                filled -= complete;
                offset += complete;
            }
        }
    }

    /// Parses the whole lines of `text` (starting at byte `offset` of the file) that can hold
    /// an alias this parser keeps.
    pub fn alias_lines(&mut self, text: &[u8], offset: usize) {
        let needle = self.line_needle.clone();
        records_with(&needle, text, b'\n', |line, start| match alias_line(line) {
            Ok(Some((pattern, module))) => self.add(pattern, module, ALIAS_FILE),
            Ok(None) => {}
            Err(why) => self.log.log(
                Priority::Debug,
                format_args!(
                    "{ALIAS_FILE}: skipping malformed line at byte {} ({why}): {:?}",
                    offset + start,
                    String::from_utf8_lossy(line)
                ),
            ),
        });
    }

    /// Parses the `MODULE.alias=...` records of `modules.builtin.modinfo`.
    pub fn builtin_modinfo(&mut self, data: &[u8]) {
        let needle = self.record_needle.clone();
        records_with(&needle, data, 0, |record, _| {
            if let Some((pattern, module)) = modinfo_alias(record) {
                self.add(pattern, module, BUILTIN_MODINFO_FILE);
            }
        });
    }

    fn add(&mut self, pattern: &str, module: &str, origin: &str) {
        if let Some(p) = pattern.strip_prefix(VFIO_PREFIX) {
            self.vfio.add(p, module, self.log, origin);
        } else if let (Some(p), Some(host)) = (pattern.strip_prefix(PCI_PREFIX), &mut self.host) {
            host.add(p, module);
        }
    }

    pub fn finish(self) -> (AliasIndex, Option<HostAliases>) {
        (self.vfio, self.host.map(HostBuilder::finish))
    }
}

#[derive(Debug)]
struct VfioAlias {
    /// The glob after `vfio_pci:`, matched against a modalias after `pci:`.
    pattern: CString,
    module: ModuleName,
    /// Modalias fields (v, d, sv, sd, bc, sc, i) the pattern leaves open: fewer is more specific.
    wild_fields: u8,
    /// Wildcards in the whole pattern: the tie-breaker after `wild_fields`.
    wild_chars: u16,
}

impl VfioAlias {
    fn pattern(&self) -> &str {
        // Made from a &str.
        self.pattern.to_str().unwrap_or_default()
    }
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
        let mut parser = Parser::new(false, log);
        parser.alias_lines(alias_file, 0);
        if let Some(modinfo) = builtin_modinfo {
            parser.builtin_modinfo(modinfo);
        }
        parser.finish().0
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
        let Some(c_pattern) = usable(pattern)
            .then(|| CString::new(pattern).ok())
            .flatten()
        else {
            log.log(
                Priority::Debug,
                format_args!("{origin}: skipping malformed alias pattern {pattern:?} of {module}"),
            );
            return;
        };
        self.aliases.push(VfioAlias {
            wild_fields: wild_fields(pattern),
            wild_chars: wildcard_count(pattern.as_bytes()).min(u16::MAX as usize) as u16,
            pattern: c_pattern,
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
                .map(|a| a.pattern.as_bytes_with_nul().len() + a.module.as_str().len())
                .sum::<usize>()
    }

    /// True when `module` declares `vfio_pci:` aliases: a VFIO driver's module.
    pub fn is_vfio_module(&self, module: &ModuleName) -> bool {
        self.aliases.iter().any(|a| a.module == *module)
    }

    /// `None` when `module` declares no `vfio_pci:` aliases, else whether one matches.
    pub fn module_claims(&self, module: &ModuleName, text: &Text) -> Option<bool> {
        let mut known = false;
        for alias in self.aliases.iter().filter(|a| a.module == *module) {
            if matches(&alias.pattern, text) {
                return Some(true);
            }
            known = true;
        }
        known.then_some(false)
    }

    /// The most specific `vfio_pci:` alias matching the device: fewest open fields, then fewest
    /// wildcards, then file order. `None` when nothing matches (not even a catch-all).
    pub fn best_match(&self, modalias: &Modalias) -> Option<Choice<'_>> {
        let text = Text::of(modalias);
        let mut best: Option<&VfioAlias> = None;
        let mut tie: Option<&VfioAlias> = None;
        for alias in &self.aliases {
            if !matches(&alias.pattern, &text) {
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
            pattern: b.pattern(),
            tie: tie.map(|t| (&t.module, t.pattern())),
        })
    }
}

/// The vendor and device IDs a `pci:` pattern names literally at its start (`v00008086d000010D3`
/// then anything): a device can only match when its modalias starts with the same bytes. Hex
/// is read in either case, so the buckets are a superset and the match itself decides.
fn literal_ids(pattern: &str) -> (Option<u32>, Option<u32>) {
    let hex = |s: Option<&str>| {
        s.filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let Some(rest) = pattern.strip_prefix('v') else {
        return (None, None);
    };
    let vendor = hex(rest.get(..8));
    let device = vendor.and_then(|_| hex(rest.get(8..)?.strip_prefix('d')?.get(..8)));
    (vendor, device)
}

#[derive(Default)]
struct HostBuilder {
    aliases: HostAliases,
    ids: HashMap<ModuleName, u32>,
    /// The module of the last alias as written, and its index: the aliases of one module are
    /// consecutive lines, so a name is validated once per module, not once per alias.
    last: Option<(String, u32)>,
}

impl HostBuilder {
    fn add(&mut self, pattern: &str, module: &str) {
        if !usable(pattern) {
            return;
        }
        let module_index = match &self.last {
            Some((name, i)) if name == module => *i,
            _ => {
                let Ok(name) = ModuleName::new(module) else {
                    return;
                };
                let next = self.aliases.modules.len() as u32;
                let i = *self.ids.entry(name.clone()).or_insert(next);
                if i == next {
                    self.aliases.modules.push(name);
                }
                self.last = Some((module.to_owned(), i));
                i
            }
        };
        let h = &mut self.aliases;
        let Ok(start) = u32::try_from(h.patterns.len()) else {
            return; // a 4 GB table: the rest is not indexed
        };
        let alias = h.aliases.len() as u32;
        h.patterns.extend_from_slice(pattern.as_bytes());
        h.patterns.push(0);
        h.aliases.push((start, module_index));
        match literal_ids(pattern) {
            (Some(v), Some(d)) => h.by_id.push(((v as u64) << 32 | d as u64, alias)),
            (Some(v), None) => h.by_vendor.push((v, alias)),
            _ => h.any_vendor.push(alias),
        }
    }

    fn finish(self) -> HostAliases {
        let mut h = self.aliases;
        // Stable sorts: within one key the aliases stay in table order.
        h.by_id.sort_by_key(|&(key, _)| key);
        h.by_vendor.sort_by_key(|&(key, _)| key);
        h.by_name = (0..h.modules.len() as u32).collect();
        h.by_name
            .sort_by(|&a, &b| h.modules[a as usize].cmp(&h.modules[b as usize]));
        h.patterns.shrink_to_fit();
        h.aliases.shrink_to_fit();
        h.modules.shrink_to_fit();
        h.by_id.shrink_to_fit();
        h.by_vendor.shrink_to_fit();
        h.any_vendor.shrink_to_fit();
        h
    }
}

/// The plain `pci:` aliases of one kernel (the host drivers' ID tables), from `modules.alias`
/// and the `alias=pci:` records of `modules.builtin.modinfo`, in file order. The ~10,000
/// patterns live in one buffer, and each is indexed by the vendor and device IDs it names, so
/// a lookup matches the handful of patterns that can match a device.
#[derive(Debug, Default)]
pub struct HostAliases {
    /// Every pattern (after `pci:`), NUL-terminated, one after another.
    patterns: Vec<u8>,
    /// Per alias, in table order: where its pattern starts, and its module (in `modules`).
    aliases: Vec<(u32, u32)>,
    /// The modules, each once (an alias's module is an index into it).
    modules: Vec<ModuleName>,
    /// Indices into `modules` in name order.
    by_name: Vec<u32>,
    /// (vendor << 32 | device, alias) for patterns naming both IDs literally, by key.
    by_id: Vec<(u64, u32)>,
    /// (vendor, alias) for patterns naming only the vendor literally, by key.
    by_vendor: Vec<(u32, u32)>,
    /// Aliases naming no literal vendor (class-based ones: nvme, ahci, xhci_pci, ...).
    any_vendor: Vec<u32>,
}

impl HostAliases {
    #[cfg(any(test, feature = "internals"))]
    pub fn parse(alias_file: &[u8], builtin_modinfo: Option<&[u8]>) -> HostAliases {
        let log = Logger::default();
        let mut parser = Parser::new(true, &log);
        parser.alias_lines(alias_file, 0);
        if let Some(modinfo) = builtin_modinfo {
            parser.builtin_modinfo(modinfo);
        }
        parser.finish().1.unwrap_or_default()
    }

    /// The number of `pci:` aliases held.
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    fn pattern(&self, alias: u32) -> &CStr {
        let start = self.aliases[alias as usize].0 as usize;
        CStr::from_bytes_until_nul(&self.patterns[start..]).unwrap_or_default()
    }

    fn module_index(&self, module: &ModuleName) -> Option<u32> {
        self.by_name
            .binary_search_by(|&i| self.modules[i as usize].cmp(module))
            .ok()
            .map(|k| self.by_name[k])
    }

    /// The aliases that can match the device, in table order.
    fn candidates(&self, modalias: &Modalias) -> Vec<u32> {
        let (vendor, device) = (modalias.vendor() as u32, modalias.device() as u32);
        let key = (vendor as u64) << 32 | device as u64;
        let ids = &self.by_id[self.by_id.partition_point(|&(k, _)| k < key)..];
        let ids = ids.iter().take_while(|&&(k, _)| k == key);
        let vendors = &self.by_vendor[self.by_vendor.partition_point(|&(k, _)| k < vendor)..];
        let vendors = vendors.iter().take_while(|&&(k, _)| k == vendor);
        let mut out: Vec<u32> = ids
            .map(|&(_, a)| a)
            .chain(vendors.map(|&(_, a)| a))
            .collect();
        out.extend_from_slice(&self.any_vendor);
        out.sort_unstable();
        out
    }

    /// `None` when the tables hold no `pci:` alias of `module`, else whether one matches.
    pub fn module_claims(&self, module: &ModuleName, modalias: &Modalias) -> Option<bool> {
        let m = self.module_index(module)?;
        let text = Text::of(modalias);
        Some(
            self.candidates(modalias)
                .into_iter()
                .any(|a| self.aliases[a as usize].1 == m && matches(self.pattern(a), &text)),
        )
    }

    /// The modules whose `pci:` aliases match `modalias`, each once, in table order.
    pub fn matching_modules(&self, modalias: &Modalias) -> Vec<ModuleName> {
        let text = Text::of(modalias);
        let mut out: Vec<u32> = Vec::new();
        for a in self.candidates(modalias) {
            let m = self.aliases[a as usize].1;
            if !out.contains(&m) && matches(self.pattern(a), &text) {
                out.push(m);
            }
        }
        out.into_iter()
            .map(|m| self.modules[m as usize].clone())
            .collect()
    }

    /// Bytes held on the heap (for the benchmark's memory figure).
    #[cfg(any(test, feature = "internals"))]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.patterns.capacity()
            + self.aliases.capacity() * size_of::<(u32, u32)>()
            + self.modules.capacity() * size_of::<ModuleName>()
            + self.modules.iter().map(|m| m.as_str().len()).sum::<usize>()
            + self.by_name.capacity() * 4
            + self.by_id.capacity() * size_of::<(u64, u32)>()
            + self.by_vendor.capacity() * size_of::<(u32, u32)>()
            + self.any_vendor.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::VFIO_PCI_MODULE;

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
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(kernel);
            let alias = std::fs::read(dir.join(ALIAS_FILE)).unwrap();
            let modinfo = std::fs::read(dir.join(BUILTIN_MODINFO_FILE)).unwrap();
            let idx = AliasIndex::parse(&alias, Some(&modinfo), &Logger::default());
            assert!(idx.heap_bytes() < 64 * 1024);
            let rows = std::fs::read_to_string(dir.join("devices.tsv")).unwrap();
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
    /// shipped kernels (order aside: kmod reports build order), and the ID index against a
    /// scan of every pattern.
    #[test]
    fn host_aliases_match_what_kmod_matched() {
        for kernel in ["kernel-6.8.0-151-generic", "kernel-6.12.117+deb12-amd64"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(kernel);
            let modinfo = std::fs::read(dir.join(BUILTIN_MODINFO_FILE)).ok();
            let alias_file = std::fs::read(dir.join(ALIAS_FILE)).unwrap();
            let host = HostAliases::parse(&alias_file, modinfo.as_deref());
            // The whole index in less memory than the file it was read from.
            assert!(
                host.heap_bytes() < alias_file.len(),
                "{}",
                host.heap_bytes()
            );
            let rows = std::fs::read_to_string(dir.join("devices.tsv")).unwrap();
            for row in rows.lines().skip(1) {
                let f: Vec<&str> = row.split('\t').collect();
                let modalias = Modalias::parse(f[1]).unwrap();
                let mut got: Vec<String> = host
                    .matching_modules(&modalias)
                    .iter()
                    .map(|m| m.to_string())
                    .collect();
                let text = Text::of(&modalias);
                let mut scanned: Vec<String> = Vec::new();
                for a in 0..host.len() as u32 {
                    let m = host.modules[host.aliases[a as usize].1 as usize].to_string();
                    if matches(host.pattern(a), &text) && !scanned.contains(&m) {
                        scanned.push(m);
                    }
                }
                assert_eq!(got, scanned, "{kernel} {}: ID index vs full scan", f[0]);
                for m in &got {
                    let m = ModuleName::new(m).unwrap();
                    assert_eq!(
                        host.module_claims(&m, &modalias),
                        Some(true),
                        "{kernel} {m}"
                    );
                }
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
        let e1000e = ModuleName::new("e1000e").unwrap();
        assert_eq!(host.module_claims(&e1000e, &nvme), Some(false));
        assert_eq!(
            host.module_claims(&ModuleName::new("nvme").unwrap(), &nvme),
            Some(true)
        );
        assert_eq!(
            host.module_claims(&ModuleName::new("igb").unwrap(), &nvme),
            None
        );
    }

    #[test]
    fn literal_ids_bucket_only_what_must_match() {
        assert_eq!(
            literal_ids("v00008086d000010D3sv*sd*bc*sc*i*"),
            (Some(0x8086), Some(0x10d3))
        );
        assert_eq!(
            literal_ids("v00008086d*sv*sd*bc02sc00i*"),
            (Some(0x8086), None)
        );
        assert_eq!(literal_ids("v0000808?d000010D3*"), (None, None));
        assert_eq!(literal_ids("v*d*sv*sd*bc01sc08i02*"), (None, None));
        assert_eq!(literal_ids("v00008086d000010D"), (Some(0x8086), None));
        assert_eq!(literal_ids("*"), (None, None));
    }

    fn glob(pattern: &str, modalias: &str) -> bool {
        let pattern = CString::new(pattern).unwrap();
        matches(&pattern, &Text::of(&Modalias::parse(modalias).unwrap()))
    }

    #[test]
    fn aliases_match_as_kmod_matches_them() {
        assert!(glob("v*d*sv*sd*bc*sc*i*", MLX5_VF));
        assert!(glob("v000015B3d0000101Esv*sd*bc*sc*i*", MLX5_VF));
        assert!(!glob("v000015B3d0000101Dsv*sd*bc*sc*i*", MLX5_VF));
        // Case-sensitive: a lower-case modalias misses an upper-case alias.
        let lower = MLX5_VF.to_lowercase();
        assert!(!glob("v000015B3d0000101Esv*sd*bc*sc*i*", &lower));
        assert!(glob("v000015B3d0000101[DE]sv*sd*bc02sc0?i*", MLX5_VF));
        assert!(!glob("v000015B3d0000101[!E]sv*sd*bc*sc*i*", MLX5_VF));
        assert!(glob("v000015B3d0000101[[:xdigit:]]sv*", MLX5_VF));
        assert!(!glob("v000015B3d0000101E", MLX5_VF)); // the whole text, not a prefix
    }

    /// A caller in a UTF-8 locale (libvirtd calls setlocale(LC_ALL, "")) gets the same
    /// answers, matched in the C locale, and its thread's locale back afterwards.
    #[test]
    fn matching_is_done_in_the_c_locale_and_the_thread_gets_its_own_back() {
        // SAFETY: newlocale/uselocale on this test thread only; the locale is freed after
        // the thread is back on the global one.
        unsafe {
            let utf8 =
                libc::newlocale(libc::LC_ALL_MASK, c"C.UTF-8".as_ptr(), std::ptr::null_mut());
            if utf8.is_null() {
                return; // no C.UTF-8 here: nothing to compare
            }
            let global = libc::uselocale(utf8);
            let idx = index(
                "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
                 alias vfio_pci:v000015B3d0000101[DE]sv*sd*bc*sc*i* mlx5_vfio_pci\n",
                None,
            );
            assert_eq!(best(&idx, MLX5_VF).as_deref(), Some("mlx5_vfio_pci"));
            assert_eq!(libc::uselocale(std::ptr::null_mut()), utf8);
            libc::uselocale(global);
            libc::freelocale(utf8);
        }
    }

    #[test]
    fn wildcards_are_counted() {
        assert_eq!(wildcard_count(b"v*d*sv*sd*bc*sc*i*"), 7);
        assert_eq!(wildcard_count(b"v000015B3d0000101Esv*sd*bc*sc*i*"), 5);
        assert_eq!(wildcard_count(b"v0000[AB]B3d?"), 2);
        assert_eq!(wildcard_count(b"a\\*b"), 0);
        assert_eq!(wildcard_count(b"a[b"), 0);
        assert_eq!(wildcard_count(b"[]a]*"), 2);
        assert_eq!(wildcard_count(b"[![:digit:]]"), 1);
        assert_eq!(wildcard_count(b"[[:digit:]-]?"), 2);
    }

    #[test]
    fn vfio_module_claims() {
        let idx = index(
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n",
            None,
        );
        let mlx5 = ModuleName::new("mlx5_vfio_pci").unwrap();
        let vf = Text::of(&Modalias::parse(MLX5_VF).unwrap());
        let e1000e = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
        let other = Text::of(&Modalias::parse(e1000e).unwrap());
        assert_eq!(idx.module_claims(&mlx5, &vf), Some(true));
        assert_eq!(idx.module_claims(&mlx5, &other), Some(false));
        assert_eq!(
            idx.module_claims(&ModuleName::new("e1000e").unwrap(), &vf),
            None
        );
        assert!(idx.is_vfio_module(&mlx5));
    }
}
