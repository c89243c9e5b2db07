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

    /// Builds the connector. `connector` holds the settings every kind shares; `limiter` applies its `rate`, or
    /// [`Self::DEFAULT_RATE`]; `clock` is the daemon's clock, for token expiry.
    fn build(
        &self,
        connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>>;
}

/// Builds one connector of kind `K` with its limiter.
pub(super) fn build<K: KindConfig>(
    kind: &K,
    connector: &ConnectorConfig,
    clock: &Clock,
) -> anyhow::Result<Arc<dyn Connector>> {
    let limiter = Arc::new(Limiter::new(connector.rate.or(K::DEFAULT_RATE)));
    kind.build(connector, limiter, clock)
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

            /// Builds the connector these settings describe.
            fn build(
                &self,
                connector: &$crate::config::ConnectorConfig,
                clock: &$crate::clock::Clock,
            ) -> ::anyhow::Result<::std::sync::Arc<dyn $crate::connectors::Connector>> {
                match self {
                    $(Self::$variant(c) => $crate::connectors::kind::build(c, connector, clock),)+
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
