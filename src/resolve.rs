//! Resolving a user-given name (a module or driver name, in either `-`/`_` spelling) to the exact
//! name of a registered PCI driver (SPEC 3.1). Every answer names a directory that exists in
//! `bus/pci/drivers/` at the time of the call, so nothing unconfirmed reaches `driver_override`.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::log::{Logger, Priority};
use crate::modprobe::{LoadError, Modprobe};
use crate::name::{DriverName, ModuleName};
use crate::sysfs::{Sysfs, NO_DRIVER_OVERRIDE};

pub(crate) fn resolve_driver(
    sysfs: &Sysfs,
    modprobe: &Modprobe,
    modprobe_timeout: Duration,
    log: &Logger,
    name: &DriverName,
) -> Result<DriverName> {
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
            return Ok(candidate);
        }
    }

    // 3: the name as a module, loaded if needed, and the PCI drivers it registers.
    let module = ModuleName::from(name);
    let mut load_error = None;
    let mut not_found = None;
    let mut loaded_now = false;
    if !sysfs.module_exists(&module) && !modprobe.is_disabled() {
        log.log(Priority::Info, format_args!("loading module '{module}'"));
        match modprobe.try_load(&module, modprobe_timeout) {
            Ok(()) => loaded_now = true,
            // The usual end of a mistyped name, and said in the error if nothing below finds
            // a driver: not worth a warning.
            Err(LoadError::NotFound { detail, .. }) => {
                log.log(Priority::Info, format_args!("{detail}"));
                not_found = Some(detail);
            }
            Err(LoadError::Failed(e)) => {
                log.log(Priority::Warning, format_args!("{e}"));
                load_error = Some(e);
            }
        }
    }
    let registered = sysfs.module_pci_drivers(&module)?;
    let preferred = registered
        .iter()
        .find(|d| name.same_modulo_dash(d.as_str()))
        .or_else(|| registered.first());
    if let Some(driver) = preferred.filter(|d| sysfs.driver_exists(d)) {
        log.log(
            Priority::Debug,
            format_args!("module '{module}' registers PCI driver '{driver}'"),
        );
        return Ok(driver.clone());
    }

    // 4: built-ins and modules without the link: a driver whose `module` link names the module,
    // else a driver named like the module modulo `-`/`_`.
    let drivers = sysfs.drivers().or_else(|e| match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        _ => Err(e),
    })?;
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
            crate::modprobe::DEFAULT_MODPROBE_TIMEOUT,
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
}
