//! `kind = "panopto"` settings: the site, the SOAP endpoint, the API user and its credential, and the
//! identity-provider prefixes tried when a leaver's key finds nobody.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{PanoptoConnector, is_guid};
use super::soap::unsafe_xml_char;
use crate::clock::Clock;
use crate::config::{ConnectorConfig, Rate, Secret, Validator, WorkersConfig, format_duration};
use crate::connectors::limit::Limiter;
use crate::connectors::{Connector, KindConfig};

/// Default panopto `timeout` (one SOAP call).
pub const DEFAULT_PANOPTO_TIMEOUT: Duration = Duration::from_secs(30);

/// `kind = "panopto"`: looks the leaver up with `GetUserByKey` and deletes them with `DeleteUsers`.
#[derive(Debug, Clone)]
pub struct PanoptoConfig {
    /// The site's web server FQDN as configured in Panopto, e.g. `demo.hosted.panopto.com` (part of the AuthCode).
    pub host: String,
    /// The UserManagement service URL: `https://{host}/Panopto/PublicAPI/4.6/UserManagement.svc` unless set.
    pub endpoint: String,
    /// The user key offboard authenticates as, e.g. `MyIdP\svc-offboard` (an Administrator).
    pub api_user_key: String,
    /// How the API user proves who it is.
    pub credential: PanoptoCredential,
    /// Identity-provider instance names tried in turn, in place of the account key's own prefix, when the account
    /// key finds nobody (e.g. `unified`).
    pub fallback_prefixes: Vec<String>,
    /// Limit for one SOAP call.
    pub timeout: Duration,
}

/// The secret of a Panopto API user.
#[derive(Debug, Clone)]
pub enum PanoptoCredential {
    /// A Panopto-internal account's password, sent as `AuthenticationInfo/Password`.
    Password(Secret),
    /// An identity provider's application key, from which each call's `AuthCode` is derived.
    ApplicationKey(Secret),
}

/// The panopto keys as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawPanopto {
    host: Option<String>,
    endpoint: Option<String>,
    api_user_key: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    application_key_file: Option<String>,
    application_key_env: Option<String>,
    fallback_prefixes: Option<Vec<String>>,
    timeout: Option<String>,
}

impl KindConfig for PanoptoConfig {
    type Raw = RawPanopto;

    const DEFAULT_RATE: Option<Rate> = Some(super::DEFAULT_RATE);

    fn validate(
        cx: &mut Validator<'_>,
        prefix: &str,
        raw: RawPanopto,
        workers: &WorkersConfig,
    ) -> Option<PanoptoConfig> {
        let before = cx.problem_count();
        let host_key = format!("{prefix}.host");
        let host = match raw.host.as_deref().map(str::trim) {
            None => {
                cx.problem(
                    &host_key,
                    "missing; set the site's web server FQDN, e.g. \"demo.hosted.panopto.com\"",
                );
                None
            }
            Some(host) => match check_host_name(host) {
                Ok(()) => Some(host.to_string()),
                Err(message) => {
                    cx.problem(&host_key, message);
                    None
                }
            },
        };

        let endpoint_key = format!("{prefix}.endpoint");
        let endpoint = match (&raw.endpoint, &host) {
            (Some(url), _) => match check_soap_endpoint(url) {
                Ok(()) => Some(url.clone()),
                Err(message) => {
                    cx.problem(&endpoint_key, message);
                    None
                }
            },
            (None, Some(host)) => Some(format!(
                "https://{host}/Panopto/PublicAPI/4.6/UserManagement.svc"
            )),
            (None, None) => None,
        };

        let user_key = format!("{prefix}.api_user_key");
        let api_user_key = match raw.api_user_key {
            None => {
                cx.problem(
                    &user_key,
                    "missing; set the user key offboard authenticates as, e.g. \"MyIdP\\\\svc-offboard\"",
                );
                None
            }
            Some(key) if key.trim().is_empty() => {
                cx.problem(&user_key, "is empty");
                None
            }
            Some(key) => match unsafe_xml_char(&key) {
                Some(c) => {
                    cx.problem(
                        &user_key,
                        format!("contains the character {c:?}, which XML cannot carry"),
                    );
                    None
                }
                None => Some(key),
            },
        };

        let password_set = raw.password_file.is_some() || raw.password_env.is_some();
        let app_key_set = raw.application_key_file.is_some() || raw.application_key_env.is_some();
        let table = prefix.to_string();
        let credential = match (password_set, app_key_set) {
            (true, true) => {
                cx.problem(
                    &format!("{prefix}.password_file"),
                    "set either password_file/password_env (a Panopto-internal API user) or application_key_file/application_key_env (an identity-provider API user), not both",
                );
                None
            }
            (false, false) => {
                cx.problem(
                    &format!("{prefix}.password_file"),
                    "missing; set password_file or password_env (a Panopto-internal API user), or application_key_file or application_key_env (an identity-provider API user)",
                );
                None
            }
            (true, false) => cx
                .secret(&table, "password", raw.password_file, raw.password_env)
                .and_then(|s| xml_safe_secret(cx, &format!("{prefix}.password"), s))
                .map(PanoptoCredential::Password),
            (false, true) => cx
                .secret(
                    &table,
                    "application_key",
                    raw.application_key_file,
                    raw.application_key_env,
                )
                .and_then(|s| xml_safe_secret(cx, &format!("{prefix}.application_key"), s))
                .map(|key| {
                    if !is_guid(key.expose().trim()) {
                        cx.warn(format!(
                            "{prefix}.application_key does not look like a GUID; Panopto shows the application key of an identity provider as one (System > Identity Providers)"
                        ));
                    }
                    PanoptoCredential::ApplicationKey(key)
                }),
        };
        if let (Some(key), Some(credential)) = (&api_user_key, &credential) {
            match credential {
                PanoptoCredential::Password(_) if key.contains('\\') => {
                    cx.warn(format!(
                        "{prefix}.api_user_key has an identity-provider prefix but a password is configured; identity-provider users authenticate with application_key_file/_env"
                    ));
                }
                PanoptoCredential::ApplicationKey(_) if !key.contains('\\') => {
                    cx.warn(format!(
                        "{prefix}.api_user_key has no identity-provider prefix (Instance\\user); an application key only authenticates users of that identity provider"
                    ));
                }
                _ => {}
            }
        }

        let prefixes_key = format!("{prefix}.fallback_prefixes");
        let mut fallback_prefixes: Vec<String> = Vec::new();
        for (i, p) in raw
            .fallback_prefixes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("{prefixes_key}[{i}]");
            if p.is_empty() {
                cx.problem(&key, "is empty");
            } else if p.contains('\\') {
                cx.problem(
                    &key,
                    format!(
                        "{p:?} contains a backslash; give the instance name only, e.g. \"unified\""
                    ),
                );
            } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.problem(
                    &key,
                    format!("{p:?} contains whitespace or a control character"),
                );
            } else if fallback_prefixes.iter().any(|q| q.eq_ignore_ascii_case(&p)) {
                cx.problem(&key, format!("{p:?} is listed twice"));
            } else {
                fallback_prefixes.push(p);
            }
        }

        let timeout_key = format!("{prefix}.timeout");
        let timeout = cx.duration(
            &timeout_key,
            raw.timeout.as_deref(),
            DEFAULT_PANOPTO_TIMEOUT,
        );
        if timeout.is_zero() {
            cx.problem(&timeout_key, "must be longer than 0s");
        } else {
            // One attempt makes a lookup per key variant and then the delete.
            let calls = u32::try_from(fallback_prefixes.len() + 2).unwrap_or(u32::MAX);
            let worst = timeout.saturating_mul(calls);
            if worst >= workers.lease {
                cx.warn(format!(
                    "{timeout_key} ({}) times the {calls} calls of one attempt is not shorter than workers.lease ({}): a slow attempt can outlive its lease and run twice",
                    format_duration(timeout),
                    format_duration(workers.lease)
                ));
            }
        }

        if cx.problem_count() > before {
            return None;
        }
        Some(PanoptoConfig {
            host: host?,
            endpoint: endpoint?,
            api_user_key: api_user_key?,
            credential: credential?,
            fallback_prefixes,
            timeout,
        })
    }

    fn stage_actions(&self) -> Vec<&'static str> {
        vec!["delete"]
    }

    fn deletes(&self) -> bool {
        true
    }

    fn limit_scope(&self) -> Option<String> {
        // Panopto counts per site and API user.
        Some(crate::connectors::kind::limit_scope(
            &self.endpoint,
            &self.api_user_key,
        ))
    }

    fn build(
        &self,
        _connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        _clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>> {
        Ok(Arc::new(PanoptoConnector::new(self.clone(), limiter)?))
    }
}

/// Refuses a secret that a SOAP request could not carry unchanged; never echoes it.
fn xml_safe_secret(cx: &mut Validator<'_>, key: &str, secret: Secret) -> Option<Secret> {
    if unsafe_xml_char(secret.expose()).is_some() {
        cx.problem(
            key,
            "contains a control character, which XML cannot carry; check the secret's source",
        );
        return None;
    }
    Some(secret)
}

/// `Ok` when `host` is a bare DNS name (no scheme, port or path).
fn check_host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is empty".into());
    }
    if host.contains("://") || host.contains('/') || host.contains(':') {
        return Err(format!(
            "{host:?} is not a bare host name; give only the web server FQDN, e.g. \"demo.hosted.panopto.com\" (set endpoint for a different URL)"
        ));
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok || host.len() > 253 {
        return Err(format!("{host:?} is not a valid DNS name"));
    }
    Ok(())
}

/// `Ok` when `url` is an https URL, or an http URL to this machine (tests, a local TLS proxy): the
/// API user's password or AuthCode travels in every request.
fn check_soap_endpoint(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain user:password@".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment; give the .svc URL itself".into());
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(
            "must use https: the API user's credentials are sent in every request (plain http is only accepted to 127.0.0.1, ::1 or localhost)"
                .into(),
        ),
        other => Err(format!("must start with https:// (found scheme {other:?})")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PanoptoCredential;
    use crate::config::testing::{parse_with, problem_for};
    use crate::connectors::ConnectorKind;

    const PANOPTO: &str = "[[connector]]\nname = \"panopto\"\nkind = \"panopto\"\naccount = \"MyIdP\\\\{username}\"\nhost = \"Demo.Hosted.Panopto.com\"\napi_user_key = \"MyIdP\\\\svc-offboard\"\n";

    #[test]
    fn panopto_connector_reads_its_keys_and_derives_the_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{PANOPTO}application_key_env = \"PANOPTO_KEY\"\nfallback_prefixes = [\"unified\"]\ntimeout = \"10s\"\n"
        );
        let key = "8D2B5E4A-1C3F-4E5D-9A7B-0C1D2E3F4A5B";
        let config = parse_with(&text, dir.path(), &[("PANOPTO_KEY", key)]).unwrap();
        let c = &config.connectors[0];
        assert_eq!(c.kind.as_str(), "panopto");
        assert_eq!(c.account.source(), "MyIdP\\{username}");
        let ConnectorKind::Panopto(p) = &c.kind else {
            panic!("not panopto")
        };
        assert_eq!(
            p.endpoint,
            "https://Demo.Hosted.Panopto.com/Panopto/PublicAPI/4.6/UserManagement.svc"
        );
        assert_eq!(p.api_user_key, "MyIdP\\svc-offboard");
        assert!(matches!(&p.credential, PanoptoCredential::ApplicationKey(k) if k.expose() == key));
        assert_eq!(p.fallback_prefixes, vec!["unified".to_string()]);
        assert_eq!(p.timeout, Duration::from_secs(10));
        assert!(
            !format!("{p:?}").contains("8D2B5E4A"),
            "the key is redacted in Debug"
        );
        assert!(
            !config
                .warnings
                .iter()
                .any(|w| w.contains("connector.panopto")
                    || w.contains("application_key")
                    || w.contains("api_user_key")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn panopto_needs_exactly_one_credential_kind() {
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            ("PW", "pw"),
            ("KEY", "8d2b5e4a-1c3f-4e5d-9a7b-0c1d2e3f4a5b"),
        ];
        let both = format!("{PANOPTO}password_env = \"PW\"\napplication_key_env = \"KEY\"\n");
        let err = parse_with(&both, dir.path(), &vars).unwrap_err();
        assert!(
            problem_for(&err.problems, "connector.panopto.password_file")
                .message
                .contains("not both")
        );
        let err = parse_with(PANOPTO, dir.path(), &vars).unwrap_err();
        assert!(
            problem_for(&err.problems, "connector.panopto.password_file")
                .message
                .starts_with("missing")
        );
        let both_of_one = format!("{PANOPTO}password_env = \"PW\"\npassword_file = \"pw\"\n");
        let err = parse_with(&both_of_one, dir.path(), &vars).unwrap_err();
        assert!(
            problem_for(&err.problems, "connector.panopto.password_file")
                .message
                .contains("not both")
        );
        let password = format!("{PANOPTO}password_env = \"PW\"\n");
        let config = parse_with(&password, dir.path(), &vars).unwrap();
        let ConnectorKind::Panopto(p) = &config.connectors[0].kind else {
            panic!("not panopto")
        };
        assert!(matches!(&p.credential, PanoptoCredential::Password(s) if s.expose() == "pw"));
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("identity-provider prefix")),
            "a password for an IdP key is worth a warning: {:?}",
            config.warnings
        );
        let control = parse_with(&password, dir.path(), &[("PW", "a\u{1}b")]).unwrap_err();
        let problem = problem_for(&control.problems, "connector.panopto.password");
        assert!(problem.message.contains("control character"), "{problem:?}");
        assert!(!problem.message.contains("a\u{1}b"));
    }

    #[test]
    fn panopto_host_endpoint_and_prefixes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let vars = [("PW", "pw")];
        let with = |extra: &str| {
            format!("{PANOPTO}password_env = \"PW\"\n{extra}").replace(
                "host = \"Demo.Hosted.Panopto.com\"\n",
                if extra.contains("host =") {
                    ""
                } else {
                    "host = \"demo.hosted.panopto.com\"\n"
                },
            )
        };
        for (extra, key, needle) in [
            (
                "host = \"https://demo.hosted.panopto.com\"\n",
                "host",
                "bare host name",
            ),
            (
                "host = \"demo..panopto.com\"\n",
                "host",
                "not a valid DNS name",
            ),
            (
                "endpoint = \"http://panopto.example.org/x.svc\"\n",
                "endpoint",
                "must use https",
            ),
            (
                "endpoint = \"https://u:p@panopto.example.org/x.svc\"\n",
                "endpoint",
                "user:password",
            ),
            (
                "endpoint = \"ftp://panopto.example.org/x.svc\"\n",
                "endpoint",
                "https://",
            ),
            (
                "fallback_prefixes = [\"unified\\\\\"]\n",
                "fallback_prefixes[0]",
                "backslash",
            ),
            (
                "fallback_prefixes = [\"unified\", \"Unified\"]\n",
                "fallback_prefixes[1]",
                "twice",
            ),
            ("timeout = \"0s\"\n", "timeout", "longer than 0s"),
            ("api_token = \"x\"\n", "api_token", "unknown field"),
        ] {
            let err = parse_with(&with(extra), dir.path(), &vars).unwrap_err();
            let problem = problem_for(&err.problems, &format!("connector.panopto.{key}"));
            assert!(problem.message.contains(needle), "{extra}: {problem:?}");
        }
        let local = parse_with(
            &with(
                "endpoint = \"http://127.0.0.1:8080/Panopto/PublicAPI/4.6/UserManagement.svc\"\n",
            ),
            dir.path(),
            &vars,
        )
        .unwrap();
        let ConnectorKind::Panopto(p) = &local.connectors[0].kind else {
            panic!("not panopto")
        };
        assert_eq!(p.host, "demo.hosted.panopto.com");
        assert!(p.endpoint.starts_with("http://127.0.0.1:8080/"));
        let no_host =
            "[[connector]]\nname = \"panopto\"\nkind = \"panopto\"\npassword_env = \"PW\"\n";
        let err = parse_with(no_host, dir.path(), &vars).unwrap_err();
        for key in ["host", "api_user_key"] {
            assert!(
                problem_for(&err.problems, &format!("connector.panopto.{key}"))
                    .message
                    .starts_with("missing")
            );
        }
    }

    #[test]
    fn a_slow_panopto_timeout_against_the_lease_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[workers]\nlease = \"1m\"\n{PANOPTO}password_env = \"PW\"\ntimeout = \"20s\"\nfallback_prefixes = [\"unified\"]\n"
        );
        let config = parse_with(&text, dir.path(), &[("PW", "pw")]).unwrap();
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("connector.panopto.timeout (20s) times the 3 calls")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn example_panopto_block_parses_once_uncommented() {
        let example = include_str!("../../../config/offboard.example.toml");
        let start = example
            .find("# [[connector]]\n# name = \"panopto\"")
            .expect("the example has a commented panopto block");
        let mut text = String::new();
        for line in example[start..].lines() {
            // The block ends where the next commented section begins.
            if line.starts_with("# ---") {
                break;
            }
            let line = line.trim_start_matches("# ");
            let is_key = line.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            // One credential source only: the environment variable holding the application key.
            let other_source = ["password_file", "password_env", "application_key_file"]
                .iter()
                .any(|k| line.starts_with(&format!("{k} =")));
            if line == "[[connector]]" || (is_key && !other_source) {
                text.push_str(line);
                text.push('\n');
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let config = parse_with(
            &text,
            dir.path(),
            &[(
                "OFFBOARD_PANOPTO_APPLICATION_KEY",
                "8d2b5e4a-1c3f-4e5d-9a7b-0c1d2e3f4a5b",
            )],
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let c = config.connector("panopto").unwrap();
        assert_eq!(c.account.source(), "MyIdP\\{username}");
        let ConnectorKind::Panopto(p) = &c.kind else {
            panic!("not panopto")
        };
        assert_eq!(p.api_user_key, "MyIdP\\svc-offboard");
        assert_eq!(p.fallback_prefixes, vec!["unified".to_string()]);
        assert!(matches!(p.credential, PanoptoCredential::ApplicationKey(_)));
    }
}
