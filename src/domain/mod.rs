//! The values every layer shares: ARNs, tags, configuration, the invocation's
//! deadline, outcomes and what a run covers. Pure: no AWS SDK type, no I/O; it
//! imports nothing from the layers above.

pub mod arn;
pub(crate) mod aws_error;
pub(crate) mod baseline;
pub(crate) mod config;
pub(crate) mod deadline;
pub(crate) mod extended;
pub(crate) mod extension_event;
pub(crate) mod failure;
pub(crate) mod hint;
pub(crate) mod launch;
pub(crate) mod outcome;
pub(crate) mod quota;
pub(crate) mod readiness;
pub(crate) mod rejection;
pub(crate) mod scope;
pub(crate) mod stale;
pub(crate) mod summary;
pub(crate) mod tags;
pub(crate) mod trigger;

/// Why a lock is taken with `expect`: a panic is a bug, and the release build
/// aborts on it (Lambda starts a new process), so no lock is ever left poisoned
/// and no task ends in a panic that the code could report as an outcome.
pub const UNPOISONED: &str = "a panic aborts the process, so no lock is poisoned";
