#!/usr/bin/env python3
"""Writes the bundled example sysfs tree into DIR: a small host laid out like the kernel's
/sys (devices, drivers, modules, IOMMU groups), with the modprobe table the fake modprobe
(testkit/fake-modprobe.c) follows when asked to load a module. The devices use real IDs:

  0000:00:01.0  virtio-net (1af4:1041)       virtio-pci   (built in: module dir, no drivers/)
  0000:00:02.0  Intel 82574L NIC (8086:10d3) e1000e       (loaded module)
  0000:00:1c.0  PCIe root port (8086:a110)   pcieport     (built in, 6.12 style link)
  0000:00:1f.0  ISA bridge (8086:a143)       no driver
  0000:01:00.0  RTX 3090 (10de:2204)         nouveau      } one IOMMU group
  0000:01:00.1  its HDMI audio (10de:1aef)   snd_hda_intel}
  0000:03:00.0  Intel Xe GPU (8086:e20b)     xe
  0000:3b:00.2  ConnectX-5 VF (15b3:101e)    mlx5_core

Modules not loaded yet, loadable through the fake modprobe: vfio_pci (vfio-pci),
mlx5_vfio_pci, xe_vfio_pci (xe-vfio-pci), qat_4xxx (4xxx).

It also follows the conventions of the test suite's kernel emulation (testkit/kernel-shim.c):
host drivers have an ID table (`fake_ids`), VFIO drivers are marked (`fake_vfio`, and `vfio` in
modprobe.table), and DIR/lib-modules/modules.alias holds the alias lines the variant choice and
the claim check read: real lines from Ubuntu 6.8's table (tests/data) plus a synthetic
xe_vfio_pci line (that module is newer than 6.8). DIR/proc is an empty proc root.
"""
import os
import sys

DEVICES = [
    # bdf, vendor, device, subvendor, subdevice, class (6 hex), driver, iommu group
    ("0000:00:01.0", "1AF4", "1041", "1AF4", "1100", "020000", "virtio-pci", 1),
    ("0000:00:02.0", "8086", "10D3", "8086", "A01F", "020000", "e1000e", 2),
    ("0000:00:1c.0", "8086", "A110", "8086", "7270", "060400", "pcieport", 3),
    ("0000:00:1f.0", "8086", "A143", "8086", "7270", "060100", None, 4),
    ("0000:01:00.0", "10DE", "2204", "1462", "3880", "030000", "nouveau", 5),
    ("0000:01:00.1", "10DE", "1AEF", "1462", "3880", "040300", "snd_hda_intel", 5),
    ("0000:03:00.0", "8086", "E20B", "8086", "1100", "030000", "xe", 6),
    ("0000:3b:00.2", "15B3", "101E", "15B3", "0048", "020000", "mlx5_core", 7),
]

# driver -> (its module, whether module/MOD/drivers/pci:DRV links it); BUILTIN drivers have no
# `module` link of their own, only a module dir with a version file.
DRIVERS = {
    "virtio-pci": ("virtio_pci", False),
    "e1000e": ("e1000e", True),
    "pcieport": ("pcieportdrv", True),
    "nouveau": ("nouveau", True),
    "snd_hda_intel": ("snd_hda_intel", True),
    "xe": ("xe", True),
    "mlx5_core": ("mlx5_core", True),
    "serial": ("8250_pci", True),
}
BUILTIN = {"virtio-pci", "pcieport", "serial"}

# Each host driver's ID table (globs on the modalias), as the kernel shim reads it.
IDS = {
    "virtio-pci": "pci:v00001AF4d*sv*sd*bc*sc*i*",
    "e1000e": "pci:v00008086d000010D3sv*sd*bc*sc*i*",
    "pcieport": "pci:v*d*sv*sd*bc06sc04i00",
    "nouveau": "pci:v000010DEd*sv*sd*bc03sc*i*",
    "snd_hda_intel": "pci:v*d*sv*sd*bc04sc03i*",
    "xe": "pci:v00008086d0000E20Bsv*sd*bc*sc*i*",
    "mlx5_core": "pci:v000015B3d0000101Esv*sd*bc*sc*i*",
}

MODULES_ALIAS = """\
# From Ubuntu 24.04's 6.8.0-151-generic modules.alias (tests/data), except where marked.
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core
alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau
alias pci:v*d*sv*sd*bc04sc03i* snd_hda_intel
alias pci:v00008086d0000E20Bsv*sd*bc03sc*i* xe
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_vfio_pci
# Synthetic: xe_vfio_pci is newer than 6.8.
alias vfio_pci:v00008086d0000E20Bsv*sd*bc*sc*i* xe_vfio_pci
"""

MODPROBE_TABLE = """\
vfio_pci vfio-pci vfio
mlx5_vfio_pci mlx5_vfio_pci vfio
xe_vfio_pci xe-vfio-pci vfio
virtio_vfio_pci virtio_vfio_pci vfio
qat_4xxx 4xxx
virtio_pci =
"""


def write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def main(root):
    for d in ("bus/pci/devices", "bus/pci/drivers", "module", "kernel/iommu_groups",
              "proc/net", "proc/self", "lib-modules", "locks"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    write(os.path.join(root, "bus/pci/drivers_probe"))
    write(os.path.join(root, "lib-modules/modules.alias"), MODULES_ALIAS)

    for drv, (mod, linked) in DRIVERS.items():
        ddir = os.path.join(root, "bus/pci/drivers", drv)
        for f in ("bind", "unbind", "new_id", "remove_id", "uevent"):
            write(os.path.join(ddir, f))
        mdir = os.path.join(root, "module", mod)
        os.makedirs(mdir, exist_ok=True)
        if drv in BUILTIN:
            write(os.path.join(mdir, "version"), "1.0\n")
        else:
            link(os.path.join(ddir, "module"), f"../../../../module/{mod}")
        if linked:
            link(os.path.join(mdir, "drivers", f"pci:{drv}"), f"../../../bus/pci/drivers/{drv}")
        if drv in IDS:
            write(os.path.join(ddir, "fake_ids"), IDS[drv] + "\n")

    for bdf, ven, dev, sven, sdev, cls, drv, group in DEVICES:
        rel = f"devices/pci{bdf[:7]}/{bdf}"
        ddir = os.path.join(root, rel)
        modalias = f"pci:v0000{ven}d0000{dev}sv0000{sven}sd0000{sdev}bc{cls[:2]}sc{cls[2:4]}i{cls[4:]}"
        write(os.path.join(ddir, "modalias"), modalias + "\n")
        write(os.path.join(ddir, "vendor"), f"0x{ven.lower()}\n")
        write(os.path.join(ddir, "device"), f"0x{dev.lower()}\n")
        write(os.path.join(ddir, "class"), f"0x{cls.lower()}\n")
        write(os.path.join(ddir, "driver_override"), "(null)\n")
        link(os.path.join(root, "bus/pci/devices", bdf), f"../../../{rel}")
        gdir = os.path.join(root, "kernel/iommu_groups", str(group), "devices")
        link(os.path.join(gdir, bdf), f"../../../../{rel}")
        link(os.path.join(ddir, "iommu_group"), f"../../../kernel/iommu_groups/{group}")
        if drv:
            link(os.path.join(ddir, "driver"), f"../../../bus/pci/drivers/{drv}")
            link(os.path.join(root, "bus/pci/drivers", drv, bdf), f"../../../../{rel}")

    write(os.path.join(root, "modprobe.table"), MODPROBE_TABLE)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: example-sysfs.py DIR")
    main(sys.argv[1])
