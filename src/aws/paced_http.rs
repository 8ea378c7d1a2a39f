//! The HTTP client under every DRS client: each attempt on the wire, the SDK's
//! retries included, waits for the region's pace, and each answer teaches it.
//! Pacing around `send()` alone would let retries go unpaced: a throttling storm
//! is exactly when they come.
//!
//! The attempt timeout is applied here, after the slot is granted: it bounds the
//! service's time, not the wait in our own queue, which a sharp cut of the rate
//! lengthens for requests already admitted.
//!
//! A caller may run its operation inside a [`CallScope`]: then no attempt leaves
//! without a second (or its whole timeout) before the scope's cut, none stays
//! on the wire past it, and the scope
//! learns whether any attempt may have taken effect (no answer, or one that was
//! not a refusal). An attempt never sent is a definite "nothing happened". A
//! scope [`CallScope::stopped_by`] a flag sends no attempt once it is set: a
//! create or delete retried by the SDK, or waiting for its slot, stops there
//! when an outcome event is given up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;

use crate::aws::pace::{Answer, Pace};
use crate::domain::aws_error::is_throttling;

/// The client the SDK would use by default (hyper 1 and rustls), built here
/// because the shared config leaves it unset and it must be wrapped.
pub fn default_base() -> SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https()
}

/// `base` with every request paced by `pace`, and given `attempt_timeout` to be
/// answered once it is on its way.
pub fn paced(
    base: SharedHttpClient,
    pace: Arc<Pace>,
    attempt_timeout: Duration,
) -> SharedHttpClient {
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(PacedConnector {
            inner: base.http_connector(settings, components),
            pace: pace.clone(),
            attempt_timeout,
        })
    })
}

tokio::task_local! {
    static CALL: CallScope;
}

/// One operation's limits and what its attempts did, shared with the connector
/// for as long as the operation runs in [`CallScope::run`].
#[derive(Clone, Debug, Default)]
pub struct CallScope {
    send_by: Option<Instant>,
    /// Once set, no attempt leaves.
    stop: Option<Arc<AtomicBool>>,
    /// An attempt was answered with anything but a refusal, or not at all.
    uncertain: Arc<AtomicBool>,
    /// An attempt is on the wire: set as it leaves, cleared when it is answered.
    /// One the caller gave up on (a timeout drops it mid-flight) stays set.
    on_wire: Arc<AtomicBool>,
}

/// An attempt starts only with this much time left before the scope's cut (or
/// its whole attempt timeout, when that is shorter): then the cut finds no
/// attempt on the wire but one the service has had a real chance to answer,
/// and a request sent just before the cut is never taken for uncertain.
const LEAST_ROOM: Duration = Duration::from_secs(1);

impl CallScope {
    pub fn until(send_by: Option<Instant>) -> Self {
        Self {
            send_by,
            stop: None,
            uncertain: Arc::default(),
            on_wire: Arc::default(),
        }
    }

    /// The same scope, sending no attempt once `stop` is set.
    pub fn stopped_by(mut self, stop: &Arc<AtomicBool>) -> Self {
        self.stop = Some(stop.clone());
        self
    }

    /// Whether its flag says no attempt may leave.
    pub fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }

    /// The same scope (what its attempts did is shared), cut at `at` too.
    pub fn cut_at(&self, at: Instant) -> Self {
        Self {
            send_by: Some(self.send_by.map_or(at, |by| by.min(at))),
            ..self.clone()
        }
    }

    pub async fn run<F: std::future::Future>(&self, operation: F) -> F::Output {
        CALL.scope(self.clone(), operation).await
    }

    /// Whether an attempt may have taken effect: it went unanswered (timed out,
    /// or still on the wire when the caller gave up), or was answered with
    /// anything but a refusal (4xx).
    pub fn may_have_taken_effect(&self) -> bool {
        self.uncertain.load(Ordering::SeqCst) || self.on_wire.load(Ordering::SeqCst)
    }
}

/// An attempt the connector did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotSent {
    /// The caller's time ran out first.
    Deadline,
    /// The scope's stop flag was set (an outcome event was given up).
    Stopped,
}

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotSent::Deadline => {
                "not sent: the invocation's time for DRS calls ran out while it waited its turn"
            }
            NotSent::Stopped => "not sent: an outcome event was given up",
        })
    }
}

impl std::error::Error for NotSent {}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    pace: Arc<Pace>,
    attempt_timeout: Duration,
}

impl HttpConnector for PacedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, pace, limit) = (self.inner.clone(), self.pace.clone(), self.attempt_timeout);
        let scope = CALL.try_with(CallScope::clone).ok();
        HttpConnectorFuture::new(async move {
            let send_by = scope.as_ref().and_then(|s| s.send_by);
            let waited = match send_by {
                Some(by) => tokio::time::timeout_at(by, pace.wait()).await.is_ok(),
                None => {
                    pace.wait().await;
                    true
                }
            };
            let left = send_by.map(|by| by.saturating_duration_since(Instant::now()));
            if !waited || left.is_some_and(|left| left < limit.min(LEAST_ROOM)) {
                // A user error: the SDK does not retry it, and nothing was sent.
                return Err(ConnectorError::user(Box::new(NotSent::Deadline)));
            }
            // Checked after the wait for the slot, which a throttled pace makes long.
            if scope.as_ref().is_some_and(CallScope::stopped) {
                return Err(ConnectorError::user(Box::new(NotSent::Stopped)));
            }
            if let Some(scope) = &scope {
                scope.on_wire.store(true, Ordering::SeqCst);
            }
            let limit = left.map_or(limit, |left| limit.min(left));
            let response = tokio::time::timeout(limit, inner.call(request))
                .await
                .unwrap_or_else(|_| {
                    Err(ConnectorError::timeout(
                        format!("no answer within the attempt timeout of {limit:?}").into(),
                    ))
                });
            let answer = match &response {
                Ok(response) => answer_of(
                    response.status().as_u16(),
                    response.headers().get("x-amzn-errortype"),
                ),
                Err(_) => Answer::Other,
            };
            pace.observe(answer);
            let refused = matches!(&response, Ok(r) if r.status().is_client_error());
            if let Some(scope) = &scope {
                if !refused {
                    scope.uncertain.store(true, Ordering::SeqCst);
                }
                scope.on_wire.store(false, Ordering::SeqCst);
            }
            response
        })
    }
}

/// What an answer teaches the pace; throttling is judged as every AWS error is
/// (`domain::aws_error::is_throttling`), from the status or the code alone.
fn answer_of(status: u16, error_type: Option<&str>) -> Answer {
    // The header may carry a namespace after the code: `Code:http://...`.
    let code = error_type.map(|code| code.split(':').next().unwrap_or_default());
    match status {
        _ if is_throttling(status, code) => Answer::Throttled,
        500.. => Answer::Other,
        _ => Answer::Accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_throttling_from_status_or_code() {
        assert_eq!(answer_of(429, None), Answer::Throttled);
        assert_eq!(
            answer_of(400, Some("ThrottlingException:http://internal.amazon.com/")),
            Answer::Throttled
        );
        assert_eq!(answer_of(503, None), Answer::Other);
        assert_eq!(
            answer_of(400, Some("ValidationException")),
            Answer::Accepted
        );
        assert_eq!(answer_of(201, None), Answer::Accepted);
    }
}
