//! `pcibind sriov`: list a PF's virtual functions, or set their number.

use pcibind::{Context, Error, SriovOptions};

use crate::args::SriovArgs;
use crate::exit::{code_name, failure_outcome, override_hint, status_of};
use crate::operands::device_of;
use crate::output::{json_opt, json_str, plan_text, print_json_array};

/// `pcibind sriov`.
pub(crate) fn sriov(ctx: &Context, a: SriovArgs) -> Result<u8, Error> {
    let SriovArgs {
        pf,
        numvfs,
        force,
        autoprobe,
        dry_run,
        json,
    } = a;
    let pf = device_of(ctx, &pf)?.to_string();
    let options = SriovOptions { force, autoprobe };
    if let (Some(n), true) = (numvfs, dry_run) {
        return Ok(plan(ctx, &pf, n, options, json));
    }
    // How many VFs there were, for `changed`/`unchanged` (only asked when a count is set).
    let before = match (json, numvfs) {
        (true, Some(_)) => ctx.sriov_vfs(&pf).ok().map(|v| v.len()),
        _ => None,
    };
    let vfs = match numvfs {
        None => ctx.sriov_vfs(&pf),
        Some(n) => ctx.sriov_set_numvfs(&pf, n, options),
    };
    let message = vfs.as_ref().err().map(failure_message);
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
             \"plan\": null, \"error\": {}, \"message\": {}}}",
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

/// What stderr says of a failure: `sriov` has --force only.
fn failure_message(e: &Error) -> String {
    let hint = if override_hint(e).is_empty() {
        ""
    } else {
        " (--force overrides this check)"
    };
    format!("{e}{hint}")
}

/// `pcibind sriov PF N --dry-run`: only what the library renders, as text or in one JSON
/// object (outcome `planned`, the plan's lines).
fn plan(ctx: &Context, pf: &str, numvfs: u32, options: SriovOptions, json: bool) -> u8 {
    let plan = ctx.sriov_set_numvfs_plan(pf, numvfs, options);
    let message = plan.as_ref().err().map(failure_message);
    let status = match &plan {
        Ok(plan) if !json => {
            println!("{}", plan_text(plan.clone()));
            0
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("pcibind: {}", message.as_deref().unwrap_or_default());
            status_of(e)
        }
    };
    if json {
        let (outcome, lines) = match &plan {
            Ok(plan) => {
                let lines: Vec<String> = plan.lines.iter().map(|l| json_str(l)).collect();
                ("planned", format!("[{}]", lines.join(", ")))
            }
            Err(e) => (failure_outcome(e), "null".to_owned()),
        };
        let driver = ctx.current_driver(pf).ok().flatten();
        let object = format!(
            "  {{\"address\": {}, \"outcome\": {}, \"driver\": {}, \"vfs\": null, \
             \"plan\": {lines}, \"error\": {}, \"message\": {}}}",
            json_str(pf),
            json_str(outcome),
            json_opt(driver.as_ref().map(|d| d.as_str())),
            json_opt(plan.as_ref().err().map(code_name)),
            json_opt(message.as_deref()),
        );
        print_json_array(&mut std::io::stdout().lock(), &[object]);
    }
    status
}
