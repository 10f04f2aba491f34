#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The shell tool through its public API: working directory, clean environment, timeout,
//! output caps, policy errors, and per-call approval in an agent's loop (a scripted model).

mod shell_support;

use std::time::Duration;

use miyabi::agent::StopReason;
use miyabi::tool::Tool;
use miyabi::{Agent, ToolContext};
use miyabi_code::policy::{Policy, Verdict};
use miyabi_code::shell::{SandboxMode, ShellConfig, ShellError, ShellTool};
use serde_json::{Value, json};
use shell_support::{Scripted, calls, last_tool_results, text};

fn allow_all() -> Policy {
    Policy::new().default_command(Verdict::Allow)
}

#[tokio::test]
async fn runs_in_the_workspace_root() {
    let ws = tempfile::tempdir().unwrap();
    let t = ShellTool::new(ShellConfig::new(ws.path()), allow_all()).unwrap();
    let r = t.run("pwd; echo err >&2; exit 3", None).await.unwrap();
    let root = std::fs::canonicalize(ws.path()).unwrap();
    assert_eq!(r.stdout.trim_end(), root.to_str().unwrap());
    assert_eq!(r.stderr, "err\n");
    assert_eq!(r.exit_code, Some(3));
    assert!(!r.timed_out && !r.truncated);
}

#[tokio::test]
async fn the_environment_is_an_allowlist() {
    let ws = tempfile::tempdir().unwrap();
    let parent = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/home/dev"),
        ("LANG", "C.UTF-8"),
        ("OPENAI_API_KEY", "sk-secret-value"),
        ("GITHUB_TOKEN", "ghp_secret"),
        ("NPM_TOKEN", "npm-secret"),
    ];
    for mode in [SandboxMode::WorkspaceWrite, SandboxMode::FullAccess] {
        let t = ShellTool::new(
            ShellConfig::new(ws.path())
                .sandbox(mode)
                .inherit_from(parent)
                .set_env("CI", "1"),
            allow_all(),
        )
        .unwrap();
        let r = t.run("env", None).await.unwrap();
        assert!(r.stdout.contains("HOME=/home/dev\n"), "{}", r.stdout);
        assert!(r.stdout.contains("LANG=C.UTF-8\n"));
        assert!(r.stdout.contains("CI=1\n"));
        for secret in ["OPENAI_API_KEY", "GITHUB_TOKEN", "NPM_TOKEN", "secret"] {
            assert!(
                !r.stdout.contains(secret),
                "{mode:?} leaked {secret}: {}",
                r.stdout
            );
        }
    }
    // The configuration's Debug output names variables but shows no value.
    let cfg = ShellConfig::new(ws.path())
        .inherit_from(parent)
        .set_env("DEPLOY_KEY", "set-secret");
    let shown = format!("{cfg:?}");
    assert!(shown.contains("DEPLOY_KEY"), "{shown}");
    for secret in ["sk-secret-value", "ghp_secret", "set-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // Named explicitly, a token is passed.
    let t = ShellTool::new(
        ShellConfig::new(ws.path())
            .inherit_from(parent)
            .pass_env("GITHUB_TOKEN"),
        allow_all(),
    )
    .unwrap();
    let r = t
        .run("echo \"$GITHUB_TOKEN|$OPENAI_API_KEY\"", None)
        .await
        .unwrap();
    assert_eq!(r.stdout, "ghp_secret|\n");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_tree() {
    let ws = tempfile::tempdir().unwrap();
    for mode in [SandboxMode::WorkspaceWrite, SandboxMode::FullAccess] {
        let t = ShellTool::new(ShellConfig::new(ws.path()).sandbox(mode), allow_all()).unwrap();
        // A background child keeps the output pipe open; it must die with the command.
        let r = t
            .run(
                "echo started; (sleep 300; echo late) & sleep 300",
                Some(Duration::from_millis(300)),
            )
            .await
            .unwrap();
        assert!(r.timed_out, "{mode:?}: {r:?}");
        assert_eq!(r.exit_code, None);
        assert_eq!(r.stdout, "started\n", "{mode:?}");
    }
    // Through the tool: the model is told.
    let t = ShellTool::new(
        ShellConfig::new(ws.path()).default_timeout(Duration::from_millis(200)),
        allow_all(),
    )
    .unwrap();
    let v = t
        .call(
            &ToolContext::detached("a", "c"),
            json!({"command": "sleep 300"}),
        )
        .await
        .unwrap();
    assert_eq!(v["timed_out"], json!(true));
    assert_eq!(v["note"], json!("the command timed out and was killed"));
}

#[tokio::test]
async fn long_output_is_cut_in_the_middle_with_a_note() {
    let ws = tempfile::tempdir().unwrap();
    let t = ShellTool::new(ShellConfig::new(ws.path()).max_output(3000), allow_all()).unwrap();
    let r = t
        .run("echo FIRST; seq 1 100000; echo LAST; seq 1 50 >&2", None)
        .await
        .unwrap();
    assert!(r.truncated);
    assert!(r.stdout.starts_with("FIRST\n1\n2\n"), "{}", &r.stdout[..50]);
    assert!(r.stdout.ends_with("100000\nLAST\n"));
    assert!(
        r.stdout.contains("bytes cut: the output had 588906 bytes"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.len() < 3200, "{}", r.stdout.len());
    assert_eq!(
        r.stderr.lines().count(),
        50,
        "stderr under the cap is whole"
    );
    let r = t.run("echo short", None).await.unwrap();
    assert!(!r.truncated);
    assert_eq!(r.stdout, "short\n");
}

#[tokio::test]
async fn denied_commands_name_the_rule() {
    let ws = tempfile::tempdir().unwrap();
    let policy = Policy::new()
        .default_command(Verdict::Allow)
        .deny("curl:*")
        .unwrap();
    let t = ShellTool::new(ShellConfig::new(ws.path()), policy).unwrap();
    for line in [
        "curl http://127.0.0.1:1/",
        "true && curl x",
        "echo $(curl x)",
        "ls | xargs curl",
    ] {
        let e = t
            .call(&ToolContext::detached("a", "c"), json!({"command": line}))
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("denies this command") && msg.contains("deny rule `curl:*` (from code)"),
            "{line}: {msg}"
        );
        assert!(
            !t.approval(&json!({"command": line})),
            "a deny needs no approval"
        );
    }
    assert!(matches!(
        t.run("  ", None).await.unwrap_err(),
        ShellError::Empty
    ));
}

#[tokio::test]
async fn the_agent_waits_for_approval_only_when_the_policy_asks() {
    let ws = tempfile::tempdir().unwrap();
    let policy = Policy::new().allow("echo:*").unwrap().deny("rm:*").unwrap();
    let shell = ShellTool::new(ShellConfig::new(ws.path()), policy).unwrap();
    let model = Scripted::new(vec![
        calls(&[
            ("c1", "shell", json!({"command": "echo hello"})),
            (
                "c2",
                "shell",
                json!({"command": "echo a && touch made.txt"}),
            ),
            ("c3", "shell", json!({"command": "true; rm -rf ."})),
        ]),
        text("done"),
        calls(&[("c4", "shell", json!({"command": "touch again.txt"}))]),
        text("done again"),
    ]);
    let agent = Agent::new("coder").model(model.clone()).tool(shell.clone());

    let r = agent.generate("work").await.unwrap();
    assert_eq!(r.stop, StopReason::ApprovalRequired);
    let pending: Vec<&str> = r.pending.iter().map(|p| p.call_id.as_str()).collect();
    assert_eq!(pending, ["c2"], "only the asked command waits");
    assert!(!ws.path().join("made.txt").exists());

    // `touch` asks by default; the human approves and says "always" for it. (An "always" allow
    // rule cannot beat a configured ask rule: deny > ask > allow holds for every rule.)
    let decision = json!({"approved": true, "always": "touch:*"});
    let added = shell.policy().remember(&decision).unwrap();
    assert_eq!(added[0].pattern, "touch:*");
    let r = agent
        .resume(r.checkpoint.unwrap(), &decision)
        .await
        .unwrap();
    assert_eq!(r.text, "done");
    assert!(ws.path().join("made.txt").exists());
    let results = last_tool_results(&model.requests()[1]);
    assert_eq!(results[0].content["stdout"], json!("hello\n"));
    assert!(!results[1].is_error);
    assert!(results[2].is_error, "the denied call is an error result");
    let denied = results[2].content.as_str().unwrap();
    assert!(denied.contains("deny rule `rm:*`"), "{denied}");

    // "Always" holds: the next touch runs without asking.
    let r = agent.generate("more").await.unwrap();
    assert_eq!(r.stop, StopReason::Done, "{:?}", r.pending);
    assert_eq!(r.text, "done again");
    assert!(ws.path().join("again.txt").exists());
}

#[tokio::test]
async fn the_tool_describes_itself() {
    let ws = tempfile::tempdir().unwrap();
    let t = ShellTool::new(ShellConfig::new(ws.path()), Policy::recommended()).unwrap();
    assert_eq!(t.name(), "shell");
    assert!(t.description().contains("workspace-write"));
    let p: Value = t.parameters();
    assert_eq!(p["required"], json!(["command"]));
    assert!(t.approval(&json!({"command": "git push"})));
    assert!(!t.approval(&json!({"command": "git status && ls"})));
    let bad = ShellTool::new(ShellConfig::new(ws.path().join("missing")), Policy::new());
    assert!(matches!(bad.unwrap_err(), ShellError::BadWorkspace { .. }));
}

#[tokio::test]
async fn from_workspace_reads_the_permission_file() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join(".miyabi")).unwrap();
    std::fs::write(
        ws.path().join(".miyabi/permissions.toml"),
        "[commands]\nallow = [\"cargo test:*\"]\ndeny = [\"git push*\"]\n",
    )
    .unwrap();
    let t = miyabi_code::shell::from_workspace(ShellConfig::new(ws.path())).unwrap();
    assert_eq!(t.decide("cargo test -q").verdict, Verdict::Allow);
    assert_eq!(t.decide("git push").verdict, Verdict::Deny);
    assert_eq!(
        t.decide("rm -rf /").verdict,
        Verdict::Deny,
        "built-in rules stay"
    );
    std::fs::write(ws.path().join(".miyabi/permissions.toml"), "[commands\n").unwrap();
    let e = miyabi_code::shell::from_workspace(ShellConfig::new(ws.path())).unwrap_err();
    assert!(e.to_string().contains("permissions.toml"), "{e}");
}

/// An asked command inside a workflow: the run suspends in its SQLite file; a new engine (another
/// process, days later) resumes it with the human's decision and the command runs then.
#[tokio::test]
async fn an_asked_command_suspends_a_durable_run_until_approved() {
    use miyabi::{Engine, RunStatus, Workflow};

    let ws = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let db = db.path().join("runs.db");
    let wf_for = |model: std::sync::Arc<Scripted>| {
        let shell = ShellTool::new(
            ShellConfig::new(ws.path()),
            Policy::new().allow("ls:*").unwrap(),
        )
        .unwrap();
        let agent = Agent::new("coder").model(model).tool(shell);
        Workflow::new("fix").step("code", agent).commit().unwrap()
    };

    let first = Scripted::new(vec![calls(&[(
        "c1",
        "shell",
        json!({"command": "ls && touch fixed.txt"}),
    )])]);
    let run_id = {
        let engine = Engine::sqlite(&db).unwrap();
        let run = engine.start(&wf_for(first), json!("fix it")).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        let payload = &run.suspended[0].payload;
        assert_eq!(payload["kind"], "tool-approval");
        assert_eq!(
            payload["pending"][0]["arguments"]["command"],
            "ls && touch fixed.txt"
        );
        run.id
    };
    assert!(
        !ws.path().join("fixed.txt").exists(),
        "nothing ran before the approval"
    );

    let second = Scripted::new(vec![text("Fixed.")]);
    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&wf_for(second.clone()));
    let run = engine
        .resume(&run_id, "code", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Fixed.")));
    assert!(ws.path().join("fixed.txt").exists());
    let result = &last_tool_results(&second.requests()[0])[0];
    assert_eq!(result.content["exit_code"], json!(0));
}
