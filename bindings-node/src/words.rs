//! Messages from serde about values from JS, in the words a JS user knows.

/// serde's words for Rust types, with what a JS user calls them.
const SERDE_WORDS: &[(&str, &str)] = &[
    ("expected u64", "expected a whole number from 0 to 2^64 − 1"),
    (
        "expected usize",
        "expected a whole number from 0 to 2^64 − 1",
    ),
    (
        "expected u32",
        "expected a whole number from 0 to 4294967295",
    ),
    ("floating point `", "number `"),
    ("integer `", "number `"),
    ("expected a sequence", "expected an array"),
    ("invalid type: sequence", "invalid type: array"),
    ("invalid type: map", "invalid type: object"),
    ("unit value", "null"),
];

/// A serde message about a value from JS (a spec, a checkpoint) in JS words.
pub(crate) fn serde_words(message: String) -> String {
    let mut out = message;
    for (rust, js) in SERDE_WORDS {
        if out.contains(rust) {
            out = out.replace(rust, js);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    #[test]
    fn numbers_out_of_range_are_reported_in_js_words() {
        for (timeout, shown) in [
            (json!(1.5), "number `1.5`"),
            (json!(-1), "number `-1`"),
            (json!(1e300), "number `1e+300`"),
        ] {
            let e = crate::words::serde_words(
                miyabi::spec::WorkflowSpec::from_value(
                    json!({"id": "x", "timeoutMs": timeout, "steps": []}),
                )
                .unwrap_err()
                .to_string(),
            );
            assert!(e.contains(shown), "{e}");
            assert!(e.contains("a whole number"), "{e}");
            assert!(!e.contains("u64") && !e.contains("floating point"), "{e}");
        }
    }
}
