//! The case record and datasets: built in code or loaded from JSONL, CSV and YAML.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::EvalError;

/// One evaluation case: an input for the target, the expected output (when there is one),
/// context (documents for faithfulness, say), free metadata, tags, and a cluster for
/// clustered standard errors (cases of one cluster are not independent: the same document,
/// the same user, the same template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Unique within its dataset.
    pub id: String,
    /// What the target is given.
    pub input: Value,
    /// The reference output, when the case has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// Context for the case (retrieved documents, a system state...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Free metadata, copied into the results.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Tags (for filtering and grouping).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The cluster the case belongs to, for clustered standard errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl Case {
    /// A case with an id and an input.
    pub fn new(id: impl Into<String>, input: impl Into<Value>) -> Self {
        Self {
            id: id.into(),
            input: input.into(),
            expected: None,
            context: None,
            metadata: Map::new(),
            tags: Vec::new(),
            cluster: None,
        }
    }

    /// Sets the expected output.
    pub fn expected(mut self, expected: impl Into<Value>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Sets the context.
    pub fn context(mut self, context: impl Into<Value>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the cluster.
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }
}

/// An ordered list of cases with unique ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// A name for reports (the file stem for a loaded file).
    pub name: String,
    cases: Vec<Case>,
}

impl Dataset {
    /// An empty dataset.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cases: Vec::new(),
        }
    }

    /// A dataset of these cases; fails on an empty or duplicate id.
    pub fn from_cases(
        name: impl Into<String>,
        cases: impl IntoIterator<Item = Case>,
    ) -> Result<Self, EvalError> {
        let mut ds = Self::new(name);
        for case in cases {
            ds.push(case)?;
        }
        Ok(ds)
    }

    /// Adds a case; fails on an empty or duplicate id.
    pub fn push(&mut self, case: Case) -> Result<(), EvalError> {
        if case.id.is_empty() {
            return Err(EvalError::InvalidCase {
                id: case.id,
                message: "the id is empty".into(),
            });
        }
        if self.cases.iter().any(|c| c.id == case.id) {
            return Err(EvalError::InvalidCase {
                id: case.id,
                message: "duplicate id".into(),
            });
        }
        self.cases.push(case);
        Ok(())
    }

    /// Adds a case (builder form); fails on an empty or duplicate id.
    pub fn with_case(mut self, case: Case) -> Result<Self, EvalError> {
        self.push(case)?;
        Ok(self)
    }

    /// The cases, in order.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    /// The number of cases.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether there is no case.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Loads a file by its extension: `.jsonl`, `.csv`, `.yaml`/`.yml`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format: Parser = match ext.as_deref() {
            Some("jsonl") | Some("ndjson") => parse_jsonl,
            Some("csv") => parse_csv,
            Some("yaml") | Some("yml") => parse_yaml,
            _ => {
                return Err(EvalError::UnknownFormat {
                    path: path.to_path_buf(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("dataset")
            .to_string();
        collect(name, &file, format(&file, &text)?)
    }

    /// Parses JSON Lines text: one case object per line; blank lines are skipped. `file`
    /// names the source in errors.
    pub fn from_jsonl_str(file: &str, text: &str) -> Result<Self, EvalError> {
        collect(file.to_string(), file, parse_jsonl(file, text)?)
    }

    /// Parses CSV text with a header row. Columns: `id` (optional: the row number), `input`,
    /// `expected`, `context`, `tags` (separated by `;` or `,`... see docs/evals.md), `cluster`,
    /// `metadata` (a JSON object), and any other column becomes a metadata entry. A cell of
    /// `input`, `expected` or `context` that parses as a JSON object or array is taken as
    /// JSON; anything else is a string.
    pub fn from_csv_str(file: &str, text: &str) -> Result<Self, EvalError> {
        collect(file.to_string(), file, parse_csv(file, text)?)
    }

    /// Parses YAML text: a sequence of case mappings, or a mapping with a `cases` sequence.
    pub fn from_yaml_str(file: &str, text: &str) -> Result<Self, EvalError> {
        collect(file.to_string(), file, parse_yaml(file, text)?)
    }
}

/// A format parser: file name and text to cases with their lines.
type Parser = fn(&str, &str) -> Result<Vec<(u64, Case)>, EvalError>;

fn collect(name: String, file: &str, cases: Vec<(u64, Case)>) -> Result<Dataset, EvalError> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::with_capacity(cases.len());
    for (line, case) in cases {
        if let Some(first) = seen.get(&case.id) {
            return Err(EvalError::DuplicateId {
                file: file.to_string(),
                line,
                id: case.id,
                first_line: *first,
            });
        }
        seen.insert(case.id.clone(), line);
        out.push(case);
    }
    Ok(Dataset { name, cases: out })
}

fn parse_err(file: &str, line: u64, field: &str, message: impl Into<String>) -> EvalError {
    EvalError::Parse {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Builds a case from a JSON object, checking each field's type. `default_id` is used when
/// the record has no id (CSV rows, never JSONL/YAML).
fn case_from_object(
    file: &str,
    line: u64,
    obj: Map<String, Value>,
    default_id: Option<String>,
    field_lines: &BTreeMap<String, u64>,
) -> Result<Case, EvalError> {
    let at = |field: &str| field_lines.get(field).copied().unwrap_or(line);
    let mut case = Case::new(String::new(), Value::Null);
    let mut have_input = false;
    for (key, value) in obj {
        match key.as_str() {
            "id" => {
                case.id = match value {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(parse_err(
                            file,
                            at("id"),
                            "id",
                            format!("expected a string or number, got {}", kind(&other)),
                        ));
                    }
                }
            }
            "input" => {
                case.input = value;
                have_input = true;
            }
            "expected" => case.expected = Some(value),
            "context" => case.context = Some(value),
            "metadata" => match value {
                Value::Object(m) => case.metadata = m,
                Value::Null => {}
                other => {
                    return Err(parse_err(
                        file,
                        at("metadata"),
                        "metadata",
                        format!("expected an object, got {}", kind(&other)),
                    ));
                }
            },
            "tags" => match value {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        match item {
                            Value::String(s) => case.tags.push(s),
                            other => {
                                return Err(parse_err(
                                    file,
                                    at("tags"),
                                    &format!("tags[{i}]"),
                                    format!("expected a string, got {}", kind(&other)),
                                ));
                            }
                        }
                    }
                }
                Value::Null => {}
                other => {
                    return Err(parse_err(
                        file,
                        at("tags"),
                        "tags",
                        format!("expected an array of strings, got {}", kind(&other)),
                    ));
                }
            },
            "cluster" => match value {
                Value::String(s) => case.cluster = Some(s),
                Value::Number(n) => case.cluster = Some(n.to_string()),
                Value::Null => {}
                other => {
                    return Err(parse_err(
                        file,
                        at("cluster"),
                        "cluster",
                        format!("expected a string or number, got {}", kind(&other)),
                    ));
                }
            },
            other => {
                return Err(parse_err(
                    file,
                    at(other),
                    other,
                    "unknown field (allowed: id, input, expected, context, metadata, tags, cluster)",
                ));
            }
        }
    }
    if case.id.is_empty() {
        match default_id {
            Some(id) => case.id = id,
            None => return Err(parse_err(file, at("id"), "id", "missing or empty")),
        }
    }
    if !have_input {
        return Err(parse_err(file, line, "input", "missing"));
    }
    Ok(case)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_jsonl(file: &str, text: &str) -> Result<Vec<(u64, Case)>, EvalError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(trimmed).map_err(|e| {
            parse_err(
                file,
                line,
                "<record>",
                format!("invalid JSON at column {}: {e}", e.column()),
            )
        })?;
        let Value::Object(obj) = value else {
            return Err(parse_err(
                file,
                line,
                "<record>",
                format!("expected a JSON object, got {}", kind(&value)),
            ));
        };
        out.push((
            line,
            case_from_object(file, line, obj, None, &BTreeMap::new())?,
        ));
    }
    Ok(out)
}

/// A CSV cell of a JSON-valued column: a JSON object or array when it parses as one, else
/// the text itself.
fn csv_json_cell(cell: &str) -> Value {
    let t = cell.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(cell)
    {
        return v;
    }
    Value::String(cell.to_string())
}

fn parse_csv(file: &str, text: &str) -> Result<Vec<(u64, Case)>, EvalError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| parse_err(file, 1, "<header>", e.to_string()))?
        .clone();
    if !headers.iter().any(|h| h == "input") {
        return Err(parse_err(
            file,
            1,
            "input",
            "the header has no `input` column",
        ));
    }
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            parse_err(file, line, "<record>", e.to_string())
        })?;
        let line = record
            .position()
            .map(|p| p.line())
            .unwrap_or(row as u64 + 2);
        let mut obj = Map::new();
        let mut extra = Map::new();
        for (header, cell) in headers.iter().zip(record.iter()) {
            match header {
                "id" | "cluster" => {
                    if !cell.is_empty() {
                        obj.insert(header.to_string(), Value::String(cell.to_string()));
                    }
                }
                "input" => {
                    obj.insert(header.to_string(), csv_json_cell(cell));
                }
                "expected" | "context" => {
                    if !cell.is_empty() {
                        obj.insert(header.to_string(), csv_json_cell(cell));
                    }
                }
                "tags" => {
                    let tags: Vec<Value> = cell
                        .split(';')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Value::String(t.to_string()))
                        .collect();
                    obj.insert("tags".into(), Value::Array(tags));
                }
                "metadata" => {
                    if !cell.trim().is_empty() {
                        let v: Value = serde_json::from_str(cell).map_err(|e| {
                            parse_err(file, line, "metadata", format!("invalid JSON: {e}"))
                        })?;
                        obj.insert("metadata".into(), v);
                    }
                }
                other => {
                    extra.insert(other.to_string(), Value::String(cell.to_string()));
                }
            }
        }
        let mut case = case_from_object(
            file,
            line,
            obj,
            Some(format!("row-{}", row + 1)),
            &BTreeMap::new(),
        )?;
        for (k, v) in extra {
            case.metadata.entry(k).or_insert(v);
        }
        out.push((line, case));
    }
    Ok(out)
}

/// A YAML case: each field with its line, for errors.
type YamlCase = serde_saphyr::Spanned<BTreeMap<String, serde_saphyr::Spanned<Value>>>;

/// The mapping form of a YAML dataset: `cases: [...]`.
#[derive(Deserialize)]
struct YamlSuite {
    cases: Vec<YamlCase>,
}

fn parse_yaml(file: &str, text: &str) -> Result<Vec<(u64, Case)>, EvalError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let yaml_err = |e: serde_saphyr::Error| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        let message = e.to_string();
        let first = message.lines().next().unwrap_or("invalid YAML").to_string();
        parse_err(file, line, "<record>", first)
    };
    // A sequence of cases, or a mapping with a `cases` sequence: decided by the first
    // meaningful line, so the error reported is the one of the form the file is written in.
    let is_list = text
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("---"))
        .is_some_and(|l| l.starts_with('-') || l.starts_with('['));
    let items: Vec<YamlCase> = if is_list {
        serde_saphyr::from_str(text).map_err(yaml_err)?
    } else {
        serde_saphyr::from_str::<YamlSuite>(text)
            .map_err(yaml_err)?
            .cases
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let line = item.referenced.line();
        let mut lines = BTreeMap::new();
        let mut obj = Map::new();
        for (k, v) in item.value {
            lines.insert(k.clone(), v.referenced.line());
            obj.insert(k, v.value);
        }
        out.push((line, case_from_object(file, line, obj, None, &lines)?));
    }
    Ok(out)
}
