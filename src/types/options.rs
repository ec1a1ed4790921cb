//! The options of a move: which safety checks it skips, and what it requires of its target.

use crate::types::error::Check;

/// Options of the moves ([`crate::Context::bind`], [`crate::Context::bind_start`], [`crate::Context::bind_plan`],
/// [`crate::Context::unbind`], [`crate::Context::reattach`], the group moves). The three safety checks of
/// SPEC 3.3 step 5 can be skipped one at a time (`allow_*`) or all at once (`force`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// Skip every safety check: the same as the three `allow_*` together.
    pub force: bool,
    /// Skip the in-use check: a network interface that carries the host's traffic, a disk
    /// that is mounted or held, a console framebuffer, a VMM holding the device, mediated
    /// devices, or a check that could not look.
    pub allow_in_use: bool,
    /// Skip the check that the target driver claims the device (its module's aliases).
    pub allow_unclaimed: bool,
    /// Skip the SR-IOV checks: a PF with VFs going to a VFIO driver, a PF one of whose VFs is
    /// on a VFIO driver leaving its driver.
    pub allow_sriov: bool,
    /// A named target must be a VFIO driver ([`crate::Error::NotClaimed`] otherwise); bind only.
    pub require_vfio: bool,
    /// With no name, a VFIO variant that cannot be had is an error ([`crate::Error::ModuleLoad`]),
    /// not a fallback to vfio-pci; bind only.
    pub strict_variant: bool,
}

impl BindOptions {
    /// Forced: every check skipped.
    pub fn forced() -> BindOptions {
        BindOptions {
            force: true,
            ..BindOptions::default()
        }
    }

    /// Whether `check` is skipped.
    pub fn skips(&self, check: Check) -> bool {
        self.force
            || match check {
                Check::InUse => self.allow_in_use,
                Check::Claims => self.allow_unclaimed,
                Check::Sriov => self.allow_sriov,
                Check::GroupBridge | Check::RequireVfio => false,
            }
    }
}
