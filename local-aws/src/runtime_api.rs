//! The Lambda Runtime API, so the real `bootstrap` binary can be run as Lambda
//! runs it: it polls for the next event and posts a response or an error.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use crate::reply::Reply;

pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:444455556666:function:drs-extender";

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    Response(Value),
    /// The function reported an error (`errorType`, `errorMessage`).
    Error(Value),
    /// The function failed to start.
    InitError(Value),
}

struct Queued {
    id: String,
    payload: Value,
    deadline_ms: u64,
}

#[derive(Default)]
pub struct RuntimeApi {
    queue: Mutex<VecDeque<Queued>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    init_error: Mutex<Option<Value>>,
    first_poll: Mutex<Option<Instant>>,
    counter: Mutex<u64>,
    pub function_arn: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuntimeApi {
    pub fn enqueue(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> (String, oneshot::Receiver<Invocation>) {
        let id = {
            let mut n = lock(&self.counter);
            *n += 1;
            format!("00000000-0000-4000-8000-{:012}", *n)
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id.clone(), tx);
        if let Some(error) = lock(&self.init_error).clone() {
            if let Some(tx) = lock(&self.waiting).remove(&id) {
                let _ = tx.send(Invocation::InitError(error));
            }
            return (id, rx);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        lock(&self.queue).push_back(Queued {
            id: id.clone(),
            payload,
            deadline_ms: now_ms + timeout.as_millis() as u64,
        });
        self.arrived.notify_one();
        (id, rx)
    }

    /// When the function first asked for an event: the end of its cold start.
    pub fn first_poll(&self) -> Option<Instant> {
        *lock(&self.first_poll)
    }

    pub async fn handle(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let rest = path.trim_start_matches("/2018-06-01/runtime/");
        match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
            ("GET", ["invocation", "next"]) => self.next().await,
            ("POST", ["invocation", id, outcome @ ("response" | "error")]) => {
                let value = serde_json::from_slice(body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()));
                let result = if *outcome == "response" {
                    Invocation::Response(value)
                } else {
                    Invocation::Error(value)
                };
                match lock(&self.waiting).remove(*id) {
                    Some(tx) => {
                        let _ = tx.send(result);
                        Reply::json(202, &serde_json::json!({"status": "OK"}))
                    }
                    None => Reply::json(
                        400,
                        &serde_json::json!({"errorMessage": "unknown request id"}),
                    ),
                }
            }
            ("POST", ["init", "error"]) => {
                let value = serde_json::from_slice(body).unwrap_or(Value::Null);
                *lock(&self.init_error) = Some(value.clone());
                for (_, tx) in lock(&self.waiting).drain() {
                    let _ = tx.send(Invocation::InitError(value.clone()));
                }
                Reply::json(202, &serde_json::json!({"status": "OK"}))
            }
            _ => Reply::json(
                404,
                &serde_json::json!({"errorMessage": "not a Runtime API path"}),
            ),
        }
    }

    async fn next(&self) -> Reply {
        lock(&self.first_poll).get_or_insert_with(Instant::now);
        loop {
            let notified = self.arrived.notified();
            if let Some(next) = lock(&self.queue).pop_front() {
                let arn = lock(&self.function_arn)
                    .clone()
                    .unwrap_or_else(|| FUNCTION_ARN.to_owned());
                let mut reply = Reply::json(200, &next.payload);
                reply
                    .headers
                    .push(("lambda-runtime-aws-request-id", next.id));
                reply
                    .headers
                    .push(("lambda-runtime-deadline-ms", next.deadline_ms.to_string()));
                reply
                    .headers
                    .push(("lambda-runtime-invoked-function-arn", arn));
                reply.headers.push((
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
                ));
                return reply;
            }
            notified.await;
        }
    }
}
