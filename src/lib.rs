//! drs-extender: keeps AWS Elastic Disaster Recovery staging servers extended into
//! a recovery (target) account, and reports every outcome as an EventBridge event.
//!
//! Layers, each importing only those listed before it: `domain` (shared values),
//! `inbound` (decisions about what came in) and `aws` (adapters), `run` (the
//! work), and at the top the handler with errors, logging and metrics.
//!
//! Without the `function` feature only the pure core is built (`domain` and `inbound`):
//! what the fuzz target needs, with none of the AWS SDK. The core's items that only
//! the adapters use are then unused, hence the allowance.
#![cfg_attr(not(feature = "function"), allow(dead_code))]

pub mod domain;

#[cfg(feature = "function")]
pub(crate) mod aws;
pub mod inbound;

#[cfg(feature = "function")]
pub(crate) mod run;

#[cfg(feature = "function")]
pub(crate) mod error;
#[cfg(feature = "function")]
pub(crate) mod handler;
#[cfg(feature = "function")]
pub mod init_error;
#[cfg(feature = "function")]
pub mod logging;
#[cfg(feature = "function")]
pub(crate) mod metrics;

// What the binary, the tests and the fuzz target use; the rest stays inside, so
// the dead-code lint sees it.
#[cfg(feature = "function")]
pub use aws::clients::{CallPolicy, Clients};
pub use domain::config::Config;
#[cfg(feature = "function")]
pub use domain::outcome::Response;
#[cfg(feature = "function")]
pub use error::InvocationError;
#[cfg(feature = "function")]
pub use handler::App;
