//! `[database]`: the SQLite file (the default) or the PostgreSQL database (`postgres://`, with its password
//! from a file or a variable and its TLS options) that holds the queue and the audit log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawDatabase;
use super::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_DATABASE_URL, DEFAULT_MAX_CONNECTIONS, MAX_CONCURRENCY, Secret,
    Validator,
};

/// `[database]`: where the queue and the audit log are kept.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The SQLite file or the PostgreSQL server.
    pub backend: Backend,
    /// Size of the connection pool.
    pub max_connections: u32,
    /// How long a connection waits for a lock held by another before failing.
    pub busy_timeout: Duration,
}

/// The database backend of `database.url`.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file (absolute once the config is loaded): one process.
    Sqlite(PathBuf),
    /// A PostgreSQL server: any number of replicas.
    Postgres(PostgresConfig),
}

impl DatabaseConfig {
    /// The SQLite file, when the database is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(path) => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// The database as logs and messages name it: the SQLite path, or the PostgreSQL URL without a
    /// password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(path) => path.display().to_string(),
            Backend::Postgres(pg) => pg.redacted_url(),
        }
    }
}

/// A PostgreSQL server (`database.url = "postgres://..."`).
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The URL, without a password (a password in it is refused).
    pub url: String,
    /// The password, from `database.password_file` or `database.password_env`.
    pub password: Option<Secret>,
    /// `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub sslmode: Option<String>,
    /// The CA certificate(s) the server's certificate is checked against.
    pub ssl_root_cert: Option<PathBuf>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// The URL with any query string left out (it may name files or options nobody needs in a log).
    pub fn redacted_url(&self) -> String {
        self.url
            .split_once('?')
            .map_or(self.url.as_str(), |(base, _)| base)
            .to_string()
    }
}

impl Validator<'_> {
    pub(super) fn database(&mut self, raw: RawDatabase) -> DatabaseConfig {
        // The URL itself, or from a variable (a Kubernetes Secret's key); it never holds a password.
        let from_env = match (&raw.url, &raw.url_env) {
            (Some(_), Some(_)) => {
                self.problem("database.url_env", "set either url or url_env, not both");
                None
            }
            (None, Some(var)) => match (self.env)(var).and_then(|v| v.into_string().ok()) {
                Some(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
                _ => {
                    self.problem(
                        "database.url_env",
                        format!("environment variable {var} is not set (or empty)"),
                    );
                    None
                }
            },
            _ => None,
        };
        let url = from_env
            .as_deref()
            .or(raw.url.as_deref())
            .unwrap_or(DEFAULT_DATABASE_URL);
        let backend = if is_postgres_url(url) {
            Backend::Postgres(self.postgres(url, &raw))
        } else {
            for (key, set) in [
                ("database.password_file", raw.password_file.is_some()),
                ("database.password_env", raw.password_env.is_some()),
                ("database.sslmode", raw.sslmode.is_some()),
                ("database.ssl_root_cert", raw.ssl_root_cert.is_some()),
                ("database.connect_timeout", raw.connect_timeout.is_some()),
            ] {
                if set {
                    self.problem(key, "applies to a PostgreSQL database.url only");
                }
            }
            Backend::Sqlite(match sqlite_path(url, &self.dir) {
                Ok(path) => path,
                Err(message) => {
                    self.problem("database.url", message);
                    PathBuf::new()
                }
            })
        };
        let max_connections = self.integer_in(
            "database.max_connections",
            raw.max_connections,
            i64::from(DEFAULT_MAX_CONNECTIONS),
            1,
            MAX_CONCURRENCY,
        );
        DatabaseConfig {
            backend,
            max_connections: u32::try_from(max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
            busy_timeout: self.duration(
                "database.busy_timeout",
                raw.busy_timeout.as_deref(),
                DEFAULT_BUSY_TIMEOUT,
            ),
        }
    }
}

/// Whether `url` names a PostgreSQL server.
fn is_postgres_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl Validator<'_> {
    /// `database.*` for a PostgreSQL server: the URL (no password in it), the password from a file or a
    /// variable, TLS.
    fn postgres(&mut self, url: &str, raw: &RawDatabase) -> PostgresConfig {
        let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            self.problem(
                "database.url",
                "holds a password; put it in a file (database.password_file) or a variable (database.password_env) instead",
            );
        }
        if authority.is_empty() || authority.ends_with('@') {
            self.problem(
                "database.url",
                format!(
                    "names no server, e.g. \"{scheme}://offboard@db.example.com:5432/offboard\""
                ),
            );
        }
        let password = match (&raw.password_file, &raw.password_env) {
            (None, None) => None,
            (file, env) => self.secret("database", "password", file.clone(), env.clone()),
        };
        let sslmode = raw
            .sslmode
            .as_ref()
            .map(|mode| mode.trim().to_ascii_lowercase());
        if let Some(mode) = &sslmode
            && !matches!(
                mode.as_str(),
                "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
            )
        {
            self.problem(
                "database.sslmode",
                format!(
                    "{mode:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ),
            );
        }
        let ssl_root_cert = raw.ssl_root_cert.as_deref().map(|file| {
            let path = self.path(file);
            if !path.is_file() {
                self.problem(
                    "database.ssl_root_cert",
                    format!("{} is not a readable file", path.display()),
                );
            }
            path
        });
        PostgresConfig {
            url: url.to_string(),
            password,
            sslmode,
            ssl_root_cert,
            connect_timeout: self.duration(
                "database.connect_timeout",
                raw.connect_timeout.as_deref(),
                Duration::from_secs(10),
            ),
        }
    }
}

/// Turns a `database.url` into the SQLite file path. Only the scheme of a foreign URL is echoed: it may hold a
/// password.
fn sqlite_path(url: &str, dir: &Path) -> Result<PathBuf, String> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        return Err(match scheme.as_deref() {
            Some(scheme) if !scheme.is_empty() && !scheme.contains(['/', '\\']) => format!(
                "unsupported database scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST/DATABASE, e.g. \"sqlite:///var/lib/offboard/offboard.db\""
            ),
            _ => "must be a sqlite URL such as \"sqlite://offboard.db\" (relative to this file) or \"sqlite:///var/lib/offboard/offboard.db\"".to_string(),
        });
    };
    let file = rest.strip_prefix("//").unwrap_or(rest);
    if file.contains('?') {
        return Err(
            "URL parameters are not supported; use database.max_connections and database.busy_timeout".to_string(),
        );
    }
    if file.is_empty() {
        return Err("names no database file, e.g. \"sqlite://offboard.db\"".to_string());
    }
    if file.starts_with(":memory:") || file == "memory:" {
        return Err(
            "an in-memory database loses the queue on restart; give a file path".to_string(),
        );
    }
    Ok(dir.join(file))
}
