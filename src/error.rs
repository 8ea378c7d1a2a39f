//! The project's errors. `DrsError` keeps what DRS said and whether trying again can
//! help; that one fact drives retries, outcome events and whether the invocation fails.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_drs::config::http::HttpResponse;
use aws_sdk_drs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_drs::operation::RequestId;
use lambda_runtime::Diagnostic;

use crate::arn::{AccountId, Region, SourceServerArn};

/// Input that names something DRS could never accept. Messages echo the input
/// shortened and cleaned of control characters, never whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("account id `{0}` is not 12 digits")]
    AccountId(String),
    #[error("source server id `{0}` is not `s-` and 17 letters or digits")]
    SourceServerId(String),
    #[error("region `{0}` is not an AWS region name")]
    Region(String),
    #[error("source server ARN `{arn}` is malformed: {why}")]
    Arn { arn: String, why: &'static str },
}

/// A call's future, boxed and erased: the SDK's futures are deep, and every
/// caller's type would otherwise hold them.
pub type CallFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, DrsError>> + Send + 'a>>;

/// An SDK call whose error is read into a [`DrsError`].
pub trait SdkCall<'a, T> {
    fn map_err_into(self) -> CallFuture<'a, T>;
}

impl<'a, T, E, F> SdkCall<'a, T> for F
where
    F: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send + 'a,
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    fn map_err_into(self) -> CallFuture<'a, T> {
        Box::pin(async move { self.await.map_err(DrsError::from_sdk) })
    }
}

/// A DRS call that did not succeed, as DRS (or the network) put it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DrsError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// DRS's codes for faults on its side or of pace: trying later can help.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalServerException",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// DRS's answer when the target account holds as many source servers as its
/// quota allows.
pub const QUOTA_EXCEEDED: &str = "ServiceQuotaExceededException";

/// How far a refusal that no retry changes reaches for the rest of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every create in the region: the target account's quota is used up, or DRS
    /// is not initialised there.
    Region(&'static str),
    /// Every create from one staging account in the region: it does not trust the
    /// target account.
    StagingAccount(&'static str),
}

impl Refusal {
    /// Whether DRS's `code`, met on a create, holds for the rest of the run, and
    /// how far; the reason is what `unfinished` says.
    pub fn of(code: &str) -> Option<Self> {
        match code {
            QUOTA_EXCEEDED => Some(Self::Region("SERVICE_QUOTA_EXCEEDED")),
            "UninitializedAccountException" => Some(Self::Region("UNINITIALIZED_ACCOUNT")),
            "AccessDeniedException" => Some(Self::StagingAccount("ACCESS_DENIED")),
            _ => None,
        }
    }

    /// What a run's `unfinished` says of what it stopped.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Region(reason) | Self::StagingAccount(reason) => reason,
        }
    }

    /// Whether this refusal, met for `met_in`, stops creating for `server`.
    pub fn reaches(&self, met_in: &SourceServerArn, server: (&AccountId, &Region)) -> bool {
        met_in.region() == server.1
            && (matches!(self, Self::Region(_)) || met_in.account() == server.0)
    }
}

/// The code of a listing stopped by the invocation's deadline, not by DRS.
pub const DEADLINE_REACHED: &str = "DeadlineReached";

impl DrsError {
    pub fn deadline_reached() -> Self {
        Self::new(
            DEADLINE_REACHED,
            "stopped at the invocation's deadline",
            true,
        )
    }

    pub fn is_deadline(&self) -> bool {
        self.code == DEADLINE_REACHED
    }

    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable,
        }
    }

    /// Maps any SDK error of any AWS service into the code DRS gave (or a name for
    /// what went wrong on the way) and whether a later attempt can succeed.
    pub fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
    {
        let credentials = credentials_failure(&err);
        match &err {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let inner = context.err();
                let code = inner
                    .code()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("Http{status}"));
                let message = inner
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| code.clone());
                // A success whose body could not be read (cut off, garbled) is no
                // refusal: the same read again can succeed.
                if (200..300).contains(&status) {
                    return Self::new(
                        "InvalidResponse",
                        format!(
                            "answered {status} with a body that could not be read: {}",
                            source_chain(&err)
                        ),
                        true,
                    );
                }
                let retryable =
                    RETRYABLE_CODES.contains(&code.as_str()) || status == 429 || status >= 500;
                let message = match inner.request_id() {
                    Some(id) => format!("{message} (request id {id})"),
                    None => message,
                };
                Self::new(code, message, retryable)
            }
            SdkError::TimeoutError(_) => {
                Self::new("Timeout", "the call timed out, after retries", true)
            }
            SdkError::DispatchFailure(_) if credentials.is_some() => {
                let retryable = credentials.unwrap_or(false);
                Self::new(
                    "CredentialsError",
                    format!("no credentials for the call: {}", source_chain(&err)),
                    retryable,
                )
            }
            SdkError::DispatchFailure(failure) if failure.is_timeout() => Self::new(
                "Timeout",
                format!("the call timed out, after retries: {}", source_chain(&err)),
                true,
            ),
            SdkError::DispatchFailure(failure) => {
                let what = if failure.is_timeout() {
                    "connection timed out"
                } else if failure.is_io() {
                    "connection failed"
                } else {
                    "request could not be sent"
                };
                Self::new(
                    "ConnectionError",
                    format!("{what}: {}", source_chain(&err)),
                    true,
                )
            }
            SdkError::ResponseError(_) => Self::new(
                "InvalidResponse",
                format!("the response could not be read: {}", source_chain(&err)),
                true,
            ),
            SdkError::ConstructionFailure(_) => Self::new(
                "RequestNotBuilt",
                format!("the request could not be built: {}", source_chain(&err)),
                false,
            ),
            _ => Self::new("Unknown", source_chain(&err), false),
        }
    }
}

/// Whether the call failed for want of credentials (such as a refused
/// `AssumeRole`), and if so whether trying later can help. STS's own refusals
/// (access denied, a wrong external id) will not pass by themselves.
fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<bool> {
    let mut next = err.source();
    while let Some(cause) = next {
        if let Some(credentials) = cause.downcast_ref::<CredentialsError>() {
            return Some(match credentials {
                CredentialsError::ProviderTimedOut(_) => true,
                CredentialsError::ProviderError(_) => {
                    let text = source_chain(credentials);
                    !(text.contains("AccessDenied") || text.contains("ValidationError"))
                }
                _ => false,
            });
        }
        next = cause.source();
    }
    None
}

/// The whole `source()` chain on one line: the SDK's top-level messages alone
/// ("dispatch failure") do not tell an operator what happened.
fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}

/// A configuration value that does not parse; it stops the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {why}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub why: String,
}

/// Why an invocation is reported to Lambda as failed, so that Lambda retries it
/// and then hands it to the failure destination.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("{failed} server(s) failed with retryable errors; summary: {summary}")]
    RetryableFailures { failed: usize, summary: String },
    #[error("{undelivered} outcome event(s) could not be delivered ({cause}); summary: {summary}")]
    OutcomesUndelivered {
        undelivered: usize,
        cause: String,
        summary: String,
    },
}

impl InvocationError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::RetryableFailures { .. } => "RetryableFailures",
            Self::OutcomesUndelivered { .. } => "OutcomesUndelivered",
        }
    }
}

impl From<InvocationError> for Diagnostic {
    fn from(err: InvocationError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_errors_have_stable_types_and_full_messages() {
        let diagnostic = Diagnostic::from(InvocationError::RetryableFailures {
            failed: 2,
            summary: "{}".into(),
        });
        assert_eq!(diagnostic.error_type, "RetryableFailures");
        assert!(diagnostic.error_message.starts_with("2 server(s) failed"));
    }

    #[test]
    fn source_chain_stays_on_one_line() {
        let io = std::io::Error::other("first\nsecond");
        assert_eq!(source_chain(&io), "first second");
    }
}
