//! The DRS adapter: the target account's DRS in one region, in the project's own
//! types. Every operation is admitted by the region's pace, and every attempt on
//! the wire is paced by the client's connector (`paced_http`). The wait for
//! admission counts toward the operation's time, and every operation is cut at the
//! invocation's `calls_by`, whatever DRS does. Reads are safe to repeat: one
//! answered with a body that does not parse, or cut off, is read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_drs::types::DescribeSourceServersRequestFilters;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::aws::pace::Pace;
use crate::aws::sdk_error::{CallFuture, SdkCall};
use crate::domain::arn::{AccountId, SourceServerArn};
use crate::domain::deadline::Deadline;
use crate::domain::failure::DrsError;
use crate::domain::outcome::ExtendedServer;
use crate::domain::tags::Tags;

/// What coverage keeps of one extended server (a real record is a few KB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedRecord {
    pub id: String,
    pub arn: String,
    pub staging_arn: String,
    pub staging_account: String,
    /// DRS's message when the extension is in `EXTENSION_ERROR`.
    pub extension_error: Option<String>,
    pub added_at: Option<SystemTime>,
}

/// A staging server that is not yet extended into the target account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensibleServer {
    /// As DRS gave it; validated by the caller like any other input.
    pub arn: String,
    pub tags: Option<Tags>,
}

/// One page of a paginated listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// `ListExtensibleSourceServers` answers at most 300 a page.
pub const EXTENSIBLE_PAGE_SIZE: i32 = 300;
/// `ListStagingAccounts` answers at most 50 a page.
const STAGING_ACCOUNTS_PAGE_SIZE: i32 = 50;
/// `DescribeSourceServers` has no documented maximum; 1000 keeps pages few.
const DESCRIBE_PAGE_SIZE: i32 = 1000;
/// A listing that keeps handing out tokens is cut off rather than followed forever.
const MAX_PAGES: usize = 10_000;

/// A create that did not succeed, and whether it may have taken effect all the
/// same: an attempt went unanswered (timeout, dropped connection), or DRS failed
/// on its side, or its success could not be read. A refusal (4xx) did not.
#[derive(Debug)]
pub struct CreateFailed {
    pub error: DrsError,
    pub may_have_taken_effect: bool,
}

/// Notes whether any attempt of one operation ended without a definite answer;
/// the SDK's retries hide that from the caller.
#[derive(Clone, Debug, Default)]
struct Unanswered(Arc<AtomicBool>);

impl Intercept for Unanswered {
    fn name(&self) -> &'static str {
        "Unanswered"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let definite = match (context.response(), context.output_or_error()) {
            (Some(_), Some(Ok(_))) => true,
            (Some(response), Some(Err(_))) => response.status().is_client_error(),
            _ => false,
        };
        if !definite {
            self.0.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Reads of one page, counting the first, when answers are garbled or cut off.
const READ_TRIES: u32 = 4;

/// DRS's token for the next page; an empty one means there is none.
fn next_page(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

/// DRS's date-times (ISO 8601, `Z` or a `+00:00` offset).
fn date_time(text: Option<&str>) -> Option<SystemTime> {
    use aws_smithy_types::date_time::Format;
    let text = text?;
    let parsed = aws_smithy_types::DateTime::from_str(text, Format::DateTime).or_else(|_| {
        let utc = text.strip_suffix("+00:00").map(|t| format!("{t}Z"));
        aws_smithy_types::DateTime::from_str(utc.as_deref().unwrap_or(text), Format::DateTime)
    });
    SystemTime::try_from(parsed.ok()?).ok()
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

    /// One operation: admitted by the pace, then sent, all within the operation
    /// timeout and before the invocation's `calls_by`.
    async fn call<T: Send>(
        &self,
        deadline: &Deadline,
        operation: CallFuture<'_, T>,
    ) -> Result<T, DrsError> {
        let calls_by = deadline.calls_by();
        if calls_by.is_some_and(|by| tokio::time::Instant::now() >= by) {
            return Err(DrsError::deadline_reached());
        }
        let cut_at = crate::domain::deadline::cut(self.operation_timeout, calls_by);
        let by_deadline = calls_by.is_some_and(|by| by <= cut_at);
        let bounded = async {
            let _admitted = self.pace.admit().await;
            operation.await
        };
        match tokio::time::timeout_at(cut_at, bounded).await {
            Ok(result) => result,
            Err(_) if by_deadline => Err(DrsError::deadline_reached()),
            Err(_) => Err(DrsError::new(
                "Timeout",
                format!(
                    "no answer within the operation timeout of {:?}, waiting for the pace included",
                    self.operation_timeout
                ),
                true,
            )),
        }
    }

    /// A read, repeated while it fails in a way a later try can get past (the SDK
    /// does not repeat an answer it could not parse), within the deadline.
    async fn read<'a, T: Send, F>(&'a self, deadline: &Deadline, mut once: F) -> Result<T, DrsError>
    where
        F: FnMut() -> CallFuture<'a, T>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.call(deadline, once()).await {
                Err(error) if error.retryable && !error.is_deadline() && tries < READ_TRIES => {
                    tracing::warn!(%error, tries, "read failed, reading again");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
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
    ) -> Result<HashMap<String, ExtendedServer>, DrsError> {
        let mut found = HashMap::new();
        let mut next_token = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .extended_records(
                    std::slice::from_ref(staging),
                    next_token,
                    DESCRIBE_PAGE_SIZE,
                    deadline,
                )
                .await?;
            for record in page.items {
                let extended = ExtendedServer {
                    id: record.id,
                    arn: record.arn,
                    added_at: record.added_at,
                };
                found.insert(record.staging_arn, extended);
            }
            next_token = page.next_token;
            if next_token.is_none() {
                break;
            }
        }
        Ok(found)
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
    ) -> Result<Page<ExtendedRecord>, DrsError> {
        let filters = DescribeSourceServersRequestFilters::builder()
            .set_staging_account_ids(Some(
                staging.iter().map(|a| a.as_str().to_owned()).collect(),
            ))
            .build();
        let page = self
            .read(deadline, || {
                self.client
                    .describe_source_servers()
                    .filters(filters.clone())
                    .max_results(page_size)
                    .set_next_token(next_token.clone())
                    .send()
                    .map_err_into()
            })
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
                    added_at: date_time(
                        server
                            .life_cycle()
                            .and_then(|l| l.added_to_service_date_time()),
                    ),
                })
            })
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
    ) -> Result<Option<ExtendedServer>, DrsError> {
        let mut extended = self.extended_from(staging.account(), deadline).await?;
        Ok(extended.remove(&staging.to_string()))
    }

    pub async fn create_extended(
        &self,
        staging: &SourceServerArn,
        tags: &Tags,
        deadline: &Deadline,
    ) -> Result<ExtendedServer, CreateFailed> {
        let unanswered = Unanswered::default();
        let sent = self
            .call(
                deadline,
                self.client
                    .create_extended_source_server()
                    .source_server_arn(staging.to_string())
                    .set_tags((!tags.is_empty()).then(|| tags.clone().into_iter().collect()))
                    .customize()
                    .interceptor(unanswered.clone())
                    .send()
                    .map_err_into(),
            )
            .await;
        let output = sent.map_err(|error| CreateFailed {
            // Cut by our own timeout or the deadline, an attempt was under way.
            may_have_taken_effect: unanswered.0.load(Ordering::Relaxed)
                || error.code == "Timeout"
                || error.is_deadline(),
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
                added_at: date_time(
                    server
                        .and_then(|s| s.life_cycle())
                        .and_then(|l| l.added_to_service_date_time()),
                ),
            }),
            _ => Err(CreateFailed {
                error: DrsError::new(
                    "InvalidResponse",
                    "CreateExtendedSourceServer succeeded but named no extended server",
                    false,
                ),
                may_have_taken_effect: true,
            }),
        }
    }

    /// One page of the staging account's servers not yet extended; their tags
    /// only when they will be copied (a server's tags may be 20 KB).
    pub async fn list_extensible(
        &self,
        staging: &AccountId,
        next_token: Option<String>,
        keep_tags: bool,
        deadline: &Deadline,
    ) -> Result<Page<ExtensibleServer>, DrsError> {
        let page = self
            .read(deadline, || {
                self.client
                    .list_extensible_source_servers()
                    .staging_account_id(staging.as_str())
                    .max_results(EXTENSIBLE_PAGE_SIZE)
                    .set_next_token(next_token.clone())
                    .send()
                    .map_err_into()
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

    /// Every staging account that already has servers extended into the target
    /// account, all pages, unless the deadline comes first. Ids DRS returns
    /// malformed are skipped.
    pub async fn list_staging_accounts(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<AccountId>, DrsError> {
        let mut accounts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next_token = None;
        for _ in 0..MAX_PAGES {
            if deadline.reached() {
                return Err(DrsError::deadline_reached());
            }
            let page = self
                .read(&deadline, || {
                    self.client
                        .list_staging_accounts()
                        .max_results(STAGING_ACCOUNTS_PAGE_SIZE)
                        .set_next_token(next_token.clone())
                        .send()
                        .map_err_into()
                })
                .await?;
            for account in page.accounts() {
                if let Some(id) = account
                    .account_id()
                    .and_then(|id| AccountId::parse(id).ok())
                {
                    if seen.insert(id.clone()) {
                        accounts.push(id);
                    }
                }
            }
            next_token = next_page(page.next_token());
            if next_token.is_none() {
                break;
            }
        }
        Ok(accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_drs_date_times_with_either_utc_spelling() {
        let z = date_time(Some("2026-12-01T15:30:00.250Z")).unwrap();
        let offset = date_time(Some("2026-12-01T15:30:00.250+00:00")).unwrap();
        assert_eq!(z, offset);
        let since = z.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(since.as_millis(), 1_796_139_000_250);
        assert!(date_time(Some("yesterday")).is_none());
        assert!(date_time(None).is_none());
    }
}
