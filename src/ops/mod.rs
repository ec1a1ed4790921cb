//! The operations of the public API, as functions of a `&Context`, one file per subject, each
//! listed (documented, as a one-line delegation) among `Context`'s methods in `context.rs`: moves
//! (`bind`, with what every move shares; `unbind`; `reattach`; `group`), the override written
//! at boot before any driver loads (`preset`), SR-IOV, recovery of interrupted transactions,
//! and the read-only questions (`resolve`, `query`, `device`, `nodes`, `ifname`). Each works out what to
//! do with `policy` and hands the writes to the transaction engine (`txn`).

pub(crate) mod bind;
pub(crate) mod device;
pub(crate) mod group;
pub(crate) mod ifname;
pub(crate) mod nodes;
pub(crate) mod preset;
pub(crate) mod query;
pub(crate) mod reattach;
pub(crate) mod recover;
pub(crate) mod resolve;
pub(crate) mod sriov;
pub(crate) mod unbind;
