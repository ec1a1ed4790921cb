//! The kernel's module tables (`modules.alias`, `modules.builtin.modinfo`) and their one owner,
//! [`ModuleTables`]: it finds the directory, reads the files (opened and stamped by
//! `os/files.rs`; their formats in `parse.rs`, the indexes built from them in `vfio.rs` and
//! `host.rs`, matching in `matching.rs`), keeps what it read until the files change, and
//! answers the questions the rest of the library asks: the best VFIO module for a device,
//! whether a module claims a device, which host modules match one, and whether a module is a
//! VFIO one. Nothing else asks for these files.
//!
//! Freshness: every question looks the files up again by path, two `stat`s, so a modules
//! directory reached through a symlink that is later re-pointed leads to the new files; and it
//! compares device, inode, size, mtime and ctime with those of the files it read. The ctime
//! catches a table rewritten in place with its size and mtime put back (`cp -p`, `tar`,
//! `touch -r`): no one but the kernel sets it.

mod host;
mod matching;
mod parse;
mod vfio;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use host::HostAliases;
#[cfg(feature = "internals")]
pub use matching::wildcard_count;
use matching::Text;
pub use parse::VFIO_PREFIX;
use parse::{Parser, ALIAS_FILE, BUILTIN_MODINFO_FILE, PCI_PREFIX};
pub use vfio::AliasIndex;

use crate::os::files::{self, ReadError, Stamp};
use crate::types::address::PciAddress;
use crate::types::log::{Logger, Priority};
use crate::types::modalias::Modalias;
use crate::types::name::ModuleName;

/// The module behind the catch-all `vfio_pci:v*d*sv*sd*bc*sc*i*` alias.
pub const VFIO_PCI_MODULE: &str = "vfio_pci";

/// The modules of the VFIO drivers the kernel ships (SPEC 1), known without tables: a service
/// under `ProtectKernelModules=yes` cannot read `modules.alias`, and must still tell a device
/// on a variant driver from one on a host driver.
pub const KNOWN_VFIO_MODULES: [&str; 8] = [
    VFIO_PCI_MODULE,
    "mlx5_vfio_pci",
    "pds_vfio_pci",
    "virtio_vfio_pci",
    "qat_vfio_pci",
    "xe_vfio_pci",
    "hisi_acc_vfio_pci",
    "nvgrace_gpu_vfio_pci",
];

/// Which of a module's aliases a question is about: `vfio_pci:` for VFIO drivers, `pci:` for
/// the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Vfio,
    Host,
}

impl Side {
    pub fn prefix(self) -> &'static str {
        match self {
            Side::Vfio => VFIO_PREFIX,
            Side::Host => PCI_PREFIX,
        }
    }
}

/// Why no alias information could be had: the tables are missing or unreadable.
#[derive(Debug)]
pub struct TablesUnavailable(pub String);

impl fmt::Display for TablesUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The VFIO module chosen for a device, and what the choice rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfioChoice {
    pub module: ModuleName,
    pub basis: ChoiceBasis,
}

/// What a [`VfioChoice`] rests on: what the tables said, or that there were none to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChoiceBasis {
    /// The module's alias matched most specifically (the pattern, after `vfio_pci:`).
    Alias(String),
    /// The tables were read and no `vfio_pci:` alias matches: `vfio_pci`.
    NoAliasMatches,
    /// No tables could be read (why): `vfio_pci`, with no variant looked for.
    NoTables(String),
}

/// Where the tables are and which versions of the files are there.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Located {
    dir: PathBuf,
    alias: Stamp,
    /// `None`: no `modules.builtin.modinfo` (older kernels), or not a regular file.
    builtin: Option<Stamp>,
}

/// The largest `modules.builtin.modinfo` read (6.12's is about 1 MB): a bigger one is ignored
/// with a warning, as an unreadable one is.
const MAX_MODINFO: u64 = 64 << 20;

/// What was read from one version of the tables.
struct Loaded {
    from: Located,
    vfio: Arc<AliasIndex>,
    /// Built on the first question about host drivers.
    host: Option<Arc<HostAliases>>,
}

/// The module tables of one context, shared by its threads.
#[derive(Default)]
pub struct ModuleTables {
    /// The directory set by the caller; `None`: `/lib/modules/<release>`, then
    /// `/usr/lib/modules/<release>`.
    configured: Option<PathBuf>,
    cache: Mutex<Option<Loaded>>,
    /// Reads of `modules.alias` so far (the tests count them).
    reads: AtomicUsize,
    /// Set once missing tables have been warned about (cleared when they load).
    warned: AtomicBool,
}

impl fmt::Debug for ModuleTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleTables")
            .field("configured", &self.configured)
            .finish_non_exhaustive()
    }
}

impl ModuleTables {
    pub fn new(configured: Option<PathBuf>) -> ModuleTables {
        ModuleTables {
            configured,
            ..ModuleTables::default()
        }
    }

    pub fn configured_dir(&self) -> Option<&Path> {
        self.configured.as_deref()
    }

    /// How many times `modules.alias` has been read.
    #[cfg(test)]
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    /// The directory in use and the versions of its files, looked up now.
    fn locate(&self) -> Result<Located, TablesUnavailable> {
        let cannot_read = |path: &Path, e: io::Error| {
            TablesUnavailable(format!("cannot read {}: {e}", path.display()))
        };
        let (dir, alias) = match &self.configured {
            Some(dir) => {
                let path = dir.join(ALIAS_FILE);
                let stamp = Stamp::at(&path).map_err(|e| cannot_read(&path, e))?;
                (dir.clone(), stamp)
            }
            None => {
                let candidates = default_modules_dirs();
                let found = candidates.iter().find_map(|dir| {
                    let path = dir.join(ALIAS_FILE);
                    let meta = files::metadata(&path).ok()?;
                    Some(
                        Stamp::of(&meta)
                            .map(|s| (dir.clone(), s))
                            .map_err(|e| cannot_read(&path, e)),
                    )
                });
                match found {
                    Some(found) => found?,
                    None => {
                        let looked: Vec<String> = candidates
                            .iter()
                            .map(|d| d.join(ALIAS_FILE).display().to_string())
                            .collect();
                        return Err(TablesUnavailable(format!(
                            "no {ALIAS_FILE} found (looked for {})",
                            looked.join(", ")
                        )));
                    }
                }
            }
        };
        let builtin = Stamp::at(&dir.join(BUILTIN_MODINFO_FILE)).ok();
        Ok(Located {
            dir,
            alias,
            builtin,
        })
    }

    /// A panic while the cache's lock is held (poisoning it), as a bug in a reader would.
    #[cfg(test)]
    pub(crate) fn panic_holding_the_cache(&self) -> ! {
        let _held = self.cache.lock();
        panic!("boom")
    }

    /// Drops the cached indexes: the next question reads the tables again.
    pub fn forget(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The indexes of the tables as they are now: the `vfio_pci:` side, and with `host` the
    /// `pci:` side too; read again only when the files changed. Reading happens under the
    /// cache's lock, so threads arriving together read once.
    fn indexes(
        &self,
        host: bool,
        log: &Logger,
    ) -> Result<(Arc<AliasIndex>, Option<Arc<HostAliases>>), TablesUnavailable> {
        // What reading logs reaches the callback after the lock is released.
        let _deferral = log.defer();
        let located = self.locate()?;
        let mut slot = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = slot.as_ref() {
            if loaded.from == located && (!host || loaded.host.is_some()) {
                return Ok((Arc::clone(&loaded.vfio), loaded.host.clone()));
            }
        }
        *slot = None;
        let loaded = self.read(located, host, log)?;
        let answer = (Arc::clone(&loaded.vfio), loaded.host.clone());
        *slot = Some(loaded);
        Ok(answer)
    }

    /// Reads the tables at `located`. The stamps kept are those of the files as opened, so a
    /// change made while reading is seen at the next question.
    fn read(
        &self,
        mut located: Located,
        host: bool,
        log: &Logger,
    ) -> Result<Loaded, TablesUnavailable> {
        let alias_path = located.dir.join(ALIAS_FILE);
        let unavailable =
            |e: io::Error| TablesUnavailable(format!("cannot read {}: {e}", alias_path.display()));
        let (file, stamp) = files::open_regular(&alias_path).map_err(unavailable)?;
        located.alias = stamp;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mut parser = Parser::new(host, log);
        parser.read_alias_file(file).map_err(unavailable)?;
        if located.builtin.is_some() {
            let path = located.dir.join(BUILTIN_MODINFO_FILE);
            let read = files::open_regular(&path)
                .map_err(ReadError::Io)
                .and_then(|(file, stamp)| Ok((files::read_bounded(file, MAX_MODINFO)?, stamp)))
                .map_err(|e| match e {
                    ReadError::Longer(_) => format!("larger than {MAX_MODINFO} bytes"),
                    ReadError::Io(e) => e.to_string(),
                });
            match read {
                Ok((data, stamp)) => {
                    parser.builtin_modinfo(&data);
                    located.builtin = Some(stamp);
                }
                // Optional: the tables are usable without it.
                Err(e) => log.log(
                    Priority::Warning,
                    format_args!("ignoring {}: {e}", path.display()),
                ),
            }
        }
        let (vfio, host) = parser.finish();
        match &host {
            Some(host) => log.log(
                Priority::Debug,
                format_args!(
                    "loaded {} pci and {} vfio_pci aliases from {}",
                    host.len(),
                    vfio.len(),
                    located.dir.display()
                ),
            ),
            None => log.log(
                Priority::Debug,
                format_args!(
                    "loaded {} vfio_pci aliases from {}",
                    vfio.len(),
                    located.dir.display()
                ),
            ),
        }
        Ok(Loaded {
            from: located,
            vfio: Arc::new(vfio),
            host: host.map(Arc::new),
        })
    }

    /// The module of the most specific VFIO driver for the device (SPEC 3.2): a variant when
    /// one of its `vfio_pci:` aliases matches, else `vfio_pci`. Missing or unreadable tables
    /// are not an error: a warning is logged (once, then at debug level until they load) and
    /// the answer is `vfio_pci`.
    pub fn best_vfio_module(
        &self,
        address: &PciAddress,
        modalias: &Modalias,
        log: &Logger,
    ) -> ModuleName {
        self.vfio_choice(address, modalias, log).module
    }

    /// [`ModuleTables::best_vfio_module`], with what the choice rests on, for a plan to say.
    pub fn vfio_choice(
        &self,
        address: &PciAddress,
        modalias: &Modalias,
        log: &Logger,
    ) -> VfioChoice {
        let fallback = |basis| VfioChoice {
            module: ModuleName::new(VFIO_PCI_MODULE).expect("a valid module name"),
            basis,
        };
        let index = match self.indexes(false, log) {
            Ok((index, _)) => {
                self.warned.store(false, Ordering::Relaxed);
                index
            }
            Err(why) => {
                // A warning the first time; the same news for every device after it is noise.
                let priority = if self.warned.swap(true, Ordering::Relaxed) {
                    Priority::Debug
                } else {
                    Priority::Warning
                };
                log.log(
                    priority,
                    format_args!("{why}; using {VFIO_PCI_MODULE} for {address}"),
                );
                return fallback(ChoiceBasis::NoTables(why.0));
            }
        };
        let Some(choice) = index.best_match(modalias) else {
            log.log(
                Priority::Info,
                format_args!("no vfio_pci alias matches {address} ({modalias}); using vfio_pci"),
            );
            return fallback(ChoiceBasis::NoAliasMatches);
        };
        let vfio = VFIO_PREFIX;
        if let Some((other, pattern)) = choice.tie {
            log.log(
                Priority::Warning,
                format_args!(
                    "tie for {address}: '{}' ({vfio}{}) and '{other}' ({vfio}{pattern}) match \
                     equally specifically; choosing '{}', first in file order",
                    choice.module, choice.pattern, choice.module
                ),
            );
        }
        log.log(
            Priority::Info,
            format_args!(
                "{address} ({modalias}) -> {} by alias {vfio}{}",
                choice.module, choice.pattern
            ),
        );
        VfioChoice {
            module: choice.module.clone(),
            basis: ChoiceBasis::Alias(choice.pattern.to_owned()),
        }
    }

    /// True when `module` is a VFIO driver's: one the kernel ships (known without tables), or
    /// one that declares `vfio_pci:` aliases.
    pub fn is_vfio_module(&self, module: &ModuleName, log: &Logger) -> bool {
        KNOWN_VFIO_MODULES.contains(&module.as_str())
            || self
                .indexes(false, log)
                .is_ok_and(|(index, _)| index.is_vfio_module(module))
    }

    /// Whether one of `module`'s aliases on `side` matches the device; `Ok(None)` when the
    /// tables hold no such alias of `module`. `vfio_pci`'s catch-all claims every device,
    /// tables or not.
    pub fn claims(
        &self,
        module: &ModuleName,
        modalias: &Modalias,
        side: Side,
        log: &Logger,
    ) -> Result<Option<bool>, TablesUnavailable> {
        match side {
            Side::Vfio if module.as_str() == VFIO_PCI_MODULE => Ok(Some(true)),
            Side::Vfio => {
                let (index, _) = self.indexes(false, log)?;
                Ok(index.module_claims(module, &Text::of(modalias)))
            }
            Side::Host => Ok(self.host(log)?.module_claims(module, modalias)),
        }
    }

    /// The host modules whose `pci:` aliases match the device, in table order.
    pub fn host_modules(
        &self,
        modalias: &Modalias,
        log: &Logger,
    ) -> Result<Vec<ModuleName>, TablesUnavailable> {
        Ok(self.host(log)?.matching_modules(modalias))
    }

    /// Every module with a `pci:` or a `vfio_pci:` alias, each once, in name order.
    pub fn pci_modules(&self, log: &Logger) -> Result<Vec<ModuleName>, TablesUnavailable> {
        let (vfio, host) = self.indexes(true, log)?;
        let mut out: Vec<ModuleName> = host
            .iter()
            .flat_map(|h| h.modules())
            .chain(vfio.modules())
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn host(&self, log: &Logger) -> Result<Arc<HostAliases>, TablesUnavailable> {
        match self.indexes(true, log)? {
            (_, Some(host)) => Ok(host),
            (_, None) => Err(TablesUnavailable("internal: host aliases not built".into())),
        }
    }
}

/// Where the tables are looked for when no modules dir is configured, in order.
fn default_modules_dirs() -> Vec<PathBuf> {
    match files::kernel_release() {
        Some(release) => vec![
            Path::new("/lib/modules").join(&release),
            Path::new("/usr/lib/modules").join(&release),
        ],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
