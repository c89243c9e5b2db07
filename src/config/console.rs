//! `[console]`: the web console for operators and auditors (`crate::console`): where it listens, how
//! people are identified (a trusted reverse proxy's header, or login tokens from a file), their roles,
//! and the four-eyes rule.

use std::net::{IpAddr, SocketAddr};

use super::Validator;
use super::raw::RawConsole;
use super::secrets::Secret;

/// What a person may do in the console. Each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page, searches and downloads the audit log.
    Viewer,
    /// Also retries and cancels removals.
    Operator,
    /// Also approves and rejects batches held by the mass-removal guard.
    Approver,
}

impl Role {
    /// The role's name in the config and on the pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "approver" => Some(Role::Approver),
            _ => None,
        }
    }
}

/// How the console knows who is asking.
#[derive(Debug, Clone)]
pub enum ConsoleAuth {
    /// A reverse proxy (oauth2-proxy, an OIDC proxy) that authenticated the person puts their name in
    /// `header`; requests from any other address are refused.
    Proxy {
        /// The header naming the person, e.g. `X-Forwarded-User`.
        header: String,
        /// The proxies' addresses.
        trusted: Vec<IpAddr>,
        /// Who has which role (`*`: everyone the proxy lets through).
        roles: Vec<(String, Role)>,
    },
    /// People log in with a token from `tokens_file` (lines `NAME ROLE TOKEN`).
    Tokens(Vec<ConsoleUser>),
}

/// One login of `tokens_file`.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// Who (recorded as the actor of what they do).
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Their login token.
    pub token: Secret,
}

/// `[console]`.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Where the console listens (its own address, apart from `http.listen`).
    pub listen: SocketAddr,
    /// How people are identified.
    pub auth: ConsoleAuth,
    /// The approver of a held batch must not be the person who triggered it (an import or an enqueue).
    pub four_eyes: bool,
    /// The key that signs session cookies, so several replicas accept each other's sessions; else a
    /// random key per process (sessions then end with a restart).
    pub session_key: Option<Secret>,
    /// How long a login lasts.
    pub session_hours: u32,
}

impl Validator<'_> {
    /// `[console]`; `None` when the table is absent (the console is off).
    pub(super) fn console(&mut self, raw: RawConsole) -> Option<ConsoleConfig> {
        let before = self.problem_count();
        let listen = match raw.listen.as_deref() {
            None => {
                self.problem(
                    "console.listen",
                    "missing: the console's own address, e.g. \"127.0.0.1:9465\"",
                );
                None
            }
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        "console.listen",
                        format!("{text:?} is not an address and port, e.g. \"127.0.0.1:9465\""),
                    );
                    None
                }
            },
        };
        let auth = match raw.auth.as_deref() {
            Some("proxy") => self.console_proxy(&raw),
            Some("tokens") => self.console_tokens(&raw),
            Some(other) => {
                self.problem(
                    "console.auth",
                    format!("{other:?} is not \"proxy\" (a trusted reverse proxy's header) or \"tokens\" (logins from tokens_file)"),
                );
                None
            }
            None => {
                self.problem(
                    "console.auth",
                    "missing: \"proxy\" (a trusted reverse proxy's header) or \"tokens\" (logins from tokens_file)",
                );
                None
            }
        };
        let session_key = match (&raw.session_key_file, &raw.session_key_env) {
            (None, None) => None,
            (file, env) => self.secret("console", "session_key", file.clone(), env.clone()),
        };
        let session_hours =
            self.integer_in("console.session_hours", raw.session_hours, 12, 1, 24 * 30);
        if self.problem_count() > before {
            return None;
        }
        Some(ConsoleConfig {
            listen: listen?,
            auth: auth?,
            four_eyes: raw.four_eyes.unwrap_or(true),
            session_key,
            session_hours: u32::try_from(session_hours).unwrap_or(12),
        })
    }

    fn console_proxy(&mut self, raw: &RawConsole) -> Option<ConsoleAuth> {
        let header = raw
            .user_header
            .clone()
            .unwrap_or_else(|| "X-Forwarded-User".to_string());
        if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            self.problem(
                "console.user_header",
                format!("{header:?} is not a header name"),
            );
        }
        let mut trusted = Vec::new();
        for (i, text) in raw.trusted_proxies.iter().flatten().enumerate() {
            match text.parse::<IpAddr>() {
                Ok(ip) => trusted.push(ip),
                Err(_) => self.problem(
                    &format!("console.trusted_proxies[{i}]"),
                    format!("{text:?} is not an IP address"),
                ),
            }
        }
        if trusted.is_empty() {
            self.problem(
                "console.trusted_proxies",
                "missing: the addresses of the reverse proxies allowed to name the person, e.g. [\"127.0.0.1\"]",
            );
        }
        let mut roles = Vec::new();
        for (role, names) in [
            (Role::Approver, &raw.approvers),
            (Role::Operator, &raw.operators),
            (Role::Viewer, &raw.viewers),
        ] {
            for name in names.iter().flatten() {
                roles.push((name.clone(), role));
            }
        }
        if roles.is_empty() {
            self.problem(
                "console.viewers",
                "nobody has a role: list names in console.approvers, console.operators or console.viewers (\"*\": everyone the proxy lets through)",
            );
        }
        Some(ConsoleAuth::Proxy {
            header,
            trusted,
            roles,
        })
    }

    fn console_tokens(&mut self, raw: &RawConsole) -> Option<ConsoleAuth> {
        // The file is a secret: the same permission checks, one login per line.
        let text = self.secret("console", "tokens", raw.tokens_file.clone(), None)?;
        let mut users = Vec::new();
        for (i, line) in text.expose().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let key = format!("console.tokens_file line {}", i + 1);
            let [name, role, token] = fields.as_slice() else {
                self.problem(&key, "must be NAME ROLE TOKEN (three words)");
                continue;
            };
            let Some(role) = Role::parse(role) else {
                self.problem(
                    &key,
                    format!("{role:?} is not viewer, operator or approver"),
                );
                continue;
            };
            if token.len() < 16 {
                self.problem(&key, "the token is shorter than 16 characters");
                continue;
            }
            users.push(ConsoleUser {
                name: name.to_string(),
                role,
                token: Secret::new(token.to_string()),
            });
        }
        if users.is_empty() {
            self.problem(
                "console.tokens_file",
                "holds no login (lines NAME ROLE TOKEN)",
            );
        }
        Some(ConsoleAuth::Tokens(users))
    }
}
