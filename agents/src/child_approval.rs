//! Tool approvals of a child run, asked and answered through the parent run's step.
//!
//! The issue-resolution pipeline runs CoordinatorAgent's plan as a child run (`plan-<run id>`).
//! When a CodeGenAgent task in it calls a tool that needs approval (a shell command the
//! permission policy asks about), the task's step suspends the child run with
//! `{"kind": "tool-approval", "agent", "pending": [...]}`. The parent's step then suspends too,
//! with [`parent_payload`]: the same shape, plus the child run (`"run"`), its suspended paths
//! (`"path"`, `"paths"`) and each pending call's child path and shell command, so an inbox
//! that lists the parent shows what waits.
//!
//! Resuming the parent's step with the usual decision (`{"approved": true}`,
//! `{"approved": false, "reason": ".."}`, or per call `{"decisions": {"<call id>": ..}}`;
//! optionally `"path": "<child path>"` to answer one suspended path only) forwards it to the
//! child's suspended paths ([`forward`]) and waits for the child again ([`wait_child`]).
//!
//! Crash safety: the parent records what it suspended for ([`parent_payload`]'s `"waiting"`,
//! kept in its run state, committed with the suspension). A decision is forwarded to a child
//! path only while that path still waits for exactly the calls recorded; a path that no longer
//! waits, or waits for other calls (the child went on and asked again), was answered already —
//! by a forward before a crash, or directly — and is left alone, so one human decision is never
//! applied twice.

use std::time::Duration;

use miyabi::{Engine, EngineError, Run, RunStatus, StepContext, StepError, Suspension};
use serde_json::{Map, Value, json};

/// The kind of a tool-approval suspension payload.
pub const KIND: &str = "tool-approval";

/// Whether `payload` is a tool-approval suspension (an agent's, or a parent's for its child).
pub fn is_tool_approval(payload: &Value) -> bool {
    payload.get("kind").and_then(Value::as_str) == Some(KIND)
}

/// The JSON Schema of a decision on a tool approval: `{"approved": bool, "reason"?,
/// "arguments"?}`, or `{"decisions": {call id: decision} | [{"call_id", ..decision}]}`, with an
/// optional `"path"` naming one child path. Given to steps as their resume schema, so a
/// malformed decision is refused when it is given, before anything is written.
pub fn decision_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "approved": {"type": "boolean"},
            "reason": {"type": ["string", "null"]},
            "arguments": {},
            "path": {"type": "string"},
            "decisions": {"type": ["object", "array"]}
        },
        "anyOf": [{"required": ["approved"]}, {"required": ["decisions"]}]
    })
}

/// The payload a parent step suspends with while its child run waits at `suspended`.
///
/// `{"kind": "tool-approval", "agent", "run": child, "workflow", "path": first suspended child
/// path, "paths": [all], "pending": [{"call_id", "tool", "arguments", "description",
/// "command"?, "path"}], "waiting": [{"path", "payload"}], "message"}`. `command` is the shell
/// command of a `shell` call; `waiting` holds the child's own suspension payloads (what
/// [`forward`] compares against).
pub fn parent_payload(child: &str, workflow: &str, suspended: &[Suspension]) -> Value {
    let mut pending = Vec::new();
    let mut agent = Value::Null;
    for s in suspended {
        if !is_tool_approval(&s.payload) {
            continue;
        }
        if agent.is_null() {
            agent = s.payload["agent"].clone();
        }
        for call in s.payload["pending"].as_array().into_iter().flatten() {
            let mut item = call.as_object().cloned().unwrap_or_default();
            if let Some(cmd) = call["arguments"]["command"].as_str() {
                item.insert("command".into(), Value::String(cmd.to_owned()));
            }
            item.insert("path".into(), Value::String(s.path.clone()));
            pending.push(Value::Object(item));
        }
    }
    let paths: Vec<&str> = suspended.iter().map(|s| s.path.as_str()).collect();
    let message = if pending.is_empty() {
        format!(
            "the plan's run {child} is suspended at {}",
            paths.join(", ")
        )
    } else {
        let what: Vec<String> = pending.iter().map(describe_call).collect();
        format!(
            "the plan's run {child} waits for approval of {}",
            what.join("; ")
        )
    };
    json!({
        "kind": KIND,
        "agent": agent,
        "run": child,
        "workflow": workflow,
        "path": paths.first().copied().unwrap_or(""),
        "paths": paths,
        "pending": pending,
        "waiting": suspended.iter().map(|s| json!({"path": s.path, "payload": s.payload})).collect::<Vec<_>>(),
        "message": message,
    })
}

/// A one-line description of a pending call: `shell: <command>` or `<tool> <arguments>`.
pub fn describe_call(call: &Value) -> String {
    let tool = call["tool"].as_str().unwrap_or("tool");
    match call["arguments"]["command"].as_str() {
        Some(cmd) => format!("{tool}: {cmd}"),
        None => format!("{tool} {}", call["arguments"]),
    }
}

/// The call ids pending in an agent's tool-approval payload.
fn call_ids(payload: &Value) -> Vec<&str> {
    payload["pending"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["call_id"].as_str())
        .collect()
}

/// The part of `data` that concerns a child path waiting for `ids`: per-call decisions are
/// narrowed to those calls (`None` when none of them is decided); a decision for all calls is
/// passed on as it is (without `"path"`).
fn decision_for(data: &Value, ids: &[&str]) -> Option<Value> {
    let mut out: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    out.remove("path");
    match out.get("decisions") {
        Some(Value::Object(map)) => {
            let kept: Map<String, Value> = map
                .iter()
                .filter(|(id, _)| ids.contains(&id.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if kept.is_empty() {
                return None;
            }
            out.insert("decisions".into(), Value::Object(kept));
        }
        Some(Value::Array(list)) => {
            let kept: Vec<Value> = list
                .iter()
                .filter(|d| d["call_id"].as_str().is_some_and(|id| ids.contains(&id)))
                .cloned()
                .collect();
            if kept.is_empty() {
                return None;
            }
            out.insert("decisions".into(), Value::Array(kept));
        }
        _ => {}
    }
    Some(Value::Object(out))
}

/// Forwards the decision `data`, given to the parent's step, to the child run's paths that
/// still wait for what `recorded` (the parent's [`parent_payload`]) says they waited for.
/// Returns the child paths the decision was forwarded to; each forward drives the child until
/// it finishes or suspends again before the next.
///
/// A path that is no longer suspended, or suspended for other calls, counts as answered
/// already (a forward before a crash, or a decision given to the child directly) and is
/// skipped, as is a run the engine will not resume (not suspended, or claimed by another
/// engine): the caller then just waits for the child.
pub async fn forward(
    engine: &Engine,
    child: &str,
    recorded: &Value,
    data: &Value,
) -> Result<Vec<String>, StepError> {
    let only = data.get("path").and_then(Value::as_str);
    let mut forwarded = Vec::new();
    for w in recorded["waiting"].as_array().into_iter().flatten() {
        let Some(path) = w["path"].as_str() else {
            continue;
        };
        if only.is_some_and(|p| p != path) {
            continue;
        }
        let was = &w["payload"];
        let run = engine
            .get(child)
            .await
            .map_err(|e| StepError::retryable(format!("reading the plan's run {child}: {e}")))?
            .ok_or_else(|| StepError::fatal(format!("the plan's run {child} is missing")))?;
        if run.status != RunStatus::Suspended {
            tracing::info!(run = child, path, status = %run.status, "the plan's run no longer waits: the decision was forwarded already");
            continue;
        }
        let still = run
            .suspended
            .iter()
            .any(|s| s.path == path && s.payload == *was);
        if !still {
            tracing::info!(
                run = child,
                path,
                "this path no longer waits for the recorded calls: answered already"
            );
            continue;
        }
        let decision = if is_tool_approval(was) {
            match decision_for(data, &call_ids(was)) {
                Some(d) => d,
                None => continue,
            }
        } else {
            let mut d = data.as_object().cloned().unwrap_or_default();
            d.remove("path");
            Value::Object(d)
        };
        match engine.spawn_resume(child, path, decision) {
            Ok(_) => {
                forwarded.push(path.to_owned());
                // The child is driven until it finishes or suspends again; the next path can
                // only be resumed then.
                let _ = wait_settled(engine, child).await?;
            }
            Err(
                EngineError::NotSuspended { .. }
                | EngineError::NotResumable { .. }
                | EngineError::Contended { .. },
            ) => {
                tracing::info!(
                    run = child,
                    path,
                    "the plan's run took this decision already"
                );
            }
            Err(e) => {
                return Err(StepError::retryable(format!(
                    "forwarding the decision to the plan's run {child} at `{path}`: {e}"
                )));
            }
        }
    }
    Ok(forwarded)
}

/// How often a child run driven by another process is looked at.
const POLL: Duration = Duration::from_millis(200);

/// Waits until `child` has finished or is suspended. A child left running by a dead process
/// is taken over ([`Engine::recover`]); one driven by another live process is looked at every
/// 200 ms until it stops.
async fn wait_settled(engine: &Engine, child: &str) -> Result<Run, StepError> {
    loop {
        let run = engine.wait(child).await.map_err(|e| {
            StepError::retryable(format!("waiting for the plan's run {child}: {e}"))
        })?;
        if run.status != RunStatus::Running {
            return Ok(run);
        }
        let taken = engine.recover().await.map_err(|e| {
            StepError::retryable(format!("taking over the plan's run {child}: {e}"))
        })?;
        if !taken.iter().any(|id| id == child) {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Waits for the child run as the parent's step: until it has finished or is suspended,
/// ending early (retryable) when the parent's step is cancelled.
pub async fn wait_child(ctx: &StepContext, engine: &Engine, child: &str) -> Result<Run, StepError> {
    tokio::select! {
        r = wait_settled(engine, child) => r,
        () = ctx.cancellation().cancelled() => Err(StepError::retryable(format!(
            "cancelled while waiting for the plan's run {child}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn per_call_decisions_are_narrowed_to_the_path_s_calls() {
        let data =
            json!({"decisions": {"a": {"approved": true}, "b": {"approved": false}}, "path": "x"});
        assert_eq!(
            decision_for(&data, &["b"]).unwrap(),
            json!({"decisions": {"b": {"approved": false}}})
        );
        assert!(decision_for(&data, &["c"]).is_none());
        let list = json!({"decisions": [{"call_id": "a", "approved": true}]});
        assert!(decision_for(&list, &["b"]).is_none());
        assert_eq!(
            decision_for(
                &json!({"approved": false, "reason": "no", "path": "p"}),
                &["a"]
            )
            .unwrap(),
            json!({"approved": false, "reason": "no"})
        );
    }

    #[test]
    fn the_parent_payload_names_the_child_its_paths_and_commands() {
        let s = vec![Suspension {
            path: "task-fix".into(),
            payload: json!({"kind": "tool-approval", "agent": "CodeGenAgent", "pending": [
                {"call_id": "c1", "tool": "shell", "arguments": {"command": "sed -i s/a/b/ f"}, "description": "Runs a command"}]}),
        }];
        let p = parent_payload("child-1", "plan-x", &s);
        assert_eq!(p["kind"], "tool-approval");
        assert_eq!(p["run"], "child-1");
        assert_eq!(p["path"], "task-fix");
        assert_eq!(p["pending"][0]["command"], "sed -i s/a/b/ f");
        assert_eq!(p["pending"][0]["path"], "task-fix");
        assert_eq!(p["waiting"][0]["payload"], s[0].payload);
        assert!(
            p["message"]
                .as_str()
                .unwrap()
                .contains("shell: sed -i s/a/b/ f")
        );
    }
}
