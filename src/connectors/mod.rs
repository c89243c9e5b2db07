//! The connector contract (resolve, remove, probe), outcomes, and the registry. The kinds' modules
//! (`exec`, `panopto`, `echo360`, `openconext`, `scim`) are declared by their registry lines below.

pub mod classify;
pub mod http;
mod kind;
pub mod limit;
pub mod mask;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::Person;
pub use classify::{ConnectorError, ErrorClass, Fault};
pub(crate) use kind::KindConfig;

/// A boxed future, so connectors can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a connector is asked to remove.
#[derive(Debug, Clone)]
pub struct Target {
    /// The removal's id (for logs).
    pub removal_id: i64,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// The account key rendered from the connector's template.
    pub account: String,
    /// The person, for connectors that use more than the account key.
    pub person: Person,
    /// The account an earlier attempt of this removal resolved and then acted on, if one did: the
    /// removal is bound to it, and the worker looks up that account alone
    /// ([`Connector::resolve_bound`]), never another key, prefix or match mode.
    pub bound: Option<Bound>,
    /// The stage's action (`deactivate`, `remove_entitlements`, `delete`, `deprovision`), or "" for
    /// the connector's removal as configured. Connectors with one action ignore it.
    pub stage: String,
    /// Every vendor call made for this target, in order; the worker writes each to the audit log.
    pub calls: CallLog,
}

/// A record of vendor calls, shared by a connector's helpers during one attempt.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<VendorCall>>>);

impl CallLog {
    /// Records one call.
    pub fn push(&self, call: VendorCall) {
        if let Ok(mut calls) = self.0.lock() {
            calls.push(call);
        }
    }

    /// Attaches evidence to the call recorded last (see [`VendorCall::evidence`]).
    pub fn annotate_last(&self, evidence: serde_json::Value) {
        if let Ok(mut calls) = self.0.lock()
            && let Some(last) = calls.last_mut()
        {
            last.evidence = Some(evidence);
        }
    }

    /// Takes the calls recorded so far.
    pub fn take(&self) -> Vec<VendorCall> {
        self.0
            .lock()
            .map(|mut calls| std::mem::take(&mut *calls))
            .unwrap_or_default()
    }
}

/// One call to a vendor (an HTTP request, a SOAP call, a process run).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VendorCall {
    /// What was called, without personal data or secrets: e.g. `GET /Users`, `exec`.
    pub operation: String,
    /// HTTP status, if any.
    pub http_status: Option<u16>,
    /// Process exit code, if any.
    pub exit_code: Option<i32>,
    /// How long it took.
    pub duration_ms: u64,
    /// A short, redacted summary of a failure.
    pub error: Option<String>,
    /// What the vendor's answer established, for the audit log; never secrets or personal data
    /// (e.g. the names of the data categories a service erased and how many items each held).
    pub evidence: Option<serde_json::Value>,
}

/// An account as the vendor knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteAccount {
    /// The vendor's id for the account.
    pub id: String,
    /// What the vendor said about it that helps a human (no secrets).
    pub summary: BTreeMap<String, String>,
    /// The key the account was found under, when looking it up again needs that key and not the id
    /// (see [`Bound::key`]).
    pub found_by: Option<String>,
}

/// The account a removal is bound to: what an attempt resolved before it made the call that acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The vendor's id for the account.
    pub id: String,
    /// The key the account was found under, where the connector needs it to look the account up
    /// again (Panopto's user key, which may carry a fallback prefix); `None` when the id is enough.
    pub key: Option<String>,
}

/// The answer to `resolve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Exactly one account matches.
    Found(RemoteAccount),
    /// The vendor does not know the person: nothing to remove.
    NotFound,
    /// Several accounts match: a human must choose.
    Ambiguous(usize),
}

/// What a successful removal achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalOutcome {
    /// The account was deleted.
    Removed,
    /// The account was deactivated (kept, but without access).
    Deactivated,
    /// The vendor had no such account.
    AlreadyAbsent,
    /// The account is gone, and an earlier attempt of this removal had sent the call that removes
    /// it but lost the answer (a reset, a timeout, a kill): most likely that call removed it.
    RemovedUnconfirmed,
    /// The account, deactivated by an earlier stage, was made active again (a rehire, with the
    /// connector's `reactivate_on_rehire`).
    Reactivated,
}

impl RemovalOutcome {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Removed => "removed",
            Self::Deactivated => "deactivated",
            Self::AlreadyAbsent => "already_absent",
            Self::RemovedUnconfirmed => "removed_unconfirmed",
            Self::Reactivated => "reactivated",
        }
    }
}

/// The stage of a removal that gives access back: made by a rehire after a deactivation, on a connector
/// whose kind can (`KindConfig::reactivates`).
pub const REACTIVATE: &str = "reactivate";

/// A vendor connector (design §3). `resolve` only reads; `remove` acts and must be idempotent.
///
/// A connector reports what happened ([`Fault`]) and never retries or resends on its own: a
/// refused credential is an error (a connector that caches a token drops the refused one), and the
/// worker calls `resolve` or `remove` once more within the attempt when the credential policy
/// allows ([`classify::CredentialResend`]).
pub trait Connector: Send + Sync {
    /// Finds the account for the target.
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>>;

    /// Finds the account an earlier attempt of this removal resolved and acted on, by its id (or
    /// the one key it was found under, [`Bound::key`]) alone: never a fallback key, another prefix
    /// or another match mode, so that a retry after a lost answer can never reach a second
    /// account. `NotFound` when the vendor no longer knows it. The worker checks that a found
    /// account has the bound id.
    fn resolve_bound<'a>(
        &'a self,
        target: &'a Target,
        bound: &'a Bound,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>>;

    /// Removes (or deactivates) a resolved account.
    fn remove<'a>(
        &'a self,
        target: &'a Target,
        account: &'a RemoteAccount,
    ) -> BoxFuture<'a, Result<RemovalOutcome, ConnectorError>>;

    /// What `remove` would do, in words, for dry-run.
    fn describe_removal(&self, target: &Target, account: &RemoteAccount) -> String;

    /// A cheap check that the connector can reach and authenticate to its vendor; never part of readiness.
    fn probe(&self) -> BoxFuture<'_, Result<String, ConnectorError>>;
}

// The registry: one line per connector kind, declaring its folder and mapping its `kind` value to the
// settings type in `<kind>/config.rs`, which reads and validates the kind's keys and builds the
// connector (`KindConfig`).
kind::connector_kinds! {
    /// `kind = "exec"`: runs a local program.
    Exec(exec::config::ExecConfig) = "exec",
    /// `kind = "panopto"`: Panopto's SOAP UserManagement API.
    Panopto(panopto::config::PanoptoConfig) = "panopto",
    /// `kind = "echo360"`: the EchoVideo (Echo360) public REST API.
    Echo360(echo360::config::Echo360Config) = "echo360",
    /// `kind = "openconext"`: the OpenConext deprovision API (EngineBlock, Teams, Invite, …).
    Openconext(openconext::config::OpenconextConfig) = "openconext",
    /// `kind = "scim"`: a SCIM 2.0 user endpoint (Anaplan, Slack, Zoom, …).
    Scim(scim::config::ScimConfig) = "scim",
}

/// The connectors built from the config, by name, each with its limiter: its own, or the one it shares
/// with the connectors that use the same credentials at the same service (`KindConfig::limit_scope`).
pub struct Registry {
    connectors: BTreeMap<String, Arc<dyn Connector>>,
}

impl Registry {
    /// Builds every configured connector. `clock` is the daemon's clock, for token expiry.
    pub fn build(config: &Config, clock: &Clock) -> anyhow::Result<Self> {
        let mut connectors = BTreeMap::new();
        let mut limiters = kind::Limiters::default();
        for c in &config.connectors {
            if let Some(scope) = c.kind.limit_scope() {
                limiters.note(scope, c.rate.or(c.kind.default_rate()));
            }
        }
        for c in &config.connectors {
            connectors.insert(c.name.clone(), c.kind.build(c, &mut limiters, clock)?);
        }
        Ok(Self { connectors })
    }

    /// A registry with the given connectors (tests and benchmarks).
    pub fn from_connectors(connectors: BTreeMap<String, Arc<dyn Connector>>) -> Self {
        Self { connectors }
    }

    /// The connector with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.get(name).cloned()
    }
}
