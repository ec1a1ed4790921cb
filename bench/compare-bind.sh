#!/usr/bin/env bash
# Side-by-side bind benchmark of two builds (for "no slowdown" claims on these noisy machines):
# for N = 256, 1024, 4096 it runs bench/bind-bench of build A and of build B on fresh identical
# trees, alternating, ROUNDS times each, and prints the medians and the ratio B/A.
# Usage: bench/compare-bind.sh BUILD_A BUILD_B [ROUNDS]   (meson build dirs, already built)
# Both run under BUILD_B's kernel shim, so the emulation costs the same on both sides.
set -euo pipefail
a=$1 b=$2 rounds=${3:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
export PCIBIND_BENCH_MODULES=$top/tests/data/kernel-6.8.0-151-generic
tmpbase=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && tmpbase=/dev/shm
work=$(mktemp -d "$tmpbase/pcibind-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The test kit's shim (0.2 on); a build from before the kit had it in c-tests/.
shim=$b/testkit/kernel-shim.so
[ -f "$shim" ] || shim=$(ls "$b"/c-tests/*kernel-shim*.so | head -n1)
run() {  # run BUILD N: prints "bind reattach" (microseconds per device)
    local build=$1 n=$2
    rm -rf "$work/t" && mkdir "$work/t"
    "$build/bench/bind-bench" prepare "$work/t" "$n"
    LD_PRELOAD=$shim "$build/bench/bind-bench" time "$work/t" "$n" | awk '{print $2, $3}'
}
printf "%6s %12s %12s %7s %14s %14s %7s\n" N "A bind" "B bind" "B/A" "A reattach" "B reattach" "B/A"
for n in 256 1024 4096; do
    ab=() bb=() ar=() br=()
    for _ in $(seq "$rounds"); do
        read -r x y < <(run "$a" "$n"); ab+=("$x"); ar+=("$y")
        read -r x y < <(run "$b" "$n"); bb+=("$x"); br+=("$y")
    done
    python3 - "$n" "${ab[*]}" "${bb[*]}" "${ar[*]}" "${br[*]}" <<'PY'
import statistics, sys
n = sys.argv[1]
ab, bb, ar, br = (statistics.median(map(float, s.split())) for s in sys.argv[2:])
print(f"{n:>6} {ab:12.1f} {bb:12.1f} {bb/ab:7.2f} {ar:14.1f} {br:14.1f} {br/ar:7.2f}")
PY
done
