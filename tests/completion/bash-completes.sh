#!/usr/bin/env bash
# Completes pcibind command lines as bash does on TAB, with the generated completion script
# loaded, against a fake sysfs tree: a command, an option, a PCI address (also past its
# colons, which readline splits words at), an interface name, a driver after a device.
#
# Usage: bash-completes.sh SCRIPT PCIBIND TREE
#   SCRIPT: the bash completion script (`pcibind completions bash`)
#   PCIBIND: the tool (the script runs it as typed, the first word of the line)
#   TREE: a sysfs tree from examples/example-sysfs.py, with TREE/lib-modules/modules.alias
# Exits 1 naming each line that did not complete as expected.
set -u
script=$1 pcibind=$2 tree=$3
failed=0

# shellcheck source=/dev/null
source "$script" || { echo "error: sourcing $script failed"; exit 1; }
spec=$(complete -p pcibind 2>/dev/null) || { echo "error: no completion for pcibind"; exit 1; }
func=$(sed -n 's/.*-F \([^ ]*\).*/\1/p' <<<"$spec")
echo "registered: $spec"

# Sets COMP_LINE, COMP_POINT, COMP_WORDS and COMP_CWORD for the line $1 (the cursor at its end),
# splitting words as readline does: at blanks, and around each COMP_WORDBREAKS character
# (':' and '=' here), which becomes a word of its own.
set_line() {
    local line=$1 word="" c i
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMP_WORDS=()
    for ((i = 0; i < ${#line}; i++)); do
        c=${line:i:1}
        case $c in
        ' ')
            [[ -n $word ]] && COMP_WORDS+=("$word")
            word=""
            ;;
        ':' | '=')
            [[ -n $word ]] && COMP_WORDS+=("$word")
            COMP_WORDS+=("$c")
            word=""
            ;;
        *) word+=$c ;;
        esac
    done
    COMP_WORDS+=("$word") # the word being completed, maybe empty
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
}

# Runs the completion function on line $1 as bash would: the command as typed, the current
# word and the one before it. The candidates are left in COMPREPLY.
complete_line() {
    set_line "$1"
    COMPREPLY=()
    "$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
}

# Completes line $1 and expects every one of the other arguments among the candidates.
expect() {
    local line=$1 want ok=1
    shift
    complete_line "$line"
    for want in "$@"; do
        if ! printf '%s\n' "${COMPREPLY[@]}" | grep -qx -- "$want"; then
            echo "FAIL: '$line<TAB>' does not offer '$want'; offers: ${COMPREPLY[*]}"
            ok=0 failed=1
        fi
    done
    [[ $ok = 1 ]] && echo "ok: '$line<TAB>' offers $*"
}

# Completes line $1 and expects none of the other arguments among the candidates.
expect_not() {
    local line=$1 unwanted ok=1
    shift
    complete_line "$line"
    for unwanted in "$@"; do
        if printf '%s\n' "${COMPREPLY[@]}" | grep -qx -- "$unwanted"; then
            echo "FAIL: '$line<TAB>' offers '$unwanted': ${COMPREPLY[*]}"
            ok=0 failed=1
        fi
    done
    [[ $ok = 1 ]] && echo "ok: '$line<TAB>' offers none of $*"
}

# An interface on the e1000e NIC, as the kernel lays it out.
mkdir -p "$tree/class/net" "$tree/devices/pci0000:00/0000:00:02.0/net/enp0s2"
ln -sfn ../../../0000:00:02.0 "$tree/devices/pci0000:00/0000:00:02.0/net/enp0s2/device"
ln -sfn ../../devices/pci0000:00/0000:00:02.0/net/enp0s2 "$tree/class/net/enp0s2"

root="--sysfs-root $tree --modules-dir $tree/lib-modules"
# The tool is run as the line's first word: the one under test.
run="$pcibind $root"

expect "$pcibind bi" bind
expect "$pcibind re" reattach recover resolve
expect "$pcibind bind --dry" --dry-run
expect "$pcibind bind --allow " in-use unclaimed sriov
expect "$run bind " 0000:00:02.0 0000:3b:00.2 enp0s2
# Readline completes the word after the last colon: "3b" becomes "3b:00.2".
expect "$run show 0000:3b" 3b:00.2
expect "$run unbind 0000:01:00.0 0000:01:" 00.0 00.1
expect "$run bind 0000:00:02.0 vfio" vfio_pci
expect "$run bind 0000:00:02.0 " vfio_pci e1000e none 0000:3b:00.2
expect "$run resolve mlx" mlx5_core mlx5_vfio_pci
# After a wrapper the line still has (without bash-completion's _command_offset).
expect "sudo $run show 0000:3b" 3b:00.2
expect_not "$run bind " vfio_pci none
expect_not "$run show 0000:00:02.0 " 0000:3b:00.2
expect_not "$run --lock-dir " 0000:00:02.0
exit $failed
