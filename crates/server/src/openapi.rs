//! The OpenAPI 3.1 document of the API, built from the route table below.

use serde_json::{Map, Value, json};

/// One route of the API, as documented.
struct Route {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    /// Path parameters, in order.
    params: &'static [&'static str],
    /// Query parameters: (name, schema type, description).
    query: &'static [(&'static str, &'static str, &'static str)],
    /// Request body schema (a `$ref` name or inline JSON), if any.
    body: Option<&'static str>,
    /// Success status and its schema reference.
    ok: (&'static str, &'static str),
    /// Error statuses besides 401 (and 500).
    errors: &'static [&'static str],
}

/// Every route of the server (kept in step with `routes.rs`; a test checks them).
const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/api/health",
        summary: "Liveness (no authentication)",
        auth: false,
        params: &[],
        query: &[],
        body: None,
        ok: ("200", "Health"),
        errors: &[],
    },
    Route {
        method: "get",
        path: "/api/openapi.json",
        summary: "This document (no authentication)",
        auth: false,
        params: &[],
        query: &[],
        body: None,
        ok: ("200", "Object"),
        errors: &[],
    },
    Route {
        method: "get",
        path: "/api/me",
        summary: "The identity of the bearer token",
        auth: true,
        params: &[],
        query: &[],
        body: None,
        ok: ("200", "Identity"),
        errors: &[],
    },
    Route {
        method: "get",
        path: "/api/workflows",
        summary: "Registered workflows (newest definition of each id) with their graphs",
        auth: true,
        params: &[],
        query: &[],
        body: None,
        ok: ("200", "WorkflowList"),
        errors: &[],
    },
    Route {
        method: "get",
        path: "/api/workflows/{id}",
        summary: "One registered workflow with its graph",
        auth: true,
        params: &["id"],
        query: &[],
        body: None,
        ok: ("200", "Workflow"),
        errors: &["404"],
    },
    Route {
        method: "get",
        path: "/api/workflows/{id}/stats",
        summary: "Statistics of a workflow's newest 500 runs: counts by status, success rate, p50/p95 duration, the 10 newest runs",
        auth: true,
        params: &["id"],
        query: &[],
        body: None,
        ok: ("200", "Object"),
        errors: &["404"],
    },
    Route {
        method: "post",
        path: "/api/runs/{id}/retry",
        summary: "Retry a failed run from its failed steps: they run again, what succeeded is kept",
        auth: true,
        params: &["id"],
        query: &[],
        body: None,
        ok: ("202", "RunId"),
        errors: &["404", "409", "501"],
    },
    Route {
        method: "post",
        path: "/api/runs/{id}/rerun",
        summary: "Start a new run of the run's workflow with the same input, or `input` from the body",
        auth: true,
        params: &["id"],
        query: &[],
        body: Some("Object"),
        ok: ("202", "RunId"),
        errors: &["400", "404", "409", "413", "422"],
    },
    Route {
        method: "post",
        path: "/api/workflows/{id}/runs",
        summary: "Start a run in the background",
        auth: true,
        params: &["id"],
        query: &[],
        body: Some("StartRun"),
        ok: ("202", "RunId"),
        errors: &["400", "404", "409", "413", "422"],
    },
    Route {
        method: "get",
        path: "/api/runs",
        summary: "Runs, newest first, one page at a time (keyset cursor)",
        auth: true,
        params: &[],
        query: &[
            ("workflow", "string", "Only runs of this workflow"),
            (
                "status",
                "string",
                "running, suspended, succeeded, failed or cancelled",
            ),
            ("limit", "integer", "Page size: default 50, at most 500"),
            ("cursor", "string", "`next_cursor` of the previous page"),
            (
                "q",
                "string",
                "Search: a run id, an id prefix, or text in the input or output",
            ),
            (
                "from",
                "string",
                "Created at or after (RFC 3339 or ms since the epoch)",
            ),
            (
                "to",
                "string",
                "Created before (RFC 3339 or ms since the epoch)",
            ),
        ],
        body: None,
        ok: ("200", "RunPage"),
        errors: &["400", "422"],
    },
    Route {
        method: "get",
        path: "/api/runs/{id}",
        summary: "One run with its step records",
        auth: true,
        params: &["id"],
        query: &[],
        body: None,
        ok: ("200", "RunDetail"),
        errors: &["404"],
    },
    Route {
        method: "post",
        path: "/api/runs/{id}/cancel",
        summary: "Cancel a run",
        auth: true,
        params: &["id"],
        query: &[],
        body: None,
        ok: ("200", "RunEnvelope"),
        errors: &["404", "409"],
    },
    Route {
        method: "post",
        path: "/api/runs/{id}/resume",
        summary: "Give resume data to a suspended path; the run continues in the background",
        auth: true,
        params: &["id"],
        query: &[],
        body: Some("Resume"),
        ok: ("202", "RunId"),
        errors: &["400", "404", "409", "413", "422"],
    },
    Route {
        method: "get",
        path: "/api/runs/{id}/events",
        summary: "The run's events as server-sent events (id = sequence number); honours Last-Event-ID; ends after run-finished",
        auth: true,
        params: &["id"],
        query: &[
            (
                "from",
                "integer",
                "First sequence number to send (default 1)",
            ),
            (
                "access_token",
                "string",
                "The bearer token, for clients that cannot set headers",
            ),
        ],
        body: None,
        ok: ("200", "EventStream"),
        errors: &["404"],
    },
    Route {
        method: "get",
        path: "/api/ws",
        summary: "Dashboard WebSocket: send {\"subscribe\": \"<run id>\"} or {\"subscribe\": \"runs\"}",
        auth: true,
        params: &[],
        query: &[(
            "access_token",
            "string",
            "The bearer token, for clients that cannot set headers",
        )],
        body: None,
        ok: ("101", "Object"),
        errors: &[],
    },
    Route {
        method: "get",
        path: "/api/approvals",
        summary: "The caller's inbox: pending approval gates awaiting the token's identity; with all=1, every gate matching status and run",
        auth: true,
        params: &[],
        query: &[
            (
                "status",
                "string",
                "pending, approved, rejected or closed (with all=1)",
            ),
            (
                "all",
                "string",
                "1: list gates of everyone instead of the inbox",
            ),
            ("run", "string", "Only gates of this run"),
            ("limit", "integer", "Page size: default 50, at most 500"),
            ("cursor", "string", "`next_cursor` of the previous page"),
        ],
        body: None,
        ok: ("200", "ApprovalList"),
        errors: &["400", "422"],
    },
    Route {
        method: "get",
        path: "/api/approvals/{run}/{gate}",
        summary: "One approval gate (the gate path percent-encoded in one segment: checks%2Fsecurity)",
        auth: true,
        params: &["run", "gate"],
        query: &[],
        body: None,
        ok: ("200", "ApprovalEnvelope"),
        errors: &["404"],
    },
    Route {
        method: "post",
        path: "/api/approvals/{run}/{gate}/decision",
        summary: "Record the token identity's decision on a gate",
        auth: true,
        params: &["run", "gate"],
        query: &[],
        body: Some("Decision"),
        ok: ("200", "ApprovalEnvelope"),
        errors: &["400", "403", "404", "409", "413", "422"],
    },
    Route {
        method: "get",
        path: "/api/audit",
        summary: "The audit trail (gates and API actions), newest first, one page at a time",
        auth: true,
        params: &[],
        query: &[
            ("run", "string", "Only records of this run"),
            ("gate", "string", "Only records of this gate (with run)"),
            ("actor", "string", "Only records by this actor"),
            ("limit", "integer", "Page size: default 50, at most 500"),
            ("cursor", "string", "`next_cursor` of the previous page"),
            (
                "order",
                "string",
                "newest (default) or oldest (the oldest `limit` records, one page)",
            ),
        ],
        body: None,
        ok: ("200", "AuditList"),
        errors: &["400"],
    },
    Route {
        method: "get",
        path: "/api/evals",
        summary: "Eval suites (workflows `eval.<suite>`) and a page of eval runs, newest first, each with its results without the samples",
        auth: true,
        params: &[],
        query: &[
            ("suite", "string", "Only runs of this suite"),
            ("limit", "integer", "Page size: default 50, at most 100"),
            ("cursor", "string", "`next_cursor` of the previous page"),
        ],
        body: None,
        ok: ("200", "EvalRunPage"),
        errors: &["400"],
    },
    Route {
        method: "get",
        path: "/api/evals/compare",
        summary: "Paired A/B comparison of two finished eval runs of one suite (B against A), as `miyabi eval compare` makes it",
        auth: true,
        params: &[],
        query: &[
            ("a", "string", "The baseline eval run's id"),
            ("b", "string", "The candidate eval run's id"),
        ],
        body: None,
        ok: ("200", "EvalComparison"),
        errors: &["400", "404", "409", "422"],
    },
];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_response(status: &str) -> (String, Value) {
    let description = match status {
        "400" => "INVALID_ARGUMENT: malformed JSON or query",
        "401" => "UNAUTHORIZED: missing or wrong bearer token",
        "403" => {
            "FORBIDDEN: the identity lacks the role this needs, or is not an approver of the gate"
        }
        "404" => "NOT_FOUND (also anything outside the identity's workflow scope)",
        "409" => {
            "CONFLICT / NOT_SUSPENDED / DEFINITION_CHANGED: the run is not in a state that allows this, or its workflow's steps run outside Rust and this server has no driver for them"
        }
        "413" => "PAYLOAD_TOO_LARGE",
        "422" => "VALIDATION: the value does not match what is expected",
        _ => "STORE / ENGINE",
    };
    (
        status.to_string(),
        json!({
            "description": description,
            "content": { "application/json": { "schema": schema_ref("Error") } }
        }),
    )
}

/// The OpenAPI 3.1 document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = r
            .params
            .iter()
            .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        params.extend(r.query.iter().map(|(name, ty, d)| {
            json!({ "name": name, "in": "query", "required": false, "description": d, "schema": { "type": ty } })
        }));
        let mut responses = Map::new();
        let ok_content = match r.ok.1 {
            "EventStream" => json!({ "text/event-stream": { "schema": { "type": "string" } } }),
            name => json!({ "application/json": { "schema": schema_ref(name) } }),
        };
        let ok = if r.ok.0 == "101" {
            json!({ "description": "Switching protocols (WebSocket)" })
        } else {
            json!({ "description": "OK", "content": ok_content })
        };
        responses.insert(r.ok.0.to_string(), ok);
        let mut errors: Vec<&str> = r.errors.to_vec();
        if r.auth {
            errors.push("401");
            // Every authenticated route checks the caller's roles (docs/server.md).
            if !errors.contains(&"403") {
                errors.push("403");
            }
        }
        errors.push("500");
        for e in errors {
            let (k, v) = error_response(e);
            responses.insert(k, v);
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "parameters": params,
            "responses": responses,
        });
        if let Value::Object(m) = &mut op {
            if !r.auth {
                m.insert("security".into(), json!([]));
            }
            if let Some(b) = r.body {
                m.insert(
                    "requestBody".into(),
                    json!({ "required": true, "content": { "application/json": { "schema": schema_ref(b) } } }),
                );
            }
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        if let Value::Object(m) = entry {
            m.insert(r.method.to_string(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Miyabi API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs, workflows and live events of a Miyabi engine. Authenticate with `Authorization: Bearer <token>`."
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        }
    })
}

fn schemas() -> Value {
    let status = json!({ "type": "string", "enum": ["running", "suspended", "succeeded", "failed", "cancelled"] });
    json!({
        "Object": { "type": "object" },
        "Health": { "type": "object", "properties": { "status": { "type": "string" } } },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": { "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": crate::ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>() },
                    "message": { "type": "string" }
                }
            } }
        },
        "Identity": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "teams": { "type": "array", "items": { "type": "string" } },
                "roles": { "type": "array", "items": { "type": "string", "enum": ["viewer", "operator", "approver", "admin"] } },
                "workflows": { "type": "array", "items": { "type": "string" }, "description": "Workflow id patterns in scope; [\"*\"] for every workflow" }
            }
        },
        "Workflow": {
            "type": "object",
            "required": ["id", "fingerprint", "graph"],
            "properties": {
                "id": { "type": "string" },
                "fingerprint": { "type": "string" },
                "graph": { "type": "object", "description": "nodes (id, path, kind, parent, options) and edges (from, to, kind, label)" }
            }
        },
        "WorkflowList": { "type": "object", "properties": { "workflows": { "type": "array", "items": schema_ref("Workflow") } } },
        "StartRun": { "type": "object", "properties": { "input": {} } },
        "Resume": { "type": "object", "required": ["path"], "properties": { "path": { "type": "string" }, "data": {} } },
        "RunId": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" } } },
        "Run": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "workflow": { "type": "string" },
                "status": status.clone(),
                "input": {},
                "output": {},
                "error": { "type": ["string", "null"] },
                "suspended": { "type": "array", "items": { "type": "object", "properties": { "path": { "type": "string" }, "payload": {} } } },
                "created_at": { "type": "integer" },
                "updated_at": { "type": "integer" }
            }
        },
        "RunSummary": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "workflow": { "type": "string" },
                "status": status,
                "error": { "type": ["string", "null"] },
                "created_at": { "type": "integer" },
                "updated_at": { "type": "integer" }
            }
        },
        "RunEnvelope": { "type": "object", "properties": { "run": schema_ref("Run") } },
        "RunPage": {
            "type": "object",
            "properties": {
                "runs": { "type": "array", "items": schema_ref("RunSummary") },
                "next_cursor": { "type": ["string", "null"] }
            }
        },
        "StepRecord": {
            "type": "object",
            "properties": {
                "path": { "type": "string" },
                "kind": { "type": "string", "enum": ["step", "branch", "loop", "map", "sleep", "foreach"] },
                "status": { "type": "string", "enum": ["running", "succeeded", "failed", "suspended"] },
                "output": {}, "error": { "type": ["string", "null"] }, "payload": {}, "resume": {},
                "attempt": { "type": "integer" }, "updated_at": { "type": "integer" }
            }
        },
        "Approval": {
            "type": "object",
            "description": "An approval gate: request, votes, outcome (see docs/approvals.md)",
            "properties": {
                "run_id": { "type": "string" }, "workflow": { "type": "string" }, "gate": { "type": "string" },
                "status": { "type": "string", "enum": ["pending", "approved", "rejected"] },
                "title": { "type": "string" }, "summary": { "type": "string" }, "data": {},
                "approvers": { "type": "array", "items": { "type": "string" } },
                "votes": { "type": "array", "items": { "type": "object" } },
                "output": {}, "deadline_at": { "type": ["integer", "null"] },
                "created_at": { "type": "integer" }, "version": { "type": "integer" }
            }
        },
        "ApprovalEnvelope": { "type": "object", "properties": { "approval": schema_ref("Approval") } },
        "ApprovalList": { "type": "object", "properties": { "approvals": { "type": "array", "items": schema_ref("Approval") }, "next_cursor": { "type": ["string", "null"] } } },
        "Decision": {
            "type": "object",
            "required": ["action"],
            "properties": {
                "action": { "type": "string", "enum": ["approve", "reject"] },
                "data": { "description": "Edited data (approve only), validated against the gate's schema" },
                "comment": { "type": "string" }
            }
        },
        "AuditRecord": {
            "type": "object",
            "properties": {
                "id": { "type": "integer" }, "run_id": { "type": "string" }, "gate": { "type": "string" },
                "at": { "type": "integer" }, "actor": { "type": "string" }, "action": { "type": "string" },
                "comment": { "type": ["string", "null"] }, "diff": {}, "data": {}
            }
        },
        "AuditList": { "type": "object", "properties": { "audit": { "type": "array", "items": schema_ref("AuditRecord") }, "next_cursor": { "type": ["string", "null"] } } },
        "EvalRun": {
            "type": "object",
            "properties": {
                "id": { "type": "string" }, "workflow": { "type": "string" }, "suite": { "type": "string" },
                "status": { "type": "string" }, "error": { "type": ["string", "null"] },
                "created_at": { "type": "integer" }, "updated_at": { "type": "integer" },
                "results": { "type": ["object", "null"], "description": "The run's miyabi.eval/v1 results without `samples` (docs/evals.md); null until it has succeeded" }
            }
        },
        "EvalRunPage": {
            "type": "object",
            "properties": {
                "suites": { "type": "array", "items": { "type": "object", "properties": {
                    "name": { "type": "string" }, "workflow": { "type": "string" },
                    "runs": { "type": "integer", "description": "Its runs among the newest 10,000 runs" },
                    "last_run_at": { "type": ["integer", "null"] }
                } } },
                "runs": { "type": "array", "items": schema_ref("EvalRun") },
                "next_cursor": { "type": ["string", "null"] }
            }
        },
        "EvalComparison": {
            "type": "object",
            "description": "miyabi.eval.compare/v1 (docs/evals.md) with `a_run` and `b_run` ({id, created_at})",
            "properties": {
                "schema": { "type": "string" }, "a": { "type": "string" }, "b": { "type": "string" },
                "cases_compared": { "type": "integer" },
                "metrics": { "type": "array", "items": { "type": "object" } },
                "a_run": { "type": "object" }, "b_run": { "type": "object" }
            }
        },
        "RunDetail": {
            "type": "object",
            "properties": { "run": schema_ref("Run"), "steps": { "type": "array", "items": schema_ref("StepRecord") } }
        }
    })
}
