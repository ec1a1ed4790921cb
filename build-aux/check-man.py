#!/usr/bin/env python3
"""Checks pcibind(1), as `pcibind man` prints it, against the tool itself: every command its
--help lists has a section, every option any --help shows is documented, every exit status
of the help's list has its own entry, every key `list --json`, `show --json`, `status --json`
and `list --persisted --json` print on the example tree is described, and no other pcibind
page (pcibind-list(1), ...) is referred to.
Where groff is installed, the page must also format without a warning, with each exit status
starting a line of its own.

Usage: check-man.py PCIBIND SRCDIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw).stdout


def help_section(text, title):
    """The lines of a `Title:` block of clap's help, up to the next blank line."""
    m = re.search(rf"^{title}:\n(.*?)(?:\n\n|\Z)", text, re.M | re.S)
    return m.group(1).splitlines() if m else []


def json_keys(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from json_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_keys(v)


def main():
    pcibind, srcdir = os.path.abspath(sys.argv[1]), sys.argv[2]
    page = run(pcibind, "man")
    errors = []

    top = run(pcibind, "--help")
    commands = [line.split()[0] for line in help_section(top, "Commands")
                if line.strip() and line.split()[0] != "help"]
    if not commands:
        errors.append("pcibind --help lists no commands")
    for command in commands:
        if not re.search(rf'^\.SS "\\fB{re.escape(command)}\\fR', page, re.M):
            errors.append(f"command {command} has no section in COMMANDS")
        for line in help_section(run(pcibind, command, "--help"), "Options"):
            for option in re.findall(r"--[a-z][a-z-]*", line.split("  ")[1] if
                                     line.startswith("  ") and len(line.split("  ")) > 1
                                     else line):
                if option.replace("-", r"\-") not in page:
                    errors.append(f"{command} {option} is not in the man page")
    for line in help_section(top, "Options"):
        for option in re.findall(r"--[a-z][a-z-]*", line)[:1]:
            if option.replace("-", r"\-") not in page:
                errors.append(f"the global option {option} is not in the man page")

    statuses = re.findall(r"^  (\d+)\s", "\n".join(help_section(top, "Exit status")), re.M)
    if len(statuses) < 5:
        errors.append(f"the help's exit status list looks wrong: {statuses}")
    for status in statuses:
        if not re.search(rf"^\.TP\n\.B {status}\n\S", page, re.M):
            errors.append(f"exit status {status} has no entry of its own in EXIT STATUS")

    for ref in re.findall(r"pcibind(?:\\-|-)\w+\s*\(\d\)", page):
        errors.append(f"refers to a page that does not exist: {ref}")

    with tempfile.TemporaryDirectory() as tree:
        run(sys.executable, os.path.join(srcdir, "examples", "example-sysfs.py"), tree)
        common = [pcibind, "--sysfs-root", tree, "--modules-dir", f"{tree}/lib-modules",
                  "--modprobe", "none", "--lock-dir", f"{tree}/locks", "--proc-root",
                  f"{tree}/proc"]
        listed = json.loads(run(*common, "list", "--json"))
        shown = json.loads(run(*common, "show", listed[0]["address"], "--json"))
        status = json.loads(run(*common, "status", "--json"))
        config = os.path.join(tree, "driverctl.d")
        os.makedirs(config)
        with open(os.path.join(config, "pci-" + listed[0]["address"]), "w") as f:
            f.write("vfio-pci\n")
        persisted = json.loads(run(*common, "--config-dir", config, "list", "--persisted",
                                   "--json"))
    keys = sorted(set(json_keys([listed, shown, status, persisted])))
    for key in keys:
        if not re.search(rf"(\\fB{re.escape(key)}\\fR|^\.B {re.escape(key)}$)", page, re.M):
            errors.append(f"the JSON key {key} is not described in JSON OUTPUT")

    groff = shutil.which("groff")
    if groff:
        r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z"], input=page,
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            errors.append(f"groff warns:\n{r.stderr}")
        shown_page = subprocess.run([groff, "-man", "-Tascii", "-P", "-cbou"], input=page,
                                    capture_output=True, text=True).stdout
        for status in statuses:
            if not re.search(rf"^ +{status} +\S", shown_page, re.M):
                errors.append(f"formatted, exit status {status} does not start a line")

    for e in errors:
        print("error:", e)
    if not errors:
        print(f"pcibind(1): {len(commands)} commands, their options, {len(statuses)} exit"
              f" statuses, {len(keys)} JSON keys" + (", formats cleanly" if groff else
                                                    " (groff not installed: not formatted)"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
