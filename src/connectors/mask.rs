//! The one secret masker: credentials and the leaver's identifiers are taken out of a vendor's
//! text before it becomes a reason (and so reaches logs, `last_error` and the audit log). Our own
//! code rather than a crate: what it matches (percent-encoded, JSON- and XML-escaped forms, a Basic
//! pair's Base64, whole words only for names) is specific to what vendors echo back.

use std::collections::VecDeque;
use std::sync::Mutex;

use base64::Engine as _;

use super::{ConnectorError, Target};

/// What a credential becomes in masked text.
pub const SECRET: &str = "<redacted>";
/// What one of the leaver's identifiers becomes in masked text.
pub const PERSON: &str = "<person>";

/// Issued tokens a [`Mask`] keeps.
const KEEP_ISSUED: usize = 8;

/// Identifiers shorter than this are not masked: a two-letter name would blank out ordinary words.
const MIN_PERSONAL_CHARS: usize = 3;

/// A connector's credentials, to mask in vendor text. Each secret is matched as written and
/// percent-encoded, a Basic `user:password` pair as the Base64 sent in its header, all ignoring
/// ASCII case; tokens issued at run time are added as they arrive (the most recent few are kept).
/// A user name is masked only as a whole word, since it may be an ordinary word ("deprov" in
/// "deprovision").
#[derive(Debug, Default)]
pub struct Mask {
    /// Each form and whether it is masked only as a whole word.
    fixed: Vec<(String, bool)>,
    issued: Mutex<VecDeque<String>>,
}

impl Mask {
    /// A mask of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret (as written and percent-encoded), masked wherever it appears.
    pub fn with_secret(mut self, value: &str) -> Self {
        self.add(value.to_string(), false);
        self.add(super::http::encode_component(value), false);
        self
    }

    /// Adds a user name (as written and percent-encoded), masked where it stands as a whole word.
    pub fn with_user(mut self, value: &str) -> Self {
        self.add(value.to_string(), true);
        self.add(super::http::encode_component(value), true);
        self
    }

    /// Adds the Base64 form of a Basic `user:password` pair (the parts themselves are added with
    /// [`Mask::with_user`] and [`Mask::with_secret`]).
    pub fn with_basic(mut self, user: &str, password: &str) -> Self {
        self.add(basic_credentials(user, password), false);
        self
    }

    fn add(&mut self, form: String, whole_word: bool) {
        if !form.is_empty() && !self.fixed.iter().any(|(f, _)| *f == form) {
            self.fixed.push((form, whole_word));
        }
    }

    /// Adds a token the vendor issued.
    pub fn remember(&self, token: &str) {
        if token.is_empty() {
            return;
        }
        if let Ok(mut issued) = self.issued.lock() {
            if !issued.iter().any(|t| t == token) {
                issued.push_back(token.to_string());
            }
            while issued.len() > KEEP_ISSUED {
                issued.pop_front();
            }
        }
    }

    /// `text` with every known credential replaced by [`SECRET`].
    pub fn mask(&self, text: &str) -> String {
        let mut forms = self.fixed.clone();
        if let Ok(issued) = self.issued.lock() {
            forms.extend(issued.iter().map(|t| (t.clone(), false)));
        }
        replace_all(text, forms, SECRET)
    }

    /// `text` with every known credential replaced by [`SECRET`] and each of the leaver's
    /// `identifiers` by [`PERSON`] (see [`personal`]).
    pub fn mask_with_person<'a>(
        &self,
        text: &str,
        identifiers: impl IntoIterator<Item = &'a str>,
    ) -> String {
        personal(&self.mask(text), identifiers)
    }

    /// The error with the credentials masked in its reason (a probe, which has no leaver).
    pub fn error(&self, e: ConnectorError) -> ConnectorError {
        e.map_reason(|r| self.mask(r))
    }

    /// The error with the credentials and the leaver's [`identifiers`] masked in its reason: what
    /// every connector's `resolve` and `remove` hand to the worker.
    pub fn error_for(&self, e: ConnectorError, target: &Target) -> ConnectorError {
        e.map_reason(|r| self.mask_with_person(r, identifiers(target)))
    }
}

/// The leaver's identifiers a vendor may echo back: the account key, email, username, UPN and
/// display name. Not the employee id: it is the audit log's own key for the person.
pub fn identifiers(target: &Target) -> Vec<&str> {
    let person = &target.person;
    [
        Some(target.account.as_str()),
        person.email.as_deref(),
        person.username.as_deref(),
        person.upn.as_deref(),
        person.display_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|v| *v != person.employee_id)
    .collect()
}

/// `text` with each of the leaver's identifiers replaced by [`PERSON`] where it stands as a whole
/// word: as written, percent-encoded, JSON- and XML-escaped, and, for a `PREFIX\name` key, the name
/// alone. Identifiers shorter than three characters are left, so ordinary words survive.
pub fn personal<'a>(text: &str, identifiers: impl IntoIterator<Item = &'a str>) -> String {
    let mut forms = Vec::new();
    let mut add = |value: &str| {
        if value.chars().count() < MIN_PERSONAL_CHARS {
            return;
        }
        forms.push((value.to_string(), true));
        forms.push((super::http::encode_component(value), true));
        forms.push((quick_xml::escape::escape(value).into_owned(), true));
        if let Ok(quoted) = serde_json::to_string(value) {
            forms.push((quoted[1..quoted.len() - 1].to_string(), true));
        }
    };
    for value in identifiers {
        add(value);
        if let Some((_, name)) = value.rsplit_once('\\') {
            add(name);
        }
    }
    replace_all(text, forms, PERSON)
}

/// Replaces every form in `text` with `with`, longest first, so that a Base64 pair or an email is
/// replaced whole before a secret or a name inside it.
fn replace_all(text: &str, mut forms: Vec<(String, bool)>, with: &str) -> String {
    forms.retain(|(f, _)| !f.is_empty());
    forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
        .iter()
        .fold(text.to_string(), |out, (form, whole_word)| {
            replace_ignoring_case(&out, form, *whole_word, with)
        })
}

/// Replaces `needle` in `text` with `with`, ignoring ASCII case; with `whole_word`, only where no
/// letter or digit touches it.
fn replace_ignoring_case(text: &str, needle: &str, whole_word: bool, with: &str) -> String {
    // ASCII lower-casing keeps byte offsets, so matches found in the copy apply to the original.
    let lower_text = text.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower_text.match_indices(&lower_needle) {
        let end = at + needle.len();
        if at < rest
            || (whole_word
                && (is_word(text[..at].chars().next_back()) || is_word(text[end..].chars().next())))
        {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(with);
        rest = end;
    }
    out.push_str(&text[rest..]);
    out
}

/// The Base64 of `user:password` as an `Authorization: Basic` header carries it (RFC 7617), without
/// the `=` padding, so that it also matches where a vendor repeats it without.
pub fn basic_credentials(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Fault;

    #[test]
    fn secrets_are_masked_in_every_form_they_are_sent_in() {
        let mask = Mask::new()
            .with_user("svc")
            .with_secret("p@ss word")
            .with_basic("svc", "p@ss word");
        mask.remember("tok-123");
        let text = format!(
            "bad svc for svcs: P@SS WORD / p%40ss%20word / {} / tok-123",
            basic_credentials("svc", "p@ss word")
        );
        assert_eq!(
            mask.mask(&text),
            "bad <redacted> for svcs: <redacted> / <redacted> / <redacted> / <redacted>"
        );
        let e = mask.error(ConnectorError::new(
            Fault::CredentialRefused,
            "HTTP 401: bad svc",
        ));
        assert_eq!(e.reason, "HTTP 401: bad <redacted>");
    }

    #[test]
    fn the_mask_hides_secrets_in_every_form_they_travel_in() {
        let mask = Mask::new()
            .with_secret("S3cret/Pw")
            .with_user("svc")
            .with_basic("svc", "S3cret/Pw");
        mask.remember("issued-token-1");
        let text =
            "got s3cret/pw, S3cret%2FPw, Basic c3ZjOlMzY3JldC9Qdw== and Bearer ISSUED-TOKEN-1";
        assert_eq!(
            mask.mask(text),
            "got <redacted>, <redacted>, Basic <redacted>== and Bearer <redacted>"
        );
    }

    #[test]
    fn the_basic_pair_is_base64_without_padding() {
        // base64("deprov:oc-password-91f2") is "ZGVwcm92Om9jLXBhc3N3b3JkLTkxZjI=".
        assert_eq!(
            basic_credentials("deprov", "oc-password-91f2"),
            "ZGVwcm92Om9jLXBhc3N3b3JkLTkxZjI"
        );
        assert_eq!(basic_credentials("a", "b"), "YTpi");
        assert_eq!(basic_credentials("ab", "c"), "YWI6Yw");
        // RFC 7617's example pair.
        assert_eq!(
            basic_credentials("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ"
        );
    }

    #[test]
    fn a_leavers_identifiers_are_masked_as_whole_words_in_every_encoding() {
        let text = r#"user ann.o'neil@example.org (ann.o%27neil%40example.org, MyIdP\bcho, bcho, ann.o&apos;neil@example.org) deprovisioned by al"#;
        assert_eq!(
            personal(
                text,
                ["ann.o'neil@example.org", "MyIdP\\bcho", "al", "bchoX"]
            ),
            "user <person> (<person>, <person>, <person>, <person>) deprovisioned by al"
        );
        assert_eq!(personal("a \"q\\\"x\" b", ["q\"x"]), "a \"<person>\" b");
    }
}
