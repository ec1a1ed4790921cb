//! The group transactions (SPEC 3.8): every member of a device's unit moved to VFIO drivers,
//! or given back to the host, as one transaction.

use crate::ops::bind::Prepared;
use crate::policy::unit::UnitMember;
use crate::txn::{Loads, Locked};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::options::BindOptions;
use crate::Context;

/// Whether a group transaction locks its unit, runs its module loads and writes (a real call),
/// or only says what it would do (a dry run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    DryRun,
}

/// What a group transaction did (or, in a dry run, would do): the members moved, in the order
/// moved, and the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOutcome {
    pub moved: Vec<PciAddress>,
    /// Every member of the unit, in address order: the moved ones, those already on VFIO
    /// drivers and the bridges that stay.
    pub members: Vec<PciAddress>,
    /// The plan's lines (a dry run), or empty.
    pub plan: Vec<String>,
}

impl Context {
    /// Moves the whole unit of the device at `address` to VFIO drivers as one transaction
    /// (SPEC 3.8): its IOMMU group and the functions its members name as `consumer:pci:`
    /// device links, with their groups. Bridges never move, and a bridge on a host driver
    /// refuses the unit (forced or not); every other member not on a VFIO driver moves to its
    /// best VFIO driver. The safety checks run on every member before anything is written;
    /// every member's lock is held, taken in address order, for the whole transaction; a
    /// failure puts back the members already moved, in reverse order. With `dry_run` nothing
    /// is written or loaded and the outcome carries the plan.
    pub fn bind_group(
        &self,
        address: &str,
        options: BindOptions,
        dry_run: bool,
    ) -> Result<GroupOutcome> {
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let _deferral = self.log.defer();
        let mode = if dry_run { Mode::DryRun } else { Mode::Real };
        let movers = |m: &UnitMember| !m.bridge && !m.vfio;
        let no_host_bridge = |unit: &[UnitMember]| match unit.iter().find(|m| m.is_host_bridge()) {
            None => Ok(()),
            Some(bridge) => Err(Error::InUse {
                check: Check::GroupBridge,
                address: bridge.address,
                reason: format!(
                    "it is a bridge in the IOMMU group of {address}, bound to host driver {}: \
                     the group cannot be assigned safely (forcing does not change this)",
                    bridge.driver.as_ref().map_or("?", |d| d.as_str())
                ),
            }),
        };
        self.group_transaction(
            &address,
            mode,
            "binding to",
            movers,
            no_host_bridge,
            |loads| self.prepare_bind(loads, None, options),
        )
    }

    /// Gives every VFIO-bound, non-bridge member of the unit of the device at `address` back to
    /// the host (each as [`Context::reattach`] with no name), as one transaction: a failure puts
    /// the members already moved back onto their VFIO drivers, in reverse order.
    pub fn reattach_group(
        &self,
        address: &str,
        options: BindOptions,
        dry_run: bool,
    ) -> Result<GroupOutcome> {
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let _deferral = self.log.defer();
        let mode = if dry_run { Mode::DryRun } else { Mode::Real };
        let movers = |m: &UnitMember| !m.bridge && m.vfio;
        self.group_transaction(
            &address,
            mode,
            "reattaching to",
            movers,
            |_| Ok(()),
            |loads| self.prepare_reattach(loads, None, options),
        )
    }

    /// The unit of `address` with its locks taken (a real call). The unit is worked out again
    /// once the locks are held, since taking them rolls back interrupted transactions, which
    /// may move members (one left on vfio-pci by a killed group bind is a mover again); should
    /// that bring in a member not locked yet, the locks are let go and taken again.
    fn locked_unit(
        &self,
        address: &PciAddress,
        mode: Mode,
        movers: &impl Fn(&UnitMember) -> bool,
    ) -> Result<(Vec<UnitMember>, Locked<'_>)> {
        let deadline = self.deadline();
        let mut unit = self.unit(address, movers)?;
        if mode == Mode::DryRun {
            return Ok((unit, Locked::none()));
        }
        for _ in 0..3 {
            let addresses: Vec<PciAddress> = unit.iter().map(|m| m.address).collect();
            let locked = self.lock_devices(&addresses, &deadline)?;
            let now = self.unit(address, movers)?;
            if now.iter().all(|m| addresses.contains(&m.address)) {
                return Ok((now, locked));
            }
            unit = now;
        }
        Err(Error::Busy(format!(
            "the IOMMU-group unit of {address} kept changing while its locks were taken"
        )))
    }

    /// Takes the unit's locks (a real call), checks it, prepares every mover before anything is
    /// written (the first phase: each mover's module loads, then its checks), then executes
    /// the list of lists (or renders it). A mover refused at its checkpoint puts back the
    /// members the loads moved so far, in reverse order.
    fn group_transaction(
        &self,
        address: &PciAddress,
        mode: Mode,
        verb: &'static str,
        movers: impl Fn(&UnitMember) -> bool,
        check: impl Fn(&[UnitMember]) -> Result<()>,
        prepare: impl Fn(&mut Loads<'_>) -> Result<Prepared>,
    ) -> Result<GroupOutcome> {
        let (unit, locked) = self.locked_unit(address, mode, &movers)?;
        check(&unit)?;
        let mut prepared: Vec<(Loads<'_>, Prepared)> = Vec::new();
        let abandon = |prepared: Vec<(Loads<'_>, Prepared)>, mut e: Error| {
            for (loads, _) in prepared.into_iter().rev() {
                e = loads.abandon(e);
            }
            e
        };
        for member in unit.iter().filter(|m| movers(m)).map(|m| m.address) {
            let start = match self.state(&member) {
                Ok(start) => start,
                Err(e) => return Err(abandon(prepared, e)),
            };
            let mut loads = match mode {
                Mode::Real => Loads::real(self, &locked, member, start, verb),
                Mode::DryRun => Loads::dry_run(self, member, start),
            };
            match prepare(&mut loads) {
                Ok(p) => prepared.push((loads, p)),
                Err(e) => {
                    let e = loads.abandon(e);
                    return Err(abandon(prepared, e));
                }
            }
        }
        let mut txns = Vec::new();
        let mut done = Vec::new();
        let mut plan = Vec::new();
        let mut checkpoints = Vec::new();
        for (loads, prepared) in prepared {
            let member = *loads.address();
            if mode == Mode::DryRun {
                plan.push(format!("{member}:"));
                plan.extend(prepared.notes.iter().map(|n| format!("  {n}")));
                if prepared.txn.is_none() {
                    plan.extend(prepared.checkpoint.iter().map(|n| format!("  {n}")));
                }
            }
            if let Some((txn, ran)) = loads.into_txn(prepared.txn)? {
                txns.push(txn);
                done.push(ran);
                checkpoints.push(prepared.checkpoint);
            }
        }
        if mode == Mode::DryRun {
            for (txn, checkpoint) in txns.iter().zip(&checkpoints) {
                plan.push(format!("{}:", txn.address));
                let mut lines = Vec::new();
                self.render(txn, checkpoint, &mut lines);
                plan.extend(lines.iter().map(|l| format!("  {l}")));
            }
            plan.push(
                "on failure of any member: the members moved before it are restored in reverse \
                 order"
                    .to_owned(),
            );
        } else {
            self.execute_from(&txns, &done, &locked)?;
        }
        Ok(GroupOutcome {
            moved: txns.iter().map(|t| t.address).collect(),
            members: unit.iter().map(|m| m.address).collect(),
            plan,
        })
    }
}
