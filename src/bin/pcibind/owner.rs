//! `bind --owner USER[:GROUP]`: the VFIO nodes of each device bound, its IOMMU group's node
//! (`/dev/vfio/N`) and its VFIO character device (`/dev/vfio/devices/vfioX`), given to a user
//! so that a VMM that does not run as root can open them, as dpdk-devbind's `--uid`/`--gid`
//! do; `reattach` gives them back to root.
//!
//! The kernel creates both nodes root:root, mode 0600 (the vfio group and vfio-dev classes name
//! no mode, so devtmpfs uses its default; systemd's udev rules have none for them), and
//! removes them when the device (for the group node: the group's last device) leaves its VFIO
//! driver. Only the owner changes here, as chown(1) would, never the mode: the user then opens
//! them, the group is recorded. The container `/dev/vfio/vfio` (mode 0666) and `/dev/iommu`
//! serve every device and are left alone.
//!
//! A group node opens every device of the group that is on a VFIO driver, so it is given only
//! when every other member is given in the same command (or is a bridge, which no VFIO driver
//! takes); otherwise the command is refused before anything changes, naming the others.
//!
//! Like `persist.rs`, this writes outside the library (the ownership of device nodes is no
//! move of a device): with `lchown`, so a link in place of a node is not followed.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use pcibind::{Context, Error};

use crate::runner::{Done, Refusal};

/// Who the nodes are given to, as resolved from `USER[:GROUP]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    /// `None` (`USER` alone): the group is left as it is, as chown(1) does.
    pub gid: Option<u32>,
    /// As typed, for the messages.
    spec: String,
}

/// Parses `USER[:GROUP]` (names or numeric ids; `USER:` is the user's login group), as clap's
/// value parser: an unknown user or group is a bad argument.
pub fn parse(arg: &str) -> Result<Owner, String> {
    let (user, group) = match arg.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (arg, None),
    };
    if user.is_empty() {
        return Err("USER is missing (USER[:GROUP])".to_owned());
    }
    let (uid, login_gid) = match lookup_user(user)? {
        Some(found) => found,
        None => match user.parse::<u32>() {
            Ok(uid) => (uid, None),
            Err(_) => return Err(format!("no user is named {user:?}")),
        },
    };
    let gid = match group {
        None => None,
        Some("") => Some(login_gid.ok_or_else(|| {
            format!("user id {uid} has no entry, so no login group: give USER:GROUP")
        })?),
        Some(g) => Some(match lookup_group(g)? {
            Some(gid) => gid,
            None => g
                .parse::<u32>()
                .map_err(|_| format!("no group is named {g:?}"))?,
        }),
    };
    Ok(Owner {
        uid,
        gid,
        spec: arg.to_owned(),
    })
}

/// The uid and login group of the user `name` (`None`: no such user).
fn lookup_user(name: &str) -> Result<Option<(u32, Option<u32>)>, String> {
    let c_name = CString::new(name).map_err(|_| format!("{name:?} is not a user name"))?;
    with_buffer(|buf| {
        // SAFETY: pwd and result are written by getpwnam_r, whose strings point into buf,
        // which outlives their use here (only the ids are read).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        (
            rc,
            (!result.is_null()).then_some((pwd.pw_uid, Some(pwd.pw_gid))),
        )
    })
    .map_err(|e| format!("looking up user {name:?}: {e}"))
}

/// The gid of the group `name` (`None`: no such group).
fn lookup_group(name: &str) -> Result<Option<u32>, String> {
    let c_name = CString::new(name).map_err(|_| format!("{name:?} is not a group name"))?;
    with_buffer(|buf| {
        // SAFETY: as in lookup_user.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(grp.gr_gid))
    })
    .map_err(|e| format!("looking up group {name:?}: {e}"))
}

/// Runs a `get*nam_r` call with a buffer grown while it says ERANGE. "Not found" is 0 with no
/// result (or, from some NSS modules, ENOENT and friends).
fn with_buffer<T>(
    mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, Option<T>),
) -> Result<Option<T>, std::io::Error> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match call(&mut buf) {
            (0, found) => return Ok(found),
            (libc::ERANGE, _) if size < 1 << 20 => size *= 4,
            (libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM, _) => return Ok(None),
            (rc, _) => return Err(std::io::Error::from_raw_os_error(rc)),
        }
    }
}

/// The nodes of the device at `address` that are its own to give: its group node and its
/// character device, of those `vfio_device_nodes` finds (none when it is not on a VFIO
/// driver).
pub fn nodes_of(ctx: &Context, address: &str) -> Vec<PathBuf> {
    ctx.vfio_device_nodes(address)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| is_device_node(p))
        .collect()
}

/// The nodes of every member of the unit `reattach --group` moves for `address` (from its dry
/// run, which changes nothing), before the move.
pub fn group_nodes_of(ctx: &Context, address: &str, options: pcibind::BindOptions) -> Vec<PathBuf> {
    let members = ctx
        .reattach_group(address, options, true)
        .map(|o| o.members)
        .unwrap_or_default();
    let mut nodes: Vec<PathBuf> = Vec::new();
    for m in members {
        for node in nodes_of(ctx, &m.to_string()) {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
    }
    nodes
}

/// `vfio/GROUP`, `vfio/noiommu-GROUP` and `vfio/devices/vfioX`; not the container
/// `vfio/vfio`, nor `iommu`.
fn is_device_node(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    match parent {
        Some("devices") => name.starts_with("vfio"),
        Some("vfio") => name != "vfio",
        _ => false,
    }
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

impl Owner {
    /// Everything `bind --owner` checks before anything changes: the target is a VFIO driver
    /// (`unbound`: DRIVER `none`; `driver`: DRIVER, `None` for the best VFIO driver), and, but
    /// for a group move, no IOMMU group is shared with a device the command does not bind. On
    /// failure, why, for `runner::refuse`.
    pub(crate) fn check(
        &self,
        ctx: &Context,
        addresses: &[String],
        unbound: bool,
        driver: Option<&str>,
        group: bool,
    ) -> Result<(), Vec<Refusal>> {
        if unbound {
            let line = "--owner gives the nodes of a VFIO driver's devices, and DRIVER `none` \
                        leaves them on no driver"
                .to_owned();
            let e = Error::InvalidArg(line.clone());
            return Err(vec![Refusal::with_line(None, line, e, 2)]);
        }
        if let (Some(driver), Some(first)) = (driver, addresses.first()) {
            // The library's own answer to --require-vfio, which --owner implies; forced, so
            // that no other check answers first (the bind itself makes them).
            let options = pcibind::BindOptions {
                require_vfio: true,
                force: true,
                ..Default::default()
            };
            if let Err(e @ Error::NotClaimed { .. }) = ctx.bind_plan(first, Some(driver), options) {
                return Err(vec![Refusal::of(e)]);
            }
        }
        if !group {
            self.check_groups(ctx, addresses)?;
        }
        Ok(())
    }

    /// That no IOMMU group of `addresses` (the devices the command binds) has another member
    /// that is not among them: its node would give that member too. Bridges do not count (no
    /// VFIO driver takes one). One refusal per group.
    fn check_groups(&self, ctx: &Context, addresses: &[String]) -> Result<(), Vec<Refusal>> {
        let mut refusals = Vec::new();
        let mut seen = Vec::new();
        for address in addresses {
            let Ok(members) = ctx.iommu_group(address) else {
                continue; // no IOMMU group: a no-IOMMU group is the device's alone
            };
            let group = ctx.device_info(address).ok().and_then(|i| i.iommu_group);
            if seen.contains(&group) {
                continue;
            }
            seen.push(group);
            let others: Vec<String> = members
                .iter()
                .map(|m| m.address.to_string())
                .filter(|m| !addresses.contains(m) && !is_bridge(ctx, m))
                .collect();
            if !others.is_empty() {
                let line = format!(
                    "{address}: --owner {} would give its IOMMU group's node{}, which opens {} \
                     too, not bound by this command: name {} as well (or use --group)",
                    self.spec,
                    group.map_or(String::new(), |g| format!(" (vfio/{g})")),
                    others.join(" "),
                    if others.len() == 1 { "it" } else { "them" },
                );
                let e = Error::InvalidArg(line.clone());
                refusals.push(Refusal::with_line(Some(address.clone()), line, e, 2));
            }
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(refusals)
        }
    }

    /// After the device at `address` was bound (`done`: its report): gives its nodes to the
    /// owner and says so on the line. A failure is the device's failure (an I/O error: its
    /// JSON outcome is `failed`, with the driver it is on); it stays bound, and the messages
    /// say so.
    pub(crate) fn give(&self, ctx: &Context, address: &str, mut done: Done) -> Result<Done, Error> {
        let nodes = nodes_of(ctx, address);
        if nodes.is_empty() {
            eprintln!(
                "pcibind: {address}: {}, but it has no VFIO group or device node to give to {}",
                done.line, self.spec
            );
            return Err(Error::Io {
                step: "giving the VFIO nodes of a device bound to --owner",
                path: ctx.dev_root().join("vfio"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no group or device node of {address} is there"),
                ),
            });
        }
        for node in &nodes {
            if let Err(e) = std::os::unix::fs::lchown(node, Some(self.uid), self.gid) {
                eprintln!(
                    "pcibind: {address}: {}, but its VFIO nodes were not given to {}",
                    done.line, self.spec
                );
                return Err(Error::Io {
                    step: "giving a VFIO node of a device bound to --owner",
                    path: node.clone(),
                    source: e,
                });
            }
        }
        done.line = format!("{}; {} given to {}", done.line, names(&nodes), self.spec);
        Ok(done)
    }

    /// A dry run's report with the plan's last line: the nodes given after the bind.
    pub(crate) fn noted(&self, done: Done) -> Done {
        with_plan_line(
            done,
            format!(
                "then give the device's VFIO group node and character device to {}",
                self.spec
            ),
        )
    }
}

/// `done` (a dry run's report) with `line` added to its plan, in the text and in the plan's
/// lines (the JSON results' `plan`).
fn with_plan_line(mut done: Done, line: String) -> Done {
    done.line = format!("{}\n{line}", done.line);
    if let Some(plan) = &mut done.plan {
        plan.push(line);
    }
    done
}

/// A PCI bridge of any kind (base class 0x06), which the library never moves.
fn is_bridge(ctx: &Context, address: &str) -> bool {
    ctx.device_info(address)
        .ok()
        .and_then(|i| i.modalias)
        .is_some_and(|m| m.class().0 == 0x06)
}

/// The nodes of `nodes` still there and not root's: those `give_back` changes.
fn not_roots(nodes: &[PathBuf]) -> Vec<&PathBuf> {
    nodes
        .iter()
        .filter(|node| {
            node.symlink_metadata()
                .is_ok_and(|meta| meta.uid() != 0 || meta.gid() != 0)
        })
        .collect()
}

/// After `reattach` (`done`: its report): `nodes` (the device's, from before the move) that
/// are still there and not root's go back to root:root, mode untouched (those removed with the
/// device's VFIO driver, as the kernel does, are gone); the line says which. A failure is the
/// device's failure, an I/O error, as for `Owner::give`.
pub(crate) fn give_back(nodes: &[PathBuf], mut done: Done) -> Result<Done, Error> {
    let mut given = Vec::new();
    for node in not_roots(nodes) {
        if let Err(e) = std::os::unix::fs::lchown(node, Some(0), Some(0)) {
            eprintln!(
                "pcibind: {}, but {} was not given back to root",
                done.line,
                node.display()
            );
            return Err(Error::Io {
                step: "giving a VFIO node back to root after the reattach",
                path: node.clone(),
                source: e,
            });
        }
        given.push(node.clone());
    }
    if !given.is_empty() {
        done.line = format!("{}; {} given back to root", done.line, names(&given));
    }
    Ok(done)
}

/// A reattach dry run's report, with the plan's last line when `nodes` (the device's, now)
/// has some that `give_back` would give back to root.
pub(crate) fn noted_back(nodes: &[PathBuf], done: Done) -> Done {
    let back: Vec<PathBuf> = not_roots(nodes).into_iter().cloned().collect();
    if back.is_empty() {
        return done;
    }
    let line = format!("then give {} back to root, those still there", names(&back));
    with_plan_line(done, line)
}

/// The name of user id `uid`, for tests and messages (`None`: no entry).
#[cfg(test)]
fn user_name(uid: u32) -> Option<String> {
    // SAFETY: getpwuid's result is read at once, in this single-threaded test.
    let pwd = unsafe { libc::getpwuid(uid) };
    (!pwd.is_null()).then(|| {
        unsafe { std::ffi::CStr::from_ptr((*pwd).pw_name) }
            .to_string_lossy()
            .into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve_as_chown_takes_them() {
        let root = user_name(0).expect("uid 0 has an entry");
        assert_eq!(parse(&root).unwrap().uid, 0);
        assert_eq!(parse(&root).unwrap().gid, None);
        assert_eq!(parse(&format!("{root}:")).unwrap().gid, Some(0));
        let numeric = parse("4242:4343").unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, Some(4343)));
        assert!(parse("no-such-user-pcibind")
            .unwrap_err()
            .contains("no user is named"));
        assert!(parse(&format!("{root}:no-such-group-pcibind"))
            .unwrap_err()
            .contains("no group is named"));
        assert!(parse(":0").is_err());
    }

    #[test]
    fn only_a_devices_own_nodes_are_given() {
        for (path, own) in [
            ("/dev/vfio/7", true),
            ("/dev/vfio/noiommu-3", true),
            ("/dev/vfio/devices/vfio0", true),
            ("/dev/vfio/vfio", false),
            ("/dev/iommu", false),
        ] {
            assert_eq!(is_device_node(Path::new(path)), own, "{path}");
        }
    }
}
