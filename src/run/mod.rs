//! The work of an invocation: extending one server, a reconciliation run, the
//! coverage it reads, and outcome events reported as they happen. Imports
//! `domain`, `inbound` and `aws`; never the handler.

pub mod baseline;
pub mod coverage;
pub mod extend;
pub mod launch;
pub mod quota;
pub mod reconcile;
pub mod reporter;
pub mod summary;
pub mod survey;
