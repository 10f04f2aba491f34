//! Command patterns: `cargo test:*` (the command `cargo test` with any arguments or none),
//! `git push*` (any command line that starts with `git push`), `git status` (exactly that), `*`
//! anywhere matching any run of characters.
//!
//! A command is matched as its words joined by single spaces. A word that is only known at run
//! time (`$X`, `$(...)`) is an opaque token: a pattern matches the command *certainly* when it
//! matches whatever the token turns out to be (only a `*` covers it), and *possibly* when some
//! value of the token would make it match.

use super::PolicyError;

/// The character that stands for a word only known at run time in a joined command line. A NUL
/// byte cannot occur in a shell word, so no literal in a pattern matches it.
pub(crate) const DYNAMIC: char = '\0';

/// A parsed command pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandPattern {
    /// The pattern as written (whitespace collapsed).
    pub(crate) text: String,
    /// The globs it stands for (`P:*` is `P` and `P *`).
    globs: Vec<Vec<char>>,
    /// The first word contains a `/`: the pattern names a command by its path.
    names_path: bool,
}

impl CommandPattern {
    pub(crate) fn parse(raw: &str) -> Result<Self, PolicyError> {
        let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(PolicyError::BadPattern {
                pattern: raw.to_owned(),
                reason: "a command pattern cannot be empty".into(),
            });
        }
        if text.contains(DYNAMIC) {
            return Err(PolicyError::BadPattern {
                pattern: raw.escape_debug().to_string(),
                reason: "a command pattern cannot contain a NUL character".into(),
            });
        }
        let globs = match text.strip_suffix(":*") {
            Some(prefix) => {
                let prefix = prefix.trim_end();
                if prefix.is_empty() {
                    vec!["*".chars().collect()]
                } else {
                    vec![
                        prefix.chars().collect(),
                        format!("{prefix} *").chars().collect(),
                    ]
                }
            }
            None => vec![text.chars().collect()],
        };
        let names_path = text
            .split(' ')
            .next()
            .is_some_and(|first| first.contains('/'));
        Ok(Self {
            text,
            globs,
            names_path,
        })
    }

    /// Whether the pattern's first word is a path (`./scripts/test:*`), so that it is matched
    /// against the command name as written only.
    pub(crate) fn names_path(&self) -> bool {
        self.names_path
    }

    /// Matches for every value of the dynamic tokens in `line`.
    pub(crate) fn matches_certainly(&self, line: &[char]) -> bool {
        self.globs.iter().any(|g| glob_match(g, line))
    }

    /// Matches for some value of the dynamic tokens in `line`.
    pub(crate) fn matches_possibly(&self, line: &[char]) -> bool {
        self.globs
            .iter()
            .any(|g| prefixes_agree(g, line) && globs_intersect(g, line))
    }
}

/// `pattern` (with `*`) matches `subject` (literal, where [`DYNAMIC`] is matched only by `*`).
fn glob_match(pattern: &[char], subject: &[char]) -> bool {
    // Iterative matcher with one backtrack point (the classic wildcard algorithm).
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, s));
                p += 1;
            }
            Some(&c) if c == subject[s] && c != DYNAMIC => {
                p += 1;
                s += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The literal starts of `pattern` (up to its first `*`) and `subject` (up to its first dynamic
/// token) agree where both are literal: a cheap test that rules out most rules before
/// [`globs_intersect`].
fn prefixes_agree(pattern: &[char], subject: &[char]) -> bool {
    pattern
        .iter()
        .zip(subject)
        .take_while(|(p, s)| **p != '*' && **s != DYNAMIC)
        .all(|(p, s)| p == s)
}

/// Whether some string matches both `pattern` (`*` wildcards) and `subject` (where [`DYNAMIC`]
/// stands for any string).
fn globs_intersect(pattern: &[char], subject: &[char]) -> bool {
    let (n, m) = (pattern.len(), subject.len());
    // reach[i][j]: the prefixes pattern[..i] and subject[..j] can describe a common string
    // (with a wildcard possibly still open at either end).
    let w = m + 1;
    let mut reach = vec![false; (n + 1) * w];
    reach[0] = true;
    for i in 0..=n {
        for j in 0..=m {
            if !reach[i * w + j] {
                continue;
            }
            let pw = i < n && pattern[i] == '*';
            let sw = j < m && subject[j] == DYNAMIC;
            if pw {
                reach[(i + 1) * w + j] = true;
                if j < m {
                    reach[i * w + j + 1] = true;
                }
            }
            if sw {
                reach[i * w + j + 1] = true;
                if i < n {
                    reach[(i + 1) * w + j] = true;
                }
            }
            if i < n && j < m && !pw && !sw && pattern[i] == subject[j] {
                reach[(i + 1) * w + j + 1] = true;
            }
        }
    }
    reach[n * w + m]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(s: &str) -> Vec<char> {
        s.replace('$', &DYNAMIC.to_string()).chars().collect()
    }

    #[test]
    fn colon_star_is_a_word_prefix() {
        let p = CommandPattern::parse("cargo test:*").unwrap();
        assert!(p.matches_certainly(&line("cargo test")));
        assert!(p.matches_certainly(&line("cargo test --all")));
        assert!(!p.matches_certainly(&line("cargo testx")));
        assert!(!p.matches_certainly(&line("cargo")));
    }

    #[test]
    fn star_is_a_string_prefix() {
        let p = CommandPattern::parse("git push*").unwrap();
        assert!(p.matches_certainly(&line("git push")));
        assert!(p.matches_certainly(&line("git push origin main")));
        assert!(p.matches_certainly(&line("git pushx")));
        assert!(!p.matches_certainly(&line("git pull")));
    }

    #[test]
    fn dynamic_tokens() {
        let p = CommandPattern::parse("git push*").unwrap();
        assert!(!p.matches_certainly(&line("git $")));
        assert!(p.matches_possibly(&line("git $")));
        assert!(p.matches_certainly(&line("git push $")));
        assert!(!p.matches_possibly(&line("git pull $")));
        let cat = CommandPattern::parse("cat:*").unwrap();
        assert!(cat.matches_certainly(&line("cat $")));
        let exact = CommandPattern::parse("rm -rf /").unwrap();
        assert!(!exact.matches_certainly(&line("rm -rf $")));
        assert!(exact.matches_possibly(&line("rm -rf $")));
        assert!(exact.matches_possibly(&line("rm $ /")));
        assert!(!exact.matches_possibly(&line("rm $ /x")));
    }

    #[test]
    fn empty_patterns_are_refused() {
        assert!(CommandPattern::parse("  ").is_err());
    }
}
