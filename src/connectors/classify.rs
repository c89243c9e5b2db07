//! The one classification of vendor failures. Connectors say what happened ([`Fault`]); this module
//! alone decides whether that is retried, after how long, or is permanent, and how a refused
//! credential is treated across attempts ([`credential_step`]). docs/fault-matrix.md is its table.

use std::time::Duration;

/// What went wrong with a vendor call, as the connector saw it, without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No complete answer: the connection failed or was reset, or the body was cut off.
    Transport,
    /// No answer within the connector's timeout.
    Timeout,
    /// The vendor answered with a status that is not a success.
    Status {
        /// The HTTP status.
        status: u16,
        /// The vendor's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The vendor refused the connector's credentials (401/403, a refused login), after the one
    /// fresh token or login and resend that a connector with a login makes within the attempt.
    CredentialRefused,
    /// The answer is not in the shape the vendor's API promises (not JSON, not SOAP, a field missing).
    Malformed,
    /// The vendor answered success, but the change is not (or only partly) visible, or the vendor
    /// reports that it did not apply it this time.
    NotApplied,
    /// The vendor's own error shape, saying it could not read or accept the request (not the
    /// person's fault: a bug or an API version mismatch).
    RequestRejected,
    /// The vendor answered about another account than the one asked for: acting could touch the
    /// wrong person.
    WrongAccount,
    /// offboard itself refuses to act (a protected account, the API user itself, dry-run).
    Protected,
    /// No valid request can be made from the configuration or the person's data (an account key
    /// XML cannot carry, a URL that does not parse, a template field the person lacks).
    Unsendable,
    /// A local program ended with an exit code the configuration lists as permanent.
    ProgramRefused,
    /// A local program failed some other way (another exit code, killed by a signal, could not be
    /// started: a deployment may be under way).
    ProgramFailed,
}

/// How a failed attempt is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later; `after` is the vendor's own wait (Retry-After), if it gave one.
    Retryable {
        /// The vendor's requested wait.
        after: Option<Duration>,
    },
    /// Will not succeed by retrying: dead letter with the reason.
    Permanent,
    /// The credentials were refused: the worker applies [`credential_step`], which counts refusals
    /// per removal across attempts.
    CredentialRefused,
}

/// The one place a fault becomes a class. HTTP statuses follow RFC 9110's meaning: 408, 429 and
/// 5xx but 501 retry (honouring Retry-After); 401 and 403 are a refused credential; any other
/// status is permanent.
pub fn classify(fault: Fault) -> ErrorClass {
    let retry = ErrorClass::Retryable { after: None };
    match fault {
        Fault::Transport
        | Fault::Timeout
        | Fault::Malformed
        | Fault::NotApplied
        | Fault::ProgramFailed => retry,
        Fault::Status {
            status,
            retry_after,
        } => match status {
            401 | 403 => ErrorClass::CredentialRefused,
            408 | 429 => ErrorClass::Retryable { after: retry_after },
            501 => ErrorClass::Permanent,
            500..=599 => ErrorClass::Retryable { after: retry_after },
            _ => ErrorClass::Permanent,
        },
        Fault::CredentialRefused => ErrorClass::CredentialRefused,
        Fault::RequestRejected
        | Fault::WrongAccount
        | Fault::Protected
        | Fault::Unsendable
        | Fault::ProgramRefused => ErrorClass::Permanent,
    }
}

/// How long the one retry after a refused credential waits: long enough for a credential rotation
/// under way to finish, short enough that a fixed secret is used within minutes.
pub const CREDENTIAL_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);

/// What to do with a removal whose credentials were refused again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStep {
    /// Retry once, after [`CREDENTIAL_RETRY_DELAY`].
    RetryOnce(Duration),
    /// Give up: the reason tells the operator to check the credentials.
    Fail,
}

/// The credential policy, the same for every connector: a refused credential is first met by one
/// fresh token or login and a resend inside the attempt (the connector's part); a refusal that
/// survives it is retried once after [`CREDENTIAL_RETRY_DELAY`]; the next refusal of the same
/// removal fails it. `earlier` counts the refused attempts this removal already had.
pub fn credential_step(earlier: i64) -> CredentialStep {
    if earlier <= 0 {
        CredentialStep::RetryOnce(CREDENTIAL_RETRY_DELAY)
    } else {
        CredentialStep::Fail
    }
}

/// What a removal's reason says when its credentials were refused for the last time.
pub const CHECK_THE_CREDENTIALS: &str = "refused again after a retry: check the connector's credentials and permissions, then run `offboard retry`";

/// A connector failure: what happened, its class, and a reason fit for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    /// What happened.
    pub fault: Fault,
    /// Retry or not, as [`classify`] decided.
    pub class: ErrorClass,
    /// What went wrong, naming the vendor's own message where there is one; never a secret.
    pub reason: String,
}

impl ConnectorError {
    /// A failure, classified.
    pub fn new(fault: Fault, reason: impl Into<String>) -> Self {
        Self {
            fault,
            class: classify(fault),
            reason: reason.into(),
        }
    }

    /// The same failure with another reason (masked, or with context added).
    pub fn map_reason(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.reason = f(&self.reason);
        self
    }
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ErrorClass {
        classify(Fault::Status {
            status,
            retry_after: Some(Duration::from_secs(7)),
        })
    }

    #[test]
    fn statuses_follow_one_rule() {
        let after = ErrorClass::Retryable {
            after: Some(Duration::from_secs(7)),
        };
        assert_eq!(status(408), after);
        assert_eq!(status(429), after);
        assert_eq!(status(500), after);
        assert_eq!(status(503), after);
        assert_eq!(status(501), ErrorClass::Permanent);
        assert_eq!(status(400), ErrorClass::Permanent);
        assert_eq!(status(404), ErrorClass::Permanent);
        assert_eq!(status(401), ErrorClass::CredentialRefused);
        assert_eq!(status(403), ErrorClass::CredentialRefused);
    }

    #[test]
    fn a_credential_is_retried_once_then_fails() {
        assert_eq!(
            credential_step(0),
            CredentialStep::RetryOnce(CREDENTIAL_RETRY_DELAY)
        );
        assert_eq!(credential_step(1), CredentialStep::Fail);
        assert_eq!(credential_step(5), CredentialStep::Fail);
    }

    #[test]
    fn what_cannot_succeed_by_retrying_is_permanent() {
        for fault in [
            Fault::RequestRejected,
            Fault::WrongAccount,
            Fault::Protected,
            Fault::Unsendable,
            Fault::ProgramRefused,
        ] {
            assert_eq!(classify(fault), ErrorClass::Permanent, "{fault:?}");
        }
        for fault in [
            Fault::Transport,
            Fault::Timeout,
            Fault::Malformed,
            Fault::NotApplied,
            Fault::ProgramFailed,
        ] {
            assert_eq!(
                classify(fault),
                ErrorClass::Retryable { after: None },
                "{fault:?}"
            );
        }
    }
}
