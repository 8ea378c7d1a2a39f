//! The SDK's errors read into a [`DrsError`]: DRS's code, or a name for what went
//! wrong on the way, and whether a later attempt can succeed.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_drs::config::http::HttpResponse;
use aws_sdk_drs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_drs::operation::RequestId;

use crate::aws::paced_http::NotSent;
use crate::domain::failure::DrsError;

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

/// Whether the paced connector declined to send the attempt, and why.
fn not_sent(err: &(dyn std::error::Error + 'static)) -> Option<NotSent> {
    let mut source = Some(err);
    while let Some(error) = source {
        if let Some(why) = error.downcast_ref::<NotSent>() {
            return Some(*why);
        }
        source = error.source();
    }
    None
}

/// DRS's codes for faults on its side or of pace: trying later can help.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalServerException",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

impl DrsError {
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
            // The paced connector held the attempt back: the deadline came while it
            // waited its turn. Nothing was sent by it.
            SdkError::DispatchFailure(_) if not_sent(&err) == Some(NotSent::Deadline) => {
                Self::deadline_reached()
            }
            SdkError::DispatchFailure(_) if not_sent(&err) == Some(NotSent::Stopped) => {
                Self::events_given_up()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_chain_stays_on_one_line() {
        let io = std::io::Error::other("first\nsecond");
        assert_eq!(source_chain(&io), "first second");
    }
}
