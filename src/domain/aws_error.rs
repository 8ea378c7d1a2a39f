//! What an AWS call that did not succeed said: which service and operation, and
//! its kind, from which the questions the code asks of it (throttled? may it have
//! taken effect? can a retry help?) are answered here once. Read from the SDK's
//! errors in `aws::sdk_error`; its code is what `errorCode` says.

use serde::Serialize;

use crate::domain::arn::Region;
use crate::domain::scope::UnfinishedReason;

/// The AWS services the function calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Drs,
    Ec2,
    EventBridge,
    Quotas,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drs => "DRS",
            Self::Ec2 => "EC2",
            Self::EventBridge => "EventBridge",
            Self::Quotas => "Service Quotas",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AWS call that did not succeed: which, and what went wrong. Its code (what
/// `errorCode` says) is the service's own where the service answered, else one
/// of ours naming what happened on the way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .kind.code())]
pub struct AwsError {
    pub service: Service,
    /// The API's name for it, as `CreateExtendedSourceServer`.
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub message: String,
}

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service answered with an error: its code (`Http<status>` when it gave
    /// none) and HTTP status; for a quota met, which quota (`quotaCode`).
    Service {
        code: String,
        status: u16,
        quota_code: Option<String>,
    },
    /// The service asked for fewer requests (its code), or every attempt within
    /// an operation's time was throttled or waited its turn.
    Throttled { code: String },
    /// No answer in time, after the SDK's retries.
    Timeout,
    /// The request could not be sent, or its connection failed.
    Connection,
    /// An answer that could not be read (cut off, garbled, a success without a
    /// body that parses).
    InvalidResponse,
    /// No credentials for the call; `passing` when trying later can help (STS
    /// could not be reached), not when STS refused.
    Credentials { passing: bool },
    /// The SDK could not build the request: nothing was sent.
    NotBuilt,
    /// A success that named nothing to go on (a create without its server):
    /// unreadable like [`ErrorKind::InvalidResponse`], and not passing.
    SucceededUnnamed,
    /// An SDK error of no other kind.
    Unknown,
    /// Not sent, or cut, at the invocation's `calls_by`.
    Deadline,
    /// Not sent: an outcome event was given up, so no more changes are made.
    EventsGivenUp,
}

/// The codes AWS services answer throttling with (DRS: `ThrottlingException`,
/// with 429; some front ends answer 400 with the code alone).
pub fn is_throttling(status: u16, code: Option<&str>) -> bool {
    status == 429
        || code.is_some_and(|code| {
            matches!(
                code,
                "ThrottlingException" | "Throttling" | "TooManyRequestsException"
            )
        })
}

/// Service codes for faults on the service's side: trying later can help.
const PASSING_CODES: &[&str] = &[
    "InternalServerException",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

impl ErrorKind {
    /// The service's answer read into a kind: a throttle, or its own error.
    pub fn answered(status: u16, code: Option<&str>, quota_code: Option<String>) -> Self {
        let code = code.map_or_else(|| format!("Http{status}"), str::to_owned);
        if is_throttling(status, Some(&code)) {
            Self::Throttled { code }
        } else {
            Self::Service {
                code,
                status,
                quota_code,
            }
        }
    }

    /// What `errorCode` says: the service's code, or ours for what happened on
    /// the way.
    pub fn code(&self) -> &str {
        match self {
            Self::Service { code, .. } | Self::Throttled { code } => code,
            Self::Timeout => "Timeout",
            Self::Connection => "ConnectionError",
            Self::InvalidResponse | Self::SucceededUnnamed => "InvalidResponse",
            Self::Credentials { .. } => "CredentialsError",
            Self::NotBuilt => "RequestNotBuilt",
            Self::Unknown => "Unknown",
            Self::Deadline => "DeadlineReached",
            Self::EventsGivenUp => "EventsGivenUp",
        }
    }
}

impl AwsError {
    pub fn new(service: Service, operation: &'static str, kind: ErrorKind) -> Self {
        Self {
            service,
            operation,
            message: String::new(),
            kind,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// A call held back, unsent, once an outcome event was given up: the run
    /// makes no change the bus could not tell of.
    pub fn events_given_up(service: Service, operation: &'static str) -> Self {
        Self::new(service, operation, ErrorKind::EventsGivenUp)
            .with_message("not sent: an outcome event was given up, so no more changes are made")
    }

    pub fn deadline_reached(service: Service, operation: &'static str) -> Self {
        Self::new(service, operation, ErrorKind::Deadline)
            .with_message("stopped at the invocation's deadline")
    }

    /// What `errorCode` says.
    pub fn code(&self) -> &str {
        self.kind.code()
    }

    /// The `quotaCode` of a `ServiceQuotaExceededException`: which quota was met.
    pub fn quota_code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Service { quota_code, .. } => quota_code.as_deref(),
            _ => None,
        }
    }

    pub fn is_throttling(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled { .. })
    }

    pub fn is_deadline(&self) -> bool {
        self.kind == ErrorKind::Deadline
    }

    pub fn is_events_given_up(&self) -> bool {
        self.kind == ErrorKind::EventsGivenUp
    }

    /// Whether a later attempt can succeed.
    pub fn retryable(&self) -> bool {
        match &self.kind {
            ErrorKind::Service { code, status, .. } => {
                PASSING_CODES.contains(&code.as_str()) || *status >= 500
            }
            ErrorKind::Credentials { passing } => *passing,
            ErrorKind::NotBuilt | ErrorKind::Unknown | ErrorKind::SucceededUnnamed => false,
            ErrorKind::Throttled { .. }
            | ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::InvalidResponse
            | ErrorKind::Deadline
            | ErrorKind::EventsGivenUp => true,
        }
    }

    /// Whether the call may have taken effect all the same: anything but a
    /// definite refusal (4xx, a throttle) or a request never sent. No answer, a
    /// 5xx, or an answer that could not be read may follow one that did.
    pub fn may_have_taken_effect(&self) -> bool {
        match &self.kind {
            ErrorKind::Service { status, .. } => !(400..500).contains(status),
            ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::InvalidResponse
            | ErrorKind::SucceededUnnamed
            | ErrorKind::Unknown => true,
            ErrorKind::Throttled { .. }
            | ErrorKind::Credentials { .. }
            | ErrorKind::NotBuilt
            | ErrorKind::Deadline
            | ErrorKind::EventsGivenUp => false,
        }
    }
}

/// Why a read stopped short, as the summary writes it (`errorCode`,
/// `countError`): an AWS call that failed, by its code, or a listing this
/// function stopped, by its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadStopped {
    Call(ErrorKind),
    Listing(UnfinishedReason),
}

impl ReadStopped {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Call(kind) => kind.code(),
            Self::Listing(reason) => reason.as_str(),
        }
    }
}

/// Accounts in a region whose coverage could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unread {
    pub region: Region,
    pub staging_accounts: usize,
    pub error_code: ReadStopped,
}

impl Serialize for ReadStopped {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ReadStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: ErrorKind) -> AwsError {
        AwsError::new(Service::EventBridge, "PutEvents", kind)
    }

    #[test]
    fn each_kind_keeps_its_wire_code_and_answers_the_questions_once() {
        let throttled = error(ErrorKind::answered(400, Some("ThrottlingException"), None));
        assert_eq!(throttled.code(), "ThrottlingException");
        assert!(throttled.is_throttling() && throttled.retryable());
        assert!(
            !throttled.may_have_taken_effect(),
            "a throttle is a refusal"
        );
        let refused = error(ErrorKind::answered(
            400,
            Some("AccessDeniedException"),
            None,
        ));
        assert!(!refused.retryable() && !refused.may_have_taken_effect());
        let gateway = error(ErrorKind::answered(502, None, None));
        assert_eq!(gateway.code(), "Http502");
        assert!(gateway.retryable() && gateway.may_have_taken_effect());
        for (kind, code, landed) in [
            (ErrorKind::Timeout, "Timeout", true),
            (ErrorKind::Connection, "ConnectionError", true),
            (ErrorKind::InvalidResponse, "InvalidResponse", true),
            (
                ErrorKind::Credentials { passing: true },
                "CredentialsError",
                false,
            ),
            (ErrorKind::NotBuilt, "RequestNotBuilt", false),
            (ErrorKind::Deadline, "DeadlineReached", false),
            (ErrorKind::EventsGivenUp, "EventsGivenUp", false),
        ] {
            let e = error(kind);
            assert_eq!((e.code(), e.may_have_taken_effect()), (code, landed));
        }
        let stopped = ReadStopped::Listing(UnfinishedReason::TooManyPages);
        assert_eq!(serde_json::json!(stopped), "TOO_MANY_PAGES");
        assert_eq!(
            serde_json::json!(ReadStopped::Call(ErrorKind::Deadline)),
            "DeadlineReached"
        );
    }
}
