//! `pcibind sriov`: list a PF's virtual functions, or set their number.

use pcibind::{Context, Error, SriovOptions};

use crate::args::SriovArgs;
use crate::exit::{override_hint, status_of};
use crate::operands::device_of;

/// `pcibind sriov`.
pub(crate) fn sriov(ctx: &Context, a: SriovArgs) -> Result<u8, Error> {
    let SriovArgs {
        pf,
        numvfs,
        force,
        autoprobe,
    } = a;
    let pf = device_of(ctx, &pf)?.to_string();
    let vfs = match numvfs {
        None => ctx.sriov_vfs(&pf),
        Some(n) => ctx.sriov_set_numvfs(&pf, n, SriovOptions { force, autoprobe }),
    };
    Ok(match vfs {
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
    })
}
