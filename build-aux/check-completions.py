#!/usr/bin/env python3
"""Checks the shell completion scripts of pcibind with the shells that read them: each must
parse (`bash -n`, `zsh -n`, `fish -n`); bash must complete a command, an option, an option's
value, PCI addresses, an interface and drivers against the example tree
(tests/completion/bash-completes.sh), and so must zsh (tests/completion/zsh-completes.zsh, on a
pseudo-terminal) and fish (`complete -C`). A shell that is not
installed is reported skipped, with its reason; the test then passes on what it could check,
and reports itself skipped (77) only when it could check nothing.

Usage: check-completions.py PCIBIND SRCDIR [--bash FILE] [--zsh FILE] [--fish FILE]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    said = (p.stdout + p.stderr).rstrip()
    print(f"$ {' '.join(cmd)}" + (f"\n{said}" if said else ""))
    return p


def example_tree(srcdir, where):
    root = os.path.join(where, "sys")
    subprocess.run([sys.executable, os.path.join(srcdir, "examples", "example-sysfs.py"), root],
                   check=True)
    return root


def check_fish(fish, script, pcibind, srcdir):
    """fish completes through `complete -C`, as on TAB: commands, options, addresses, drivers."""
    errors = []
    with tempfile.TemporaryDirectory() as where:
        tree = example_tree(srcdir, where)
        common = f"{pcibind} --sysfs-root {tree} --modules-dir {tree}/lib-modules"
        cases = [
            (f"{pcibind} bi", "bind"),
            (f"{pcibind} bind --dr", "--dry-run"),
            (f"{common} bind ", "0000:3b:00.2"),
            (f"{common} show 0000:3b", "0000:3b:00.2"),
            (f"{common} bind 0000:00:02.0 vfio", "vfio_pci"),
        ]
        for line, want in cases:
            p = run([fish, "--no-config", "-c", f"source {script}; complete -C '{line}'"])
            offered = [c.split("\t")[0] for c in p.stdout.splitlines()]
            if p.returncode != 0 or want not in offered:
                errors.append(f"fish: '{line}<TAB>' does not offer {want}: {offered}")
        p = run([fish, "--no-config", "-c", f"source {script}; complete -C '{common} bind '"])
        if "vfio_pci" in p.stdout.split():
            errors.append("fish: a driver is offered as the first argument of bind")
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcibind")
    ap.add_argument("srcdir")
    for shell in ("bash", "zsh", "fish"):
        ap.add_argument(f"--{shell}")
    args = ap.parse_args()
    pcibind = os.path.abspath(args.pcibind)
    errors, checked, skipped = [], [], []
    for shell, flag in (("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")):
        script = getattr(args, shell)
        if not script:
            continue
        if not os.path.getsize(script):
            errors.append(f"{script} is empty")
            continue
        program = shutil.which(shell)
        if not program:
            skipped.append(f"{shell}: not installed, {script} not checked")
            continue
        if run([program, flag, script]).returncode != 0:
            errors.append(f"{shell} does not parse {script}")
            continue
        checked.append(f"{shell} parses {script}")
        if shell == "bash":
            with tempfile.TemporaryDirectory() as where:
                tree = example_tree(args.srcdir, where)
                test = os.path.join(args.srcdir, "tests", "completion", "bash-completes.sh")
                if run([program, test, os.path.abspath(script), pcibind, tree]).returncode != 0:
                    errors.append("bash does not complete as expected (see above)")
                else:
                    checked.append("bash completes commands, options, addresses and drivers")
        if shell == "zsh":
            with tempfile.TemporaryDirectory() as where:
                tree = example_tree(args.srcdir, where)
                test = os.path.join(args.srcdir, "tests", "completion", "zsh-completes.zsh")
                if run([program, "-f", test, os.path.abspath(script), pcibind, tree],
                       timeout=120).returncode != 0:
                    errors.append("zsh does not complete as expected (see above)")
                else:
                    checked.append("zsh completes commands, options, addresses and drivers")
        if shell == "fish":
            found = check_fish(program, os.path.abspath(script), pcibind, args.srcdir)
            errors += found
            if not found:
                checked.append("fish completes commands, options, addresses and drivers")
    for line in checked:
        print(f"ok: {line}")
    for line in skipped:
        print(f"SKIPPED: {line}")
    for line in errors:
        print(f"error: {line}")
    if errors:
        return 1
    return 0 if checked else SKIP


if __name__ == "__main__":
    sys.exit(main())
