#!/usr/bin/env python3
"""Builds the Rust static library (or, with --bin, the command-line tool) with cargo and copies
it where meson expects it.

meson links libpcibind.so.0 itself from this archive (with its own version script); cargo keeps
its own dependency tracking, so this runs on every build and is cheap when nothing changed.
"""
import argparse
import os
import shutil
import subprocess
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cargo", required=True)
    p.add_argument("--manifest-path", required=True)
    p.add_argument("--target-dir", required=True)
    p.add_argument("--release", action="store_true")
    p.add_argument("--output", required=True)
    p.add_argument("--bin", help="build this binary instead of the static library")
    p.add_argument("--sanitizer", default="",
                   help="instrument the Rust code too (address, ...): needs a nightly flag, "
                        "so RUSTC_BOOTSTRAP=1; built for the host triple so build scripts and "
                        "proc macros stay uninstrumented")
    a = p.parse_args()

    if a.bin:
        cmd = [a.cargo, "build", "--locked", "--bin", a.bin, "--manifest-path", a.manifest_path,
               "--target-dir", a.target_dir]
    else:
        # The library alone, without the command-line tool's dependencies.
        cmd = [a.cargo, "build", "--locked", "--lib", "--no-default-features", "--manifest-path",
               a.manifest_path, "--target-dir", a.target_dir]
    if a.release:
        cmd.append("--release")
    env = dict(os.environ)
    profile_dir = os.path.join(a.target_dir, "release" if a.release else "debug")
    if a.sanitizer:
        triple = next(line.split()[1] for line in subprocess.run(
            ["rustc", "-vV"], capture_output=True, text=True, check=True).stdout.splitlines()
            if line.startswith("host:"))
        env["RUSTC_BOOTSTRAP"] = "1"
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + f" -Zsanitizer={a.sanitizer}").strip()
        cmd += ["--target", triple]
        profile_dir = os.path.join(a.target_dir, triple, "release" if a.release else "debug")
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        sys.exit(rc)
    built = os.path.join(profile_dir, a.bin if a.bin else "libpcibind.a")
    # Copy only when the archive changed, so meson does not relink for nothing.
    if not os.path.exists(a.output) or not same_file(built, a.output):
        shutil.copy2(built, a.output)


def same_file(x, y):
    sx, sy = os.stat(x), os.stat(y)
    return sx.st_size == sy.st_size and int(sx.st_mtime) == int(sy.st_mtime)


if __name__ == "__main__":
    main()
