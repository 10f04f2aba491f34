//! Reports: JSON (schema `miyabi.eval/v1`, read back by [`EvalResults::from_json`]), JUnit XML
//! for CI (metric failures as `<failure>`, target errors as `<error>`, kept apart), and
//! Markdown summaries for a pull-request comment.

use std::fmt::Write as _;

use super::EvalError;
use super::runner::{COMPARE_SCHEMA, Comparison, EvalResults, Gate, MetricSummary, SCHEMA};
use super::stats::Interval;

impl EvalResults {
    /// The results as pretty-printed JSON (schema `miyabi.eval/v1`, see docs/evals.md).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a JSON results document back; fails on bad JSON or another schema version.
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| EvalError::Report(e.to_string()))?;
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(EvalError::Report(format!(
                    "schema {other:?} is not {SCHEMA:?}"
                )));
            }
            None => return Err(EvalError::Report("no \"schema\" field".into())),
        }
        serde_json::from_value(v).map_err(|e| EvalError::Report(e.to_string()))
    }

    /// The results as JUnit XML: one `<testsuite>` of cases (one `<testcase>` per case ×
    /// epoch: a `<failure>` when a metric is below its pass threshold, an `<error>` when the
    /// target failed, `<skipped>` when no metric could score it) and one `<testsuite>` of
    /// gates (a `<failure>` per gate that did not hold).
    pub fn to_junit(&self) -> String {
        let mut cases = String::new();
        let (mut failures, mut errors, mut skipped) = (0usize, 0usize, 0usize);
        let classname = format!("{}.{}", self.name, self.dataset);
        let total_time: f64 = self.samples.iter().map(|s| s.latency_ms / 1000.0).sum();
        for s in &self.samples {
            let name = if self.epochs > 1 {
                format!("{} #{}", s.case_id, s.epoch)
            } else {
                s.case_id.clone()
            };
            let _ = writeln!(
                cases,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.6}\">",
                xml(&name),
                xml(&classname),
                s.latency_ms / 1000.0
            );
            let mut out = String::new();
            let mut failed = Vec::new();
            let mut scored_any = false;
            for (metric, score) in &s.scores {
                if metric == super::runner::OVERALL {
                    continue;
                }
                match (score.value, score.passed) {
                    (Some(v), Some(p)) => {
                        scored_any = true;
                        let _ = writeln!(
                            out,
                            "{metric}: {v:.4} ({}){}",
                            if p { "pass" } else { "FAIL" },
                            score
                                .reason
                                .as_deref()
                                .map(|r| format!(" — {r}"))
                                .unwrap_or_default()
                        );
                        if !p {
                            failed.push(format!("{metric} = {v:.4}"));
                        }
                    }
                    _ => {
                        let _ = writeln!(
                            out,
                            "{metric}: unscored — {}",
                            score.unscored.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            if let Some(err) = &s.error {
                errors += 1;
                let _ = writeln!(
                    cases,
                    "      <error message=\"{}\" type=\"target\">{}</error>",
                    xml(first_line(err)),
                    xml(err)
                );
            } else if !failed.is_empty() {
                failures += 1;
                let _ = writeln!(
                    cases,
                    "      <failure message=\"{}\" type=\"metric\">{}</failure>",
                    xml(&format!("below threshold: {}", failed.join(", "))),
                    xml(&out)
                );
            } else if !scored_any {
                skipped += 1;
                let _ = writeln!(
                    cases,
                    "      <skipped message=\"no metric could score this sample\"/>"
                );
            }
            if !out.is_empty() {
                let _ = writeln!(cases, "      <system-out>{}</system-out>", xml(&out));
            }
            cases.push_str("    </testcase>\n");
        }
        let mut gates = String::new();
        let mut gate_failures = 0usize;
        for g in &self.gates {
            let desc = gate_text(&g.metric, &g.gate);
            let _ = writeln!(
                gates,
                "    <testcase name=\"{}\" classname=\"{}.gates\" time=\"0\">",
                xml(&desc),
                xml(&self.name)
            );
            if !g.passed {
                gate_failures += 1;
                let actual = g
                    .actual
                    .map(|a| format!("{a:.4}"))
                    .unwrap_or_else(|| "nothing scored".into());
                let _ = writeln!(
                    gates,
                    "      <failure message=\"{}\" type=\"gate\">{}</failure>",
                    xml(&format!("{desc}: actual {actual}")),
                    xml(&format!("{desc}: actual {actual}"))
                );
            }
            gates.push_str("    </testcase>\n");
        }
        let n_cases = self.samples.len();
        let n_gates = self.gates.len();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.6}\">",
            xml(&self.name),
            n_cases + n_gates,
            failures + gate_failures,
            errors,
            skipped,
            total_time
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{n_cases}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total_time:.6}\">",
            xml(&format!("{} ({})", self.name, self.dataset))
        );
        x.push_str(&cases);
        x.push_str("  </testsuite>\n");
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{n_gates}\" failures=\"{gate_failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            xml(&format!("{} gates", self.name))
        );
        x.push_str(&gates);
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }

    /// A Markdown summary for a pull-request comment: the verdict, a table of the metrics
    /// (mean ± standard error, 95% interval, pass rate with its Wilson interval, scored and
    /// unscored counts), the gates, and up to 20 failing or erroring cases.
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "## Eval `{}` — {}\n",
            md(&self.name),
            if self.passed {
                "✅ passed"
            } else {
                "❌ failed"
            }
        );
        let _ = writeln!(
            m,
            "Dataset `{}`: {} cases × {} epoch(s), {} target error(s).\n",
            md(&self.dataset),
            self.cases,
            self.epochs,
            self.errors
        );
        m.push_str(
            "| metric | mean ± SE | 95% CI | pass rate (95% Wilson) | scored | unscored |\n",
        );
        m.push_str("|---|---|---|---|---|---|\n");
        for s in self.metrics.iter().chain(self.overall.as_ref()) {
            summary_row(&mut m, s);
        }
        if !self.gates.is_empty() {
            m.push_str("\n### Gates\n\n");
            for g in &self.gates {
                let _ = writeln!(
                    m,
                    "- {} {} (actual {})",
                    if g.passed { "✅" } else { "❌" },
                    md(&gate_text(&g.metric, &g.gate)),
                    g.actual
                        .map(|a| format!("{a:.3}"))
                        .unwrap_or_else(|| "nothing scored".into())
                );
            }
        }
        let bad: Vec<String> = self
            .samples
            .iter()
            .filter_map(|s| {
                if let Some(e) = &s.error {
                    return Some(format!(
                        "- `{}` — error: {}",
                        md(&s.case_id),
                        md(first_line(e))
                    ));
                }
                let failed: Vec<String> = s
                    .scores
                    .iter()
                    .filter(|(k, v)| {
                        k.as_str() != super::runner::OVERALL && v.passed == Some(false)
                    })
                    .map(|(k, v)| format!("{} {:.3}", md(k), v.value.unwrap_or(0.0)))
                    .collect();
                (!failed.is_empty())
                    .then(|| format!("- `{}` — {}", md(&s.case_id), failed.join(", ")))
            })
            .collect();
        if !bad.is_empty() {
            let _ = writeln!(m, "\n### Failing cases ({})\n", bad.len());
            for line in bad.iter().take(20) {
                let _ = writeln!(m, "{line}");
            }
            if bad.len() > 20 {
                let _ = writeln!(m, "- … and {} more", bad.len() - 20);
            }
        }
        m
    }
}

impl Comparison {
    /// The comparison as pretty-printed JSON (schema `miyabi.eval.compare/v1`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a JSON comparison document back.
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        let c: Self = serde_json::from_str(text).map_err(|e| EvalError::Report(e.to_string()))?;
        if c.schema != COMPARE_SCHEMA {
            return Err(EvalError::Report(format!(
                "schema {:?} is not {COMPARE_SCHEMA:?}",
                c.schema
            )));
        }
        Ok(c)
    }

    /// A Markdown summary: per metric the means, the difference B − A with its 95% interval,
    /// McNemar's p-value (pass/fail metrics), win/loss/tie counts and the verdict; then the
    /// regressed cases (up to 20 per metric).
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "## A/B: `{}` (B) vs `{}` (A) — {}\n",
            md(&self.b),
            md(&self.a),
            if self.has_significant_regression() {
                "❌ significant regression"
            } else {
                "✅ no significant regression"
            }
        );
        let _ = writeln!(m, "{} paired cases.\n", self.cases_compared);
        m.push_str(
            "| metric | A | B | Δ (B − A) | 95% CI of Δ | McNemar p | W / L / T | verdict |\n",
        );
        m.push_str("|---|---|---|---|---|---|---|---|\n");
        for c in &self.metrics {
            let p = &c.paired;
            let ci = p.ci_bootstrap.or(p.ci_clt);
            let _ = writeln!(
                m,
                "| {} | {:.3} | {:.3} | {:+.3} | {} | {} | {} / {} / {} | {} |",
                md(&c.metric),
                p.mean_a,
                p.mean_b,
                p.mean_diff,
                interval(ci.as_ref()),
                c.mcnemar
                    .map(|x| format!("{:.4}", x.p_value))
                    .unwrap_or_else(|| "—".into()),
                p.wins,
                p.losses,
                p.ties,
                c.verdict.label()
            );
        }
        for c in &self.metrics {
            if c.regressed.is_empty() {
                continue;
            }
            let _ = writeln!(
                m,
                "\n### Regressed on `{}` ({})\n",
                md(&c.metric),
                c.regressed.len()
            );
            for r in c.regressed.iter().take(20) {
                let _ = writeln!(m, "- `{}`: {:.3} → {:.3}", md(&r.case_id), r.a, r.b);
            }
            if c.regressed.len() > 20 {
                let _ = writeln!(m, "- … and {} more", c.regressed.len() - 20);
            }
        }
        m
    }
}

fn summary_row(m: &mut String, s: &MetricSummary) {
    let mean = match (s.mean, s.clustered_std_error.or(s.std_error)) {
        (Some(mu), Some(se)) => format!("{mu:.3} ± {se:.3}"),
        (Some(mu), None) => format!("{mu:.3}"),
        _ => "—".into(),
    };
    let pass = match (s.pass_rate, s.pass_rate_ci) {
        (Some(p), Some(ci)) => format!(
            "{:.1}% ({:.1}–{:.1}%)",
            p * 100.0,
            ci.low * 100.0,
            ci.high * 100.0
        ),
        _ => "—".into(),
    };
    let _ = writeln!(
        m,
        "| {} | {} | {} | {} | {} | {} |",
        md(&s.name),
        mean,
        interval(s.ci_bootstrap.or(s.ci_clt).as_ref()),
        pass,
        s.scored,
        s.unscored
    );
}

fn interval(ci: Option<&Interval>) -> String {
    ci.map(|c| format!("[{:.3}, {:.3}]", c.low, c.high))
        .unwrap_or_else(|| "—".into())
}

fn gate_text(metric: &str, gate: &Gate) -> String {
    match gate {
        Gate::MinMean(x) => format!("{metric} mean >= {x}"),
        Gate::MinPassRate(x) => format!("{metric} pass rate >= {x}"),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Escapes text for XML 1.0 attributes and content; characters XML 1.0 cannot hold (most
/// control characters) become U+FFFD.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell or inline code: pipes, backticks and newlines.
fn md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
}
