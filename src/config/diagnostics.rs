//! Diagnostics: every problem found in a config file, named by its dotted key and, where serde found it, by line
//! and column in the TOML text; the [`Validator`] that collects them (and the warnings) while the raw layer
//! becomes the validated one.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::secrets::EnvLookup;

/// Everything wrong with a config file; `Display` prints one `"{path}: {key}: {message}"` line per problem.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// Every problem found, in the order they were found.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub(super) fn single(path: &Path, key: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            problems: vec![Problem {
                key: key.to_string(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if problem.key.is_empty() {
                write!(f, "{}: {}", self.path.display(), problem.message)?;
            } else {
                write!(
                    f,
                    "{}: {}: {}",
                    self.path.display(),
                    problem.key,
                    problem.message
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `feed.schedule` or `connector.ldap_cleanup.timeout`; a connector whose name is missing or
    /// invalid is addressed by its 0-based position, e.g. `connector[1].timeout`. Empty for whole-file problems
    /// (unreadable file, TOML syntax error).
    pub key: String,
    /// What is wrong, with the bad value where that is not a secret.
    pub message: String,
}

/// State while turning the raw layer into the validated one: the problems and warnings found so far. Each
/// connector kind's `validate` (`crate::connectors::KindConfig`) records its problems here too, with the shared
/// value and secret readers (`values.rs`, `secrets.rs`).
pub(crate) struct Validator<'a> {
    /// The config text, to turn serde's byte offsets into lines and columns.
    pub(super) text: &'a str,
    /// The config file's directory: relative paths resolve against it.
    pub(super) dir: PathBuf,
    /// Environment lookup for `_env` secrets and `CREDENTIALS_DIRECTORY`.
    pub(super) env: EnvLookup<'a>,
    /// Every problem found, in order.
    pub(super) problems: Vec<Problem>,
    /// Non-fatal notes for `check-config`.
    pub(super) warnings: Vec<String>,
    /// Keys whose value deserializing refused.
    parse_failed: HashSet<String>,
}

impl<'a> Validator<'a> {
    /// A validator for the config text `text` read from a file in `dir`.
    pub(super) fn new(text: &'a str, dir: PathBuf, env: EnvLookup<'a>) -> Self {
        Self {
            text,
            dir,
            env,
            problems: Vec::new(),
            warnings: Vec::new(),
            parse_failed: HashSet::new(),
        }
    }

    /// Records a validation problem, unless deserializing already reported this key (its value was dropped, so a
    /// "missing" here would be noise).
    pub(crate) fn problem(&mut self, key: &str, message: impl Into<String>) {
        if self.parse_failed(key) {
            return;
        }
        self.problems.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records a non-fatal note for `check-config` (never a secret value).
    pub(crate) fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// How many problems were recorded so far; a validator compares it before and after a table.
    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// A path from the config made absolute against the config file's directory.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Deserializes an optional top-level table; a missing or broken one yields the defaults.
    pub(super) fn section<T: DeserializeOwned + Default>(
        &mut self,
        key: &str,
        value: Option<Spanned<DeValue<'_>>>,
    ) -> T {
        value
            .and_then(|value| self.deserialize(key, value))
            .unwrap_or_default()
    }

    /// Deserializes `value`; on failure records a problem keyed `prefix` plus the key the error points at.
    pub(super) fn deserialize<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let original = value.clone();
        self.deserialize_within(prefix, &original, value, 0)
    }

    /// Like [`Validator::deserialize`], but names error keys as found in `original` (which `value` was cut from).
    ///
    /// serde stops at the first error, so each offending entry is reported, dropped, and the rest deserialized
    /// again: every unknown key and wrong type in the table is reported, and the remaining keys still get
    /// validated. Entries at depth `keep_depth` or less are never dropped (the variant key of a connector kind).
    pub(super) fn deserialize_within<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        original: &Spanned<DeValue<'_>>,
        mut value: Spanned<DeValue<'_>>,
        keep_depth: usize,
    ) -> Option<T> {
        loop {
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let Some(span) = e.span() else {
                self.parse_problem(prefix.to_string(), e.message().to_string());
                return None;
            };
            let mut named = Vec::new();
            let key = if locate(original, span.start, &mut named) {
                join_key(prefix, &named)
            } else {
                prefix.to_string()
            };
            let (line, column) = line_col(self.text, span.start);
            let message = redact_strings(e.message());
            self.parse_problem(key, format!("{message} (line {line}, column {column})"));

            let mut segments = Vec::new();
            let found = locate(&value, span.start, &mut segments);
            // Array elements are not removed one by one: the whole key holding the array goes.
            let depth = segments.iter().take_while(|s| !s.starts_with('[')).count();
            if !found || depth <= keep_depth || !remove_entry(value.get_mut(), &segments[..depth]) {
                return None;
            }
        }
    }

    /// Records a problem found while deserializing; validation later stays silent about the same key.
    pub(super) fn parse_problem(&mut self, key: String, message: String) {
        self.parse_failed.insert(key.clone());
        self.problems.push(Problem { key, message });
    }

    /// Whether deserializing already reported (and dropped) this key.
    pub(super) fn parse_failed(&self, key: &str) -> bool {
        self.parse_failed.contains(key)
    }
}

/// An I/O error's text without the trailing "(os error N)".
pub(crate) fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Finds the key path of the entry that contains byte `offset`. Header tables (`[feed]`) only span their header,
/// so children are searched before the value's own span.
fn locate(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                path.push(key.get_ref().to_string());
                if key.span().contains(&offset) || locate(child, offset, path) {
                    return true;
                }
                path.pop();
            }
        }
        DeValue::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if locate(child, offset, path) {
                    return true;
                }
                path.pop();
            }
        }
        _ => {}
    }
    let span = value.span();
    span.contains(&offset) || span.start == offset
}

/// Drops quoted string values from a serde message (`invalid type: string "…", expected …`): a secret pasted
/// into the wrong key must not reach a log. The key and line are reported anyway.
pub(super) fn redact_strings(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        out.push_str("string");
        let mut chars = rest[at + MARK.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(at + MARK.len() + i + 1);
                    break;
                }
                _ => {}
            }
        }
        match end {
            Some(end) => rest = &rest[end..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Removes the table entry at `path` (table keys only); true when something was removed.
fn remove_entry(value: &mut DeValue<'_>, path: &[String]) -> bool {
    let DeValue::Table(table) = value else {
        return false;
    };
    match path {
        [] => false,
        [key] => table.remove(key.as_str()).is_some(),
        [key, rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|child| remove_entry(child.get_mut(), rest)),
    }
}

/// Joins a prefix and located segments into a dotted key; `[i]` segments attach without a dot.
fn join_key(prefix: &str, segments: &[String]) -> String {
    let mut key = prefix.to_string();
    for segment in segments {
        if !segment.starts_with('[') && !key.is_empty() {
            key.push('.');
        }
        key.push_str(segment);
    }
    key
}

/// The names in backticks, comma-separated, as serde lists expected keys.
pub(super) fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
