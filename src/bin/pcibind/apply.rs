//! `pcibind apply`: put devices on their saved drivers (`persist.rs` keeps the files), as the
//! udev rule and `pcibind@.service` do at boot and on hot-plug.

use std::path::Path;

use pcibind::{Context, Error, PciAddress, Priority, NO_DRIVER_OVERRIDE};

use crate::args::ApplyArgs;
use crate::bind::{bind_one, unbind_one};
use crate::persist::{Saved, Store, PREFIX};
use crate::runner::{each_in_parallel, refuse, Format, Refusal};

/// `pcibind apply [ADDRESS...]`: the devices named (each must exist and have a saved
/// override), or every saved override whose device is present, put on their saved drivers.
/// Everything is read and checked first; any failure there changes nothing.
pub(crate) fn apply(ctx: &Context, store: &Store, a: ApplyArgs) -> u8 {
    let format = Format::new(a.json, ctx);
    let options = a.checks.options();
    let todo = if a.addresses.is_empty() {
        present(ctx, store)
    } else {
        named(ctx, store, &a.addresses)
    };
    let todo = match all_or_errors(todo) {
        Ok(todo) => todo,
        Err(errors) => return refuse(format, errors.into_iter().map(Refusal::of).collect()),
    };
    let addresses: Vec<String> = todo.iter().map(|(a, _)| a.to_string()).collect();
    each_in_parallel(format, &addresses, "applying", |a| {
        let (_, driver) = todo
            .iter()
            .find(|(t, _)| t.to_string() == a)
            .expect("listed");
        let mut done = if driver.as_str() == NO_DRIVER_OVERRIDE {
            unbind_one(ctx, a, options)?
        } else {
            bind_one(ctx, a, Some(driver.as_str()), options)?
        };
        done.line.push_str(", as saved");
        Ok(done)
    })
}

/// A `pci-` file whose name is no canonical address (an editor's `~` backup, a package
/// manager's `.dpkg-old`): not a saved override of any device.
fn names_no_device(e: &Error) -> Option<&Path> {
    match e {
        Error::Malformed { path, .. } => path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX))
            .filter(|rest| !PciAddress::parse(rest).is_ok_and(|a| a.to_string() == *rest))
            .map(|_| path.as_path()),
        _ => None,
    }
}

/// Every saved override whose device is present; the others are skipped, as at boot only the
/// devices there matter, and so are files whose name is no device's (with a warning): one
/// stray file must not keep every device from its saved driver.
fn present(ctx: &Context, store: &Store) -> Vec<Saved> {
    let saved = match store.list() {
        Ok(saved) => saved,
        Err(e) => return vec![Err(e)],
    };
    saved
        .into_iter()
        .filter(|saved| match saved {
            Ok((address, driver)) => match ctx.current_driver(&address.to_string()) {
                Err(Error::NoDevice { .. }) => {
                    ctx.logger().log(
                        Priority::Info,
                        format_args!(
                            "{address} is not present: its saved override ({driver}) waits"
                        ),
                    );
                    false
                }
                _ => true,
            },
            Err(e) => match names_no_device(e) {
                Some(path) => {
                    ctx.logger().log(
                        Priority::Warning,
                        format_args!(
                            "skipping {}: its name is no PCI address in driverctl's form",
                            path.display()
                        ),
                    );
                    false
                }
                None => true,
            },
        })
        .collect()
}

/// The saved overrides of the devices named (addresses or interface names).
fn named(ctx: &Context, store: &Store, args: &[String]) -> Vec<Saved> {
    let mut todo: Vec<Saved> = Vec::new();
    for arg in args {
        let saved = crate::operands::device_of(ctx, arg).and_then(|address| {
            if todo.iter().flatten().any(|(a, _)| *a == address) {
                return Err(Error::InvalidArg(format!("{address} is given twice")));
            }
            ctx.current_driver(&address.to_string())?;
            match store.load(&address)? {
                Some(driver) => Ok((address, driver)),
                None => Err(Error::InvalidArg(format!(
                    "nothing is saved for {address} (no {}; bind --persist saves it)",
                    store.path(&address).display()
                ))),
            }
        });
        todo.push(saved);
    }
    todo
}

/// Every value, or every error when there is one.
fn all_or_errors<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Vec<Error>> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}
