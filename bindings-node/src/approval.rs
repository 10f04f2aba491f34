//! Approval gates, the approvals API and the HTTP server, for the facade's
//! `awaitApproval`, `engine.approvals` and `engine.serve`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use miyabi::CommittedWorkflow;
use miyabi::ErrorCode;
use miyabi::server::{DriverError, ExternalDriver, Identity, Role};
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;

use miyabi::approval::{
    ApprovalError, ApprovalFilter, ApprovalGate, ApprovalStatus, Approver, AuditFilter, Decision,
    Escalate, Link, OnTimeout, Policy, Quorum, discord, slack, webhook,
};
use napi_derive::napi;
use serde::Deserialize;
use serde_json::Value;

use crate::{NativeEngine, NativeRun, err, ints};

fn approval_err(e: ApprovalError) -> napi::Error<String> {
    // An unknown run is NOT_FOUND and a store failure STORE, as for the engine's own calls.
    err(e.code().as_str(), e)
}

fn error_value(code: &str, message: &str) -> Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

fn to_value<T: serde::Serialize>(v: &T) -> napi::Result<Value, String> {
    serde_json::to_value(v).map_err(|e| err("ENGINE", e))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    v: Value,
) -> napi::Result<T, String> {
    serde_json::from_value(ints(v)).map_err(|e| err("VALIDATION", format!("{what}: {e}")))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PolicySpec {
    Named(String),
    Quorum { quorum: u32 },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeoutSpec {
    Named(String),
    Escalate { escalate: Vec<String> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NotifySpec {
    kind: String,
    url: String,
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GateSpec {
    title: Option<String>,
    summary: Option<String>,
    #[serde(default)]
    approvers: Vec<String>,
    policy: Option<PolicySpec>,
    deadline_ms: Option<u64>,
    on_timeout: Option<TimeoutSpec>,
    schema: Option<Value>,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    notify: Vec<NotifySpec>,
}

/// An approval gate, built from the facade's options; added to a workflow as a native step.
#[napi]
pub struct NativeApprovalGate {
    pub(crate) gate: ApprovalGate,
}

#[napi]
impl NativeApprovalGate {
    /// `{ title?, summary?, approvers?, policy?: 'any' | 'all' | { quorum }, deadlineMs?,
    /// onTimeout?: 'reject' | 'approve' | { escalate: [...] }, schema?, links?, notify? }`.
    #[napi(constructor, ts_args_type = "options: Record<string, unknown>")]
    pub fn new(options: Value) -> napi::Result<Self, String> {
        let spec: GateSpec = parse("approval gate options", options)?;
        let mut gate = ApprovalGate::new().approvers(spec.approvers);
        if let Some(t) = spec.title {
            gate = gate.title(t);
        }
        if let Some(s) = spec.summary {
            gate = gate.summary(s);
        }
        gate = match spec.policy {
            None => gate,
            Some(PolicySpec::Quorum { quorum }) => gate.policy(Quorum(quorum)),
            Some(PolicySpec::Named(p)) => match p.as_str() {
                "any" => gate.policy(Policy::Any),
                "all" => gate.policy(Policy::All),
                other => {
                    return Err(err(
                        "VALIDATION",
                        format!(
                            "approval gate: unknown policy `{other}` (any, all or {{ quorum: n }})"
                        ),
                    ));
                }
            },
        };
        if let Some(ms) = spec.deadline_ms {
            gate = gate.deadline(Duration::from_millis(ms));
        }
        gate = match spec.on_timeout {
            None => gate,
            Some(TimeoutSpec::Escalate { escalate }) => gate.on_timeout(Escalate(escalate)),
            Some(TimeoutSpec::Named(t)) => match t.as_str() {
                "reject" => gate.on_timeout(OnTimeout::Reject),
                "approve" => gate.on_timeout(OnTimeout::Approve),
                other => {
                    return Err(err(
                        "VALIDATION",
                        format!(
                            "approval gate: unknown onTimeout `{other}` (reject, approve or {{ escalate: [...] }})"
                        ),
                    ));
                }
            },
        };
        if let Some(s) = spec.schema {
            gate = gate.schema(s);
        }
        for l in spec.links {
            gate = gate.link(l.label, l.url);
        }
        for n in spec.notify {
            let notifier = match (n.kind.as_str(), n.secret) {
                ("slack", _) => slack(n.url),
                ("discord", _) => discord(n.url),
                ("webhook", Some(secret)) => webhook(n.url, secret),
                ("webhook", None) => {
                    return Err(err(
                        "VALIDATION",
                        "approval gate: a webhook notifier needs a `secret` to sign with",
                    ));
                }
                (other, _) => {
                    return Err(err(
                        "VALIDATION",
                        format!(
                            "approval gate: unknown notifier kind `{other}` (slack, discord or webhook)"
                        ),
                    ));
                }
            };
            gate = gate.notify(notifier);
        }
        Ok(Self { gate })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListSpec {
    run_id: Option<String>,
    status: Option<String>,
    approver: Option<Approver>,
    #[serde(default)]
    undelivered: bool,
    limit: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuditSpec {
    run_id: Option<String>,
    gate: Option<String>,
    actor: Option<String>,
    limit: Option<u32>,
}

/// The facade's handler of the API's requests for workflows with JS steps. Weak: it does not
/// keep the process alive (a server does not either).
type ServeDispatch = ThreadsafeFunction<Value, Promise<Value>, Value, napi::Status, false, true>;

/// Hands the HTTP API's starts, resumes and decided gates of workflows with JS steps to the JS
/// engine that serves (`engine.serve()`), which drives those runs on the event loop like runs
/// it started itself.
struct JsDriver {
    call: ServeDispatch,
}

impl JsDriver {
    /// Sends `request` to the facade and waits for its answer.
    async fn ask(&self, request: Value) -> Result<Value, DriverError> {
        let lost = |e: napi::Error| {
            DriverError::new(
                ErrorCode::Engine,
                format!("the JavaScript engine did not answer: {}", e.reason),
            )
        };
        let answer = self
            .call
            .call_async_catch(request)
            .await
            .map_err(lost)?
            .await
            .map_err(lost)?;
        match answer.get("error") {
            None | Some(Value::Null) => Ok(answer),
            Some(e) => {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("ENGINE");
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the JavaScript engine refused the request");
                // The facade answers with the codes of the same table.
                let code = serde_json::from_value::<ErrorCode>(Value::String(code.to_owned()))
                    .unwrap_or(ErrorCode::Engine);
                Err(DriverError::new(code, message))
            }
        }
    }
}

#[async_trait]
impl ExternalDriver for JsDriver {
    async fn start(
        &self,
        workflow: CommittedWorkflow,
        input: Value,
    ) -> Result<String, DriverError> {
        let answer = self
            .ask(serde_json::json!({
                "kind": "start",
                "workflow": workflow.id(),
                "fingerprint": workflow.fingerprint(),
                "input": input,
            }))
            .await?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DriverError::new(
                    ErrorCode::Engine,
                    "the JavaScript engine answered without a run id",
                )
            })
    }

    async fn resume(&self, run_id: String, path: String, data: Value) -> Result<(), DriverError> {
        self.ask(
            serde_json::json!({ "kind": "resume", "runId": run_id, "path": path, "data": data }),
        )
        .await
        .map(drop)
    }

    async fn deliver(&self, run_id: String, gate: String) -> Result<(), DriverError> {
        self.ask(serde_json::json!({ "kind": "deliver", "runId": run_id, "gate": gate }))
            .await
            .map(drop)
    }

    async fn retry(&self, run_id: String) -> Result<(), DriverError> {
        self.ask(serde_json::json!({ "kind": "retry", "runId": run_id }))
            .await
            .map(drop)
    }

    async fn cancel(&self, run_id: String) -> Result<(), DriverError> {
        self.ask(serde_json::json!({ "kind": "cancel", "runId": run_id }))
            .await
            .map(drop)
    }
}

/// A running HTTP server (see `engine.serve`).
#[napi]
pub struct NativeServer {
    addr: String,
    /// Taken by the first `close`.
    handle: std::sync::Mutex<Option<miyabi::server::ServerHandle>>,
}

#[napi]
impl NativeServer {
    /// `host:port` it listens on.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.addr.clone()
    }

    /// Stops accepting connections and ends open streams. Later calls do nothing.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        // The lock is released before the wait: a concurrent `close` finds the slot empty.
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            h.shutdown()
                .await
                .map_err(|e| napi::Error::from_reason(e.to_string()))?;
        }
        Ok(())
    }
}

#[napi]
impl NativeEngine {
    /// One gate of a run.
    #[napi(ts_return_type = "Record<string, unknown>")]
    pub fn approval_get(&self, run_id: String, gate: String) -> napi::Result<Value, String> {
        let a = self
            .engine
            .approvals()
            .get(&run_id, &gate)
            .map_err(approval_err)?;
        to_value(&a)
    }

    /// Gates matching `{ runId?, status?, approver?, undelivered?, limit? }`, newest first.
    #[napi(
        ts_args_type = "filter: Record<string, unknown>",
        ts_return_type = "Array<Record<string, unknown>>"
    )]
    pub fn approval_list(&self, filter: Value) -> napi::Result<Vec<Value>, String> {
        let f: ListSpec = parse("approvals filter", filter)?;
        let status = match f.status.as_deref() {
            None => None,
            Some(s) => Some(ApprovalStatus::parse(s).ok_or_else(|| {
                err(
                    "VALIDATION",
                    format!(
                        "approvals filter: unknown status `{s}` (pending, approved, rejected or closed)"
                    ),
                )
            })?),
        };
        let list = self
            .engine
            .approvals()
            .list(&ApprovalFilter {
                run_id: f.run_id,
                status,
                approver: f.approver,
                undelivered: f.undelivered,
                limit: f.limit.map(|l| l as usize),
                ..ApprovalFilter::default()
            })
            .map_err(approval_err)?;
        list.iter().map(to_value).collect()
    }

    /// The pending gates `who` (`{ id, teams? }`) may decide and has not voted on.
    #[napi(
        ts_args_type = "who: { id: string; teams?: string[] }",
        ts_return_type = "Array<Record<string, unknown>>"
    )]
    pub fn approval_inbox(&self, who: Value) -> napi::Result<Vec<Value>, String> {
        let who: Approver = parse("approver", who)?;
        let list = self.engine.approvals().inbox(&who).map_err(approval_err)?;
        list.iter().map(to_value).collect()
    }

    /// Records a decision (`{ action: 'approve' | 'reject', data?, comment? }`); resolves to
    /// `{ approval }` or `{ error: { code, message } }` (async calls cannot carry a code in a
    /// rejection). A run driven from JS is not resumed here: see `approvalResume`.
    #[napi(
        ts_args_type = "runId: string, gate: string, who: { id: string; teams?: string[] }, decision: Record<string, unknown>",
        ts_return_type = "Promise<{ approval?: Record<string, unknown>; error?: { code: string; message: string } }>"
    )]
    pub async fn approval_decide(
        &self,
        run_id: String,
        gate: String,
        who: Value,
        decision: Value,
    ) -> napi::Result<Value> {
        let parsed = parse::<Approver>("approver", who)
            .and_then(|w| parse::<Decision>("decision", decision).map(|d| (w, d)));
        let (who, decision) = match parsed {
            Ok(p) => p,
            Err(e) => return Ok(error_value(&e.status, &e.reason)),
        };
        match self
            .engine
            .approvals()
            .decide(&run_id, &gate, &who, decision)
            .await
        {
            Ok(a) => Ok(serde_json::json!({ "approval": a })),
            Err(e) => {
                let e = approval_err(e);
                Ok(error_value(&e.status, &e.reason))
            }
        }
    }

    /// Audit records matching `{ runId?, gate?, actor?, limit? }`, oldest first.
    #[napi(
        ts_args_type = "filter: Record<string, unknown>",
        ts_return_type = "Array<Record<string, unknown>>"
    )]
    pub fn approval_audit(&self, filter: Value) -> napi::Result<Vec<Value>, String> {
        let f: AuditSpec = parse("audit filter", filter)?;
        let list = self
            .engine
            .approvals()
            .audit(&AuditFilter {
                run_id: f.run_id,
                gate: f.gate,
                actor: f.actor,
                limit: f.limit.map(|l| l as usize),
            })
            .map_err(approval_err)?;
        list.iter().map(to_value).collect()
    }

    /// Hands a decided gate's output to its suspended run and returns the run for the
    /// caller to drive; null when there is nothing to hand over.
    #[napi]
    pub fn approval_resume(
        &self,
        run_id: String,
        gate: String,
    ) -> napi::Result<Option<NativeRun>, String> {
        let run = napi::bindgen_prelude::within_runtime_if_available(|| {
            self.engine.approvals().resume_external(&run_id, &gate)
        })
        .map_err(approval_err)?;
        run.map(|r| self.driven(r)).transpose()
    }

    /// Closes the pending gates of a run that ended (cancelled, failed): they leave inboxes,
    /// refuse later decisions, and their notifiers send a `closed` notice. Returns how many
    /// closed. The facade calls it right after a cancellation, as the HTTP API does.
    #[napi]
    pub async fn approval_close(&self, run_id: String) -> napi::Result<u32> {
        let n = self
            .engine
            .approvals()
            .close_run(&run_id)
            .await
            .map_err(|e| napi::Error::from_reason(e.to_string()))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// One pass of the approvals worker (deadlines, notifications; runs driven from Rust are
    /// resumed); returns what it did.
    #[napi(
        ts_return_type = "Promise<{ expired: number; delivered: number; notified: number; notifyFailures: number }>"
    )]
    pub async fn approval_tick(&self) -> napi::Result<Value> {
        let r = self
            .engine
            .approvals()
            .tick()
            .await
            .map_err(|e| napi::Error::from_reason(e.to_string()))?;
        Ok(serde_json::json!({
            "expired": r.expired,
            "delivered": r.delivered,
            "notified": r.notified,
            "notifyFailures": r.notify_failures,
        }))
    }

    /// Serves the HTTP API and dashboard on `host:port` (port 0: any free port), with
    /// `tokens` (`[{ token, id, teams? }]`; none: one is generated and printed to stderr).
    /// `driver` gets the API's requests for workflows with JS steps (start, resume, a decided
    /// gate to deliver, cancel) and resolves with `{ id }` once the run is committed and driven by the
    /// facade, or with `{ error: { code, message } }`.
    #[napi(
        ts_args_type = "options: { host?: string; port?: number; tokens?: Array<{ token: string; id: string; teams?: string[]; roles?: Array<'viewer' | 'operator' | 'approver' | 'admin'>; workflows?: string[] }>; accessFile?: string; cors?: string[] }, driver: (request: { kind: 'start'; workflow: string; fingerprint: string; input: unknown } | { kind: 'resume'; runId: string; path: string; data: unknown } | { kind: 'deliver'; runId: string; gate: string } | { kind: 'retry'; runId: string } | { kind: 'cancel'; runId: string }) => Promise<{ id?: string; error?: { code: string; message: string } }>"
    )]
    pub async fn serve(&self, options: Value, driver: ServeDispatch) -> napi::Result<NativeServer> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct TokenSpec {
            token: String,
            id: String,
            #[serde(default)]
            teams: Vec<String>,
            /// Roles (admin when absent, as before roles existed).
            roles: Option<Vec<String>>,
            /// Workflow scope (every workflow when absent).
            workflows: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct ServeSpec {
            host: Option<String>,
            port: Option<u16>,
            #[serde(default)]
            tokens: Vec<TokenSpec>,
            access_file: Option<String>,
            #[serde(default)]
            cors: Vec<String>,
        }
        let reason = |e: napi::Error<String>| napi::Error::from_reason(e.reason);
        let spec: ServeSpec = parse("serve options", options).map_err(reason)?;
        let mut config = miyabi::server::ServerConfig::from_env()
            .map_err(|e| napi::Error::from_reason(e.to_string()))?;
        if let Some(path) = &spec.access_file {
            config = config
                .access_file(path)
                .map_err(|e| napi::Error::from_reason(e.to_string()))?;
        }
        for (n, t) in spec.tokens.into_iter().enumerate() {
            // Admin of every workflow unless `roles` says otherwise (as before roles existed).
            let mut identity = Identity::admin(Approver::new(t.id).teams(t.teams));
            if let Some(names) = t.roles {
                identity.roles = names
                    .iter()
                    .map(|name| {
                        Role::parse(name).ok_or_else(|| {
                            napi::Error::from_reason(format!(
                                "serve options: tokens[{n}] (`{}`): unknown role `{name}` (viewer, operator, approver, admin)",
                                identity.id()
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(workflows) = t.workflows {
                identity = identity.workflows(workflows);
            }
            config = config.identity(&t.token, identity);
        }
        if !spec.cors.is_empty() {
            config = config.cors(spec.cors);
        }
        config = config.external_driver(Arc::new(JsDriver { call: driver }));
        let host = spec.host.unwrap_or_else(|| "127.0.0.1".into());
        let addr: std::net::SocketAddr = format!("{host}:{}", spec.port.unwrap_or(7420))
            .parse()
            .map_err(|e| napi::Error::from_reason(format!("serve: bad address `{host}`: {e}")))?;
        let handle = miyabi::server::serve(self.engine.clone(), config, Some(addr))
            .await
            .map_err(|e| napi::Error::from_reason(e.to_string()))?;
        Ok(NativeServer {
            addr: handle.local_addr().to_string(),
            handle: std::sync::Mutex::new(Some(handle)),
        })
    }
}
