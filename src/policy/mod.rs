//! Decisions, from what `os` read and `tables` know: which driver a name means (`resolve`),
//! what a driver is for a group (`group`: VFIO, harmless stub or port, blocking), the unit a
//! group transaction moves (`unit`), whether a device is in use on the host (`inuse`), and the
//! one safety decision every move passes (`safety`). Nothing here writes.

pub(crate) mod group;
pub(crate) mod inuse;
pub(crate) mod resolve;
pub(crate) mod safety;
pub(crate) mod unit;
