//! What the local AWS holds: staging servers in staging accounts, the target
//! accounts' extended servers, credentials handed out by STS, the calls received,
//! the events put, and the faults to inject.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

pub type Tags = BTreeMap<String, String>;

/// The access key of the function's own credentials; any other key must have
/// been handed out by this STS.
pub const FUNCTION_KEY: &str = "AKIDLOCALFUNCTION";

#[derive(Clone, Debug)]
pub struct StagingServer {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub hostname: String,
    pub tags: Tags,
    /// Volumes on the default EBS key cannot be extended: DRS answers ValidationException.
    pub default_ebs_key: bool,
    /// When its agent registered: long before anyone extends it.
    pub added_at: SystemTime,
    /// Its replication as its own account's DRS shows it.
    pub replication: Replication,
    /// What its extensions show of it under `ExtensionReplication::MirrorsStagingLate`:
    /// its replication as it was before its last change, until DRS catches up.
    pub mirrored: Replication,
}

/// `dataReplicationInfo`, `lifeCycle.lastLaunch` and `lastLaunchResult`, as DRS
/// spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replication {
    pub state: String,
    /// `lagDuration` (ISO 8601); absent when DRS leaves it out.
    pub lag: Option<String>,
    /// `dataReplicationError.error` (`AGENT_NOT_SEEN`, `SNAPSHOTS_FAILURE`, ...).
    pub error: Option<String>,
    /// `lastLaunch.initiated`: when (`apiCallDateTime`) and `DRILL` or `RECOVERY`.
    pub last_launch: Option<(String, String)>,
    /// `lastLaunch.status` of that launch (`LAUNCHED`, `FAILED`, ...).
    pub last_launch_status: String,
    /// `lastLaunchResult` (`SUCCEEDED`, `FAILED`, ...); `NOT_STARTED` is sent
    /// when there was no launch.
    pub last_launch_result: String,
}

impl Default for Replication {
    fn default() -> Self {
        Self {
            state: "CONTINUOUS".into(),
            lag: Some("PT2M".into()),
            error: None,
            last_launch: Some(("2026-11-01T10:00:00Z".into(), "DRILL".into())),
            last_launch_status: "LAUNCHED".into(),
            last_launch_result: "SUCCEEDED".into(),
        }
    }
}

/// Whether DRS gives `lagDuration` while a server catches up (`BACKLOG`,
/// `RESCAN`, `CREATING_SNAPSHOT`). Its replication FAQ defines lag as the time
/// since the server was last in continuous replication, which grows then, but
/// the API reference does not say the field is filled in those states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BacklogLag {
    /// The lag as set, growing while the server is behind.
    #[default]
    Reported,
    /// No `lagDuration` outside continuous replication.
    Omitted,
}

/// Which of the two fields that tell a launch's result DRS fills: the service
/// model has both (`lastLaunchResult`, `lifeCycle.lastLaunch.status`) and does
/// not say they agree or are both present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LaunchResultFields {
    #[default]
    Both,
    /// `lastLaunchResult` only; the life cycle's launch has no `status`.
    ResultOnly,
    /// `lifeCycle.lastLaunch.status` only; no `lastLaunchResult`.
    LifeCycleOnly,
}

/// What `DisconnectSourceServer` answers for a server already disconnected. The
/// API reference lists `ConflictException` among its errors without saying
/// when; a delete cut short after its disconnect meets this on the next run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RepeatDisconnect {
    /// 409 `ConflictException`.
    #[default]
    Conflict,
    /// 200 with the server, as an idempotent call would.
    Accepted,
}

/// What an extended server shows of replication. DRS does not document whether
/// an extension mirrors its staging server's replication state and lag, so the
/// function's readiness must be right under each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExtensionReplication {
    /// Its own record (`ExtendedServer::replication`), set apart from the staging
    /// server's.
    #[default]
    Own,
    /// Its staging server's state and lag, as they are now.
    MirrorsStaging,
    /// Its staging server's state and lag, late: as they were before their last
    /// change, until `World::catch_up_mirrors`.
    MirrorsStagingLate,
    /// No `dataReplicationInfo` at all.
    Absent,
}

#[derive(Clone, Debug)]
pub struct ExtendedServer {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub staging_arn: String,
    pub staging_account: String,
    pub tags: Tags,
    /// DRS's message when it can no longer reach the staging server
    /// (`stagingArea.status` `EXTENSION_ERROR`).
    pub extension_error: Option<String>,
    /// When the extension was made (`lifeCycle.addedToServiceDateTime`).
    pub added_at: SystemTime,
    /// Its own replication record (see `ExtensionReplication`), and launches.
    pub replication: Replication,
    pub recovery_instance_id: Option<String>,
}

/// What deleting a staging server does to its extension in the target account.
/// DRS does not document it, so the function is tested under each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StagingDeletion {
    /// The extension stays, in `EXTENSION_ERROR`.
    #[default]
    ExtensionError,
    /// The extension goes with it.
    ExtensionRemoved,
    /// The extension stays `EXTENDED`, its replication `DISCONNECTED`.
    ExtensionDisconnected,
}

/// A source server the target account replicates itself (not an extension):
/// listed by an unfiltered `DescribeSourceServers`, and counted in the quota.
#[derive(Clone, Debug)]
pub struct OwnServer {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub region: String,
}

/// What Service Quotas answers for DRS's source-server quota (`L-E28BE5E0`).
/// Its documentation allows each: the applied value, a refusal, a quota whose
/// applied value is not available ("the quota is not retrieved"), an answer
/// without a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SourceServerQuota {
    /// The applied value.
    Applied(f64),
    /// 400 `AccessDeniedException`: the role may not read quotas.
    Refused,
    /// 400 `NoSuchResourceException`.
    Absent,
    /// 200 with the quota but no `Value`.
    NoValue,
}

impl Default for SourceServerQuota {
    fn default() -> Self {
        SourceServerQuota::Applied(4_000.0)
    }
}

/// One request as received, after its signature's scope was read.
#[derive(Clone, Debug)]
pub struct Call {
    /// When the request arrived.
    pub at: Instant,
    /// The signing name: `drs`, `events`, `servicequotas` or `sts`.
    pub service: String,
    pub operation: String,
    pub region: String,
    pub access_key: String,
    pub body: Value,
}

impl Call {
    /// A request to DRS (not EventBridge or STS): what the rate limit counts.
    pub fn is_drs(&self) -> bool {
        self.service == "drs"
    }
}

/// What DRS's opaque `nextToken` means here. The documentation does not say, so
/// the function is tested under each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageTokens {
    /// The key of the last item given: items added or removed between pages are
    /// neither skipped nor repeated.
    #[default]
    Cursor,
    /// An offset into the list as it is when the next page is asked for: items
    /// removed meanwhile (extended servers leave the extensible list) shift the
    /// rest forward, and that many are skipped.
    Offset,
    /// A broken service: every page, the last too, names the same next token,
    /// which answers the first page again.
    Repeating,
    /// A broken service: every page names a new next token, which answers the
    /// first page again; the listing never ends.
    Endless,
}

/// What `CreateExtendedSourceServer` answers for a server already extended into
/// the account. The API reference does not say, so the function is tested under
/// each. (A second extension of the same server is not among them: DRS lists only
/// servers not yet extended as extensible, and its console offers no other.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DuplicateCreate {
    /// 400 `ValidationException`.
    #[default]
    Validation,
    /// 409 `ConflictException`.
    Conflict,
    /// 201 with the extended server that already exists, as an idempotent API would.
    ReturnsExisting,
}

/// How DRS's unpublished rate limit counts requests. AWS does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limiter {
    /// `drs_rate_limit` tokens a second into a bucket of `drs_rate_burst`.
    #[default]
    TokenBucket,
    /// At most `drs_rate_limit` requests in each whole second (the burst ignored):
    /// a second's worth may come at once at its start.
    FixedWindow,
}

/// What `lifeCycle.addedToServiceDateTime` says of an extended server. DRS does
/// not document it, so the function must label its outcomes right under each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExtensionClock {
    /// When the extension was made, to the millisecond.
    #[default]
    Now,
    /// Its staging server's time: an extension inherits its staging server's
    /// replication and points in time, and may inherit this too.
    StagingServer,
    /// When it was made, in whole seconds.
    WholeSeconds,
    /// When it was made, by a DRS clock this many seconds ahead (or behind).
    Skewed(i64),
}

/// When PutEvents lands the entries it takes. The documentation does not say
/// what a request the client gave up on did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Landing {
    /// On arrival, before a slow answer: a client that gives up loses nothing.
    #[default]
    OnArrival,
    /// Only once it answers: a client that gave up first landed nothing.
    OnAnswer,
}

/// What a PutEvents reply lists, for entries it took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntriesReply {
    /// A result for every entry, in order.
    #[default]
    Full,
    /// Every entry but the last, with `FailedEntryCount` 0.
    OneShort,
    /// No `Entries` at all, with `FailedEntryCount` 0.
    None,
    /// For 3 entries or more, every entry but one between the first and the last
    /// (the `n / 2`-th of `n`, counting from 0), with `FailedEntryCount` 0; that
    /// entry was not taken. Fewer are answered in full. AWS documents that the
    /// reply's `Entries` always hold as many results as entries were sent, in
    /// their order (EventBridge User Guide, "Sending events with PutEvents"); a
    /// reply that breaks that (a regression, a proxy, an emulator) may be short
    /// anywhere, not only at its end: a client that matches results by position
    /// gives each later entry its neighbour's result and calls the lost one
    /// delivered.
    MiddleMissing,
}

/// What the next calls of an operation get instead of an answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// An error response as the service sends it.
    Error {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u32>,
    },
    /// The answer comes this much later.
    Delay(Duration),
    /// The request takes effect, then the connection closes with no answer, as
    /// when a reply is lost on its way back.
    LostReply,
    /// The request takes effect and is answered 200, with the body cut off
    /// halfway: a connection dropped mid-reply, or a proxy's mangled answer.
    CutShort,
    /// The request takes effect, then what stands in front of the service (a
    /// load balancer, a proxy) answers 502 Bad Gateway with an HTML page of its
    /// own: no `x-amzn-ErrorType`, no JSON, so no error code a client can read.
    /// AWS documents 5xx answers as the service's fault, not whether the
    /// request took effect; a gateway that lost the service's reply has no way
    /// to say.
    GatewayPage,
}

impl Fault {
    pub fn error(status: u16, code: &str) -> Self {
        Fault::Error {
            status,
            code: code.to_owned(),
            message: format!("injected {code}"),
            retry_after: None,
        }
    }

    pub fn throttling(retry_after: u32) -> Self {
        Fault::Error {
            status: 429,
            code: "ThrottlingException".to_owned(),
            message: "Rate exceeded".to_owned(),
            retry_after: Some(retry_after),
        }
    }
}

#[derive(Clone, Debug)]
struct Planned {
    operation: String,
    /// Calls of the operation answered normally before the fault applies.
    skip: usize,
    remaining: usize,
    fault: Fault,
}

/// What `CreateLaunchTemplateVersion` with a `SourceVersion` keeps of the
/// source's network interface when the request gives one. EC2 says given
/// parameters "overwrite any corresponding launch parameters inherited from the
/// source version", not whether an interface is one parameter or many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceInheritance {
    /// The interface sent replaces the source's whole: what it leaves out is gone.
    Replace,
    /// Field by field: what it leaves out is kept from the source.
    Merge,
}

/// What `CreateLaunchTemplateVersion` does with parameters that are not valid
/// (a subnet or group that does not exist, groups both on an interface and on
/// the instance). EC2's model: the version is made, and "an error code and an
/// error message are returned for each issue" in its `warning`; its user guide:
/// parameters "are not fully validated". A refusal is offered too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateChecks {
    /// The version is made; each issue is in the answer's `warning`.
    Warn,
    /// The call fails with the first issue's code (400).
    Refuse,
}

/// What an EC2 describe answers when it names an id that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ec2UnknownIds {
    /// The whole call fails (`InvalidSubnetID.NotFound`, `InvalidGroup.NotFound`).
    FailCall,
    /// The unknown id is left out of an answer that lists the others.
    Omitted,
}

#[derive(Debug)]
pub struct World {
    /// The account that credentials not issued by this STS belong to: the
    /// function's own.
    pub default_account: String,
    pub(crate) keys: HashMap<String, String>,
    /// Roles that require an external id, by ARN.
    pub(crate) external_ids: HashMap<String, String>,
    pub(crate) staging: Vec<StagingServer>,
    pub(crate) extended: Vec<ExtendedServer>,
    pub(crate) own: Vec<OwnServer>,
    /// (target account, staging ARN) of every extension, and staging servers by
    /// ARN: lookups stay cheap with tens of thousands of servers.
    extended_index: HashSet<(String, String)>,
    staging_index: HashMap<String, usize>,
    /// Staging accounts that have not trusted the target account in DRS.
    pub(crate) untrusted: BTreeSet<String>,
    /// Target accounts (account, region) where DRS is not initialised.
    pub(crate) uninitialized: BTreeSet<(String, String)>,
    pub(crate) calls: Vec<Call>,
    pub(crate) events: Vec<Value>,
    planned: Vec<Planned>,
    /// Every call is answered this much later.
    pub latency: Duration,
    /// Requests per second DRS accepts per region before it throttles (a token
    /// bucket); may be changed while a run goes on.
    pub drs_rate_limit: Option<u32>,
    /// That bucket's size; a tenth of a second's worth when unset.
    pub drs_rate_burst: Option<u32>,
    /// How the limit counts: a token bucket, or a fixed one-second window.
    pub drs_limiter: Limiter,
    /// The `Retry-After` a throttle carries, in seconds; none when unset.
    pub drs_retry_after: Option<u32>,
    pub page_tokens: PageTokens,
    pub duplicate_create: DuplicateCreate,
    /// Source servers (its own and extended) a target account may hold in a
    /// region; past it a create is refused `ServiceQuotaExceededException`
    /// (402), as DRS's source server quota does.
    pub extended_quota: Option<usize>,
    /// The `quotaCode` that refusal carries: DRS's source-server quota by
    /// default; another quota's code, or none, as the model allows (the member is
    /// optional and its documentation says only "Quota code").
    pub quota_exceeded_code: Option<String>,
    /// What Service Quotas says that quota is.
    pub source_server_quota: SourceServerQuota,
    /// What Service Quotas' `GetAWSDefaultServiceQuota` says of it: the AWS
    /// default, or `None` for a refusal (`AccessDeniedException`).
    pub source_server_quota_default: Option<f64>,
    /// PutEvents answers this much later: a slow bus.
    pub put_events_latency: Duration,
    /// Whether a slow PutEvents lands its entries before it answers, or only
    /// when it does.
    pub put_events_landing: Landing,
    /// What PutEvents replies list.
    pub put_events_entries: EntriesReply,
    /// The bus's policy refuses every PutEvents (`AccessDeniedException`).
    pub bus_refuses: bool,
    /// PutEvents takes the entries (landing them as `put_events_landing` says)
    /// and never answers: a bus slower than every attempt timeout a client
    /// gives it. EventBridge publishes no latency bound for PutEvents; a
    /// client must neither wait past its deadline nor, timing out again and
    /// again on requests that took effect, publish each event more than twice.
    pub bus_never_answers: bool,
    /// What `addedToServiceDateTime` says of extended servers.
    pub extension_clock: ExtensionClock,
    /// `CreateExtendedSourceServer` answers without the extended server's tags.
    pub create_reply_omits_tags: bool,
    /// What extended servers show of replication.
    pub extension_replication: ExtensionReplication,
    /// What deleting a staging server does to its extensions.
    pub staging_deletion: StagingDeletion,
    /// Whether extensions show a lag while catching up.
    pub backlog_lag: BacklogLag,
    /// Which launch-result fields DRS fills.
    pub launch_result_fields: LaunchResultFields,
    /// What a second disconnect of one server gets.
    pub repeat_disconnect: RepeatDisconnect,
    /// Tokens older than this are refused (`ValidationException`), as a service
    /// whose tokens expire would.
    pub token_ttl: Option<Duration>,
    /// EC2 refuses every call (`UnauthorizedOperation`, 403), as it does a role
    /// without the EC2 read actions.
    pub ec2_refuses: bool,
    /// What a describe naming an id that does not exist answers.
    pub ec2_unknown_ids: Ec2UnknownIds,
    /// EC2 refuses the launch baseline's writes (`CreateLaunchTemplateVersion`,
    /// `ModifyLaunchTemplate`) with `UnauthorizedOperation`, and answers reads:
    /// a role granted the reads only, or an SCP denying the writes.
    pub ec2_refuses_writes: bool,
    /// What a new template version made from a source version keeps of the
    /// source's network interface when the request gives one.
    pub template_interfaces: InterfaceInheritance,
    /// What a new template version with parameters that are not valid answers.
    pub template_checks: TemplateChecks,
    pub(crate) ec2: crate::ec2::Ec2State,
    /// DRS launch configurations of the target account's servers, by server id.
    pub(crate) launch_configs: HashMap<String, crate::drs_launch::LaunchConfig>,
    /// Staging servers' primary IPs, where not the usual one, by staging ARN.
    pub(crate) source_ips: HashMap<String, String>,
    /// When this world began: page tokens carry their age from it.
    pub(crate) epoch: Instant,
    /// Event buses that exist (by name); PutEvents to any other is refused.
    pub(crate) buses: BTreeSet<String>,
    /// DRS requests answered 429 by that limit, and when.
    pub throttled: usize,
    pub throttled_at: Vec<Instant>,
    /// Time spent answering AWS requests (not the Runtime API's): what a
    /// function's latency owes to the service rather than to itself.
    pub service_time: Duration,
    rate_buckets: HashMap<String, (f64, Instant)>,
    pub(crate) refuse_entries: usize,
    next_id: u64,
}

impl World {
    pub fn new(default_account: &str) -> Self {
        Self {
            default_account: default_account.to_owned(),
            keys: [(FUNCTION_KEY.to_owned(), default_account.to_owned())]
                .into_iter()
                .collect(),
            external_ids: HashMap::new(),
            staging: Vec::new(),
            extended: Vec::new(),
            own: Vec::new(),
            extended_index: HashSet::new(),
            staging_index: HashMap::new(),
            untrusted: BTreeSet::new(),
            uninitialized: BTreeSet::new(),
            calls: Vec::new(),
            events: Vec::new(),
            planned: Vec::new(),
            latency: Duration::ZERO,
            drs_rate_limit: None,
            drs_rate_burst: None,
            drs_limiter: Limiter::TokenBucket,
            drs_retry_after: Some(1),
            page_tokens: PageTokens::Cursor,
            duplicate_create: DuplicateCreate::Validation,
            extended_quota: None,
            quota_exceeded_code: Some("L-E28BE5E0".to_owned()),
            source_server_quota: SourceServerQuota::default(),
            source_server_quota_default: Some(4_000.0),
            put_events_latency: Duration::ZERO,
            put_events_landing: Landing::OnArrival,
            put_events_entries: EntriesReply::Full,
            bus_refuses: false,
            bus_never_answers: false,
            extension_clock: ExtensionClock::Now,
            create_reply_omits_tags: false,
            extension_replication: ExtensionReplication::Own,
            staging_deletion: StagingDeletion::ExtensionError,
            backlog_lag: BacklogLag::Reported,
            launch_result_fields: LaunchResultFields::Both,
            repeat_disconnect: RepeatDisconnect::Conflict,
            token_ttl: None,
            ec2_refuses: false,
            ec2_unknown_ids: Ec2UnknownIds::FailCall,
            ec2_refuses_writes: false,
            template_interfaces: InterfaceInheritance::Replace,
            template_checks: TemplateChecks::Warn,
            ec2: crate::ec2::Ec2State::default(),
            launch_configs: HashMap::new(),
            source_ips: HashMap::new(),
            epoch: Instant::now(),
            buses: ["default".to_owned()].into_iter().collect(),
            throttled: 0,
            throttled_at: Vec::new(),
            service_time: Duration::ZERO,
            rate_buckets: HashMap::new(),
            refuse_entries: 0,
            next_id: 1,
        }
    }

    pub fn partition(region: &str) -> &'static str {
        if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    pub(crate) fn new_id(&mut self, prefix: &str, width: usize) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix}{n:0width$x}")
    }

    /// The world the sample events under `events/` speak of: two staging accounts
    /// in us-east-1 with the servers those events name, and a few more each.
    pub fn sample() -> Self {
        let mut world = Self::new(crate::TARGET_ACCOUNT);
        for (account, ids) in [
            (
                "111122223333",
                ["s-1111aaaa2222bbbb3", "s-1111aaaa2222bbbb4"],
            ),
            (
                "222233334444",
                ["s-2222cccc3333dddd5", "s-2222cccc3333dddd6"],
            ),
        ] {
            for id in ids {
                world.add_staging_server_with_id(
                    account,
                    "us-east-1",
                    id,
                    &[("app", "billing"), ("env", "prod")],
                );
            }
            world.seed(account, "us-east-1", 2);
        }
        world
    }

    /// Adds a staging server and answers its ARN.
    pub fn add_staging_server(
        &mut self,
        account: &str,
        region: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let id = self.new_id("s-", 17);
        self.add_staging_server_with_id(account, region, &id, tags)
    }

    pub fn add_staging_server_with_id(
        &mut self,
        account: &str,
        region: &str,
        id: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let id = id.to_owned();
        let arn = format!(
            "arn:{}:drs:{region}:{account}:source-server/{id}",
            Self::partition(region)
        );
        self.staging_index.insert(arn.clone(), self.staging.len());
        self.staging.push(StagingServer {
            id: id.clone(),
            arn: arn.clone(),
            account: account.to_owned(),
            region: region.to_owned(),
            hostname: format!("host-{id}"),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            default_ebs_key: false,
            added_at: SystemTime::now() - Duration::from_secs(30 * 86_400),
            replication: Replication::default(),
            mirrored: Replication::default(),
        });
        arn
    }

    /// Adds `count` staging servers to an account; answers their ARNs.
    pub fn seed(&mut self, account: &str, region: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| self.add_staging_server(account, region, &[("app", "demo")]))
            .collect()
    }

    pub fn mark_default_ebs_key(&mut self, staging_arn: &str) {
        for server in self.staging.iter_mut().filter(|s| s.arn == staging_arn) {
            server.default_ebs_key = true;
        }
    }

    pub fn distrust(&mut self, staging_account: &str) {
        self.untrusted.insert(staging_account.to_owned());
    }

    pub fn uninitialize(&mut self, account: &str, region: &str) {
        self.uninitialized
            .insert((account.to_owned(), region.to_owned()));
    }

    pub fn require_external_id(&mut self, role_arn: &str, external_id: &str) {
        self.external_ids
            .insert(role_arn.to_owned(), external_id.to_owned());
    }

    /// The next `count` calls of `operation` get `fault`.
    pub fn inject(&mut self, operation: &str, count: usize, fault: Fault) {
        self.inject_after(operation, 0, count, fault);
    }

    /// After `skip` calls of `operation` answered normally, the next `count` get `fault`.
    pub fn inject_after(&mut self, operation: &str, skip: usize, count: usize, fault: Fault) {
        self.planned.push(Planned {
            operation: operation.to_owned(),
            skip,
            remaining: count,
            fault,
        });
    }

    /// The next `count` PutEvents entries are refused one by one (the call succeeds).
    pub fn refuse_event_entries(&mut self, count: usize) {
        self.refuse_entries = count;
    }

    pub(crate) fn take_fault(&mut self, operation: &str) -> Option<Fault> {
        let planned = self
            .planned
            .iter_mut()
            .find(|p| p.operation == operation && p.remaining > 0)?;
        if planned.skip > 0 {
            planned.skip -= 1;
            return None;
        }
        planned.remaining -= 1;
        Some(planned.fault.clone())
    }

    /// Counts a DRS request against the region's one-second window.
    pub(crate) fn over_rate_limit(&mut self, region: &str) -> bool {
        let Some(limit) = self.drs_rate_limit else {
            return false;
        };
        // A token bucket, as AWS services throttle: `limit` tokens a second, and a
        // tenth of a second's worth held for bursts. Over any span t at most
        // limit x t + burst requests get through.
        let rate = f64::from(limit.max(1));
        let burst = self
            .drs_rate_burst
            .map_or((rate / 10.0).max(1.0), |b| f64::from(b.max(1)));
        let now = Instant::now();
        let full = match self.drs_limiter {
            Limiter::TokenBucket => burst,
            Limiter::FixedWindow => rate,
        };
        let (tokens, last) = self
            .rate_buckets
            .entry(region.to_owned())
            .or_insert((full, now));
        match self.drs_limiter {
            Limiter::TokenBucket => {
                *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
                *last = now;
            }
            Limiter::FixedWindow => {
                // `last` marks the window's start; a new window refills it whole.
                let epoch = self.epoch;
                let window = |at: Instant| at.duration_since(epoch).as_secs();
                if window(now) != window(*last) {
                    *tokens = rate;
                    *last = now;
                }
            }
        }
        if *tokens < 1.0 {
            self.throttled += 1;
            self.throttled_at.push(now);
            return true;
        }
        *tokens -= 1.0;
        false
    }

    /// The account an access key belongs to; `None` for a key no one issued.
    pub fn account_of_key(&self, access_key: &str) -> Option<String> {
        self.keys.get(access_key).cloned()
    }

    /// Lets another access key sign requests, as the account it belongs to.
    pub fn accept_key(&mut self, access_key: &str, account: &str) {
        self.keys.insert(access_key.to_owned(), account.to_owned());
    }

    /// Makes an event bus exist.
    pub fn create_bus(&mut self, name: &str) {
        self.buses.insert(name.to_owned());
    }

    pub(crate) fn bus_exists(&self, name_or_arn: &str) -> bool {
        let name = name_or_arn
            .split_once(":event-bus/")
            .map_or(name_or_arn, |(_, name)| name);
        self.buses.contains(name)
    }

    /// What a person trying the function wants to see: the extended servers and
    /// the events put, as JSON (`GET /_local/state`).
    pub fn state(&self) -> Value {
        let extended: Vec<Value> = self
            .extended
            .iter()
            .map(|e| serde_json::json!({"arn": e.arn, "stagingSourceServerArn": e.staging_arn, "tagKeys": e.tags.keys().collect::<Vec<_>>()}))
            .collect();
        serde_json::json!({"extendedSourceServers": extended, "events": self.events, "calls": self.calls.len()})
    }

    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    pub fn calls_of(&self, operation: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.operation == operation)
            .collect()
    }

    pub fn drs_calls(&self) -> usize {
        self.calls.iter().filter(|c| c.is_drs()).count()
    }

    /// Every event entry PutEvents accepted, as sent.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    pub fn extended(&self) -> &[ExtendedServer] {
        &self.extended
    }

    /// The extended servers, to change what DRS would show of them (tags a
    /// previous run left, say).
    pub fn extended_mut(&mut self) -> &mut [ExtendedServer] {
        &mut self.extended
    }

    pub fn staging_server(&self, arn: &str) -> Option<&StagingServer> {
        self.staging_index
            .get(arn)
            .and_then(|&i| self.staging.get(i))
    }

    pub(crate) fn extension_of(
        &self,
        target_account: &str,
        staging_arn: &str,
    ) -> Option<&ExtendedServer> {
        self.extended
            .iter()
            .find(|e| e.account == target_account && e.staging_arn == staging_arn)
    }

    /// Extended servers a target account holds in a region.
    /// Source servers the target account holds in the region: what DRS's quota
    /// counts.
    pub(crate) fn source_servers_in(&self, target_account: &str, region: &str) -> usize {
        let extended = self
            .extended
            .iter()
            .filter(|e| e.account == target_account && e.region == region)
            .count();
        let own = self
            .own
            .iter()
            .filter(|o| o.account == target_account && o.region == region)
            .count();
        extended + own
    }

    /// Adds `count` source servers the target account replicates itself.
    pub fn add_own_servers(&mut self, target_account: &str, region: &str, count: usize) {
        for _ in 0..count {
            let id = self.new_id("s-", 17);
            let arn = format!(
                "arn:{}:drs:{region}:{target_account}:source-server/{id}",
                Self::partition(region)
            );
            self.own.push(OwnServer {
                id,
                arn,
                account: target_account.to_owned(),
                region: region.to_owned(),
            });
        }
    }

    /// Deletes an extension: its staging server is extensible again.
    pub(crate) fn remove_extension(&mut self, index: usize) {
        let removed = self.extended.remove(index);
        self.extended_index
            .remove(&(removed.account, removed.staging_arn));
    }

    pub fn is_extended(&self, target_account: &str, staging_arn: &str) -> bool {
        self.extended_index
            .contains(&(target_account.to_owned(), staging_arn.to_owned()))
    }

    pub fn staging(&self) -> &[StagingServer] {
        &self.staging
    }

    /// Records an extension made outside the function (by a person, or earlier).
    pub fn extend_directly(&mut self, target_account: &str, staging_arn: &str) -> Option<String> {
        let staging = self.staging_server(staging_arn)?.clone();
        Some(
            self.record_extension(target_account, &staging, Tags::new())
                .arn,
        )
    }

    /// Sets the replication the extension of `staging_arn` shows of itself.
    pub fn set_extension_replication(
        &mut self,
        staging_arn: &str,
        state: &str,
        lag: Option<&str>,
    ) -> bool {
        self.change_extensions(staging_arn, |extended| {
            extended.replication.state = state.to_owned();
            extended.replication.lag = lag.map(str::to_owned);
        })
    }

    /// Changes every extension of `staging_arn`; answers whether there was one.
    fn change_extensions(
        &mut self,
        staging_arn: &str,
        mut change: impl FnMut(&mut ExtendedServer),
    ) -> bool {
        let mut found = false;
        for extended in self
            .extended
            .iter_mut()
            .filter(|e| e.staging_arn == staging_arn)
        {
            change(extended);
            found = true;
        }
        found
    }

    /// Sets the replication of a staging server as its own account shows it.
    pub fn set_staging_replication(
        &mut self,
        staging_arn: &str,
        state: &str,
        lag: Option<&str>,
    ) -> bool {
        let Some(&index) = self.staging_index.get(staging_arn) else {
            return false;
        };
        self.staging[index].replication.state = state.to_owned();
        self.staging[index].replication.lag = lag.map(str::to_owned);
        true
    }

    /// Changes the replication record the extension of `staging_arn` shows of
    /// itself: its error, its last launch's status and result.
    pub fn change_extension_replication(
        &mut self,
        staging_arn: &str,
        mut change: impl FnMut(&mut Replication),
    ) -> bool {
        self.change_extensions(staging_arn, |extended| change(&mut extended.replication))
    }

    /// DRS catches up: extensions that mirror their staging servers late now
    /// show them as they are.
    pub fn catch_up_mirrors(&mut self) {
        for staging in &mut self.staging {
            staging.mirrored = staging.replication.clone();
        }
    }

    /// Deletes a staging server in its own account; what becomes of its
    /// extensions is the world's `staging_deletion`. Answers whether it existed.
    pub fn delete_staging_server(&mut self, staging_arn: &str) -> bool {
        let Some(index) = self.staging.iter().position(|s| s.arn == staging_arn) else {
            return false;
        };
        self.staging.remove(index);
        self.staging_index = self
            .staging
            .iter()
            .enumerate()
            .map(|(i, s)| (s.arn.clone(), i))
            .collect();
        match self.staging_deletion {
            StagingDeletion::ExtensionError => {
                self.break_extension(
                    staging_arn,
                    "Staging source server was not found. It may have been deleted.",
                );
            }
            StagingDeletion::ExtensionRemoved => {
                while let Some(i) = self
                    .extended
                    .iter()
                    .position(|e| e.staging_arn == staging_arn)
                {
                    self.remove_extension(i);
                }
            }
            StagingDeletion::ExtensionDisconnected => {
                self.set_extension_replication(staging_arn, "DISCONNECTED", None);
            }
        }
        true
    }

    /// A launch (`DRILL` or `RECOVERY`) of the extension of `staging_arn` at
    /// `api_call_time`, or none; with a recovery instance when one is given.
    pub fn set_launch(
        &mut self,
        staging_arn: &str,
        launch: Option<(&str, &str)>,
        recovery_instance_id: Option<&str>,
    ) -> bool {
        self.change_extensions(staging_arn, |extended| {
            extended.replication.last_launch =
                launch.map(|(at, kind)| (at.to_owned(), kind.to_owned()));
            extended.recovery_instance_id = recovery_instance_id.map(str::to_owned);
        })
    }

    /// Puts the extension of `staging_arn` into `EXTENSION_ERROR` with DRS's
    /// `message`, as when the staging server was deleted or its role removed.
    pub fn break_extension(&mut self, staging_arn: &str, message: &str) -> bool {
        self.change_extensions(staging_arn, |extended| {
            extended.extension_error = Some(message.to_owned());
        })
    }

    /// `addedToServiceDateTime` for an extension made now, as the world's
    /// clock switch says.
    fn extension_time(&self, staging: &StagingServer) -> SystemTime {
        let now = SystemTime::now();
        match self.extension_clock {
            ExtensionClock::Now => now,
            ExtensionClock::StagingServer => staging.added_at,
            ExtensionClock::WholeSeconds => {
                let since = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs())
            }
            ExtensionClock::Skewed(seconds) => {
                let by = Duration::from_secs(seconds.unsigned_abs());
                if seconds >= 0 {
                    now + by
                } else {
                    now - by
                }
            }
        }
    }

    pub(crate) fn record_extension(
        &mut self,
        target_account: &str,
        staging: &StagingServer,
        tags: Tags,
    ) -> ExtendedServer {
        let id = self.new_id("s-", 17);
        let extended = ExtendedServer {
            arn: format!(
                "arn:{}:drs:{}:{target_account}:source-server/{id}",
                Self::partition(&staging.region),
                staging.region
            ),
            id,
            account: target_account.to_owned(),
            region: staging.region.clone(),
            staging_arn: staging.arn.clone(),
            staging_account: staging.account.clone(),
            tags,
            extension_error: None,
            added_at: self.extension_time(staging),
            replication: Replication::default(),
            recovery_instance_id: None,
        };
        self.extended_index
            .insert((extended.account.clone(), extended.staging_arn.clone()));
        self.extended.push(extended.clone());
        extended
    }
}
