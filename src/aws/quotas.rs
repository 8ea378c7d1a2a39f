//! Service Quotas in one region of the target account: the applied value of
//! DRS's source-server quota, and its AWS default where none is applied. At most
//! two calls a region and run; what it cannot read is said, and the caller judges
//! by the documented default as the last resort.

use crate::aws::sdk_error;
use crate::domain::aws_error::{ErrorKind, Service};
use crate::domain::deadline::Deadline;
use crate::domain::quota::{read_quota, SERVICE_CODE, SOURCE_SERVER_QUOTA_CODE};

#[derive(Clone, Debug)]
pub struct TargetQuotas {
    client: aws_sdk_servicequotas::Client,
}

impl TargetQuotas {
    pub fn new(client: aws_sdk_servicequotas::Client) -> Self {
        Self { client }
    }

    /// The applied source-server quota, or why it cannot be judged by: Service
    /// Quotas' error code, a value that is no count, or the deadline. The SDK's
    /// own timeouts bound the call; the deadline cuts it sooner.
    pub async fn source_server_quota(&self, deadline: &Deadline) -> Result<u64, String> {
        let call = self
            .client
            .get_service_quota()
            .service_code(SERVICE_CODE)
            .quota_code(SOURCE_SERVER_QUOTA_CODE)
            .send();
        match within(deadline, call).await? {
            Ok(output) => read_quota(output.quota().and_then(|q| q.value())).map_err(str::to_owned),
            Err(error) => {
                let error = sdk_error::read(Service::Quotas, "GetServiceQuota", error);
                tracing::warn!(%error, "could not read the applied source-server quota");
                Err(error.code().to_owned())
            }
        }
    }

    /// The quota's AWS default (`GetAWSDefaultServiceQuota`): what applies where
    /// no value was applied ("the quota is not retrieved" for an account that
    /// never changed it). `None` when it cannot be read either.
    pub async fn aws_default_source_server_quota(&self, deadline: &Deadline) -> Option<u64> {
        let call = self
            .client
            .get_aws_default_service_quota()
            .service_code(SERVICE_CODE)
            .quota_code(SOURCE_SERVER_QUOTA_CODE)
            .send();
        match within(deadline, call).await.ok()? {
            Ok(output) => read_quota(output.quota().and_then(|q| q.value())).ok(),
            Err(error) => {
                let error = sdk_error::read(Service::Quotas, "GetAWSDefaultServiceQuota", error);
                tracing::warn!(%error, "could not read the source-server quota's AWS default");
                None
            }
        }
    }
}

/// A Service Quotas call, cut at the invocation's `calls_by`.
async fn within<F: std::future::Future>(deadline: &Deadline, call: F) -> Result<F::Output, String> {
    match deadline.calls_by() {
        Some(by) => tokio::time::timeout_at(by, call)
            .await
            .map_err(|_| ErrorKind::Deadline.code().to_owned()),
        None => Ok(call.await),
    }
}
