//! The operations of the public API, as `impl Context` blocks, one file per subject: moves
//! (`bind`, with what every move shares; `unbind`; `reattach`; `group`), SR-IOV, recovery of interrupted
//! transactions, and the read-only questions (`query`, `device`, `nodes`, `ifname`). Each works
//! out what to do with `policy` and hands the writes to the transaction engine (`txn`).

pub(crate) mod bind;
pub(crate) mod device;
pub(crate) mod group;
pub(crate) mod ifname;
pub(crate) mod nodes;
pub(crate) mod query;
pub(crate) mod reattach;
pub(crate) mod recover;
pub(crate) mod sriov;
pub(crate) mod unbind;
