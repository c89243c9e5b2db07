//! Notifications: the events people must learn about (a held batch, a removal failed for good, a
//! connector quarantined or back, a feed failing past `alert_after`) go from the outbox in the store,
//! written in the transaction of what caused them, to each `[[notify]]` webhook that wants them; a
//! failed POST is tried again with a growing wait, and nothing on the removal path waits for it. Each
//! message carries its idempotency key, so a receiver that keeps keys never shows one twice, even after
//! a crash between the POST and its record. The HMAC-SHA256 signature is ring's; mail goes out with
//! lettre (SMTP with STARTTLS or TLS).

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::hmac;
use serde_json::json;

use crate::config::{Config, NotifyChannel, NotifyFormat, NotifyTarget, SmtpTls};
use crate::store::Store;
use crate::store::notify::NotifyEvent;

/// The header carrying `sha256=<hex HMAC of the body>` when the channel has a secret.
pub const SIGNATURE_HEADER: &str = "X-Offboard-Signature";
/// The header carrying the notification's idempotency key.
pub const KEY_HEADER: &str = "X-Offboard-Key";

/// The wait before the next try after `attempts` failed ones: 10 s doubling, at most an hour.
pub fn retry_wait(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(10u64.saturating_mul(1 << exp).min(3600))
}

/// The body of a webhook notification in `format`.
pub fn body(format: NotifyFormat, event: &NotifyEvent) -> String {
    match format {
        NotifyFormat::Json => json!({
            "schema": "offboard.notification.v1",
            "key": event.key,
            "event": event.event,
            "at": event.at,
            "summary": event.summary,
            "detail": serde_json::from_str::<serde_json::Value>(&event.detail).unwrap_or_default(),
        })
        .to_string(),
        NotifyFormat::Text => json!({ "text": format!("offboard: {}", event.summary) }).to_string(),
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        hex::encode(hmac::sign(&key, body.as_bytes()).as_ref())
    )
}

/// Sends what is due to every channel once; returns how many were delivered.
pub async fn deliver(
    store: &Store,
    channels: &[NotifyChannel],
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut delivered = 0;
    for channel in channels {
        let kinds: Vec<&str> = channel.events.iter().map(String::as_str).collect();
        let mut due = store.notify_due(&channel.name, &kinds, now, 200).await?;
        let to_manager = match &channel.target {
            NotifyTarget::Email { to_manager, .. } => to_manager.as_deref(),
            NotifyTarget::Webhook { .. } => None,
        };
        // Many removals failing at once (a vendor rejecting a whole batch) make one message (not to
        // managers: each hears of their own leaver only).
        let failed: Vec<NotifyEvent> = due
            .iter()
            .filter(|e| e.event == "removal_failed")
            .cloned()
            .collect();
        if to_manager.is_none() && failed.len() > DIGEST_AFTER {
            due.retain(|e| e.event != "removal_failed");
            due.insert(0, digest(&failed));
        }
        for event in due {
            let error = match &channel.target {
                NotifyTarget::Webhook {
                    url,
                    format,
                    secret,
                } => post(http, url, *format, secret.as_ref(), &event).await,
                NotifyTarget::Email { to, .. } => match to_manager {
                    None => mail(&channel.target, to, &event).await,
                    Some(attribute) => match manager_of(store, attribute, &event).await? {
                        Some(manager) => mail(&channel.target, &[manager], &event).await,
                        // Nobody to tell: recorded as done, so it is not tried again.
                        None => {
                            tracing::info!(channel = %channel.name, key = %event.key, attribute, "No manager address for this leaver; the notification is skipped.");
                            None
                        }
                    },
                },
            };
            let next = error.as_ref().map(|_| {
                now + chrono::Duration::from_std(retry_wait(event.attempts)).unwrap_or_default()
            });
            // A digest stands for the events it lists: each is recorded with its outcome.
            let ids: Vec<i64> = if event.id == DIGEST_ID {
                failed.iter().map(|e| e.id).collect()
            } else {
                vec![event.id]
            };
            for id in ids {
                store
                    .notify_record(id, &channel.name, error.as_deref(), next, now)
                    .await?;
            }
            match error {
                None => delivered += 1,
                Some(e) => {
                    tracing::warn!(channel = %channel.name, key = %event.key, error = %e, "A notification was not taken; trying again later.");
                    // The channel is down: its other messages wait for the next turn.
                    break;
                }
            }
        }
    }
    Ok(delivered)
}

/// More failed removals than this due at once for a channel go out as one digest.
pub const DIGEST_AFTER: usize = 5;

/// The id a digest carries (it is no row of the outbox).
const DIGEST_ID: i64 = -1;

/// One message for many failed removals: their count, and the first twenty.
fn digest(failed: &[NotifyEvent]) -> NotifyEvent {
    let mut lines: Vec<String> = failed.iter().take(20).map(|e| e.summary.clone()).collect();
    if failed.len() > 20 {
        lines.push(format!(
            "… and {} more (`offboard removals --state failed`)",
            failed.len() - 20
        ));
    }
    let first = failed.first().map_or("", |e| e.key.as_str());
    let last = failed.last().map_or("", |e| e.key.as_str());
    NotifyEvent {
        id: DIGEST_ID,
        key: format!("removal_failed_digest:{first}..{last}"),
        event: "removal_failed".into(),
        at: failed.last().map(|e| e.at.clone()).unwrap_or_default(),
        summary: format!(
            "{} removals failed for good; an operator must act:\n{}",
            failed.len(),
            lines.join("\n")
        ),
        detail: json!({
            "digest": true,
            "count": failed.len(),
            "keys": failed.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        })
        .to_string(),
        attempts: failed.iter().map(|e| e.attempts).max().unwrap_or(0),
    }
}

/// POSTs one event; the error, if it was not taken.
async fn post(
    http: &reqwest::Client,
    url: &str,
    format: NotifyFormat,
    secret: Option<&crate::config::Secret>,
    event: &NotifyEvent,
) -> Option<String> {
    let body = body(format, event);
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(KEY_HEADER, &event.key)
        .timeout(Duration::from_secs(10))
        .body(body.clone());
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret.expose(), &body));
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Some(crate::connectors::http::transport_reason(&e)),
    }
}

/// Mails one event over SMTP (lettre); the error, if the server did not take it. The Message-ID is
/// made from the event's key, so a mail sent twice after a crash is one message to a mail client.
/// The address in the `attribute` of the person an event is about, when there is a valid one.
async fn manager_of(
    store: &Store,
    attribute: &str,
    event: &NotifyEvent,
) -> anyhow::Result<Option<String>> {
    let detail: serde_json::Value = serde_json::from_str(&event.detail).unwrap_or_default();
    let Some(employee) = detail.get("employee_id").and_then(|e| e.as_str()) else {
        return Ok(None);
    };
    Ok(store
        .person_attribute(employee, attribute)
        .await?
        .map(|a| a.trim().to_string())
        .filter(|a| a.parse::<lettre::Address>().is_ok()))
}

async fn mail(target: &NotifyTarget, to: &[String], event: &NotifyEvent) -> Option<String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let NotifyTarget::Email {
        host,
        port,
        tls,
        tls_ca,
        username,
        password,
        from,
        ..
    } = target
    else {
        return Some("not an email channel".into());
    };
    let mut builder = Message::builder()
        .from(from.parse().ok()?)
        .subject(format!("offboard: {}", event.event.replace('_', " ")))
        .message_id(Some(format!(
            "<{}@offboard>",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(event.key.as_bytes()))
        )))
        .header(ContentType::TEXT_PLAIN);
    for recipient in to {
        builder = builder.to(recipient.parse().ok()?);
    }
    let text = format!(
        "{}\n\nEvent: {}\nAt: {}\nKey: {}\nDetails: {}\n",
        event.summary, event.event, event.at, event.key, event.detail
    );
    let message = match builder.body(text) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot build the message: {e}")),
    };
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    // The server's certificate must chain to the web's roots, or to the configured CA as well.
    let params = || {
        let mut builder = TlsParameters::builder(host.clone());
        if let Some(pem) = tls_ca {
            builder = builder.add_root_certificate(Certificate::from_pem(pem)?);
        }
        builder.build_rustls()
    };
    let protection = match tls {
        SmtpTls::None => Ok(Tls::None),
        SmtpTls::StartTls => params().map(Tls::Required),
        SmtpTls::Tls => params().map(Tls::Wrapper),
    };
    let mut transport = match protection {
        Ok(protection) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .tls(protection)
            .port(*port)
            .timeout(Some(Duration::from_secs(20))),
        Err(e) => return Some(format!("SMTP {host}: {e}")),
    };
    if let (Some(user), Some(password)) = (username, password) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    match transport.build().send(message).await {
        Ok(_) => None,
        // lettre's errors name the server and the SMTP reply, never the password.
        Err(e) => Some(format!("SMTP {host}:{port}: {e}")),
    }
}

/// Adds an event for each removal still not done as its SLA runs out (`[report] sla` after the
/// effective time plus the connector's grace): `sla_warning` in the last quarter of the SLA,
/// `sla_breach` once it is over; each once per removal (by key).
pub async fn scan_sla(store: &Store, config: &Config, now: DateTime<Utc>) -> anyhow::Result<()> {
    let sla = chrono::Duration::from_std(config.report.sla)?;
    for (id, connector, state, employee, effective) in store.open_removals(now).await? {
        let grace = config
            .connector(&connector)
            .and_then(|c| chrono::Duration::from_std(c.grace).ok())
            .unwrap_or_else(chrono::Duration::zero);
        let deadline = crate::store::parse_ts(&effective)? + grace + sla;
        let (event, text) = if now >= deadline {
            ("sla_breach", "is past its SLA")
        } else if now >= deadline - sla / 4 {
            ("sla_warning", "will breach its SLA")
        } else {
            continue;
        };
        store
            .notify(
                &format!("{event}:{id}"),
                event,
                &format!(
                    "Removal {id} ({employee} on {connector}, {state}) {text} at {}: access may still be in place",
                    crate::store::ts(deadline)
                ),
                &json!({"removal_id": id, "employee_id": employee, "connector": connector, "state": state, "deadline": crate::store::ts(deadline)}),
                now,
            )
            .await?;
    }
    Ok(())
}

/// Delivers every few seconds until `stop` turns true.
pub async fn run(
    store: Store,
    config: std::sync::Arc<Config>,
    http: reqwest::Client,
    leadership: crate::store::Leadership,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let channels = config.notify.clone();
    let mut scanned: Option<tokio::time::Instant> = None;
    loop {
        // With several replicas, the one that leads scans and delivers (a delivery is claimed by
        // nobody else, so two replicas would send it twice).
        while !leadership.leads() {
            tokio::select! {
                _ = leadership.next_gain() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
        // The SLA scan reads every open removal: once a minute is enough.
        if scanned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            if let Err(e) = scan_sla(&store, &config, Utc::now()).await {
                tracing::warn!(error = %format!("{e:#}"), "Looking for SLA breaches failed.");
            }
            scanned = Some(tokio::time::Instant::now());
        }
        if let Err(e) = deliver(&store, &channels, &http, Utc::now()).await {
            tracing::warn!(error = %format!("{e:#}"), "Delivering notifications failed; trying again shortly.");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_ten_seconds_up_to_an_hour() {
        let waits: Vec<u64> = (0..11).map(|a| retry_wait(a).as_secs()).collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
