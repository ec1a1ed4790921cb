#!/usr/bin/env python3
"""Generates include/pcibind.h with the pinned cbindgen and fails on any difference from the
checked-in header (so the header can never drift from the Rust sources or from Cargo.toml's
version); with --write, regenerates the checked-in header instead.

cbindgen.toml's after_includes holds the version macros with @PCIBIND_VERSION_*@ fields; this
script fills them from Cargo.toml's version and hands cbindgen the filled-in copy, which keeps
Cargo.toml the one source of the version.

Exit status 77 (meson's "skipped") with --skip-reason: registered so where cbindgen is not
found, the test shows up as skipped rather than silently missing.
"""
import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cargo_version(srcdir):
    """The [package] version of Cargo.toml (a regex, not tomllib: Python 3.7 has none)."""
    text = open(os.path.join(srcdir, "Cargo.toml")).read()
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    return re.search(r'^version\s*=\s*"([^"]+)"', package, re.M).group(1)


def filled_config(srcdir, version):
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        sys.exit(f"Cargo.toml's version {version!r} is not MAJOR.MINOR.PATCH")
    fields = {
        "PCIBIND_VERSION": version,
        "PCIBIND_VERSION_MAJOR": m.group(1),
        "PCIBIND_VERSION_MINOR": m.group(2),
        "PCIBIND_VERSION_PATCH": m.group(3),
    }
    text = open(os.path.join(srcdir, "cbindgen.toml")).read()
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@PCIBIND_\w+@", text)
    if left:
        sys.exit(f"cbindgen.toml has fields this script does not fill: {left}")
    return text


def generate(cbindgen, srcdir, out):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "cbindgen.toml")
        with open(config, "w") as f:
            f.write(filled_config(srcdir, cargo_version(srcdir)))
        # cbindgen runs `cargo metadata`; from the source tree it sees the vendored crates of
        # a release tarball (.cargo/config.toml), as the build does.
        subprocess.run([cbindgen, "--quiet", "--config", config, "--crate", "pcibind",
                        "--output", out, srcdir], check=True, cwd=srcdir)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cbindgen", default=shutil.which("cbindgen"),
                   help="the cbindgen to run (default: the one on PATH)")
    p.add_argument("--srcdir", default=SRCDIR)
    p.add_argument("--output", help="where the regenerated header goes (default: a temp file)")
    p.add_argument("--write", action="store_true",
                   help="regenerate include/pcibind.h in place instead of comparing")
    p.add_argument("--skip-reason", help="print this and exit 77 (meson: skipped)")
    a = p.parse_args()
    if a.skip_reason:
        print(f"skipped: {a.skip_reason}")
        return 77

    pinned = open(os.path.join(a.srcdir, "build-aux", "cbindgen-version")).read().strip()
    if not a.cbindgen:
        print(f"cbindgen not found: `cargo install --locked --version {pinned} cbindgen`, or"
              " run ./scripts/test, which installs it")
        return 1
    version = subprocess.run([a.cbindgen, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    if version != pinned:
        print(f"cbindgen {version} found, but the header is pinned to {pinned};"
              " run ./scripts/test, which installs the pinned one")
        return 1
    header = os.path.join(a.srcdir, "include", "pcibind.h")
    if a.write:
        generate(a.cbindgen, a.srcdir, header)
        print(f"wrote {header} (cbindgen {version}, version {cargo_version(a.srcdir)})")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        out = a.output or os.path.join(tmp, "pcibind.h")
        generate(a.cbindgen, a.srcdir, out)
        want = open(out).read().splitlines(keepends=True)
    have = open(header).read().splitlines(keepends=True)
    if want != have:
        sys.stdout.writelines(difflib.unified_diff(have, want, header, "regenerated"))
        print("include/pcibind.h is out of date: regenerate it with"
              " `build-aux/check-header.py --write`")
        return 1
    print(f"{header} matches what cbindgen {version} generates for version"
          f" {cargo_version(a.srcdir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
