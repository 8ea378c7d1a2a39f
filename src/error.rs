//! Why an invocation fails into Lambda's retries.

use lambda_runtime::Diagnostic;

/// Why an invocation is reported to Lambda as failed, so that Lambda retries it
/// and then hands it to the failure destination.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("{failed} server(s) failed with retryable errors; summary: {summary}")]
    RetryableFailures { failed: usize, summary: String },
    #[error("{servers} server(s) the event named were not tried before the deadline; summary: {summary}")]
    NotReached { servers: usize, summary: String },
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
            Self::NotReached { .. } => "NotReached",
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
}
