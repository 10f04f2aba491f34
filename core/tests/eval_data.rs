//! Datasets: the case record from JSONL, CSV and YAML files and from code; bad files give
//! errors naming file, line and field.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use miyabi::eval::{Case, Dataset, EvalError};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name)
}

fn parse_err(e: EvalError) -> (String, u64, String, String) {
    match e {
        EvalError::Parse {
            file,
            line,
            field,
            message,
        } => (file, line, field, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn jsonl_csv_and_yaml_load_the_same_cases() {
    let j = Dataset::load(fixture("cases.jsonl")).unwrap();
    let y = Dataset::load(fixture("cases.yaml")).unwrap();
    let c = Dataset::load(fixture("cases.csv")).unwrap();
    assert_eq!(j.name, "cases");
    assert_eq!(j.len(), 2);
    let a = &j.cases()[0];
    assert_eq!(a.id, "a");
    assert_eq!(a.input, json!("ship it"));
    assert_eq!(a.expected, Some(json!("deploy")));
    assert_eq!(a.tags, vec!["ops"]);
    assert_eq!(a.cluster.as_deref(), Some("t1"));
    let b = &j.cases()[1];
    assert_eq!(b.input, json!({"q": "2+2"}));
    assert_eq!(b.expected, Some(json!(4)));
    assert_eq!(b.metadata["source"], json!("math"));
    // YAML gives the same records.
    assert_eq!(y.cases(), j.cases());
    // CSV: JSON cells for objects, text otherwise; extra columns become metadata.
    assert_eq!(c.cases()[0].tags, vec!["ops", "release"]);
    assert_eq!(c.cases()[0].metadata["difficulty"], json!("easy"));
    assert_eq!(c.cases()[1].input, json!({"q": "2+2"}));
    assert_eq!(c.cases()[1].expected, Some(json!("4")));
    assert_eq!(c.cases()[1].cluster, None);
}

#[test]
fn built_in_code_rejects_duplicate_and_empty_ids() {
    let ds = Dataset::from_cases(
        "x",
        [Case::new("1", "a").expected("b").tag("t").cluster("c")],
    )
    .unwrap();
    assert_eq!(ds.cases()[0].cluster.as_deref(), Some("c"));
    let dup = Dataset::from_cases("x", [Case::new("1", "a"), Case::new("1", "b")]).unwrap_err();
    assert!(
        matches!(dup, EvalError::InvalidCase { ref id, .. } if id == "1"),
        "{dup}"
    );
    let empty = Dataset::new("x").with_case(Case::new("", "a")).unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
}

#[test]
fn jsonl_errors_name_file_line_and_field() {
    let (file, line, field, msg) = parse_err(
        Dataset::from_jsonl_str("d.jsonl", "{\"id\":\"a\",\"input\":1}\n{bad\n").unwrap_err(),
    );
    assert_eq!(
        (file.as_str(), line, field.as_str()),
        ("d.jsonl", 2, "<record>")
    );
    assert!(msg.contains("invalid JSON"), "{msg}");

    let (_, line, field, _) = parse_err(
        Dataset::from_jsonl_str("d.jsonl", "\n\n{\"id\":\"a\",\"input\":1,\"tags\":[1]}")
            .unwrap_err(),
    );
    assert_eq!((line, field.as_str()), (3, "tags[0]"));

    let (_, line, field, _) =
        parse_err(Dataset::from_jsonl_str("d.jsonl", "{\"id\":\"a\"}").unwrap_err());
    assert_eq!((line, field.as_str()), (1, "input"));

    let (_, _, field, msg) = parse_err(
        Dataset::from_jsonl_str("d.jsonl", "{\"id\":\"a\",\"input\":1,\"expect\":2}").unwrap_err(),
    );
    assert_eq!(field, "expect");
    assert!(msg.contains("unknown field"), "{msg}");

    let (_, _, field, _) =
        parse_err(Dataset::from_jsonl_str("d.jsonl", "{\"id\":[1],\"input\":1}").unwrap_err());
    assert_eq!(field, "id");

    let (_, _, field, _) = parse_err(Dataset::from_jsonl_str("d.jsonl", "[1,2]").unwrap_err());
    assert_eq!(field, "<record>");

    let dup = Dataset::from_jsonl_str(
        "d.jsonl",
        "{\"id\":\"a\",\"input\":1}\n{\"id\":\"a\",\"input\":2}",
    )
    .unwrap_err();
    assert!(
        matches!(
            dup,
            EvalError::DuplicateId {
                line: 2,
                first_line: 1,
                ..
            }
        ),
        "{dup:?}"
    );
    assert!(dup.to_string().starts_with("d.jsonl:2: id:"), "{dup}");
}

#[test]
fn csv_errors_name_line_and_field() {
    let (_, line, field, _) = parse_err(
        Dataset::from_csv_str("d.csv", "id,input,metadata\na,x,{}\nb,y,{not json}\n").unwrap_err(),
    );
    assert_eq!((line, field.as_str()), (3, "metadata"));
    // A row with a wrong number of fields.
    let (_, line, _, _) =
        parse_err(Dataset::from_csv_str("d.csv", "id,input\na,x\nb,y,z\n").unwrap_err());
    assert_eq!(line, 3);
    let (_, line, field, _) =
        parse_err(Dataset::from_csv_str("d.csv", "id,prompt\na,x\n").unwrap_err());
    assert_eq!((line, field.as_str()), (1, "input"));
    // Rows without an id are numbered.
    let ds = Dataset::from_csv_str("d.csv", "input\nx\ny\n").unwrap();
    assert_eq!(ds.cases()[1].id, "row-2");
}

#[test]
fn yaml_errors_name_line_and_field() {
    let text = "cases:\n  - id: a\n    input: 1\n  - id: b\n    input: 2\n    tags: nope\n";
    let (file, line, field, _) = parse_err(Dataset::from_yaml_str("s.yaml", text).unwrap_err());
    assert_eq!((file.as_str(), line, field.as_str()), ("s.yaml", 6, "tags"));

    let text = "- id: a\n  input: 1\n- id: b\n";
    let (_, line, field, _) = parse_err(Dataset::from_yaml_str("s.yaml", text).unwrap_err());
    assert_eq!((line, field.as_str()), (3, "input"));

    let text = "- id: a\n  input: [1, 2\n";
    let (_, line, _, _) = parse_err(Dataset::from_yaml_str("s.yaml", text).unwrap_err());
    assert!(line >= 2, "syntax error line {line}");

    let ok = Dataset::from_yaml_str("s.yaml", "cases:\n  - {id: a, input: 1}\n").unwrap();
    assert_eq!(ok.len(), 1);
}

#[test]
fn load_reports_unknown_formats_and_missing_files() {
    let e = Dataset::load(fixture("cases.txt")).unwrap_err();
    assert!(matches!(e, EvalError::UnknownFormat { .. }), "{e:?}");
    let e = Dataset::load(fixture("missing.jsonl")).unwrap_err();
    assert!(matches!(e, EvalError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.jsonl"), "{e}");
}
