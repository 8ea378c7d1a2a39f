//! drs-extender: keeps AWS Elastic Disaster Recovery staging servers extended into
//! a recovery (target) account, and reports every outcome as an EventBridge event.

pub mod arn;
pub mod authorize;
pub mod clients;
pub mod config;
pub mod coverage;
pub mod deadline;
pub mod drs;
pub mod error;
pub mod event_bus;
pub mod extend;
pub mod handler;
pub mod inbound;
pub mod init_error;
pub mod logging;
pub mod metrics;
pub mod outcome;
pub mod pace;
pub mod paced_http;
pub mod reconcile;
pub mod reporter;
pub mod retry_after;
pub mod tags;

pub use handler::App;
