//! A local AWS on loopback for drs-extender's tests and demo: DRS (rest-json),
//! EventBridge `PutEvents` and Service Quotas `GetServiceQuota` and `GetAWSDefaultServiceQuota` (awsJson1.1),
//! STS `AssumeRole` (awsQuery) and the Lambda
//! Runtime API, all on one port, answering as the real services do, with faults
//! to inject. It runs in-process (tests) or as the `local-aws` binary.

mod drs;
mod drs_launch;
mod ec2;
mod eventbridge;
mod reply;
mod runtime_api;
mod service_quotas;
mod sts;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use drs::iso8601;
pub use drs_launch::LaunchConfig;
pub use ec2::{default_vpc_id, TemplateVersion};
pub use reply::{Delivery, Reply};
pub use runtime_api::{Invocation, RuntimeApi, FUNCTION_ARN};
pub use world::{
    BacklogLag, Call, DuplicateCreate, Ec2UnknownIds, EntriesReply, ExtendedServer, ExtensionClock,
    ExtensionReplication, Fault, InterfaceInheritance, Landing, LaunchResultFields, Limiter,
    OwnServer, PageTokens, RepeatDisconnect, Replication, SourceServerQuota, StagingDeletion,
    StagingServer, TemplateChecks, World, FUNCTION_KEY,
};

/// The target account the demo and tests use unless told otherwise.
pub const TARGET_ACCOUNT: &str = "444455556666";

struct Shared {
    world: Mutex<World>,
    runtime: RuntimeApi,
}

pub struct LocalAws {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalAws {
    /// Serves `world` on a free loopback port.
    pub async fn start(world: World) -> std::io::Result<Self> {
        Self::start_on(world, 0).await
    }

    pub async fn start_on(world: World, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            runtime: RuntimeApi::default(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The endpoint URL for every AWS service here (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api_address(&self) -> String {
        self.addr.to_string()
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn runtime(&self) -> &RuntimeApi {
        &self.shared.runtime
    }

    /// Hands `payload` to the function polling the Runtime API and waits for how
    /// the invocation ends; `None` if it did not end within `timeout`.
    pub async fn invoke(&self, payload: Value, timeout: Duration) -> Option<Invocation> {
        let (_, done) = self.shared.runtime.enqueue(payload, timeout);
        tokio::time::timeout(timeout + Duration::from_secs(5), done)
            .await
            .ok()?
            .ok()
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                // Answered in a task of its own: a request the client gave up on
                // (a timeout closes the connection) still takes effect, as it
                // does on a real server, unless the world says it lands only
                // when answered: `waiting` tells whether the client still is.
                let waiting = ClientWaiting::default();
                let still = waiting.0.clone();
                let answer = tokio::spawn(async move { respond(&shared, request, &still).await });
                async move {
                    let _waiting = waiting;
                    match answer.await {
                        Ok(Some(response)) => Ok(response),
                        Ok(None) => Err(LostReply),
                        Err(_) => Ok(Response::new(Full::new(Bytes::new()))),
                    }
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Whether the client of one request still waits for its answer: false once
/// hyper drops the request's service future (the connection closed).
struct ClientWaiting(Arc<std::sync::atomic::AtomicBool>);

impl Default for ClientWaiting {
    fn default() -> Self {
        Self(Arc::new(std::sync::atomic::AtomicBool::new(true)))
    }
}

impl Drop for ClientWaiting {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A reply lost on its way back: hyper closes the connection without an answer.
#[derive(Debug)]
struct LostReply;

impl std::fmt::Display for LostReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reply lost (injected)")
    }
}

impl std::error::Error for LostReply {}

async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    waiting: &std::sync::atomic::AtomicBool,
) -> Option<Response<Full<Bytes>>> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let reply = if path == "/_local/state" {
        // For a person with curl: no signature, just what the world holds.
        let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        Reply::json(200, &world.state())
    } else if path.starts_with("/2018-06-01/runtime/") {
        shared
            .runtime
            .handle(parts.method.as_str(), &path, &body)
            .await
    } else {
        let reply = aws(shared, &parts, &path, &body, waiting).await;
        let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        world.service_time += started.elapsed();
        reply
    };
    let mut body = reply.body;
    let (mut status, mut headers) = (reply.status, reply.headers);
    match reply.delivery {
        Delivery::Whole => {}
        Delivery::Lost => return None,
        Delivery::CutShort => body.truncate(body.len() / 2),
        Delivery::GatewayPage => {
            status = 502;
            headers = vec![("content-type", "text/html".to_owned())];
            body = GATEWAY_PAGE.as_bytes().to_vec();
        }
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        response = response.header(*name, value);
    }
    response = response.header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000");
    Some(
        response
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
    )
}

/// A load balancer's own answer when the service behind it failed it.
const GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

/// Longer than any client waits: `bus_never_answers`.
const NEVER: Duration = Duration::from_secs(24 * 3600);

/// The access key and region a SigV4 `Authorization` header was made with.
fn signer(parts: &hyper::http::request::Parts) -> (String, String, String) {
    let header = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let credential = header
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    let mut scope = credential.split('/');
    let key = scope.next().unwrap_or_default().to_owned();
    let _date = scope.next();
    let region = scope.next().unwrap_or("us-east-1").to_owned();
    let service = scope.next().unwrap_or_default().to_owned();
    (key, region, service)
}

async fn aws(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    path: &str,
    body: &[u8],
    waiting: &std::sync::atomic::AtomicBool,
) -> Reply {
    let (key, region, service) = signer(parts);
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let form: Vec<(String, String)> = if service == "sts" || service == "ec2" {
        form_urlencoded::parse(body).into_owned().collect()
    } else {
        Vec::new()
    };
    let operation = if service == "sts" || service == "ec2" {
        form.iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    } else if let Some(op) = target.strip_prefix("AWSEvents.") {
        op.to_owned()
    } else if let Some(op) = target.strip_prefix("ServiceQuotasV20190624.") {
        op.to_owned()
    } else if service == "drs" && path.starts_with("/tags/") {
        match parts.method.as_str() {
            "POST" => "TagResource",
            "DELETE" => "UntagResource",
            _ => "ListTagsForResource",
        }
        .to_owned()
    } else {
        path.trim_start_matches('/').to_owned()
    };
    let mut json: Value = if body.is_empty() || service == "sts" || service == "ec2" {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return Reply::rest_json_error(
                    400,
                    "SerializationException",
                    "body is not JSON",
                    None,
                )
            }
        }
    };
    // DRS's tag operations name their resource in the path, and the keys to
    // remove in the query: both go into the body the handler reads.
    if let Some(encoded) = path.strip_prefix("/tags/").filter(|_| service == "drs") {
        let arn: String = form_urlencoded::parse(format!("a={encoded}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        let keys: Vec<String> =
            form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .filter(|(k, _)| k == "tagKeys")
                .map(|(_, v)| v.into_owned())
                .collect();
        if !json.is_object() {
            json = serde_json::json!({});
        }
        json["resourceArn"] = arn.into();
        json["tagKeys"] = keys.into();
    }

    let (latency, fault) = {
        let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        world.calls.push(Call {
            at: std::time::Instant::now(),
            service: service.clone(),
            operation: operation.clone(),
            region: region.clone(),
            access_key: key.clone(),
            body: if service == "ec2" {
                form.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            } else if service == "sts" {
                Value::Null
            } else {
                json.clone()
            },
        });
        (world.latency, world.take_fault(&operation))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let delivery = match fault {
        Some(Fault::LostReply) => Delivery::Lost,
        Some(Fault::CutShort) => Delivery::CutShort,
        Some(Fault::GatewayPage) => Delivery::GatewayPage,
        _ => Delivery::Whole,
    };
    match fault {
        Some(Fault::Error {
            status,
            code,
            message,
            retry_after,
        }) => {
            return match service.as_str() {
                "events" | "servicequotas" => Reply::aws_json_error(status, &code, &message),
                "sts" => Reply::query_error(status, &code, &message),
                "ec2" => ec2::error(status, &code, &message),
                _ => Reply::rest_json_error(status, &code, &message, retry_after),
            }
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::LostReply | Fault::CutShort | Fault::GatewayPage) | None => {}
    }
    let (put_events_latency, landing) = {
        let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        let latency = if world.bus_never_answers {
            NEVER
        } else {
            world.put_events_latency
        };
        (latency, world.put_events_landing)
    };
    let slow_bus = operation == "PutEvents" && !put_events_latency.is_zero();
    let lands_on_answer = slow_bus && landing == Landing::OnAnswer;
    if lands_on_answer {
        tokio::time::sleep(put_events_latency).await;
    }
    let asked = Asked {
        key: &key,
        region: &region,
        service: &service,
        operation: &operation,
        json: &json,
        form: &form,
        query: parts.uri.query().unwrap_or_default(),
        land: !lands_on_answer || waiting.load(std::sync::atomic::Ordering::SeqCst),
    };
    let mut reply = {
        let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        answer(&mut world, &asked)
    };
    reply.delivery = delivery;
    // The bus took the events; its answer is what is slow.
    if slow_bus && !lands_on_answer {
        tokio::time::sleep(put_events_latency).await;
    }
    reply
}

/// One request, as read.
struct Asked<'a> {
    key: &'a str,
    region: &'a str,
    service: &'a str,
    operation: &'a str,
    json: &'a Value,
    form: &'a [(String, String)],
    query: &'a str,
    /// Whether what PutEvents takes is stored.
    land: bool,
}

/// The service's answer: the request takes effect here.
fn answer(world: &mut World, asked: &Asked<'_>) -> Reply {
    let Asked {
        key,
        region,
        service,
        operation,
        json,
        form,
        query,
        land,
    } = *asked;
    let Some(account) = world.account_of_key(key) else {
        let message = "The security token included in the request is invalid.";
        return match service {
            "events" | "servicequotas" => {
                Reply::aws_json_error(403, "UnrecognizedClientException", message)
            }
            "sts" => Reply::query_error(403, "InvalidClientTokenId", message),
            "ec2" => ec2::error(401, "AuthFailure", message),
            _ => Reply::rest_json_error(403, "UnrecognizedClientException", message, None),
        };
    };
    match service {
        "sts" => sts::handle(world, &account, form),
        "events" if operation == "PutEvents" => eventbridge::put_events(world, json, land),
        "events" => Reply::aws_json_error(
            400,
            "UnknownOperationException",
            "only PutEvents is served here",
        ),
        "ec2" => ec2::handle(world, region, form),
        "servicequotas" => service_quotas::handle(world, operation, &account, region, json),
        "drs" => {
            if world.over_rate_limit(region) {
                return Reply::rest_json_error(
                    429,
                    "ThrottlingException",
                    "Rate exceeded",
                    world.drs_retry_after,
                );
            }
            drs::handle(world, operation, &account, region, json, query)
        }
        _ => Reply::rest_json_error(
            403,
            "MissingAuthenticationTokenException",
            "request is not signed",
            None,
        ),
    }
}

/// Environment for a function process pointed at this local AWS.
pub fn function_env(aws: &LocalAws, region: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", aws.endpoint()),
        ("AWS_LAMBDA_RUNTIME_API", aws.runtime_api_address()),
        ("AWS_LAMBDA_FUNCTION_NAME", "drs-extender".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDLOCALFUNCTION".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local-secret".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The value after `--name` in a binary's arguments: the two binaries here take
/// a few flags each, not enough for an argument-parsing crate.
/// A numeric command-line flag, `default` when absent.
pub fn number_flag(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    flag(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name}: `{v}` is not a number"))
    })
}

pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A process's peak resident set (`VmHWM`) in KiB, read before it is stopped.
pub fn peak_resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
