//! What a connector kind provides to the registry: its settings type reads and validates the kind-specific keys
//! of a `[[connector]]` and builds the connector. `connector_kinds!` turns the one-line registrations in
//! `connectors/mod.rs` into [`super::ConnectorKind`] and the dispatch over it.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Connector;
use super::limit::Limiter;
use crate::clock::Clock;
use crate::config::{ConnectorConfig, Rate, Validator, WorkersConfig};

/// The kind-specific settings of one connector kind, in `connectors/<kind>/config.rs`.
pub(crate) trait KindConfig: Sized {
    /// The kind-specific keys as serde reads them: `deny_unknown_fields`, every field optional, so that defaults
    /// and "missing" messages are the kind's own.
    type Raw: DeserializeOwned;

    /// Most calls per period when the connector sets no `rate` (`None`: no limit).
    const DEFAULT_RATE: Option<Rate> = None;

    /// Validates the keys of the connector whose keys are named `<prefix>.<key>` (e.g. `connector.app`),
    /// recording every problem and warning in `cx`; `None` when one was found.
    fn validate(
        cx: &mut Validator<'_>,
        prefix: &str,
        raw: Self::Raw,
        workers: &WorkersConfig,
    ) -> Option<Self>;

    /// Checks a rendered account key at planning time; `Err` says why this kind can never act on it (the reason
    /// never repeats the key, which is personal data).
    fn check_account(&self, _account: &str) -> Result<(), String> {
        Ok(())
    }

    /// The actions a `[[connector.stage]]` of this connector may name, in the order stages may run them.
    fn stage_actions(&self) -> Vec<&'static str>;

    /// Whether a rehire after this connector deactivated the account makes it active again (a
    /// `reactivate` removal); off unless the kind offers it and the connector turns it on.
    fn reactivates(&self) -> bool {
        false
    }

    /// Whether the connector's removal without stages deletes the account (and with it the person's
    /// data): a legal hold makes such a removal wait.
    fn deletes(&self) -> bool;

    /// Where the vendor counts this connector's calls, when it counts them per credential rather than per
    /// connector: connectors of the kind with the same scope share one limiter (and its 429 pause), so
    /// that three connectors on one API client do not each spend the client's whole rate. Made of the
    /// service's address and a digest of the credential's identity ([`limit_scope`]); `None`: a limiter of
    /// its own.
    fn limit_scope(&self) -> Option<String> {
        None
    }

    /// Builds the connector. `connector` holds the settings every kind shares; `limiter` applies its `rate`, or
    /// [`Self::DEFAULT_RATE`]; `clock` is the daemon's clock, for token expiry.
    fn build(
        &self,
        connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>>;
}

/// Builds one connector of kind `K` with its limiter: the one of `shared` for its scope (made by the first
/// connector of the scope, with the strictest rate of the scope's connectors, see [`Limiters`]), or its own.
pub(super) fn build<K: KindConfig>(
    kind: &K,
    connector: &ConnectorConfig,
    limiters: &mut Limiters,
    clock: &Clock,
) -> anyhow::Result<Arc<dyn Connector>> {
    let rate = connector.rate.or(K::DEFAULT_RATE);
    let limiter = match kind.limit_scope() {
        Some(scope) => limiters.shared(&format!("{}:{scope}", connector.kind.as_str()), rate),
        None => Arc::new(Limiter::new(rate)),
    };
    kind.build(connector, limiter, clock)
}

/// The limiters shared by connectors with the same scope ([`KindConfig::limit_scope`]), with the strictest
/// rate given for each scope (known before the first connector is built).
#[derive(Default)]
pub(super) struct Limiters {
    rates: std::collections::HashMap<String, Option<Rate>>,
    built: std::collections::HashMap<String, Arc<Limiter>>,
}

impl Limiters {
    /// Notes a connector's scope and rate, before any connector is built.
    pub(super) fn note(&mut self, scope: String, rate: Option<Rate>) {
        let strictest = match (self.rates.get(&scope).copied().flatten(), rate) {
            (Some(a), Some(b)) => Some(stricter(a, b)),
            (a, b) => a.or(b),
        };
        self.rates.insert(scope, strictest);
    }

    fn shared(&mut self, scope: &str, rate: Option<Rate>) -> Arc<Limiter> {
        let rate = self.rates.get(scope).copied().unwrap_or(rate);
        self.built
            .entry(scope.to_string())
            .or_insert_with(|| Arc::new(Limiter::new(rate)))
            .clone()
    }
}

/// The rate that allows fewer calls per second.
fn stricter(a: Rate, b: Rate) -> Rate {
    let per_second = |r: Rate| f64::from(r.calls) / r.per.as_secs_f64().max(f64::MIN_POSITIVE);
    if per_second(b) < per_second(a) { b } else { a }
}

/// A limit scope: the service's address and a digest of the credential's identity (never the credential).
pub(crate) fn limit_scope(address: &str, identity: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{}#{}",
        address.trim_end_matches('/').to_ascii_lowercase(),
        &hex::encode(Sha256::digest(identity.as_bytes()))[..16]
    )
}

/// Declares each kind's module, [`super::ConnectorKind`] and the dispatch over it (the `kind` values, reading
/// (`RawKind`), validating, checking an account key, building) from one line per kind:
/// `Variant(module::config::SettingsType) = "kind value",`.
macro_rules! connector_kinds {
    ($($(#[$doc:meta])* $variant:ident($module:ident::config::$config:ident) = $name:literal,)+) => {
        $(pub mod $module;)+

        /// The kind-specific part of a connector, selected by its `kind` key.
        #[derive(Debug, Clone)]
        pub enum ConnectorKind {
            $($(#[$doc])* $variant($module::config::$config),)+
        }

        /// A connector's kind-specific keys as read, before validation. serde picks the variant from a one-entry
        /// table `{ <kind> = { <keys> } }`, refusing unknown kinds and, per kind, unknown keys.
        #[derive(::serde::Deserialize)]
        pub(crate) enum RawKind {
            $(#[serde(rename = $name)] $variant(<$module::config::$config as $crate::connectors::KindConfig>::Raw),)+
        }

        impl ConnectorKind {
            /// Every `kind` value, in registration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The `kind` value as written in the config.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// Checks a rendered account key at planning time; `Err` says why this kind can never act on
            /// it (the reason never repeats the key, which is personal data). The removal then starts
            /// `failed` with that reason instead of failing at the vendor.
            pub fn check_account(&self, account: &str) -> Result<(), String> {
                match self {
                    $(Self::$variant(c) => $crate::connectors::KindConfig::check_account(c, account),)+
                }
            }

            /// The actions a `[[connector.stage]]` of this connector may name (`KindConfig::stage_actions`).
            pub fn stage_actions(&self) -> Vec<&'static str> {
                match self {
                    $(Self::$variant(c) => $crate::connectors::KindConfig::stage_actions(c),)+
                }
            }

            /// Whether a rehire reactivates a deactivated account (`KindConfig::reactivates`).
            pub fn reactivates(&self) -> bool {
                match self {
                    $(Self::$variant(c) => $crate::connectors::KindConfig::reactivates(c),)+
                }
            }

            /// Whether the removal without stages deletes the account (`KindConfig::deletes`).
            pub fn deletes(&self) -> bool {
                match self {
                    $(Self::$variant(c) => $crate::connectors::KindConfig::deletes(c),)+
                }
            }

            /// Builds the connector these settings describe.
            fn build(
                &self,
                connector: &$crate::config::ConnectorConfig,
                limiters: &mut $crate::connectors::kind::Limiters,
                clock: &$crate::clock::Clock,
            ) -> ::anyhow::Result<::std::sync::Arc<dyn $crate::connectors::Connector>> {
                match self {
                    $(Self::$variant(c) => $crate::connectors::kind::build(c, connector, limiters, clock),)+
                }
            }

            /// The scope of the limiter this connector shares, with its kind (see `KindConfig::limit_scope`).
            fn limit_scope(&self) -> Option<String> {
                match self {
                    $(Self::$variant(c) => $crate::connectors::KindConfig::limit_scope(c)
                        .map(|s| format!("{}:{s}", $name)),)+
                }
            }

            /// The rate a connector of this kind gets when it sets none.
            fn default_rate(&self) -> Option<$crate::config::Rate> {
                match self {
                    $(Self::$variant(_) => <$module::config::$config as $crate::connectors::KindConfig>::DEFAULT_RATE,)+
                }
            }
        }

        impl RawKind {
            /// Validates the keys with the kind's own rules (`KindConfig::validate`).
            pub(crate) fn validate(
                self,
                cx: &mut $crate::config::Validator<'_>,
                prefix: &str,
                workers: &$crate::config::WorkersConfig,
            ) -> Option<ConnectorKind> {
                match self {
                    $(Self::$variant(raw) => {
                        <$module::config::$config as $crate::connectors::KindConfig>::validate(cx, prefix, raw, workers).map(ConnectorKind::$variant)
                    })+
                }
            }
        }
    };
}
pub(super) use connector_kinds;
