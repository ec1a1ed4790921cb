#!/usr/bin/env zsh
# Completes pcibind command lines in an interactive zsh (on a pseudo-terminal, through
# zsh/zpty) with the generated completion function installed, against a fake sysfs tree: a
# command, an option, PCI addresses and an interface, drivers after a device.
#
# Usage: zsh-completes.zsh SCRIPT PCIBIND TREE
#   SCRIPT: the zsh completion function (`pcibind completions zsh`), named _pcibind or not
#   PCIBIND: the tool; its directory is put first in PATH, so the lines run it as `pcibind`
#   TREE: a sysfs tree from examples/example-sysfs.py, with TREE/lib-modules/modules.alias
# Exits 1 naming each line that did not complete as expected.
emulate -L zsh
setopt extendedglob
zmodload zsh/zpty || { print "error: no zsh/zpty module"; exit 1 }
script=$1 pcibind=$2 tree=$3
fpath_dir=$(mktemp -d) || exit 1
trap 'rm -rf $fpath_dir' EXIT
cp $script $fpath_dir/_pcibind
failed=0

# Types line $1 and TAB twice (complete, then list) in a fresh shell; every other argument must
# show up in what the terminal then shows, within 10 seconds, except those after `--not`, which
# must not (checked once the others showed up and the shell had half a second more).
expect() {
    local line=$1 screen= chunk want
    local -a wants unwanted
    shift
    wants=(${@[1,${@[(i)--not]}-1]})
    unwanted=(${@[${@[(i)--not]}+1,-1]})
    zpty z zsh -f -i
    zpty -w z "PS1='> '; PATH=${pcibind:h}:\$PATH; fpath=($fpath_dir \$fpath)"
    zpty -w z "autoload -Uz compinit; compinit -u -D; setopt nobeep; LISTMAX=1000"
    zpty -w -n z "$line"$'\t\t'
    local -i deadline=$(( SECONDS + 10 )) seen
    while (( SECONDS < deadline )); do
        if zpty -r -t z chunk; then
            # What a terminal would show: no escape sequences, no carriage returns.
            screen+=${${chunk//$'\e'\[[0-9;?]#[a-zA-Z]/}//$'\r'/}
            continue
        fi
        seen=1
        for want in $wants; do
            [[ $screen == *$want* ]] || seen=0
        done
        (( seen )) && break
        sleep 0.1
    done
    sleep 0.5
    while zpty -r -t z chunk; do
        screen+=${${chunk//$'\e'\[[0-9;?]#[a-zA-Z]/}//$'\r'/}
    done
    zpty -d z
    local ok=1
    for want in $wants; do
        if [[ $screen != *$want* ]]; then
            print -r -- "FAIL: '$line<TAB><TAB>' does not show '$want'"
            ok=0
        fi
    done
    for want in $unwanted; do
        if [[ $screen == *$want* ]]; then
            print -r -- "FAIL: '$line<TAB><TAB>' shows '$want'"
            ok=0
        fi
    done
    if (( ok )); then
        print -r -- "ok: '$line<TAB><TAB>' shows $wants${unwanted:+, not $unwanted}"
    else
        failed=1
    fi
}

local run="pcibind --sysfs-root $tree --modules-dir $tree/lib-modules"
mkdir -p $tree/class/net $tree/devices/pci0000:00/0000:00:02.0/net/enp0s2
ln -sfn ../../../0000:00:02.0 $tree/devices/pci0000:00/0000:00:02.0/net/enp0s2/device
ln -sfn ../../devices/pci0000:00/0000:00:02.0/net/enp0s2 $tree/class/net/enp0s2

expect "pcibind reatt" "pcibind reattach"
expect "pcibind bind --dry" "--dry-run"
expect "$run bind " 0000:00:02.0 0000:3b:00.2 enp0s2 --not vfio_pci
expect "$run show 0000:3b" "3b:00.2"
expect "$run bind 0000:00:02.0 " vfio_pci mlx5_vfio_pci none 0000:3b:00.2
# --owner's value is a user (its value name USER[:GROUP] must not end the spec's message).
expect "pcibind bind --owner roo" "--owner root"
# zsh's sudo completion completes the command after it; the helper runs pcibind, not sudo.
expect "sudo $run show 0000:3b" "3b:00.2"
exit $failed
