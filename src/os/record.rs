//! The record of a transaction in progress (SPEC 3.12), kept in the device's lock file: what
//! the transaction is doing and where the device started. It is written before the first
//! change to the kernel's state and removed when the transaction ends (success, or a restore
//! that verified). A record found by the next holder of the device's lock means its writer died
//! in the middle: the device is rolled back to the recorded start before anything else.
//!
//! The format is text, one `KEY VALUE` line each, so that an operator can read it with `cat`:
//!
//! ```text
//! pcibind-record 1
//! pid 4242
//! doing binding to vfio-pci
//! driver e1000e
//! override-unset
//! may-leave vfio-pci
//! ```
//!
//! `driver -` is an unbound start; `override VALUE` (the rest of the line, as the kernel keeps
//! it: up to its first newline) or `override-unset`; one `may-leave VALUE` or
//! `may-leave-unset` line per `driver_override` value the transaction writes (the trust rule:
//! a device whose override is none of these, nor the start's, was moved by someone since).
//! A PF's SR-IOV transaction records `sriov-autoprobe 0|1` and `sriov-numvfs N` instead of the
//! move lines. Anything else is malformed and never acted on.

use std::fmt::Write as _;

use crate::types::name::DriverName;
use crate::types::state::DeviceState;

const MAGIC: &str = "pcibind-record 1";

/// The longest record read: a move record is a few hundred bytes.
pub(crate) const MAX_RECORD: usize = 16 << 10;

/// What a transaction records about one device before its first write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub pid: u32,
    /// What the transaction is doing, as its log says ("binding to vfio-pci").
    pub doing: String,
    pub what: Recorded,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// A move between drivers: the start, and the overrides the transaction may leave.
    Move {
        start: DeviceState,
        may_leave: Vec<Option<String>>,
    },
    /// A PF's VF count change: its `sriov_drivers_autoprobe` and VF count before it.
    Sriov { autoprobe: bool, numvfs: u32 },
}

impl Record {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{MAGIC}\npid {}\ndoing {}\n",
            self.pid,
            one_line(&self.doing)
        );
        match &self.what {
            Recorded::Move { start, may_leave } => {
                let driver = start.driver.as_ref().map_or("-", DriverName::as_str);
                let _ = writeln!(s, "driver {driver}");
                push_value(&mut s, "override", start.driver_override.as_deref());
                for value in may_leave {
                    push_value(&mut s, "may-leave", value.as_deref());
                }
            }
            Recorded::Sriov { autoprobe, numvfs } => {
                let _ = writeln!(s, "sriov-autoprobe {}", u8::from(*autoprobe));
                let _ = writeln!(s, "sriov-numvfs {numvfs}");
            }
        }
        s
    }

    /// The record in `text`, or what is wrong with it.
    pub fn parse(text: &str) -> Result<Record, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("it does not start with '{MAGIC}'"));
        }
        let mut pid = None;
        let mut doing = None;
        let mut driver: Option<Option<DriverName>> = None;
        let mut driver_override: Option<Option<String>> = None;
        let mut may_leave = Vec::new();
        let mut autoprobe = None;
        let mut numvfs = None;
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let bad = || format!("bad line {line:?}");
            match key {
                "pid" => pid = Some(value.parse::<u32>().map_err(|_| bad())?),
                "doing" => doing = Some(value.to_owned()),
                "driver" if value == "-" => driver = Some(None),
                "driver" => driver = Some(Some(DriverName::new(value).map_err(|_| bad())?)),
                "override" => driver_override = Some(Some(value.to_owned())),
                "override-unset" if value.is_empty() => driver_override = Some(None),
                "may-leave" => may_leave.push(Some(value.to_owned())),
                "may-leave-unset" if value.is_empty() => may_leave.push(None),
                "sriov-autoprobe" => {
                    autoprobe = Some(match value {
                        "0" => false,
                        "1" => true,
                        _ => return Err(bad()),
                    })
                }
                "sriov-numvfs" => numvfs = Some(value.parse::<u32>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let missing = |what: &str| format!("it has no '{what}' line");
        let pid = pid.ok_or_else(|| missing("pid"))?;
        let doing = doing.ok_or_else(|| missing("doing"))?;
        let what = match (driver, driver_override, autoprobe, numvfs) {
            (Some(driver), Some(driver_override), None, None) => Recorded::Move {
                start: DeviceState {
                    driver,
                    driver_override,
                },
                may_leave,
            },
            (None, None, Some(autoprobe), Some(numvfs)) if may_leave.is_empty() => {
                Recorded::Sriov { autoprobe, numvfs }
            }
            _ => {
                return Err(
                    "it records neither a move (driver, override) nor an SR-IOV change \
                     (sriov-autoprobe, sriov-numvfs), or both"
                        .to_owned(),
                )
            }
        };
        Ok(Record { pid, doing, what })
    }

    /// Whether a device whose `driver_override` now reads `now` may still be where this
    /// transaction left it: `now` is the start's override, the start driver's name (a restore
    /// writes it first), or one the transaction writes. Anything else means someone moved the
    /// device since, and the record no longer describes it.
    pub fn trusts(&self, now: Option<&str>) -> bool {
        match &self.what {
            Recorded::Move { start, may_leave } => {
                now == start.driver_override.as_deref()
                    || (now.is_some() && now == start.driver.as_ref().map(DriverName::as_str))
                    || may_leave.iter().any(|v| v.as_deref() == now)
            }
            Recorded::Sriov { .. } => true,
        }
    }
}

/// `KEY VALUE`, or `KEY-unset` for no value.
fn push_value(s: &mut String, key: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            let _ = writeln!(s, "{key} {}", one_line(v));
        }
        None => {
            let _ = writeln!(s, "{key}-unset");
        }
    }
}

/// A value as one line: the kernel keeps an override up to its first newline, and a log text
/// has none; anything after one is dropped rather than allowed to forge a line.
fn one_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str) -> DriverName {
        DriverName::new(name).unwrap()
    }

    fn bind_record() -> Record {
        Record {
            pid: 4242,
            doing: "binding to vfio-pci".into(),
            what: Recorded::Move {
                start: DeviceState {
                    driver: Some(d("e1000e")),
                    driver_override: None,
                },
                may_leave: vec![Some("vfio-pci".into())],
            },
        }
    }

    #[test]
    fn a_move_reads_back_as_written() {
        let r = bind_record();
        let text = r.to_text();
        assert_eq!(
            text,
            "pcibind-record 1\npid 4242\ndoing binding to vfio-pci\ndriver e1000e\n\
             override-unset\nmay-leave vfio-pci\n"
        );
        assert_eq!(Record::parse(&text), Ok(r));
    }

    #[test]
    fn odd_overrides_and_an_unbound_start_read_back() {
        let r = Record {
            pid: 1,
            doing: "reattaching to the host driver".into(),
            what: Recorded::Move {
                start: DeviceState {
                    driver: None,
                    driver_override: Some("  two spaces ".into()),
                },
                may_leave: vec![None, Some("none".into())],
            },
        };
        assert_eq!(Record::parse(&r.to_text()), Ok(r));
    }

    #[test]
    fn an_sriov_change_reads_back() {
        let r = Record {
            pid: 7,
            doing: "setting 4 VFs".into(),
            what: Recorded::Sriov {
                autoprobe: true,
                numvfs: 2,
            },
        };
        assert_eq!(Record::parse(&r.to_text()), Ok(r));
    }

    #[test]
    fn a_newline_in_a_value_cannot_forge_a_line() {
        let mut r = bind_record();
        r.doing = "binding\nsriov-numvfs 3".into();
        let parsed = Record::parse(&r.to_text()).unwrap();
        assert_eq!(parsed.doing, "binding");
        assert!(matches!(parsed.what, Recorded::Move { .. }));
    }

    #[test]
    fn malformed_records_are_refused() {
        for text in [
            "",
            "pcibind-record 2\n",
            "pcibind-record 1\npid x\ndoing a\ndriver -\noverride-unset\n",
            "pcibind-record 1\ndoing a\ndriver -\noverride-unset\n",
            "pcibind-record 1\npid 1\ndoing a\ndriver ../x\noverride-unset\n",
            "pcibind-record 1\npid 1\ndoing a\ndriver -\n",
            "pcibind-record 1\npid 1\ndoing a\ndriver -\noverride-unset\nsriov-numvfs 1\n",
            "pcibind-record 1\npid 1\ndoing a\nsriov-autoprobe 2\nsriov-numvfs 1\n",
            "pcibind-record 1\npid 1\ndoing a\ndriver -\noverride-unset\nwhat now\n",
            // Cut short by a death in the middle of the write.
            "pcibind-record 1\npid 1\ndoi",
        ] {
            assert!(Record::parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn trusted_only_where_the_transaction_could_have_left_it() {
        let r = bind_record();
        assert!(r.trusts(None), "the start's override");
        assert!(r.trusts(Some("vfio-pci")), "the target's");
        assert!(r.trusts(Some("e1000e")), "a restore's first write");
        assert!(!r.trusts(Some("igb")), "someone else's");
        assert!(!r.trusts(Some("none")), "pcibind unbind's, since");
    }
}
