//! What runs around the issue-resolution workflow when a program drives it — `miyabi run
//! issue-resolution` and the TypeScript package `@miyabi/code` (`issueResolution`) both use
//! these: the issue read from a file or from GitHub (with its comments), the GitHub repository
//! taken from a git remote, and the runs already made for an issue (an unfinished one is
//! continued rather than started twice).

use std::path::Path;

use miyabi::{Engine, EngineError, RunFilter, RunStatus};
use serde_json::{Value, json};

use crate::github::{GitHubError, RepoRef};
use crate::pipeline::{self, GitHubTarget};

/// Why the issue could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The issue file could not be read, or is not an issue.
    #[error("issue file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// GitHub refused or failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
}

/// The issue in `path`, as the workflow's `issue` input: JSON `{number, title, body,
/// comments?}` when the file ends in `.json`, else Markdown (the first non-empty line is the
/// title, `#`s removed; the rest is the body). `number` replaces the file's number; without
/// either, the issue is number 1.
pub fn read_issue_file(path: &Path, number: Option<u64>) -> Result<Value, IssueError> {
    let bad = |reason: String| IssueError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if path.extension().is_some_and(|e| e == "json") {
        let mut v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if !v.is_object() {
            return Err(bad("not a JSON object {number, title, body}".into()));
        }
        if let Some(n) = number {
            v["number"] = json!(n);
        }
        if v["number"].as_u64().is_none() {
            v["number"] = json!(1);
        }
        return Ok(v);
    }
    let mut lines = text.lines();
    let title = lines
        .by_ref()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches('#').trim().to_owned())
        .ok_or_else(|| bad("empty".into()))?;
    let body: Vec<&str> = lines.collect();
    Ok(json!({"number": number.unwrap_or(1), "title": title, "body": body.join("\n").trim()}))
}

/// Issue `number` of the target's repository, with its labels and all its comments, as the
/// workflow's `issue` input.
pub async fn fetch_issue(gh: &GitHubTarget, number: u64) -> Result<Value, IssueError> {
    let issue = gh.client.issue(&gh.repo, number).await?;
    let comments = gh.client.comments(&gh.repo, number).await?;
    Ok(
        json!({"number": issue.number, "title": issue.title, "body": issue.body,
               "labels": issue.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
               "comments": comments.iter().map(|c| c.body.clone()).collect::<Vec<_>>()}),
    )
}

/// `owner/name` from a GitHub remote URL (`https://github.com/o/n.git`, `git@github.com:o/n`);
/// `None` for other hosts.
pub fn repo_from_remote(url: &str) -> Option<RepoRef> {
    let rest = url
        .split_once("github.com")
        .map(|(_, r)| r.trim_start_matches([':', '/']))?;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = rest.split('/');
    RepoRef::parse(&format!("{}/{}", parts.next()?, parts.next()?)).ok()
}

/// The URL of `remote` in the repository at `repo`, if it has one.
pub fn remote_url(repo: &Path, remote: &str) -> Option<String> {
    std::process::Command::new("git")
        .args(["remote", "get-url", remote])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// The runs of the issue-resolution workflow for issue `number`, newest first.
pub async fn runs_for_issue(engine: &Engine, number: u64) -> Result<Vec<miyabi::Run>, EngineError> {
    let runs = engine
        .list(&RunFilter {
            workflow: Some(pipeline::WORKFLOW_ID.into()),
            ..RunFilter::default()
        })
        .await?;
    Ok(runs
        .into_iter()
        .filter(|r| r.input["issue"]["number"].as_u64() == Some(number))
        .collect())
}

/// The run of issue `number` that is not finished (running, or suspended at the approval gate
/// or on a command), if any: the one to continue instead of starting a second.
pub async fn unfinished_run(
    engine: &Engine,
    number: u64,
) -> Result<Option<miyabi::Run>, EngineError> {
    Ok(runs_for_issue(engine, number)
        .await?
        .into_iter()
        .find(|r| matches!(r.status, RunStatus::Running | RunStatus::Suspended)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn remotes_on_github_name_the_repository() {
        let r = repo_from_remote("git@github.com:acme/calc.git").unwrap();
        assert_eq!((r.owner.as_str(), r.name.as_str()), ("acme", "calc"));
        let r = repo_from_remote("https://github.com/acme/calc/").unwrap();
        assert_eq!((r.owner.as_str(), r.name.as_str()), ("acme", "calc"));
        assert!(repo_from_remote("https://example.com/acme/calc.git").is_none());
    }

    #[test]
    fn issue_files_in_markdown_and_json() {
        let dir = std::env::temp_dir().join(format!("miyabi-issue-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let md = dir.join("ISSUE.md");
        std::fs::write(&md, "\n# It breaks\n\nWhen it runs.\n").unwrap();
        let v = read_issue_file(&md, Some(7)).unwrap();
        assert_eq!(
            v,
            json!({"number": 7, "title": "It breaks", "body": "When it runs."})
        );
        let js = dir.join("issue.json");
        std::fs::write(&js, r#"{"title": "T", "body": "B"}"#).unwrap();
        assert_eq!(read_issue_file(&js, None).unwrap()["number"], 1);
        std::fs::write(&js, "[1]").unwrap();
        let e = read_issue_file(&js, None).unwrap_err().to_string();
        assert!(
            e.contains("issue.json") && e.contains("not a JSON object"),
            "{e}"
        );
        std::fs::write(&md, "  \n").unwrap();
        assert!(
            read_issue_file(&md, None)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
