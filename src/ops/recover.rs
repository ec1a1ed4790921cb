//! Rolling back interrupted transactions (SPEC 3.12) on request, and the preamble of every
//! operation on one device. Taking a lock rolls back what a dead holder left half done
//! (`txn/recover.rs`); `Context::recover` takes the locks of one device or of every device
//! with a record for that alone; `Context::interrupted` lists them without touching anything.

use crate::os::lock::{find_records, Deadline};
use crate::os::record::{Record, Recorded};
use crate::txn::Locked;
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::Context;

/// A device whose last transaction did not finish, as `status` and `show` list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    pub address: PciAddress,
    /// What the transaction was doing and where the device started, or why its record cannot
    /// be read.
    pub description: String,
    /// The transaction still runs (another caller holds the lock): not interrupted yet.
    pub running: bool,
}

/// A fresh deadline for a call's lock waits (SPEC 3.5: one for the whole call).
pub(crate) fn deadline(ctx: &Context) -> Deadline {
    Deadline::after(ctx.lock_timeout)
}

/// The preamble of every operation on one device: the device must be there, the log is
/// deferred until the lock is released (the callback never runs under a lock), and the
/// device is locked against one deadline for the whole call, rolling back an interrupted
/// transaction first. Then `op` runs with the lock and the deadline.
pub(crate) fn on_locked_device<T>(
    ctx: &Context,
    address: &PciAddress,
    op: impl FnOnce(&Locked<'_>, &Deadline) -> Result<T>,
) -> Result<T> {
    ctx.sysfs.require_device(address)?;
    // Declared first, dropped last: the log callback runs after the lock is released.
    let _deferral = ctx.log.defer();
    let deadline = deadline(ctx);
    let locked = ctx.engine().lock_device(address, &deadline)?;
    op(&locked, &deadline)
}

/// The plan's first line when the device's lock file holds the record of an interrupted
/// transaction: a dry run takes no lock, so it rolls nothing back; the real call would,
/// first.
pub(crate) fn interrupted_note(ctx: &Context, address: &PciAddress) -> Option<String> {
    let found = interrupted(ctx).ok()?;
    let i = found
        .into_iter()
        .find(|i| i.address == *address && !i.running)?;
    Some(format!(
        "first roll back the interrupted transaction of {address} ({}); the plan below \
         starts from the device as it is now",
        i.description
    ))
}

/// [`Context::recover`].
pub(crate) fn recover(ctx: &Context, address: Option<&str>) -> Result<Vec<PciAddress>> {
    let _deferral = ctx.log.defer();
    let deadline = deadline(ctx);
    let addresses = match address {
        Some(a) => {
            let a = PciAddress::parse(a)?;
            ctx.sysfs.require_device(&a)?;
            vec![a]
        }
        None => find_records(&ctx.lock_dir)?
            .into_iter()
            .map(|f| f.address)
            .collect(),
    };
    let mut recovered = Vec::new();
    for address in &addresses {
        // One at a time: a roll-back never waits while holding another device's lock.
        let locked = ctx.engine().lock_device(address, &deadline)?;
        recovered.extend(locked.recovered.iter().copied());
    }
    Ok(recovered)
}

/// [`Context::interrupted`].
pub(crate) fn interrupted(ctx: &Context) -> Result<Vec<Interrupted>> {
    Ok(find_records(&ctx.lock_dir)?
        .into_iter()
        .map(|found| Interrupted {
            address: found.address,
            description: match Record::parse(&found.text) {
                Ok(r) => describe(&r),
                Err(why) => format!("an unreadable transaction record ({why})"),
            },
            running: found.running,
        })
        .collect())
}

/// "binding to vfio-pci (process 42), started bound to e1000e, driver_override unset".
fn describe(record: &Record) -> String {
    let start = match &record.what {
        Recorded::Move { start, .. } => format!("started {start}"),
        Recorded::Sriov { autoprobe, numvfs } => format!(
            "started with {numvfs} VFs, sriov_drivers_autoprobe {}",
            u8::from(*autoprobe)
        ),
    };
    format!("{} (process {}), {start}", record.doing, record.pid)
}
