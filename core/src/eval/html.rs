//! The self-contained HTML report: one file, no script, no external resource — inline CSS and
//! SVG charts (per-metric score distributions; A/B differences with their 95% intervals), the
//! metric and gate tables, the regressed cases and every sample.

use std::fmt::Write as _;

use super::runner::{Comparison, EvalResults, Gate, MetricSummary, OVERALL};
use super::stats::Interval;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;\
color:#1b1f24;padding:0 16px}h1{font-size:22px}h2{font-size:18px;margin-top:28px}\
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border-bottom:1px solid #d8dee4;\
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}.pass{color:#1a7f37}\
.fail{color:#cf222e}.muted{color:#656d76}.charts{display:flex;flex-wrap:wrap;gap:16px}\
.chart{border:1px solid #d8dee4;border-radius:6px;padding:8px}code{font-size:12px}\
td.out{max-width:420px;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:12px}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |v| format!("{v:.3}"))
}

fn ci(c: Option<&Interval>) -> String {
    c.map_or_else(|| "—".into(), |c| format!("[{:.3}, {:.3}]", c.low, c.high))
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

/// A histogram of per-case scores in ten bins of [0, 1], as an SVG.
fn histogram(name: &str, values: &[f64], threshold: f64) -> String {
    let mut bins = [0usize; 10];
    for v in values {
        let i = ((v * 10.0).floor() as usize).min(9);
        bins[i] += 1;
    }
    let max = bins.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, pad) = (260.0, 120.0, 20.0);
    let bw = (w - 2.0 * pad) / 10.0;
    let mut svg = format!(
        "<svg class=\"hist\" role=\"img\" aria-label=\"score distribution of {}\" width=\"{w}\" \
height=\"{}\" viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(name),
        h + 30.0,
        h + 30.0
    );
    for (i, n) in bins.iter().enumerate() {
        let bh = (*n as f64 / max as f64) * h;
        let x = pad + i as f64 * bw;
        let low = i as f64 / 10.0;
        let fill = if low + 0.1 <= threshold {
            "#cf222e"
        } else {
            "#2da44e"
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\">\
<title>{:.1}–{:.1}: {n}</title></rect>",
            x + 1.0,
            h - bh + 5.0,
            bw - 2.0,
            bh,
            low,
            low + 0.1
        );
    }
    let tx = pad + threshold * (w - 2.0 * pad);
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#656d76\"/>\
<line x1=\"{tx:.1}\" y1=\"0\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#0969da\" stroke-dasharray=\"3,3\"/>\
<text x=\"{pad}\" y=\"{:.1}\" font-size=\"11\">0</text>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">1</text>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{} (n={})</text></svg>",
        h + 5.0,
        w - pad,
        h + 5.0,
        h + 5.0,
        h + 18.0,
        w - pad,
        h + 18.0,
        w / 2.0,
        h + 29.0,
        esc(name),
        values.len()
    );
    svg
}

/// Per-metric A/B differences with their intervals on a shared axis, as an SVG.
fn delta_chart(cmp: &Comparison) -> String {
    let rows = cmp.metrics.len().max(1);
    let (w, row_h, left, right) = (640.0, 28.0, 160.0, 20.0);
    let h = rows as f64 * row_h + 30.0;
    let mut lo: f64 = -0.05;
    let mut hi: f64 = 0.05;
    for m in &cmp.metrics {
        let iv = m.paired.ci_bootstrap.or(m.paired.ci_clt);
        lo = lo.min(m.paired.mean_diff);
        hi = hi.max(m.paired.mean_diff);
        if let Some(c) = iv {
            lo = lo.min(c.low);
            hi = hi.max(c.high);
        }
    }
    let span = (hi - lo).max(1e-9);
    let x = |v: f64| left + (v - lo) / span * (w - left - right);
    let mut svg = format!(
        "<svg class=\"deltas\" role=\"img\" aria-label=\"A/B differences with 95% intervals\" \
width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
<line x1=\"{0:.1}\" y1=\"0\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#656d76\" stroke-dasharray=\"4,3\"/>",
        x(0.0),
        h - 20.0
    );
    for (i, m) in cmp.metrics.iter().enumerate() {
        let y = i as f64 * row_h + 16.0;
        let color = match m.verdict {
            super::Verdict::Better => "#1a7f37",
            super::Verdict::Worse => "#cf222e",
            _ => "#57606a",
        };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 4.0,
            esc(&m.metric)
        );
        if let Some(c) = m.paired.ci_bootstrap.or(m.paired.ci_clt) {
            let _ = write!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                x(c.low),
                x(c.high)
            );
        }
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{color}\"><title>{}: Δ {:+.4} ({})</title></circle>",
            x(m.paired.mean_diff),
            esc(&m.metric),
            m.paired.mean_diff,
            m.verdict.label()
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"11\">{lo:+.3}</text>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{hi:+.3}</text></svg>",
        h - 4.0,
        w - right,
        h - 4.0
    );
    svg
}

fn metric_rows(out: &mut String, s: &MetricSummary) {
    let pass = match (s.pass_rate, s.pass_rate_ci) {
        (Some(p), Some(c)) => format!(
            "{:.1}% ({:.1}–{:.1}%)",
            p * 100.0,
            c.low * 100.0,
            c.high * 100.0
        ),
        _ => "—".into(),
    };
    let _ = write!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&s.name),
        num(s.mean),
        num(s.clustered_std_error.or(s.std_error)),
        ci(s.ci_bootstrap.or(s.ci_clt).as_ref()),
        pass,
        s.scored,
        s.unscored,
        s.errored
    );
}

fn comparison_body(out: &mut String, cmp: &Comparison) {
    let _ = write!(
        out,
        "<h2>A/B: <code>{}</code> (B) vs <code>{}</code> (A) — <span class=\"{}\">{}</span></h2>\
<p>{} paired cases{}.</p><div class=\"chart\">{}</div>",
        esc(&cmp.b),
        esc(&cmp.a),
        if cmp.has_significant_regression() {
            "fail"
        } else {
            "pass"
        },
        if cmp.has_significant_regression() {
            "significant regression"
        } else {
            "no significant regression"
        },
        cmp.cases_compared,
        if cmp.only_in_a.is_empty() && cmp.only_in_b.is_empty() {
            String::new()
        } else {
            format!(
                "; {} only in A, {} only in B",
                cmp.only_in_a.len(),
                cmp.only_in_b.len()
            )
        },
        delta_chart(cmp)
    );
    out.push_str(
        "<table class=\"ab\"><tr><th>metric</th><th>A</th><th>B</th><th>Δ (B − A)</th>\
<th>95% CI of Δ</th><th>McNemar p</th><th>W / L / T</th><th>verdict</th></tr>",
    );
    for m in &cmp.metrics {
        let p = &m.paired;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:+.3}</td><td>{}</td><td>{}</td>\
<td>{} / {} / {}</td><td class=\"{}\">{}</td></tr>",
            esc(&m.metric),
            p.mean_a,
            p.mean_b,
            p.mean_diff,
            ci(p.ci_bootstrap.or(p.ci_clt).as_ref()),
            m.mcnemar
                .map_or_else(|| "—".into(), |x| format!("{:.4}", x.p_value)),
            p.wins,
            p.losses,
            p.ties,
            match m.verdict {
                super::Verdict::Worse => "fail",
                super::Verdict::Better => "pass",
                _ => "muted",
            },
            m.verdict.label()
        );
    }
    out.push_str("</table>");
    let regressed: Vec<_> = cmp
        .metrics
        .iter()
        .flat_map(|m| m.regressed.iter().map(move |r| (&m.metric, r)))
        .collect();
    if !regressed.is_empty() {
        let _ = write!(
            out,
            "<h2>Regressed cases ({})</h2><table class=\"regressed\"><tr><th>case</th><th>metric</th><th>A</th><th>B</th></tr>",
            regressed.len()
        );
        for (metric, r) in regressed {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{:.3}</td><td class=\"fail\">{:.3}</td></tr>",
                esc(&r.case_id),
                esc(metric),
                r.a,
                r.b
            );
        }
        out.push_str("</table>");
    }
}

impl EvalResults {
    /// A single self-contained HTML page (no script, no external resource): the verdict, the
    /// metric table, the gates, a score-distribution chart per metric, the A/B section when
    /// `comparison` is given (differences with their intervals, regressed cases), and every
    /// sample with its output and scores.
    pub fn to_html(&self, comparison: Option<&Comparison>) -> String {
        let mut out = head(&format!("Eval {}", self.name));
        let _ = write!(
            out,
            "<h1>Eval <code>{}</code> — <span class=\"{}\">{}</span></h1>\
<p class=\"muted\">Dataset <code>{}</code>: {} cases × {} epoch(s), {} target error(s), {:.0} ms.</p>",
            esc(&self.name),
            if self.passed { "pass" } else { "fail" },
            if self.passed { "passed" } else { "failed" },
            esc(&self.dataset),
            self.cases,
            self.epochs,
            self.errors,
            self.duration_ms
        );
        out.push_str(
            "<h2>Metrics</h2><table class=\"metrics\"><tr><th>metric</th><th>mean</th><th>SE</th>\
<th>95% CI</th><th>pass rate (95% Wilson)</th><th>scored</th><th>unscored</th><th>errored</th></tr>",
        );
        for s in self.metrics.iter().chain(self.overall.as_ref()) {
            metric_rows(&mut out, s);
        }
        out.push_str("</table>");
        if let Some(u) = &self.usage {
            let _ = write!(
                out,
                "<p class=\"muted\">{} turns, {} tool calls, {} input + {} output tokens{}.</p>",
                u.turns,
                u.tool_calls,
                u.input_tokens,
                u.output_tokens,
                u.cost_usd.map(|c| format!(", ${c:.4}")).unwrap_or_default()
            );
        }
        if !self.gates.is_empty() {
            out.push_str("<h2>Gates</h2><ul class=\"gates\">");
            for g in &self.gates {
                let what = match g.gate {
                    Gate::MinMean(m) => format!("{} mean ≥ {m}", g.metric),
                    Gate::MinPassRate(m) => format!("{} pass rate ≥ {m}", g.metric),
                };
                let _ = write!(
                    out,
                    "<li class=\"{}\">{} {} (actual {})</li>",
                    if g.passed { "pass" } else { "fail" },
                    if g.passed { "✔" } else { "✘" },
                    esc(&what),
                    num(g.actual)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("<h2>Score distributions</h2><div class=\"charts\">");
        for s in &self.metrics {
            let values: Vec<f64> = case_means(self, &s.name);
            let _ = write!(
                out,
                "<div class=\"chart\">{}</div>",
                histogram(&s.name, &values, s.pass_threshold)
            );
        }
        out.push_str("</div>");
        if let Some(cmp) = comparison {
            comparison_body(&mut out, cmp);
        }
        let _ = write!(
            out,
            "<h2>Samples ({})</h2><table class=\"samples\"><tr><th>case</th><th>epoch</th><th>output</th><th>scores</th></tr>",
            self.samples.len()
        );
        for s in &self.samples {
            let output = match (&s.output, &s.error) {
                (_, Some(e)) => format!("<span class=\"fail\">error: {}</span>", esc(e)),
                (Some(o), None) => {
                    let t = super::value_text(o);
                    let cut: String = t.chars().take(400).collect();
                    esc(&if t.chars().count() > 400 {
                        format!("{cut}…")
                    } else {
                        cut
                    })
                }
                (None, None) => String::new(),
            };
            let mut scores = String::new();
            for (k, v) in &s.scores {
                if k == OVERALL {
                    continue;
                }
                let (class, text) = match (v.value, v.passed, &v.unscored) {
                    (Some(x), Some(true), _) => ("pass", format!("{x:.3}")),
                    (Some(x), _, _) => ("fail", format!("{x:.3}")),
                    (None, _, Some(r)) => ("muted", format!("unscored ({r})")),
                    _ => ("muted", "—".to_string()),
                };
                let _ = write!(
                    scores,
                    "<div><b>{}</b>: <span class=\"{class}\" title=\"{}\">{}</span></div>",
                    esc(k),
                    esc(v.reason.as_deref().unwrap_or("")),
                    esc(&text)
                );
            }
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"out\">{output}</td><td>{scores}</td></tr>",
                esc(&s.case_id),
                s.epoch
            );
        }
        out.push_str("</table></body></html>\n");
        out
    }
}

impl Comparison {
    /// A single self-contained HTML page of the A/B comparison: differences with their 95%
    /// intervals as a chart and a table, verdicts, and the regressed cases.
    pub fn to_html(&self) -> String {
        let mut out = head(&format!("A/B {} vs {}", self.b, self.a));
        comparison_body(&mut out, self);
        out.push_str("</body></html>\n");
        out
    }
}

fn case_means(r: &EvalResults, metric: &str) -> Vec<f64> {
    let mut order: Vec<&str> = Vec::new();
    let mut acc: std::collections::HashMap<&str, (f64, usize)> = Default::default();
    for s in &r.samples {
        if let Some(v) = s.scores.get(metric).and_then(|x| x.value) {
            let e = acc.entry(&s.case_id).or_insert_with(|| {
                order.push(&s.case_id);
                (0.0, 0)
            });
            e.0 += v;
            e.1 += 1;
        }
    }
    order
        .iter()
        .filter_map(|id| acc.get(id).map(|(s, n)| s / *n as f64))
        .collect()
}
