//! Values: what the rest of the crate passes around, with no I/O of their own. A PCI address,
//! driver and module names in their two spellings, a device's modalias, the one error type
//! (which knows no C names), the log sink, where a device is, and the options of a move.

pub(crate) mod address;
pub(crate) mod error;
pub(crate) mod log;
pub(crate) mod modalias;
pub(crate) mod name;
pub(crate) mod options;
pub(crate) mod state;
