//! drs-extender: keeps AWS Elastic Disaster Recovery staging servers extended into
//! a recovery (target) account, and reports every outcome as an EventBridge event.
//!
//! Layers, each importing only those listed before it: `domain` (shared values),
//! `inbound` (decisions about what came in) and `aws` (adapters), `run` (the
//! work), and at the top the handler with errors, logging and metrics.

pub mod domain;

pub mod aws;
pub mod inbound;

pub mod run;

pub mod error;
pub mod handler;
pub mod init_error;
pub mod logging;
pub mod metrics;

pub use handler::App;
