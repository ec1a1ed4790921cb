//! `pcibind bind`, `unbind` and `reattach`: the commands that move devices one by one (in
//! parallel for `bind`) or a whole IOMMU group at a time.

use pcibind::{BindOptions, Context, Error};

use crate::args::{Allow, BindArgs, Checks, ReattachArgs, UnbindArgs};
use crate::operands::{prepare, Target};
use crate::output::{plan_text, UNBOUND};
use crate::persist::{Persist, Store};
use crate::runner::{each, each_in_parallel};

/// `pcibind bind`.
pub(crate) fn bind(ctx: &Context, store: &Store, a: BindArgs) -> Result<u8, Error> {
    let BindArgs {
        args,
        checks,
        require_vfio,
        strict_variant,
        dry_run,
        group,
        persist,
    } = a;
    let persist = Persist::when(persist, Persist::Save);
    let (addresses, target) = match prepare(ctx, &args, true, !dry_run, (persist, store)) {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    let options = BindOptions {
        require_vfio,
        strict_variant,
        ..checks.options()
    };
    if group {
        if !matches!(target, Target::Default) {
            return Ok(no_driver_with_group());
        }
        return Ok(each(&addresses, "binding the group of", |a| {
            let o = ctx.bind_group(a, options, dry_run)?;
            persist.after_group(ctx, store, &o.members, group_report(&o, dry_run))
        }));
    }
    let driver = match &target {
        Target::Driver(d) => Some(d.as_str()),
        _ => None,
    };
    Ok(match (&target, dry_run) {
        (Target::Unbound, true) => each(&addresses, "planning", |a| {
            ctx.unbind_plan(a, options).map(plan_text)
        }),
        (Target::Unbound, false) => each(&addresses, "unbinding", |a| {
            let done = ctx.unbind(a, options).map(|_| (None, UNBOUND.to_owned()));
            persist.after_one(store, a, done)
        }),
        (_, true) => each(&addresses, "planning", |a| {
            ctx.bind_plan(a, driver, options)
                .map(|plan| format!("plan (nothing changed):\n{plan}"))
        }),
        (_, false) => each_in_parallel(&addresses, "binding", |a| {
            let done = ctx
                .bind(a, driver, options)
                .map(|d| (Some(d.clone()), format!("bound to {d}")));
            persist.after_one(store, a, done)
        }),
    })
}

/// `pcibind unbind`.
pub(crate) fn unbind(ctx: &Context, store: &Store, a: UnbindArgs) -> Result<u8, Error> {
    let UnbindArgs {
        addresses,
        dry_run,
        checks,
    } = a;
    let (addresses, _) = match prepare(ctx, &addresses, false, false, (Persist::No, store)) {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    let options = checks.options();
    if dry_run {
        return Ok(each(&addresses, "planning", |a| {
            ctx.unbind_plan(a, options).map(plan_text)
        }));
    }
    Ok(each(&addresses, "unbinding", |a| {
        ctx.unbind(a, options).map(|_| UNBOUND.to_owned())
    }))
}

/// `pcibind reattach`.
pub(crate) fn reattach(ctx: &Context, store: &Store, a: ReattachArgs) -> Result<u8, Error> {
    let ReattachArgs {
        args,
        group,
        persist,
        dry_run,
        checks,
    } = a;
    let options = checks.options();
    let persist = Persist::when(persist, Persist::Remove);
    let (addresses, target) = match prepare(ctx, &args, true, !dry_run, (persist, store)) {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    if group {
        if !matches!(target, Target::Default) {
            return Ok(no_driver_with_group());
        }
        return Ok(each(&addresses, "reattaching the group of", |a| {
            let o = ctx.reattach_group(a, options, dry_run)?;
            persist.after_group(ctx, store, &o.members, group_report(&o, dry_run))
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
    Ok(match target {
        Target::Unbound => each(&addresses, "unbinding", |a| {
            let done = ctx.unbind(a, options).map(|_| (None, UNBOUND.to_owned()));
            persist.after_one(store, a, done)
        }),
        target => {
            let driver = match &target {
                Target::Driver(d) => Some(d.as_str()),
                _ => None,
            };
            each(&addresses, "reattaching", |a| {
                let done = ctx.reattach(a, driver, options).map(|d| {
                    let line = match &d {
                        Some(d) => format!("bound to {d}"),
                        None => "left unbound: no host driver matches it".to_owned(),
                    };
                    (d, line)
                });
                persist.after_one(store, a, done)
            })
        }
    })
}

impl Checks {
    /// The options of a move from `--force` and `--allow`: the one place every command turns
    /// them into `BindOptions` (bind adds its own `--require-vfio`, `--strict-variant`).
    pub(crate) fn options(&self) -> BindOptions {
        BindOptions {
            force: self.force,
            allow_in_use: self.allow.contains(&Allow::InUse),
            allow_unclaimed: self.allow.contains(&Allow::Unclaimed),
            allow_sriov: self.allow.contains(&Allow::Sriov),
            ..BindOptions::default()
        }
    }
}

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
