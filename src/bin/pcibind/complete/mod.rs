//! Shell completions. `pcibind completions SHELL` prints the script for bash, zsh or fish (meson
//! installs what the built tool prints, as it does the man page): clap_complete writes the
//! commands, options and option values from the same definitions as `--help`, and this module
//! adds what those cannot know, the host's PCI addresses, network interfaces and drivers, which
//! the script asks of the hidden `pcibind __complete KIND...` as it completes, passing on the
//! `--sysfs-root` and `--modules-dir` typed so far.
//!
//! How the two are joined: in a copy of the definitions made for the generator, each positional
//! argument that takes a device or a driver gets one marker value, which clap_complete writes
//! where it would list that argument's values; the marker is then replaced (zsh) or removed
//! (bash), and a small layer of the shell's own code, with tables made here from the
//! definitions, completes those positions. Fish gets its own lines, since clap_complete writes
//! none for positional arguments.
//!
//! Here: the definitions as the generator sees them, the tables, and the post-processing of
//! clap_complete's output; each shell's layer in `bash.rs`, `zsh.rs`, `fish.rs`; the host's
//! names for `__complete` in `host.rs`.

mod bash;
mod fish;
mod host;
mod zsh;

use std::collections::BTreeSet;

use clap::builder::PossibleValue;
use clap::{Arg, ArgAction, Command};

use bash::bash_layer;
use fish::fish_layer;
pub use host::values;
use zsh::zsh_layer;

/// A shell `pcibind completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// What `pcibind __complete` lists, one a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The PCI devices, as addresses (`bus/pci/devices`)
    Addresses,
    /// The network interfaces that stand for a PCI device (`class/net`)
    Interfaces,
    /// The PCI drivers (`bus/pci/drivers`), the modules of PCI drivers in `modules.alias`, and
    /// `none`
    Drivers,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Addresses => "addresses",
            Kind::Interfaces => "interfaces",
            Kind::Drivers => "drivers",
        }
    }
}

/// Where a device is expected: an address, or an interface standing for one.
const DEVICES: &[Kind] = &[Kind::Addresses, Kind::Interfaces];
const DEVICES_OR_DRIVER: &[Kind] = &[Kind::Addresses, Kind::Interfaces, Kind::Drivers];
const DRIVERS: &[Kind] = &[Kind::Drivers];

/// What one positional argument completes to: its first value, and (for one that takes many)
/// the values after the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dynamic {
    first: &'static [Kind],
    rest: &'static [Kind],
}

/// What the positional argument `id` completes to, from the host; `None` for those clap's own
/// output completes (a fixed set of values) or nothing can (a number). Every positional of the
/// tool is named here: a test fails on a new one until it is.
fn dynamic(id: &str) -> Option<Option<Dynamic>> {
    Some(match id {
        // ADDRESS... [DRIVER]: a driver only after a first device.
        "args" => Some(Dynamic {
            first: DEVICES,
            rest: DEVICES_OR_DRIVER,
        }),
        "addresses" | "address" | "pf" => Some(Dynamic {
            first: DEVICES,
            rest: DEVICES,
        }),
        "name" => Some(Dynamic {
            first: DRIVERS,
            rest: DRIVERS,
        }),
        "numvfs" | "shell" | "kinds" => None,
        _ => return None,
    })
}

/// The marker value of a positional argument, unique in the script.
fn marker(command: &str, id: &str) -> String {
    format!("__pcibind_dynamic_{command}_{id}__")
}

/// An argument with the colons of its value names escaped: zsh's `_arguments` would end the
/// message at `USER[:GROUP]`'s colon, and clap_complete writes value names as they are (bash and
/// fish do not show them).
fn colons_escaped(arg: &Arg) -> Arg {
    match arg.get_value_names() {
        Some(names) if names.iter().any(|n| n.contains(':')) => {
            let escaped: Vec<String> = names.iter().map(|n| n.replace(':', "\\:")).collect();
            arg.clone().value_names(escaped)
        }
        _ => arg.clone(),
    }
}

/// The definitions as the generator sees them: hidden commands and options left out (clap_complete
/// would list them), and the marker value on each positional argument completed from the host.
fn for_generator(cmd: &Command) -> Command {
    let visible = |a: &&Arg| !a.is_hide_set();
    let mut out = Command::new(cmd.get_name().to_owned())
        .bin_name(cmd.get_name().to_owned())
        .args(cmd.get_arguments().filter(visible).map(colons_escaped));
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_owned());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_owned();
        let mut s = Command::new(name.clone()).args(sub.get_arguments().filter(visible).map(|a| {
            match dynamic(a.get_id().as_str()) {
                Some(Some(_)) if a.is_positional() => a
                    .clone()
                    .value_parser([PossibleValue::new(marker(&name, a.get_id().as_str()))]),
                _ => colons_escaped(a),
            }
        }));
        if let Some(about) = sub.get_about() {
            s = s.about(about.clone());
        }
        out = out.subcommand(s);
    }
    out
}

/// The positional arguments completed from the host: (command, argument, its index among the
/// command's positionals, whether it takes many values, what it completes to).
fn positionals(cmd: &Command) -> Vec<(String, String, usize, bool, Dynamic)> {
    let mut found = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        for (index, arg) in sub.get_positionals().enumerate() {
            if let Some(Some(d)) = dynamic(arg.get_id().as_str()) {
                let many = matches!(arg.get_action(), ArgAction::Append)
                    || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
                found.push((
                    sub.get_name().to_owned(),
                    arg.get_id().to_string(),
                    index,
                    many,
                    d,
                ));
            }
        }
    }
    found
}

/// Every option that takes a value, in every spelling (`--sysfs-root`, `-x`): the word after it
/// is its value, never a positional argument.
fn value_options(cmd: &Command) -> Vec<String> {
    let mut names = BTreeSet::new();
    let mut add = |arg: &Arg| {
        if arg.is_positional() || !arg.get_action().takes_values() {
            return;
        }
        for long in arg.get_long_and_visible_aliases().unwrap_or_default() {
            names.insert(format!("--{long}"));
        }
        for short in arg.get_short_and_visible_aliases().unwrap_or_default() {
            names.insert(format!("-{short}"));
        }
    };
    cmd.get_arguments().for_each(&mut add);
    for sub in cmd.get_subcommands() {
        sub.get_arguments().for_each(&mut add);
    }
    names.into_iter().collect()
}

fn words(kinds: &[Kind]) -> String {
    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" ")
}

/// The case labels and kinds of the positions completed from the host, for a shell's `case`:
/// (`bind,0`, first kinds), (`bind,*`, the rest), in the order they must be tried.
fn position_cases(cmd: &Command) -> Vec<(String, String)> {
    let mut cases = Vec::new();
    for (command, _, index, many, d) in positionals(cmd) {
        cases.push((format!("{command},{index}"), words(d.first)));
        if many {
            cases.push((format!("{command},*"), words(d.rest)));
        }
    }
    cases
}

/// The completion script for `shell`, from `cmd` (the tool's top-level command, unbuilt). An
/// error means clap_complete's output no longer has the shape this module expects.
pub fn script(shell: Shell, cmd: &Command) -> Result<String, String> {
    let mut gen = for_generator(cmd);
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut gen, "pcibind", &mut out);
    let mut text = String::from_utf8(out).map_err(|e| e.to_string())?;
    let markers = positionals(cmd);
    match shell {
        Shell::Bash => {
            for (command, id, ..) in &markers {
                text = text.replace(&format!(" {}", marker(command, id)), "");
            }
            let hook = "complete -F _pcibind ";
            if text.matches(hook).count() == 0 {
                return Err(format!("no `{hook}` in clap_complete's bash script"));
            }
            text = text.replace(hook, "complete -F _pcibind_host ");
            text.push_str(&bash_layer(cmd));
        }
        Shell::Zsh => {
            for (command, id, _, _, d) in &markers {
                let from = format!("({})", marker(command, id));
                if !text.contains(&from) {
                    return Err(format!("no {from} in clap_complete's zsh script"));
                }
                let to = format!(
                    "_pcibind_host {} {}",
                    words(d.first).replace(' ', ","),
                    words(d.rest).replace(' ', ",")
                );
                text = text.replace(&from, &to);
            }
            text = zsh_layer(&text)?;
        }
        Shell::Fish => text.push_str(&fish_layer(cmd)),
    }
    if let Some((command, id, ..)) = markers
        .iter()
        .find(|(c, i, ..)| text.contains(&marker(c, i)))
    {
        return Err(format!(
            "the marker of {command} {id} is left in the script"
        ));
    }
    Ok(text)
}

/// The options `__complete` is given again: where the devices and the module tables are.
const ROOT_OPTIONS: &[&str] = &["--sysfs-root", "--modules-dir"];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A new positional argument is a decision: what does it complete to?
    #[test]
    fn every_positional_argument_is_classified() {
        let cmd = crate::Cli::command();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_positionals() {
                assert!(
                    dynamic(arg.get_id().as_str()).is_some(),
                    "{} {}: say in complete/mod.rs (`dynamic`) what it completes to",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn every_shell_gets_a_script_with_the_host_layer() {
        let cmd = crate::Cli::command();
        for (shell, hook) in [
            (Shell::Bash, "complete -F _pcibind_host "),
            (
                Shell::Zsh,
                ":_pcibind_host addresses,interfaces addresses,interfaces,drivers'",
            ),
            (Shell::Fish, "-a '(__pcibind_host)'"),
        ] {
            let text = script(shell, &cmd).unwrap();
            assert!(text.contains(hook), "{shell:?}: {hook} missing");
            for option in ["sysfs-root", "dry-run", "allow"] {
                // fish spells them `-l NAME`.
                let spelled = match shell {
                    Shell::Fish => format!("-l {option}"),
                    _ => format!("--{option}"),
                };
                assert!(text.contains(&spelled), "{shell:?}: {spelled} missing");
            }
        }
    }

    /// Every visible option of every visible command is offered for that command in every
    /// shell's script (so a new option, such as `--json` or `sriov --dry-run`, reaches them).
    #[test]
    fn every_commands_options_are_in_every_script() {
        let cmd = crate::Cli::command();
        let scripts: Vec<(Shell, String)> = [Shell::Bash, Shell::Zsh, Shell::Fish]
            .into_iter()
            .map(|shell| (shell, script(shell, &cmd).unwrap()))
            .collect();
        let mut checked = 0;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                let Some(long) = arg.get_long() else {
                    continue;
                };
                for (shell, text) in &scripts {
                    let found = match shell {
                        Shell::Bash => section(text, &format!("pcibind__{name})"))
                            .contains(&format!(" --{long} ")),
                        Shell::Zsh => {
                            let section = section(text, &format!("({name})"));
                            // `'--json[...]'`, `'--owner=[...]:...'`, `'(--overrides)--persisted[...]'`
                            ["[", "=["]
                                .iter()
                                .any(|end| section.contains(&format!("--{long}{end}")))
                        }
                        Shell::Fish => text.contains(&format!(
                            "__fish_pcibind_using_subcommand {name}\" -l {long} "
                        )),
                    };
                    assert!(found, "{shell:?}: {name} --{long} missing");
                }
                checked += 1;
            }
        }
        for (name, long) in [("bind", "owner"), ("sriov", "dry-run"), ("apply", "json")] {
            assert!(
                cmd.find_subcommand(name)
                    .is_some_and(|s| s.get_arguments().any(|a| a.get_long() == Some(long))),
                "{name} --{long} is no longer an option: update this test"
            );
        }
        assert!(checked > 25, "{checked}");
    }

    /// The lines from the first that is `label` (a `case` label) up to the `;;` that ends it.
    fn section(text: &str, label: &str) -> String {
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| l.trim() != label)
            .take_while(|l| l.trim() != ";;")
            .collect();
        assert!(!lines.is_empty(), "no {label:?}");
        lines.join("\n") + "\n"
    }

    /// Hidden commands and options are left out of what the generator sees.
    #[test]
    fn the_generator_sees_no_hidden_command_or_option() {
        let cmd = crate::Cli::command();
        assert!(cmd.get_subcommands().any(|s| s.is_hide_set()));
        let gen = for_generator(&cmd);
        let names: Vec<&str> = gen.get_subcommands().map(|s| s.get_name()).collect();
        assert!(
            names.contains(&"bind") && names.contains(&"completions"),
            "{names:?}"
        );
        assert!(
            !names.contains(&"man") && !names.contains(&"__complete"),
            "{names:?}"
        );
        assert!(gen.get_arguments().all(|a| !a.is_hide_set()));
        assert!(gen.get_arguments().any(|a| a.get_id() == "sysfs_root"));
    }
}
