//! Domain types shared by intake, planner, queue and connectors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A person as the HR feed describes them. Fields other than the employee id are optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Person {
    /// The HR system's stable id (validated: ASCII letters, digits, '.', '_', '-').
    pub employee_id: String,
    /// Work email, trimmed and lower-cased.
    pub email: Option<String>,
    /// Login name, case kept.
    pub username: Option<String>,
    /// User principal name, case kept.
    pub upn: Option<String>,
    /// Display name exactly as given after trimming.
    pub display_name: Option<String>,
    /// Extra attributes (string values only).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Person {
    /// The value of a stored person field by its template name, if present. Derived fields such as
    /// `collab_uid` are only available through [`Person::value`].
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "employee_id" => Some(self.employee_id.as_str()),
            "email" => self.email.as_deref(),
            "username" => self.username.as_deref(),
            "upn" => self.upn.as_deref(),
            "display_name" => self.display_name.as_deref(),
            other => other
                .strip_prefix("attributes.")
                .and_then(|key| self.attributes.get(key).map(String::as_str)),
        }
    }

    /// The value of any field a template may name: the stored fields plus the derived ones
    /// ([`DERIVED_FIELDS`]).
    pub fn value(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "collab_uid" => self.collab_uid().map(Cow::Owned),
            other => self.field(other).map(Cow::Borrowed),
        }
    }

    /// The uid part of an OpenConext collab person id: the username, else the email, with only
    /// `@` replaced by `_` (the normalisation EngineBlock applies; nothing else changes, not even case).
    pub fn collab_uid(&self) -> Option<String> {
        let uid = self
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
            .or(self.email.as_deref().filter(|e| !e.is_empty()))?;
        Some(uid.replace('@', "_"))
    }
}

/// What one valid feed row says about a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HrStatus {
    /// Terminated, effective at this instant (UTC, whole seconds).
    Terminated {
        /// When access must go.
        effective_at: DateTime<Utc>,
    },
    /// Active (again): rescinds an active termination.
    Active,
}

/// One valid row of a feed, a push body or a CLI enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    /// Who.
    pub person: Person,
    /// Their HR status.
    pub status: HrStatus,
}

/// Column names (CSV) or keys (JSON) that carry each person field. `None` means not mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNames {
    /// Column of the employee id (required).
    pub employee_id: String,
    /// Column of the email.
    pub email: Option<String>,
    /// Column of the username.
    pub username: Option<String>,
    /// Column of the UPN.
    pub upn: Option<String>,
    /// Column of the display name.
    pub display_name: Option<String>,
    /// Column of the termination's effective date (required).
    pub effective_date: String,
    /// Column of the HR status (required).
    pub status: String,
}

impl Default for FieldNames {
    fn default() -> Self {
        Self {
            employee_id: "employee_id".into(),
            email: Some("email".into()),
            username: Some("username".into()),
            upn: Some("upn".into()),
            display_name: Some("display_name".into()),
            effective_date: "effective_date".into(),
            status: "status".into(),
        }
    }
}

/// The status values that mean terminated and active; compared ASCII case-insensitively after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusValues {
    /// Values meaning the person is leaving or has left.
    pub terminated: Vec<String>,
    /// Values meaning the person is employed (a rehire or a rescinded termination).
    pub active: Vec<String>,
}

impl Default for StatusValues {
    fn default() -> Self {
        Self {
            terminated: vec!["terminated".into()],
            active: vec!["active".into()],
        }
    }
}

/// Person fields a template may name (attributes are named `attributes.KEY`); the last ones are
/// [`DERIVED_FIELDS`].
pub const PERSON_FIELDS: &[&str] = &[
    "employee_id",
    "email",
    "username",
    "upn",
    "display_name",
    "collab_uid",
];

/// Fields computed from the stored ones: `collab_uid` is the username (else the email) with `@`
/// replaced by `_`, for OpenConext collab person ids.
pub const DERIVED_FIELDS: &[&str] = &["collab_uid"];

/// A string with `{field}` placeholders, e.g. `"urn:collab:person:example.org:{username}"`.
/// `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Field(String),
}

impl Template {
    /// Parses a template; every placeholder must be one of `allowed` or `attributes.KEY`.
    pub fn parse(source: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed '{{' in template {source:?}")),
                        }
                    }
                    let name = name.trim().to_string();
                    let known = allowed.contains(&name.as_str())
                        || name
                            .strip_prefix("attributes.")
                            .is_some_and(|k| !k.is_empty());
                    if !known {
                        return Err(format!(
                            "unknown field {{{name}}} in template {source:?}; known fields: {}",
                            allowed
                                .iter()
                                .map(|f| format!("{{{f}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(TemplatePart::Field(name));
                }
                '}' => return Err(format!("unmatched '}}' in template {source:?}")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The field names the template uses.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Field(f) => Some(f.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// Renders the template; `Err(field)` names the first field that has no value.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
        self.render_with(|f| lookup(f).map(Cow::Borrowed))
    }

    /// Renders the template with a lookup that may compute values (e.g. [`Person::value`]);
    /// `Err(field)` names the first field that has no value.
    pub fn render_with<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<Cow<'a, str>>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Field(f) => out.push_str(&lookup(f).ok_or_else(|| f.clone())?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A case-insensitive pattern with `*` (any run of characters) and `?` (one character), used by
/// `never_remove` and connector scopes. Without wildcards it is an exact, case-insensitive match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    lower: Vec<char>,
}

impl Pattern {
    /// A pattern; empty patterns are refused.
    pub fn parse(source: &str) -> Result<Self, String> {
        let trimmed = source.trim();
        if trimmed.is_empty() {
            return Err("an empty pattern matches nothing; remove it".into());
        }
        if trimmed.chars().all(|c| c == '*') {
            return Err(format!("pattern {source:?} matches everyone; refusing it"));
        }
        Ok(Self {
            source: trimmed.to_string(),
            lower: trimmed.to_lowercase().chars().collect(),
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `value` matches (case-insensitively).
    pub fn matches(&self, value: &str) -> bool {
        let value: Vec<char> = value.trim().to_lowercase().chars().collect();
        // Iterative wildcard matching with one backtrack point: linear in practice, never exponential.
        let (p, v) = (&self.lower, &value);
        let (mut i, mut j) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while j < v.len() {
            if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
                i += 1;
                j += 1;
            } else if i < p.len() && p[i] == '*' {
                star = Some((i, j));
                i += 1;
            } else if let Some((si, sj)) = star {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            } else {
                return false;
            }
        }
        while i < p.len() && p[i] == '*' {
            i += 1;
        }
        i == p.len()
    }

    /// Whether the pattern matches the person's employee id, email or username.
    pub fn matches_person(&self, person: &Person) -> bool {
        self.matches(&person.employee_id)
            || person.email.as_deref().is_some_and(|e| self.matches(e))
            || person.username.as_deref().is_some_and(|u| self.matches(u))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The state of one removal (design §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalState {
    /// Waiting for an operator's approval (mass-removal guard).
    Held,
    /// Queued; runs when due.
    Pending,
    /// A destructive stage (a deletion) of a person under legal hold: waits until the hold ends.
    OnHold,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished: access is gone.
    Done,
    /// Dry-run: resolved, nothing changed.
    Planned,
    /// Dead letter: a permanent failure or attempts exhausted.
    Failed,
    /// Will not run (rescinded, excluded, rejected or cancelled by an operator).
    Cancelled,
}

impl RemovalState {
    /// Every state, in lifecycle order.
    pub const ALL: [RemovalState; 8] = [
        Self::Held,
        Self::Pending,
        Self::OnHold,
        Self::Running,
        Self::Done,
        Self::Planned,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Pending => "pending",
            Self::OnHold => "on_hold",
            Self::Running => "running",
            Self::Done => "done",
            Self::Planned => "planned",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RemovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RemovalState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown state {s:?} (expected one of held, pending, on_hold, running, done, planned, failed, cancelled)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_renders_fields_and_escaped_braces() {
        let t = Template::parse("urn:{{x}}:{username}@{email}", PERSON_FIELDS).unwrap();
        let p = Person {
            employee_id: "1".into(),
            email: Some("a@b.org".into()),
            username: Some("ann".into()),
            ..Person::default()
        };
        assert_eq!(t.render(|f| p.field(f)).unwrap(), "urn:{x}:ann@a@b.org");
        assert_eq!(t.fields().collect::<Vec<_>>(), vec!["username", "email"]);
    }

    #[test]
    fn patterns_match_case_insensitively_with_wildcards() {
        let p = Pattern::parse("svc-*").unwrap();
        assert!(p.matches("SVC-backup"));
        assert!(!p.matches("xsvc-backup"));
        let q = Pattern::parse("a?c*@example.org").unwrap();
        assert!(q.matches("abc@example.org"));
        assert!(q.matches("ABCdef@Example.org"));
        assert!(!q.matches("ac@example.org"));
        assert!(Pattern::parse("E1005").unwrap().matches("e1005"));
        assert!(!Pattern::parse("1005").unwrap().matches("01005"));
        assert!(Pattern::parse("*").is_err());
        assert!(Pattern::parse(" ").is_err());
        let long = "a".repeat(5000);
        assert!(!Pattern::parse("*a*a*a*a*a*b").unwrap().matches(&long));
        let person = Person {
            employee_id: "7".into(),
            username: Some("breakglass".into()),
            ..Person::default()
        };
        assert!(
            Pattern::parse("BreakGlass")
                .unwrap()
                .matches_person(&person)
        );
    }

    #[test]
    fn template_rejects_unknown_field_and_reports_missing_value() {
        let err = Template::parse("{mail}", PERSON_FIELDS).unwrap_err();
        assert!(err.contains("unknown field {mail}"), "{err}");
        let t = Template::parse("{upn}", PERSON_FIELDS).unwrap();
        let p = Person::default();
        assert_eq!(t.render(|f| p.field(f)).unwrap_err(), "upn");
    }

    #[test]
    fn collab_uid_replaces_only_the_at_sign_of_the_username_else_the_email() {
        let t =
            Template::parse("urn:collab:person:example.org:{collab_uid}", PERSON_FIELDS).unwrap();
        let mut p = Person {
            employee_id: "1".into(),
            email: Some("j.doe@example.org".into()),
            ..Person::default()
        };
        assert_eq!(
            t.render_with(|f| p.value(f)).unwrap(),
            "urn:collab:person:example.org:j.doe_example.org"
        );
        p.username = Some("J.Doe@Example.org".into());
        assert_eq!(p.collab_uid().as_deref(), Some("J.Doe_Example.org"));
        p.username = Some("jdoe".into());
        assert_eq!(
            t.render_with(|f| p.value(f)).unwrap(),
            "urn:collab:person:example.org:jdoe"
        );
        assert_eq!(p.field("collab_uid"), None, "derived fields are not stored");
        let nobody = Person::default();
        assert_eq!(
            t.render_with(|f| nobody.value(f)).unwrap_err(),
            "collab_uid"
        );
    }
}
