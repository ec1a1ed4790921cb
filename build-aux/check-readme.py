#!/usr/bin/env python3
"""Compiles every C block of README.md against include/pcibind.h (and the other include dirs
given, e.g. the test kit's) with the strict flags C consumers use, so the README's examples
cannot drift from the API.

Usage: check-readme.py CC README INCLUDE_DIR..."""
import os
import re
import subprocess
import sys
import tempfile


def main():
    cc, readme, *includes = sys.argv[1:]
    blocks = re.findall(r"```c\n(.*?)```", open(readme).read(), flags=re.S)
    if not blocks:
        print("no C blocks in", readme)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for i, block in enumerate(blocks):
            src = os.path.join(tmp, f"block{i}.c")
            with open(src, "w") as f:
                f.write(block)
            cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
            cmd += [f"-I{include}" for include in includes]
            cmd += ["-c", src, "-o", os.path.join(tmp, f"block{i}.o")]
            if subprocess.call(cmd) != 0:
                print(f"README C block {i + 1} does not compile:\n{block}")
                return 1
    print(f"{len(blocks)} C block(s) of {readme} compile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
