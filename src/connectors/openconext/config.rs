//! `kind = "openconext"` settings: the service's deprovision API and its Basic auth credentials.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::OpenconextConnector;
use crate::clock::Clock;
use crate::config::{
    ConnectorConfig, DEFAULT_VENDOR_TIMEOUT, Rate, Secret, Validator, WorkersConfig,
};
use crate::connectors::limit::Limiter;
use crate::connectors::{Connector, KindConfig};

/// `kind = "openconext"`: calls one service's deprovision API.
#[derive(Debug, Clone)]
pub struct OpenconextConfig {
    /// The service's API base URL, always ending in `/`, e.g. `https://engine-api.example.org/`.
    pub base_url: String,
    /// HTTP Basic user name.
    pub username: Secret,
    /// HTTP Basic password.
    pub password: Secret,
    /// Limit for one HTTP call.
    pub timeout: Duration,
}

/// The openconext keys as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawOpenconext {
    base_url: Option<String>,
    username: Option<String>,
    username_file: Option<String>,
    username_env: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    timeout: Option<String>,
}

impl KindConfig for OpenconextConfig {
    type Raw = RawOpenconext;

    const DEFAULT_RATE: Option<Rate> = Some(super::DEFAULT_RATE);

    fn validate(
        cx: &mut Validator<'_>,
        prefix: &str,
        raw: RawOpenconext,
        workers: &WorkersConfig,
    ) -> Option<OpenconextConfig> {
        let before = cx.problem_count();
        let base_url = cx
            .service_url(&format!("{prefix}.base_url"), raw.base_url.as_deref())
            .map(|url| {
                // Request paths are relative to the base, so it must end in '/'.
                if url.ends_with('/') {
                    url
                } else {
                    format!("{url}/")
                }
            });
        let username = match (raw.username, raw.username_file, raw.username_env) {
            (Some(name), None, None) if !name.is_empty() => Some(Secret::new(name)),
            (Some(_), None, None) => {
                cx.problem(&format!("{prefix}.username"), "is empty");
                None
            }
            (None, file, env) if file.is_some() || env.is_some() => {
                cx.secret(prefix, "username", file, env)
            }
            (None, _, _) => {
                cx.problem(
                    &format!("{prefix}.username"),
                    "missing; set username, username_file or username_env (the Basic auth user of the deprovision API)",
                );
                None
            }
            (Some(_), _, _) => {
                cx.problem(
                    &format!("{prefix}.username"),
                    "set only one of username, username_file and username_env",
                );
                None
            }
        };
        let password = cx.secret(prefix, "password", raw.password_file, raw.password_env);
        let timeout = cx.call_timeout(
            prefix,
            raw.timeout.as_deref(),
            DEFAULT_VENDOR_TIMEOUT,
            workers,
        );
        if cx.problem_count() > before {
            return None;
        }
        Some(OpenconextConfig {
            base_url: base_url?,
            username: username?,
            password: password?,
            timeout,
        })
    }

    fn stage_actions(&self) -> Vec<&'static str> {
        vec!["deprovision"]
    }

    fn deletes(&self) -> bool {
        true
    }

    fn check_account(&self, account: &str) -> Result<(), String> {
        super::check_collab_person_id(account)
    }

    fn limit_scope(&self) -> Option<String> {
        // One service, one Basic account: the service sees one client.
        Some(crate::connectors::kind::limit_scope(
            &self.base_url,
            self.username.expose(),
        ))
    }

    fn build(
        &self,
        connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        _clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>> {
        Ok(Arc::new(OpenconextConnector::new(
            self.clone(),
            connector.dry_run,
            limiter,
        )?))
    }
}
