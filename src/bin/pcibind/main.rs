//! `pcibind`: move PCI devices between kernel drivers by hand, on the libpcibind Rust API.

mod complete;
mod man;
mod owner;
mod persist;
mod status;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use pcibind::{
    class_name, BindOptions, Check, Context, DeviceInfo, DriverName, Error, Logger, Modprobe,
    PciAddress, Priority, SriovOptions, NO_DRIVER_OVERRIDE,
};

use persist::{Persist, Store};

const AFTER_HELP: &str = "\
Exit status:
  0   success
  2   bad arguments (a malformed address or name, an unknown option)
  3   no such PCI device
  4   no such driver: no PCI driver has the name, and no module does (modprobe says so) or
      the module registers no PCI driver
  5   a module could not be loaded (modprobe failed otherwise, e.g. blacklisted or refused by
      the kernel, could not be run, or ran past --modprobe-timeout and was killed)
  6   the kernel did not bind; the device was put back where it was
  7   binding failed and so did putting the device back: check it (the message says where it is)
  8   the device is in use on the host (--force overrides)
  9   the driver does not claim the device (--force overrides)
  10  another process holds the device's lock (still after --lock-timeout)
  11  any other error (I/O, a malformed sysfs tree or saved override file)

bind, unbind and reattach check every argument before they touch any device: a malformed
address or name (2), a device that does not exist (3), a DRIVER that is no PCI driver (4) or
whose module will not load (5) stops the whole command with nothing changed, every bad argument
named (--dry-run loads nothing, so it resolves DRIVER per device). Once they act, each device is
done on its own; the status is that of the worst failure.

driverctl users: set-override ADDR DRIVER = `pcibind bind ADDR DRIVER`;
set-override ADDR none = `pcibind bind ADDR none` (unbound, driver_override `none`, as unbind
leaves it: `none` is never loaded as a module); unset-override ADDR = `pcibind reattach ADDR`;
list-devices = `pcibind list`; list-overrides = `pcibind list --overrides`; the saved
overrides are driverctl's: --persist saves or removes them, `pcibind apply` applies them, in the
same directory and format (/etc/driverctl.d/pci-DDDD:BB:DD.F).

Wherever a device ADDRESS is expected, a network interface name (eth1) may stand for the PCI
device behind it (for virtio-net, the virtio PCI function). Addresses are read first, so
nothing that looks like one is taken for an interface name, and the last argument of bind and
reattach is the DRIVER when a driver or loaded module has that name, even if an interface has
it too; an interface goes away when its device leaves the network driver, so give the device
back by its address.";

/// Move Linux PCI devices between kernel drivers, e.g. from their host driver to vfio-pci or the
/// right VFIO variant driver and back, as a transaction: each device ends on exactly the driver
/// asked for, or it is put back where it was and the error says why.
#[derive(Parser)]
#[command(name = "pcibind", version, after_help = AFTER_HELP, args_override_self = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// The sysfs tree to act on
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys")]
    sysfs_root: PathBuf,
    /// The directory holding modules.alias [default: /lib/modules/$(uname -r), then /usr/lib/...]
    #[arg(long, global = true, value_name = "DIR")]
    modules_dir: Option<PathBuf>,
    /// The module loader, or `none` never to load modules [default: /usr/sbin/modprobe or /sbin/modprobe]
    #[arg(long, global = true, value_name = "PATH")]
    modprobe: Option<PathBuf>,
    /// Where the per-device lock files go
    #[arg(long, global = true, value_name = "DIR", default_value = pcibind::DEFAULT_LOCK_DIR)]
    lock_dir: PathBuf,
    /// How long to wait for a device another process (or thread) holds, then fail with status
    /// 10; 0 fails at once
    #[arg(long, global = true, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    lock_timeout: Duration,
    /// How long modprobe may run before it is killed and the load fails (status 5)
    #[arg(long, global = true, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    modprobe_timeout: Duration,
    /// Where saved overrides are kept (driverctl's directory and format)
    #[arg(long, global = true, value_name = "DIR", default_value = persist::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Where the safety checks read mountinfo, swaps, iomem (and net/route, net/if_inet6 when
    /// not /proc) and each process's open files (tests)
    #[arg(long, global = true, value_name = "DIR", hide = true)]
    proc_root: Option<PathBuf>,
    /// Where the VFIO device nodes and the disks' block nodes are looked for (tests) [default:
    /// /dev]
    #[arg(long, global = true, value_name = "DIR", hide = true)]
    dev_root: Option<PathBuf>,
    /// Log more to stderr (-v: what is done, -vv: everything)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// List every PCI device: address, IDs, class, driver, driver_override, IOMMU group,
    /// whether it is on a VFIO driver, and the VFIO driver it would get
    List {
        /// Only devices whose driver_override is set (driverctl's list-overrides)
        #[arg(long)]
        overrides: bool,
        /// The saved overrides instead (see --persist): each device, the driver saved for it,
        /// the driver it is on now, and whether that is the saved one
        #[arg(long, conflicts_with = "overrides")]
        persisted: bool,
        /// JSON instead of a table: an array of objects (JSON OUTPUT in pcibind(1))
        #[arg(long)]
        json: bool,
    },
    /// Every device grouped by where it is: on a VFIO driver, on a host driver, on no
    /// driver (as dpdk-devbind --status), each with its IDs, class, driver and IOMMU group, and
    /// whether that group is viable (no member on a host driver: it can be given to a guest)
    Status {
        /// JSON instead of text: one object of three arrays (JSON OUTPUT in pcibind(1))
        #[arg(long)]
        json: bool,
    },
    /// Show one device in detail, with its IOMMU group and whether binding would be refused
    Show {
        address: String,
        /// JSON instead of text: one object (JSON OUTPUT in pcibind(1))
        #[arg(long)]
        json: bool,
    },
    /// Resolve a module or driver name (either spelling) to the exact PCI driver name
    Resolve { name: String },
    /// Print the module of the best VFIO driver for a device
    Variant { address: String },
    /// Bind devices to DRIVER (a driver or module name), or with no DRIVER to the best VFIO
    /// driver for each; the driver_override stays set so a reprobe keeps them there
    ///
    /// DRIVER `none` (as in driverctl) leaves the devices unbound with driver_override `none`,
    /// as `unbind` does; it is never loaded as a module. Only the last argument may be a
    /// driver. Every address must be well formed and name an existing device, and DRIVER must
    /// resolve to a PCI driver (its module is loaded if needed; not with --dry-run, which loads
    /// nothing), before any device is touched; otherwise nothing is done. The devices are then
    /// bound in parallel threads (not with --dry-run or --group) and reported in the order
    /// given.
    Bind {
        /// One or more device addresses, then optionally the driver (or `none`)
        #[arg(required = true, value_name = "ADDRESS... [DRIVER]")]
        args: Vec<String>,
        /// Skip the safety checks (device in use, PF with VFs, driver not claiming the device):
        /// all of --allow's
        #[arg(long)]
        force: bool,
        /// Skip only these safety checks (comma-separated): in-use (the device is in use on
        /// the host: a NIC carrying traffic, a mounted disk, the console GPU, a VMM holding it,
        /// mediated devices), unclaimed (DRIVER does not claim the device), sriov (a PF whose
        /// VFs are in the way)
        #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECK,...")]
        allow: Vec<Allow>,
        /// Refuse a DRIVER that is not a VFIO driver (vfio-pci or a variant), before anything
        /// changes
        #[arg(long)]
        require_vfio: bool,
        /// With no DRIVER: the VFIO variant chosen for the device or nothing (fail when its
        /// module cannot be loaded, rather than fall back to vfio-pci)
        #[arg(long)]
        strict_variant: bool,
        /// Change nothing; print the exact plan
        #[arg(long)]
        dry_run: bool,
        /// Move each device's whole IOMMU group (and the functions its members name as device
        /// link consumers, with their groups) to VFIO drivers as one transaction; bridges stay.
        /// Takes no DRIVER.
        #[arg(long)]
        group: bool,
        /// After each successful bind, save the driver the device is now on (`none` when left
        /// unbound) in --config-dir, as driverctl does, so `pcibind apply` puts it there again
        /// at boot. With no DRIVER that is the VFIO driver chosen now.
        #[arg(long, conflicts_with = "dry_run")]
        persist: bool,
        /// After each successful bind, give the device's VFIO nodes, its IOMMU group's node
        /// (/dev/vfio/N) and its VFIO character device (/dev/vfio/devices/vfioX), to USER (and
        /// GROUP; `USER:` is the user's login group; names or numeric ids), as chown does, so a
        /// VMM that does not run as root can open them. Implies --require-vfio. Refused before
        /// anything changes when the group node would also open a device the command does not
        /// bind (another member of the IOMMU group, bridges aside): name it too, or use
        /// --group. `reattach` gives the nodes back to root.
        #[arg(long, value_name = "USER[:GROUP]", value_parser = owner::parse,
              value_hint = clap::ValueHint::Username)]
        owner: Option<owner::Owner>,
    },
    /// Detach devices from their driver and leave them unbound (driver_override set to `none`
    /// so no probe takes them)
    ///
    /// Every address must be well formed and name an existing device before any device is
    /// touched; otherwise nothing is done.
    Unbind {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Change nothing; print the exact plan
        #[arg(long)]
        dry_run: bool,
        /// Skip the safety checks (device in use on the host, PF whose VFs are on VFIO
        /// drivers), as bind --force
        #[arg(long)]
        force: bool,
        /// Skip only these safety checks, as bind --allow
        #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECK,...")]
        allow: Vec<Allow>,
    },
    /// Give devices back to their host driver (clear driver_override, reprobe), or bind them to
    /// DRIVER
    ///
    /// DRIVER `none` leaves the devices unbound with driver_override `none`, as `unbind` does.
    /// Arguments are checked as for `bind`, before any device is touched.
    Reattach {
        /// One or more device addresses, then optionally the driver (or `none`)
        #[arg(required = true, value_name = "ADDRESS... [DRIVER]")]
        args: Vec<String>,
        /// Give every VFIO-bound member of each device's IOMMU group (as `bind --group` works
        /// it out) back to the host as one transaction. Takes no DRIVER.
        #[arg(long)]
        group: bool,
        /// After each successful reattach, remove the device's saved override (driverctl's
        /// unset-override)
        #[arg(long, conflicts_with = "dry_run")]
        persist: bool,
        /// Change nothing and load nothing; print the exact plan
        #[arg(long)]
        dry_run: bool,
        /// Skip the safety checks (device in use on the host, PF whose VFs are on VFIO
        /// drivers, DRIVER not claiming the device), as bind --force
        #[arg(long)]
        force: bool,
        /// Skip only these safety checks, as bind --allow
        #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECK,...")]
        allow: Vec<Allow>,
    },
    /// Roll back interrupted transactions: those of the devices named, or of every device
    /// whose last transaction did not finish (its caller was killed)
    ///
    /// Every pcibind command (and every program using libpcibind) does this for a device
    /// before it touches it; this command does it at once, for an operator or at a manager's
    /// start-up. Prints each device rolled back to where its transaction started. `status`
    /// and `show` list the devices that have one.
    Recover {
        #[arg(value_name = "ADDRESS")]
        addresses: Vec<String>,
    },
    /// Put devices on their saved drivers (see bind --persist): every saved override, or
    /// those of the devices named; what the udev rule and pcibind@.service run at boot and
    /// on hot-plug
    ///
    /// With no ADDRESS, a saved override of a device that is not present is skipped (at boot
    /// only the devices there matter). A named device must exist and have a saved override.
    /// Every named device and every saved file read is checked before any device is touched.
    /// A device already on its saved driver is left alone.
    Apply {
        #[arg(value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Skip the safety checks, as bind --force
        #[arg(long)]
        force: bool,
        /// Skip only these safety checks, as bind --allow
        #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECK,...")]
        allow: Vec<Allow>,
    },
    /// List the SR-IOV virtual functions of a physical function, or with N set its number of
    /// VFs and list the VFs it then has
    ///
    /// Changing the count goes through 0 (the kernel requires it), so it removes the VFs there
    /// are: refused while one is on a VFIO driver, unless --force. More than the PF's
    /// sriov_totalvfs is refused with nothing changed; the current count changes nothing. The
    /// new VFs are kept from host drivers (unbound, driver_override `none`, ready for `pcibind
    /// bind`) unless --autoprobe.
    Sriov {
        #[arg(value_name = "PF")]
        pf: String,
        /// The number of VFs wanted
        #[arg(value_name = "N")]
        numvfs: Option<u32>,
        /// Remove VFs even when one is on a VFIO driver (the kernel then waits until the VM
        /// using it lets go of it)
        #[arg(long, requires = "numvfs")]
        force: bool,
        /// Let host drivers probe the new VFs
        #[arg(long, requires = "numvfs")]
        autoprobe: bool,
    },
    /// Print the man page (roff) to stdout
    #[command(hide = true)]
    Man,
    // --- Shell completions (complete.rs) ---
    /// Print the completion script for SHELL to stdout (meson installs them; for a hand-built
    /// tool, e.g. `pcibind completions bash > /etc/bash_completion.d/pcibind`)
    ///
    /// They complete commands, options and option values, and where a command takes a device or
    /// a driver, the PCI addresses and network interfaces of the host and its PCI drivers and
    /// modules, asked of pcibind as you type (with the --sysfs-root and --modules-dir given).
    Completions {
        #[arg(value_enum)]
        shell: complete::Shell,
    },
    /// The values the completion scripts offer, one a line (see complete.rs)
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(value_enum, required = true)]
        kinds: Vec<complete::Kind>,
    },
}

/// The exit status of an error (documented in AFTER_HELP), and how bad it is among several.
fn status_of(err: &Error) -> u8 {
    match err {
        Error::InvalidArg(_) | Error::InvalidAddress { .. } => 2,
        Error::NoDevice { .. } | Error::Vanished { .. } => 3,
        Error::NoDriver(_) => 4,
        Error::ModuleLoad { .. } => 5,
        Error::Bind { .. } => 6,
        Error::Restore { .. } => 7,
        Error::InUse { .. } | Error::HeldByVmm { .. } => 8,
        Error::NotClaimed { .. } => 9,
        Error::Busy(_) => 10,
        _ => 11,
    }
}

/// What the tool adds to a safety check's refusal: the options that skip that check (the
/// library's messages name none, since managers show them to their users as they are).
fn override_hint(e: &Error) -> &'static str {
    let check = match e {
        Error::InUse { check, .. } | Error::NotClaimed { check, .. } => *check,
        _ => return "",
    };
    match check {
        Check::InUse => " (--allow in-use or --force overrides this check)",
        Check::Sriov => " (--allow sriov or --force overrides this check)",
        Check::Claims => " (--allow unclaimed or --force overrides this check)",
        Check::GroupBridge | Check::RequireVfio => "",
    }
}

/// The safety checks `--allow` skips one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Allow {
    /// The device is in use on the host (network, storage, display, a VMM, mediated devices)
    InUse,
    /// The driver does not claim the device
    Unclaimed,
    /// An SR-IOV PF's VFs are in the way
    Sriov,
}

/// The options of a move from the tool's flags.
fn move_options(force: bool, allow: &[Allow]) -> BindOptions {
    BindOptions {
        force,
        allow_in_use: allow.contains(&Allow::InUse),
        allow_unclaimed: allow.contains(&Allow::Unclaimed),
        allow_sriov: allow.contains(&Allow::Sriov),
        ..BindOptions::default()
    }
}

/// The worse of two statuses.
fn worse(a: u8, b: u8) -> u8 {
    if severity(b) > severity(a) {
        b
    } else {
        a
    }
}

/// Refuses a command before it changed anything: each error on stderr, and the status of the
/// worst.
fn refuse(errors: Vec<Error>) -> u8 {
    let mut status = 0;
    for e in &errors {
        eprintln!("pcibind: {e}{}", override_hint(e));
        status = worse(status, status_of(e));
    }
    eprintln!("pcibind: nothing was changed");
    status
}

fn severity(status: u8) -> u8 {
    // A device left somewhere unknown first, then unexpected errors, then the rest.
    match status {
        7 => 100,
        11 => 90,
        0 => 0,
        s => s,
    }
}

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

/// A number of seconds, fractions allowed (`0.5`).
fn seconds(arg: &str) -> Result<Duration, String> {
    arg.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("'{arg}' is not a number of seconds"))
}

/// Paths given on the command line may be relative; the library takes absolute ones.
// std::path::absolute is Rust 1.79: the tool's floor, above the library's rust-version (README).
#[allow(clippy::incompatible_msrv)]
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What bind and reattach are asked to do with the devices.
/// `--group` with a DRIVER: refused before anything changes.
fn no_driver_with_group() -> u8 {
    eprintln!(
        "pcibind: --group takes no DRIVER (a group moves to its best VFIO drivers, or back to \
         its host drivers); nothing was changed"
    );
    2
}

/// One device's line for a group operation: the members moved, or the plan.
fn group_report(outcome: &pcibind::GroupOutcome, dry_run: bool) -> String {
    let moved: Vec<String> = outcome.moved.iter().map(|a| a.to_string()).collect();
    let list = if moved.is_empty() {
        "nothing to move".to_owned()
    } else {
        moved.join(" ")
    };
    if dry_run {
        format!(
            "plan (nothing changed): would move {list}\n{}",
            outcome.plan.join("\n")
        )
    } else {
        format!("group moved: {list}")
    }
}

enum Target {
    /// No DRIVER: the command's default (the best VFIO driver; the host driver).
    Default,
    /// DRIVER `none`: unbound, with driver_override `none`, as `unbind` leaves them.
    Unbound,
    Driver(DriverName),
}

/// The device an argument names: a PCI address (read first, so nothing that looks like one is
/// taken for an interface), else the PCI device behind the network interface of that name.
fn device_of(ctx: &Context, arg: &str) -> Result<PciAddress, Error> {
    let not_an_address = match PciAddress::parse(arg) {
        Ok(address) => return Ok(address),
        Err(e) => e,
    };
    // No interface name has a ':', so this one was meant as an address.
    if arg.contains(':') {
        return Err(not_an_address);
    }
    ctx.net_interface_device(arg).map_err(|e| match e {
        Error::InvalidArg(why) if !ctx.is_net_interface(arg) => {
            Error::InvalidArg(format!("{not_an_address}, and {why}"))
        }
        e => e,
    })
}

/// Whether `name` is a registered PCI driver or a loaded module, in either spelling: in the
/// last place of `bind`, such a name is the DRIVER even if an interface has it too (taking it
/// for the interface's device would move a device nobody named as such).
fn names_a_driver(ctx: &Context, name: &str) -> bool {
    let root = ctx.sysfs_root();
    [name.replace('_', "-"), name.replace('-', "_")]
        .iter()
        .any(|n| root.join("bus/pci/drivers").join(n).is_dir())
        || root.join("module").join(name.replace('-', "_")).is_dir()
}

/// The device addresses and the target of `ADDRESS... [DRIVER]` (DRIVER only when
/// `driver_allowed`), or one message per bad argument. Only the last argument may be a driver,
/// and only after at least one address; there an existing network interface's name is a
/// device, not a driver, unless a driver or module has that name too.
fn parse_args(
    ctx: &Context,
    args: &[String],
    driver_allowed: bool,
) -> Result<(Vec<PciAddress>, Target), Vec<String>> {
    let mut addresses: Vec<PciAddress> = Vec::new();
    let mut target = Target::Default;
    let mut errors = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let as_driver = driver_allowed
            && i > 0
            && i == args.len() - 1
            && !arg.contains(':')
            && (!ctx.is_net_interface(arg) || names_a_driver(ctx, arg));
        if as_driver {
            match DriverName::new(arg) {
                Ok(_) if arg == NO_DRIVER_OVERRIDE => target = Target::Unbound,
                Ok(name) => target = Target::Driver(name),
                Err(e) => errors.push(e.to_string()),
            }
            continue;
        }
        match device_of(ctx, arg) {
            Ok(address) if addresses.contains(&address) => {
                errors.push(format!("{address} is given twice"));
            }
            Ok(address) => addresses.push(address),
            Err(e) => {
                let driver_like =
                    driver_allowed && !arg.contains(':') && DriverName::new(arg).is_ok();
                let hint = if !driver_like {
                    ""
                } else if args.len() == 1 {
                    "; a driver comes after the device addresses"
                } else {
                    "; only the last argument may be a driver"
                };
                errors.push(format!("{e}{hint}"));
            }
        }
    }
    if errors.is_empty() {
        Ok((addresses, target))
    } else {
        Err(errors)
    }
}

/// Checks that every device exists (and its driver link can be read) before any is touched.
/// On failure, one message per device and the status of the worst.
fn check_devices(ctx: &Context, addresses: &[PciAddress]) -> Result<(), (Vec<String>, u8)> {
    let mut errors = Vec::new();
    let mut status = 0u8;
    for address in addresses {
        if let Err(e) = ctx.current_driver(&address.to_string()) {
            errors.push(format!("{address}: {e}"));
            status = worse(status, status_of(&e));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err((errors, status))
    }
}

/// Everything `bind`, `unbind` and `reattach` check before they act: the arguments' syntax,
/// that the devices exist, that `persist` can save or remove their overrides, and (unless
/// `resolve` is false, as for a dry run, which loads nothing) that DRIVER resolves to a PCI
/// driver, which the target then names exactly; the module load that resolving may need comes
/// last. On failure the messages are printed and the exit status returned.
fn prepare(
    ctx: &Context,
    args: &[String],
    driver_allowed: bool,
    resolve: bool,
    persist: (Persist, &Store),
) -> Result<(Vec<String>, Target), u8> {
    let report = |errors: Vec<String>, status: u8| {
        for e in errors {
            eprintln!("pcibind: {e}");
        }
        eprintln!("pcibind: nothing was changed");
        status
    };
    let (addresses, target) = parse_args(ctx, args, driver_allowed).map_err(|e| report(e, 2))?;
    check_devices(ctx, &addresses).map_err(|(e, status)| report(e, status))?;
    persist.0.check(persist.1, &addresses)?;
    // Resolved (its module loaded) to check it before any device is touched; the library
    // is then given the name as typed, since the claim check looks up the module by it
    // (`8250_pci` is the module of driver `serial`).
    if let Target::Driver(name) = &target {
        if resolve {
            if let Err(e) = ctx.resolve_driver(name.as_str()) {
                return Err(report(vec![e.to_string()], status_of(&e)));
            }
        }
    }
    Ok((addresses.iter().map(ToString::to_string).collect(), target))
}

/// The dry run of DRIVER `none`: what `Context::unbind` would do to the device.
/// A plan as the tool prints it.
fn plan_text(plan: pcibind::Plan) -> String {
    format!("plan (nothing changed):\n{plan}")
}

pub(crate) const UNBOUND: &str = "unbound (driver_override none)";

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), json_str)
}

fn device_json_fields(info: &DeviceInfo) -> String {
    let (vendor, device, class, cname) = match &info.modalias {
        Some(m) => {
            let (b, s, i) = m.class();
            (
                json_str(&format!("{:04x}", m.vendor())),
                json_str(&format!("{:04x}", m.device())),
                json_str(&format!("{b:02x}{s:02x}{i:02x}")),
                json_str(class_name(b, s)),
            )
        }
        None => ("null".into(), "null".into(), "null".into(), "null".into()),
    };
    format!(
        "\"address\": {}, \"vendor\": {vendor}, \"device\": {device}, \"class\": {class}, \
         \"class_name\": {cname}, \"driver\": {}, \"driver_override\": {}, \"iommu_group\": {}, \
         \"vfio_bound\": {}, \"vfio_driver_module\": {}",
        json_str(&info.address.to_string()),
        json_opt(info.driver.as_ref().map(|d| d.as_str())),
        json_opt(info.driver_override.as_deref()),
        info.iommu_group.map_or("null".into(), |g| g.to_string()),
        info.vfio_bound,
        json_opt(info.vfio_module.as_ref().map(|m| m.as_str())),
    )
}

fn list(ctx: &Context, overrides: bool, json: bool) -> Result<(), Error> {
    let mut infos = Vec::new();
    for address in ctx.devices()? {
        let info = ctx.device_info(&address.to_string())?;
        if !overrides || info.driver_override.is_some() {
            infos.push(info);
        }
    }
    let mut out = io::stdout().lock();
    if json {
        let items: Vec<String> = infos
            .iter()
            .map(|i| format!("  {{{}}}", device_json_fields(i)))
            .collect();
        print_json_array(&mut out, &items);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|i| {
            let (ids, class) = ids_and_class(i);
            vec![
                i.address.to_string(),
                ids,
                class,
                i.driver.as_ref().map_or("-".into(), |d| d.to_string()),
                i.driver_override.clone().unwrap_or_else(|| "-".into()),
                i.iommu_group.map_or("-".into(), |g| g.to_string()),
                if i.vfio_bound { "yes" } else { "no" }.into(),
                i.vfio_module.as_ref().map_or("-".into(), |m| m.to_string()),
            ]
        })
        .collect();
    let header = [
        "ADDRESS",
        "ID",
        "CLASS",
        "DRIVER",
        "OVERRIDE",
        "GROUP",
        "VFIO",
        "VFIO DRIVER",
    ];
    print_table(&mut out, &header, &rows);
    Ok(())
}

/// A JSON array of already indented items, one a line (`[]` when there are none).
fn print_json_array(out: &mut impl Write, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "[]");
    } else {
        let _ = writeln!(out, "[\n{}\n]", items.join(",\n"));
    }
}

/// A device's `vendor:device` IDs and class name, `?` without a usable modalias.
fn ids_and_class(info: &DeviceInfo) -> (String, String) {
    match &info.modalias {
        Some(m) => {
            let (b, s, _) = m.class();
            (
                format!("{:04x}:{:04x}", m.vendor(), m.device()),
                class_name(b, s).to_owned(),
            )
        }
        None => ("?".into(), "?".into()),
    }
}

/// Rows under a header, each column as wide as its widest cell.
fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// What `show` says of a device's transaction record: an interrupted transaction (rolled back
/// by the next command that touches it, or by `pcibind recover`), one running now, or a lock
/// directory that cannot be read; `None` when there is no record.
fn interrupted_line(ctx: &Context, address: &pcibind::PciAddress) -> Option<String> {
    match ctx.interrupted() {
        Err(e) => Some(format!("unknown: {e}")),
        Ok(found) => found.into_iter().find(|i| i.address == *address).map(|i| {
            if i.running {
                format!("running now: {}", i.description)
            } else {
                format!(
                    "interrupted: {} (`pcibind recover` rolls it back)",
                    i.description
                )
            }
        }),
    }
}

fn show(ctx: &Context, address: &str, json: bool) -> Result<(), Error> {
    let info = ctx.device_info(address)?;
    let a = info.address.to_string();
    let members = ctx.iommu_group(&a).ok();
    let viability = members.as_ref().map(|m| pcibind::group::viability(m));
    let in_use = ctx.in_use(&a)?;
    let interrupted = interrupted_line(ctx, &info.address);
    // What a VMM opens (SPEC 3.9): only a device on a VFIO driver has any.
    let nodes: Vec<String> = if info.vfio_bound {
        ctx.vfio_device_nodes(&a)?
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let mut out = io::stdout().lock();
    if json {
        let members_json = members.as_ref().map_or("null".into(), |ms| {
            let items: Vec<String> = ms
                .iter()
                .map(|m| {
                    format!(
                        "{{\"address\": {}, \"driver\": {}, \"class\": {}}}",
                        json_str(&m.address.to_string()),
                        json_opt(m.driver.as_ref().map(|d| d.as_str())),
                        json_str(&m.class.to_string())
                    )
                })
                .collect();
            format!("[{}]", items.join(", "))
        });
        let _ = writeln!(
            out,
            "{{{}, \"modalias\": {}, \"iommu_group_members\": {members_json}, \
             \"iommu_group_viable\": {}, \"in_use\": {}, \"in_use_kinds\": [{}], \
             \"vfio_device_nodes\": [{}], \
             \"interrupted_transaction\": {}}}",
            device_json_fields(&info),
            json_opt(info.modalias.as_ref().map(|m| m.as_str())),
            viability
                .as_ref()
                .map_or("null".into(), |v| v.is_none().to_string()),
            json_opt(in_use.as_ref().map(|u| u.reason.as_str())),
            in_use
                .as_ref()
                .map(|u| u.kinds.names())
                .unwrap_or_default()
                .iter()
                .map(|k| json_str(k))
                .collect::<Vec<_>>()
                .join(", "),
            nodes
                .iter()
                .map(|n| json_str(n))
                .collect::<Vec<_>>()
                .join(", "),
            json_opt(interrupted.as_deref()),
        );
        return Ok(());
    }
    let opt = |s: Option<String>, none: &str| s.unwrap_or_else(|| none.to_owned());
    let _ = writeln!(out, "device:          {a}");
    if let Some(m) = &info.modalias {
        let (b, s, i) = m.class();
        let _ = writeln!(
            out,
            "id:              {:04x}:{:04x}",
            m.vendor(),
            m.device()
        );
        let _ = writeln!(
            out,
            "class:           {b:02x}{s:02x}{i:02x} ({})",
            class_name(b, s)
        );
        let _ = writeln!(out, "modalias:        {m}");
    }
    let _ = writeln!(
        out,
        "driver:          {}",
        opt(info.driver.as_ref().map(|d| d.to_string()), "(none)")
    );
    let _ = writeln!(
        out,
        "driver_override: {}",
        opt(info.driver_override.clone(), "(unset)")
    );
    if let Some(line) = &interrupted {
        let _ = writeln!(out, "transaction:     {line}");
    }
    let _ = writeln!(
        out,
        "vfio-bound:      {}",
        if info.vfio_bound { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "vfio driver:     {}",
        opt(
            info.vfio_module.as_ref().map(|m| m.to_string()),
            "(unknown)"
        )
    );
    match (&members, info.iommu_group) {
        (Some(ms), Some(g)) => {
            let _ = writeln!(out, "iommu group:     {g}");
            for m in ms {
                let _ = writeln!(
                    out,
                    "  {}  {:<16} {}",
                    m.address,
                    m.driver
                        .as_ref()
                        .map_or("(no driver)".into(), |d| d.to_string()),
                    m.class
                );
            }
            let _ = writeln!(
                out,
                "group viable:    {}",
                match viability.flatten() {
                    None => "yes".to_owned(),
                    Some(why) => format!("no ({why})"),
                }
            );
        }
        _ => {
            let _ = writeln!(out, "iommu group:     (none: is the IOMMU enabled?)");
        }
    }
    let _ = writeln!(
        out,
        "in use on host:  {}",
        in_use.map_or("no".to_owned(), |u| format!(
            "yes ({}): {} (bind refuses it without --allow in-use or --force)",
            u.kinds.names().join(", "),
            u.reason
        ))
    );
    if info.vfio_bound {
        let _ = writeln!(
            out,
            "device nodes:    {}",
            if nodes.is_empty() {
                "(none found)".to_owned()
            } else {
                nodes.join(" ")
            }
        );
    }
    Ok(())
}

/// Counts of one command's outcomes and the status of the worst failure.
#[derive(Default)]
struct Tally {
    done: usize,
    failed: usize,
    status: u8,
}

impl Tally {
    /// Reports one device's outcome: a line on stdout, or the error on stderr.
    fn report(&mut self, address: &str, outcome: Result<String, Error>) {
        match outcome {
            Ok(what) => {
                self.done += 1;
                println!("{address}: {what}");
            }
            Err(e) => {
                self.failed += 1;
                eprintln!("pcibind: {address}: {e}{}", override_hint(&e));
                self.status = worse(self.status, status_of(&e));
            }
        }
    }

    /// The summary line (for more than one device) and the status.
    fn finish(self, total: usize) -> u8 {
        if total > 1 {
            println!(
                "{total} devices: {} done, {} failed",
                self.done, self.failed
            );
        }
        self.status
    }
}

/// Runs `op` on each address, reporting one line per device and a summary; the status of the
/// worst failure.
fn each(addresses: &[String], verb: &str, op: impl Fn(&str) -> Result<String, Error>) -> u8 {
    let tty = io::stderr().is_terminal();
    let mut tally = Tally::default();
    for address in addresses {
        if tty && addresses.len() > 1 {
            eprint!("{verb} {address} ...\r");
        }
        tally.report(address, op(address));
    }
    tally.finish(addresses.len())
}

/// Most threads `each_in_parallel` runs.
const MAX_WORKERS: usize = 16;

/// `each`, with the devices done in parallel threads (a context is thread-safe and the kernel
/// locks per device); the reports come in the order of the addresses, each as soon as it and
/// those before it are done.
fn each_in_parallel(
    addresses: &[String],
    verb: &str,
    op: impl Fn(&str) -> Result<String, Error> + Sync,
) -> u8 {
    if addresses.len() < 2 {
        return each(addresses, verb, op);
    }
    let workers = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(2, MAX_WORKERS)
        .min(addresses.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, op) = (&next, &op);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(address) = addresses.get(i) else {
                    break;
                };
                if tx.send((i, op(address))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = std::collections::BTreeMap::new();
        let mut reported = 0;
        for (i, outcome) in rx {
            pending.insert(i, outcome);
            while let Some(outcome) = pending.remove(&reported) {
                tally.report(&addresses[reported], outcome);
                reported += 1;
            }
        }
    });
    tally.finish(addresses.len())
}

/// `pcibind recover`: every named device (each must exist), or every device with a record.
fn recover(ctx: &Context, addresses: &[String]) -> Result<u8, Error> {
    let mut recovered = Vec::new();
    if addresses.is_empty() {
        recovered = ctx.recover(None)?;
    } else {
        let devices = addresses
            .iter()
            .map(|a| device_of(ctx, a).map(|d| d.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        for device in devices {
            recovered.extend(ctx.recover(Some(&device))?);
        }
    }
    if recovered.is_empty() {
        println!("no interrupted transaction to roll back");
    }
    for address in recovered {
        println!("{address}: rolled back to where its interrupted transaction started");
    }
    Ok(0)
}

fn run(cli: Cli) -> Result<u8, Error> {
    if let Command::Man = cli.command {
        let mut out = Vec::new();
        man::render(Cli::command(), &mut out)
            .map_err(|e| Error::Internal(format!("rendering the man page: {e}")))?;
        let _ = io::stdout().write_all(&out);
        return Ok(0);
    }
    // --- Shell completions (complete.rs): no context, nothing logged ---
    match &cli.command {
        Command::Completions { shell } => {
            let text = complete::script(*shell, &Cli::command()).map_err(Error::Internal)?;
            let _ = io::stdout().write_all(text.as_bytes());
            return Ok(0);
        }
        Command::Complete { kinds } => {
            let g = &cli.global;
            let values = complete::values(&g.sysfs_root, g.modules_dir.as_deref(), kinds);
            for value in values {
                println!("{value}");
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
        } => list(&ctx, overrides, json).map(|_| 0)?,
        Command::Status { json } => status::status(&ctx, json).map(|_| 0)?,
        Command::Show { address, json } => {
            show(&ctx, &device_of(&ctx, &address)?.to_string(), json).map(|_| 0)?
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
        Command::Apply {
            addresses,
            force,
            allow,
        } => persist::apply(&ctx, &store, &addresses, move_options(force, &allow)),
        Command::Bind {
            args,
            force,
            allow,
            require_vfio,
            strict_variant,
            dry_run,
            group,
            persist,
            owner,
        } => {
            let persist = Persist::when(persist, Persist::Save);
            let (addresses, target) = match prepare(&ctx, &args, true, !dry_run, (persist, &store))
            {
                Ok(prepared) => prepared,
                Err(status) => return Ok(status),
            };
            // --- bind --owner (owner.rs): checked before anything changes ---
            if let Some(owner) = &owner {
                let driver = match &target {
                    Target::Driver(d) => Some(d.as_str()),
                    _ => None,
                };
                let unbound = matches!(target, Target::Unbound);
                if let Err(status) = owner.check(&ctx, &addresses, unbound, driver, group) {
                    return Ok(status);
                }
            }
            // Gives the nodes of a device bound (owner.rs), or the plan's note of it.
            let give = |a: &str, done: Result<String, Error>| match &owner {
                Some(owner) => done.and_then(|line| owner.give(&ctx, a, line)),
                None => done,
            };
            let note = |plan: String| match &owner {
                Some(owner) => format!("{plan}\n{}", owner.plan_note()),
                None => plan,
            };
            let options = BindOptions {
                require_vfio: require_vfio || owner.is_some(),
                strict_variant,
                ..move_options(force, &allow)
            };
            if group {
                if !matches!(target, Target::Default) {
                    return Ok(no_driver_with_group());
                }
                return Ok(each(&addresses, "binding the group of", |a| {
                    let o = ctx.bind_group(a, options, dry_run)?;
                    let done =
                        persist.after_group(&ctx, &store, &o.members, group_report(&o, dry_run));
                    match (&owner, dry_run) {
                        (Some(_), true) => done.map(note),
                        (Some(_), false) => o.members.iter().try_fold(done?, |line, m| {
                            let m = m.to_string();
                            match ctx.is_vfio_bound(&m)? {
                                true => give(&m, Ok(line)),
                                false => Ok(line), // a bridge, which stays
                            }
                        }),
                        (None, _) => done,
                    }
                }));
            }
            let driver = match &target {
                Target::Driver(d) => Some(d.as_str()),
                _ => None,
            };
            match (&target, dry_run) {
                (Target::Unbound, true) => each(&addresses, "planning", |a| {
                    ctx.unbind_plan(a, options).map(plan_text)
                }),
                (Target::Unbound, false) => each(&addresses, "unbinding", |a| {
                    let done = ctx.unbind(a, options).map(|_| (None, UNBOUND.to_owned()));
                    persist.after_one(&store, a, done)
                }),
                (_, true) => each(&addresses, "planning", |a| {
                    ctx.bind_plan(a, driver, options)
                        .map(|plan| note(format!("plan (nothing changed):\n{plan}")))
                }),
                (_, false) => each_in_parallel(&addresses, "binding", |a| {
                    let done = ctx
                        .bind(a, driver, options)
                        .map(|d| (Some(d.clone()), format!("bound to {d}")));
                    give(a, persist.after_one(&store, a, done))
                }),
            }
        }
        Command::Unbind {
            addresses,
            dry_run,
            force,
            allow,
        } => {
            let (addresses, _) =
                match prepare(&ctx, &addresses, false, false, (Persist::No, &store)) {
                    Ok(prepared) => prepared,
                    Err(status) => return Ok(status),
                };
            let options = move_options(force, &allow);
            if dry_run {
                return Ok(each(&addresses, "planning", |a| {
                    ctx.unbind_plan(a, options).map(plan_text)
                }));
            }
            each(&addresses, "unbinding", |a| {
                ctx.unbind(a, options).map(|_| UNBOUND.to_owned())
            })
        }
        Command::Recover { addresses } => recover(&ctx, &addresses)?,
        Command::Reattach {
            args,
            group,
            persist,
            dry_run,
            force,
            allow,
        } => {
            let options = move_options(force, &allow);
            let persist = Persist::when(persist, Persist::Remove);
            let (addresses, target) = match prepare(&ctx, &args, true, !dry_run, (persist, &store))
            {
                Ok(prepared) => prepared,
                Err(status) => return Ok(status),
            };
            if group {
                if !matches!(target, Target::Default) {
                    return Ok(no_driver_with_group());
                }
                return Ok(each(&addresses, "reattaching the group of", |a| {
                    let nodes = owner::group_nodes_of(&ctx, a, options, dry_run);
                    let o = ctx.reattach_group(a, options, dry_run)?;
                    persist
                        .after_group(&ctx, &store, &o.members, group_report(&o, dry_run))
                        .and_then(|line| owner::give_back(&nodes, line))
                }));
            }
            if dry_run {
                let driver = match &target {
                    Target::Driver(d) => Some(d.as_str()),
                    _ => None,
                };
                return Ok(each(&addresses, "planning", |a| match target {
                    Target::Unbound => ctx.unbind_plan(a, options).map(plan_text),
                    _ => ctx.reattach_plan(a, driver, options).map(plan_text),
                }));
            }
            // The nodes reattach gives back to root (owner.rs), as they are before the move.
            match target {
                Target::Unbound => each(&addresses, "unbinding", |a| {
                    let nodes = owner::nodes_of(&ctx, a);
                    let done = ctx.unbind(a, options).map(|_| (None, UNBOUND.to_owned()));
                    persist
                        .after_one(&store, a, done)
                        .and_then(|line| owner::give_back(&nodes, line))
                }),
                target => {
                    let driver = match &target {
                        Target::Driver(d) => Some(d.as_str()),
                        _ => None,
                    };
                    each(&addresses, "reattaching", |a| {
                        let nodes = owner::nodes_of(&ctx, a);
                        let done = ctx.reattach(a, driver, options).map(|d| {
                            let line = match &d {
                                Some(d) => format!("bound to {d}"),
                                None => "left unbound: no host driver matches it".to_owned(),
                            };
                            (d, line)
                        });
                        persist
                            .after_one(&store, a, done)
                            .and_then(|line| owner::give_back(&nodes, line))
                    })
                }
            }
        }
        Command::Sriov {
            pf,
            numvfs,
            force,
            autoprobe,
        } => {
            let pf = device_of(&ctx, &pf)?.to_string();
            let vfs = match numvfs {
                None => ctx.sriov_vfs(&pf),
                Some(n) => ctx.sriov_set_numvfs(&pf, n, SriovOptions { force, autoprobe }),
            };
            match vfs {
                Ok(vfs) => {
                    for vf in vfs {
                        println!("{vf}");
                    }
                    0
                }
                Err(e) => {
                    // `sriov` has --force only.
                    let hint = if override_hint(&e).is_empty() {
                        ""
                    } else {
                        " (--force overrides this check)"
                    };
                    eprintln!("pcibind: {e}{hint}");
                    status_of(&e)
                }
            }
        }
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
