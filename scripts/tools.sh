# Sourced by the scripts: installs, on first use, the build tools a fresh machine lacks (meson,
# ninja and pkgconf from PyPI into a virtual environment; for the header check only, the pinned
# cbindgen from crates.io) into a cache shared by every checkout, and puts them first on PATH.
# Needs only python3 (with venv) and cargo. PCIBIND_TOOLS_DIR overrides the cache location.

MESON_VERSION=1.12.1
NINJA_VERSION=1.13.2
PKGCONF_VERSION=3.0.7.post0
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CBINDGEN_VERSION=$(cat "$TOP/build-aux/cbindgen-version")
TOOLS=${PCIBIND_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/libpcibind-tools}

# meson, ninja and pkgconf: what building the library and the tool needs.
ensure_build_tools() {
    mkdir -p "$TOOLS"
    local venv="$TOOLS/venv-meson-$MESON_VERSION-ninja-$NINJA_VERSION-pkgconf-$PKGCONF_VERSION"
    # The stamp is written last, so an interrupted install is redone, not trusted.
    if [ ! -f "$venv/.complete" ]; then
        echo "==> installing meson $MESON_VERSION, ninja $NINJA_VERSION, pkgconf $PKGCONF_VERSION into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || {
            echo "error: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
            return 1
        }
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "meson==$MESON_VERSION" "ninja==$NINJA_VERSION" "pkgconf==$PKGCONF_VERSION" || return 1
        touch "$venv/.complete"
    fi
    export PATH="$venv/bin:$PATH"
    # A cbindgen installed earlier is used (the header check runs where it is found).
    [ ! -x "$TOOLS/cbindgen-$CBINDGEN_VERSION/bin/cbindgen" ] ||
        export PATH="$TOOLS/cbindgen-$CBINDGEN_VERSION/bin:$PATH"
}

# The pinned cbindgen: only the header-in-sync test needs it (the header is checked in).
ensure_cbindgen() {
    local cb="$TOOLS/cbindgen-$CBINDGEN_VERSION"
    if [ ! -x "$cb/bin/cbindgen" ]; then
        echo "==> installing cbindgen $CBINDGEN_VERSION into $cb (about a minute, once)"
        cargo install --quiet --locked --version "$CBINDGEN_VERSION" --root "$cb" cbindgen ||
            return 1
    fi
    export PATH="$cb/bin:$PATH"
}

ensure_tools() {
    ensure_build_tools && ensure_cbindgen
}

# Configures (or reconfigures) and builds the meson build directory $TOP/build; any arguments
# are meson options (-Dheader_check=required).
build_project() {
    ensure_build_tools || return 1
    if [ -f "$TOP/build/build.ninja" ]; then
        local out
        out=$(meson setup --reconfigure "$TOP/build" "$TOP" "$@" 2>&1) || { echo "$out"; return 1; }
    else
        meson setup "$TOP/build" "$TOP" "$@" || return 1
    fi
    meson compile -C "$TOP/build"
}
