//! Shell-glob matching with the semantics kmod gets from `fnmatch(pattern, text, 0)`: `*`, `?`,
//! bracket expressions (`[abc]`, `[a-f]`, `[!x]`/`[^x]`, `[[:digit:]]`), backslash escapes,
//! case-sensitive, in the C locale (bytes). No allocation, and no exponential backtracking: one
//! `*` is backtracked at a time, which is enough because a later `*` subsumes an earlier one.

/// A parsed bracket expression starting at `pattern[start] == b'['`: whether `c` is in it, and
/// where the pattern continues. `None` when the bracket is not closed (then `[` is literal).
fn bracket(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *pattern.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == b'[' && pattern.get(i + 1) == Some(&b':') {
            // A character class such as [:digit:].
            let name_start = i + 2;
            let len = pattern[name_start..].windows(2).position(|w| w == b":]")?;
            let name = &pattern[name_start..name_start + len];
            matched |= class_contains(name, c)?;
            i = name_start + len + 2;
            continue;
        }
        if lo == b'\\' {
            i += 1;
            lo = *pattern.get(i)?;
        }
        i += 1;
        // A range lo-hi, unless the '-' is the last thing before ']'.
        if pattern.get(i) == Some(&b'-') && pattern.get(i + 1).is_some_and(|&h| h != b']') {
            let mut hi = pattern[i + 1];
            i += 2;
            if hi == b'\\' {
                hi = *pattern.get(i)?;
                i += 1;
            }
            matched |= lo <= c && c <= hi;
        } else {
            matched |= lo == c;
        }
    }
}

/// Membership in a POSIX character class; `None` for an unknown class name (then, like glibc,
/// the pattern matches nothing).
fn class_contains(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// True when `text` matches the glob `pattern` as `fnmatch(pattern, text, 0)` would.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index it covers up to).
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                resume = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match bracket(pattern, p, text[t]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (text[t] == b'[').then_some(p + 1),
            },
            Some(b'\\') => match pattern.get(p + 1) {
                Some(&e) => (e == text[t]).then_some(p + 2),
                None => None, // a trailing backslash matches nothing
            },
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                t += 1;
            }
            None => match resume {
                // Let the last `*` swallow one more byte and retry from just after it.
                Some((after_star, covered)) => {
                    p = after_star;
                    t = covered + 1;
                    resume = Some((after_star, covered + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// How unspecific a pattern is: its number of wildcards (`*`, `?` and bracket expressions).
pub fn wildcard_count(pattern: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' => n += 1,
            b'\\' => i += 1,
            b'[' => {
                if let Some((_, next)) = bracket(pattern, i, 0) {
                    n += 1;
                    i = next;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    n
}

/// True when the pattern contains any wildcard.
pub fn has_wildcard(pattern: &[u8]) -> bool {
    wildcard_count(pattern) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn kernel_aliases() {
        let dev = "v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";
        assert!(m("v*d*sv*sd*bc*sc*i*", dev));
        assert!(m("v000015B3d0000101Esv*sd*bc*sc*i*", dev));
        assert!(!m("v000015B3d0000101Dsv*sd*bc*sc*i*", dev));
        // Case-sensitive: a lower-case modalias misses an upper-case alias.
        assert!(!m("v000015B3d0000101Esv*sd*bc*sc*i*", &dev.to_lowercase()));
        assert!(m("v000015B3d0000101[DE]sv*sd*bc02sc0?i*", dev));
        assert!(!m("v000015B3d0000101[!E]sv*sd*bc*sc*i*", dev));
        assert!(m("v000015B3d0000101[[:xdigit:]]sv*", dev));
    }

    #[test]
    fn glob_corner_cases() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("[", "["));
        assert!(m("[]]", "]"));
        assert!(m("[!]]", "a"));
        assert!(m("[a-]", "-"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(!m("a\\", "a\\"));
        assert!(!m("[[:bogus:]]", "a"));
        assert!(m("*a*a*a*a*a*a*a*b", &("a".repeat(40) + "b")));
        assert!(!m("*a*a*a*a*a*a*a*b", &"a".repeat(40)));
    }

    #[test]
    fn wildcards_are_counted() {
        assert_eq!(wildcard_count(b"v*d*sv*sd*bc*sc*i*"), 7);
        assert_eq!(wildcard_count(b"v000015B3d0000101Esv*sd*bc*sc*i*"), 5);
        assert_eq!(wildcard_count(b"v0000[AB]B3d?"), 2);
        assert_eq!(wildcard_count(b"a\\*b"), 0);
        assert_eq!(wildcard_count(b"a[b"), 0);
    }

    fn fnmatch(p: &[u8], t: &[u8]) -> bool {
        let p = CString::new(p).unwrap();
        let t = CString::new(t).unwrap();
        // SAFETY: both are valid NUL-terminated strings.
        unsafe { libc::fnmatch(p.as_ptr(), t.as_ptr(), 0) == 0 }
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick(&mut self, from: &[u8]) -> u8 {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    /// Property: on random patterns and texts over an alphabet rich in special characters,
    /// our matcher agrees with glibc's fnmatch (the reference kmod uses).
    #[test]
    fn agrees_with_fnmatch_on_random_inputs() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let pattern_alphabet = b"ab-]![^*?\\A0";
        let text_alphabet = b"ab-]![^*?\\A0";
        let mut matches = 0;
        for case in 0..200_000 {
            let plen = (rng.next() % 9) as usize;
            let tlen = (rng.next() % 9) as usize;
            let p: Vec<u8> = (0..plen).map(|_| rng.pick(pattern_alphabet)).collect();
            let t: Vec<u8> = (0..tlen).map(|_| rng.pick(text_alphabet)).collect();
            let expected = fnmatch(&p, &t);
            matches += expected as usize;
            assert_eq!(
                glob_match(&p, &t),
                expected,
                "case {case}: pattern {:?} text {:?}",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(&t)
            );
        }
        // Enough of both answers for the comparison to mean something.
        assert!(matches > 2_000 && matches < 198_000, "{matches} matches");
    }

    /// Property: the same on modalias-shaped inputs with classes and ranges.
    #[test]
    fn agrees_with_fnmatch_on_modalias_shapes() {
        let mut rng = Rng(42);
        let hex = b"0123456789ABCDEF";
        for _ in 0..50_000 {
            let text: Vec<u8> = (0..12).map(|_| rng.pick(hex)).collect();
            let mut p = Vec::new();
            for &c in &text {
                match rng.next() % 8 {
                    0 => p.push(b'?'),
                    1 => p.extend_from_slice(b"*"),
                    2 => p.extend_from_slice(b"[0-9]"),
                    3 => p.extend_from_slice(b"[[:xdigit:]]"),
                    4 => p.extend_from_slice(b"[!A-C]"),
                    _ => p.push(c),
                }
            }
            assert_eq!(
                glob_match(&p, &text),
                fnmatch(&p, &text),
                "{:?}",
                String::from_utf8_lossy(&p)
            );
        }
    }
}
