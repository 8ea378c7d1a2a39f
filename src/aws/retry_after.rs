//! DRS asks callers to wait with a standard `Retry-After` header (seconds), which
//! the SDK's own classifiers do not read (they read `x-amz-retry-after`). This
//! classifier tucks that delay into an already-retryable verdict; the SDK's
//! standard strategy then waits that long, bounded by its maximum backoff.
//!
//! The server's wait is taken as the longest to wait, not the shortest: each
//! throttled attempt waits a random share of it ("full jitter"). Lambda runs
//! many processes at once against one account-wide limit; throttled together
//! and waiting the whole of it, they sat idle for the whole wait and came back
//! together. Measured with `storm-bench` (six processes against 20/s, 240
//! announcements): waiting the whole wait and up to half again reached 0.29 of the
//! service's rate under a one-second window with `Retry-After: 5`, and 0.25-0.45
//! for a lone process over a low limit; a random share of it, 0.67 and 0.52-0.70,
//! and no shape did worse (`docs/performance.md`). Every attempt still waits for
//! the pace, which a throttle has cut.

use std::time::Duration;

use aws_sdk_drs::config::interceptors::InterceptorContext;
use aws_sdk_drs::config::retry::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::retries::classifiers::{RetryClassifierPriority, RetryReason};

#[derive(Debug, Default)]
pub struct RetryAfterClassifier;

/// Beyond this a server's request to wait is not taken literally: past it the pace,
/// which the throttle cut, governs the retry, and `DRS_MAX_RPS` still bounds every
/// request. A server that says 5 s of a limit counted per second idled every
/// throttled process for seconds the service had free: with six processes against
/// 20/s, `Retry-After: 5` reached 0.67 (one-second window), 0.81 and 0.86 (buckets
/// of 5 and 20) of the service's rate taken up to 20 s, and 0.93, 0.92 and 0.94
/// taken up to 2 s; with a bucket of one, 0.41-0.43 up to 2 s (three runs), under
/// the 0.45 it must reach, and 0.47 up to 1 s (two runs), when the others
/// reached 1.03, 0.98 and 1.04 (`docs/performance.md`).
const LONGEST_WAIT: Duration = Duration::from_secs(1);

impl ClassifyRetry for RetryAfterClassifier {
    fn classify_retry(&self, _ctx: &InterceptorContext) -> RetryAction {
        RetryAction::NoActionIndicated
    }

    fn classify_retry_v2(&self, ctx: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        let RetryAction::RetryIndicated(RetryReason::RetryableError {
            kind,
            retry_after: None,
        }) = previous
        else {
            return RetryAction::NoActionIndicated;
        };
        let wait = ctx
            .response()
            .and_then(|response| response.headers().get("retry-after"))
            .and_then(parse_retry_after);
        match wait {
            Some(wait) => RetryAction::retryable_error_with_explicit_delay(
                *kind,
                spread(wait, fastrand::f64()),
            ),
            None => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "Retry-After header"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// A random share (`random` in [0, 1)) of the server's wait.
fn spread(wait: Duration, random: f64) -> Duration {
    wait.mul_f64(random.clamp(0.0, 1.0))
}

/// `Retry-After` in delay-seconds; the HTTP-date form is not used by AWS services.
/// Bounded before it becomes a `Duration`, which panics past `u64::MAX` seconds.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(LONGEST_WAIT.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_a_random_share_of_the_servers_wait_never_more() {
        let wait = Duration::from_secs(1);
        assert_eq!(spread(wait, 0.0), Duration::ZERO);
        assert_eq!(spread(wait, 0.5), Duration::from_millis(500));
        assert!(spread(wait, 0.999_999) < wait);
        assert_eq!(spread(wait, 7.0), wait);
    }

    #[test]
    fn reads_delay_seconds_and_bounds_them() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("86400"), Some(LONGEST_WAIT));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("inf"), None);
        assert_eq!(parse_retry_after("1e20"), Some(LONGEST_WAIT));
        assert_eq!(parse_retry_after("1e400"), None);
        assert_eq!(
            parse_retry_after("18446744073709551616"),
            Some(LONGEST_WAIT)
        );
        assert_eq!(parse_retry_after(""), None);
    }
}
