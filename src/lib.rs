//! drs-extender: keeps AWS Elastic Disaster Recovery staging servers extended into
//! a recovery (target) account, and reports every outcome as an EventBridge event.
//!
//! Layers, each importing only those listed before it: `domain` (shared values),
//! `inbound` (decisions about what came in) and `aws` (adapters), `run` (the
//! work), and at the top the handler with errors, logging and metrics.

//!
//! Without the `function` feature only the pure core is built (`domain` and `inbound`):
//! what the fuzz target needs, with none of the AWS SDK.

pub mod domain;

#[cfg(feature = "function")]
pub mod aws;
pub mod inbound;

#[cfg(feature = "function")]
pub mod run;

#[cfg(feature = "function")]
pub mod error;
#[cfg(feature = "function")]
pub mod handler;
#[cfg(feature = "function")]
pub mod init_error;
#[cfg(feature = "function")]
pub mod logging;
#[cfg(feature = "function")]
pub mod metrics;

#[cfg(feature = "function")]
pub use handler::App;
