#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The permission policy through its public API: patterns, every sub-command of compound lines,
//! wrappers, unresolvable lines, the TOML file, edit globs, and "always" answers.

use std::path::Path;

use miyabi_code::policy::{Policy, Reason, RuleSource, SharedPolicy, Verdict, always_rules};
use serde_json::json;

fn policy() -> Policy {
    Policy::new()
        .allow("cargo test:*")
        .unwrap()
        .allow("ls:*")
        .unwrap()
        .allow("echo:*")
        .unwrap()
        .allow("true")
        .unwrap()
        .allow("git status")
        .unwrap()
        .ask("git push*")
        .unwrap()
        .deny("rm -rf*")
        .unwrap()
}

fn v(line: &str) -> Verdict {
    policy().check_command(line).verdict
}

#[test]
fn patterns() {
    assert_eq!(v("cargo test"), Verdict::Allow);
    assert_eq!(v("cargo test --all -- --nocapture"), Verdict::Allow);
    assert_eq!(v("cargo testx"), Verdict::Ask, "`:*` needs a word boundary");
    assert_eq!(v("cargo build"), Verdict::Ask, "the default is ask");
    assert_eq!(v("git status"), Verdict::Allow);
    assert_eq!(
        v("git status --short"),
        Verdict::Ask,
        "exact patterns match exactly"
    );
    assert_eq!(v("git push origin main"), Verdict::Ask);
    assert_eq!(v("rm -rf /"), Verdict::Deny);
    assert_eq!(v("rm -rf"), Verdict::Deny);
    assert_eq!(v("rm -r x"), Verdict::Ask);
}

#[test]
fn deny_beats_ask_beats_allow_for_one_command() {
    let p = Policy::new()
        .allow("git:*")
        .unwrap()
        .ask("git push:*")
        .unwrap()
        .deny("git push --force:*")
        .unwrap();
    assert_eq!(p.check_command("git log").verdict, Verdict::Allow);
    assert_eq!(p.check_command("git push").verdict, Verdict::Ask);
    assert_eq!(p.check_command("git push --force").verdict, Verdict::Deny);
    // Global options do not hide the subcommand.
    assert_eq!(
        p.check_command("git -C . push --force").verdict,
        Verdict::Deny
    );
    assert_eq!(p.check_command("git -c a.b=c push").verdict, Verdict::Ask);
}

#[test]
fn every_sub_command_counts() {
    for line in [
        "true && rm -rf /",
        "true || rm -rf /",
        "true; rm -rf /",
        "ls | rm -rf /",
        "(rm -rf /)",
        "{ rm -rf /; }",
        "echo $(rm -rf /)",
        "echo `rm -rf /`",
        "echo \"$(rm -rf /)\"",
        "cat <(rm -rf /)",
        "X=1 rm -rf /",
        "'rm' -rf /",
        "\"rm\" '-rf' /",
        "r\\m -rf /",
        "/bin/rm -rf /",
        "bash -c 'rm -rf /'",
        "sh -c \"true && rm -rf /\"",
        "bash -c \"bash -c 'rm -rf /'\"",
        "sudo rm -rf /",
        "sudo -u root rm -rf /",
        "env FOO=1 rm -rf /",
        "timeout 10 rm -rf /",
        "nohup rm -rf / &",
        "echo / | xargs rm -rf",
        "find / -exec rm -rf {} \\;",
        "f() { rm -rf /; }; f",
        "if true; then rm -rf /; fi",
        "for d in /; do rm -rf $d; done",
        "while true; do rm -rf /; done",
        "ls && echo ok; (true | { echo $(echo `rm -rf /`); })",
        "cat <<EOF\n$(rm -rf /)\nEOF",
        "eval 'rm -rf /'",
        "rm -rf / &",
        "ls > >(rm -rf /)",
        "case x in x) rm -rf /;; esac",
        "X=$(rm -rf /)",
        "export Y=\"$(rm -rf /)\"",
        "watch rm -rf /",
        "command rm -rf /",
        "exec rm -rf /",
        "nice -n 5 rm -rf /",
        "time rm -rf /",
    ] {
        let d = policy().check_command(line);
        assert_eq!(d.verdict, Verdict::Deny, "{line}: {d:?}");
        let deciding = d.deciding().unwrap();
        match &deciding.reason {
            Reason::Rule { rule, .. } => assert_eq!(rule.pattern, "rm -rf*", "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    for line in [
        "cargo test && git push",
        "ls; git push --force",
        "echo $(git push)",
        "sudo git push",
    ] {
        assert_eq!(v(line), Verdict::Ask, "{line}");
    }
    for line in [
        "cargo test && ls -la",
        "ls | echo x; true",
        "(ls) && { echo hi; }",
        "echo $(ls)",
        "X=1 Y=\"a b\" cargo test",
        "bash -c 'ls && echo x'",
        "'ls' \"-la\"",
    ] {
        assert_eq!(v(line), Verdict::Allow, "{line}");
    }
}

#[test]
fn unresolved_lines_are_never_allowed() {
    let p = Policy::new().allow("*").unwrap();
    for line in [
        "$CMD arg",
        "${CMD} arg",
        "$(echo ls) -la",
        "eval ls",
        "echo ls | bash",
        "bash",
        "bash -c \"$SCRIPT\"",
        "env -S 'ls -la'",
        "PATH=/tmp/evil ls",
        "export LD_PRELOAD=/tmp/x.so; ls",
        "ls; if (",
        "{l,r}s",
        "l* -la",
        "sudo -s",
    ] {
        let d = p.check_command(line);
        assert_eq!(d.verdict, Verdict::Ask, "{line}: {d:?}");
        assert!(
            d.parts
                .iter()
                .any(|p| matches!(p.reason, Reason::Unresolved { .. })),
            "{line}"
        );
    }
    // Unresolved parts do not hide a deny.
    let p = Policy::new().deny("rm:*").unwrap();
    assert_eq!(p.check_command("$X; rm x").verdict, Verdict::Deny);
}

#[test]
fn words_known_only_at_run_time() {
    let p = Policy::new()
        .allow("cat:*")
        .unwrap()
        .allow("git:*")
        .unwrap()
        .deny("git push*")
        .unwrap();
    // `cat:*` covers any argument.
    assert_eq!(p.check_command("cat $FILE").verdict, Verdict::Allow);
    // `git $SUB` may be `git push`: not allowed, not certainly denied -> ask.
    let d = p.check_command("git $SUB");
    assert_eq!(d.verdict, Verdict::Ask);
    assert!(matches!(
        d.deciding().unwrap().reason,
        Reason::Rule { possibly: true, .. }
    ));
    assert_eq!(p.check_command("git push $REMOTE").verdict, Verdict::Deny);
    // An unquoted empty expansion vanishes: `git push $X` may be exactly `git push`.
    let exact = Policy::new()
        .allow("git:*")
        .unwrap()
        .deny("git push")
        .unwrap();
    assert_eq!(exact.check_command("git push $X").verdict, Verdict::Ask);
    assert_eq!(exact.check_command("git push x").verdict, Verdict::Allow);
    // Too many words known only at run time: unresolved.
    let d = Policy::new()
        .allow("echo:*")
        .unwrap()
        .check_command("echo $a $b $c $d $e $f $g");
    assert_eq!(d.verdict, Verdict::Ask);
}

#[test]
fn allow_rules_name_the_program_as_written() {
    let p = Policy::new().allow("ls:*").unwrap().deny("rm:*").unwrap();
    assert_eq!(p.check_command("/tmp/evil/ls").verdict, Verdict::Ask);
    assert_eq!(p.check_command("/usr/bin/rm x").verdict, Verdict::Deny);
    let p = Policy::new().allow("./scripts/test:*").unwrap();
    assert_eq!(
        p.check_command("./scripts/test --all").verdict,
        Verdict::Allow
    );
}

#[test]
fn defaults_and_empty_lines() {
    let p = Policy::new()
        .default_command(Verdict::Allow)
        .deny("rm:*")
        .unwrap();
    assert_eq!(p.check_command("cargo build").verdict, Verdict::Allow);
    assert_eq!(
        p.check_command("cargo build && rm x").verdict,
        Verdict::Deny
    );
    assert_eq!(p.check_command("").verdict, Verdict::Allow);
    assert!(Policy::new().allow("   ").is_err());
}

#[test]
fn recommended_rules() {
    let p = Policy::recommended();
    for line in [
        "rm -rf /",
        "rm -fr /",
        "rm -rf /*",
        "rm -rf ~",
        "rm -rf --no-preserve-root /",
        "true && rm -rf /",
        "echo $(rm -rf /)",
        "sudo rm -rf /",
    ] {
        assert_eq!(p.check_command(line).verdict, Verdict::Deny, "{line}");
    }
    assert_eq!(
        p.check_command("ls -la && git status").verdict,
        Verdict::Allow
    );
    assert_eq!(p.check_command("git push").verdict, Verdict::Ask);
    assert_eq!(p.check_command("rm -rf target").verdict, Verdict::Ask);
    assert_eq!(
        p.check_edit(Path::new(".git/hooks/pre-commit")).verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.check_edit(Path::new("src/lib.rs")).verdict,
        Verdict::Allow
    );
}

#[test]
fn the_toml_file() {
    let text = r#"
[commands]
default = "deny"
allow = ["cargo test:*", "git status"]
ask = ["git push*"]
deny = ["rm -rf*"]

[edits]
default = "ask"
allow = ["src/**"]
deny = ["**/*.pem", ".env"]
"#;
    let path = Path::new(".miyabi/permissions.toml");
    let p = Policy::from_toml(text, path).unwrap();
    assert_eq!(p.check_command("cargo test -p x").verdict, Verdict::Allow);
    assert_eq!(p.check_command("cargo build").verdict, Verdict::Deny);
    assert_eq!(p.check_command("git push").verdict, Verdict::Ask);
    let d = p.check_command("rm -rf x");
    let Reason::Rule { rule, .. } = &d.deciding().unwrap().reason else {
        panic!("{d:?}")
    };
    assert_eq!(
        rule.source,
        RuleSource::File {
            path: path.to_owned()
        }
    );
    assert!(
        d.to_string()
            .contains("deny rule `rm -rf*` (from .miyabi/permissions.toml)"),
        "{d}"
    );
    assert_eq!(
        p.check_edit(Path::new("src/a/b.rs")).verdict,
        Verdict::Allow
    );
    assert_eq!(
        p.check_edit(Path::new("src/keys/k.pem")).verdict,
        Verdict::Deny
    );
    assert_eq!(p.check_edit(Path::new(".env")).verdict, Verdict::Deny);
    assert_eq!(p.check_edit(Path::new("Cargo.toml")).verdict, Verdict::Ask);
    assert_eq!(
        p.check_edit(Path::new("docs/x.md")).rule,
        None,
        "the default has no rule"
    );

    // Round trip through to_toml.
    let again = Policy::from_toml(&p.to_toml(), path).unwrap();
    assert_eq!(
        again
            .command_rules()
            .map(|r| r.pattern.clone())
            .collect::<Vec<_>>(),
        p.command_rules()
            .map(|r| r.pattern.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(again.check_command("cargo build").verdict, Verdict::Deny);

    // Loading from disk.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("permissions.toml");
    std::fs::write(&file, text).unwrap();
    assert_eq!(
        Policy::load(&file)
            .unwrap()
            .check_command("git status")
            .verdict,
        Verdict::Allow
    );
}

#[test]
fn bad_files_name_what_is_wrong() {
    let path = Path::new("p.toml");
    let e = Policy::from_toml("[commands]\nallow = [\"\"]\n", path).unwrap_err();
    assert!(e.to_string().contains("[commands].allow"), "{e}");
    let e = Policy::from_toml("[commands]\nalow = [\"x\"]\n", path).unwrap_err();
    assert!(e.to_string().contains("alow"), "{e}");
    let e = Policy::from_toml("[edits]\ndeny = [\"a[\"]\n", path).unwrap_err();
    assert!(e.to_string().contains("[edits].deny"), "{e}");
    let e = Policy::from_toml("[commands]\ndefault = \"maybe\"\n", path).unwrap_err();
    assert!(e.to_string().contains("p.toml"), "{e}");
    let e = Policy::load(Path::new("/nonexistent/permissions.toml")).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/permissions.toml"),
        "{e}"
    );
}

#[test]
fn always_answers_become_rules() {
    let shared = SharedPolicy::new(Policy::new());
    let d = shared.check_command("cargo test --all");
    assert_eq!(d.verdict, Verdict::Ask);
    assert_eq!(d.suggestions(), vec!["cargo test:*".to_owned()]);

    let added = shared
        .remember(&json!({"approved": true, "always": "cargo test:*"}))
        .unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].verdict, Verdict::Allow);
    assert_eq!(added[0].source, RuleSource::Approval);
    assert_eq!(
        shared.check_command("cargo test -p y").verdict,
        Verdict::Allow
    );

    // Per-call decisions; a declined "always" denies.
    shared
        .remember(&json!({"decisions": {"c1": {"approved": false, "always": ["git push*"]}}}))
        .unwrap();
    assert_eq!(shared.check_command("git push").verdict, Verdict::Deny);
    // The policy can be saved with the remembered rules.
    let saved = Policy::from_toml(&shared.snapshot().to_toml(), Path::new("x")).unwrap();
    assert_eq!(saved.check_command("git push").verdict, Verdict::Deny);

    assert!(always_rules(&json!({"approved": true})).unwrap().is_empty());
    assert!(always_rules(&json!({"always": "x"})).is_err());
    assert!(always_rules(&json!({"approved": true, "always": 3})).is_err());
    assert!(always_rules(&json!({"approved": true, "always": [""]})).is_err());
}

#[test]
fn hostile_input_does_not_panic() {
    let p = Policy::recommended();
    let nested = "( ".repeat(50) + "rm -rf /" + &" )".repeat(50);
    assert_eq!(p.check_command(&nested).verdict, Verdict::Deny);
    let deep = "(".repeat(5000) + "rm -rf /" + &")".repeat(5000);
    assert_ne!(p.check_command(&deep).verdict, Verdict::Allow);
    let deep = "$(".repeat(3000) + "ls" + &")".repeat(3000);
    assert_ne!(p.check_command(&deep).verdict, Verdict::Allow);
    let nest = |levels: usize| {
        (0..levels).fold("rm -rf /".to_owned(), |acc, _| {
            format!("bash -c {}", double_quote(&acc))
        })
    };
    assert_eq!(p.check_command(&nest(5)).verdict, Verdict::Deny);
    // Past the nesting limit the rest is unresolved: still never allowed.
    let too_deep = Policy::new().allow("*").unwrap();
    assert_eq!(too_deep.check_command(&nest(11)).verdict, Verdict::Ask);
    for junk in [
        "\0",
        "\"",
        "'",
        "$(",
        "`",
        "<<",
        "\u{ffff}\u{0}$'\\x",
        "a\0b",
    ] {
        assert_ne!(p.check_command(junk).verdict, Verdict::Allow, "{junk:?}");
    }
}

fn double_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
