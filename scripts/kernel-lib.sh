# Sourced by scripts/test-kernel and scripts/test-boot: what both need to boot a Debian kernel
# under QEMU with the suite's devices (shared/KERNEL-VM.md). Needs $cache (the kernel cache
# directory) for fetch_kernel.

# newest PATTERN: the newest package whose name matches the extended regex.
newest() {
    apt-cache search --names-only "$1" 2>/dev/null | cut -d' ' -f1 | sort -V | tail -n 1
}

# The default kernels, into the array `kernels`: the newest Debian 12 6.1 kernel and the newest
# 6.12 backport (apt-get update first, as root, when apt knows neither). Fails, saying why,
# when apt knows none.
default_kernels() {
    local k61 k612
    k61=$(newest '^linux-image-6\.1\.0-[0-9]+-amd64$')
    k612=$(newest '^linux-image-6\.12\.[0-9]+\+deb12-amd64$')
    if { [ -z "$k61" ] || [ -z "$k612" ]; } && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        k61=$(newest '^linux-image-6\.1\.0-[0-9]+-amd64$')
        k612=$(newest '^linux-image-6\.12\.[0-9]+\+deb12-amd64$')
    fi
    if [ -z "$k61" ] || [ -z "$k612" ]; then
        echo "error: apt knows no linux-image-6.1.0-N-amd64 or linux-image-6.12.*+deb12-amd64" \
            "(run apt-get update as root)" >&2
        return 1
    fi
    kernels=("$k61" "$k612")
}

# Copies a program or library (as $3 under the root $1) and every shared library ldd lists for
# it (into $1/lib; the dynamic loader keeps its own path).
copy_with_libs() {
    local dest=$1 file=$2 lib
    install -D -m 0755 "$file" "$dest/$3"
    for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
        case $lib in
            */ld-linux*) [ -e "$dest$lib" ] || install -D -m 0755 "$lib" "$dest$lib" ;;
            *) [ -e "$dest/lib/$(basename "$lib")" ] ||
                install -D -m 0755 "$lib" "$dest/lib/$(basename "$lib")" ;;
        esac
    done
}

# Fetches and unpacks PACKAGE into $cache (atomically: an interrupted run leaves nothing
# half-done behind); prints the tree's path.
fetch_kernel() {
    local pkg=$1 deb tmp
    deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        tmp=$(mktemp -d "$cache/.download.XXXXXX")
        (cd "$tmp" && apt-get download "$pkg" 2>&1 | grep -v 'unsandboxed' >&2) || true
        deb=$(ls "$tmp/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
        [ -n "$deb" ] || { rm -rf "$tmp"; echo "error: apt-get download $pkg failed" >&2; return 1; }
        mv "$deb" "$cache/" && rm -rf "$tmp"
        deb=$cache/$(basename "$deb")
    fi
    local tree=$cache/$pkg
    if [ ! -f "$tree/.unpacked" ]; then
        rm -rf "$tree" "$tree.tmp"
        dpkg-deb -x "$deb" "$tree.tmp" >&2
        local rel
        rel=$(ls "$tree.tmp/lib/modules")
        depmod -b "$tree.tmp" "$rel" >&2
        touch "$tree.tmp/.unpacked" && mv "$tree.tmp" "$tree"
    fi
    echo "$tree"
}

# copy_modules TREE RELEASE ROOT MODULE...: the modules named and their dependencies from the
# unpacked kernel TREE into ROOT/lib/modules/RELEASE, with the kernel's tables, then depmod
# there, so that kmod's modprobe works in the guest.
copy_modules() {
    local tree=$1 rel=$2 root=$3 m t
    shift 3
    for m in "$@"; do
        modprobe -d "$tree" -S "$rel" --show-depends "$m" || return 1
    done | awk '$1 == "insmod" {print $2}' | sort -u |
        while read -r ko; do
            install -D -m 0644 "$ko" "$root/lib/modules/$rel/${ko#"$tree/lib/modules/$rel/"}"
        done
    for t in modules.order modules.builtin modules.builtin.modinfo; do
        cp "$tree/lib/modules/$rel/$t" "$root/lib/modules/$rel/"
    done
    depmod -b "$root" "$rel"
}

# qemu_pci_devices EXT4_IMAGE BTRFS_IMAGE: the suite's PCI devices as QEMU arguments, into the
# array `qemu_devices`, with fixed addresses (shared/KERNEL-VM.md): the e1000e 00:02.0,
# virtio-net 00:03.0, NVMe 00:04.0 (two namespaces backed by the images given), HDA 00:05.0,
# a root port 00:06.0 with an e1000e at 01:00.0, a PCI serial port 00:07.0, a root port 00:08.0
# with a multifunction slot (e1000e 02:00.0, HDA 02:00.1), a root port 00:09.0 with the
# SR-IOV NVMe controller (when this QEMU has one; else a note, and no such device).
# The SR-IOV NVMe controller: QEMU (7.1+) wants the flexible queue and interrupt resources the
# VFs may be given (2 queues and 1 vector each), and PF resources beyond them.
qemu_pci_devices() {
    local sriov_pf=()
    if qemu-system-x86_64 -device nvme,help 2>/dev/null | grep -q sriov_max_vfs; then
        sriov_pf=(-device nvme-subsys,id=subsys0 -device "nvme,id=nvme1,serial=sriov0,subsys=subsys0,bus=rp3,sriov_max_vfs=4,sriov_vq_flexible=8,sriov_vi_flexible=4,max_ioqpairs=12,msix_qsize=8")
    else
        echo "==> note: this QEMU's NVMe controller has no sriov_max_vfs: no SR-IOV device in the guest"
    fi
    qemu_devices=(
        -device intel-iommu,intremap=on
        -netdev user,id=n0,restrict=on -device e1000e,netdev=n0,addr=0x2,romfile=
        -netdev user,id=n1,restrict=on -device virtio-net-pci,netdev=n1,addr=0x3,romfile=
        -device nvme,id=nvme0,serial=t0,addr=0x4
        -drive file="$1",if=none,id=ns-ext4,format=raw
        -device nvme-ns,drive=ns-ext4,bus=nvme0
        -drive file="$2",if=none,id=ns-btrfs,format=raw
        -device nvme-ns,drive=ns-btrfs,bus=nvme0
        -device ich9-intel-hda,addr=0x5
        -device pcie-root-port,id=rp1,chassis=1,addr=0x6
        -netdev user,id=n2,restrict=on -device e1000e,netdev=n2,bus=rp1,romfile=
        -chardev null,id=ser0 -device pci-serial,chardev=ser0,addr=0x7
        -device pcie-root-port,id=rp2,chassis=2,addr=0x8
        -netdev user,id=n3,restrict=on
        -device e1000e,netdev=n3,bus=rp2,addr=0x0.0,multifunction=on,romfile=
        -device ich9-intel-hda,bus=rp2,addr=0x0.1
        -device pcie-root-port,id=rp3,chassis=3,addr=0x9
        "${sriov_pf[@]}"
    )
}
