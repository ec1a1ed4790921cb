#!/usr/bin/env bash
# The cost of looking for a VMM that holds a device (issue 20; SPEC 1 "Held by a VMM"): a
# reattach of a device on vfio-pci reads every process's descriptors, as fuser does. For
# PROCS = 100, 1000, 3000, 10000 fake processes of 32 descriptors each (a fake proc root; the
# scan reads it exactly as it reads /proc), the microseconds per reattach with that proc root
# and with an empty one, under the kernel shim; the difference is the scan. The last column:
# the same reattach looking at this machine's real /proc (read only), for orientation.
# Usage: bench/holders.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_setup holders
printf "%7s %16s %16s %12s %22s\n" PROCS "reattach (µs)" "no procs (µs)" "scan (µs)" "real /proc (µs)"
for procs in 100 1000 3000 10000; do
    rm -rf "$work/t" && mkdir "$work/t"
    read -r p many empty real < <(LD_PRELOAD=$shim "$b/bench/bind-bench" holders "$work/t" "$procs")
    printf "%7s %16s %16s %12.0f %22s\n" "$p" "$many" "$empty" "$(python3 -c "print($many - $empty)")" "$real"
done
