//! AWS clients, built once at start from one `SdkConfig` and kept: DRS clients for
//! the target account (one per served region, made on first use, each paced),
//! Service Quotas for the target account (one per served region, made on first
//! use), EC2 for the target account (one per served region, made on first
//! use), the EventBridge client for outcome events with the function's own
//! credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_drs::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_drs::config::timeout::TimeoutConfig;
use aws_sdk_drs::config::{SharedCredentialsProvider, StalledStreamProtectionConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::aws::drs::TargetDrs;
use crate::aws::ec2::TargetEc2;
use crate::aws::pace::Pace;
use crate::aws::paced_http;
use crate::aws::quotas::TargetQuotas;
use crate::aws::retry_after::RetryAfterClassifier;
use crate::domain::arn::{AccountId, Region};
use crate::domain::config::{Config, TargetRole};
use crate::domain::UNPOISONED;

/// How hard and how long one AWS call may try. The defaults bound a single call
/// to well under a minute, so an invocation cannot hang on a dead endpoint.
#[derive(Clone, Debug)]
pub struct CallPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

impl CallPolicy {
    /// Standard mode, with its retry quota. The adaptive mode was measured and left
    /// out: its limiter holds the rate down long after a storm; the region's
    /// `Pace`, under every attempt, finds the rate instead.
    fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    /// DRS's attempts are timed by the paced connector, from when they leave the
    /// queue; the whole operation by `TargetDrs`, which can tell a call that
    /// only waited its turn (every attempt refused or held back) from one that
    /// may have taken effect.
    fn paced_timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .build()
    }

    /// One retry quota (the SDK's standard token bucket) per set of clients, region
    /// and service: a storm in one region does not use up another's retries. The
    /// SDK keeps buckets by partition name for the whole process, so the name says
    /// which set of clients it belongs to (one per process in Lambda; many in tests).
    fn retry_partition(name: String) -> RetryPartition {
        RetryPartition::custom(name)
            .token_bucket(TokenBucket::default())
            .build()
    }
}

/// Tells apart the retry quotas of each `Clients` in a process.
static CLIENT_SETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub struct Clients {
    /// This set's number, for its retry partitions' names.
    set: u64,
    target: SdkConfig,
    policy: CallPolicy,
    drs_max_rps: u32,
    /// The regions this function serves: no client is built for any other.
    regions: Vec<Region>,
    http: SharedHttpClient,
    drs: Mutex<HashMap<Region, TargetDrs>>,
    quotas: Mutex<HashMap<Region, TargetQuotas>>,
    ec2: Mutex<HashMap<Region, TargetEc2>>,
    eventbridge: aws_sdk_eventbridge::Client,
    fan_out_eventbridge: aws_sdk_eventbridge::Client,
    /// The function's own credentials, for the account they belong to.
    sts: aws_sdk_sts::Client,
    own_account: tokio::sync::OnceCell<Option<AccountId>>,
}

impl Clients {
    /// Loads the function's own AWS configuration (environment, Lambda's
    /// credentials, `AWS_ENDPOINT_URL*`) and builds the clients.
    pub async fn load(config: &Config) -> Self {
        let own = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(own, config, CallPolicy::default()).await
    }

    pub async fn new(own: SdkConfig, config: &Config, policy: CallPolicy) -> Self {
        let target = match &config.target_role {
            Some(role) => assume(&own, role, &policy).await,
            None => own.clone(),
        };
        let set = CLIENT_SETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let eventbridge = eventbridge_client(&own, &config.result_event_bus, &policy, set);
        let fan_out_eventbridge = eventbridge_client(&own, &config.fan_out_event_bus, &policy, set);
        let http = own.http_client().unwrap_or_else(paced_http::default_base);
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&own)
                .retry_config(policy.retry_config())
                .timeout_config(policy.timeout_config())
                .build(),
        );
        Self {
            set,
            target,
            policy,
            drs_max_rps: config.drs_max_rps,
            regions: config.reconcile_regions.clone(),
            http,
            drs: Mutex::new(HashMap::new()),
            quotas: Mutex::new(HashMap::new()),
            ec2: Mutex::new(HashMap::new()),
            eventbridge,
            fan_out_eventbridge,
            sts,
            own_account: tokio::sync::OnceCell::new(),
        }
    }

    /// The account of the function's own credentials (STS `GetCallerIdentity`),
    /// asked once per process; `None` while STS cannot say (asked again then).
    pub async fn own_account(&self) -> Option<AccountId> {
        let asked = self
            .own_account
            .get_or_try_init(|| async {
                let identity = self.sts.get_caller_identity().send().await;
                match identity.map(|i| i.account().and_then(|a| AccountId::parse(a).ok())) {
                    Ok(account) => Ok(account),
                    Err(error) => {
                        tracing::warn!(error = %aws_sdk_sts::error::DisplayErrorContext(&error), "could not learn the function's own account");
                        Err(())
                    }
                }
            })
            .await;
        asked.ok().cloned().flatten()
    }

    /// The target account's DRS in `region`, if this function serves it; built on
    /// first use, then reused with its connection pool and its pace.
    pub fn drs(&self, region: &Region) -> Option<TargetDrs> {
        if !self.regions.contains(region) {
            return None;
        }
        let mut clients = self.drs.lock().expect(UNPOISONED);
        let drs = clients.entry(region.clone()).or_insert_with(|| {
            let pace = Arc::new(Pace::per_second(self.drs_max_rps));
            let config = aws_sdk_drs::config::Builder::from(&self.target)
                .region(aws_sdk_drs::config::Region::new(region.to_string()))
                .http_client(paced_http::paced(
                    self.http.clone(),
                    pace.clone(),
                    self.policy.attempt_timeout,
                ))
                .retry_config(self.policy.retry_config())
                .retry_partition(CallPolicy::retry_partition(format!(
                    "drs-extender-{}-drs-{region}",
                    self.set
                )))
                .timeout_config(self.policy.paced_timeout_config())
                // Its bodies are a few hundred bytes; what it would see as a stall is
                // a request waiting for its slot, which the pace and the timeouts bound.
                .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                .retry_classifier(RetryAfterClassifier)
                .build();
            TargetDrs::new(
                aws_sdk_drs::Client::from_conf(config),
                pace,
                self.policy.operation_timeout,
            )
        });
        Some(drs.clone())
    }

    /// The target account's Service Quotas in `region`, if this function serves
    /// it. Not paced: one call a region and run, and not DRS's rate.
    pub fn quotas(&self, region: &Region) -> Option<TargetQuotas> {
        if !self.regions.contains(region) {
            return None;
        }
        let mut clients = self.quotas.lock().expect(UNPOISONED);
        let quotas = clients.entry(region.clone()).or_insert_with(|| {
            let config = aws_sdk_servicequotas::config::Builder::from(&self.target)
                .region(aws_sdk_servicequotas::config::Region::new(
                    region.to_string(),
                ))
                .retry_config(self.policy.retry_config())
                .retry_partition(CallPolicy::retry_partition(format!(
                    "drs-extender-{}-servicequotas-{region}",
                    self.set
                )))
                .timeout_config(self.policy.timeout_config())
                .retry_classifier(RetryAfterClassifier)
                .build();
            TargetQuotas::new(aws_sdk_servicequotas::Client::from_conf(config))
        });
        Some(quotas.clone())
    }

    /// The target account's EC2 in `region`, if this function serves it. Not
    /// paced by DRS's rate: EC2 throttles on its own (`RequestLimitExceeded`,
    /// retried by the SDK), and its reads are shared across servers.
    pub fn ec2(&self, region: &Region) -> Option<TargetEc2> {
        if !self.regions.contains(region) {
            return None;
        }
        let mut clients = self.ec2.lock().expect(UNPOISONED);
        let ec2 = clients.entry(region.clone()).or_insert_with(|| {
            let config = aws_sdk_ec2::config::Builder::from(&self.target)
                .region(aws_sdk_ec2::config::Region::new(region.to_string()))
                .retry_config(self.policy.retry_config())
                .retry_partition(CallPolicy::retry_partition(format!(
                    "drs-extender-{}-ec2-{region}",
                    self.set
                )))
                .timeout_config(self.policy.timeout_config())
                .retry_classifier(RetryAfterClassifier)
                .build();
            TargetEc2::new(aws_sdk_ec2::Client::from_conf(config))
        });
        Some(ec2.clone())
    }

    /// How hard and how long each call may try.
    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    pub fn eventbridge(&self) -> &aws_sdk_eventbridge::Client {
        &self.eventbridge
    }

    /// EventBridge in the fan-out bus's region.
    pub fn fan_out_eventbridge(&self) -> &aws_sdk_eventbridge::Client {
        &self.fan_out_eventbridge
    }
}

async fn assume(own: &SdkConfig, role: &TargetRole, policy: &CallPolicy) -> SdkConfig {
    // STS gets fewer attempts and less time than the DRS call waiting on it, so a
    // failing AssumeRole is reported as such, not as that call's timeout.
    let sts = CallPolicy {
        max_attempts: policy.max_attempts.min(3),
        operation_timeout: policy.operation_timeout * 2 / 3,
        ..policy.clone()
    };
    let sts_config = own
        .to_builder()
        .retry_config(sts.retry_config())
        .timeout_config(sts.timeout_config())
        .build();
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.arn.clone())
        .session_name("drs-extender")
        .configure(&sts_config);
    if let Some(external_id) = &role.external_id {
        provider = provider.external_id(external_id.clone());
    }
    let provider = provider.build().await;
    own.to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// A bus named by ARN may live in another region than the function; PutEvents
/// must then be sent there. Every resend is the event stream's own, counted and
/// timed against how slow the bus is (`event_bus`): the SDK neither retries nor
/// times out an attempt here, or a slow bus would get each event several times.
fn eventbridge_client(
    own: &SdkConfig,
    bus: &str,
    policy: &CallPolicy,
    set: u64,
) -> aws_sdk_eventbridge::Client {
    let mut builder = aws_sdk_eventbridge::config::Builder::from(own)
        .retry_config(RetryConfig::disabled())
        .retry_partition(CallPolicy::retry_partition(format!(
            "drs-extender-{set}-events"
        )))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(policy.connect_timeout)
                .build(),
        )
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .retry_classifier(RetryAfterClassifier);
    if let Some(region) = bus
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(2))
    {
        if !region.is_empty() {
            builder = builder.region(aws_sdk_eventbridge::config::Region::new(region.to_owned()));
        }
    }
    aws_sdk_eventbridge::Client::from_conf(builder.build())
}
