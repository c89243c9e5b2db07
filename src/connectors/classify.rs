//! The one classification of vendor failures. Connectors say what happened ([`Fault`]); this module
//! alone decides whether that is retried, after how long, or is permanent, and how a refused
//! credential is treated: once more at once with fresh credentials ([`CredentialResend`]), then
//! once more after a wait, then failed ([`credential_step`]). docs/fault-matrix.md is its table.

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
    /// The vendor refused the connector's credentials: a refused login or token grant, or a
    /// vendor's own way of saying so (an authentication fault, Anaplan's `FAILURE_BAD_CREDENTIAL`).
    /// A connector that caches a token drops the refused one, so the next call gets a fresh one.
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
            _ if refuses_credential(status) => ErrorClass::CredentialRefused,
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

/// Whether an HTTP status says the vendor refused the credentials (401 and 403): a connector that
/// caches a token drops it on such an answer.
pub fn refuses_credential(status: u16) -> bool {
    matches!(status, 401 | 403)
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

/// The credential policy, the same for every connector, counted in refusals of one removal:
///
/// 1. the first refusal is met at once by one resend within the attempt ([`CredentialResend`]),
///    with a fresh token or login where the connector has one (it dropped the refused token);
/// 2. a second refusal ends the attempt, and the removal is retried once, after
///    [`CREDENTIAL_RETRY_DELAY`] (a rotation may be under way);
/// 3. the third refusal, the first of that retry, fails the removal, with a reason that says to
///    check the credentials ([`CHECK_THE_CREDENTIALS`]).
///
/// The removal keeps the count of its refused attempts (`credential_refusals`) across attempts and
/// restarts; `earlier` is that count before this attempt.
pub fn credential_step(earlier: i64) -> CredentialStep {
    if earlier <= 0 {
        CredentialStep::RetryOnce(CREDENTIAL_RETRY_DELAY)
    } else {
        CredentialStep::Fail
    }
}

/// The in-attempt step of the credential policy ([`credential_step`]): on a removal's first refused
/// attempt, the first call the vendor refuses is made once more, at once. The worker runs each
/// connector call (resolve, remove) through one of these per attempt; connectors never resend on
/// their own.
#[derive(Debug)]
pub struct CredentialResend {
    /// Whether the one resend of this attempt is still to be had.
    left: bool,
}

impl CredentialResend {
    /// The resend budget of an attempt of a removal that had `earlier` refused attempts: one
    /// resend on its first, none after (that refusal is the third).
    pub fn for_attempt(earlier: i64) -> Self {
        Self { left: earlier <= 0 }
    }

    /// Runs `call`; when the vendor refused the credentials and this attempt still has its resend,
    /// runs it once more and returns that answer.
    pub async fn run<T, F>(&mut self, mut call: impl FnMut() -> F) -> Result<T, ConnectorError>
    where
        F: Future<Output = Result<T, ConnectorError>>,
    {
        match call().await {
            Err(e) if e.class == ErrorClass::CredentialRefused && self.left => {
                self.left = false;
                tracing::info!(error = %e.reason, "Credentials refused: sending once more with fresh ones.");
                call().await
            }
            other => other,
        }
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

    #[tokio::test]
    async fn the_first_refusal_of_a_removal_is_sent_once_more_within_the_attempt() {
        let refused = || ConnectorError::new(Fault::CredentialRefused, "refused");
        // A call that counts itself and answers with `answer(n)` the n-th time.
        let calls = std::cell::Cell::new(0);
        let call = |answer: fn(i32) -> Result<i32, ConnectorError>| {
            let calls = &calls;
            move || {
                calls.set(calls.get() + 1);
                std::future::ready(answer(calls.get()))
            }
        };

        let mut resend = CredentialResend::for_attempt(0);
        let first = resend
            .run(call(|n| {
                if n == 1 {
                    Err(ConnectorError::new(Fault::CredentialRefused, "refused"))
                } else {
                    Ok(n)
                }
            }))
            .await;
        assert_eq!((first, calls.replace(0)), (Ok(2), 2));
        // One resend per attempt: the next refusal ends it.
        let second = resend
            .run(call(|_| {
                Err(ConnectorError::new(Fault::CredentialRefused, "refused"))
            }))
            .await;
        assert_eq!((second, calls.replace(0)), (Err(refused()), 1));

        // The retry after the wait has none: its refusal is the removal's third.
        let retry = CredentialResend::for_attempt(1)
            .run(call(|_| {
                Err(ConnectorError::new(Fault::CredentialRefused, "refused"))
            }))
            .await;
        assert_eq!((retry, calls.replace(0)), (Err(refused()), 1));

        // Other failures are the worker's to retry, never resent.
        let reset = CredentialResend::for_attempt(0)
            .run(call(|_| {
                Err(ConnectorError::new(Fault::Transport, "reset"))
            }))
            .await;
        assert_eq!(
            reset.map_err(|e| e.class),
            Err(ErrorClass::Retryable { after: None })
        );
        assert_eq!(calls.get(), 1);
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
