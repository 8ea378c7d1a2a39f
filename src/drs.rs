//! The DRS adapter: the target account's DRS in one region, in the project's own
//! types. Every operation is admitted by the region's pace, and every attempt on
//! the wire is paced by the client's connector (`paced_http`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_drs::types::DescribeSourceServersRequestFilters;

use crate::arn::{AccountId, SourceServerArn};
use crate::deadline::Deadline;
use crate::error::DrsError;
use crate::pace::Pace;
use crate::tags::Tags;

/// An extended source server in the target account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedServer {
    pub id: String,
    pub arn: String,
}

/// What coverage keeps of one extended server (a real record is a few KB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedRecord {
    pub id: String,
    pub arn: String,
    pub staging_arn: String,
    pub staging_account: String,
    /// DRS's message when the extension is in `EXTENSION_ERROR`.
    pub extension_error: Option<String>,
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

/// DRS's token for the next page; an empty one means there is none.
fn next_page(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

#[derive(Clone, Debug)]
pub struct TargetDrs {
    client: aws_sdk_drs::Client,
    pace: Arc<Pace>,
}

impl TargetDrs {
    pub fn new(client: aws_sdk_drs::Client, pace: Arc<Pace>) -> Self {
        Self { client, pace }
    }

    /// The target account's extended servers made from one staging account's
    /// servers, by staging server ARN.
    pub async fn extended_from(
        &self,
        staging: &AccountId,
    ) -> Result<HashMap<String, ExtendedServer>, DrsError> {
        let mut found = HashMap::new();
        let mut next_token = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .extended_records(
                    std::slice::from_ref(staging),
                    next_token,
                    DESCRIBE_PAGE_SIZE,
                )
                .await?;
            for record in page.items {
                let extended = ExtendedServer {
                    id: record.id,
                    arn: record.arn,
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
    ) -> Result<Page<ExtendedRecord>, DrsError> {
        let filters = DescribeSourceServersRequestFilters::builder()
            .set_staging_account_ids(Some(
                staging.iter().map(|a| a.as_str().to_owned()).collect(),
            ))
            .build();
        let _admitted = self.pace.admit().await;
        let page = self
            .client
            .describe_source_servers()
            .filters(filters)
            .max_results(page_size)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(DrsError::from_sdk)?;
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
    ) -> Result<Option<ExtendedServer>, DrsError> {
        let mut extended = self.extended_from(staging.account()).await?;
        Ok(extended.remove(&staging.to_string()))
    }

    pub async fn create_extended(
        &self,
        staging: &SourceServerArn,
        tags: &Tags,
    ) -> Result<ExtendedServer, DrsError> {
        let _admitted = self.pace.admit().await;
        let output = self
            .client
            .create_extended_source_server()
            .source_server_arn(staging.to_string())
            .set_tags((!tags.is_empty()).then(|| tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(DrsError::from_sdk)?;
        let server = output.source_server();
        match (
            server.and_then(|s| s.source_server_id()),
            server.and_then(|s| s.arn()),
        ) {
            (Some(id), Some(arn)) => Ok(ExtendedServer {
                id: id.to_owned(),
                arn: arn.to_owned(),
            }),
            _ => Err(DrsError::new(
                "InvalidResponse",
                "CreateExtendedSourceServer succeeded but named no extended server",
                false,
            )),
        }
    }

    pub async fn list_extensible(
        &self,
        staging: &AccountId,
        next_token: Option<String>,
    ) -> Result<Page<ExtensibleServer>, DrsError> {
        let _admitted = self.pace.admit().await;
        let page = self
            .client
            .list_extensible_source_servers()
            .staging_account_id(staging.as_str())
            .max_results(EXTENSIBLE_PAGE_SIZE)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(DrsError::from_sdk)?;
        let items = page
            .items()
            .iter()
            .map(|server| ExtensibleServer {
                arn: server.arn().unwrap_or_default().to_owned(),
                tags: server
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
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
            let _admitted = self.pace.admit().await;
            let page = self
                .client
                .list_staging_accounts()
                .max_results(STAGING_ACCOUNTS_PAGE_SIZE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(DrsError::from_sdk)?;
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
