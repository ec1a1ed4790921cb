//! Generates the result codes' text table from the one place they are written: the doc
//! comments of `pcibind_error` in src/ffi/codes.rs (the first doc line of each variant is its
//! text). cbindgen writes the same enum and comments into the header.
//!
//! Also hands the crate its default lock directory, `PCIBIND_DEFAULT_LOCK_DIR`: meson's
//! `-Dlockdir` (build-aux/cargo-build.py passes it as `PCIBIND_LOCKDIR`), `/run/pcibind` for a
//! plain cargo build.

use std::env;
use std::fs;
use std::path::Path;

/// The default lock directory when the build does not set one (meson.options says the same).
const DEFAULT_LOCK_DIR: &str = "/run/pcibind";

fn main() {
    lock_dir();
    error_table();
}

/// `PCIBIND_DEFAULT_LOCK_DIR` for `env!` in src/lib.rs, from `PCIBIND_LOCKDIR` when set. A
/// relative path is refused here, at build time: the library would refuse it at run time.
fn lock_dir() {
    println!("cargo:rerun-if-env-changed=PCIBIND_LOCKDIR");
    let dir = match env::var("PCIBIND_LOCKDIR") {
        Ok(dir) => dir,
        Err(env::VarError::NotPresent) => DEFAULT_LOCK_DIR.to_owned(),
        Err(env::VarError::NotUnicode(dir)) => {
            panic!("PCIBIND_LOCKDIR (meson's -Dlockdir) must be UTF-8, not {dir:?}")
        }
    };
    assert!(
        dir.starts_with('/'),
        "PCIBIND_LOCKDIR (meson's -Dlockdir) must be an absolute path, not {dir:?}"
    );
    assert!(
        !dir.contains(['\n', '\r']),
        "PCIBIND_LOCKDIR (meson's -Dlockdir) must not hold a line break: {dir:?}"
    );
    println!("cargo:rustc-env=PCIBIND_DEFAULT_LOCK_DIR={dir}");
}

fn error_table() {
    let source = "src/ffi/codes.rs";
    println!("cargo:rerun-if-changed={source}");
    let text = fs::read_to_string(source).expect("reading src/ffi/codes.rs");
    let body = text
        .split_once("pub enum pcibind_error {")
        .and_then(|(_, rest)| rest.split_once("\n}"))
        .expect("src/ffi/codes.rs declares `pub enum pcibind_error { ... }`")
        .0;
    let mut rows = String::new();
    let mut first_doc: Option<String> = None;
    for line in body.lines().map(str::trim) {
        if let Some(doc) = line.strip_prefix("///") {
            if first_doc.is_none() {
                first_doc = Some(doc.trim().to_owned());
            }
        } else if let Some((name, value)) = line.trim_end_matches(',').split_once('=') {
            let (name, value) = (name.trim(), value.trim());
            let doc = first_doc
                .take()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| panic!("{name} in {source} has no text (its first doc line)"));
            assert!(
                !doc.contains(['"', '\\']),
                "the text of {name} must not hold quotes or backslashes"
            );
            rows.push_str(&format!("    ({value}, \"{name}\", c\"{doc}\"),\n"));
        }
    }
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("error_table.rs");
    fs::write(
        out,
        format!(
            "/// (code, name, text) of every `pcibind_error`, generated from its doc comments.\n\
             pub(crate) const ERROR_TABLE: &[(c_int, &str, &CStr)] = &[\n{rows}];\n"
        ),
    )
    .unwrap();
}
