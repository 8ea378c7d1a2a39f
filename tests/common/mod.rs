//! Drives the real handler and the real AWS SDK clients against the local AWS.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_drs::config::{Credentials, SharedCredentialsProvider};
use drs_extender::App;
use drs_extender::Config;
use drs_extender::InvocationError;
use drs_extender::Response;
use drs_extender::{CallPolicy, Clients};
use lambda_runtime::{Context, LambdaEvent};
pub use local_aws::{Fault, LocalAws, World, TARGET_ACCOUNT};
use serde_json::Value;
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

pub const STAGING_A: &str = "111122223333";
pub const STAGING_B: &str = "222233334444";
pub const STRANGER: &str = "999988887777";
pub const REGION: &str = "us-east-1";
pub const FUNCTION_KEY: &str = "AKIDLOCALFUNCTION";

/// A sample event from `events/`, the same file `cargo lambda invoke` takes.
pub fn event(name: &str) -> Value {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Retries that take milliseconds, so fault tests stay fast; bounds like production's.
pub fn fast_policy() -> CallPolicy {
    CallPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        connect_timeout: Duration::from_millis(500),
        attempt_timeout: Duration::from_millis(800),
        operation_timeout: Duration::from_secs(5),
    }
}

pub struct Harness {
    pub aws: LocalAws,
    pub app: App,
}

impl Harness {
    pub async fn start(world: World, vars: &[(&str, &str)]) -> Self {
        Self::start_with(world, vars, fast_policy()).await
    }

    pub async fn start_with(world: World, vars: &[(&str, &str)], policy: CallPolicy) -> Self {
        let aws = LocalAws::start(world).await.unwrap();
        let endpoint = aws.endpoint();
        let app = app_for(&endpoint, vars, policy).await;
        Self { aws, app }
    }

    pub async fn invoke(&self, payload: Value) -> Result<Response, InvocationError> {
        self.app
            .handle(lambda_event(payload, Duration::from_secs(900)))
            .await
    }

    /// Invokes and expects success; answers the response as JSON.
    pub async fn ok(&self, payload: Value) -> Value {
        match self.invoke(payload).await {
            Ok(response) => serde_json::to_value(response).unwrap(),
            Err(e) => panic!("invocation failed: {e}"),
        }
    }

    pub fn events_of(&self, detail_type: &str) -> Vec<Value> {
        self.aws
            .world()
            .events()
            .iter()
            .filter(|e| e["DetailType"] == detail_type)
            .cloned()
            .collect()
    }

    pub fn drs_calls(&self) -> usize {
        self.aws.world().drs_calls()
    }
}

pub async fn app_for(endpoint: &str, vars: &[(&str, &str)], policy: CallPolicy) -> App {
    let mut env: BTreeMap<String, String> = [("AWS_REGION", REGION)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            FUNCTION_KEY,
            "local-secret",
            None,
            None,
            "tests",
        )))
        .load()
        .await;
    App::new(config.clone(), Clients::new(sdk, &config, policy).await)
}

pub fn lambda_event(payload: Value, timeout: Duration) -> LambdaEvent<Value> {
    let mut context = Context::default();
    // Unique, as Lambda's are: the request id names what an invocation creates.
    static INVOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = INVOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    context.request_id = format!("test-request-{n}");
    context.invoked_function_arn = local_aws::FUNCTION_ARN.into();
    context.deadline =
        (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + timeout).as_millis() as u64;
    LambdaEvent::new(payload, context)
}

pub fn arn(account: &str, id: &str) -> String {
    format!("arn:aws:drs:{REGION}:{account}:source-server/{id}")
}

/// An event as EventBridge delivers it in `REGION`: the envelope around `detail`.
pub fn envelope(
    id: &str,
    detail_type: &str,
    source: impl Into<Value>,
    account: &str,
    time: &str,
    detail: Value,
) -> Value {
    serde_json::json!({
        "version": "0", "id": id, "detail-type": detail_type, "source": source.into(),
        "account": account, "time": time, "region": REGION, "resources": [], "detail": detail
    })
}

pub fn announcement(staging_arn: &str, sender: &str) -> Value {
    let detail = serde_json::json!({"sourceServerArn": staging_arn});
    envelope(
        "test-announcement",
        "Staging Source Server Added",
        "org.example.dr-tooling",
        sender,
        "2026-11-26T09:00:00Z",
        detail,
    )
}

pub fn statuses(response: &Value) -> Vec<String> {
    response["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The function process, with its stdout read as it goes (a full pipe would
/// block the function).
pub struct Running {
    pub child: Child,
    pub stdout: tokio::task::JoinHandle<String>,
}

pub fn spawn(aws: &LocalAws, extra: &[(&str, &str)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drs-extender"));
    command
        .env_clear()
        .envs(local_aws::function_env(aws, REGION))
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let stdout = tokio::spawn(async move {
        let mut out = String::new();
        pipe.read_to_string(&mut out).await.ok();
        out
    });
    Running { child, stdout }
}

pub async fn output_of(mut running: Running) -> String {
    running.child.start_kill().ok();
    let _ = running.child.wait().await;
    running.stdout.await.unwrap_or_default()
}

/// Every event put, by staging server: how many copies of each detail-type.
pub fn copies_by_server(h: &Harness) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut by_server: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for event in h.aws.world().events() {
        if let Some(server) = event["Detail"]["stagingSourceServerArn"].as_str() {
            *by_server
                .entry(server.to_owned())
                .or_default()
                .entry(event["DetailType"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    by_server
}

/// The bound on copies: no outcome event went out more than twice, and at most
/// `RECONCILE_CONCURRENCY` (8) plus one batch (10) servers were extended.
pub fn assert_at_most_twice(h: &Harness, case: &str) {
    for (server, kinds) in copies_by_server(h) {
        for (kind, n) in kinds {
            assert!(n <= 2, "{case}: {server}: {n} copies of {kind}");
        }
    }
    let made = h.aws.world().extended().len();
    assert!(made <= 8 + 10, "{case}: {made} extended");
}

/// One of DRS's own events, naming these servers, from `account`.
pub fn drs_event_naming(servers: Vec<String>, account: &str) -> Value {
    let mut event = envelope(
        "drs-event",
        "DRS Source Server Launch Result",
        "aws.drs",
        account,
        "2026-11-26T09:00:00Z",
        serde_json::json!({}),
    );
    event["resources"] = servers.into();
    event
}
