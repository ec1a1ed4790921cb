#!/usr/bin/env python3
"""Checks that the lock directory the build was configured with (meson's -Dlockdir) is the one
its products use: the default compiled into libpcibind.so (build.rs hands it to src/lib.rs's
DEFAULT_LOCK_DIR, Context::new's default, which pcibind_ctx_new() and
pcibind_ctx_set_lock_dir(ctx, NULL) take), and, when the tool is built, the default
`pcibind --help` shows for --lock-dir (the tool's default is the same constant) and the FILES
entry of `pcibind man`. Configure another -Dlockdir and this checks that value.

Nothing is locked or created: the directory is only looked for, never used.

Usage: check-lockdir.py LOCKDIR LIBPCIBIND [PCIBIND]
"""
import os
import re
import subprocess
import sys

BUILT_IN = "/run/pcibind"


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def roff(text):
    return text.replace("\\", "\\e").replace("-", "\\-")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    lockdir, library = sys.argv[1], sys.argv[2]
    tool = os.path.abspath(sys.argv[3]) if len(sys.argv) == 4 else None
    errors = []

    with open(library, "rb") as f:
        data = f.read()
    if lockdir.encode() not in data:
        errors.append(f"{library} does not hold the configured lock directory {lockdir}")
    elif BUILT_IN not in lockdir and BUILT_IN.encode() in data:
        errors.append(f"{library} still holds {BUILT_IN}, though the build's is {lockdir}")

    if tool:
        help_text = run(tool, "--help")
        m = re.search(r"--lock-dir <DIR>\s.*?\[default: ([^\]]*)\]", help_text, re.S)
        if not m:
            errors.append("pcibind --help shows no default for --lock-dir")
        elif m.group(1) != lockdir:
            errors.append(f"pcibind --help shows --lock-dir's default as {m.group(1)},"
                          f" not {lockdir}")
        page = run(tool, "man")
        if not re.search(rf"^\.I {re.escape(roff(lockdir))}/\n.*lock file", page, re.M):
            errors.append(f"pcibind man does not list {lockdir}/ under FILES")

    for e in errors:
        print("error:", e)
    if not errors:
        print(f"the lock directory {lockdir}: in the library"
              + (", the tool's --help and its man page" if tool else " (no tool built)"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
