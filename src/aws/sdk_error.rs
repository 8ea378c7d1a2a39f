//! The SDK's errors read into an [`AwsError`]: the service's code, or the kind of
//! thing that went wrong on the way.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_drs::config::http::HttpResponse;
use aws_sdk_drs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_drs::operation::RequestId;

use crate::aws::paced_http::NotSent;
use crate::domain::aws_error::{AwsError, ErrorKind, Service};

/// A call's future, boxed and erased (the SDK's futures are deep, and every
/// caller's type would otherwise hold them), with the operation it calls.
pub struct Call<'a, T> {
    pub operation: &'static str,
    pub future: CallFuture<'a, T>,
}

impl<T> std::future::Future for Call<'_, T> {
    type Output = Result<T, AwsError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

pub type CallFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, AwsError>> + Send + 'a>>;

/// An SDK call whose error is read into an [`AwsError`].
pub trait SdkCall<'a, T> {
    fn map_err_into(self, service: Service, operation: &'static str) -> Call<'a, T>;
}

impl<'a, T, E, F> SdkCall<'a, T> for F
where
    F: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send + 'a,
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    fn map_err_into(self, service: Service, operation: &'static str) -> Call<'a, T> {
        Call {
            operation,
            future: Box::pin(
                async move { self.await.map_err(|error| read(service, operation, error)) },
            ),
        }
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

/// Any SDK error of any AWS service, read into its kind and a message that
/// tells an operator what happened.
pub fn read<E>(
    service: Service,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
{
    let error = |kind| AwsError::new(service, operation, kind);
    match &err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            // A success whose body could not be read (cut off, garbled) is no
            // refusal: the same read again can succeed.
            if (200..300).contains(&status) {
                return error(ErrorKind::InvalidResponse).with_message(format!(
                    "answered {status} with a body that could not be read: {}",
                    source_chain(&err)
                ));
            }
            let inner = context.err();
            let kind = ErrorKind::answered(status, inner.code(), None);
            let message = inner.message().unwrap_or(kind.code()).to_owned();
            let message = match inner.request_id() {
                Some(id) => format!("{message} (request id {id})"),
                None => message,
            };
            error(kind).with_message(message)
        }
        SdkError::TimeoutError(_) => {
            error(ErrorKind::Timeout).with_message("the call timed out, after retries")
        }
        SdkError::DispatchFailure(failure) => match (credentials_failure(&err), not_sent(&err)) {
            (Some(passing), _) => error(ErrorKind::Credentials { passing }).with_message(format!(
                "no credentials for the call: {}",
                source_chain(&err)
            )),
            // The paced connector held the attempt back: nothing was sent by it.
            (None, Some(NotSent::Deadline)) => AwsError::deadline_reached(service, operation),
            (None, Some(NotSent::Stopped)) => AwsError::events_given_up(service, operation),
            (None, None) if failure.is_timeout() => error(ErrorKind::Timeout).with_message(
                format!("the call timed out, after retries: {}", source_chain(&err)),
            ),
            (None, None) => {
                let what = if failure.is_io() {
                    "connection failed"
                } else {
                    "request could not be sent"
                };
                error(ErrorKind::Connection).with_message(format!("{what}: {}", source_chain(&err)))
            }
        },
        SdkError::ResponseError(_) => error(ErrorKind::InvalidResponse).with_message(format!(
            "the response could not be read: {}",
            source_chain(&err)
        )),
        SdkError::ConstructionFailure(_) => error(ErrorKind::NotBuilt).with_message(format!(
            "the request could not be built: {}",
            source_chain(&err)
        )),
        _ => error(ErrorKind::Unknown).with_message(source_chain(&err)),
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
