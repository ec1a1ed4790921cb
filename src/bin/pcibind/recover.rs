//! `pcibind recover`: roll back interrupted transactions.

use pcibind::{Context, Error};

use crate::exit::{failure_outcome, override_hint, status_of};
use crate::operands::device_of;
use crate::output::print_json_array;
use crate::runner::{json_result, refuse, Format, Refusal};

/// `pcibind recover`: every named device (each must exist), or every device with a record.
pub(crate) fn recover(ctx: &Context, addresses: &[String], json: bool) -> Result<u8, Error> {
    if json {
        return Ok(recover_json(ctx, addresses));
    }
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

/// `recover --json`: an object per device rolled back (`rolled_back`), and per named device
/// with nothing to roll back (`unchanged`); a failure ends the array with the device's object,
/// as it ends the text run.
fn recover_json(ctx: &Context, addresses: &[String]) -> u8 {
    let format = Format::Json(ctx);
    let devices = match addresses
        .iter()
        .map(|a| device_of(ctx, a).map(|d| d.to_string()))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(devices) => devices,
        Err(e) => return refuse(format, vec![Refusal::of(e)]),
    };
    let mut objects = Vec::new();
    let object = |address: &str, outcome: &str, error: Option<(&Error, &str)>| {
        let driver = ctx.current_driver(address).ok().flatten();
        format!(
            "  {}",
            json_result(Some(address), outcome, driver.as_ref(), error, None, None)
        )
    };
    let asked: Vec<Option<&str>> = if addresses.is_empty() {
        vec![None]
    } else {
        devices.iter().map(|d| Some(d.as_str())).collect()
    };
    let mut status = 0;
    for device in asked {
        match ctx.recover(device) {
            Ok(recovered) => {
                for address in &recovered {
                    objects.push(object(&address.to_string(), "rolled_back", None));
                }
                if let (Some(device), true) = (device, recovered.is_empty()) {
                    objects.push(object(device, "unchanged", None));
                }
            }
            Err(e) => {
                let message = format!("{e}{}", override_hint(&e));
                eprintln!("pcibind: {message}");
                match device {
                    Some(device) => {
                        let outcome = failure_outcome(&e);
                        objects.push(object(device, outcome, Some((&e, &message))));
                    }
                    None => {
                        let r = json_result(
                            None,
                            failure_outcome(&e),
                            None,
                            Some((&e, &message)),
                            None,
                            None,
                        );
                        objects.push(format!("  {r}"));
                    }
                }
                status = status_of(&e);
                break;
            }
        }
    }
    print_json_array(&mut std::io::stdout().lock(), &objects);
    status
}
