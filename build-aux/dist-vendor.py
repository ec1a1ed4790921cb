#!/usr/bin/env python3
"""meson dist script: vendors every crate Cargo.lock names into the tarball (vendor/) and adds
the .cargo/config.toml that makes cargo use them, so the tarball builds with no network and an
empty cargo home (scripts/test-dist proves it). cargo runs from the source tree (see
build-aux/cargo-build.py), so that configuration is found wherever the build directory is.

Usage (by meson.add_dist_script): dist-vendor.py CARGO
"""
import os
import re
import subprocess
import sys

CONFIG_HEADER = """\
# Written by build-aux/dist-vendor.py when this tarball was made (meson dist): cargo takes
# every crate from vendor/, so the build needs no network. Not in the git tree.
"""


def main():
    cargo = sys.argv[1]
    root = os.environ.get("MESON_PROJECT_DIST_ROOT") or os.environ["MESON_DIST_ROOT"]
    # --locked: exactly the versions Cargo.lock names. All platforms' and the dev-dependencies'
    # crates are included: the tarball runs its tests too.
    # (Its "Vendoring ..." lines, one per crate, are shown only if it fails: --quiet would
    # also drop the configuration it prints on stdout.)
    r = subprocess.run([cargo, "vendor", "--locked", "--manifest-path",
                        os.path.join(root, "Cargo.toml"), os.path.join(root, "vendor")],
                       cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"cargo vendor failed ({r.returncode}):\n{r.stderr}")
    # cargo vendor prints the source replacement to use, with an absolute directory: point it
    # at vendor/ relative to the tarball's root instead (relative to .cargo/'s parent).
    config, n = re.subn(r'(?m)^directory = ".*"$', 'directory = "vendor"', r.stdout)
    if n != 1:
        sys.exit(f"unexpected output of cargo vendor:\n{r.stdout}")
    os.makedirs(os.path.join(root, ".cargo"), exist_ok=True)
    with open(os.path.join(root, ".cargo", "config.toml"), "w") as f:
        f.write(CONFIG_HEADER + config)


if __name__ == "__main__":
    main()
