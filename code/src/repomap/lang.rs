//! Languages of the repository map: tree-sitter grammars and their tags queries (the grammars'
//! own `tags.scm`, plus a few patterns of ours for references the upstream queries leave out).

use std::path::Path;
use std::sync::OnceLock;

use tree_sitter::{Language, Query};

/// A language the repository map reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Rust (`.rs`).
    Rust,
    /// TypeScript (`.ts`, `.mts`, `.cts`).
    TypeScript,
    /// TypeScript with JSX (`.tsx`).
    Tsx,
    /// JavaScript (`.js`, `.mjs`, `.cjs`, `.jsx`).
    JavaScript,
    /// Python (`.py`, `.pyi`).
    Python,
}

/// Rust references the upstream query does not tag: `Type::function()` calls, type names in
/// signatures, fields, generics and struct literals, paths.
const RUST_EXTRA: &str = r#"
(call_expression function: (scoped_identifier name: (identifier) @name)) @reference.call
(scoped_identifier path: (identifier) @name) @reference.type
(scoped_type_identifier name: (type_identifier) @name) @reference.type
(type_arguments (type_identifier) @name) @reference.type
(parameter type: (type_identifier) @name) @reference.type
(field_declaration type: (type_identifier) @name) @reference.type
(let_declaration type: (type_identifier) @name) @reference.type
(function_item return_type: (type_identifier) @name) @reference.type
(struct_expression name: (type_identifier) @name) @reference.class
(reference_type type: (type_identifier) @name) @reference.type
(generic_type type: (type_identifier) @name) @reference.type
(use_declaration argument: (scoped_identifier name: (identifier) @name)) @reference.type
(use_list (identifier) @name) @reference.type
(use_list (scoped_identifier name: (identifier) @name)) @reference.type
(enum_variant name: (identifier) @name) @definition.constant
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.constant
"#;

/// TypeScript definitions the upstream queries leave out (type aliases, enums, plain classes).
const TS_EXTRA: &str = r#"
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(class_declaration name: (type_identifier) @name) @definition.class
(generic_type name: (type_identifier) @name) @reference.type
"#;

/// Python references to names (not only calls): base classes, decorators, attribute reads.
const PY_EXTRA: &str = r#"
(class_definition superclasses: (argument_list (identifier) @name)) @reference.class
(decorator (identifier) @name) @reference.call
(type (identifier) @name) @reference.type
"#;

impl Lang {
    /// The language of a file, by its extension.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "rs" => Some(Self::Rust),
            "ts" | "mts" | "cts" => Some(Self::TypeScript),
            "tsx" => Some(Self::Tsx),
            "js" | "mjs" | "cjs" | "jsx" => Some(Self::JavaScript),
            "py" | "pyi" => Some(Self::Python),
            _ => None,
        }
    }

    /// The grammar.
    pub fn language(self) -> Language {
        match self {
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::Python => tree_sitter_python::LANGUAGE.into(),
        }
    }

    /// The tags query, compiled once per process. `Err` holds the compiler's message (a
    /// grammar whose node names changed under a query).
    pub fn query(self) -> Result<&'static Query, String> {
        static QUERIES: [OnceLock<Result<Query, String>>; 5] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let slot = match self {
            Self::Rust => &QUERIES[0],
            Self::TypeScript => &QUERIES[1],
            Self::Tsx => &QUERIES[2],
            Self::JavaScript => &QUERIES[3],
            Self::Python => &QUERIES[4],
        };
        slot.get_or_init(|| {
            let source = match self {
                Self::Rust => format!("{}\n{RUST_EXTRA}", tree_sitter_rust::TAGS_QUERY),
                // TypeScript's tags are JavaScript's plus its own (as its grammar declares).
                Self::TypeScript | Self::Tsx => format!(
                    "{}\n{}\n{TS_EXTRA}",
                    tree_sitter_javascript::TAGS_QUERY,
                    tree_sitter_typescript::TAGS_QUERY
                ),
                Self::JavaScript => tree_sitter_javascript::TAGS_QUERY.to_owned(),
                Self::Python => format!("{}\n{PY_EXTRA}", tree_sitter_python::TAGS_QUERY),
            };
            Query::new(&self.language(), &source).map_err(|e| format!("{self:?} tags query: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
    }
}
