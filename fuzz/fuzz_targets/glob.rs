#![no_main]
//! Differential fuzzing of the glob matcher against glibc's fnmatch(3) (flags 0), which is
//! what kmod uses: the input is split at the first NUL into pattern and text.
use libfuzzer_sys::fuzz_target;
use pcibind::internals::glob_match;
use std::ffi::CString;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else { return };
    let (pattern, text) = (&data[..split], &data[split + 1..]);
    if text.contains(&0) || pattern.len() > 256 || text.len() > 256 {
        return;
    }
    let p = CString::new(pattern).unwrap();
    let t = CString::new(text).unwrap();
    // SAFETY: both are valid NUL-terminated strings.
    let reference = unsafe { libc::fnmatch(p.as_ptr(), t.as_ptr(), 0) } == 0;
    assert_eq!(glob_match(pattern, text), reference, "pattern {:?} text {:?}", p, t);
});
