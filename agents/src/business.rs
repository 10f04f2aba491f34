//! The 14 business agents, each with a typed output, and the business pipeline: AIEntrepreneur →
//! SelfAnalysis → MarketResearch → Persona → ProductConcept → ProductDesign → ContentCreation →
//! FunnelDesign → SNSStrategy → Marketing → Sales → CRM → Analytics, where each stage gets the
//! founder's brief and every previous stage's output, with approval gates where a founder reviews
//! (and may edit) the plan so far before the next stage.

use std::sync::Arc;

use miyabi::approval::ApprovalGate;
use miyabi::{
    Agent, CommittedWorkflow, LanguageModel, Step, StepContext, StepError, Workflow, WorkflowError,
    step_fn,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::preset;

// ---------------------------------------------------------------------------------------------
// Output types

/// A dated goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Milestone {
    /// Months from now.
    pub month: u32,
    /// What is reached.
    pub goal: String,
}

/// AIEntrepreneurAgent's output: the whole business plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BusinessPlan {
    /// The vision, one sentence.
    pub vision: String,
    /// Who the business serves.
    pub target_market: String,
    /// Why they buy.
    pub value_proposition: String,
    /// How it earns money.
    pub revenue_streams: Vec<String>,
    /// The next milestones.
    pub milestones: Vec<Milestone>,
    /// What could go wrong.
    pub risks: Vec<String>,
}

/// SelfAnalysisAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SelfAnalysis {
    /// Strengths.
    pub strengths: Vec<String>,
    /// Weaknesses.
    pub weaknesses: Vec<String>,
    /// Relevant experience.
    pub experience: Vec<String>,
    /// Work to show.
    pub portfolio: Vec<String>,
    /// Where the strengths meet a need.
    pub opportunities: Vec<String>,
}

/// A competitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Competitor {
    /// Its name.
    pub name: String,
    /// What it sells.
    pub offering: String,
    /// Its price, as stated.
    #[serde(default)]
    pub price: Option<String>,
    /// Where it is strong.
    pub strength: String,
    /// Where it is weak.
    pub weakness: String,
}

/// MarketResearchAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketResearch {
    /// The market's size, with its source or reasoning.
    pub market_size: String,
    /// Trends.
    pub trends: Vec<String>,
    /// Competitors (the original asked for 20 or more; as many as are known).
    pub competitors: Vec<Competitor>,
    /// Needs nobody serves well.
    pub gaps: Vec<String>,
}

/// One stage of a customer journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JourneyStage {
    /// The stage (awareness, consideration, purchase, use, advocacy...).
    pub stage: String,
    /// Where the persona meets the product.
    pub touchpoint: String,
    /// What they feel or think.
    pub emotion: String,
}

/// A target persona.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Persona {
    /// A name for them.
    pub name: String,
    /// Age.
    pub age: u32,
    /// Occupation.
    pub occupation: String,
    /// What they want.
    pub goals: Vec<String>,
    /// What hurts.
    pub pains: Vec<String>,
    /// Their journey.
    pub journey: Vec<JourneyStage>,
}

/// PersonaAgent's output: 3 to 5 personas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Personas {
    /// The personas.
    #[schemars(length(min = 3, max = 5))]
    pub personas: Vec<Persona>,
}

/// The nine blocks of a business model canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BusinessModelCanvas {
    /// Key partners.
    pub key_partners: Vec<String>,
    /// Key activities.
    pub key_activities: Vec<String>,
    /// Key resources.
    pub key_resources: Vec<String>,
    /// Value propositions.
    pub value_propositions: Vec<String>,
    /// Customer relationships.
    pub customer_relationships: Vec<String>,
    /// Channels.
    pub channels: Vec<String>,
    /// Customer segments.
    pub customer_segments: Vec<String>,
    /// Cost structure.
    pub cost_structure: Vec<String>,
    /// Revenue streams.
    pub revenue_streams: Vec<String>,
}

/// ProductConceptAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductConcept {
    /// The product in one line.
    pub name: String,
    /// The unique selling proposition.
    pub usp: String,
    /// How it earns money.
    pub revenue_model: String,
    /// The business model canvas.
    pub canvas: BusinessModelCanvas,
}

/// One month of a content plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MonthPlan {
    /// Month 1 to 6.
    pub month: u32,
    /// The month's theme.
    pub theme: String,
    /// What ships that month.
    pub deliverables: Vec<String>,
}

/// ProductDesignAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductDesign {
    /// What the first version must do.
    pub mvp_features: Vec<String>,
    /// The technology.
    pub tech_stack: Vec<String>,
    /// A six-month plan.
    #[schemars(length(min = 6, max = 6))]
    pub content_plan: Vec<MonthPlan>,
}

/// One piece of content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContentPiece {
    /// video, article, tutorial, newsletter...
    pub format: String,
    /// Its title.
    pub title: String,
    /// Where it is published.
    pub channel: String,
    /// Week of publication, from 1.
    pub week: u32,
}

/// ContentCreationAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContentPlan {
    /// The pieces, in publication order.
    pub pieces: Vec<ContentPiece>,
}

/// A stage of a funnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FunnelStage {
    /// awareness, interest, purchase, retention, referral...
    pub name: String,
    /// What it must achieve.
    pub goal: String,
    /// How.
    pub tactics: Vec<String>,
    /// How it is measured.
    pub kpi: String,
}

/// FunnelDesignAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Funnel {
    /// From awareness to lifetime value.
    pub stages: Vec<FunnelStage>,
    /// How lifetime value grows.
    pub ltv_strategy: String,
}

/// A platform's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlatformPlan {
    /// The platform.
    pub platform: String,
    /// Who is reached there.
    pub audience: String,
    /// Posts per week.
    pub posts_per_week: u32,
    /// Content pillars.
    pub pillars: Vec<String>,
}

/// A calendar entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CalendarEntry {
    /// Week, from 1.
    pub week: u32,
    /// The platform.
    pub platform: String,
    /// The topic.
    pub topic: String,
}

/// SNSStrategyAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnsStrategy {
    /// Per platform.
    pub platforms: Vec<PlatformPlan>,
    /// The first weeks' calendar.
    pub calendar: Vec<CalendarEntry>,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Campaign {
    /// Its name.
    pub name: String,
    /// ads, seo, social, email...
    pub channel: String,
    /// Budget in USD.
    pub budget_usd: f64,
    /// The goal.
    pub goal: String,
    /// How it is measured.
    pub kpi: String,
}

/// MarketingAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketingPlan {
    /// Campaigns.
    pub campaigns: Vec<Campaign>,
    /// Keywords to rank for.
    pub seo_keywords: Vec<String>,
}

/// A stage of the sales process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SalesStage {
    /// lead, qualified, demo, proposal, closed...
    pub name: String,
    /// What the seller does.
    pub actions: Vec<String>,
    /// When a lead moves on.
    pub exit_criteria: String,
}

/// SalesAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SalesProcess {
    /// From lead to customer.
    pub stages: Vec<SalesStage>,
    /// Monthly targets.
    pub monthly_targets: Vec<String>,
}

/// CRMAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CrmPlan {
    /// Customer segments and how each is treated.
    pub segments: Vec<String>,
    /// How satisfaction is measured (NPS, CSAT...).
    pub satisfaction_metrics: Vec<String>,
    /// What keeps customers.
    pub retention_actions: Vec<String>,
    /// The lifetime value aimed for, USD.
    pub ltv_target_usd: f64,
}

/// A KPI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Kpi {
    /// Its name.
    pub name: String,
    /// The target.
    pub target: String,
    /// How often it is looked at.
    pub frequency: String,
}

/// A PDCA cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pdca {
    /// Plan.
    pub plan: String,
    /// Do.
    #[serde(rename = "do")]
    pub act_do: String,
    /// Check.
    pub check: String,
    /// Act.
    pub act: String,
}

/// AnalyticsAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalyticsPlan {
    /// The KPIs.
    pub kpis: Vec<Kpi>,
    /// The improvement cycle.
    pub pdca: Pdca,
    /// Dashboards to build.
    pub dashboards: Vec<String>,
}

/// A video idea.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VideoIdea {
    /// Title.
    pub title: String,
    /// The first 10 seconds.
    pub hook: String,
    /// Length in minutes.
    pub minutes: u32,
}

/// YouTubeAgent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct YouTubePlan {
    /// The channel's concept.
    pub concept: String,
    /// Who watches.
    pub audience: String,
    /// Video ideas.
    pub videos: Vec<VideoIdea>,
    /// When videos are posted.
    pub schedule: String,
}

// ---------------------------------------------------------------------------------------------
// Presets

/// What every business preset is told about its input (appended to its instructions).
pub const INPUT_NOTE: &str = " Your input is JSON: the founder's `brief` and, under `previous`, the \
outputs of the earlier stages of the business plan (already reviewed by the founder: build on \
them, do not contradict them). Answer with JSON only, following the schema.";

macro_rules! business_agents {
    ($( $(#[$doc:meta])* $f:ident, $konst:ident, $name:literal, $ty:ty, $role:literal; )*) => {
        $(
            #[doc = concat!("The instructions of `", $name, "`.")]
            pub const $konst: &str = $role;

            $(#[$doc])*
            pub fn $f() -> Agent {
                preset::<$ty>($name, &format!("{}{}", $konst, INPUT_NOTE)).max_steps(3)
            }
        )*
    };
}

business_agents! {
    /// AIEntrepreneurAgent → [`BusinessPlan`].
    entrepreneur, ENTREPRENEUR, "entrepreneur", BusinessPlan,
    "You are the AIEntrepreneurAgent of Miyabi. Draft the whole business plan: vision, target market, value proposition, revenue streams, milestones by month, risks.";
    /// SelfAnalysisAgent → [`SelfAnalysis`].
    self_analysis, SELF_ANALYSIS, "self-analysis", SelfAnalysis,
    "You are the SelfAnalysisAgent of Miyabi. Analyse the founder: strengths, weaknesses, relevant experience, portfolio, and the opportunities where their strengths meet a need.";
    /// MarketResearchAgent → [`MarketResearch`].
    market_research, MARKET_RESEARCH, "market-research", MarketResearch,
    "You are the MarketResearchAgent of Miyabi. Research the market: its size, trends, the competitors (as many as you know, aim for 20) with offering, price, strength and weakness, and the gaps.";
    /// PersonaAgent → [`Personas`] (3 to 5).
    persona, PERSONA, "persona", Personas,
    "You are the PersonaAgent of Miyabi. Describe 3 to 5 target personas with goals, pains and their customer journey stage by stage.";
    /// ProductConceptAgent → [`ProductConcept`] with the nine-block canvas.
    product_concept, PRODUCT_CONCEPT, "product-concept", ProductConcept,
    "You are the ProductConceptAgent of Miyabi. Define the product: name, unique selling proposition, revenue model and the business model canvas (all nine blocks).";
    /// ProductDesignAgent → [`ProductDesign`] (MVP, stack, six-month plan).
    product_design, PRODUCT_DESIGN, "product-design", ProductDesign,
    "You are the ProductDesignAgent of Miyabi. Design the service: the MVP's features, the tech stack and a six-month content plan, month by month.";
    /// ContentCreationAgent → [`ContentPlan`].
    content_creation, CONTENT_CREATION, "content-creation", ContentPlan,
    "You are the ContentCreationAgent of Miyabi. Plan the content production: videos, articles, tutorials, each with its channel and week.";
    /// FunnelDesignAgent → [`Funnel`].
    funnel_design, FUNNEL_DESIGN, "funnel-design", Funnel,
    "You are the FunnelDesignAgent of Miyabi. Design the funnel from awareness to purchase to lifetime value: stages with goal, tactics and KPI, and the LTV strategy.";
    /// SNSStrategyAgent → [`SnsStrategy`].
    sns_strategy, SNS_STRATEGY, "sns-strategy", SnsStrategy,
    "You are the SNSStrategyAgent of Miyabi. Plan social media: per platform the audience, posts per week and pillars, and a calendar of the first weeks.";
    /// MarketingAgent → [`MarketingPlan`].
    marketing, MARKETING, "marketing", MarketingPlan,
    "You are the MarketingAgent of Miyabi. Plan the campaigns (ads, SEO, social, email) with budgets, goals and KPIs, and the SEO keywords.";
    /// SalesAgent → [`SalesProcess`].
    sales, SALES, "sales", SalesProcess,
    "You are the SalesAgent of Miyabi. Define the lead-to-customer process stage by stage (actions, exit criteria) and monthly targets.";
    /// CRMAgent → [`CrmPlan`].
    crm, CRM, "crm", CrmPlan,
    "You are the CRMAgent of Miyabi. Plan customer management: segments, satisfaction metrics, retention actions and the lifetime value aimed for.";
    /// AnalyticsAgent → [`AnalyticsPlan`].
    analytics, ANALYTICS, "analytics", AnalyticsPlan,
    "You are the AnalyticsAgent of Miyabi. Define the KPIs with targets and frequency, the PDCA cycle of continuous improvement, and the dashboards.";
    /// YouTubeAgent → [`YouTubePlan`] (not a pipeline stage).
    youtube, YOUTUBE, "youtube", YouTubePlan,
    "You are the YouTubeAgent of Miyabi. Plan a YouTube channel from concept to posting: concept, audience, video ideas with hooks and lengths, schedule.";
}

/// The 13 stages of the business pipeline, in order: (step id, preset).
pub fn stages() -> Vec<(&'static str, Agent)> {
    vec![
        ("entrepreneur", entrepreneur()),
        ("self-analysis", self_analysis()),
        ("market-research", market_research()),
        ("persona", persona()),
        ("product-concept", product_concept()),
        ("product-design", product_design()),
        ("content-creation", content_creation()),
        ("funnel-design", funnel_design()),
        ("sns-strategy", sns_strategy()),
        ("marketing", marketing()),
        ("sales", sales()),
        ("crm", crm()),
        ("analytics", analytics()),
    ]
}

/// Options of [`business_pipeline`].
#[derive(Clone, Default)]
pub struct BusinessOptions {
    /// The model of every stage (default: each preset's default model).
    pub model: Option<Arc<dyn LanguageModel>>,
    /// Stage ids after which a founder's approval gate sits (`review-<stage>`): the founder
    /// sees the stage's output and may approve it as it is, edit it, or reject (which fails the
    /// run). Default: after `product-concept`.
    pub gates_after: Option<Vec<String>>,
    /// Who may decide the gates (default `founder`).
    pub approvers: Vec<String>,
}

impl std::fmt::Debug for BusinessOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusinessOptions")
            .field("gates_after", &self.gates_after)
            .field("approvers", &self.approvers)
            .finish_non_exhaustive()
    }
}

/// The run-state key holding the plan so far (`{"brief", "<stage>": output, ...}`).
pub const PLAN_STATE: &str = "miyabi.business";

/// The business pipeline as a workflow `business-pipeline`. Input: the founder's brief (any
/// JSON, a string is fine). Each stage gets `{"brief", "previous": {"<stage>": output...}}`;
/// a gate's approved (possibly edited) data replaces the stage's output before the next stage
/// reads it. Output: `{"brief", "<stage>": output}` for all 13 stages.
pub fn business_pipeline(options: BusinessOptions) -> Result<CommittedWorkflow, WorkflowError> {
    let gates: Vec<String> = options
        .gates_after
        .clone()
        .unwrap_or_else(|| vec!["product-concept".to_owned()]);
    let approvers = if options.approvers.is_empty() {
        vec!["founder".to_owned()]
    } else {
        options.approvers.clone()
    };
    let mut wf = Workflow::new("business-pipeline");
    let mut previous: Option<(&'static str, bool)> = None;
    for (id, agent) in stages() {
        let agent = match &options.model {
            Some(m) => agent.model(Arc::clone(m)),
            None => agent,
        };
        wf = wf.then(id, stage_step(id, agent, previous));
        let gated = gates.iter().any(|g| g == id);
        if gated {
            let gate = ApprovalGate::new()
                .title(format!("Review the business plan after `{id}`"))
                .summary_from(move |v: &Value| {
                    let text = v.to_string();
                    let cut: String = text.chars().take(400).collect();
                    format!("{id}: {cut}")
                })
                .approvers(approvers.clone());
            wf = wf.await_approval(format!("review-{id}"), gate);
        }
        previous = Some((id, gated));
    }
    let collect = step_fn(|ctx: StepContext, input: Value| async move {
        let mut doc = plan_so_far(&ctx);
        record(&mut doc, "analytics", false, input)?;
        Ok(Value::Object(doc))
    });
    wf.then("plan", collect).commit()
}

fn plan_so_far(ctx: &StepContext) -> Map<String, Value> {
    match ctx.state(PLAN_STATE) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Records the previous stage's output (or, after a gate, the approved data) in the plan.
fn record(
    doc: &mut Map<String, Value>,
    stage: &str,
    gated: bool,
    input: Value,
) -> Result<(), StepError> {
    if gated {
        if input.get("approved") != Some(&Value::Bool(true)) {
            let comment = input
                .get("comment")
                .and_then(Value::as_str)
                .unwrap_or("no comment");
            return Err(StepError::fatal(format!(
                "the founder rejected the plan after `{stage}`: {comment}"
            )));
        }
        let data = input.get("data").cloned().unwrap_or(Value::Null);
        doc.insert(stage.to_owned(), data);
    } else {
        doc.insert(stage.to_owned(), input);
    }
    Ok(())
}

fn stage_step(
    id: &'static str,
    agent: Agent,
    previous: Option<(&'static str, bool)>,
) -> miyabi::Node {
    let agent = Arc::new(agent);
    let node = step_fn(move |ctx: StepContext, input: Value| {
        let agent = Arc::clone(&agent);
        async move {
            let mut doc = plan_so_far(&ctx);
            match previous {
                None => {
                    doc.insert("brief".to_owned(), input);
                }
                Some((stage, gated)) => record(&mut doc, stage, gated, input)?,
            }
            let brief = doc.get("brief").cloned().unwrap_or(Value::Null);
            let earlier: Map<String, Value> = doc
                .iter()
                .filter(|(k, _)| k.as_str() != "brief")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let prompt = json!({"brief": brief, "previous": earlier});
            let out = agent.run(&ctx, prompt).await?;
            ctx.set_state(PLAN_STATE, Value::Object(doc));
            Ok(out)
        }
    });
    let _ = id;
    node
}
