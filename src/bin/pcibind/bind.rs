//! `pcibind bind`, `unbind` and `reattach`: the commands that move devices one by one (in
//! parallel for `bind`) or a whole IOMMU group at a time; `bind --owner` gives the VFIO nodes
//! of the devices bound to a user and `reattach` gives them back to root (`owner.rs`).

use pcibind::{BindOptions, Context, DriverName, Error};

use crate::args::{Allow, BindArgs, Checks, ReattachArgs, UnbindArgs};
use crate::operands::{prepare, Target};
use crate::output::UNBOUND;
use crate::owner;
use crate::persist::{Persist, Store};
use crate::runner::{each, each_in_parallel, refuse, Done, Format, Refusal};

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
        owner,
        json,
    } = a;
    let format = Format::new(json, ctx);
    let persist = Persist::when(persist, Persist::Save);
    let (addresses, target) = match prepare(ctx, format, &args, true, !dry_run, (persist, store)) {
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
        if let Err(refusals) = owner.check(ctx, &addresses, unbound, driver, group) {
            return Ok(refuse(format, refusals));
        }
    }
    let owner = owner.as_ref();
    // Gives the nodes of a device bound (owner.rs), or adds that to the plan.
    let give = |a: &str, done: Result<Done, Error>| match owner {
        Some(owner) => done.and_then(|d| owner.give(ctx, a, d)),
        None => done,
    };
    let noted = |done: Done| match owner {
        Some(owner) => owner.noted(done),
        None => done,
    };
    let options = BindOptions {
        require_vfio: require_vfio || owner.is_some(),
        strict_variant,
        ..checks.options()
    };
    if group {
        if !matches!(target, Target::Default) {
            return Ok(no_driver_with_group(format));
        }
        return Ok(each(format, &addresses, "binding the group of", |a| {
            let o = ctx.bind_group(a, options, dry_run)?;
            let done = persist.after_group(ctx, store, &o.members, group_done(ctx, a, &o, dry_run));
            if dry_run || owner.is_none() {
                return done.map(noted);
            }
            // Each member now on a VFIO driver; a bridge stays where it is.
            o.members.iter().try_fold(done?, |done, m| {
                let m = m.to_string();
                match ctx.is_vfio_bound(&m)? {
                    true => give(&m, Ok(done)),
                    false => Ok(done),
                }
            })
        }));
    }
    let driver = match &target {
        Target::Driver(d) => Some(d.as_str()),
        _ => None,
    };
    Ok(match (&target, dry_run) {
        (Target::Unbound, true) => each(format, &addresses, "planning", |a| {
            ctx.unbind_plan(a, options).map(|p| Done::planned(None, &p))
        }),
        (Target::Unbound, false) => each(format, &addresses, "unbinding", |a| {
            persist.after_one(store, a, unbind_one(ctx, a, options))
        }),
        (_, true) => each(format, &addresses, "planning", |a| {
            ctx.bind_plan(a, driver, options)
                .map(|p| noted(Done::planned(p.target.clone(), &p)))
        }),
        (_, false) => each_in_parallel(format, &addresses, "binding", |a| {
            give(
                a,
                persist.after_one(store, a, bind_one(ctx, a, driver, options)),
            )
        }),
    })
}

/// `pcibind unbind`.
pub(crate) fn unbind(ctx: &Context, store: &Store, a: UnbindArgs) -> Result<u8, Error> {
    let UnbindArgs {
        addresses,
        dry_run,
        checks,
        json,
    } = a;
    let format = Format::new(json, ctx);
    let (addresses, _) = match prepare(ctx, format, &addresses, false, false, (Persist::No, store))
    {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    let options = checks.options();
    if dry_run {
        return Ok(each(format, &addresses, "planning", |a| {
            ctx.unbind_plan(a, options).map(|p| Done::planned(None, &p))
        }));
    }
    Ok(each(format, &addresses, "unbinding", |a| {
        unbind_one(ctx, a, options)
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
        json,
    } = a;
    let format = Format::new(json, ctx);
    let options = checks.options();
    let persist = Persist::when(persist, Persist::Remove);
    let (addresses, target) = match prepare(ctx, format, &args, true, !dry_run, (persist, store)) {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    if group {
        if !matches!(target, Target::Default) {
            return Ok(no_driver_with_group(format));
        }
        // The nodes are those of before the move (owner.rs gives them back to root).
        return Ok(each(format, &addresses, "reattaching the group of", |a| {
            let nodes = owner::group_nodes_of(ctx, a, options);
            let o = ctx.reattach_group(a, options, dry_run)?;
            let done =
                persist.after_group(ctx, store, &o.members, group_done(ctx, a, &o, dry_run))?;
            match dry_run {
                true => Ok(owner::noted_back(&nodes, done)),
                false => owner::give_back(&nodes, done),
            }
        }));
    }
    if dry_run {
        let driver = match &target {
            Target::Driver(d) => Some(d.as_str()),
            _ => None,
        };
        return Ok(each(format, &addresses, "planning", |a| {
            let done = match target {
                Target::Unbound => ctx.unbind_plan(a, options).map(|p| Done::planned(None, &p)),
                _ => ctx
                    .reattach_plan(a, driver, options)
                    .map(|p| Done::planned(p.target.clone(), &p)),
            };
            done.map(|d| owner::noted_back(&owner::nodes_of(ctx, a), d))
        }));
    }
    // The nodes reattach gives back to root (owner.rs), as they are before the move.
    Ok(match target {
        Target::Unbound => each(format, &addresses, "unbinding", |a| {
            let nodes = owner::nodes_of(ctx, a);
            persist
                .after_one(store, a, unbind_one(ctx, a, options))
                .and_then(|d| owner::give_back(&nodes, d))
        }),
        target => {
            let driver = match &target {
                Target::Driver(d) => Some(d.as_str()),
                _ => None,
            };
            each(format, &addresses, "reattaching", |a| {
                let nodes = owner::nodes_of(ctx, a);
                let before = driver_before(ctx, a);
                let done = ctx.reattach(a, driver, options).map(|d| {
                    let line = match &d {
                        Some(d) => format!("bound to {d}"),
                        None => "left unbound: no host driver matches it".to_owned(),
                    };
                    Done::now_on(before.as_ref(), d, line)
                });
                persist
                    .after_one(store, a, done)
                    .and_then(|d| owner::give_back(&nodes, d))
            })
        }
    })
}

/// Binds one device (`driver`: `None` for its best VFIO driver); `moved` as the library saw
/// it under the device's lock.
pub(crate) fn bind_one(
    ctx: &Context,
    address: &str,
    driver: Option<&str>,
    options: BindOptions,
) -> Result<Done, Error> {
    let o = ctx.bind_start(address, driver, options)?;
    let line = format!("bound to {}", o.driver);
    let mut done = Done::now_on(o.start_driver.as_ref(), Some(o.driver), line);
    if !o.moved {
        done.outcome = "unchanged";
    }
    Ok(done)
}

/// Unbinds one device (leaving it with driver_override `none`).
pub(crate) fn unbind_one(
    ctx: &Context,
    address: &str,
    options: BindOptions,
) -> Result<Done, Error> {
    let before = driver_before(ctx, address);
    ctx.unbind(address, options)?;
    Ok(Done::now_on(before.as_ref(), None, UNBOUND.to_owned()))
}

/// The driver a device is on before an operation that does not say whether it moved it (for
/// `moved`/`unchanged`); `None` when unbound or unreadable.
fn driver_before(ctx: &Context, address: &str) -> Option<DriverName> {
    ctx.current_driver(address).ok().flatten()
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
fn no_driver_with_group(format: Format) -> u8 {
    let e = Error::InvalidArg(
        "--group takes no DRIVER (a group moves to its best VFIO drivers, or back to its host \
         drivers)"
            .to_owned(),
    );
    refuse(format, vec![Refusal::new(None, e, 2)])
}

/// One device's report for a group operation: the members moved, or the plan.
fn group_done(ctx: &Context, address: &str, o: &pcibind::GroupOutcome, dry_run: bool) -> Done {
    let moved: Vec<String> = o.moved.iter().map(|a| a.to_string()).collect();
    let list = if moved.is_empty() {
        "nothing to move".to_owned()
    } else {
        moved.join(" ")
    };
    let (outcome, line) = if dry_run {
        (
            "planned",
            format!(
                "plan (nothing changed): would move {list}\n{}",
                o.plan.join("\n")
            ),
        )
    } else if o.moved.is_empty() {
        ("unchanged", format!("group moved: {list}"))
    } else {
        ("moved", format!("group moved: {list}"))
    };
    Done {
        outcome,
        // A dry run's plan says where each member would go.
        driver: if dry_run {
            None
        } else {
            ctx.current_driver(address).ok().flatten()
        },
        line,
        plan: dry_run.then(|| o.plan.clone()),
        group_moved: Some(o.moved.clone()),
    }
}
