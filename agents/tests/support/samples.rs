//! Valid sample outputs of every preset, for scripted models.
#![allow(dead_code)]

use serde_json::{Value, json};

pub fn issue_analysis() -> Value {
    json!({"kind": "bug", "priority": "P1", "severity": "high",
           "labels": ["type:bug", "priority:P1-high", "severity:high", "agent:codegen", "effort:small"],
           "summary": "calc.sh subtracts instead of adding", "affected_files": ["calc.sh"],
           "acceptance": ["sh test.sh"]})
}

pub fn plan() -> Value {
    json!({"summary": "Fix the operator, then add a regression test.",
    "tasks": [
      {"id": "fix", "title": "Fix calc.sh", "description": "Use + in calc.sh", "agent": "codegen", "depends_on": [], "files": ["calc.sh"]},
      {"id": "docs", "title": "Document calc.sh", "description": "Add a README line", "agent": "codegen", "depends_on": [], "files": ["README.md"]},
      {"id": "check", "title": "Review", "description": "Review both", "agent": "review", "depends_on": ["fix", "docs"], "files": []}
    ]})
}

pub fn code_change() -> Value {
    json!({"summary": "calc.sh now adds", "files_changed": ["calc.sh"], "tests_changed": false})
}

pub fn review(score: u8) -> Value {
    json!({"score": score, "findings": [], "summary": "Correct and tested."})
}

pub fn pr_draft() -> Value {
    json!({"title": "fix(calc): add instead of subtracting", "body": "Closes #7", "labels": ["type:bug"]})
}

pub fn deploy_report() -> Value {
    json!({"environment": "staging", "deployed": true, "healthy": true, "rolled_back": false, "summary": "deployed v2"})
}

pub fn refresh_report() -> Value {
    json!({"updates": [{"issue": 7, "state": "state:done", "add_labels": ["state:done"], "remove_labels": ["state:implementing"], "comment": "Fixed by the latest run."}]})
}

pub fn business(stage: &str) -> Value {
    let l = |s: &str| json!([s]);
    match stage {
        "entrepreneur" => {
            json!({"vision": "Tea for coders", "target_market": "developers", "value_proposition": "focus",
            "revenue_streams": ["subscriptions"], "milestones": [{"month": 3, "goal": "100 subscribers"}], "risks": ["supply"]})
        }
        "self-analysis" => {
            json!({"strengths": l("tea"), "weaknesses": l("sales"), "experience": l("10y dev"), "portfolio": l("blog"), "opportunities": l("dev tea")})
        }
        "market-research" => json!({"market_size": "$1B", "trends": l("specialty tea"),
            "competitors": [{"name": "TeaCo", "offering": "tea box", "price": "$20", "strength": "brand", "weakness": "generic"}], "gaps": l("developer focus")}),
        "persona" => {
            let p = |n: &str| {
                json!({"name": n, "age": 30, "occupation": "developer", "goals": l("focus"), "pains": l("jitters"),
                "journey": [{"stage": "awareness", "touchpoint": "blog", "emotion": "curious"}]})
            };
            json!({"personas": [p("Aki"), p("Ben"), p("Chie")]})
        }
        "product-concept" => {
            json!({"name": "CodeTea", "usp": "tea tuned for focus", "revenue_model": "subscription",
            "canvas": {"key_partners": l("farms"), "key_activities": l("blending"), "key_resources": l("recipes"),
              "value_propositions": l("focus"), "customer_relationships": l("community"), "channels": l("web"),
              "customer_segments": l("developers"), "cost_structure": l("tea"), "revenue_streams": l("subscription")}})
        }
        "product-design" => {
            let months: Vec<Value> = (1..=6)
                .map(|m| json!({"month": m, "theme": "t", "deliverables": l("d")}))
                .collect();
            json!({"mvp_features": l("subscription"), "tech_stack": l("Rust"), "content_plan": months})
        }
        "content-creation" => {
            json!({"pieces": [{"format": "article", "title": "Tea and focus", "channel": "blog", "week": 1}]})
        }
        "funnel-design" => {
            json!({"stages": [{"name": "awareness", "goal": "visits", "tactics": l("SEO"), "kpi": "visits/week"}], "ltv_strategy": "annual plans"})
        }
        "sns-strategy" => {
            json!({"platforms": [{"platform": "X", "audience": "devs", "posts_per_week": 3, "pillars": l("focus")}],
            "calendar": [{"week": 1, "platform": "X", "topic": "launch"}]})
        }
        "marketing" => {
            json!({"campaigns": [{"name": "launch", "channel": "ads", "budget_usd": 500.0, "goal": "signups", "kpi": "CPA"}], "seo_keywords": l("coding tea")})
        }
        "sales" => {
            json!({"stages": [{"name": "lead", "actions": l("email"), "exit_criteria": "replied"}], "monthly_targets": l("50 subs")})
        }
        "crm" => {
            json!({"segments": l("monthly"), "satisfaction_metrics": l("NPS"), "retention_actions": l("gifts"), "ltv_target_usd": 240.0})
        }
        "analytics" => json!({"kpis": [{"name": "MRR", "target": "$5k", "frequency": "weekly"}],
            "pdca": {"plan": "p", "do": "d", "check": "c", "act": "a"}, "dashboards": l("growth")}),
        "youtube" => {
            json!({"concept": "Tea at the desk", "audience": "devs", "videos": [{"title": "Brewing", "hook": "Stop coffee", "minutes": 8}], "schedule": "weekly"})
        }
        other => panic!("no sample for {other}"),
    }
}
