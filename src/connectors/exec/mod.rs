//! The `exec` connector: runs a local program (no shell) with arguments rendered from templates.
//!
//! Exit 0 means removed, a configured code means already absent, another configured code is a
//! permanent failure, and anything else (a signal, a timeout, a failure to start) is retried.

pub mod config;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::limit::Limiter;
use super::{
    Bound,
    BoxFuture, ConnectorError, Fault, RemoteAccount, RemovalOutcome, Resolution, Target, VendorCall,
};
use crate::connectors::exec::config::ExecConfig;

/// How much of the program's stderr is kept for the audit log.
pub const STDERR_KEEP: usize = 400;

/// Runs a configured program for each removal.
pub struct ExecConnector {
    config: ExecConfig,
    limiter: Arc<Limiter>,
}

impl ExecConnector {
    /// A connector for this config; each program run takes one call from `limiter`.
    pub fn new(config: ExecConfig, limiter: Arc<Limiter>) -> Self {
        Self { config, limiter }
    }

    fn render_args(&self, target: &Target) -> Result<Vec<String>, ConnectorError> {
        self.config
            .args
            .iter()
            .map(|t| {
                t.render_with(|field| match field {
                    "account" => Some(std::borrow::Cow::Borrowed(target.account.as_str())),
                    other => target.person.value(other),
                })
                .map_err(|missing| {
                    ConnectorError::new(Fault::Unsendable, format!(
                        "argument template {:?} needs {{{missing}}}, which this person does not have",
                        t.source()
                    ))
                })
            })
            .collect()
    }

    async fn run(&self, target: &Target) -> Result<RemovalOutcome, ConnectorError> {
        let args = self.render_args(target)?;
        self.limiter.acquire().await;
        let started = Instant::now();
        let result = self.run_program(target, &args).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (exit_code, error) = match &result {
            Ok((code, _)) => (*code, None),
            Err(e) => (None, Some(e.reason.clone())),
        };
        let outcome = match result {
            Ok((Some(0), _)) => Ok(RemovalOutcome::Removed),
            Ok((Some(code), _)) if self.config.exit_already_absent.contains(&code) => {
                Ok(RemovalOutcome::AlreadyAbsent)
            }
            Ok((Some(code), stderr)) if self.config.exit_permanent.contains(&code) => {
                Err(ConnectorError::new(
                    Fault::ProgramRefused,
                    format!("exit code {code}{}", stderr_suffix(&stderr)),
                ))
            }
            Ok((Some(code), stderr)) => Err(ConnectorError::new(
                Fault::ProgramFailed,
                format!("exit code {code}{}", stderr_suffix(&stderr)),
            )),
            Ok((None, stderr)) => Err(ConnectorError::new(
                Fault::ProgramFailed,
                format!("killed by a signal{}", stderr_suffix(&stderr)),
            )),
            Err(e) => Err(e),
        };
        target.calls.push(VendorCall {
            operation: "exec".into(),
            http_status: None,
            exit_code,
            duration_ms,
            error: error.or_else(|| outcome.as_ref().err().map(|e| e.reason.clone())),
            evidence: None,
        });
        outcome
    }

    /// Runs the program; returns its exit code (None when killed by a signal) and the start of its stderr.
    async fn run_program(
        &self,
        target: &Target,
        args: &[String],
    ) -> Result<(Option<i32>, String), ConnectorError> {
        let mut command = Command::new(&self.config.program);
        command
            .args(args)
            // The daemon's environment may hold other connectors' secrets: pass only what the program needs.
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("OFFBOARD_ACCOUNT", &target.account)
            .env("OFFBOARD_EMPLOYEE_ID", &target.person.employee_id)
            .env("OFFBOARD_REMOVAL_ID", target.removal_id.to_string())
            .env("OFFBOARD_ATTEMPT", target.attempt.to_string())
            // The stage's action (`deactivate`, `remove_entitlements`, `delete`), or `remove` for a
            // connector without stages.
            .env(
                "OFFBOARD_ACTION",
                if target.stage.is_empty() {
                    "remove"
                } else {
                    target.stage.as_str()
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            ConnectorError::new(
                Fault::ProgramFailed,
                format!("cannot start {}: {e}", self.config.program.display()),
            )
        })?;
        let stderr = child.stderr.take();
        let reader = tokio::spawn(async move {
            let mut kept = Vec::new();
            if let Some(mut stderr) = stderr {
                let mut buf = [0u8; 4096];
                // Keep reading to the end so the program never blocks on a full pipe.
                while let Ok(n) = stderr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        });
        let status = match tokio::time::timeout(self.config.timeout, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                return Err(ConnectorError::new(
                    Fault::ProgramFailed,
                    format!("waiting for the program failed: {e}"),
                ));
            }
            Err(_) => {
                let _ = child.kill().await;
                reader.abort();
                return Err(ConnectorError::new(
                    Fault::Timeout,
                    format!("timed out after {}", humanize(self.config.timeout)),
                ));
            }
        };
        let stderr = match tokio::time::timeout(Duration::from_secs(2), reader).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_string(),
            _ => String::new(),
        };
        Ok((status.code(), stderr))
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl super::Connector for ExecConnector {
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        // A local program has no read-only lookup: the account key is the account.
        Box::pin(async move {
            Ok(Resolution::Found(RemoteAccount {
                id: target.account.clone(),
                summary: Default::default(),
                found_by: None,
            }))
        })
    }

    fn resolve_bound<'a>(
        &'a self,
        target: &'a Target,
        _bound: &'a Bound,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        // The account key is the account: the same as the first attempt's.
        self.resolve(target)
    }

    fn remove<'a>(
        &'a self,
        target: &'a Target,
        _account: &'a RemoteAccount,
    ) -> BoxFuture<'a, Result<RemovalOutcome, ConnectorError>> {
        Box::pin(self.run(target))
    }

    fn describe_removal(&self, target: &Target, _account: &RemoteAccount) -> String {
        match self.render_args(target) {
            Ok(args) => format!(
                "would run {} with {} argument(s)",
                self.config.program.display(),
                args.len()
            ),
            Err(e) => format!("would fail: {}", e.reason),
        }
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, ConnectorError>> {
        Box::pin(async move {
            let meta = std::fs::metadata(&self.config.program).map_err(|e| {
                ConnectorError::new(
                    Fault::Unsendable,
                    format!("{}: {e}", self.config.program.display()),
                )
            })?;
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(ConnectorError::new(
                    Fault::Unsendable,
                    format!("{} is not executable", self.config.program.display()),
                ));
            }
            Ok(format!("{} is executable", self.config.program.display()))
        })
    }
}
