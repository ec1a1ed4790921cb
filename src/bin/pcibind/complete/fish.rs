//! The fish layer: the functions and the `complete` line that offer the host's names for the
//! positional arguments, for which clap_complete writes no fish line.

use std::fmt::Write as _;

use clap::Command;

use super::{position_cases, value_options, ROOT_OPTIONS};

pub(super) fn fish_layer(cmd: &Command) -> String {
    let mut s = String::from(
        r#"
# What the definitions cannot know, asked of `pcibind __complete` (with the --sysfs-root and
# --modules-dir typed so far): the host's PCI addresses, network interfaces and drivers, where
# a command takes a device or a driver (clap_complete writes nothing for positional arguments).
# The tokens before the cursor from the pcibind word on (after a wrapper such as sudo).
function __pcibind_words
    set -l words (commandline -opc)
    set -l at (contains -i -- pcibind (string replace -r '.*/' '' -- $words))
    test -n "$at"; or set at 1
    printf '%s\n' $words[$at..-1]
end

function __pcibind_host_kinds
    set -l words (__pcibind_words)
    set -l command
    set -l n 0
    set -l value 0
    set -l dashdash 0
    for word in $words[2..-1]
        if test $value = 1
            set value 0
            continue
        end
        if test $dashdash = 0; and string match -q -- '-*' $word
            if test "$word" = --
                set dashdash 1
            else if not string match -q -- '*=*' $word; and contains -- $word $__pcibind_value_options
                set value 1
            end
            continue
        end
        if test -z "$command"
            set command $word
        else
            set n (math $n + 1)
        end
    end
    if test $value = 1; or test -z "$command"
        return
    end
    if test $dashdash = 0; and string match -q -- '-*' (commandline -ct)
        return
    end
    switch "$command,$n"
"#,
    );
    for (label, kinds) in position_cases(cmd) {
        let _ = writeln!(s, "        case '{label}'\n            echo {kinds}");
    }
    s.push_str(
        r#"    end
end

function __pcibind_host
    set -l words (__pcibind_words)
    set -l root
    for i in (seq 2 (count $words))
        switch $words[$i]
"#,
    );
    for opt in ROOT_OPTIONS {
        let _ = writeln!(
            s,
            "            case '{opt}=*'\n                set -a root $words[$i]\n            case {opt}\n                set -a root $words[$i] $words[(math $i + 1)]"
        );
    }
    let _ = write!(
        s,
        r#"        end
    end
    $words[1] $root __complete (string split ' ' -- (__pcibind_host_kinds)) 2>/dev/null
end

set -g __pcibind_value_options {}
complete -c pcibind -n 'test -n "$(__pcibind_host_kinds)"' -f -a '(__pcibind_host)'
"#,
        value_options(cmd).join(" ")
    );
    s
}
