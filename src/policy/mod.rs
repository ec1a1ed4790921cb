//! Decisions, from what `os` read and `tables` know: which driver a name means (`resolve`),
//! what a driver is (`classify`: VFIO, stub, port or host driver; the one classifier), a
//! device's IOMMU group and what its members mean for assigning it (`group`), the unit a
//! group transaction moves (`unit`), whether a device is in use on the host (`inuse`), and the
//! one safety decision every move passes (`safety`). Nothing here writes.

pub(crate) mod classify;
pub(crate) mod group;
pub(crate) mod inuse;
pub(crate) mod resolve;
pub(crate) mod safety;
pub(crate) mod unit;
