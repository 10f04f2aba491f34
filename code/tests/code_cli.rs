//! `miyabi-code` end to end, as a subprocess: a scripted model (a loopback server replaying a
//! recorded OpenAI-style conversation) drives the agent on a small git repository with a failing
//! test; the agent greps, reads, edits, runs the test in the sandbox and commits.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// One model reply: a tool call, or the final text.
enum Reply {
    Call(&'static str, &'static str, Value),
    Text(&'static str),
}

const USAGE: fn() -> Value =
    || json!({"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110});

impl Reply {
    /// The reply as the provider sends it: streamed (SSE chunks) or as one JSON body.
    fn render(&self, stream: bool) -> String {
        let (message, finish) = match self {
            Reply::Call(id, name, args) => (
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"index": 0, "id": id, "type": "function",
                     "function": {"name": name, "arguments": args.to_string()}}]}),
                "tool_calls",
            ),
            Reply::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
        };
        if !stream {
            return json!({"id": "r", "object": "chat.completion", "created": 0, "model": "deepseek-chat",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": USAGE()})
            .to_string();
        }
        let first = json!({"id": "r", "object": "chat.completion.chunk", "created": 0, "model": "deepseek-chat",
            "choices": [{"index": 0, "delta": message, "finish_reason": null}]});
        let last = json!({"id": "r", "object": "chat.completion.chunk", "created": 0, "model": "deepseek-chat",
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": USAGE()});
        format!("data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n")
    }
}

fn tool_call(id: &'static str, name: &'static str, args: Value) -> Reply {
    Reply::Call(id, name, args)
}

fn text(t: &'static str) -> Reply {
    Reply::Text(t)
}

/// Serves `replies` in order to POST .../chat/completions; records the request bodies.
fn scripted_model(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut replies = replies.into_iter();
        for conn in listener.incoming() {
            let Ok(mut sock) = conn else { return };
            let mut buf = Vec::new();
            let mut tmp = [0u8; 65536];
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p;
                }
                let n = sock.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break usize::MAX;
                }
                buf.extend_from_slice(&tmp[..n]);
            };
            if head_end == usize::MAX {
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < head_end + 4 + len {
                let n = sock.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let body: Value = serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len])
                .unwrap_or(Value::Null);
            let stream = body["stream"] == true;
            log.lock().unwrap().push(body);
            let (status, payload) = match replies.next() {
                Some(r) => ("200 OK", r.render(stream)),
                None => (
                    "400 Bad Request",
                    json!({"error": {"message": "script exhausted"}}).to_string(),
                ),
            };
            let ctype = if status.starts_with("200") && stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            let _ = write!(
                sock,
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    (url, seen)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository whose test fails: `calc.sh` subtracts where it should add.
fn failing_repo(dir: &Path) {
    std::fs::write(
        dir.join("calc.sh"),
        "#!/bin/sh\n# Adds two numbers.\necho $(($1 - $2))\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("test.sh"),
        "#!/bin/sh\n[ \"$(sh calc.sh 2 3)\" = \"5\" ] || { echo \"FAIL: calc.sh 2 3 is $(sh calc.sh 2 3), not 5\"; exit 1; }\necho ok\n",
    )
    .unwrap();
    std::fs::write(dir.join("AGENTS.md"), "Run the tests with `sh test.sh`.\n").unwrap();
    std::fs::write(dir.join(".gitignore"), ".miyabi/\n").unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "dev@example.com"]);
    git(dir, &["config", "user.name", "Dev"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "chore: calc and its test"]);
}

#[test]
fn miyabi_code_fixes_a_failing_test_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    failing_repo(repo);
    let before = Command::new("sh")
        .arg("test.sh")
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(!before.status.success(), "the test fails at first");

    let (url, seen) = scripted_model(vec![
        tool_call("c1", "grep", json!({"pattern": "echo"})),
        tool_call("c2", "read_file", json!({"path": "calc.sh"})),
        tool_call(
            "c3",
            "edit",
            json!({"path": "calc.sh", "old_string": "$(($1 - $2))", "new_string": "$(($1 + $2))"}),
        ),
        tool_call("c4", "shell", json!({"command": "sh test.sh"})),
        tool_call("c5", "git_add", json!({"paths": ["calc.sh"]})),
        tool_call(
            "c6",
            "git_commit",
            json!({"message": "fix: calc.sh adds its arguments"}),
        ),
        text("Fixed calc.sh: it subtracted instead of adding. `sh test.sh` passes; committed."),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_miyabi-code"))
        .args([
            "--json",
            "--yes",
            "--model",
            "deepseek/deepseek-chat",
            "--workspace",
        ])
        .arg(repo)
        .arg("fix the failing test")
        .env("DEEPSEEK_BASE_URL", &url)
        .env("DEEPSEEK_API_KEY", "sk-test-not-a-secret")
        .env_remove("MIYABI_CODE_MODEL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    // One JSON event per line: the session, the tool calls and results, the end.
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "session");
    let called: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "tool_call")
        .map(|e| e["call"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        called,
        [
            "grep",
            "read_file",
            "edit",
            "shell",
            "git_add",
            "git_commit"
        ]
    );
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_result" && e["result"]["is_error"] == true)
        .collect();
    assert!(failed.is_empty(), "tool errors: {failed:?}");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done", "{done}");
    assert!(done["text"].as_str().unwrap().contains("Fixed calc.sh"));

    // The repository ends with the test passing and the fix committed.
    let after = Command::new("sh")
        .arg("test.sh")
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    assert_eq!(
        git(repo, &["log", "-1", "--format=%s"]),
        "fix: calc.sh adds its arguments"
    );
    assert_eq!(
        git(repo, &["status", "--porcelain"]),
        "",
        "nothing left uncommitted"
    );

    // The model saw the project's instructions, and every tool result went back to it.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 7);
    let system = requests[0]["messages"][0]["content"].to_string();
    assert!(
        system.contains("sh test.sh"),
        "AGENTS.md is in the system prompt: {system}"
    );
    let last = requests[6]["messages"].as_array().unwrap();
    let test_run = last
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "c4")
        .unwrap();
    assert!(test_run["content"].to_string().contains("ok"), "{test_run}");
}

#[test]
fn miyabi_code_refuses_an_unknown_sandbox_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_miyabi-code"))
        .args(["--sandbox", "none", "--workspace"])
        .arg(dir.path())
        .arg("x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sandbox `none`"));
}

/// The session id the CLI printed (`session <id> in <dir>`), from its first stdout line.
fn session_of(first_line: &str) -> String {
    first_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_request_waiting_for_approval_survives_the_terminal_and_resumes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    failing_repo(repo);
    let (url, seen) = scripted_model(vec![
        tool_call("c1", "shell", json!({"command": "sh calc.sh 2 3"})),
        text("calc.sh 2 3 prints -1."),
    ]);
    // Without --yes the policy's "ask" for `sh` waits for a human on the terminal...
    let mut child = Command::new(env!("CARGO_BIN_EXE_miyabi-code"))
        .args(["--model", "deepseek/deepseek-chat", "--workspace"])
        .arg(repo)
        .arg("what does calc.sh print for 2 3?")
        .env("DEEPSEEK_BASE_URL", &url)
        .env("DEEPSEEK_API_KEY", "sk-test-not-a-secret")
        .env_remove("MIYABI_CODE_MODEL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let session = session_of(&lines.next().unwrap().unwrap());
    assert!(session.starts_with("s-"), "{session}");
    for line in lines.by_ref() {
        if line.unwrap().contains("allow?") {
            break;
        }
    }
    // ...and the terminal goes away while it waits.
    child.kill().unwrap();
    child.wait().unwrap();
    let pending = repo.join(".miyabi/pending").join(format!("{session}.json"));
    assert!(pending.exists(), "the waiting request is on disk");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // `--resume` finds it, asks again (here: --yes), runs the command and finishes the request.
    let out = Command::new(env!("CARGO_BIN_EXE_miyabi-code"))
        .args([
            "--json",
            "--yes",
            "--resume",
            "--model",
            "deepseek/deepseek-chat",
            "--workspace",
        ])
        .arg(repo)
        .env("DEEPSEEK_BASE_URL", &url)
        .env("DEEPSEEK_API_KEY", "sk-test-not-a-secret")
        .env_remove("MIYABI_CODE_MODEL")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["session"], session.as_str());
    assert!(events.iter().any(|e| e["type"] == "resumed"), "{stdout}");
    let result = events
        .iter()
        .find(|e| e["type"] == "tool_result")
        .expect("the approved command ran");
    assert!(
        result["result"]["content"].to_string().contains("-1"),
        "{result}"
    );
    assert!(events.iter().any(|e| e["type"] == "done"));
    assert!(!pending.exists(), "done: nothing waits any more");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "the first turn was not asked again");
}

#[test]
fn undo_takes_back_the_last_edit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    failing_repo(repo);
    let (url, _) = scripted_model(vec![
        tool_call(
            "c1",
            "edit",
            json!({"path": "calc.sh", "old_string": "$(($1 - $2))", "new_string": "$(($1 + $2))"}),
        ),
        tool_call(
            "c2",
            "write_file",
            json!({"path": "NOTES.md", "content": "calc fixed\n"}),
        ),
        text("Fixed and noted."),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_miyabi-code"))
        .args([
            "--json",
            "--yes",
            "--model",
            "deepseek/deepseek-chat",
            "--workspace",
        ])
        .arg(repo)
        .env("DEEPSEEK_BASE_URL", &url)
        .env("DEEPSEEK_API_KEY", "sk-test-not-a-secret")
        .env_remove("MIYABI_CODE_MODEL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"fix calc and take a note\n/undo\n/undo\n/undo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let undos: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "undo")
        .collect();
    assert_eq!(undos.len(), 3);
    assert_eq!(
        undos[0]["files"],
        json!(["NOTES.md"]),
        "the newest edit first"
    );
    assert_eq!(undos[1]["files"], json!(["calc.sh"]));
    assert_eq!(undos[2]["text"], "nothing to undo");
    assert!(
        !repo.join("NOTES.md").exists(),
        "a file the edit created is removed"
    );
    assert_eq!(
        git(repo, &["status", "--porcelain"]),
        "",
        "calc.sh is as it was"
    );
}
