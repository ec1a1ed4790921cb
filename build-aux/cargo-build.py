#!/usr/bin/env python3
"""Builds the Rust static library (or, with --bin, the command-line tool) with cargo and copies
it where meson expects it.

meson links libpcibind.so.0 itself from this archive (with its own version script); cargo keeps
its own dependency tracking, so this runs on every build and is cheap when nothing changed.

meson's settings reach cargo here: optimization 0 or g builds cargo's dev profile, any other
the release profile, with the profile's opt-level, debug and lto set to what meson was asked
for (through CARGO_PROFILE_* variables, which override Cargo.toml); optimization "plain" (the
buildtype distributions use) leaves Cargo.toml's profile as it is, but for debug, so
RUSTFLAGS from the environment decide. --target is the host machine of a cross build.
--lockdir (meson's -Dlockdir) reaches build.rs as PCIBIND_LOCKDIR: the library's default lock
directory.

cargo runs in the source tree, so that a release tarball's .cargo/config.toml, which points
cargo at the vendored crates, is found wherever the build directory is.
"""
import argparse
import os
import shutil
import subprocess
import sys

OPT_LEVELS = {"0": None, "g": "1", "1": "1", "2": "2", "3": "3", "s": "s", "plain": None}


def profile_env(optimization, debuginfo, lto):
    """(cargo profile, its output directory name, CARGO_PROFILE_* overrides)."""
    profile, directory = ("dev", "debug") if optimization in ("0", "g") else ("release", "release")
    var = f"CARGO_PROFILE_{profile.upper()}_"
    env = {var + "DEBUG": "true" if debuginfo else "false"}
    if OPT_LEVELS[optimization] is not None:
        env[var + "OPT_LEVEL"] = OPT_LEVELS[optimization]
    if lto != "off":
        # b_lto_mode: default -> whole-program ("fat") LTO, thin -> ThinLTO. The archive still
        # holds machine code, so the C link needs no LTO plugin for it.
        env[var + "LTO"] = "thin" if lto == "thin" else "fat"
    return profile, directory, env


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cargo", required=True)
    p.add_argument("--manifest-path", required=True)
    p.add_argument("--target-dir", required=True)
    p.add_argument("--optimization", required=True, choices=sorted(OPT_LEVELS),
                   help="meson's optimization option")
    p.add_argument("--debuginfo", required=True, choices=["true", "false"],
                   help="meson's debug option")
    p.add_argument("--lto", default="off", choices=["off", "default", "thin"],
                   help="off, or meson's b_lto_mode when b_lto is on")
    p.add_argument("--target", help="the Rust target triple of the host machine (cross)")
    p.add_argument("--linker", help="the host machine's C compiler, to link the tool (cross)")
    p.add_argument("--lockdir", required=True,
                   help="meson's lockdir option: the default lock directory (PCIBIND_LOCKDIR)")
    p.add_argument("--output", required=True)
    p.add_argument("--bin", help="build this binary instead of the static library")
    p.add_argument("--sanitizer", default="",
                   help="instrument the Rust code too (address, ...): needs a nightly flag, "
                        "so RUSTC_BOOTSTRAP=1; built for an explicit target so build scripts "
                        "and proc macros stay uninstrumented")
    a = p.parse_args()

    if a.bin:
        cmd = [a.cargo, "build", "--locked", "--bin", a.bin, "--manifest-path", a.manifest_path,
               "--target-dir", a.target_dir]
    else:
        # The library alone, without the command-line tool's dependencies.
        cmd = [a.cargo, "build", "--locked", "--lib", "--no-default-features", "--manifest-path",
               a.manifest_path, "--target-dir", a.target_dir]
    profile, directory, overrides = profile_env(a.optimization, a.debuginfo == "true", a.lto)
    cmd += ["--profile", profile]
    env = dict(os.environ, **overrides, PCIBIND_LOCKDIR=a.lockdir)
    target = a.target
    if a.sanitizer:
        env["RUSTC_BOOTSTRAP"] = "1"
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + f" -Zsanitizer={a.sanitizer}").strip()
        if not target:
            target = next(line.split()[1] for line in subprocess.run(
                ["rustc", "-vV"], capture_output=True, text=True, check=True).stdout.splitlines()
                if line.startswith("host:"))
    profile_dir = os.path.join(a.target_dir, directory)
    if target:
        cmd += ["--target", target]
        profile_dir = os.path.join(a.target_dir, target, directory)
        if a.linker:
            env[f"CARGO_TARGET_{target.upper().replace('-', '_')}_LINKER"] = a.linker
    srcdir = os.path.dirname(os.path.abspath(a.manifest_path))
    rc = subprocess.call(cmd, env=env, cwd=srcdir)
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
