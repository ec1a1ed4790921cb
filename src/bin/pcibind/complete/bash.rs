//! The bash layer: `_pcibind_host` runs clap_complete's `_pcibind`, then completes the
//! positions that take a device or a driver with what `pcibind __complete` lists.

use std::fmt::Write as _;

use clap::Command;

use super::{position_cases, value_options, ROOT_OPTIONS};

pub(super) fn bash_layer(cmd: &Command) -> String {
    let mut s = String::from(
        r#"
# What the definitions cannot know, asked of `pcibind __complete` (with the --sysfs-root and
# --modules-dir typed so far): the host's PCI addresses, network interfaces and drivers, where
# a command takes a device or a driver. The line is split on blanks here, not on
# COMP_WORDBREAKS, so an address is one word in spite of its colons.
_pcibind_host() {
    _pcibind "$@"
    local line=${COMP_LINE:0:COMP_POINT} cur command="" word i n=0 value=0 dashdash=0
    local -a words root=()
    read -r -a words <<<"$line"
    if [[ -z $line || $line == *[[:blank:]] ]]; then
        words+=("")
    fi
    cur=${words[${#words[@]}-1]}
    # From the pcibind word on (after a wrapper such as sudo, if the line still has it).
    for ((i = 0; i < ${#words[@]} - 1; i++)); do
        if [[ ${words[i]##*/} == pcibind ]]; then
            words=("${words[@]:i}")
            break
        fi
    done
    for ((i = 1; i < ${#words[@]} - 1; i++)); do
        word=${words[i]}
        if ((value)); then
            value=0
            continue
        fi
        if ((!dashdash)) && [[ $word == -* ]]; then
            case $word in
            --) dashdash=1 ;;
"#,
    );
    for opt in ROOT_OPTIONS {
        let _ = writeln!(
            s,
            "            {opt}=*) root+=(\"$word\") ;;\n            {opt}) root+=(\"$word\" \"${{words[i+1]}}\") ;;"
        );
    }
    s.push_str(
        r#"            esac
            [[ $word != *=* ]] && _pcibind_takes_value "$word" && value=1
            continue
        fi
        if [[ -z $command ]]; then
            command=$word
        else
            n=$((n + 1))
        fi
    done
    if ((value)) || [[ -z $command ]] || { ((!dashdash)) && [[ $cur == -* ]]; }; then
        return 0
    fi
    local kinds
    kinds=$(_pcibind_kinds "$command" "$n")
    [[ -n $kinds ]] || return 0
    local values
    # shellcheck disable=SC2086
    values=$("${words[0]}" "${root[@]}" __complete $kinds 2>/dev/null)
    COMPREPLY=()
    local IFS=$'\n' v
    for v in $(compgen -W "$values" -- "$cur"); do
        # Readline replaces only what follows the last colon when COMP_WORDBREAKS has one.
        if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
            v=${v#"${cur%"${cur##*:}"}"}
        fi
        COMPREPLY+=("$v")
    done
    return 0
}

# From the argument definitions: the options that take a value (the next word is theirs).
_pcibind_takes_value() {
    case $1 in
"#,
    );
    let _ = writeln!(
        s,
        "    {}) return 0 ;;\n    esac\n    return 1\n}}",
        value_options(cmd).join("|")
    );
    s.push_str(
        "\n# From the argument definitions: what positional argument $2 (from 0) of command $1\n\
         # completes to.\n_pcibind_kinds() {\n    case \"$1,$2\" in\n",
    );
    for (label, kinds) in position_cases(cmd) {
        let _ = writeln!(s, "    {label}) echo \"{kinds}\" ;;");
    }
    s.push_str("    esac\n}\n");
    s
}
