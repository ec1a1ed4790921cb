#!/usr/bin/env bash
# Side-by-side variant-lookup benchmark (bench/variant.rs) of an older commit's library and
# this tree's: this tree's benchmark is built against a copy of COMMIT's sources and against
# this tree, the two binaries run alternately RUNS times each on the same copy of the 6.8
# tables, and every run's (a), (c) and (a)/(c) are printed, wall clock and CPU time, then the
# medians and the ratio of the medians of (a).
# Usage: bench/compare-variant.sh COMMIT [RUNS]   (RUNS: 5 unless given)
# The copy of COMMIT and its build stay in $PCIBIND_COMPARE_DIR (default
# $TMPDIR/pcibind-variant-COMMIT), so a second comparison does not build it again.
set -euo pipefail
commit=$1 runs=${2:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
old=${PCIBIND_COMPARE_DIR:-${TMPDIR:-/tmp}/pcibind-variant-$commit}
if [ ! -f "$old/Cargo.toml" ]; then
    mkdir -p "$old"
    git -C "$top" archive "$commit" | tar -x -C "$old"
fi
cp "$top/bench/variant.rs" "$old/bench/variant.rs"
export PCIBIND_BENCH_MODULES=$top/tests/data/kernel-6.8.0-151-generic
binary() {  # binary DIR: builds the benchmark of DIR, prints the path of the binary
    (cd "$1" && cargo bench --features internals --bench variant --no-run \
        --message-format=json-render-diagnostics) | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "variant" \
            and m.get("executable"):
        print(m["executable"])'
}
a=$(binary "$old")
b=$(binary "$top")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$runs"); do
    "$a" | sed 's/^/A /' >>"$out"
    "$b" | sed 's/^/B /' >>"$out"
done
python3 - "$commit" "$out" <<'PY'
import re, statistics, sys
commit, path = sys.argv[1], sys.argv[2]
unit = {"ns": 1e-3, "µs": 1.0, "ms": 1e3, "s": 1e6}
runs = {"A": [], "B": []}
for line in open(path, encoding="utf-8"):
    side, _, rest = line.partition(" ")
    m = re.match(r"\s*\((a|c)\) .*?([\d.]+)(ns|µs|ms|s) wall\s+([\d.]+)(ns|µs|ms|s) cpu", rest)
    if m:
        if m[1] == "a":
            runs[side].append({})
        runs[side][-1][m[1]] = (float(m[2]) * unit[m[3]], float(m[4]) * unit[m[5]])
print(f"{'run':>4} {'':24} {'(a) wall':>9} {'(a) cpu':>9} {'(c) wall':>9} {'(c) cpu':>9}"
      f" {'(a)/(c) wall':>13} {'(a)/(c) cpu':>12}")
label = {"A": f"A: {commit}", "B": "B: this tree"}
med = {}
for side in "AB":
    rows = runs[side]
    for k, r in enumerate(rows, 1):
        (aw, ac), (cw, cc) = r["a"], r["c"]
        print(f"{k:>4} {label[side]:24} {aw:9.1f} {ac:9.1f} {cw:9.1f} {cc:9.1f} {aw/cw:13.2f} {ac/cc:12.2f}")
    col = lambda f: statistics.median(f(r) for r in rows)
    med[side] = [col(lambda r: r["a"][0]), col(lambda r: r["a"][1]),
                 col(lambda r: r["a"][0] / r["c"][0]), col(lambda r: r["a"][1] / r["c"][1])]
    print(f"{'med':>4} {label[side]:24} {med[side][0]:9.1f} {med[side][1]:9.1f} {'':9} {'':9}"
          f" {med[side][2]:13.2f} {med[side][3]:12.2f}")
print(f"B/A of the medians of (a): {med['B'][0]/med['A'][0]:.2f} wall, {med['B'][1]/med['A'][1]:.2f} cpu"
      " (times in µs)")
PY
