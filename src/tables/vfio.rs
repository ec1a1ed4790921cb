//! The `vfio_pci:` side of the tables: the aliases VFIO drivers declare, ranked for variant
//! detection (SPEC 3.2).

use std::ffi::CString;

use super::matching::{matches, wild_fields, wildcard_count, Text};
use super::parse::usable;
#[cfg(any(test, feature = "internals"))]
use super::parse::Parser;
use crate::types::log::{Logger, Priority};
use crate::types::modalias::Modalias;
use crate::types::name::ModuleName;

#[derive(Debug)]
struct VfioAlias {
    /// The glob after `vfio_pci:`, matched against a modalias after `pci:`.
    pattern: CString,
    module: ModuleName,
    /// Modalias fields (v, d, sv, sd, bc, sc, i) the pattern leaves open: fewer is more specific.
    wild_fields: u8,
    /// Wildcards in the whole pattern: the tie-breaker after `wild_fields`.
    wild_chars: u16,
}

impl VfioAlias {
    fn pattern(&self) -> &str {
        // Made from a &str.
        self.pattern.to_str().unwrap_or_default()
    }
}

/// The parsed `vfio_pci:` aliases of one kernel, in file order (`modules.alias` first).
#[derive(Debug, Default)]
pub struct AliasIndex {
    aliases: Vec<VfioAlias>,
}

/// The winner of a lookup, borrowed from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<'a> {
    pub module: &'a ModuleName,
    /// The winning pattern, after `vfio_pci:`.
    pub pattern: &'a str,
    /// Another module whose alias matched exactly as specifically (it lost on file order).
    pub tie: Option<(&'a ModuleName, &'a str)>,
}

impl AliasIndex {
    /// Builds the index from the contents of `modules.alias` and, when present,
    /// `modules.builtin.modinfo`. Malformed `vfio_pci:` lines are skipped with a debug log.
    #[cfg(any(test, feature = "internals"))]
    pub fn parse(alias_file: &[u8], builtin_modinfo: Option<&[u8]>, log: &Logger) -> AliasIndex {
        let mut parser = Parser::new(false, log);
        parser.alias_lines(alias_file, 0);
        if let Some(modinfo) = builtin_modinfo {
            parser.builtin_modinfo(modinfo);
        }
        parser.finish().0
    }

    pub(super) fn add(&mut self, pattern: &str, module: &str, log: &Logger, origin: &str) {
        let module = match ModuleName::new(module) {
            Ok(m) => m,
            Err(e) => {
                log.log(
                    Priority::Debug,
                    format_args!("{origin}: skipping alias: {e}"),
                );
                return;
            }
        };
        let Some(c_pattern) = usable(pattern)
            .then(|| CString::new(pattern).ok())
            .flatten()
        else {
            log.log(
                Priority::Debug,
                format_args!("{origin}: skipping malformed alias pattern {pattern:?} of {module}"),
            );
            return;
        };
        self.aliases.push(VfioAlias {
            wild_fields: wild_fields(pattern),
            wild_chars: wildcard_count(pattern.as_bytes()).min(u16::MAX as usize) as u16,
            pattern: c_pattern,
            module,
        });
    }

    /// The number of `vfio_pci:` aliases held.
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    /// Bytes of heap the index holds (for the memory budget in the benchmarks).
    #[cfg(any(test, feature = "internals"))]
    pub fn heap_bytes(&self) -> usize {
        self.aliases.capacity() * std::mem::size_of::<VfioAlias>()
            + self
                .aliases
                .iter()
                .map(|a| a.pattern.as_bytes_with_nul().len() + a.module.as_str().len())
                .sum::<usize>()
    }

    /// True when `module` declares `vfio_pci:` aliases: a VFIO driver's module.
    pub fn is_vfio_module(&self, module: &ModuleName) -> bool {
        self.aliases.iter().any(|a| a.module == *module)
    }

    /// The module of every `vfio_pci:` alias, in table order (a module once per alias).
    pub fn modules(&self) -> impl Iterator<Item = &ModuleName> {
        self.aliases.iter().map(|a| &a.module)
    }

    /// `None` when `module` declares no `vfio_pci:` aliases, else whether one matches.
    pub fn module_claims(&self, module: &ModuleName, text: &Text) -> Option<bool> {
        let mut known = false;
        for alias in self.aliases.iter().filter(|a| a.module == *module) {
            if matches(&alias.pattern, text) {
                return Some(true);
            }
            known = true;
        }
        known.then_some(false)
    }

    /// The most specific `vfio_pci:` alias matching the device: fewest open fields, then fewest
    /// wildcards, then file order. `None` when nothing matches (not even a catch-all).
    pub fn best_match(&self, modalias: &Modalias) -> Option<Choice<'_>> {
        let text = Text::of(modalias);
        let mut best: Option<&VfioAlias> = None;
        let mut tie: Option<&VfioAlias> = None;
        for alias in &self.aliases {
            if !matches(&alias.pattern, &text) {
                continue;
            }
            let key = (alias.wild_fields, alias.wild_chars);
            match best {
                Some(b) if key > (b.wild_fields, b.wild_chars) => {}
                Some(b) if key == (b.wild_fields, b.wild_chars) => {
                    if tie.is_none() && alias.module != b.module {
                        tie = Some(alias);
                    }
                }
                _ => {
                    best = Some(alias);
                    tie = None;
                }
            }
        }
        best.map(|b| Choice {
            module: &b.module,
            pattern: b.pattern(),
            tie: tie.map(|t| (&t.module, t.pattern())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::parse::{ALIAS_FILE, BUILTIN_MODINFO_FILE};
    use crate::tables::VFIO_PCI_MODULE;

    fn index(alias: &str, modinfo: Option<&[u8]>) -> AliasIndex {
        AliasIndex::parse(alias.as_bytes(), modinfo, &Logger::default())
    }

    fn best(index: &AliasIndex, modalias: &str) -> Option<String> {
        index
            .best_match(&Modalias::parse(modalias).unwrap())
            .map(|c| c.module.to_string())
    }

    const MLX5_VF: &str = "pci:v000015B3d0000101Esv000015B3sd00000048bc02sc00i00";

    #[test]
    fn more_specific_wins_then_file_order() {
        let idx = index(
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* generic_variant\n\
             alias vfio_pci:v000015B3d0000101Esv000015B3sd00000048bc*sc*i* subsys_variant\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc02sc07i* class_variant\n",
            None,
        );
        assert_eq!(best(&idx, MLX5_VF).as_deref(), Some("subsys_variant"));
        // Class 02/07: class_variant and subsys_variant don't both match; class wins over generic.
        assert_eq!(
            best(
                &idx,
                "pci:v000015B3d0000101Esv000015B3sd00000026bc02sc07i00"
            )
            .as_deref(),
            Some("class_variant")
        );
        let tie = index(
            "alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* first_mod\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* second_mod\n",
            None,
        );
        let modalias = Modalias::parse(MLX5_VF).unwrap();
        let choice = tie.best_match(&modalias).unwrap();
        assert_eq!(choice.module.as_str(), "first_mod");
        assert_eq!(choice.tie.unwrap().0.as_str(), "second_mod");
    }

    #[test]
    fn no_match_at_all() {
        let idx = index(
            "alias vfio_pci:v00001AF4d*sv*sd*bc*sc*i* virtio_vfio_pci\n",
            None,
        );
        assert_eq!(best(&idx, MLX5_VF), None);
    }

    #[test]
    fn real_tables_rank_every_device_row() {
        // Copies of ../shared/data/kernel-*/ (see tests/data/README.md).
        for kernel in ["kernel-6.8.0-151-generic", "kernel-6.12.117+deb12-amd64"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(kernel);
            let alias = std::fs::read(dir.join(ALIAS_FILE)).unwrap();
            let modinfo = std::fs::read(dir.join(BUILTIN_MODINFO_FILE)).unwrap();
            let idx = AliasIndex::parse(&alias, Some(&modinfo), &Logger::default());
            assert!(idx.heap_bytes() < 64 * 1024);
            let rows = std::fs::read_to_string(dir.join("devices.tsv")).unwrap();
            for row in rows.lines().skip(1) {
                let cols: Vec<&str> = row.split('\t').collect();
                let expected = cols[2]
                    .split(',')
                    .find(|m| *m != VFIO_PCI_MODULE)
                    .unwrap_or(VFIO_PCI_MODULE);
                assert_eq!(
                    best(&idx, cols[1]).as_deref(),
                    Some(expected),
                    "{kernel} {}",
                    cols[0]
                );
            }
        }
    }

    /// A caller in a UTF-8 locale (libvirtd calls setlocale(LC_ALL, "")) gets the same
    /// answers, matched in the C locale, and its thread's locale back afterwards.
    #[test]
    fn matching_is_done_in_the_c_locale_and_the_thread_gets_its_own_back() {
        // SAFETY: newlocale/uselocale on this test thread only; the locale is freed after
        // the thread is back on the global one.
        unsafe {
            let utf8 =
                libc::newlocale(libc::LC_ALL_MASK, c"C.UTF-8".as_ptr(), std::ptr::null_mut());
            if utf8.is_null() {
                return; // no C.UTF-8 here: nothing to compare
            }
            let global = libc::uselocale(utf8);
            let idx = index(
                "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
                 alias vfio_pci:v000015B3d0000101[DE]sv*sd*bc*sc*i* mlx5_vfio_pci\n",
                None,
            );
            assert_eq!(best(&idx, MLX5_VF).as_deref(), Some("mlx5_vfio_pci"));
            assert_eq!(libc::uselocale(std::ptr::null_mut()), utf8);
            libc::uselocale(global);
            libc::freelocale(utf8);
        }
    }

    #[test]
    fn vfio_module_claims() {
        let idx = index(
            "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
             alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci\n",
            None,
        );
        let mlx5 = ModuleName::new("mlx5_vfio_pci").unwrap();
        let vf = Text::of(&Modalias::parse(MLX5_VF).unwrap());
        let e1000e = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";
        let other = Text::of(&Modalias::parse(e1000e).unwrap());
        assert_eq!(idx.module_claims(&mlx5, &vf), Some(true));
        assert_eq!(idx.module_claims(&mlx5, &other), Some(false));
        assert_eq!(
            idx.module_claims(&ModuleName::new("e1000e").unwrap(), &vf),
            None
        );
        assert!(idx.is_vfio_module(&mlx5));
    }
}
