//! `pcibind sriov`: list a PF's virtual functions, or set their number.

use pcibind::{Context, Error, SriovOptions};

use crate::args::SriovArgs;
use crate::exit::{code_name, failure_outcome, override_hint, status_of};
use crate::operands::device_of;
use crate::output::{json_opt, json_str, print_json_array};

/// `pcibind sriov`.
pub(crate) fn sriov(ctx: &Context, a: SriovArgs) -> Result<u8, Error> {
    let SriovArgs {
        pf,
        numvfs,
        force,
        autoprobe,
        json,
    } = a;
    let pf = device_of(ctx, &pf)?.to_string();
    // How many VFs there were, for `changed`/`unchanged` (only asked when a count is set).
    let before = match (json, numvfs) {
        (true, Some(_)) => ctx.sriov_vfs(&pf).ok().map(|v| v.len()),
        _ => None,
    };
    let vfs = match numvfs {
        None => ctx.sriov_vfs(&pf),
        Some(n) => ctx.sriov_set_numvfs(&pf, n, SriovOptions { force, autoprobe }),
    };
    // What stderr says of a failure: `sriov` has --force only.
    let message = vfs.as_ref().err().map(|e| {
        let hint = if override_hint(e).is_empty() {
            ""
        } else {
            " (--force overrides this check)"
        };
        format!("{e}{hint}")
    });
    let status = match &vfs {
        Ok(vfs) => {
            if !json {
                for vf in vfs {
                    println!("{vf}");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("pcibind: {}", message.as_deref().unwrap_or_default());
            status_of(e)
        }
    };
    if json {
        let outcome = match (&vfs, numvfs) {
            (Ok(_), None) => "listed",
            (Ok(vfs), Some(_)) if before == Some(vfs.len()) => "unchanged",
            (Ok(_), Some(_)) => "changed",
            (Err(e), _) => failure_outcome(e),
        };
        let driver = ctx.current_driver(&pf).ok().flatten();
        let error = vfs.as_ref().err().map(code_name);
        let vfs = vfs.as_ref().map_or("null".to_owned(), |vfs| {
            let items: Vec<String> = vfs.iter().map(|v| json_str(&v.to_string())).collect();
            format!("[{}]", items.join(", "))
        });
        let object = format!(
            "  {{\"address\": {}, \"outcome\": {}, \"driver\": {}, \"vfs\": {vfs}, \
             \"error\": {}, \"message\": {}}}",
            json_str(&pf),
            json_str(outcome),
            json_opt(driver.as_ref().map(|d| d.as_str())),
            json_opt(error),
            json_opt(message.as_deref()),
        );
        print_json_array(&mut std::io::stdout().lock(), &[object]);
    }
    Ok(status)
}
