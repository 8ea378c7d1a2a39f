//! The AWS adapters: clients built once, DRS and EventBridge calls, the paced
//! HTTP client under every DRS attempt, the pace, `Retry-After`, and the SDK's
//! errors read into the domain's. Imports only `domain`.

pub mod clients;
pub mod drs;
pub mod ec2;
pub mod ec2_template;
pub mod event_bus;
pub mod pace;
pub mod paced_http;
pub mod paging;
pub mod quotas;
pub mod retry_after;
pub mod sdk_error;
