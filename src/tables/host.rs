//! The `pci:` side of the tables: the host drivers' ID tables, indexed by the vendor and device
//! IDs their patterns name, for the claim check and the host-module lookup.

use std::collections::HashMap;
use std::ffi::CStr;

use super::matching::{matches, Text};
use super::parse::usable;
#[cfg(any(test, feature = "internals"))]
use super::parse::Parser;
#[cfg(any(test, feature = "internals"))]
use crate::types::log::Logger;
use crate::types::modalias::Modalias;
use crate::types::name::ModuleName;

/// The vendor and device IDs a `pci:` pattern names literally at its start (`v00008086d000010D3`
/// then anything): a device can only match when its modalias starts with the same bytes. Hex
/// is read in either case, so the buckets are a superset and the match itself decides.
fn literal_ids(pattern: &str) -> (Option<u32>, Option<u32>) {
    let hex = |s: Option<&str>| {
        s.filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let Some(rest) = pattern.strip_prefix('v') else {
        return (None, None);
    };
    let vendor = hex(rest.get(..8));
    let device = vendor.and_then(|_| hex(rest.get(8..)?.strip_prefix('d')?.get(..8)));
    (vendor, device)
}

#[derive(Default)]
pub(super) struct HostBuilder {
    aliases: HostAliases,
    ids: HashMap<ModuleName, u32>,
    /// The module of the last alias as written, and its index: the aliases of one module are
    /// consecutive lines, so a name is validated once per module, not once per alias.
    last: Option<(String, u32)>,
}

impl HostBuilder {
    pub(super) fn add(&mut self, pattern: &str, module: &str) {
        if !usable(pattern) {
            return;
        }
        let module_index = match &self.last {
            Some((name, i)) if name == module => *i,
            _ => {
                let Ok(name) = ModuleName::new(module) else {
                    return;
                };
                let next = self.aliases.modules.len() as u32;
                let i = *self.ids.entry(name.clone()).or_insert(next);
                if i == next {
                    self.aliases.modules.push(name);
                }
                self.last = Some((module.to_owned(), i));
                i
            }
        };
        let h = &mut self.aliases;
        let Ok(start) = u32::try_from(h.patterns.len()) else {
            return; // a 4 GB table: the rest is not indexed
        };
        let alias = h.aliases.len() as u32;
        h.patterns.extend_from_slice(pattern.as_bytes());
        h.patterns.push(0);
        h.aliases.push((start, module_index));
        match literal_ids(pattern) {
            (Some(v), Some(d)) => h.by_id.push(((v as u64) << 32 | d as u64, alias)),
            (Some(v), None) => h.by_vendor.push((v, alias)),
            _ => h.any_vendor.push(alias),
        }
    }

    pub(super) fn finish(self) -> HostAliases {
        let mut h = self.aliases;
        // Stable sorts: within one key the aliases stay in table order.
        h.by_id.sort_by_key(|&(key, _)| key);
        h.by_vendor.sort_by_key(|&(key, _)| key);
        h.by_name = (0..h.modules.len() as u32).collect();
        h.by_name
            .sort_by(|&a, &b| h.modules[a as usize].cmp(&h.modules[b as usize]));
        h.patterns.shrink_to_fit();
        h.aliases.shrink_to_fit();
        h.modules.shrink_to_fit();
        h.by_id.shrink_to_fit();
        h.by_vendor.shrink_to_fit();
        h.any_vendor.shrink_to_fit();
        h
    }
}

/// The plain `pci:` aliases of one kernel (the host drivers' ID tables), from `modules.alias`
/// and the `alias=pci:` records of `modules.builtin.modinfo`, in file order. The ~10,000
/// patterns live in one buffer, and each is indexed by the vendor and device IDs it names, so
/// a lookup matches the handful of patterns that can match a device.
#[derive(Debug, Default)]
pub struct HostAliases {
    /// Every pattern (after `pci:`), NUL-terminated, one after another.
    patterns: Vec<u8>,
    /// Per alias, in table order: where its pattern starts, and its module (in `modules`).
    aliases: Vec<(u32, u32)>,
    /// The modules, each once (an alias's module is an index into it).
    modules: Vec<ModuleName>,
    /// Indices into `modules` in name order.
    by_name: Vec<u32>,
    /// (vendor << 32 | device, alias) for patterns naming both IDs literally, by key.
    by_id: Vec<(u64, u32)>,
    /// (vendor, alias) for patterns naming only the vendor literally, by key.
    by_vendor: Vec<(u32, u32)>,
    /// Aliases naming no literal vendor (class-based ones: nvme, ahci, xhci_pci, ...).
    any_vendor: Vec<u32>,
}

impl HostAliases {
    #[cfg(any(test, feature = "internals"))]
    pub fn parse(alias_file: &[u8], builtin_modinfo: Option<&[u8]>) -> HostAliases {
        let log = Logger::default();
        let mut parser = Parser::new(true, &log);
        parser.alias_lines(alias_file, 0);
        if let Some(modinfo) = builtin_modinfo {
            parser.builtin_modinfo(modinfo);
        }
        parser.finish().1.unwrap_or_default()
    }

    /// The number of `pci:` aliases held.
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    fn pattern(&self, alias: u32) -> &CStr {
        let start = self.aliases[alias as usize].0 as usize;
        CStr::from_bytes_until_nul(&self.patterns[start..]).unwrap_or_default()
    }

    fn module_index(&self, module: &ModuleName) -> Option<u32> {
        self.by_name
            .binary_search_by(|&i| self.modules[i as usize].cmp(module))
            .ok()
            .map(|k| self.by_name[k])
    }

    /// The aliases that can match the device, in table order.
    fn candidates(&self, modalias: &Modalias) -> Vec<u32> {
        let (vendor, device) = (modalias.vendor() as u32, modalias.device() as u32);
        let key = (vendor as u64) << 32 | device as u64;
        let ids = &self.by_id[self.by_id.partition_point(|&(k, _)| k < key)..];
        let ids = ids.iter().take_while(|&&(k, _)| k == key);
        let vendors = &self.by_vendor[self.by_vendor.partition_point(|&(k, _)| k < vendor)..];
        let vendors = vendors.iter().take_while(|&&(k, _)| k == vendor);
        let mut out: Vec<u32> = ids
            .map(|&(_, a)| a)
            .chain(vendors.map(|&(_, a)| a))
            .collect();
        out.extend_from_slice(&self.any_vendor);
        out.sort_unstable();
        out
    }

    /// `None` when the tables hold no `pci:` alias of `module`, else whether one matches.
    pub fn module_claims(&self, module: &ModuleName, modalias: &Modalias) -> Option<bool> {
        let m = self.module_index(module)?;
        let text = Text::of(modalias);
        Some(
            self.candidates(modalias)
                .into_iter()
                .any(|a| self.aliases[a as usize].1 == m && matches(self.pattern(a), &text)),
        )
    }

    /// Every module with a `pci:` alias, each once, in name order.
    pub fn modules(&self) -> impl Iterator<Item = &ModuleName> {
        self.by_name.iter().map(|&i| &self.modules[i as usize])
    }

    /// The modules whose `pci:` aliases match `modalias`, each once, in table order.
    pub fn matching_modules(&self, modalias: &Modalias) -> Vec<ModuleName> {
        let text = Text::of(modalias);
        let mut out: Vec<u32> = Vec::new();
        for a in self.candidates(modalias) {
            let m = self.aliases[a as usize].1;
            if !out.contains(&m) && matches(self.pattern(a), &text) {
                out.push(m);
            }
        }
        out.into_iter()
            .map(|m| self.modules[m as usize].clone())
            .collect()
    }

    /// Bytes held on the heap (for the benchmark's memory figure).
    #[cfg(any(test, feature = "internals"))]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.patterns.capacity()
            + self.aliases.capacity() * size_of::<(u32, u32)>()
            + self.modules.capacity() * size_of::<ModuleName>()
            + self.modules.iter().map(|m| m.as_str().len()).sum::<usize>()
            + self.by_name.capacity() * 4
            + self.by_id.capacity() * size_of::<(u64, u32)>()
            + self.by_vendor.capacity() * size_of::<(u32, u32)>()
            + self.any_vendor.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::parse::{ALIAS_FILE, BUILTIN_MODINFO_FILE};

    /// The host side against what kmod's modprobe -R matched for every device row of both
    /// shipped kernels (order aside: kmod reports build order), and the ID index against a
    /// scan of every pattern.
    #[test]
    fn host_aliases_match_what_kmod_matched() {
        for kernel in ["kernel-6.8.0-151-generic", "kernel-6.12.117+deb12-amd64"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(kernel);
            let modinfo = std::fs::read(dir.join(BUILTIN_MODINFO_FILE)).ok();
            let alias_file = std::fs::read(dir.join(ALIAS_FILE)).unwrap();
            let host = HostAliases::parse(&alias_file, modinfo.as_deref());
            // The whole index in less memory than the file it was read from.
            assert!(
                host.heap_bytes() < alias_file.len(),
                "{}",
                host.heap_bytes()
            );
            let rows = std::fs::read_to_string(dir.join("devices.tsv")).unwrap();
            for row in rows.lines().skip(1) {
                let f: Vec<&str> = row.split('\t').collect();
                let modalias = Modalias::parse(f[1]).unwrap();
                let mut got: Vec<String> = host
                    .matching_modules(&modalias)
                    .iter()
                    .map(|m| m.to_string())
                    .collect();
                let text = Text::of(&modalias);
                let mut scanned: Vec<String> = Vec::new();
                for a in 0..host.len() as u32 {
                    let m = host.modules[host.aliases[a as usize].1 as usize].to_string();
                    if matches(host.pattern(a), &text) && !scanned.contains(&m) {
                        scanned.push(m);
                    }
                }
                assert_eq!(got, scanned, "{kernel} {}: ID index vs full scan", f[0]);
                for m in &got {
                    let m = ModuleName::new(m).unwrap();
                    assert_eq!(
                        host.module_claims(&m, &modalias),
                        Some(true),
                        "{kernel} {m}"
                    );
                }
                let mut kmod: Vec<String> = f
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
                got.sort();
                kmod.sort();
                assert_eq!(got, kmod, "{kernel} {}", f[0]);
            }
        }
    }

    #[test]
    fn host_aliases_cover_builtin_records_and_class_patterns() {
        let host = HostAliases::parse(
            b"alias pci:v*d*sv*sd*bc01sc08i02* nvme\nalias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n",
            Some(b"virtio_pci.alias=pci:v00001AF4d*sv*sd*bc*sc*i*\0virtio_pci.license=GPL\0"),
        );
        let nvme =
            Modalias::parse("pci:v00008086d0000F1A8sv00008086sd0000390Bbc01sc08i02").unwrap();
        let names = |m: &Modalias| -> Vec<String> {
            host.matching_modules(m)
                .iter()
                .map(|m| m.to_string())
                .collect()
        };
        assert_eq!(names(&nvme), ["nvme"]);
        let virtio =
            Modalias::parse("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00").unwrap();
        assert_eq!(names(&virtio), ["virtio_pci"]);
        let e1000e = ModuleName::new("e1000e").unwrap();
        assert_eq!(host.module_claims(&e1000e, &nvme), Some(false));
        assert_eq!(
            host.module_claims(&ModuleName::new("nvme").unwrap(), &nvme),
            Some(true)
        );
        assert_eq!(
            host.module_claims(&ModuleName::new("igb").unwrap(), &nvme),
            None
        );
    }

    #[test]
    fn literal_ids_bucket_only_what_must_match() {
        assert_eq!(
            literal_ids("v00008086d000010D3sv*sd*bc*sc*i*"),
            (Some(0x8086), Some(0x10d3))
        );
        assert_eq!(
            literal_ids("v00008086d*sv*sd*bc02sc00i*"),
            (Some(0x8086), None)
        );
        assert_eq!(literal_ids("v0000808?d000010D3*"), (None, None));
        assert_eq!(literal_ids("v*d*sv*sd*bc01sc08i02*"), (None, None));
        assert_eq!(literal_ids("v00008086d000010D"), (Some(0x8086), None));
        assert_eq!(literal_ids("*"), (None, None));
    }
}
