//! The values every layer shares: ARNs, tags, configuration, the invocation's
//! deadline, outcomes and what a run covers. Pure: no AWS SDK type, no I/O; it
//! imports nothing from the layers above.

pub mod arn;
pub mod baseline;
pub mod config;
pub mod deadline;
pub mod extension_event;
pub mod failure;
pub mod hint;
pub mod launch;
pub mod outcome;
pub mod quota;
pub mod readiness;
pub mod rejection;
pub mod scope;
pub mod stale;
pub mod summary;
pub mod tags;
pub mod trigger;
