//! Logging as Lambda's runtime sets it up (JSON under `AWS_LAMBDA_LOG_FORMAT=JSON`,
//! the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`, the request id on every
//! line through the runtime's span), with one difference: the runtime logs each
//! whole inbound event at TRACE, tags included, and tag values are never logged.

use std::str::FromStr;

use tracing_subscriber::filter::{Directive, LevelFilter};
use tracing_subscriber::EnvFilter;

/// The module whose TRACE line carries the raw event; DEBUG is its ceiling here.
const RAW_EVENT_CAP: &str = "lambda_runtime::layers::api_response=debug";

pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter(
            level.as_deref(),
            std::env::var("RUST_LOG").ok().as_deref(),
        ));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The filter: `level` as the default, `RUST_LOG`'s directives, and the cap.
fn filter(level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    let level = level
        .and_then(|l| LevelFilter::from_str(l).ok())
        .unwrap_or(LevelFilter::INFO);
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(rust_log.unwrap_or_default());
    if let Ok(cap) = Directive::from_str(RAW_EVENT_CAP) {
        filter = filter.add_directive(cap);
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_event_is_capped_at_debug_whatever_the_level() {
        for rust_log in [None, Some("trace"), Some("lambda_runtime=trace")] {
            let shown = filter(Some("trace"), rust_log).to_string();
            assert!(shown.contains(RAW_EVENT_CAP), "{shown}");
        }
        assert!(filter(Some("not-a-level"), None)
            .to_string()
            .contains("info"));
    }
}
