//! Logging as Lambda's runtime sets it up (JSON under `AWS_LAMBDA_LOG_FORMAT=JSON`,
//! the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`, the request id on every
//! line through the runtime's span), with one difference: the runtime logs each
//! whole inbound event at TRACE, tags included, and tag values are never logged.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The module whose TRACE line carries the raw event; DEBUG is its ceiling here.
const RAW_EVENT: &str = "lambda_runtime::layers::api_response";

pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = filter(level.as_deref(), std::env::var("RUST_LOG").ok().as_deref());
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(lines.json()).init();
    } else {
        registry.with(lines).init();
    }
}

/// The filter: `level` as the default, `RUST_LOG`'s `target=level` directives
/// (any it cannot read are skipped, as `EnvFilter` skips them; span and field
/// filters are not read: targets only, which keeps a regex engine out of the
/// binary), and the cap on the raw event, which no directive lifts.
fn filter(level: Option<&str>, rust_log: Option<&str>) -> Targets {
    // Lambda's levels are TRACE to FATAL (`LoggingConfig.ApplicationLogLevel`);
    // tracing has no FATAL, and ERROR is the nearest that still logs.
    let level = level
        .map(|l| {
            if l.eq_ignore_ascii_case("fatal") {
                "error"
            } else {
                l
            }
        })
        .and_then(|l| LevelFilter::from_str(l).ok())
        .unwrap_or(LevelFilter::INFO);
    let mut default = None;
    let mut targets = Targets::new();
    let directives = rust_log.unwrap_or_default().split(',').map(str::trim);
    // An empty directive would read as a default of ERROR.
    for directive in directives.filter(|d| !d.is_empty()) {
        let Ok(read) = Targets::from_str(directive) else {
            continue;
        };
        default = read.default_level().or(default);
        targets = targets.with_targets(
            read.iter()
                .filter(|(target, _)| !target.starts_with(RAW_EVENT))
                .collect::<Vec<_>>(),
        );
    }
    targets
        .with_default(default.unwrap_or(level))
        .with_target(RAW_EVENT, LevelFilter::DEBUG)
}

#[cfg(test)]
mod tests {
    use super::*;

    use tracing::Level;

    #[test]
    fn the_raw_event_is_capped_at_debug_whatever_the_level() {
        for rust_log in [
            None,
            Some("trace"),
            Some("lambda_runtime=trace"),
            Some("lambda_runtime::layers::api_response=trace"),
        ] {
            let filter = filter(Some("trace"), rust_log);
            assert!(
                !filter.would_enable(RAW_EVENT, &Level::TRACE),
                "{rust_log:?}"
            );
            assert!(
                filter.would_enable(RAW_EVENT, &Level::DEBUG),
                "{rust_log:?}"
            );
        }
        let unread = filter(Some("not-a-level"), None);
        assert!(unread.would_enable("drs_extender", &Level::INFO));
        assert!(!unread.would_enable("drs_extender", &Level::DEBUG));
    }

    #[test]
    fn rust_log_sets_the_default_and_each_target_skipping_what_it_cannot_read() {
        let read = filter(
            Some("info"),
            Some("warn,aws_smithy_runtime=debug,not a directive"),
        );
        assert!(!read.would_enable("drs_extender", &Level::INFO));
        assert!(read.would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        let level_only = filter(Some("debug"), None);
        assert!(level_only.would_enable("drs_extender", &Level::DEBUG));
        let fatal = filter(Some("FATAL"), None);
        assert!(fatal.would_enable("drs_extender", &Level::ERROR));
        assert!(!fatal.would_enable("drs_extender", &Level::WARN));
    }
}
