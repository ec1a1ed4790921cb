//! Saved driver overrides (SPEC 3.11), in driverctl's format so a host moving from driverctl
//! keeps its settings: one file per device, `DIR/pci-DDDD:BB:DD.F`, holding the PCI driver's
//! exact name and a newline (what driverctl's `echo "$drv" >FILE` writes; it reads the file
//! back with `$(<FILE)`, which drops trailing newlines, and writes the name into
//! `driver_override` as it is, so the name saved must be the driver's, not its module's).
//! `none` means unbound, as in driverctl.
//!
//! Writes are atomic (a temporary file in the same directory, fsync, rename, fsync of the
//! directory), so a crash leaves the old file or the new one, never half of one. A saved file
//! that is a symbolic link, a directory or anything but a regular file is refused, not
//! followed or replaced: someone put it there on purpose.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pcibind::{Context, DriverName, Error, PciAddress, NO_DRIVER_OVERRIDE};

use crate::runner::{refuse, Done, Format, Refusal};

/// Where driverctl keeps its overrides, and so where the tool does unless told otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/driverctl.d";

/// The bus prefix of driverctl's file names (`pci-0000:01:00.0`); driverctl also writes other
/// buses' files into the same directory, which are not ours to read.
pub(crate) const PREFIX: &str = "pci-";

/// The longest saved file read: a driver name and a newline are far shorter.
const MAX_FILE: u64 = 4096;

/// One saved override's file: the device it is for and the driver it holds, or why it is
/// unusable.
pub type Saved = Result<(PciAddress, DriverName), Error>;

/// The directory of saved overrides.
pub struct Store {
    dir: PathBuf,
}

fn io_error(step: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(path: &Path, detail: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// The driver name a saved file holds: one line, a valid driver name (or `none`), with the
/// trailing newlines driverctl's reading drops (and trailing blanks) ignored.
fn parse(path: &Path, bytes: &[u8]) -> Result<DriverName, Error> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| malformed(path, "not text (a saved override holds a driver name)"))?;
    let name = text.trim_end();
    if name.is_empty() {
        return Err(malformed(
            path,
            "empty (a saved override holds a driver name; remove the file to drop it)",
        ));
    }
    if name.contains('\n') {
        return Err(malformed(
            path,
            "more than one line (one driver name expected)",
        ));
    }
    DriverName::new(name).map_err(|e| match e {
        Error::InvalidArg(why) => malformed(path, why),
        e => malformed(path, e.to_string()),
    })
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// The file of the device's saved override, whether it exists or not.
    pub fn path(&self, address: &PciAddress) -> PathBuf {
        self.dir.join(format!("{PREFIX}{address}"))
    }

    /// The device's saved driver, `None` when nothing is saved for it.
    pub fn load(&self, address: &PciAddress) -> Result<Option<DriverName>, Error> {
        let path = self.path(address);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(malformed(&path, "a symbolic link; refusing to follow it"))
            }
            Err(e) => return Err(io_error("reading a saved override", &path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_error("reading a saved override", &path, e))?;
        if !meta.is_file() {
            return Err(malformed(&path, "not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("reading a saved override", &path, e))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(malformed(&path, format!("longer than {MAX_FILE} bytes")));
        }
        parse(&path, &bytes).map(Some)
    }

    /// Every saved override, in file name order (which is address order); a missing
    /// directory holds none. A `pci-` file whose name is no canonical address is listed as
    /// unusable; other files (other buses', temporary ones) are skipped.
    pub fn list(&self) -> Result<Vec<Saved>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("listing saved overrides", &self.dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing saved overrides", &self.dir, e))?;
            if let Some(rest) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
            {
                names.push(rest.to_owned());
            }
        }
        names.sort();
        Ok(names.iter().map(|rest| self.saved(rest)).collect())
    }

    /// The saved file `pci-REST`, read.
    fn saved(&self, rest: &str) -> Saved {
        let path = self.dir.join(format!("{PREFIX}{rest}"));
        match PciAddress::parse(rest) {
            Ok(address) if address.to_string() == rest => match self.load(&address)? {
                Some(driver) => Ok((address, driver)),
                None => Err(malformed(&path, "vanished while read")),
            },
            _ => Err(malformed(
                &path,
                "the name is not pci- and a PCI address in the DDDD:BB:DD.F form driverctl \
                 writes; rename or remove it",
            )),
        }
    }

    /// Saves `driver` for the device, atomically; the directory is made if needed.
    pub fn save(&self, address: &PciAddress, driver: &DriverName) -> Result<PathBuf, Error> {
        let path = self.path(address);
        self.refuse_odd_file(&path)?;
        fs::create_dir_all(&self.dir)
            .map_err(|e| io_error("saving the override: creating the directory", &self.dir, e))?;
        let temp = self
            .dir
            .join(format!(".{PREFIX}{address}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&temp); // left by a crash of an earlier process with our pid
        let written = write_synced(&temp, format!("{driver}\n").as_bytes())
            .and_then(|()| fs::rename(&temp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error("saving the override", &path, e));
        }
        self.sync_dir()?;
        Ok(path)
    }

    /// What `--persist` checks before any device changes, so that a file that could not be
    /// saved (or removed) never leaves a device moved but not recorded: the directory made
    /// if missing and writable, and no link, directory or other odd file where a device's
    /// file goes.
    pub fn check_writable(&self, addresses: &[PciAddress]) -> Result<(), Error> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| io_error("saving the override: creating the directory", &self.dir, e))?;
        let dir = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
            .map_err(|_| malformed(&self.dir, "a NUL byte in the directory's name"))?;
        // SAFETY: a valid NUL-terminated path; access(2) only reads it.
        if unsafe { libc::access(dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            return Err(io_error(
                "saving the override: the directory is not writable",
                &self.dir,
                io::Error::last_os_error(),
            ));
        }
        addresses
            .iter()
            .try_for_each(|a| self.refuse_odd_file(&self.path(a)))
    }

    /// Removes the device's saved override; false when there was none.
    pub fn remove(&self, address: &PciAddress) -> Result<bool, Error> {
        let path = self.path(address);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("removing the saved override", &path, e)),
            Ok(meta) if meta.is_dir() => {
                return Err(malformed(&path, "a directory; not removing it"))
            }
            Ok(_) => {}
        }
        fs::remove_file(&path).map_err(|e| io_error("removing the saved override", &path, e))?;
        self.sync_dir()?;
        Ok(true)
    }

    /// A link or anything but a regular file where the saved file goes is refused: renaming
    /// over it would silently undo what whoever put it there meant.
    fn refuse_odd_file(&self, path: &Path) -> Result<(), Error> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(malformed(
                path,
                "a symbolic link; not replacing it (remove it, or save the override where it \
                 points)",
            )),
            Ok(meta) if !meta.is_file() => {
                Err(malformed(path, "not a regular file; not replacing it"))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("saving the override", path, e)),
        }
    }

    /// Makes a rename or removal in the directory durable.
    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("saving the override: syncing the directory", &self.dir, e))
    }
}

/// Writes a new file (never an existing one, never through a link) and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    file.write_all(bytes)?;
    file.sync_all()
}

// ---- The commands: --persist, `list --persisted` (`apply`: apply.rs) ----------------------------

/// What `--persist` does once a device has changed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    No,
    /// Save the driver the device is on now: the one asked for, exactly as the kernel names
    /// it (driverctl writes the name into `driver_override` as it is), the VFIO driver chosen
    /// when none was named, or `none` when the device was left unbound.
    Save,
    /// Remove the saved override (driverctl's unset-override).
    Remove,
}

impl Persist {
    /// `what` when `--persist` was given, else nothing.
    pub fn when(persist: bool, what: Persist) -> Persist {
        if persist {
            what
        } else {
            Persist::No
        }
    }

    /// Before anything changes: can the files of these devices be saved or removed? On
    /// failure the errors are printed and the exit status returned, nothing changed.
    pub fn check(self, format: Format, store: &Store, addresses: &[PciAddress]) -> Result<(), u8> {
        if self == Persist::No {
            return Ok(());
        }
        if self == Persist::Remove && !store.dir.exists() {
            return Ok(()); // nothing saved, nothing to remove
        }
        store
            .check_writable(addresses)
            .map_err(|e| refuse(format, vec![Refusal::of(e)]))
    }

    /// After a device changed to `driver` (`None`: unbound), with `done` its report line:
    /// saves that driver, or removes the saved override, and says so on the line. A failure
    /// here is the device's failure (it did change, but will not be put there again at
    /// boot), and the message says that it changed.
    pub fn after(
        self,
        store: &Store,
        address: &PciAddress,
        driver: Option<&DriverName>,
        done: String,
    ) -> Result<String, Error> {
        let recorded = match self {
            Persist::No => return Ok(done),
            Persist::Save => {
                let none = DriverName::new(NO_DRIVER_OVERRIDE)?;
                let driver = driver.unwrap_or(&none);
                store
                    .save(address, driver)
                    .map(|path| format!("; saved {driver} in {}", path.display()))
            }
            Persist::Remove => store.remove(address).map(|removed| {
                if removed {
                    format!("; removed {}", store.path(address).display())
                } else {
                    String::new()
                }
            }),
        };
        match recorded {
            Ok(note) => Ok(done + &note),
            Err(e) => {
                eprintln!("pcibind: {address}: {done}, but its saved override was not updated");
                Err(e)
            }
        }
    }

    /// `after` for the report of the device at `address`.
    pub fn after_one(
        self,
        store: &Store,
        address: &str,
        outcome: Result<Done, Error>,
    ) -> Result<Done, Error> {
        let mut done = outcome?;
        let address = PciAddress::parse(address)?;
        done.line = self.after(store, &address, done.driver.as_ref(), done.line)?;
        Ok(done)
    }

    /// After a group moved (`members`: every member of its unit, bridges included): with
    /// Save, every member now on a VFIO driver is saved (also those that were there already,
    /// or the group would not be viable after a boot); with Remove, every member's saved
    /// override goes.
    pub fn after_group(
        self,
        ctx: &Context,
        store: &Store,
        members: &[PciAddress],
        mut done: Done,
    ) -> Result<Done, Error> {
        for member in members {
            let driver = ctx.current_driver(&member.to_string())?;
            if self == Persist::Save && !ctx.is_vfio_bound(&member.to_string())? {
                continue;
            }
            done.line = self.after(store, member, driver.as_ref(), done.line)?;
        }
        Ok(done)
    }
}

/// `pcibind list --persisted`: every saved override, the driver its device is on now and
/// whether that is the saved one; unusable files are named on stderr (status 11), and the
/// rest still listed.
pub fn list(ctx: &Context, store: &Store, json: bool) -> Result<u8, Error> {
    let mut rows = Vec::new();
    let mut status = 0;
    for saved in store.list()? {
        match saved {
            Ok((address, driver)) => rows.push(Row::new(ctx, address, driver)),
            Err(e) => {
                eprintln!("pcibind: {e}");
                status = crate::exit::status_of(&e);
            }
        }
    }
    let mut out = io::stdout().lock();
    if json {
        let items: Vec<String> = rows.iter().map(Row::json).collect();
        crate::output::print_json_array(&mut out, &items);
    } else {
        let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
        crate::output::print_table(&mut out, &["ADDRESS", "SAVED", "DRIVER", "APPLIED"], &cells);
    }
    Ok(status)
}

/// A saved override as `list --persisted` shows it.
struct Row {
    address: PciAddress,
    saved: DriverName,
    /// `None`: the device is not present.
    now: Option<Option<DriverName>>,
}

impl Row {
    fn new(ctx: &Context, address: PciAddress, saved: DriverName) -> Row {
        Row {
            now: ctx.current_driver(&address.to_string()).ok(),
            address,
            saved,
        }
    }

    /// The device is on its saved driver (unbound for `none`).
    fn applied(&self) -> bool {
        self.now.as_ref().is_some_and(|now| {
            now.as_ref().map_or(NO_DRIVER_OVERRIDE, |d| d.as_str()) == self.saved.as_str()
        })
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.address.to_string(),
            self.saved.to_string(),
            match &self.now {
                None => "(not present)".into(),
                Some(now) => now.as_ref().map_or("-".into(), |d| d.to_string()),
            },
            if self.applied() { "yes" } else { "no" }.into(),
        ]
    }

    fn json(&self) -> String {
        format!(
            "  {{\"address\": {}, \"saved_driver\": {}, \"present\": {}, \"driver\": {}, \
             \"applied\": {}}}",
            crate::output::json_str(&self.address.to_string()),
            crate::output::json_str(self.saved.as_str()),
            self.now.is_some(),
            crate::output::json_opt(
                self.now
                    .as_ref()
                    .and_then(|d| d.as_ref().map(|d| d.as_str()))
            ),
            self.applied(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What driverctl writes (`echo`), and what its `$(<FILE)` would also read back.
    #[test]
    fn reads_what_driverctl_writes() {
        let path = Path::new("pci-0000:00:02.0");
        for text in ["vfio-pci\n", "vfio-pci", "vfio-pci\n\n", "vfio-pci \n"] {
            assert_eq!(parse(path, text.as_bytes()).unwrap().as_str(), "vfio-pci");
        }
        for bad in ["", "\n", " \n", "vfio-pci\nnvme", "-x\n", "a b\n"] {
            assert!(parse(path, bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse(path, b"\xff\xfe").is_err());
    }

    #[test]
    fn saves_atomically_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("driverctl.d"));
        let address = PciAddress::parse("0000:00:02.0").unwrap();
        assert_eq!(store.load(&address).unwrap(), None);
        store
            .save(&address, &DriverName::new("vfio-pci").unwrap())
            .unwrap();
        store
            .save(&address, &DriverName::new("xe-vfio-pci").unwrap())
            .unwrap();
        assert_eq!(
            fs::read_to_string(store.path(&address)).unwrap(),
            "xe-vfio-pci\n"
        );
        // Nothing else is left in the directory: no temporary file.
        assert_eq!(fs::read_dir(&store.dir).unwrap().count(), 1);
        assert!(store.remove(&address).unwrap());
        assert!(!store.remove(&address).unwrap());
    }
}
