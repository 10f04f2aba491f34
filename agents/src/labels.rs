//! The label set IssueAgent chooses from: 52 labels in 9 groups, each `group:value` (the
//! original Miyabi's scheme, trimmed to what the presets act on). The IssueAgent's output
//! schema only admits these names, so a label that is not in the set is a schema violation (and
//! the agent gets one repair call), never a new label on the repository.

/// One label: its name (`group:value`), colour (hex, no `#`) and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Label {
    /// The name, `group:value`.
    pub name: &'static str,
    /// The colour GitHub shows, hex without `#`.
    pub color: &'static str,
    /// What the label means.
    pub description: &'static str,
}

const fn l(name: &'static str, color: &'static str, description: &'static str) -> Label {
    Label {
        name,
        color,
        description,
    }
}

/// Every label, grouped: `type:`, `priority:`, `severity:`, `state:`, `agent:`, `phase:`,
/// `effort:`, `area:`, `special:`.
pub const LABELS: &[Label] = &[
    // type (8)
    l(
        "type:bug",
        "d73a4a",
        "Something does not work as documented",
    ),
    l("type:feature", "a2eeef", "New functionality"),
    l(
        "type:refactor",
        "cfd3d7",
        "Code change that neither fixes a bug nor adds a feature",
    ),
    l("type:docs", "0075ca", "Documentation only"),
    l("type:test", "bfd4f2", "Tests only"),
    l("type:chore", "ededed", "Build, tooling, dependencies"),
    l(
        "type:security",
        "b60205",
        "A vulnerability or a hardening change",
    ),
    l("type:performance", "fbca04", "Speed or resource use"),
    // priority (4)
    l("priority:P0-critical", "b60205", "Drop everything"),
    l("priority:P1-high", "d93f0b", "Next up"),
    l("priority:P2-medium", "fbca04", "Planned"),
    l("priority:P3-low", "0e8a16", "When there is time"),
    // severity (4)
    l(
        "severity:critical",
        "b60205",
        "Data loss, security breach or outage",
    ),
    l(
        "severity:high",
        "d93f0b",
        "A main feature is broken, no workaround",
    ),
    l("severity:medium", "fbca04", "Broken with a workaround"),
    l("severity:low", "0e8a16", "Cosmetic or minor"),
    // state (8)
    l("state:pending", "ededed", "Not triaged yet"),
    l("state:analyzing", "c5def5", "IssueAgent is analysing it"),
    l(
        "state:planning",
        "c5def5",
        "CoordinatorAgent is planning it",
    ),
    l(
        "state:implementing",
        "1d76db",
        "CodeGenAgent is implementing it",
    ),
    l(
        "state:reviewing",
        "5319e7",
        "ReviewAgent is reviewing the change",
    ),
    l(
        "state:awaiting-approval",
        "f9d0c4",
        "Waits for a human at an approval gate",
    ),
    l("state:done", "0e8a16", "Resolved"),
    l("state:blocked", "b60205", "Cannot go on without help"),
    // agent (7)
    l("agent:coordinator", "7057ff", "For CoordinatorAgent"),
    l("agent:issue", "7057ff", "For IssueAgent"),
    l("agent:codegen", "7057ff", "For CodeGenAgent"),
    l("agent:review", "7057ff", "For ReviewAgent"),
    l("agent:pr", "7057ff", "For PRAgent"),
    l("agent:deployment", "7057ff", "For DeploymentAgent"),
    l("agent:refresher", "7057ff", "For RefresherAgent"),
    // phase (5)
    l("phase:planning", "d4c5f9", "Being planned"),
    l("phase:development", "d4c5f9", "Being built"),
    l("phase:testing", "d4c5f9", "Being tested"),
    l("phase:deployment", "d4c5f9", "Being deployed"),
    l("phase:maintenance", "d4c5f9", "Shipped, maintained"),
    // effort (4)
    l("effort:small", "c2e0c6", "Under an hour"),
    l("effort:medium", "c2e0c6", "Under a day"),
    l("effort:large", "c2e0c6", "Several days"),
    l("effort:epic", "c2e0c6", "Needs to be split"),
    // area (7)
    l("area:core", "bfdadc", "The engine or library core"),
    l("area:api", "bfdadc", "A public API or the HTTP API"),
    l("area:cli", "bfdadc", "Command-line tools"),
    l("area:ui", "bfdadc", "User interface"),
    l("area:ci", "bfdadc", "Continuous integration, release"),
    l("area:deps", "bfdadc", "Dependencies"),
    l("area:infra", "bfdadc", "Deployment and infrastructure"),
    // special (5)
    l("special:good-first-issue", "7057ff", "Good for newcomers"),
    l("special:help-wanted", "008672", "Extra attention is needed"),
    l("special:duplicate", "cfd3d7", "Already reported"),
    l("special:wontfix", "ffffff", "Will not be worked on"),
    l(
        "special:breaking-change",
        "b60205",
        "Changes a public interface incompatibly",
    ),
];

/// Whether `name` is in [`LABELS`].
pub fn is_label(name: &str) -> bool {
    LABELS.iter().any(|l| l.name == name)
}

/// The names of every label, in order.
pub fn names() -> Vec<&'static str> {
    LABELS.iter().map(|l| l.name).collect()
}
