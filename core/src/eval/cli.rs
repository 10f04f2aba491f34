//! The `miyabi eval` command (feature `cli`): `miyabi eval run <suite>` and
//! `miyabi eval compare <a.json> <b.json>`, with the exit codes CI expects: 0 when the gates
//! pass, [`EXIT_GATE_FAILED`] (100) when a quality gate fails or B is significantly worse than
//! A, [`EXIT_ERROR`] (1) on an infrastructure error (a bad suite, a missing file, a model that
//! cannot be built).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use super::{Comparison, EvalError, EvalResults, Evaluator, Suite, SuiteOutcome};

/// Exit code when a quality gate fails or a regression is significant.
pub const EXIT_GATE_FAILED: u8 = 100;
/// Exit code on an infrastructure error.
pub const EXIT_ERROR: u8 = 1;

/// `miyabi eval ...`.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Run a suite file (YAML or JSON): print a Markdown summary (or the JSON results with
    /// `--json`), write the requested reports; exit 0 when the gates pass, 100 when one fails
    /// (or the run is significantly worse than the baseline), 1 on an error.
    Run(RunArgs),
    /// Compare two results files (A the baseline, B the candidate) case by case: exit 100 when
    /// a metric is significantly worse in B.
    Compare(CompareArgs),
}

/// Arguments of `miyabi eval run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The suite file (`.yaml`, `.yml` or `.json`).
    pub suite: PathBuf,
    /// Write the results as JSON (schema miyabi.eval/v1) here.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Compare against this results file (overrides the suite's `baseline:`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Progress on standard error even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Run as a durable run in the `--db` database (one step per case × epoch): a run of this
    /// suite left unfinished by a killed process is resumed without re-running the samples
    /// it committed.
    #[arg(long)]
    pub durable: bool,
}

/// Arguments of `miyabi eval compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline results (JSON).
    pub a: PathBuf,
    /// The candidate results (JSON).
    pub b: PathBuf,
    /// Write the comparison as JSON (schema miyabi.eval.compare/v1) here.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

fn write(path: &Path, text: &str) -> Result<(), EvalError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| EvalError::Io {
            path: parent.to_path_buf(),
            source: e,
        })?;
    }
    std::fs::write(path, text).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

fn read_results(path: &Path) -> Result<EvalResults, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    EvalResults::from_json(&text).map_err(|e| EvalError::Report(format!("{}: {e}", path.display())))
}

/// Runs `miyabi eval ...` and returns the process exit code. `db` is the run database of
/// `--durable` runs; `json` prints JSON on standard output instead of Markdown.
pub async fn run(cmd: EvalCommand, db: &str, json: bool) -> u8 {
    let outcome = match cmd {
        EvalCommand::Run(a) => run_suite(a, db, json).await,
        EvalCommand::Compare(a) => compare(a, json),
    };
    match outcome {
        Ok(true) => 0,
        Ok(false) => EXIT_GATE_FAILED,
        Err(e) => {
            eprintln!("miyabi eval: error: {e}");
            EXIT_ERROR
        }
    }
}

async fn run_suite(a: RunArgs, db: &str, json: bool) -> Result<bool, EvalError> {
    let mut suite = Suite::load(&a.suite)?;
    if let Some(b) = &a.baseline {
        suite.baseline = Some(read_results(b)?);
    }
    if a.progress || std::io::stderr().is_terminal() {
        let tty = std::io::stderr().is_terminal();
        suite = suite.on_progress(move |p| {
            if tty {
                eprint!("\r\x1b[2Keval: {}", p.line());
                if p.done == p.total {
                    eprintln!();
                }
            } else {
                eprintln!("eval: {}", p.line());
            }
        });
    }
    let outcome: SuiteOutcome = if a.durable {
        let engine = crate::Engine::open(db).map_err(|e| {
            EvalError::Engine(format!(
                "run database {}: {e}",
                crate::store::shown_location(db)
            ))
        })?;
        suite.run_durable(&engine).await?
    } else {
        suite.run().await?
    };
    let r = &outcome.results;
    let c = outcome.comparison.as_ref();
    if let Some(p) = &a.output {
        write(p, &r.to_json())?;
    }
    if let Some(p) = &a.junit {
        write(p, &r.to_junit())?;
    }
    let mut md = r.to_markdown();
    if let Some(c) = c {
        md.push('\n');
        md.push_str(&c.to_markdown());
    }
    if let Some(p) = &a.markdown {
        write(p, &md)?;
    }
    if let Some(p) = &a.html {
        write(p, &r.to_html(c))?;
    }
    if json {
        println!("{}", r.to_json());
    } else {
        print!("{md}");
    }
    // A target that failed on every sample is an infrastructure problem, not a quality one.
    if !r.samples.is_empty() && r.errors == r.samples.len() {
        let first = r
            .samples
            .iter()
            .find_map(|s| s.error.as_deref())
            .unwrap_or("");
        return Err(EvalError::Config(format!(
            "the target failed on every sample ({}); the first error: {first}",
            r.errors
        )));
    }
    Ok(outcome.passed())
}

fn compare(a: CompareArgs, json: bool) -> Result<bool, EvalError> {
    let ra = read_results(&a.a)?;
    let rb = read_results(&a.b)?;
    let cmp: Comparison = Evaluator::compare(&ra, &rb)?;
    if let Some(p) = &a.output {
        write(p, &cmp.to_json())?;
    }
    if let Some(p) = &a.markdown {
        write(p, &cmp.to_markdown())?;
    }
    if let Some(p) = &a.html {
        write(p, &cmp.to_html())?;
    }
    if json {
        println!("{}", cmp.to_json());
    } else {
        print!("{}", cmp.to_markdown());
    }
    Ok(!cmp.has_significant_regression())
}
