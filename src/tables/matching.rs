//! Matching a device against alias patterns as kmod does (`fnmatch(3)` in the C locale), and
//! ranking patterns by how specific they are (SPEC 3.2).

use std::ffi::{CStr, CString};

use crate::types::modalias::{Modalias, FIELDS};

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
pub(super) fn matches(pattern: &CStr, text: &Text) -> bool {
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
pub(super) fn wild_fields(pattern: &str) -> u8 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
