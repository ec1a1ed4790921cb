#!/usr/bin/env bash
# SR-IOV bind benchmark (issue 14, SPEC section 7): a PF's N emulated VFs (made parked by
# pcibind_sriov_set_numvfs) bound to vfio-pci from 1, 2, 4 and 8 threads sharing one context,
# N = 256, 1024, 4096, through the C API with the kernel-emulation shim preloaded; beside it
# the minimal sequence by hand (override, drivers_probe, read the link) from as many threads,
# which is what the emulator itself allows. Prints the wall-clock time per VF and the speed-up
# over one thread, measured side by side: thread counts and the two take turns within each
# round, on a fresh tree each, and the median of ROUNDS counts.
# Usage: bench/vfs.sh [ROUNDS]   (default 3; builds first)
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_setup vfs
rounds=${1:-3}

# The medians per (N, threads) and the speed-up over one thread, from the runs' lines.
read -r -d '' summary <<'PY' || true
import sys, statistics
runs = {}
for line in sys.stdin:
    what, n, t, us = line.split()
    runs.setdefault((what, int(n), int(t)), []).append(float(us))
threads = (1, 2, 4, 8)
print("%-13s %5s " % ("", "N") + " ".join("%17s" % ("T=%d" % t) for t in threads))
for n in sorted({n for _, n, _ in runs}):
    for what in ("pcibind_bind", "minimal"):
        one = statistics.median(runs[(what, n, 1)])
        cells = []
        for t in threads:
            m = statistics.median(runs[(what, n, t)])
            cells.append("%8.1f (%4.2fx)" % (m, one / m))
        print("%-13s %5d " % (what, n) + " ".join("%17s" % c for c in cells))
PY
echo "VFs bound to vfio-pci from T threads on one context: microseconds per VF (wall clock),"
echo "median of $rounds rounds, tree in $tmpbase, $(nproc) CPUs; speed-up over 1 thread"
for n in 256 1024 4096; do
    for r in $(seq "$rounds"); do
        for t in 1 2 4 8; do
            for mode in vfs vfs-minimal; do
                rm -rf "$work/t" && mkdir "$work/t"
                LD_PRELOAD=$shim $b/bench/bind-bench prepare-vfs "$work/t" $n
                LD_PRELOAD=$shim $b/bench/bind-bench $mode "$work/t" $n $t
            done
        done
    done
done | python3 -c "$summary"
