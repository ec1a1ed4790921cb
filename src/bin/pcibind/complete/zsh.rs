//! The zsh layer: the `_pcibind_host` function the replaced markers call, put before the end
//! of clap_complete's script.

use std::fmt::Write as _;

use super::ROOT_OPTIONS;

pub(super) fn zsh_layer(generated: &str) -> Result<String, String> {
    // clap_complete ends the file by calling or registering _pcibind; the helper goes before.
    let tail = "if [ \"$funcstack[1]\" = \"_pcibind\" ]; then";
    let at = generated
        .rfind(tail)
        .ok_or_else(|| format!("no `{tail}` in clap_complete's zsh script"))?;
    let mut s = String::from(
        r#"# What the definitions cannot know, asked of `pcibind __complete` (with the --sysfs-root and
# --modules-dir typed so far): the host's PCI addresses, network interfaces and drivers. The
# last two arguments: the kinds of a first value, and those of the values after it (in a `*::`
# spec, CURRENT counts the positional arguments only).
(( $+functions[_pcibind_host] )) ||
_pcibind_host() {
    local -a line root kinds values
    local i
    line=(${(Q)${(z)BUFFER}})
    # From the pcibind word on: BUFFER still has a wrapper such as sudo.
    i=${line[(i)(*/|)pcibind]}
    (( i <= $#line )) && line=(${line[i,-1]})
    for (( i = 2; i <= $#line; i++ )); do
        case $line[i] in
"#,
    );
    for opt in ROOT_OPTIONS {
        let _ = writeln!(
            s,
            "        {opt}=*) root+=($line[i]) ;;\n        {opt}) root+=($line[i] $line[i+1]) ;;"
        );
    }
    s.push_str(
        r#"        esac
    done
    # _arguments puts compadd's options (-J group ...) before the spec's two words.
    kinds=(${(s:,:)@[-2]})
    (( CURRENT > 1 )) && kinds=(${(s:,:)@[-1]})
    values=(${(f)"$($line[1] $root __complete $kinds 2>/dev/null)"})
    compadd "${@[1,-3]}" -a values
}

"#,
    );
    Ok(format!("{}{s}{}", &generated[..at], &generated[at..]))
}
