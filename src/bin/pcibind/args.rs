//! The command line's definitions (clap) and nothing else: what the man page
//! (`man/`) and the shell completions are generated from. Parsing the positional operands
//! (`ADDRESS... [DRIVER]`) is `operands.rs`; what each command does, its own file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::{complete, owner, persist};

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
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args)]
pub(crate) struct Global {
    /// The sysfs tree to act on
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys")]
    pub(crate) sysfs_root: PathBuf,
    /// The directory holding modules.alias [default: /lib/modules/$(uname -r), then /usr/lib/...]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) modules_dir: Option<PathBuf>,
    /// The module loader, or `none` never to load modules [default: /usr/sbin/modprobe or /sbin/modprobe]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) modprobe: Option<PathBuf>,
    /// Where the per-device lock files go
    #[arg(long, global = true, value_name = "DIR", default_value = pcibind::DEFAULT_LOCK_DIR)]
    pub(crate) lock_dir: PathBuf,
    /// How long to wait for a device another process (or thread) holds, then fail with status
    /// 10; 0 fails at once
    #[arg(long, global = true, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub(crate) lock_timeout: Duration,
    /// How long modprobe may run before it is killed and the load fails (status 5)
    #[arg(long, global = true, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub(crate) modprobe_timeout: Duration,
    /// Where saved overrides are kept (driverctl's directory and format)
    #[arg(long, global = true, value_name = "DIR", default_value = persist::DEFAULT_CONFIG_DIR)]
    pub(crate) config_dir: PathBuf,
    /// Where the safety checks read mountinfo, swaps, iomem (and net/route, net/if_inet6 when
    /// not /proc) and each process's open files (tests)
    #[arg(long, global = true, value_name = "DIR", hide = true)]
    pub(crate) proc_root: Option<PathBuf>,
    /// Where the VFIO device nodes and the disks' block nodes are looked for (tests) [default:
    /// /dev]
    #[arg(long, global = true, value_name = "DIR", hide = true)]
    pub(crate) dev_root: Option<PathBuf>,
    /// Log more to stderr (-v: what is done, -vv: everything)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    #[command(
        mut_arg("force", |a| a.help(
            "Skip the safety checks (device in use, PF with VFs, driver not claiming the \
             device): all of --allow's"
        )),
        mut_arg("allow", |a| a.help(
            "Skip only these safety checks (comma-separated): in-use (the device is in use on \
             the host: a NIC carrying traffic, a mounted disk, the console GPU, a VMM holding \
             it, mediated devices), unclaimed (DRIVER does not claim the device), sriov (a PF \
             whose VFs are in the way)"
        ))
    )]
    Bind(BindArgs),
    /// Detach devices from their driver and leave them unbound (driver_override set to `none`
    /// so no probe takes them)
    ///
    /// Every address must be well formed and name an existing device before any device is
    /// touched; otherwise nothing is done.
    #[command(mut_arg("force", |a| a.help(
        "Skip the safety checks (device in use on the host, PF whose VFs are on VFIO drivers), \
         as bind --force"
    )))]
    Unbind(UnbindArgs),
    /// Give devices back to their host driver (clear driver_override, reprobe), or bind them to
    /// DRIVER
    ///
    /// DRIVER `none` leaves the devices unbound with driver_override `none`, as `unbind` does.
    /// Arguments are checked as for `bind`, before any device is touched.
    #[command(mut_arg("force", |a| a.help(
        "Skip the safety checks (device in use on the host, PF whose VFs are on VFIO drivers, \
         DRIVER not claiming the device), as bind --force"
    )))]
    Reattach(ReattachArgs),
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
        /// Print the results as JSON: an array of one object per device (JSON RESULTS in
        /// pcibind(1)); messages still go to stderr, and the exit status is the same
        #[arg(long)]
        json: bool,
    },
    /// Put devices on their saved drivers (see bind --persist): every saved override, or
    /// those of the devices named; what the udev rule and pcibind@.service run at boot and
    /// on hot-plug
    ///
    /// With no ADDRESS, a saved override of a device that is not present is skipped (at boot
    /// only the devices there matter). A named device must exist and have a saved override.
    /// Every named device and every saved file read is checked before any device is touched.
    /// A device already on its saved driver is left alone.
    Apply(ApplyArgs),
    /// List the SR-IOV virtual functions of a physical function, or with N set its number of
    /// VFs and list the VFs it then has
    ///
    /// Changing the count goes through 0 (the kernel requires it), so it removes the VFs there
    /// are: refused while one is on a VFIO driver, unless --force. More than the PF's
    /// sriov_totalvfs is refused with nothing changed; the current count changes nothing. The
    /// new VFs are kept from host drivers (unbound, driver_override `none`, ready for `pcibind
    /// bind`) unless --autoprobe.
    Sriov(SriovArgs),
    /// Print the man page (roff) to stdout
    #[command(hide = true)]
    Man,
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
    /// The values the completion scripts offer, one a line (see complete/)
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(value_enum, required = true)]
        kinds: Vec<complete::Kind>,
    },
}

// `bind`'s arguments; its help is the doc comment of `Command::Bind`.
#[derive(Args)]
pub(crate) struct BindArgs {
    /// One or more device addresses, then optionally the driver (or `none`)
    #[arg(required = true, value_name = "ADDRESS... [DRIVER]")]
    pub(crate) args: Vec<String>,
    #[command(flatten)]
    pub(crate) checks: Checks,
    /// Refuse a DRIVER that is not a VFIO driver (vfio-pci or a variant), before anything
    /// changes
    #[arg(long)]
    pub(crate) require_vfio: bool,
    /// With no DRIVER: the VFIO variant chosen for the device or nothing (fail when its
    /// module cannot be loaded, rather than fall back to vfio-pci)
    #[arg(long)]
    pub(crate) strict_variant: bool,
    /// Change nothing; print the exact plan
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Move each device's whole IOMMU group (and the functions its members name as device
    /// link consumers, with their groups) to VFIO drivers as one transaction; bridges stay.
    /// Takes no DRIVER.
    #[arg(long)]
    pub(crate) group: bool,
    /// After each successful bind, save the driver the device is now on (`none` when left
    /// unbound) in --config-dir, as driverctl does, so `pcibind apply` puts it there again
    /// at boot. With no DRIVER that is the VFIO driver chosen now.
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) persist: bool,
    /// After each successful bind, give the device's VFIO nodes, its IOMMU group's node
    /// (/dev/vfio/N) and its VFIO character device (/dev/vfio/devices/vfioX), to USER (and
    /// GROUP; `USER:` is the user's login group; names or numeric ids), as chown does, so a
    /// VMM that does not run as root can open them. Implies --require-vfio. Refused before
    /// anything changes when the group node would also open a device the command does not
    /// bind (another member of the IOMMU group, bridges aside): name it too, or use
    /// --group. `reattach` gives the nodes back to root.
    #[arg(long, value_name = "USER[:GROUP]", value_parser = owner::parse,
          value_hint = clap::ValueHint::Username)]
    pub(crate) owner: Option<owner::Owner>,
    /// Print the results as JSON: an array of one object per device (JSON RESULTS in
    /// pcibind(1)); messages still go to stderr, and the exit status is the same
    #[arg(long)]
    pub(crate) json: bool,
}

// `unbind`'s arguments; its help is the doc comment of `Command::Unbind`.
#[derive(Args)]
pub(crate) struct UnbindArgs {
    #[arg(required = true, value_name = "ADDRESS")]
    pub(crate) addresses: Vec<String>,
    /// Change nothing; print the exact plan
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) checks: Checks,
    /// Print the results as JSON: an array of one object per device (JSON RESULTS in
    /// pcibind(1)); messages still go to stderr, and the exit status is the same
    #[arg(long)]
    pub(crate) json: bool,
}

// `reattach`'s arguments; its help is the doc comment of `Command::Reattach`.
#[derive(Args)]
pub(crate) struct ReattachArgs {
    /// One or more device addresses, then optionally the driver (or `none`)
    #[arg(required = true, value_name = "ADDRESS... [DRIVER]")]
    pub(crate) args: Vec<String>,
    /// Give every VFIO-bound member of each device's IOMMU group (as `bind --group` works
    /// it out) back to the host as one transaction. Takes no DRIVER.
    #[arg(long)]
    pub(crate) group: bool,
    /// After each successful reattach, remove the device's saved override (driverctl's
    /// unset-override)
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) persist: bool,
    /// Change nothing and load nothing; print the exact plan
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) checks: Checks,
    /// Print the results as JSON: an array of one object per device (JSON RESULTS in
    /// pcibind(1)); messages still go to stderr, and the exit status is the same
    #[arg(long)]
    pub(crate) json: bool,
}

// `apply`'s arguments; its help is the doc comment of `Command::Apply`.
#[derive(Args)]
pub(crate) struct ApplyArgs {
    #[arg(value_name = "ADDRESS")]
    pub(crate) addresses: Vec<String>,
    #[command(flatten)]
    pub(crate) checks: Checks,
    /// Only write each saved driver into the driver_override of its device, when no driver
    /// is bound to it: no module load, no probe (pcibind-early.service runs this at boot,
    /// before udev's coldplug; a malformed file is named and skipped)
    #[arg(long, conflicts_with_all = ["addresses", "force", "allow"])]
    pub(crate) overrides_only: bool,
    /// Print the results as JSON: an array of one object per device (JSON RESULTS in
    /// pcibind(1)); messages still go to stderr, and the exit status is the same
    #[arg(long)]
    pub(crate) json: bool,
}

// `sriov`'s arguments; its help is the doc comment of `Command::Sriov`.
#[derive(Args)]
pub(crate) struct SriovArgs {
    #[arg(value_name = "PF")]
    pub(crate) pf: String,
    /// The number of VFs wanted
    #[arg(value_name = "N")]
    pub(crate) numvfs: Option<u32>,
    /// Remove VFs even when one is on a VFIO driver (the kernel then waits until the VM
    /// using it lets go of it)
    #[arg(long, requires = "numvfs")]
    pub(crate) force: bool,
    /// Let host drivers probe the new VFs
    #[arg(long, requires = "numvfs")]
    pub(crate) autoprobe: bool,
    /// Change nothing; print the exact plan
    #[arg(long, requires = "numvfs")]
    pub(crate) dry_run: bool,
    /// Print the results as JSON: an array of one object per device (JSON RESULTS in
    /// pcibind(1)); messages still go to stderr, and the exit status is the same
    #[arg(long)]
    pub(crate) json: bool,
}

/// The safety checks a move skips, shared by bind, unbind, reattach and apply (their
/// `BindOptions`: `Checks::options`). The help below is apply's; bind, unbind and reattach
/// word `--force` (and bind `--allow`) for the checks they make, with `mut_arg` on their
/// `Command` variant.
#[derive(Args)]
pub(crate) struct Checks {
    /// Skip the safety checks, as bind --force
    #[arg(long)]
    pub(crate) force: bool,
    /// Skip only these safety checks, as bind --allow
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECK,...")]
    pub(crate) allow: Vec<Allow>,
}

/// The safety checks `--allow` skips one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Allow {
    /// The device is in use on the host (network, storage, display, a VMM, mediated devices)
    InUse,
    /// The driver does not claim the device
    Unclaimed,
    /// An SR-IOV PF's VFs are in the way
    Sriov,
}

/// A number of seconds, fractions allowed (`0.5`).
fn seconds(arg: &str) -> Result<Duration, String> {
    arg.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("'{arg}' is not a number of seconds"))
}
