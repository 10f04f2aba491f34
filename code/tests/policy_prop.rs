#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Property test: random rule sets × generated command lines combining `&&`, `||`, `;`, pipes,
//! subshells, `{ }` groups, `$(...)`, backticks, process substitution, `bash -c`, env
//! prefixes, quoting, wrappers (`sudo`, `env`, `timeout`, `xargs`), paths as program names and
//! variables. The policy judges the rendered string; a small reference oracle, written here
//! independently of the crate, judges the generator's structured list of the commands that
//! would run. Their verdicts must be equal.

use miyabi_code::policy::{Policy, Verdict};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The generator's structure.

const NAMES: &[&str] = &["ls", "cat", "rm", "git", "cargo", "echo"];
const ARGS: &[&str] = &["-rf", "/", "push", "test", "status", "--all", "x", "origin"];

#[derive(Clone, Debug)]
enum Quote {
    Bare,
    Single,
    Double,
    Backslash,
}

#[derive(Clone, Debug)]
enum Arg {
    Lit(String, Quote),
    /// `$V`: only known at run time (and vanishes when empty).
    Var,
}

#[derive(Clone, Debug)]
enum Wrap {
    None,
    Sudo,
    Env,
    Timeout,
    Xargs,
}

#[derive(Clone, Debug)]
struct Simple {
    env: Vec<&'static str>,
    name: String,
    name_quote: Quote,
    by_path: bool,
    args: Vec<Arg>,
    wrap: Wrap,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Simple),
    /// `$C x`: the program is a variable.
    DynName,
    Bin(Box<Node>, &'static str, Box<Node>),
    Subshell(Box<Node>),
    Group(Box<Node>),
    /// `echo $(inner)`
    Subst(Box<Node>),
    /// ``echo `leaf` ``
    Backtick(Simple),
    /// `cat <(inner)`
    ProcSubst(Box<Node>),
    /// `bash -c 'inner'`
    BashC(Box<Node>),
}

fn quote_strategy() -> impl Strategy<Value = Quote> {
    prop_oneof![
        Just(Quote::Bare),
        Just(Quote::Single),
        Just(Quote::Double),
        Just(Quote::Backslash)
    ]
}

fn simple_strategy(allow_backslash: bool) -> impl Strategy<Value = Simple> {
    let arg = prop_oneof![
        8 => (prop::sample::select(ARGS), quote_strategy()).prop_map(|(a, q)| Arg::Lit(a.to_owned(), q)),
        1 => Just(Arg::Var),
    ];
    (
        prop::collection::vec(prop::sample::select(&["A=1", "B=two"][..]), 0..2),
        prop::sample::select(NAMES),
        quote_strategy(),
        prop::bool::weighted(0.15),
        prop::collection::vec(arg, 0..4),
        prop_oneof![
            6 => Just(Wrap::None),
            1 => Just(Wrap::Sudo),
            1 => Just(Wrap::Env),
            1 => Just(Wrap::Timeout),
            1 => Just(Wrap::Xargs),
        ],
    )
        .prop_map(move |(env, name, name_quote, by_path, mut args, wrap)| {
            // At most one variable per command (keeps the oracle's brute force small).
            let mut seen = matches!(wrap, Wrap::Xargs);
            args.retain(|a| {
                if matches!(a, Arg::Var) {
                    if seen {
                        return false;
                    }
                    seen = true;
                }
                true
            });
            let fix = |q: Quote| match q {
                Quote::Backslash if !allow_backslash => Quote::Bare,
                q => q,
            };
            let args = args
                .into_iter()
                .map(|a| match a {
                    Arg::Lit(s, q) => Arg::Lit(s, fix(q)),
                    Arg::Var => Arg::Var,
                })
                .collect();
            Simple {
                env,
                name: name.to_owned(),
                name_quote: fix(name_quote),
                by_path,
                args,
                wrap,
            }
        })
}

fn node_strategy() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        12 => simple_strategy(true).prop_map(Node::Leaf),
        1 => Just(Node::DynName),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(&["&&", "||", ";", "|"][..]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| Node::Bin(Box::new(a), op, Box::new(b))),
            inner.clone().prop_map(|n| Node::Subshell(Box::new(n))),
            inner.clone().prop_map(|n| Node::Group(Box::new(n))),
            inner.clone().prop_map(|n| Node::Subst(Box::new(n))),
            simple_strategy(false).prop_map(Node::Backtick),
            inner.clone().prop_map(|n| Node::ProcSubst(Box::new(n))),
            inner.prop_map(|n| Node::BashC(Box::new(n))),
        ]
    })
}

fn rules_strategy() -> impl Strategy<Value = Vec<(Verdict, String)>> {
    let words = prop::collection::vec(prop::sample::select(ARGS), 0..3);
    let pattern = (
        prop::sample::select(NAMES),
        words,
        prop::sample::select(&["", "*", ":*"][..]),
    )
        .prop_map(|(name, args, tail)| {
            let mut p = name.to_owned();
            for a in args {
                p.push(' ');
                p.push_str(a);
            }
            p.push_str(tail);
            p
        });
    let pattern = prop_oneof![20 => pattern, 1 => Just("*".to_owned())];
    let verdict = prop_oneof![
        Just(Verdict::Allow),
        Just(Verdict::Ask),
        Just(Verdict::Deny)
    ];
    prop::collection::vec((verdict, pattern), 0..7)
}

// ---------------------------------------------------------------------------------------------
// Rendering to a bash string.

fn quote(s: &str, q: &Quote) -> String {
    match q {
        Quote::Bare => s.to_owned(),
        Quote::Single => format!("'{s}'"),
        Quote::Double => format!("\"{s}\""),
        Quote::Backslash => format!("\\{s}"),
    }
}

fn render_simple(s: &Simple) -> String {
    let mut out = Vec::new();
    for e in &s.env {
        out.push((*e).to_owned());
    }
    match s.wrap {
        Wrap::None => {}
        Wrap::Sudo => out.push("sudo".into()),
        Wrap::Env => out.push("env A=2".into()),
        Wrap::Timeout => out.push("timeout 5".into()),
        Wrap::Xargs => out.push("xargs".into()),
    }
    let name = if s.by_path {
        format!("/bin/{}", s.name)
    } else {
        s.name.clone()
    };
    out.push(quote(&name, &s.name_quote));
    for a in &s.args {
        out.push(match a {
            Arg::Lit(v, q) => quote(v, q),
            Arg::Var => "$V".into(),
        });
    }
    out.join(" ")
}

fn render(n: &Node) -> String {
    match n {
        Node::Leaf(s) => render_simple(s),
        Node::DynName => "$C x".into(),
        Node::Bin(a, op, b) => format!("{} {op} {}", render(a), render(b)),
        Node::Subshell(a) => format!("( {} )", render(a)),
        Node::Group(a) => format!("{{ {}; }}", render(a)),
        Node::Subst(a) => format!("echo $( {} )", render(a)),
        Node::Backtick(s) => format!("echo `{}`", render_simple(s)),
        Node::ProcSubst(a) => format!("cat <( {} )", render(a)),
        Node::BashC(a) => format!("bash -c '{}'", render(a).replace('\'', "'\\''")),
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle: the structured list of what runs, and an independent matcher.

#[derive(Clone, Debug, PartialEq)]
enum W {
    Lit(String),
    Dyn,
}

/// One command that runs: its readings (as written, then unwrapped), or "unknown program".
#[derive(Debug)]
enum Run {
    Forms(Vec<Vec<W>>),
    Unknown,
}

fn simple_runs(s: &Simple) -> Run {
    let name = if s.by_path {
        format!("/bin/{}", s.name)
    } else {
        s.name.clone()
    };
    let mut inner = vec![W::Lit(name)];
    for a in &s.args {
        inner.push(match a {
            Arg::Lit(v, _) => W::Lit(v.clone()),
            Arg::Var => W::Dyn,
        });
    }
    let lit = |v: &[&str]| {
        v.iter()
            .map(|s| W::Lit((*s).to_owned()))
            .collect::<Vec<_>>()
    };
    // The policy also reads `git <global options> cmd ...` as `git cmd ...` (its canonical form).
    let git = git_canonical(&inner);
    let mut forms = match s.wrap {
        Wrap::None => vec![inner],
        Wrap::Sudo => vec![[lit(&["sudo"]), inner.clone()].concat(), inner],
        Wrap::Env => vec![[lit(&["env", "A=2"]), inner.clone()].concat(), inner],
        Wrap::Timeout => vec![[lit(&["timeout", "5"]), inner.clone()].concat(), inner],
        Wrap::Xargs => {
            let mut with_input = inner.clone();
            with_input.push(W::Dyn);
            vec![[lit(&["xargs"]), inner].concat(), with_input]
        }
    };
    forms.extend(git);
    Run::Forms(forms)
}

/// `git` with leading global options (`--x`, `-C d`, `-c k=v`, `-p`...) as `git` and the rest,
/// as the policy reads it; dynamic words stop the skipping.
fn git_canonical(inner: &[W]) -> Option<Vec<W>> {
    match inner.first() {
        Some(W::Lit(n)) if n == "git" || n.ends_with("/git") => {}
        _ => return None,
    }
    let args = &inner[1..];
    let mut i = 0;
    while i < args.len() {
        let W::Lit(a) = &args[i] else { break };
        match a.as_str() {
            "-C" | "-c" | "--git-dir" | "--work-tree" | "--namespace" | "--config-env"
            | "--super-prefix" => i += 2,
            "--exec-path" | "-p" | "-P" => i += 1,
            _ if a.starts_with("--") && a.len() > 2 => i += 1,
            _ => break,
        }
    }
    if i == 0 || i >= args.len() {
        return None;
    }
    let mut canon = vec![W::Lit("git".into())];
    canon.extend_from_slice(&args[i..]);
    Some(canon)
}

/// Every command the node runs; `bash -c` itself adds a command judged only by explicit rules.
fn runs(n: &Node, out: &mut Vec<(Run, bool)>) {
    match n {
        Node::Leaf(s) => out.push((simple_runs(s), false)),
        Node::DynName => out.push((Run::Unknown, false)),
        Node::Bin(a, _, b) => {
            runs(a, out);
            runs(b, out);
        }
        Node::Subshell(a) | Node::Group(a) => runs(a, out),
        Node::Subst(a) => {
            out.push((Run::Forms(vec![vec![W::Lit("echo".into()), W::Dyn]]), false));
            runs(a, out);
        }
        Node::Backtick(s) => {
            out.push((Run::Forms(vec![vec![W::Lit("echo".into()), W::Dyn]]), false));
            out.push((simple_runs(s), false));
        }
        Node::ProcSubst(a) => {
            out.push((Run::Forms(vec![vec![W::Lit("cat".into()), W::Dyn]]), false));
            runs(a, out);
        }
        Node::BashC(a) => {
            let script = render(a);
            out.push((
                Run::Forms(vec![vec![
                    W::Lit("bash".into()),
                    W::Lit("-c".into()),
                    W::Lit(script),
                ]]),
                true,
            ));
            runs(a, out);
        }
    }
}

/// Plain recursive glob match (`*` = any run of characters).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

fn pattern_matches(pattern: &str, line: &str) -> bool {
    match pattern.strip_suffix(":*") {
        // `P:*`: exactly `P`, or `P` and a space and anything.
        Some(prefix) => line == prefix || glob(format!("{prefix} *").as_bytes(), line.as_bytes()),
        None => glob(pattern.as_bytes(), line.as_bytes()),
    }
}

/// A reading of a form: each dynamic word replaced by a string, or removed (`None`).
fn instantiate(form: &[W], values: &[Option<&str>]) -> Vec<String> {
    let mut i = 0;
    let mut out = Vec::new();
    for w in form {
        match w {
            W::Lit(s) => out.push(s.clone()),
            W::Dyn => {
                if let Some(v) = values[i] {
                    out.push(v.to_owned());
                }
                i += 1;
            }
        }
    }
    out
}

fn rule_hits(verdict: Verdict, pattern: &str, words: &[String]) -> bool {
    let line = words.join(" ");
    if pattern_matches(pattern, &line) {
        return true;
    }
    // Deny/ask rules also see a program named by a path by its base name.
    let first_has_slash = pattern.split(' ').next().unwrap_or("").contains('/');
    if verdict != Verdict::Allow && !first_has_slash && words[0].contains('/') {
        let mut b = words.to_vec();
        b[0] = b[0].rsplit('/').next().unwrap().to_owned();
        return pattern_matches(pattern, &b.join(" "));
    }
    false
}

fn all_combos<'a>(slots: usize, choices: &[Option<&'a str>]) -> Vec<Vec<Option<&'a str>>> {
    let mut out = vec![Vec::new()];
    for _ in 0..slots {
        let mut next = Vec::new();
        for prefix in &out {
            for c in choices {
                let mut v = prefix.clone();
                v.push(*c);
                next.push(v);
            }
        }
        out = next;
    }
    out
}

fn oracle(rules: &[(Verdict, String)], default: Verdict, node: &Node) -> Verdict {
    let mut list = Vec::new();
    runs(node, &mut list);
    // Candidate values for "may match": the rules' own words, alone and in pairs, and "".
    let mut vocab: Vec<String> = vec![String::new()];
    let words: Vec<String> = rules
        .iter()
        .flat_map(|(_, p)| {
            p.trim_end_matches(":*")
                .trim_end_matches('*')
                .split(' ')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    for a in &words {
        vocab.push(a.clone());
        for b in &words {
            vocab.push(format!("{a} {b}"));
        }
    }
    let junk = "\u{7}junk\u{7}";
    let mut verdict = Verdict::Allow;
    for (run, explicit_only) in list {
        let forms = match run {
            Run::Unknown => {
                verdict = verdict.max(Verdict::Ask);
                continue;
            }
            Run::Forms(f) => f,
        };
        let mut best: Option<Verdict> = None;
        for form in &forms {
            let slots = form.iter().filter(|w| **w == W::Dyn).count();
            let certain_sets = all_combos(slots, &[None, Some(junk)]);
            let mut possible_choices: Vec<Option<&str>> = vec![None];
            possible_choices.extend(vocab.iter().map(|v| Some(v.as_str())));
            let possible_sets = all_combos(slots, &possible_choices);
            for (v, p) in rules {
                let certain = certain_sets
                    .iter()
                    .all(|vals| rule_hits(*v, p, &instantiate(form, vals)));
                let got = if certain {
                    Some(*v)
                } else if *v != Verdict::Allow
                    && possible_sets
                        .iter()
                        .any(|vals| rule_hits(*v, p, &instantiate(form, vals)))
                {
                    Some(Verdict::Ask)
                } else {
                    None
                };
                if let Some(g) = got {
                    best = Some(best.map_or(g, |b| b.max(g)));
                }
            }
        }
        match best {
            Some(b) => verdict = verdict.max(b),
            None if explicit_only => {}
            None => verdict = verdict.max(default),
        }
    }
    verdict
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn policy_agrees_with_the_oracle(
        rules in rules_strategy(),
        default in prop_oneof![Just(Verdict::Allow), Just(Verdict::Ask), Just(Verdict::Deny)],
        node in node_strategy(),
    ) {
        let mut policy = Policy::new().default_command(default);
        for (v, p) in &rules {
            policy = match v {
                Verdict::Allow => policy.allow(p),
                Verdict::Ask => policy.ask(p),
                Verdict::Deny => policy.deny(p),
            }.unwrap();
        }
        let line = render(&node);
        let got = policy.check_command(&line);
        let want = oracle(&rules, default, &node);
        prop_assert_eq!(got.verdict, want, "line: {}\nrules: {:?}\ndecision: {:#?}", line, rules, got);
    }
}

#[test]
fn the_oracle_can_disagree() {
    // A sanity check of the oracle itself on a known case.
    let rules = vec![(Verdict::Deny, "rm -rf*".to_owned())];
    let node = Node::Bin(
        Box::new(Node::Leaf(Simple {
            env: vec![],
            name: "ls".into(),
            name_quote: Quote::Bare,
            by_path: false,
            args: vec![],
            wrap: Wrap::None,
        })),
        "&&",
        Box::new(Node::Subst(Box::new(Node::Leaf(Simple {
            env: vec!["A=1"],
            name: "rm".into(),
            name_quote: Quote::Single,
            by_path: true,
            args: vec![
                Arg::Lit("-rf".into(), Quote::Double),
                Arg::Lit("/".into(), Quote::Bare),
            ],
            wrap: Wrap::Sudo,
        })))),
    );
    assert_eq!(oracle(&rules, Verdict::Allow, &node), Verdict::Deny);
    assert_eq!(
        render(&node),
        "ls && echo $( A=1 sudo '/bin/rm' \"-rf\" / )"
    );
    assert_eq!(oracle(&[], Verdict::Allow, &node), Verdict::Allow);
}
