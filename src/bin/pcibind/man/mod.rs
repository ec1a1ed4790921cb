//! `pcibind man`: the man page, pcibind(1), made from the same clap definitions as `--help`.
//!
//! One page holds every command with its arguments and options (clap_mangen alone would point
//! to a page per command, pcibind-list(1) and so on, which nobody installs), the global
//! options, the exit statuses as a list (parsed from the help's "Exit status:" block, so the
//! two cannot disagree), the JSON shapes, examples and files. build-aux/check-man.py checks
//! the result against the tool's own --help and --json output. The sections written by hand,
//! in roff, are in `text.rs`.

mod text;

use std::fmt::Write as _;
use std::io::{self, Write};

use clap::{ArgAction, Command};

use text::{EXAMPLES, FILES, JSON};

/// Renders the page for `cmd` (the tool's unbuilt top-level command) to `out`.
pub fn render(cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("pcibind {version}"))
        .manual("User Commands");
    man.render_title(out)?;

    let mut page = String::new();
    page.push_str(".SH NAME\npcibind \\- move Linux PCI devices between kernel drivers\n");

    page.push_str(".SH SYNOPSIS\n");
    let commands: Vec<&Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    for (i, sub) in commands.iter().enumerate() {
        if i > 0 {
            page.push_str(".br\n");
        }
        let _ = writeln!(page, "\\fBpcibind\\fR [\\fIOPTIONS\\fR] {}", usage(sub));
    }

    page.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut page, &text(cmd.get_long_about().or(cmd.get_about())));
    page.push_str(
        ".PP\nAddresses are PCI addresses, \\fIDDDD:BB:DD.F\\fR or \\fIBB:DD.F\\fR. A \
         \\fIDRIVER\\fR is a PCI driver name or a kernel module name, in either spelling \
         (\\fBvfio_pci\\fR, \\fBvfio\\-pci\\fR, \\fBmlx5\\-vfio\\-pci\\fR); \\fBnone\\fR means \
         no driver. Every command takes \\fB\\-\\-help\\fR.\n",
    );

    page.push_str(".SH COMMANDS\n");
    for sub in &commands {
        let _ = writeln!(page, ".SS \"{}\"", usage(sub).replace('"', "\\(dq"));
        paragraphs(&mut page, &text(sub.get_long_about().or(sub.get_about())));
        for arg in shown_arguments(sub) {
            let help = text(arg.get_long_help().or(arg.get_help()));
            if help.is_empty() {
                continue;
            }
            let _ = writeln!(page, ".TP\n{}", arg_label(arg));
            page.push_str(&escape(&help));
            page.push('\n');
        }
    }
    out.write_all(page.as_bytes())?;

    // The global options, which every command takes: clap_mangen's own rendering.
    page = String::new();
    man.render_options_section(out)?;

    let after_help = text(cmd.get_after_help());
    let mut blocks = after_help.split("\n\n");
    let exit = blocks.next().unwrap_or_default();
    page.push_str(".SH \"EXIT STATUS\"\n");
    for (status, meaning) in exit_statuses(exit) {
        let _ = writeln!(page, ".TP\n.B {status}\n{}", escape(&meaning));
    }
    page.push_str(".SH NOTES\n");
    paragraphs(&mut page, &blocks.collect::<Vec<_>>().join("\n\n"));
    page.push_str(JSON);
    page.push_str(EXAMPLES);
    // The lock directory this build was configured with (-Dlockdir), as --help shows it.
    page.push_str(&FILES.replace("@LOCKDIR@", &escape(pcibind::DEFAULT_LOCK_DIR)));
    out.write_all(page.as_bytes())
}

/// A command's arguments as `--help` shows them: not hidden, the operands first, then the
/// options in display order (the order of their definitions, which `mut_arg` keeps where the
/// order of `get_arguments` does not).
fn shown_arguments(sub: &Command) -> Vec<&clap::Arg> {
    let mut args: Vec<&clap::Arg> = sub.get_arguments().filter(|a| !a.is_hide_set()).collect();
    args.sort_by_key(|a| (!a.is_positional(), a.get_display_order()));
    args
}

/// `list [--overrides] [--json]`: the command and its arguments, as in the synopsis.
fn usage(sub: &Command) -> String {
    let mut parts = vec![format!("\\fB{}\\fR", escape(sub.get_name()))];
    for arg in shown_arguments(sub) {
        let names: Vec<String> = arg
            .get_value_names()
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_else(|| vec![arg.get_id().as_str().to_uppercase()]);
        let part = if arg.is_positional() {
            // "ADDRESS... [DRIVER]" is already written the way the synopsis wants it.
            let name = names.join(" ");
            let multiple = matches!(arg.get_action(), ArgAction::Append)
                || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
            let name = if multiple && !name.contains("...") {
                format!("{name}...")
            } else {
                name
            };
            if arg.is_required_set() {
                format!("\\fI{}\\fR", escape(&name))
            } else {
                format!("[\\fI{}\\fR]", escape(&name))
            }
        } else {
            let mut flag = arg_flag(arg);
            if arg.get_action().takes_values() {
                let _ = write!(flag, " \\fI{}\\fR", escape(&names.join(" ")));
            }
            format!("[{flag}]")
        };
        parts.push(part);
    }
    parts.join(" ")
}

fn arg_flag(arg: &clap::Arg) -> String {
    match (arg.get_short(), arg.get_long()) {
        (_, Some(long)) => format!("\\fB\\-\\-{}\\fR", escape(long)),
        (Some(short), None) => format!("\\fB\\-{short}\\fR"),
        (None, None) => format!("\\fI{}\\fR", arg.get_id().as_str().to_uppercase()),
    }
}

/// The tag of an argument's entry: `--json`, or the positional's value name.
fn arg_label(arg: &clap::Arg) -> String {
    if arg.is_positional() {
        let names: Vec<String> = arg
            .get_value_names()
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_else(|| vec![arg.get_id().as_str().to_uppercase()]);
        format!("\\fI{}\\fR", escape(&names.join(" ")))
    } else {
        arg_flag(arg)
    }
}

/// The "Exit status:" block of the help: `  N   meaning` lines, continued on lines indented
/// further, as (N, meaning joined into one line).
fn exit_statuses(block: &str) -> Vec<(String, String)> {
    let mut statuses: Vec<(String, String)> = Vec::new();
    for line in block.lines().skip(1) {
        let trimmed = line.trim();
        let status: String = trimmed.chars().take_while(char::is_ascii_digit).collect();
        let indent = line.len() - line.trim_start().len();
        if !status.is_empty() && indent <= 2 {
            statuses.push((status.clone(), trimmed[status.len()..].trim().to_owned()));
        } else if let Some((_, meaning)) = statuses.last_mut() {
            meaning.push(' ');
            meaning.push_str(trimmed);
        }
    }
    statuses
}

fn text(s: Option<&clap::builder::StyledStr>) -> String {
    s.map(|s| s.to_string()).unwrap_or_default()
}

/// Plain text to roff paragraphs (blank lines separate them).
fn paragraphs(page: &mut String, text: &str) {
    for (i, para) in text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        if i > 0 {
            page.push_str(".PP\n");
        }
        page.push_str(&escape(
            &para.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
        page.push('\n');
    }
}

/// Escapes text for roff: backslashes and hyphens (so options copy and paste as typed), a
/// leading `.` or `'` (which would start a request), and `code` spans become bold.
fn escape(s: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '`' => {
                out.push_str(if in_code { "\\fR" } else { "\\fB" });
                in_code = !in_code;
            }
            c => out.push(c),
        }
    }
    if in_code {
        out.push_str("\\fR");
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}
