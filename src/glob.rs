//! Shell-glob matching with the semantics kmod gets from `fnmatch(pattern, text, 0)` in the C
//! locale (bytes): `*`, `?`, backslash escapes, and bracket expressions with ranges, `!`/`^`
//! negation, classes (`[[:digit:]]`), equivalence classes and collating symbols (`[[=a=]]`,
//! `[[.a.]]`), and glibc's handling of malformed and unterminated brackets, all checked by
//! differential fuzzing against glibc (fuzz/). Case-sensitive. No allocation, and no
//! exponential backtracking: one `*` is backtracked at a time, which is enough because a later
//! `*` subsumes an earlier one.

/// What a bracket expression at `pattern[start] == b'['` makes of one text byte. This follows
/// glibc's `fnmatch` (C locale, flags 0) step by step, quirks included, because kmod matches
/// aliases with it: members are read in order; once one matches, the rest is skipped with
/// laxer rules; a malformed part met before that fails the match at this position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bracket {
    /// The byte is in the set (after negation); the pattern continues at the index.
    In(usize),
    /// The byte is not in the set; the bracket ends before the index.
    Out(usize),
    /// The bracket cannot match here (an unknown class name, a malformed range end, an
    /// unterminated bracket after a member matched): no match at this position.
    Fail,
    /// Unterminated: `[` is an ordinary character.
    Literal,
}

/// glibc's limit on a class name (CHARCLASS_NAME_MAX). Class names are read as bytes in
/// `a..=y`: glibc stops at `z` too (no class name has one), a quirk kept for fidelity.
const CHAR_CLASS_MAX_LENGTH: usize = 2048;

fn bracket(pattern: &[u8], start: usize, ch: u8) -> Bracket {
    // Reading past the end yields NUL, as in C.
    let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let mut p = start + 1;
    let negate = at(p) == b'!' || at(p) == b'^';
    if negate {
        p += 1;
    }
    let mut c = at(p);
    p += 1;

    // The members, until one matches (then skip to the end) or `]` closes the set.
    let matched = 'members: loop {
        // `c` is the member's first byte, `p` the index after it.
        let mut range_start: Option<u8> = None;
        if c == b'\\' {
            if at(p) == 0 {
                return Bracket::Fail;
            }
            c = at(p);
            p += 1;
            range_start = Some(c);
        } else if c == b'[' && at(p) == b':' {
            let name_start = p + 1;
            let mut q = p;
            let mut class = None;
            loop {
                if q - p == CHAR_CLASS_MAX_LENGTH {
                    return Bracket::Fail;
                }
                q += 1;
                let k = at(q);
                if k == b':' && at(q + 1) == b']' {
                    class = Some(&pattern[name_start..q]);
                    break;
                }
                if !(b'a'..=b'y').contains(&k) {
                    break; // cannot be a class name: `[` is an ordinary member
                }
            }
            match class {
                Some(name) => {
                    p = q + 2;
                    match class_contains(name, ch) {
                        None => return Bracket::Fail,
                        Some(true) => break 'members true,
                        Some(false) => {}
                    }
                    c = at(p);
                    p += 1;
                }
                None => range_start = Some(b'['),
            }
        } else if c == 0 {
            return Bracket::Literal;
        } else if c == b'[' && at(p) == b'=' {
            // An equivalence class: in the C locale, `[=x=]` is the byte x.
            let x = at(p + 1);
            if x != 0 && at(p + 2) == b'=' && at(p + 3) == b']' {
                p += 4;
                if x == ch {
                    break 'members true;
                }
                c = at(p);
                p += 1;
            } else {
                range_start = Some(b'[');
            }
        } else if c == b'[' && at(p) == b'.' {
            // A collating symbol: in the C locale only `[.x.]`, the byte x itself.
            let mut q = p;
            let len = loop {
                q += 1;
                let k = at(q);
                if k == b'.' && at(q + 1) == b']' {
                    break q - p - 1;
                }
                if k == 0 {
                    return Bracket::Fail;
                }
            };
            if len != 1 {
                return Bracket::Fail;
            }
            let x = at(p + 1);
            p = q + 2;
            let is_range = at(p) == b'-' && at(p + 1) != 0;
            if !is_range && x == ch {
                break 'members true;
            }
            c = at(p);
            p += 1;
            match range(pattern, &mut p, &mut c, x, ch) {
                Some(true) => break 'members true,
                Some(false) => {}
                None => return Bracket::Fail,
            }
        } else {
            range_start = Some(c);
        }
        if let Some(first) = range_start {
            // An ordinary member `first`, maybe the start of a range `first-last`.
            let is_range = at(p) == b'-' && at(p + 1) != 0 && at(p + 1) != b']';
            if !is_range && first == ch {
                break 'members true;
            }
            c = at(p);
            p += 1;
            match range(pattern, &mut p, &mut c, first, ch) {
                Some(true) => break 'members true,
                Some(false) => {}
                None => return Bracket::Fail,
            }
        }
        if c == b']' {
            break 'members false;
        }
    };

    if !matched {
        return if negate {
            Bracket::In(p)
        } else {
            Bracket::Out(p)
        };
    }
    // Skip the rest of the set, with glibc's rules for that part. Running off the end of the
    // pattern makes the whole bracket an ordinary `[` (glibc bug 28792, fixed in 2.36).
    loop {
        c = at(p);
        p += 1;
        if c == b']' {
            break;
        }
        if c == 0 {
            return Bracket::Literal;
        }
        if c == b'\\' {
            if at(p) == 0 {
                return Bracket::Literal;
            }
            p += 1;
        } else if c == b'[' && at(p) == b':' {
            let startp = p;
            let mut len = 0;
            loop {
                p += 1;
                let k = at(p);
                len += 1;
                if len == CHAR_CLASS_MAX_LENGTH {
                    return Bracket::Fail;
                }
                if k == b':' && at(p + 1) == b']' {
                    p += 2;
                    break;
                }
                if !(b'a'..=b'y').contains(&k) {
                    p = startp;
                    break;
                }
            }
        } else if c == b'[' && at(p) == b'=' {
            if at(p + 1) == 0 || at(p + 2) != b'=' || at(p + 3) != b']' {
                return Bracket::Fail;
            }
            p += 4;
        } else if c == b'[' && at(p) == b'.' {
            loop {
                p += 1;
                let k = at(p);
                if k == 0 {
                    return Bracket::Fail;
                }
                if k == b'.' && at(p + 1) == b']' {
                    break;
                }
            }
            p += 2;
        }
    }
    if negate {
        Bracket::Out(p)
    } else {
        Bracket::In(p)
    }
}

/// After a member `first` and the byte `c` that follows it (at `p - 1`): if that is a range
/// `first-last`, whether `ch` is in it (`None`: a malformed end, the match fails). Leaves `c`
/// on the byte after the member or range.
fn range(pattern: &[u8], p: &mut usize, c: &mut u8, first: u8, ch: u8) -> Option<bool> {
    let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
    if *c != b'-' || at(*p) == b']' {
        return Some(false);
    }
    let mut last = at(*p);
    *p += 1;
    if last == b'[' && at(*p) == b'.' {
        let start = *p;
        let mut q = *p;
        loop {
            q += 1;
            let k = at(q);
            if k == b'.' && at(q + 1) == b']' {
                break;
            }
            if k == 0 {
                return None;
            }
        }
        if q - start - 1 != 1 {
            return None;
        }
        last = at(start + 1);
        *p = q + 2;
    } else {
        if last == b'\\' {
            last = at(*p);
            *p += 1;
        }
        if last == 0 {
            return None;
        }
    }
    if first <= ch && ch <= last {
        return Some(true);
    }
    *c = at(*p);
    *p += 1;
    Some(false)
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
                Bracket::In(next) => Some(next),
                Bracket::Out(_) | Bracket::Fail => None,
                Bracket::Literal => (text[t] == b'[').then_some(p + 1),
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

    /// Inputs the differential fuzzer found (fuzz/README.md) and glibc's own regression cases
    /// for unterminated brackets (bug 28792), checked against the expected answer and fnmatch.
    #[test]
    fn glibc_bracket_quirks() {
        let cases: [(&[u8], &[u8], bool); 9] = [
            (b"*[[:\xff[]*", b":\xff[.-", true), // `[:` not followed by a name: `[` is a member
            (b"*[W[..]\\]", b"W", false),        // an escape while skipping a matched set
            (b"[", b"[", true),
            (b"[[", b"[[", true),
            (b"[\\]", b"[]", true),
            (b"[[\\]", b"[[]", true),
            (b"*[a[:bogus:]]", b"ba", true), // an unknown class after the matching member
            (b"[[:bogus:]a]", b"a", false),  // an unknown class before it
            (b"[[.a.]-c]", b"b", true),      // a collating symbol as a range start
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern, text),
                expected,
                "{:?} {:?}",
                pattern,
                text
            );
            assert_eq!(
                fnmatch(pattern, text),
                expected,
                "glibc changed: {:?} {:?}",
                pattern,
                text
            );
        }
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
        let pattern_alphabet = b"ab-]![^*?\\A0:=.";
        let text_alphabet = b"ab-]![^*?\\A0:";
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
