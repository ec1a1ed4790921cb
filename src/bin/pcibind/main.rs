//! `pcibind`: move PCI devices between kernel drivers by hand, on the libpcibind Rust API.
//!
//! `args.rs` defines the command line, `main.rs` sets up the context and hands each command
//! to its file (`list`, `show`, `status`, `bind` for bind/unbind/reattach, `recover`, `sriov`,
//! `persist` for apply and the saved overrides); `operands.rs` parses `ADDRESS... [DRIVER]`,
//! `runner.rs` runs an operation on each device, `output.rs` and `exit.rs` say what happened;
//! `complete/` writes the shell completions, `owner.rs` gives VFIO nodes to `bind --owner`.

mod apply;
mod args;
mod bind;
mod complete;
mod exit;
mod list;
mod man;
mod operands;
mod output;
mod owner;
mod persist;
mod recover;
mod runner;
mod show;
mod sriov;
mod status;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use pcibind::{Context, Error, Logger, Modprobe, Priority};

use args::{Cli, Command, Global};
use exit::{override_hint, status_of};
use operands::device_of;
use persist::Store;

fn context(g: &Global) -> Result<Context, Error> {
    let mut ctx = Context::new(&g.sysfs_root)?;
    ctx.set_modules_dir(g.modules_dir.clone())?;
    match &g.modprobe {
        Some(p) if p.as_os_str() == "none" => ctx.set_modprobe(Modprobe::Disabled)?,
        Some(p) => ctx.set_modprobe(Modprobe::Program(absolute(p)))?,
        None => {}
    }
    ctx.set_lock_dir(Some(absolute(&g.lock_dir)))?;
    ctx.set_lock_timeout(g.lock_timeout);
    ctx.set_modprobe_timeout(g.modprobe_timeout)?;
    if let Some(p) = &g.dev_root {
        ctx.set_dev_root(Some(absolute(p)))?;
    }
    if let Some(p) = &g.proc_root {
        ctx.set_proc_root(Some(absolute(p)))?;
    }
    let max = match g.verbose {
        0 => Priority::Warning,
        1 => Priority::Info,
        _ => Priority::Debug,
    };
    ctx.set_logger(Logger::new(
        Arc::new(|priority: Priority, message: &str| {
            let tag = if priority <= Priority::Warning {
                "warning: "
            } else {
                ""
            };
            eprintln!("pcibind: {tag}{message}");
        }),
        max as i32,
    ));
    Ok(ctx)
}

/// Paths given on the command line may be relative; the library takes absolute ones.
// std::path::absolute is Rust 1.79: the tool's floor, above the library's rust-version (README).
#[allow(clippy::incompatible_msrv)]
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run(cli: Cli) -> Result<u8, Error> {
    if let Command::Man = cli.command {
        let mut out = Vec::new();
        man::render(Cli::command(), &mut out)
            .map_err(|e| Error::Internal(format!("rendering the man page: {e}")))?;
        let _ = io::stdout().write_all(&out);
        return Ok(0);
    }
    // --- Shell completions (complete/): no context of the global options, nothing logged ---
    match &cli.command {
        Command::Completions { shell } => {
            let text = complete::script(*shell, &Cli::command()).map_err(Error::Internal)?;
            let _ = io::stdout().write_all(text.as_bytes());
            return Ok(0);
        }
        Command::Complete { kinds } => {
            let values = complete::values(&cli.global, kinds);
            let mut out = io::stdout().lock();
            for value in values {
                let _ = writeln!(out, "{value}");
            }
            return Ok(0);
        }
        _ => {}
    }
    let ctx = context(&cli.global)?;
    let store = Store::new(absolute(&cli.global.config_dir));
    Ok(match cli.command {
        Command::List {
            persisted: true,
            json,
            ..
        } => persist::list(&ctx, &store, json)?,
        Command::List {
            overrides, json, ..
        } => list::list(&ctx, overrides, json).map(|_| 0)?,
        Command::Status { json } => status::status(&ctx, json).map(|_| 0)?,
        Command::Show { address, json } => {
            show::show(&ctx, &device_of(&ctx, &address)?.to_string(), json).map(|_| 0)?
        }
        Command::Resolve { name } => {
            println!("{}", ctx.resolve_driver(&name)?);
            0
        }
        Command::Variant { address } => {
            let address = device_of(&ctx, &address)?.to_string();
            println!("{}", ctx.find_vfio_variant(&address)?);
            0
        }
        Command::Apply(a) => apply::apply(&ctx, &store, a),
        Command::Bind(a) => bind::bind(&ctx, &store, a)?,
        Command::Unbind(a) => bind::unbind(&ctx, &store, a)?,
        Command::Recover { addresses, json } => recover::recover(&ctx, &addresses, json)?,
        Command::Reattach(a) => bind::reattach(&ctx, &store, a)?,
        Command::Sriov(a) => sriov::sriov(&ctx, a)?,
        Command::Man | Command::Completions { .. } | Command::Complete { .. } => unreachable!(),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("pcibind: {e}{}", override_hint(&e));
            ExitCode::from(status_of(&e))
        }
    }
}
