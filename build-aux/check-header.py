#!/usr/bin/env python3
"""Regenerates the C header with the pinned cbindgen and fails on any difference from the
checked-in include/pcibind.h (so the header can never drift from the Rust sources)."""
import difflib
import subprocess
import sys


def main():
    cbindgen, expected_version, srcdir, header, out = sys.argv[1:6]
    version = subprocess.run([cbindgen, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    if version != expected_version:
        print(f"cbindgen {version} found, but the header is pinned to {expected_version};"
              " run ./scripts/test, which installs the pinned one")
        return 1
    subprocess.run([cbindgen, "--quiet", "--config", f"{srcdir}/cbindgen.toml", "--crate",
                    "pcibind", "--output", out, srcdir], check=True)
    want = open(out).read().splitlines(keepends=True)
    have = open(header).read().splitlines(keepends=True)
    if want != have:
        sys.stdout.writelines(difflib.unified_diff(have, want, header, "regenerated"))
        print("include/pcibind.h is out of date: regenerate it with"
              f" `cbindgen --config cbindgen.toml --crate pcibind --output include/pcibind.h`")
        return 1
    print(f"{header} matches what cbindgen {version} generates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
