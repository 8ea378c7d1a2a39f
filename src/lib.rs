//! drs-extender: keeps AWS Elastic Disaster Recovery staging servers extended into
//! a recovery (target) account, and reports every outcome as an EventBridge event.
//!
//! Layers, each importing only those listed before it: `domain` (shared values),
//! `inbound` (decisions about what came in) and `aws` (adapters), `run` (the
//! work), and at the top the handler with errors, logging and metrics.

pub mod domain;

pub(crate) mod aws;
pub mod inbound;

pub(crate) mod run;

pub(crate) mod error;
pub(crate) mod handler;
pub mod init_error;
pub mod logging;
pub(crate) mod metrics;

// What the binary, the tests and the fuzz target use; the rest stays inside, so
// the dead-code lint sees it.
pub use aws::clients::{CallPolicy, Clients};
pub use domain::config::Config;
pub use domain::outcome::Response;
pub use error::InvocationError;
pub use handler::App;
