//! Resolving a user-given name (a module or driver name, in either `-`/`_` spelling) to the exact
//! name of a registered PCI driver (SPEC 3.1). Every answer names a directory that exists in
//! `bus/pci/drivers/` at the time of the call, so nothing unconfirmed reaches `driver_override`.

use std::time::{Duration, Instant};

use crate::os::modprobe::{LoadError, Modprobe};
use crate::os::sysfs::AbsentMeans;
use crate::os::sysfs::{Sysfs, NO_DRIVER_OVERRIDE};
use crate::types::error::{Error, Result};
use crate::types::log::{Logger, Priority};
use crate::types::name::{DriverName, ModuleName};

/// `name` resolved to a registered driver (SPEC 3.1), loading its module when needed: the
/// three parts below in a row, for a caller with no transaction around the load
/// (`Context::resolve_driver`). A move loads as a step of its transaction instead (`txn::Load`).
pub(crate) fn resolve_driver(
    sysfs: &Sysfs,
    modprobe: &Modprobe,
    modprobe_timeout: Duration,
    log: &Logger,
    name: &DriverName,
) -> Result<DriverName> {
    match before_load(sysfs, log, name, !modprobe.is_disabled())? {
        Resolved::Driver(driver) => Ok(driver),
        Resolved::NeedsLoad(module) => {
            let loaded = load_module(sysfs, modprobe, modprobe_timeout, log, &module);
            after_load(sysfs, log, name, Some(loaded))
        }
    }
}

/// What a name resolves to before anything is loaded.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// A registered driver: nothing to load.
    Driver(DriverName),
    /// Only loading this module tells (SPEC 3.1 step 3: not loaded yet, or a load in flight,
    /// and loading is enabled); [`after_load`] gives the answer once it ran.
    NeedsLoad(ModuleName),
}

/// SPEC 3.1 up to the load: the driver when `name` names one now, else the module to load
/// first (`may_load`: module loading is enabled), else the answer without a load (steps 3-5
/// with nothing loaded).
pub(crate) fn before_load(
    sysfs: &Sysfs,
    log: &Logger,
    name: &DriverName,
    may_load: bool,
) -> Result<Resolved> {
    // `none` is what `driver_override` holds to keep a device on no driver (and what driverctl
    // users type for that); as a driver name it would only ever mean `modprobe none`.
    if name.as_str() == NO_DRIVER_OVERRIDE {
        return Err(Error::NoDriver(format!(
            "'{NO_DRIVER_OVERRIDE}' is the driver_override value that keeps a device on no \
             driver, not a driver; to leave a device unbound, unbind it"
        )));
    }

    // 1-2: the name, or its `_` spelling, is a registered driver.
    for candidate in [name.clone(), name.underscored()] {
        if sysfs.driver_exists(&candidate) {
            log.log(
                Priority::Debug,
                format_args!("'{name}' resolves to PCI driver '{candidate}'"),
            );
            return Ok(Resolved::Driver(candidate));
        }
    }

    // 3: the name as a module, loaded if needed. The module's directory appears when a load
    // starts and its driver during its init, a moment later: a directory without a driver
    // whose initstate is not `live` is a load in flight, perhaps another caller's. modprobe
    // runs then too (the kernel makes it wait for the load in flight).
    let module = ModuleName::from(name);
    let in_flight = load_in_flight(sysfs, &module)?;
    if may_load && (in_flight.is_some() || !sysfs.module_exists(&module)) {
        return Ok(Resolved::NeedsLoad(module));
    }
    after_load(sysfs, log, name, None).map(Resolved::Driver)
}

/// Loads `module` for a driver name being resolved (SPEC 3.1 step 3, 3.6), saying so in the
/// log. "No such module" is only said at `Info`: the usual end of a mistyped name, reported
/// in the error when nothing else finds a driver.
pub(crate) fn load_module(
    sysfs: &Sysfs,
    modprobe: &Modprobe,
    modprobe_timeout: Duration,
    log: &Logger,
    module: &ModuleName,
) -> std::result::Result<(), LoadError> {
    match load_in_flight(sysfs, module) {
        Ok(Some(state)) => log.log(
            Priority::Info,
            format_args!("loading module '{module}' (a load is in flight: initstate {state})"),
        ),
        _ => log.log(Priority::Info, format_args!("loading module '{module}'")),
    }
    let loaded = modprobe.try_load(module, modprobe_timeout);
    match &loaded {
        Ok(()) => {}
        Err(LoadError::NotFound { detail, .. }) => {
            log.log(Priority::Info, format_args!("{detail}"))
        }
        Err(LoadError::Failed(e)) => log.log(Priority::Warning, format_args!("{e}")),
    }
    loaded
}

/// SPEC 3.1 steps 3-5 once the module load `loaded` ran (`None`: none ran). A load still in
/// flight after it (modprobe disabled, or one that did not wait) is waited for, so two callers
/// racing on a first load both end with the driver.
pub(crate) fn after_load(
    sysfs: &Sysfs,
    log: &Logger,
    name: &DriverName,
    loaded: Option<std::result::Result<(), LoadError>>,
) -> Result<DriverName> {
    let module = ModuleName::from(name);
    let mut load_error = None;
    let mut not_found = None;
    let mut loaded_now = false;
    match loaded {
        None => {}
        Some(Ok(())) => loaded_now = true,
        Some(Err(LoadError::NotFound { detail, .. })) => not_found = Some(detail),
        Some(Err(LoadError::Failed(e))) => load_error = Some(e),
    }
    wait_for_load(sysfs, log, &module, LOAD_WAIT)?;
    if let Some(driver) = registered_driver(sysfs, log, name, &module)? {
        return Ok(driver);
    }

    // 4: built-ins and modules without the link: a driver whose `module` link names the module,
    // else a driver named like the module modulo `-`/`_`.
    let drivers = sysfs.drivers().absent_means(Vec::new())?;
    for driver in &drivers {
        if sysfs.driver_module(driver)?.as_ref() == Some(&module) {
            log.log(
                Priority::Debug,
                format_args!("PCI driver '{driver}' belongs to module '{module}'"),
            );
            return Ok(driver.clone());
        }
    }
    if let Some(driver) = drivers.iter().find(|d| d.same_modulo_dash(module.as_str())) {
        log.log(
            Priority::Debug,
            format_args!("'{name}' matches PCI driver '{driver}' modulo '-'/'_'"),
        );
        return Ok(driver.clone());
    }

    // The module's directory appeared without its initstate, which the kernel adds a moment
    // later: it looked built in, but was a load just starting.
    if load_in_flight(sysfs, &module)?.is_some() {
        wait_for_load(sysfs, log, &module, LOAD_WAIT)?;
        if let Some(driver) = registered_driver(sysfs, log, name, &module)? {
            return Ok(driver);
        }
    }

    // 5: nothing. Say what was looked for and where.
    if let Some(e) = load_error {
        return Err(e);
    }
    let drivers_dir = sysfs.drivers_dir();
    if let Some(detail) = not_found {
        return Err(Error::NoDriver(format!(
            "no PCI driver or module is named '{name}': no such driver in {}, and {detail}",
            drivers_dir.display()
        )));
    }
    let module_drivers = sysfs.module_dir(&module).join("drivers");
    let why = if sysfs.module_exists(&module) {
        let state = if loaded_now {
            "was loaded"
        } else {
            "is loaded"
        };
        format!(
            "module '{module}' {state} but registers no PCI driver (looked in {} and {})",
            module_drivers.display(),
            drivers_dir.display()
        )
    } else if loaded_now {
        format!(
            "modprobe loaded '{module}' but {} does not exist and no PCI driver in {} is named \
             '{name}' or belongs to it",
            sysfs.module_dir(&module).display(),
            drivers_dir.display()
        )
    } else {
        format!(
            "no PCI driver '{name}' in {} and module '{module}' is not loaded (module loading is \
             disabled)",
            drivers_dir.display()
        )
    };
    Err(Error::NoDriver(why))
}

/// The PCI driver `module` registers (`module/MOD/drivers/pci:DRV`), when registered now: the
/// one named like `name` modulo `-`/`_`, else the first in name order.
fn registered_driver(
    sysfs: &Sysfs,
    log: &Logger,
    name: &DriverName,
    module: &ModuleName,
) -> Result<Option<DriverName>> {
    let registered = sysfs.module_pci_drivers(module)?;
    let preferred = registered
        .iter()
        .find(|d| name.same_modulo_dash(d.as_str()))
        .or_else(|| registered.first());
    let Some(driver) = preferred.filter(|d| sysfs.driver_exists(d)) else {
        return Ok(None);
    };
    log.log(
        Priority::Debug,
        format_args!("module '{module}' registers PCI driver '{driver}'"),
    );
    Ok(Some(driver.clone()))
}

/// How long a load in flight is waited for. Module inits that probe hardware can take
/// seconds; one that takes this long is stuck.
const LOAD_WAIT: Duration = Duration::from_secs(60);

/// The module's initstate when a load of it is in flight: its directory exists with an
/// initstate other than `live` and no PCI driver is registered yet. A directory without an
/// initstate is a built-in module's.
fn load_in_flight(sysfs: &Sysfs, module: &ModuleName) -> Result<Option<String>> {
    let Some(state) = sysfs.module_initstate(module)? else {
        return Ok(None);
    };
    if state == "live" {
        return Ok(None);
    }
    let registered = sysfs.module_pci_drivers(module)?;
    Ok((!registered.iter().any(|d| sysfs.driver_exists(d))).then_some(state))
}

/// Returns once no load of `module` is in flight (it went live, registered its driver, or
/// failed and left); fails after `limit`.
fn wait_for_load(sysfs: &Sysfs, log: &Logger, module: &ModuleName, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut said = false;
    while let Some(state) = load_in_flight(sysfs, module)? {
        if !std::mem::replace(&mut said, true) {
            log.log(
                Priority::Info,
                format_args!(
                    "waiting for the load of module '{module}' in flight (initstate {state})"
                ),
            );
        }
        if start.elapsed() >= limit {
            return Err(Error::NoDriver(format!(
                "module '{module}' is still loading after {} s (initstate '{state}' in {}) and \
                 registers no PCI driver yet",
                limit.as_secs(),
                sysfs.module_dir(module).display()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_the_no_driver_override_never_a_module_to_load() {
        let dir = tempfile::tempdir().unwrap();
        // Even a driver directory named `none` does not make the name a driver to bind.
        std::fs::create_dir_all(dir.path().join("bus/pci/drivers/none")).unwrap();
        let sysfs = Sysfs::new(dir.path().to_path_buf()).unwrap();
        // Were modprobe run, the error would be a failed load ("cannot run ...").
        let modprobe = Modprobe::Program(dir.path().join("modprobe-must-not-run"));
        let name = DriverName::new(NO_DRIVER_OVERRIDE).unwrap();
        match resolve_driver(
            &sysfs,
            &modprobe,
            crate::os::modprobe::DEFAULT_MODPROBE_TIMEOUT,
            &Logger::default(),
            &name,
        ) {
            Err(Error::NoDriver(message)) => {
                assert!(
                    message.contains("'none' is the driver_override value"),
                    "{message}"
                );
                assert!(message.contains("not a driver"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A tree whose module `foo_vfio` is loading: its directory with initstate `coming`.
    fn loading_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bus/pci/drivers")).unwrap();
        std::fs::create_dir_all(dir.path().join("module/foo_vfio")).unwrap();
        std::fs::write(dir.path().join("module/foo_vfio/initstate"), "coming\n").unwrap();
        dir
    }

    /// What the module's init does when it ends: register the driver, then go live.
    fn finish_load(root: &std::path::Path) {
        std::fs::create_dir_all(root.join("bus/pci/drivers/foo_vfio")).unwrap();
        std::fs::create_dir_all(root.join("module/foo_vfio/drivers")).unwrap();
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/foo_vfio",
            root.join("module/foo_vfio/drivers/pci:foo_vfio"),
        )
        .unwrap();
        std::fs::write(root.join("module/foo_vfio/initstate"), "live\n").unwrap();
    }

    #[test]
    fn a_load_in_flight_is_waited_for_even_with_module_loading_disabled() {
        let dir = loading_tree();
        let sysfs = Sysfs::new(dir.path().to_path_buf()).unwrap();
        let root = dir.path().to_path_buf();
        let loader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            finish_load(&root);
        });
        let start = Instant::now();
        let name = DriverName::new("foo-vfio").unwrap();
        let driver = resolve_driver(
            &sysfs,
            &Modprobe::Disabled,
            crate::DEFAULT_MODPROBE_TIMEOUT,
            &Logger::default(),
            &name,
        );
        assert_eq!(driver.unwrap().as_str(), "foo_vfio");
        assert!(start.elapsed() >= Duration::from_millis(250));
        loader.join().unwrap();
    }

    #[test]
    fn a_load_that_never_goes_live_fails_after_the_limit() {
        let dir = loading_tree();
        let sysfs = Sysfs::new(dir.path().to_path_buf()).unwrap();
        let module = ModuleName::new("foo_vfio").unwrap();
        let limit = Duration::from_millis(50);
        match wait_for_load(&sysfs, &Logger::default(), &module, limit) {
            Err(Error::NoDriver(message)) => {
                assert!(message.contains("still loading"), "{message}");
                assert!(message.contains("initstate 'coming'"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_module_with_a_non_live_initstate_and_no_driver_is_in_flight() {
        let dir = loading_tree();
        let sysfs = Sysfs::new(dir.path().to_path_buf()).unwrap();
        let module = ModuleName::new("foo_vfio").unwrap();
        assert_eq!(
            load_in_flight(&sysfs, &module).unwrap().as_deref(),
            Some("coming")
        );
        // Built in: a directory without initstate.
        std::fs::remove_file(dir.path().join("module/foo_vfio/initstate")).unwrap();
        assert_eq!(load_in_flight(&sysfs, &module).unwrap(), None);
        // Its driver registered: done, whatever initstate says yet.
        finish_load(dir.path());
        std::fs::write(dir.path().join("module/foo_vfio/initstate"), "coming\n").unwrap();
        assert_eq!(load_in_flight(&sysfs, &module).unwrap(), None);
    }
}
