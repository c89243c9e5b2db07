//! Secrets: the [`Secret`] type that never prints its value, reading a secret from exactly one of a file (systemd
//! credentials first, refused when world-readable) or an environment variable, and the other file permission
//! checks of the config (the config file itself, exec programs).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Validator;
use super::diagnostics::io_message;

/// A secret value (token, password). `Debug` and `Display` print `<redacted>`; only [`Secret::expose`] gives the
/// value. It deliberately has no `PartialEq`: compare tokens with a constant-time comparison.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret value itself; keep it out of logs, errors and metrics.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Looks up an environment variable; injectable so tests need not touch the process environment.
pub(super) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

impl Validator<'_> {
    /// Resolves the secret `<table>.<name>` from exactly one of `<name>_file` and `<name>_env`.
    pub(crate) fn secret(
        &mut self,
        table: &str,
        name: &str,
        file: Option<String>,
        env: Option<String>,
    ) -> Option<Secret> {
        let file_key = format!("{table}.{name}_file");
        let env_key = format!("{table}.{name}_env");
        match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(
                    &file_key,
                    format!("set either {name}_file or {name}_env, not both"),
                );
                None
            }
            (None, None) => {
                self.problem(
                    &file_key,
                    format!("missing; set {name}_file (a file holding the secret) or {name}_env (an environment variable)"),
                );
                None
            }
            (Some(file), None) => {
                let secret = self.secret_from_file(&file_key, &file)?;
                self.refuse_placeholder(&file_key, secret)
            }
            (None, Some(var)) => {
                let secret = self.secret_from_env(&env_key, &var)?;
                self.refuse_placeholder(&env_key, secret)
            }
        }
    }

    /// Refuses a secret that is an example's placeholder (`replace-with-...`, `changeme`, ...): a
    /// deployment applied as shipped must not start with a credential anyone can read in the repository.
    fn refuse_placeholder(&mut self, key: &str, secret: Secret) -> Option<Secret> {
        if is_placeholder(secret.expose()) {
            self.problem(
                key,
                "holds a placeholder from an example (\"replace-with-...\", \"changeme\", ...), not a real secret: generate one (e.g. `openssl rand -hex 32`)",
            );
            return None;
        }
        Some(secret)
    }

    fn secret_from_file(&mut self, key: &str, raw: &str) -> Option<Secret> {
        if raw.is_empty() {
            self.problem(key, "is empty; give the path of a file holding the secret");
            return None;
        }
        let given = Path::new(raw);
        let path = if given.is_absolute() {
            given.to_path_buf()
        } else {
            // systemd's LoadCredential= puts credentials in $CREDENTIALS_DIRECTORY.
            match (self.env)("CREDENTIALS_DIRECTORY") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(given),
                _ => self.dir.join(given),
            }
        };
        let shown = path.display().to_string();
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) => {
                self.problem(key, format!("cannot read {shown}: {}", io_message(&e)));
                return None;
            }
        };
        if !metadata.is_file() {
            self.problem(key, format!("{shown} is not a regular file"));
            return None;
        }
        if is_world_readable(&metadata) {
            self.problem(key, format!("{shown} is world-readable; chmod 600"));
            return None;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.problem(key, format!("cannot read {shown}: {}", io_message(&e)));
                return None;
            }
        };
        let Ok(mut value) = String::from_utf8(bytes) else {
            self.problem(key, format!("{shown} is not UTF-8 text"));
            return None;
        };
        let kept = value.trim_end_matches(['\n', '\r']).len();
        value.truncate(kept);
        if value.is_empty() {
            self.problem(key, format!("{shown} is empty"));
            return None;
        }
        Some(Secret(value))
    }

    fn secret_from_env(&mut self, key: &str, var: &str) -> Option<Secret> {
        if var.is_empty() {
            self.problem(key, "is empty; give the name of an environment variable");
            return None;
        }
        match (self.env)(var) {
            None => {
                self.problem(key, format!("environment variable {var} is not set"));
                None
            }
            Some(value) if value.is_empty() => {
                self.problem(key, format!("environment variable {var} is empty"));
                None
            }
            Some(value) => match value.into_string() {
                Ok(value) => Some(Secret(value)),
                Err(_) => {
                    self.problem(
                        key,
                        format!("environment variable {var} is not valid UTF-8"),
                    );
                    None
                }
            },
        }
    }
}

/// Whether a secret value is an example's placeholder rather than a credential.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    v.starts_with("replace-with")
        || v.starts_with("replace_with")
        || v.starts_with("your-")
        || [
            "changeme",
            "change-me",
            "secret",
            "password",
            "token",
            "xxx",
            "todo",
        ]
        .contains(&v.as_str())
}

/// `Ok` when `path` is an executable regular file.
pub(crate) fn check_executable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot use {shown}: {}", io_message(&e)))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if !is_executable(&metadata) {
        return Err(format!("{shown} is not executable (chmod +x)"));
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &std::fs::Metadata) -> bool {
    true
}

#[cfg(unix)]
fn is_world_readable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o004 != 0
}

#[cfg(not(unix))]
fn is_world_readable(_metadata: &std::fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
pub(super) fn is_world_writable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

#[cfg(not(unix))]
pub(super) fn is_world_writable(_path: &Path) -> bool {
    false
}
