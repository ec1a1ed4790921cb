//! The positional operands of `bind`, `unbind` and `reattach` (`ADDRESS... [DRIVER]`): which
//! arguments are devices (addresses or interface names) and which the driver, and everything
//! checked about them before any device is touched.

use pcibind::{Context, DriverName, Error, PciAddress, NO_DRIVER_OVERRIDE};

use crate::exit::status_of;
use crate::persist::{Persist, Store};
use crate::runner::{refuse, Format, Refusal};

/// What bind and reattach are asked to do with the devices.
pub(crate) enum Target {
    /// No DRIVER: the command's default (the best VFIO driver; the host driver).
    Default,
    /// DRIVER `none`: unbound, with driver_override `none`, as `unbind` leaves them.
    Unbound,
    Driver(DriverName),
}

/// The device an argument names: a PCI address (read first, so nothing that looks like one is
/// taken for an interface), else the PCI device behind the network interface of that name.
pub(crate) fn device_of(ctx: &Context, arg: &str) -> Result<PciAddress, Error> {
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

/// The device addresses and the target of `ADDRESS... [DRIVER]` (DRIVER only when
/// `driver_allowed`), or one message per bad argument. Only the last argument may be a driver,
/// and only after at least one address; there an existing network interface's name is a
/// device, not a driver, unless a registered driver or a module has that name too (taking it
/// for the interface's device would move a device nobody named as such).
pub(crate) fn parse_args(
    ctx: &Context,
    args: &[String],
    driver_allowed: bool,
) -> Result<(Vec<PciAddress>, Target), Vec<Refusal>> {
    let mut addresses: Vec<PciAddress> = Vec::new();
    let mut target = Target::Default;
    let mut errors = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let as_driver = driver_allowed
            && i > 0
            && i == args.len() - 1
            && !arg.contains(':')
            && (!ctx.is_net_interface(arg) || ctx.names_driver_or_module(arg));
        if as_driver {
            match DriverName::new(arg) {
                Ok(_) if arg == NO_DRIVER_OVERRIDE => target = Target::Unbound,
                Ok(name) => target = Target::Driver(name),
                Err(e) => errors.push(Refusal::with_line(None, e.to_string(), e, 2)),
            }
            continue;
        }
        match device_of(ctx, arg) {
            Ok(address) if addresses.contains(&address) => {
                let e = Error::InvalidArg(format!("{address} is given twice"));
                errors.push(Refusal::with_line(
                    Some(address.to_string()),
                    e.to_string(),
                    e,
                    2,
                ));
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
                let line = format!("{e}{hint}");
                errors.push(Refusal::with_line(Some(arg.clone()), line, e, 2));
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
/// On failure, one refusal per device.
pub(crate) fn check_devices(ctx: &Context, addresses: &[PciAddress]) -> Result<(), Vec<Refusal>> {
    let mut errors = Vec::new();
    for address in addresses {
        if let Err(e) = ctx.current_driver(&address.to_string()) {
            let (line, status) = (format!("{address}: {e}"), status_of(&e));
            errors.push(Refusal::with_line(
                Some(address.to_string()),
                line,
                e,
                status,
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Everything `bind`, `unbind` and `reattach` check before they act: the arguments' syntax,
/// that the devices exist, that `persist` can save or remove their overrides, and (unless
/// `resolve` is false, as for a dry run, which loads nothing) that DRIVER resolves to a PCI
/// driver, which the target then names exactly; the module load that resolving may need comes
/// last. On failure the refusals are reported as `format` says and the exit status returned.
pub(crate) fn prepare(
    ctx: &Context,
    format: Format,
    args: &[String],
    driver_allowed: bool,
    resolve: bool,
    persist: (Persist, &Store),
) -> Result<(Vec<String>, Target), u8> {
    let report = |errors: Vec<Refusal>| refuse(format, errors);
    let (addresses, target) = parse_args(ctx, args, driver_allowed).map_err(report)?;
    check_devices(ctx, &addresses).map_err(report)?;
    persist.0.check(format, persist.1, &addresses)?;
    // Resolved (its module loaded) to check it before any device is touched; the library
    // is then given the name as typed, since the claim check looks up the module by it
    // (`8250_pci` is the module of driver `serial`).
    if let Target::Driver(name) = &target {
        if resolve {
            if let Err(e) = ctx.resolve_driver(name.as_str()) {
                let (line, status) = (e.to_string(), status_of(&e));
                return Err(report(vec![Refusal::with_line(None, line, e, status)]));
            }
        }
    }
    Ok((addresses.iter().map(ToString::to_string).collect(), target))
}
