//! `pcibind recover`: roll back interrupted transactions.

use pcibind::{Context, Error};

use crate::operands::device_of;

/// `pcibind recover`: every named device (each must exist), or every device with a record.
pub(crate) fn recover(ctx: &Context, addresses: &[String]) -> Result<u8, Error> {
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
