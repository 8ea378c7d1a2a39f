//! The DRS adapter: the target account's DRS in one region, in the project's own
//! types. Every operation is admitted by the region's pace, and every attempt on
//! the wire is paced by the client's connector (`paced_http`). The wait for
//! admission counts toward the operation's time, and every operation is cut at the
//! invocation's `calls_by`, whatever DRS does. Reads are safe to repeat: one
//! answered with a body that does not parse, or cut off, is read again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_drs::types::DescribeSourceServersRequestFilters;

use crate::aws::pace::Pace;
use crate::aws::paced_http::CallScope;
use crate::aws::paging::{Page, Paging, Stop};
use crate::aws::sdk_error::{self, Call, SdkCall};
use crate::domain::arn::{AccountId, SourceServerArn};
use crate::domain::aws_error::{AwsError, ErrorKind, Service};
use crate::domain::deadline::Deadline;
use crate::domain::extended::ExtendedRecord;
use crate::domain::outcome::{ExtendedServer, MadeBy};
use crate::domain::readiness::Replication;
use crate::domain::tags::Tags;

/// A staging server that is not yet extended into the target account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensibleServer {
    /// As DRS gave it; validated by the caller like any other input.
    pub arn: String,
    pub tags: Option<Tags>,
}

/// A time as DRS writes one (`ISO8601DatetimeString`), or the function's own
/// mark; `None` for anything that does not read as one.
fn read_time(text: &str) -> Option<std::time::SystemTime> {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_str(text, Format::DateTime)
        .ok()
        .and_then(|t| std::time::SystemTime::try_from(t).ok())
}

/// A time as the function writes its mark: RFC 3339, UTC.
pub fn write_time(at: std::time::SystemTime) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from(at)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The primary network interface's first IPv4 address (`sourceProperties`).
fn primary_ipv4(server: &aws_sdk_drs::types::SourceServer) -> Option<String> {
    let interfaces = server.source_properties()?.network_interfaces();
    let primary = interfaces
        .iter()
        .find(|i| i.is_primary() == Some(true))
        .or_else(|| interfaces.first())?;
    primary
        .ips()
        .iter()
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .cloned()
}

/// What readiness needs of one `SourceServer`, as DRS spells it.
fn replication_of(server: &aws_sdk_drs::types::SourceServer) -> Replication {
    let info = server.data_replication_info();
    let last_launch = server.life_cycle().and_then(|l| l.last_launch());
    let launch = last_launch.and_then(|l| l.initiated());
    Replication {
        state: info
            .and_then(|i| i.data_replication_state())
            .map(|s| s.as_str().to_owned()),
        lag: info.and_then(|i| i.lag_duration()).map(str::to_owned),
        error: info
            .and_then(|i| i.data_replication_error())
            .and_then(|e| e.error())
            .map(|e| e.as_str().to_owned()),
        last_launch_job_id: launch.and_then(|l| l.job_id()).map(str::to_owned),
        last_launch_status: last_launch
            .and_then(|l| l.status())
            .map(|s| s.as_str().to_owned()),
        last_launch_result: server.last_launch_result().map(|r| r.as_str().to_owned()),
        last_launch_at: launch
            .and_then(|l| l.api_call_date_time())
            .map(str::to_owned),
        last_launch_time: launch
            .and_then(|l| l.api_call_date_time())
            .and_then(read_time),
        last_launch_type: launch
            .and_then(|l| l.r#type())
            .map(|t| t.as_str().to_owned()),
        recovery_instance_id: server.recovery_instance_id().map(str::to_owned),
    }
}

/// Which quota a create's `ServiceQuotaExceededException` met, where DRS says.
fn quota_code_of<R>(
    error: &aws_sdk_drs::error::SdkError<
        aws_sdk_drs::operation::create_extended_source_server::CreateExtendedSourceServerError,
        R,
    >,
) -> Option<String> {
    use aws_sdk_drs::operation::create_extended_source_server::CreateExtendedSourceServerError;
    match error.as_service_error()? {
        CreateExtendedSourceServerError::ServiceQuotaExceededException(met) => {
            met.quota_code().map(str::to_owned)
        }
        _ => None,
    }
}

const CREATE: &str = "CreateExtendedSourceServer";
const LIST_STAGING: &str = "ListStagingAccounts";

/// What an operation that got no attempt through in its time says: DRS's own
/// code for its rate.
fn throttled() -> ErrorKind {
    ErrorKind::Throttled {
        code: "ThrottlingException".to_owned(),
    }
}

/// DRS's refusal of a call that conflicts with the server's state.
const CONFLICT: &str = "ConflictException";

/// `ListExtensibleSourceServers` answers at most 300 a page.
pub const EXTENSIBLE_PAGE_SIZE: i32 = 300;
/// `ListStagingAccounts` answers at most 50 a page.
const STAGING_ACCOUNTS_PAGE_SIZE: i32 = 50;
/// `DescribeSourceServers` has no documented maximum; 1000 keeps pages few.
const DESCRIBE_PAGE_SIZE: i32 = 1000;

/// A create that did not succeed, and whether it may have taken effect all the
/// same: an attempt went unanswered (timeout, dropped connection), or DRS failed
/// on its side, or its success could not be read. A refusal (4xx) did not.
#[derive(Debug)]
pub struct CreateFailed {
    pub error: AwsError,
    pub may_have_taken_effect: bool,
}

/// Reads of one page, counting the first, when answers are garbled or cut off.
const READ_TRIES: u32 = 4;

/// DRS's token for the next page; an empty one means there is none.
fn next_page(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

#[derive(Clone, Debug)]
pub struct TargetDrs {
    client: aws_sdk_drs::Client,
    pace: Arc<Pace>,
    operation_timeout: Duration,
}

impl TargetDrs {
    pub fn new(client: aws_sdk_drs::Client, pace: Arc<Pace>, operation_timeout: Duration) -> Self {
        Self {
            client,
            pace,
            operation_timeout,
        }
    }

    /// One operation: admitted by the pace, then sent. The wait for admission
    /// is not the service's time: it is cut only at the invocation's `calls_by`,
    /// so a lower DRS rate slows the run instead of failing its calls. Once
    /// admitted, the operation has its timeout; no attempt leaves, or stays on
    /// the wire, past `calls_by`. Answers what `scope` learnt of the attempts.
    async fn call<T: Send>(
        &self,
        deadline: &Deadline,
        scope: &CallScope,
        call: Call<'_, T>,
    ) -> Result<T, AwsError> {
        let Call { operation, future } = call;
        let error = |kind| AwsError::new(Service::Drs, operation, kind);
        let calls_by = deadline.calls_by();
        if calls_by.is_some_and(|by| tokio::time::Instant::now() >= by) {
            return Err(AwsError::deadline_reached(Service::Drs, operation));
        }
        if scope.stopped() {
            return Err(AwsError::events_given_up(Service::Drs, operation));
        }
        let admitted = match calls_by {
            Some(by) => match tokio::time::timeout_at(by, self.pace.admit()).await {
                Ok(admitted) => admitted,
                Err(_) => return Err(AwsError::deadline_reached(Service::Drs, operation)),
            },
            None => self.pace.admit().await,
        };
        // The wait for admission can be long; the connector checks again before
        // every attempt.
        if scope.stopped() {
            return Err(AwsError::events_given_up(Service::Drs, operation));
        }
        let cut_at = crate::domain::deadline::cut(self.operation_timeout, calls_by);
        let by_deadline = calls_by.is_some_and(|by| by <= cut_at);
        // The connector sends no attempt it could not see answered by the cut: the
        // outer timeout then finds none on the wire that had no chance.
        let result = tokio::time::timeout_at(cut_at, scope.cut_at(cut_at).run(future)).await;
        drop(admitted);
        let deadline_came = calls_by.is_some_and(|by| tokio::time::Instant::now() >= by);
        match result {
            // Held back by the operation's own cut, not the deadline: it waited
            // its turn (throttles, the pace) and nothing was sent late.
            Ok(Err(e)) if e.is_deadline() && !deadline_came && !by_deadline => {
                Err(error(throttled()).with_message(format!(
                    "held back: the operation timeout of {:?} left no room for another attempt",
                    self.operation_timeout
                )))
            }
            Ok(result) => result,
            Err(_) if by_deadline => Err(AwsError::deadline_reached(Service::Drs, operation)),
            // Every attempt was refused (throttled) or still waiting its turn:
            // DRS's rate, not a fault, and nothing took effect.
            Err(_) if !scope.may_have_taken_effect() => Err(error(throttled()).with_message(format!(
                "every attempt within the operation timeout of {:?} was throttled or waited its turn",
                self.operation_timeout
            ))),
            Err(_) => Err(error(ErrorKind::Timeout).with_message(format!(
                "no answer within the operation timeout of {:?}",
                self.operation_timeout
            ))),
        }
    }

    /// A read, repeated while it fails in a way a later try can get past (the SDK
    /// does not repeat an answer it could not parse), within the deadline.
    async fn read<'a, T: Send, F>(&'a self, deadline: &Deadline, mut once: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Call<'a, T>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let scope = CallScope::until(deadline.calls_by());
            match self.call(deadline, &scope, once()).await {
                Err(error) if error.retryable() && !error.is_deadline() && tries < READ_TRIES => {
                    tracing::warn!(%error, tries, "read failed, reading again");
                    let pause = crate::domain::deadline::cut(
                        Duration::from_millis(100 << tries),
                        deadline.calls_by(),
                    );
                    tokio::time::sleep_until(pause).await;
                }
                result => return result,
            }
        }
    }

    /// The target account's extended servers made from one staging account's
    /// servers, by staging server ARN.
    pub async fn extended_from(
        &self,
        staging: &AccountId,
        deadline: &Deadline,
    ) -> Result<HashMap<String, ExtendedServer>, AwsError> {
        let mut found = HashMap::new();
        let mut listing = Paging::default();
        let staging = std::slice::from_ref(staging);
        loop {
            let records = match listing
                .next(|token| self.extended_records(staging, token, DESCRIBE_PAGE_SIZE, deadline))
                .await
            {
                Ok(Some(records)) => records,
                Err(Stop::Failed(error)) => return Err(error),
                // A listing stopped short still answers what it found: a look
                // wants one server, and a repeating DRS has shown all it will.
                Ok(None) | Err(_) => return Ok(found),
            };
            found.extend(records.into_iter().map(|record| {
                let extended = ExtendedServer {
                    id: record.id,
                    arn: record.arn,
                    made_by: record.made_by,
                };
                (record.staging_arn, extended)
            }));
        }
    }

    /// One `DescribeSourceServers` page, read again when garbled or cut off.
    async fn describe_page(
        &self,
        filters: Option<DescribeSourceServersRequestFilters>,
        next_token: Option<String>,
        page_size: i32,
        deadline: &Deadline,
    ) -> Result<
        aws_sdk_drs::operation::describe_source_servers::DescribeSourceServersOutput,
        AwsError,
    > {
        self.read(deadline, || {
            self.client
                .describe_source_servers()
                .set_filters(filters.clone())
                .max_results(page_size)
                .set_next_token(next_token.clone())
                .send()
                .map_err_into(Service::Drs, "DescribeSourceServers")
        })
        .await
    }

    /// One page of the target account's extended servers made from these staging
    /// accounts' servers (at most 200 a call, as `DescribeSourceServers` takes
    /// them), each reduced to what coverage needs as soon as it is read.
    pub async fn extended_records(
        &self,
        staging: &[AccountId],
        next_token: Option<String>,
        page_size: i32,
        deadline: &Deadline,
    ) -> Result<Page<ExtendedRecord>, AwsError> {
        let filters = DescribeSourceServersRequestFilters::builder()
            .set_staging_account_ids(Some(
                staging.iter().map(|a| a.as_str().to_owned()).collect(),
            ))
            .build();
        let page = self
            .describe_page(Some(filters), next_token, page_size, deadline)
            .await?;
        let items = page
            .items()
            .iter()
            .filter_map(|server| {
                let area = server.staging_area()?;
                let error = matches!(
                    area.status(),
                    Some(aws_sdk_drs::types::ExtensionStatus::ExtensionError)
                );
                Some(ExtendedRecord {
                    id: server.source_server_id()?.to_owned(),
                    arn: server.arn()?.to_owned(),
                    staging_arn: area.staging_source_server_arn()?.to_owned(),
                    staging_account: area.staging_account_id().unwrap_or_default().to_owned(),
                    extension_error: error
                        .then(|| area.error_message().unwrap_or_default().to_owned()),
                    made_by: MadeBy::from_tags(server.tags()),
                    replication: replication_of(server),
                    error_since: server
                        .tags()
                        .and_then(|t| t.get(crate::domain::stale::ERROR_SINCE_KEY))
                        .map(|written| crate::domain::stale::Mark {
                            at: read_time(written),
                            written: written.clone(),
                        }),
                    source_ip: primary_ipv4(server),
                })
            })
            .collect();
        Ok(Page {
            items,
            next_token: next_page(page.next_token()),
        })
    }

    /// One page of every source server the target account holds in the region
    /// (its own and every extended one, from any staging account), each named by
    /// its ARN (or id, where DRS gives no ARN): what counts against the quota.
    pub async fn source_server_page(
        &self,
        next_token: Option<String>,
        page_size: i32,
        deadline: &Deadline,
    ) -> Result<Page<String>, AwsError> {
        let page = self
            .describe_page(None, next_token, page_size, deadline)
            .await?;
        let items = page
            .items()
            .iter()
            .filter_map(|server| server.arn().or(server.source_server_id()))
            .map(str::to_owned)
            .collect();
        Ok(Page {
            items,
            next_token: next_page(page.next_token()),
        })
    }

    /// The extended server made from this staging server, if there is one.
    pub async fn find_extended(
        &self,
        staging: &SourceServerArn,
        deadline: &Deadline,
    ) -> Result<Option<ExtendedServer>, AwsError> {
        let mut extended = self.extended_from(staging.account(), deadline).await?;
        Ok(extended.remove(&staging.to_string()))
    }

    /// Creates the extended server; no attempt is sent once `stop` is set.
    pub async fn create_extended(
        &self,
        staging: &SourceServerArn,
        tags: &Tags,
        deadline: &Deadline,
        stop: &Arc<AtomicBool>,
    ) -> Result<ExtendedServer, CreateFailed> {
        let scope = CallScope::until(deadline.calls_by()).stopped_by(stop);
        let sent = self
            .call(
                deadline,
                &scope,
                Call {
                    operation: CREATE,
                    future: Box::pin(async move {
                        self.client
                            .create_extended_source_server()
                            .source_server_arn(staging.to_string())
                            .set_tags(
                                (!tags.is_empty()).then(|| tags.clone().into_iter().collect()),
                            )
                            .send()
                            .await
                            .map_err(|error| {
                                let met = quota_code_of(&error);
                                let mut error = sdk_error::read(Service::Drs, CREATE, error);
                                if let ErrorKind::Service { quota_code, .. } = &mut error.kind {
                                    *quota_code = met;
                                }
                                error
                            })
                    }),
                },
            )
            .await;
        let output = sent.map_err(|error| CreateFailed {
            // The connector saw every attempt: one unanswered, or answered with
            // anything but a refusal, may have made the server.
            may_have_taken_effect: scope.may_have_taken_effect(),
            error,
        })?;
        let server = output.source_server();
        match (
            server.and_then(|s| s.source_server_id()),
            server.and_then(|s| s.arn()),
        ) {
            (Some(id), Some(arn)) => Ok(ExtendedServer {
                id: id.to_owned(),
                arn: arn.to_owned(),
                made_by: MadeBy::from_tags(server.and_then(|s| s.tags())),
            }),
            _ => Err(CreateFailed {
                error: AwsError::new(Service::Drs, CREATE, ErrorKind::SucceededUnnamed)
                    .with_message(
                        "CreateExtendedSourceServer succeeded but named no extended server",
                    ),
                may_have_taken_effect: true,
            }),
        }
    }

    /// Tags an extended server with `key`: the mark of a broken extension.
    pub async fn tag(
        &self,
        arn: &str,
        key: &str,
        value: &str,
        deadline: &Deadline,
    ) -> Result<(), AwsError> {
        let scope = CallScope::until(deadline.calls_by());
        self.call(
            deadline,
            &scope,
            self.client
                .tag_resource()
                .resource_arn(arn)
                .tags(key, value)
                .send()
                .map_err_into(Service::Drs, "TagResource"),
        )
        .await
        .map(drop)
    }

    pub async fn untag(&self, arn: &str, key: &str, deadline: &Deadline) -> Result<(), AwsError> {
        let scope = CallScope::until(deadline.calls_by());
        self.call(
            deadline,
            &scope,
            self.client
                .untag_resource()
                .resource_arn(arn)
                .tag_keys(key)
                .send()
                .map_err_into(Service::Drs, "UntagResource"),
        )
        .await
        .map(drop)
    }

    /// Deletes an extended server: "The Source Server must be disconnected first"
    /// (DRS API Reference, `DeleteSourceServer`). A delete cut short after its
    /// disconnect is finished by a later run: a server DRS already shows
    /// `DISCONNECTED` is deleted without another disconnect; but what an extension
    /// shows may be its staging server's state, so a delete refused
    /// (`ConflictException`) after a skipped disconnect disconnects and deletes
    /// once more. DRS's refusal to disconnect a server again (`ConflictException`,
    /// undocumented) never stops the delete, which is then DRS's to refuse if the
    /// server is not disconnected after all. No attempt of either is sent once
    /// `stop` is set.
    pub async fn delete_extended(
        &self,
        id: &str,
        shown_disconnected: bool,
        deadline: &Deadline,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), AwsError> {
        if shown_disconnected {
            match self.delete_source_server(id, deadline, stop).await {
                Err(error) if error.code() == CONFLICT => {
                    tracing::info!(%error, "shown disconnected, yet not deletable; disconnecting");
                }
                done => return done,
            }
        }
        self.disconnect(id, deadline, stop).await?;
        self.delete_source_server(id, deadline, stop).await
    }

    /// `DisconnectSourceServer`; a refusal for a server already disconnected is
    /// no failure here: the delete that follows says whether it was.
    async fn disconnect(
        &self,
        id: &str,
        deadline: &Deadline,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), AwsError> {
        let scope = CallScope::until(deadline.calls_by()).stopped_by(stop);
        let disconnected = self
            .call(
                deadline,
                &scope,
                self.client
                    .disconnect_source_server()
                    .source_server_id(id)
                    .send()
                    .map_err_into(Service::Drs, "DisconnectSourceServer"),
            )
            .await;
        match disconnected {
            Ok(_) => Ok(()),
            Err(error) if error.code() == CONFLICT => {
                tracing::info!(%error, "disconnect refused; deleting all the same");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn delete_source_server(
        &self,
        id: &str,
        deadline: &Deadline,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), AwsError> {
        let scope = CallScope::until(deadline.calls_by()).stopped_by(stop);
        self.call(
            deadline,
            &scope,
            self.client
                .delete_source_server()
                .source_server_id(id)
                .send()
                .map_err_into(Service::Drs, "DeleteSourceServer"),
        )
        .await
        .map(drop)
    }

    /// One page of the staging account's servers not yet extended; their tags
    /// only when they will be copied (a server's tags may be 20 KB).
    pub async fn list_extensible(
        &self,
        staging: &AccountId,
        next_token: Option<String>,
        keep_tags: bool,
        deadline: &Deadline,
    ) -> Result<Page<ExtensibleServer>, AwsError> {
        let page = self
            .read(deadline, || {
                self.client
                    .list_extensible_source_servers()
                    .staging_account_id(staging.as_str())
                    .max_results(EXTENSIBLE_PAGE_SIZE)
                    .set_next_token(next_token.clone())
                    .send()
                    .map_err_into(Service::Drs, "ListExtensibleSourceServers")
            })
            .await?;
        let items = page
            .items()
            .iter()
            .map(|server| ExtensibleServer {
                arn: server.arn().unwrap_or_default().to_owned(),
                tags: server
                    .tags()
                    .filter(|_| keep_tags)
                    .map(crate::domain::tags::bounded_copy),
            })
            .collect();
        Ok(Page {
            items,
            next_token: next_page(page.next_token()),
        })
    }

    /// A server's DRS launch configuration, as far as launch readiness reads it.
    pub async fn launch_configuration(
        &self,
        server_id: &str,
        deadline: &Deadline,
    ) -> Result<crate::domain::launch::LaunchConfiguration, AwsError> {
        let output = self
            .read(deadline, || {
                self.client
                    .get_launch_configuration()
                    .source_server_id(server_id)
                    .send()
                    .map_err_into(Service::Drs, "GetLaunchConfiguration")
            })
            .await?;
        Ok(crate::domain::launch::LaunchConfiguration {
            template_id: output
                .ec2_launch_template_id()
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            copy_private_ip: output.copy_private_ip().unwrap_or(false),
            right_sizing: output
                .target_instance_type_right_sizing_method()
                .map(|m| m.as_str().to_owned()),
        })
    }

    /// Sets the launch configuration fields a baseline names, and answers the
    /// template DRS names for the server. Idempotent (the model says so), so
    /// asked again like a read on a transient failure.
    pub async fn update_launch_configuration(
        &self,
        server_id: &str,
        fields: &crate::domain::baseline::BaselineFields,
        deadline: &Deadline,
    ) -> Result<Option<String>, AwsError> {
        use aws_sdk_drs::types::{
            LaunchDisposition, Licensing, TargetInstanceTypeRightSizingMethod,
        };
        let output = self
            .read(deadline, || {
                self.client
                    .update_launch_configuration()
                    .source_server_id(server_id)
                    .set_launch_disposition(
                        fields
                            .launch_disposition
                            .map(|d| LaunchDisposition::from(d.as_str())),
                    )
                    .set_target_instance_type_right_sizing_method(
                        fields
                            .right_sizing
                            .map(|r| TargetInstanceTypeRightSizingMethod::from(r.as_str())),
                    )
                    .set_copy_private_ip(fields.copy_private_ip)
                    .set_copy_tags(fields.copy_tags)
                    .set_licensing(
                        fields
                            .os_byol
                            .map(|b| Licensing::builder().os_byol(b).build()),
                    )
                    .send()
                    .map_err_into(Service::Drs, "UpdateLaunchConfiguration")
            })
            .await?;
        Ok(output
            .ec2_launch_template_id()
            .filter(|id| !id.is_empty())
            .map(str::to_owned))
    }

    /// The primary IPv4 address one server's `sourceProperties` show (for an
    /// extension, its staging server's); `None` when DRS shows none.
    pub async fn source_ip(
        &self,
        server_id: &str,
        deadline: &Deadline,
    ) -> Result<Option<String>, AwsError> {
        let filters = DescribeSourceServersRequestFilters::builder()
            .source_server_ids(server_id)
            .build();
        let page = self.describe_page(Some(filters), None, 1, deadline).await?;
        Ok(page
            .items()
            .iter()
            .find(|s| s.source_server_id() == Some(server_id))
            .and_then(primary_ipv4))
    }

    /// Every staging account that already has servers extended into the target
    /// account, all pages, unless the deadline comes first. Ids DRS returns
    /// malformed are skipped.
    pub async fn list_staging_accounts(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<AccountId>, AwsError> {
        let mut accounts = Vec::new();
        let mut seen = HashSet::new();
        let mut listing = Paging::until(deadline);
        loop {
            let listed = listing
                .next(|token| self.staging_account_page(token, &deadline))
                .await;
            let page = match listed {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(accounts),
                Err(Stop::Deadline) => {
                    return Err(AwsError::deadline_reached(Service::Drs, LIST_STAGING))
                }
                Err(Stop::Failed(error)) => return Err(error),
                // Accounts past where DRS repeated itself were never seen: the
                // region is reported unlisted, not taken as whole.
                Err(Stop::Short(reason)) => {
                    return Err(AwsError::new(
                        Service::Drs,
                        LIST_STAGING,
                        ErrorKind::InvalidResponse,
                    )
                    .with_message(format!("{LIST_STAGING} stopped short: {reason}")))
                }
            };
            accounts.extend(page.into_iter().filter(|id| seen.insert(id.clone())));
        }
    }

    /// One `ListStagingAccounts` page, the ids that parse.
    async fn staging_account_page(
        &self,
        next_token: Option<String>,
        deadline: &Deadline,
    ) -> Result<Page<AccountId>, AwsError> {
        let page = self
            .read(deadline, || {
                self.client
                    .list_staging_accounts()
                    .max_results(STAGING_ACCOUNTS_PAGE_SIZE)
                    .set_next_token(next_token.clone())
                    .send()
                    .map_err_into(Service::Drs, LIST_STAGING)
            })
            .await?;
        let items = page
            .accounts()
            .iter()
            .filter_map(|account| AccountId::parse(account.account_id()?).ok())
            .collect();
        Ok(Page {
            items,
            next_token: next_page(page.next_token()),
        })
    }
}
