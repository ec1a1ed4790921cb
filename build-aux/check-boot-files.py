#!/usr/bin/env python3
"""Checks the files that apply saved overrides at boot with the tools of the system that reads
them: `unit UNIT PCIBIND` runs `systemd-analyze verify` on the template unit, its ExecStart
pointed at the built tool (verify refuses a program that does not exist, and the installed
path does not exist yet); `rule RULE` runs `udevadm verify` (systemd 254 and later) on the
udev rule (UDEVADM names another udevadm, such as a newer one unpacked elsewhere). Any
complaint fails the test; without the tool it reports itself skipped (77).

Usage: check-boot-files.py unit UNIT PCIBIND | rule RULE
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def run(cmd):
    """Runs cmd; 0 when it exits 0 having said nothing, 1 otherwise (with what it said)."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    said = (p.stdout + p.stderr).strip()
    print(f"$ {' '.join(cmd)}\n{said}".rstrip())
    # systemd-analyze reports bad settings as warnings, "ignoring" them, with status 0.
    return 0 if p.returncode == 0 and not said else 1


def check_unit(unit, pcibind):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("SKIP: systemd-analyze not found")
        return SKIP
    text = open(unit).read()
    text, n = re.subn(r"^ExecStart=\S+/pcibind ", f"ExecStart={os.path.abspath(pcibind)} ", text,
                      flags=re.M)
    if n != 1:
        print(f"{unit}: no ExecStart=.../pcibind line")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, os.path.basename(unit))
        with open(copy, "w") as f:
            f.write(text)
        return run([analyze, "verify", "--man=no", copy])


def check_rule(rule):
    udevadm = os.environ.get("UDEVADM") or shutil.which("udevadm") or next(
        (p for p in ("/usr/bin/udevadm", "/sbin/udevadm", "/bin/udevadm") if os.access(p, os.X_OK)),
        None)
    if not udevadm:
        print("SKIP: udevadm not found")
        return SKIP
    if subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode != 0:
        print("SKIP: this udevadm has no verify command (systemd 254 added it)")
        return SKIP
    # --no-summary: verify's "N udev rules files have been checked" is no complaint.
    return run([udevadm, "verify", "--resolve-names=never", "--no-summary", rule])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "unit":
        return check_unit(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 3 and sys.argv[1] == "rule":
        return check_rule(sys.argv[2])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
