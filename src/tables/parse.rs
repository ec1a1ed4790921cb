//! The two alias formats of the module tables, read into the indexes. A `modules.alias` line is
//! `alias PATTERN MODULE`; a `modules.builtin.modinfo` record is `MODULE.alias=PATTERN`
//! (NUL-separated). One parser reads both for both prefixes:
//!
//! - `vfio_pci:` patterns (what VFIO drivers declare) go to [`AliasIndex`], ranked by
//!   specificity for variant detection (SPEC 3.2). A first variant lookup reads only these: a
//!   SIMD substring search finds the few `vfio_pci:` lines of the ~35,000 while each chunk of the
//!   file is still in the CPU cache, so it costs about one read of the file.
//! - `pci:` patterns (the host drivers' ID tables) go to [`HostAliases`], indexed by the vendor
//!   and device IDs they name, for the claim check and the host-module lookup. Built on the
//!   first question about a host driver, in the same pass, which fills the `vfio_pci:` side too.
//!
//! No file is opened here: `tables.rs` owns the files (opened by `os/files.rs`) and the cache.

use std::io::{self, Read};

use memchr::memmem::Finder;

use super::host::{HostAliases, HostBuilder};
use super::vfio::AliasIndex;
use crate::types::log::{Logger, Priority};

/// The prefix depmod gives the aliases of `PCI_DRIVER_OVERRIDE_DEVICE_VFIO()` IDs.
pub const VFIO_PREFIX: &str = "vfio_pci:";
/// The prefix of ordinary PCI ID-table aliases.
pub const PCI_PREFIX: &str = "pci:";

pub const ALIAS_FILE: &str = "modules.alias";
pub const BUILTIN_MODINFO_FILE: &str = "modules.builtin.modinfo";

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
pub(super) fn usable(pattern: &str) -> bool {
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
    /// the CPU cache and never held whole. A line longer than a chunk cannot be an alias line
    /// (real ones are under a few hundred bytes): it is skipped to its end, so a hostile file of
    /// one endless line costs one chunk of memory, not the file's size.
    pub fn read_alias_file(&mut self, mut file: impl Read) -> io::Result<()> {
        const CHUNK: usize = 64 * 1024;
        let mut buf = vec![0u8; CHUNK];
        let (mut filled, mut offset, mut skipping) = (0, 0, false);
        loop {
            let n = match file.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                if !skipping {
                    self.alias_lines(&buf[..filled], offset);
                }
                return Ok(());
            }
            filled += n;
            let mut start = 0;
            if skipping {
                match memchr::memchr(b'\n', &buf[..filled]) {
                    None => {
                        offset += filled;
                        filled = 0;
                        continue;
                    }
                    Some(end) => {
                        start = end + 1;
                        skipping = false;
                    }
                }
            }
            // Scan the complete lines; carry the partial last one over to the next read.
            let complete = match memchr::memrchr(b'\n', &buf[start..filled]) {
                Some(last_newline) => {
                    let complete = start + last_newline + 1;
                    self.alias_lines(&buf[start..complete], offset + start);
                    complete
                }
                None => start,
            };
            buf.copy_within(complete..filled, 0);
            filled -= complete;
            offset += complete;
            if filled == buf.len() {
                self.log.log(
                    Priority::Debug,
                    format_args!(
                        "{ALIAS_FILE}: skipping a line of more than {CHUNK} bytes at byte {offset}"
                    ),
                );
                skipping = true;
                offset += filled;
                filled = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::modalias::Modalias;

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

    /// A reader that hands out at most `step` bytes per read, as a pipe or a slow file does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.step).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_through(text: &[u8], step: usize) -> AliasIndex {
        let log = Logger::default();
        let mut parser = Parser::new(false, &log);
        parser
            .read_alias_file(Trickle { data: text, step })
            .unwrap();
        parser.finish().0
    }

    /// A line longer than a chunk (here 1 MiB, with an alias-looking start) is skipped to its
    /// end without growing the buffer; the lines around it still count, whatever the reads'
    /// sizes.
    #[test]
    fn an_endless_line_is_skipped_and_the_rest_still_read() {
        let mut text = b"alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n".to_vec();
        text.extend_from_slice(b"alias vfio_pci:v*d*sv*sd*bc*sc*i* ");
        text.extend(std::iter::repeat(b'x').take(1 << 20));
        text.extend_from_slice(b"\nalias vfio_pci:v00008086d0000E20Bsv*sd*bc*sc*i* xe_vfio_pci\n");
        for step in [7, 4096, 65536, 1 << 21] {
            let idx = read_through(&text, step);
            assert_eq!(idx.len(), 2, "reads of {step} bytes");
            assert_eq!(best(&idx, MLX5_VF).as_deref(), Some("mlx5_vfio_pci"));
            assert_eq!(
                best(
                    &idx,
                    "pci:v00008086d0000E20Bsv00008086sd00001100bc03sc00i00"
                )
                .as_deref(),
                Some("xe_vfio_pci")
            );
        }
        // Only the endless line, no newline at all: nothing, and no error.
        let mut endless = b"alias vfio_pci:".to_vec();
        endless.extend(std::iter::repeat(b'y').take(1 << 20));
        assert_eq!(read_through(&endless, 65536).len(), 0);
    }
}
