//! # miyabi-agents
//!
//! The 21 Miyabi agents as presets on [`miyabi`]'s workflow system, GitHub integration, and the
//! issue-resolution pipeline.
//!
//! - Coding (7): [`coordinator`], [`issue`], [`codegen`], [`review`], [`pr`], [`deployment`],
//!   [`refresher`].
//! - Business (14): [`entrepreneur`], [`self_analysis`], [`market_research`], [`persona`],
//!   [`product_concept`], [`product_design`], [`content_creation`], [`funnel_design`],
//!   [`sns_strategy`], [`marketing`], [`sales`], [`crm`], [`analytics`], [`youtube`]; the
//!   pipeline of 13 of them: [`business::business_pipeline`].
//!
//! Each preset is a [`miyabi::Agent`]: instructions, tools, a typed output (a serde type with a
//! JSON Schema, also the agent's output schema, so answers are validated) and a default model
//! ([`DEFAULT_MODEL`], or `MIYABI_AGENTS_MODEL`) that `.model("provider/model")` overrides.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use miyabi_agents::{IssueAnalysis, issue};
//! let triage = issue().model("anthropic/claude-sonnet-4-5");
//! let answer = triage.generate("Crash when the config file is empty").await?;
//! let analysis: IssueAnalysis = serde_json::from_value(answer.object.unwrap_or_default())?;
//! println!("{:?} {:?}", analysis.kind, analysis.labels);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use miyabi::model::{EventStream, ModelRequest, ModelResponse};
use miyabi::{Agent, LanguageModel, ModelError};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

pub mod business;
pub mod child_approval;
pub mod coding;
pub mod commands;
#[cfg(feature = "github")]
pub mod github;
pub mod labels;
#[cfg(feature = "github")]
pub mod pipeline;
pub mod plan;
pub mod replay;
#[cfg(feature = "github")]
pub mod runner;
#[cfg(feature = "server")]
pub mod serve;

pub use business::{
    analytics, content_creation, crm, entrepreneur, funnel_design, market_research, marketing,
    persona, product_concept, product_design, sales, self_analysis, sns_strategy, youtube,
};
pub use coding::{
    CodeChange, DeployReport, Finding, IssueAnalysis, IssueKind, Priority, PullRequestDraft,
    RefreshReport, Review, Severity, StatusUpdate, codegen, coordinator, deployment, issue, pr,
    refresher, review,
};
pub use commands::{CheckResult, RepoCommands};
pub use plan::{Plan, PlanError, Task, TaskAgent};

/// The model a preset uses unless `MIYABI_AGENTS_MODEL` or `.model(..)` says otherwise.
pub const DEFAULT_MODEL: &str = "openai/gpt-4o";

/// The default model: `MIYABI_AGENTS_MODEL` when set, else [`DEFAULT_MODEL`].
pub fn default_model() -> String {
    std::env::var("MIYABI_AGENTS_MODEL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned())
}

/// Why a preset could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentsError {
    /// The workspace root is unusable.
    #[error("workspace: {0}")]
    Workspace(#[from] miyabi_code::WorkspaceError),
    /// Git could not be used there.
    #[error("git: {0}")]
    Git(#[from] miyabi_code::GitError),
    /// The shell tool could not be built.
    #[error("shell: {0}")]
    Shell(#[from] miyabi_code::shell::ShellError),
    /// The shell's permission policy is invalid (a bad pattern, a bad permissions file).
    #[error("permissions: {0}")]
    Policy(#[from] miyabi_code::policy::PolicyError),
    /// The repository's instructions could not be read.
    #[error("instructions: {0}")]
    Instructions(String),
}

impl From<std::io::Error> for AgentsError {
    fn from(e: std::io::Error) -> Self {
        AgentsError::Instructions(e.to_string())
    }
}

/// The default model of a preset, resolved on its first call: building a preset never fails
/// for a missing API key, and a preset whose model is replaced with `.model(..)` never needs one.
struct DefaultModel {
    spec: String,
    resolved: std::sync::OnceLock<Result<Arc<dyn LanguageModel>, String>>,
}

impl std::fmt::Debug for DefaultModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultModel")
            .field("spec", &self.spec)
            .finish()
    }
}

impl DefaultModel {
    fn get(&self) -> Result<&Arc<dyn LanguageModel>, ModelError> {
        self.resolved
            .get_or_init(|| {
                miyabi::model(&self.spec)
                    .map(|m| Arc::new(m) as Arc<dyn LanguageModel>)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ModelError::Unsupported(format!("the default model `{}`: {e}", self.spec)))
    }
}

#[async_trait::async_trait]
impl LanguageModel for DefaultModel {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.get()?.generate(req).await
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        self.get()?.stream(req).await
    }
}

/// A preset with the default model, its instructions and output type `T`.
pub(crate) fn preset<T: JsonSchema>(name: &str, instructions: &str) -> Agent {
    let model: Arc<dyn LanguageModel> = Arc::new(DefaultModel {
        spec: default_model(),
        resolved: std::sync::OnceLock::new(),
    });
    Agent::new(name)
        .model(model)
        .instructions(instructions)
        .output_type::<T>()
}

/// The JSON Schema of an output type, as the presets send it.
pub fn schema_of<T: JsonSchema>() -> Value {
    miyabi::tool::schema_of::<T>()
}

/// A preset described as data (for documentation and other languages): its name, the agent it
/// was in the original Miyabi, its group, instructions, tool names and output schema.
#[derive(Debug, Clone, Serialize)]
pub struct PresetInfo {
    /// The preset's function and agent name (`issue`, `market-research`).
    pub name: &'static str,
    /// Its original name (`IssueAgent`).
    pub agent: &'static str,
    /// `coding` or `business`.
    pub group: &'static str,
    /// The system instructions.
    pub instructions: String,
    /// Its tools' names.
    pub tools: Vec<&'static str>,
    /// The output's JSON Schema.
    pub output_schema: Value,
}

fn info<T: JsonSchema>(
    name: &'static str,
    agent: &'static str,
    group: &'static str,
    instructions: &str,
    tools: &[&'static str],
) -> PresetInfo {
    PresetInfo {
        name,
        agent,
        group,
        instructions: instructions.to_owned(),
        tools: tools.to_vec(),
        output_schema: schema_of::<T>(),
    }
}

/// All 21 presets as data.
pub fn catalog() -> Vec<PresetInfo> {
    use business as b;
    use coding as c;
    let business_input = |s: &str| format!("{s}{}", business::INPUT_NOTE);
    let ws: &[&str] = &[
        "read_file",
        "list_dir",
        "glob",
        "grep",
        "write_file",
        "edit",
        "apply_patch",
        "todo",
        "git_status",
        "git_diff",
        "repo_map",
        "find_symbol",
        "shell",
    ];
    vec![
        info::<Plan>(
            "coordinator",
            "CoordinatorAgent",
            "coding",
            c::COORDINATOR,
            &["list_agents"],
        ),
        info::<IssueAnalysis>("issue", "IssueAgent", "coding", c::ISSUE, &["label_set"]),
        info::<CodeChange>("codegen", "CodeGenAgent", "coding", c::CODEGEN, ws),
        info::<Review>(
            "review",
            "ReviewAgent",
            "coding",
            c::REVIEW,
            &["run_checks", "git_status", "git_diff", "read_file", "grep"],
        ),
        info::<PullRequestDraft>(
            "pr",
            "PRAgent",
            "coding",
            c::PR,
            &["git_status", "git_diff"],
        ),
        info::<DeployReport>(
            "deployment",
            "DeploymentAgent",
            "coding",
            c::DEPLOYMENT,
            &["deploy", "health_check", "rollback"],
        ),
        info::<RefreshReport>(
            "refresher",
            "RefresherAgent",
            "coding",
            c::REFRESHER,
            &["list_runs"],
        ),
        info::<b::BusinessPlan>(
            "entrepreneur",
            "AIEntrepreneurAgent",
            "business",
            &business_input(b::ENTREPRENEUR),
            &[],
        ),
        info::<b::SelfAnalysis>(
            "self-analysis",
            "SelfAnalysisAgent",
            "business",
            &business_input(b::SELF_ANALYSIS),
            &[],
        ),
        info::<b::MarketResearch>(
            "market-research",
            "MarketResearchAgent",
            "business",
            &business_input(b::MARKET_RESEARCH),
            &[],
        ),
        info::<b::Personas>(
            "persona",
            "PersonaAgent",
            "business",
            &business_input(b::PERSONA),
            &[],
        ),
        info::<b::ProductConcept>(
            "product-concept",
            "ProductConceptAgent",
            "business",
            &business_input(b::PRODUCT_CONCEPT),
            &[],
        ),
        info::<b::ProductDesign>(
            "product-design",
            "ProductDesignAgent",
            "business",
            &business_input(b::PRODUCT_DESIGN),
            &[],
        ),
        info::<b::ContentPlan>(
            "content-creation",
            "ContentCreationAgent",
            "business",
            &business_input(b::CONTENT_CREATION),
            &[],
        ),
        info::<b::Funnel>(
            "funnel-design",
            "FunnelDesignAgent",
            "business",
            &business_input(b::FUNNEL_DESIGN),
            &[],
        ),
        info::<b::SnsStrategy>(
            "sns-strategy",
            "SNSStrategyAgent",
            "business",
            &business_input(b::SNS_STRATEGY),
            &[],
        ),
        info::<b::MarketingPlan>(
            "marketing",
            "MarketingAgent",
            "business",
            &business_input(b::MARKETING),
            &[],
        ),
        info::<b::SalesProcess>(
            "sales",
            "SalesAgent",
            "business",
            &business_input(b::SALES),
            &[],
        ),
        info::<b::CrmPlan>("crm", "CRMAgent", "business", &business_input(b::CRM), &[]),
        info::<b::AnalyticsPlan>(
            "analytics",
            "AnalyticsAgent",
            "business",
            &business_input(b::ANALYTICS),
            &[],
        ),
        info::<b::YouTubePlan>(
            "youtube",
            "YouTubeAgent",
            "business",
            &business_input(b::YOUTUBE),
            &[],
        ),
    ]
}

/// A preset by its name (`issue`, `market-research`...; see [`catalog`]), for programs that
/// pick one at run time. Presets that work on a repository (`codegen`, `review`, `pr`,
/// `deployment`) use `root` and its commands; `refresher` an in-memory engine.
pub fn preset_by_name(name: &str, root: &std::path::Path) -> Result<Agent, AgentsError> {
    let commands =
        || RepoCommands::load(root).map_err(|e| AgentsError::Instructions(e.to_string()));
    Ok(match name {
        "coordinator" => coordinator(),
        "issue" => issue(),
        "codegen" => codegen(root, coding::CodegenOptions::default())?,
        "review" => review(root, commands()?)?,
        "pr" => pr(root)?,
        "deployment" => deployment(root, commands()?, false),
        "refresher" => refresher(miyabi::Engine::in_memory()),
        "entrepreneur" => entrepreneur(),
        "self-analysis" => self_analysis(),
        "market-research" => market_research(),
        "persona" => persona(),
        "product-concept" => product_concept(),
        "product-design" => product_design(),
        "content-creation" => content_creation(),
        "funnel-design" => funnel_design(),
        "sns-strategy" => sns_strategy(),
        "marketing" => marketing(),
        "sales" => sales(),
        "crm" => crm(),
        "analytics" => analytics(),
        "youtube" => youtube(),
        other => {
            return Err(AgentsError::Instructions(format!(
                "no preset named `{other}` (known: {})",
                catalog()
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    })
}
