#!/usr/bin/env python3
"""Prints the native libraries a Rust static library needs on the target, one name per line,
as rustc reports them (`--print native-static-libs` while building an empty staticlib): what
the standard library links, and so what the C link of libpcibind.so.0 must add.

Usage: rustc-native-libs.py RUSTC [--target TRIPLE]
"""
import os
import subprocess
import sys
import tempfile


def main():
    rustc, *rest = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "empty.rs")
        open(src, "w").close()
        r = subprocess.run([rustc, "--crate-type", "staticlib", "--crate-name", "empty",
                            "--print", "native-static-libs", *rest, "-o",
                            os.path.join(tmp, "libempty.a"), src],
                           capture_output=True, text=True, cwd=tmp)
    if r.returncode != 0:
        sys.exit(f"{rustc} could not build a static library{' for ' + rest[-1] if rest else ''}"
                 f" (is the target's standard library installed? `rustup target add`):\n"
                 f"{r.stderr}")
    for line in r.stderr.splitlines():
        if "native-static-libs:" in line:
            seen = []
            for flag in line.split("native-static-libs:", 1)[1].split():
                if not flag.startswith("-l"):
                    sys.exit(f"unexpected native library flag from rustc: {flag}")
                if flag[2:] not in seen:
                    seen.append(flag[2:])
            print("\n".join(seen))
            return
    sys.exit(f"{rustc} reported no native-static-libs:\n{r.stderr}")


if __name__ == "__main__":
    main()
