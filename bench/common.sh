# Sourced by the bench scripts: builds the project, then sets b (the build dir), shim (the
# kernel shim to preload), PCIBIND_BENCH_MODULES (the real 6.8 tables) and work, a temp dir
# removed on exit, on tmpfs when there is one: on a disk file system the inode churn of the
# emulation (links made and removed on every bind) costs more than everything else and drowns
# the figures. Usage: bench_setup NAME
bench_setup() {
    source "$(dirname "${BASH_SOURCE[0]}")/../scripts/tools.sh"
    cd "$TOP"
    build_project >/dev/null
    b=build
    shim=$b/testkit/kernel-shim.so
    export PCIBIND_BENCH_MODULES=$TOP/tests/data/kernel-6.8.0-151-generic
    tmpbase=${TMPDIR:-/tmp}
    [ -d /dev/shm ] && [ -w /dev/shm ] && tmpbase=/dev/shm
    work=$(mktemp -d "$tmpbase/pcibind-$1.XXXXXX")
    trap 'rm -rf "$work"' EXIT
}
