//! [`EvalError`]: what went wrong loading data, configuring an evaluator or reading a report.

use std::path::PathBuf;

/// An error of the evaluation framework. Dataset errors name the file, the line (1-based, when
/// known) and the field that was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A dataset file could not be read.
    #[error("cannot read dataset {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset file's extension is not one of `jsonl`, `csv`, `yaml`/`yml`.
    #[error("dataset {path}: unknown format (expected a .jsonl, .csv, .yaml or .yml file)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A line or record of a dataset is not valid in its format (bad JSON, unbalanced CSV
    /// quotes, YAML syntax), or has a field of the wrong type.
    #[error("{file}:{line}: {field}: {message}")]
    Parse {
        /// The file (or `<memory>` for data not read from a file).
        file: String,
        /// The 1-based line (0 when the parser gave none).
        line: u64,
        /// The field that was wrong (`<record>` when the record as a whole was).
        field: String,
        /// What was wrong.
        message: String,
    },
    /// Two cases share an id.
    #[error("{file}:{line}: id: duplicate case id {id:?} (first at line {first_line})")]
    DuplicateId {
        /// The file.
        file: String,
        /// The line of the second case.
        line: u64,
        /// The repeated id.
        id: String,
        /// The line of the first case with that id.
        first_line: u64,
    },
    /// A case built in code is invalid (an empty id, a duplicate id).
    #[error("invalid case {id:?}: {message}")]
    InvalidCase {
        /// The case's id.
        id: String,
        /// What was wrong.
        message: String,
    },
    /// A metric or evaluator was configured wrongly (a bad regex or JSON Schema, a weight that
    /// is not finite and positive, a threshold outside [0, 1], an unknown metric name...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A score outside [0, 1] or not finite.
    #[error("invalid score {0}: a score is a finite number in [0, 1]")]
    InvalidScore(f64),
    /// Two result sets cannot be compared (no case in common, a metric missing on one side).
    #[error("cannot compare: {0}")]
    Compare(String),
    /// A JSON report could not be read back (bad JSON, unknown schema version).
    #[error("invalid report: {0}")]
    Report(String),
    /// A judge's answer could not be used (unparseable, out of scale, a refusal, the model
    /// call failed). As a metric outcome this is an *unscored* sample with this message.
    #[error("judge metric {metric:?}, case {case_id:?} (epoch {epoch}): {message}")]
    Judge {
        /// The metric's name.
        metric: String,
        /// The case.
        case_id: String,
        /// The epoch.
        epoch: u32,
        /// What was wrong.
        message: String,
    },
    /// A suite file is invalid (bad YAML/JSON, a missing or unknown field, an unknown
    /// metric type or parameter, a model that cannot be built).
    #[error("suite {file}: {message}")]
    Suite {
        /// The suite file.
        file: String,
        /// What was wrong (the line, or the metric by position and name).
        message: String,
    },
    /// A durable eval run failed on the engine (store error, a run that did not succeed).
    #[error("eval run: {0}")]
    Engine(String),
    /// The judge cache (a SQLite file) failed.
    #[error("judge cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: String,
        /// The SQLite error.
        message: String,
    },
}
