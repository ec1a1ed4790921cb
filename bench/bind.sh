#!/usr/bin/env bash
# Bind benchmark (SPEC section 7): binds N emulated devices to vfio-pci, back to their host
# driver by name, and reattaches them, N = 256, 1024, 4096, through the C API with the
# kernel-emulation shim; then counts system calls per bind with strace -c -f beside the minimal
# sequence done by hand under the same shim.
# Usage: bench/bind.sh   (builds first; needs strace for the counts)
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_setup bench

echo "microseconds per call, shim preloaded, tree in $tmpbase; device by device: bind to vfio-pci,"
echo "bind back to the host driver by name (e1000e), bind to vfio-pci again, reattach (NULL):"
printf "%6s %10s %10s %10s %10s\n" N vfio-pci e1000e host/vfio reattach
declare -A per
for n in 256 1024 4096; do
    rm -rf "$work/t" && mkdir "$work/t"
    $b/bench/bind-bench prepare "$work/t" $n
    read -r _ bind host reattach < <(LD_PRELOAD=$shim $b/bench/bind-bench time "$work/t" $n)
    per[$n]=$bind
    ratio=$(python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.2f}')" "$bind" "$host")
    printf "%6s %10s %10s %10s %10s\n" "$n" "$bind" "$host" "$ratio" "$reattach"
done
python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'growth of total bind time N=4096 vs N=256: {b*4096/(a*256):.1f}x for 16x the devices')" "${per[256]}" "${per[4096]}"

if command -v strace >/dev/null; then
    n=256
    count() {  # total system calls of one run
        rm -rf "$work/t" && mkdir "$work/t"
        $b/bench/bind-bench prepare "$work/t" $n
        LD_PRELOAD=$shim strace -f -c -o "$work/strace.txt" $b/bench/bind-bench "$1" "$work/t" $n
        awk '/^-+ -+/{t=1; next} t && $NF=="total" {print $(NF-2); exit}' "$work/strace.txt"
    }
    base=$(count none); lib=$(count bind); min=$(count minimal)
    python3 - "$n" "$base" "$lib" "$min" <<'PY'
import sys
n, base, lib, minimal = map(int, sys.argv[1:])
print(f"system calls per device (strace -c -f, N={n}, the shim's own emulation work included in both):")
print(f"  pcibind_bind:          {(lib - base) / n:.1f}")
print(f"  minimal sequence:      {(minimal - base) / n:.1f}  (readlink, 3 x open/write/close, readlink)")
print(f"  ratio:                 {(lib - base) / (minimal - base):.2f}")
PY
else
    echo "strace not installed: no system-call counts (apt-get install strace)"
fi
