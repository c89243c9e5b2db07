//! The evidence record of one leaver for an auditor (`offboard evidence`): the termination, each app's
//! removal with its vendor calls and time to revoke against the SLA, the audit rows with their hashes,
//! and the signed checkpoint that covers them; the record itself signed with the checkpoint key. JSON
//! for machines, a self-contained HTML page for people (no scripts, no external resources).

use std::io::Write;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit;
use crate::checkpoint::{Checkpoint, SigningKey};
use crate::config::Config;
use crate::report::{self, ReportFilter, ReportRow};
use crate::store::{Store, ts};

/// The first line of the signed message of an evidence record.
const DOMAIN: &str = "offboard-evidence-v1";

/// A signed evidence record: `evidence`, and the signature over it.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The record.
    pub evidence: Value,
    /// SHA-256 (hex) of `evidence` written as compact JSON with sorted keys.
    pub evidence_sha256: String,
    /// The Ed25519 signature of `offboard-evidence-v1\n{evidence_sha256}\n{key_id}`, when a key is
    /// configured.
    pub signature: Option<Signature>,
}

/// A signature and the key that made it.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    /// The key's id (as in checkpoints).
    pub key_id: String,
    /// Base64.
    pub sig: String,
}

/// The compact, key-sorted JSON of a value (serde_json's maps are sorted), and its SHA-256.
pub fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

/// The bytes an evidence signature covers.
pub fn signed_message(sha256: &str, key_id: &str) -> Vec<u8> {
    format!("{DOMAIN}\n{sha256}\n{key_id}").into_bytes()
}

/// Builds the record of `employee_id`; `None` when offboard has no termination for them.
pub async fn build(
    store: &Store,
    config: &Config,
    employee_id: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Signed>> {
    let report = report::build(store, config, &ReportFilter::default(), now).await?;
    let removals: Vec<&ReportRow> = report
        .rows
        .iter()
        .filter(|r| r.employee_id == employee_id)
        .collect();
    if removals.is_empty() {
        return Ok(None);
    }
    let rows = audit::list(
        store,
        &audit::Filter {
            employee_id: Some(employee_id.to_string()),
            ..audit::Filter::default()
        },
    )
    .await?;
    let last_seq = rows.iter().map(|r| r.seq).max().unwrap_or(0);
    let checkpoint = covering_checkpoint(config, last_seq)?;
    let apps: Vec<Value> = removals
        .iter()
        .map(|r| {
            let id = Some(r.removal_id);
            let calls: Vec<Value> = rows
                .iter()
                .filter(|row| row.event == "vendor_call" && id.is_some() && row.removal_id == id)
                .map(|row| {
                    let detail: Value = serde_json::from_str(&row.detail).unwrap_or(Value::Null);
                    json!({
                        "at": row.at, "attempt": row.attempt, "operation": detail["operation"],
                        "http_status": row.http_status, "exit_code": detail["exit_code"],
                        "duration_ms": row.duration_ms, "outcome": row.outcome, "error": detail["error"],
                        "audit_seq": row.seq,
                    })
                })
                .collect();
            json!({
                "connector": r.connector, "removal_id": id, "state": r.state, "outcome": r.outcome,
                "removed_at": r.removed_at, "removed_at_from": r.removed_at_from,
                "time_to_revoke_seconds": r.time_to_revoke_seconds, "deadline": r.deadline,
                "breach": r.breach, "note": r.note, "vendor_calls": calls,
            })
        })
        .collect();
    let first = removals[0];
    let evidence = json!({
        "employee_id": employee_id,
        "generated_at": ts(now),
        "termination": {
            "effective_at": first.effective_at, "received_at": first.received_at, "source": first.source,
        },
        "sla_seconds": config.report.sla.as_secs(),
        "removals": apps,
        "audit_rows": rows,
        "checkpoint": checkpoint,
    });
    let evidence_sha256 = digest(&evidence);
    let signature = match &config.checkpoints {
        Some(c) => {
            let key = SigningKey::from_secret(&c.signing_key)?;
            let sig = key.sign_bytes(&signed_message(&evidence_sha256, key.key_id()));
            Some(Signature {
                key_id: key.key_id().to_string(),
                sig: base64::engine::general_purpose::STANDARD.encode(sig),
            })
        }
        None => None,
    };
    Ok(Some(Signed {
        evidence,
        evidence_sha256,
        signature,
    }))
}

/// The first checkpoint of the configured file that covers row `seq`, if any.
fn covering_checkpoint(config: &Config, seq: i64) -> anyhow::Result<Option<Checkpoint>> {
    let Some(file) = config.checkpoints.as_ref().and_then(|c| c.file.as_ref()) else {
        return Ok(None);
    };
    if !file.exists() {
        return Ok(None);
    }
    let mut all = crate::checkpoint::read_file(file)?;
    all.sort_by_key(|c| c.seq);
    Ok(all.into_iter().find(|c| c.seq >= seq))
}

/// Writes the record as a self-contained HTML page: every value escaped, no scripts, no links out.
pub fn write_html(out: &mut impl Write, signed: &Signed) -> anyhow::Result<()> {
    let e = &signed.evidence;
    let text = |v: &Value| -> String {
        let s = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        quick_xml::escape::escape(s.as_str()).to_string()
    };
    writeln!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Offboarding evidence: {}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}}code{{font-size:.85em}}</style></head><body>",
        text(&e["employee_id"])
    )?;
    writeln!(
        out,
        "<h1>Offboarding evidence: employee {}</h1>",
        text(&e["employee_id"])
    )?;
    writeln!(
        out,
        "<p>Termination effective <b>{}</b>, received {} (source {}). Generated {}. SLA {} s after the effective time plus each app's grace.</p>",
        text(&e["termination"]["effective_at"]),
        text(&e["termination"]["received_at"]),
        text(&e["termination"]["source"]),
        text(&e["generated_at"]),
        text(&e["sla_seconds"])
    )?;
    writeln!(
        out,
        "<h2>Access removed</h2>\n<table><tr><th>app</th><th>state</th><th>outcome</th><th>removed at</th><th>time to revoke (s)</th><th>deadline</th><th>breach</th><th>vendor calls</th></tr>"
    )?;
    for r in e["removals"].as_array().into_iter().flatten() {
        let calls: Vec<String> = r["vendor_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {} → {}{} ({} ms)",
                    text(&c["at"]),
                    text(&c["operation"]),
                    text(&c["http_status"]),
                    text(&c["exit_code"]),
                    text(&c["duration_ms"])
                )
            })
            .collect();
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&r["connector"]),
            text(&r["state"]),
            text(&r["outcome"]),
            text(&r["removed_at"]),
            if r["removed_at_from"] == "lost_answer" {
                " (the call's answer was lost; earliest moment)"
            } else {
                ""
            },
            text(&r["time_to_revoke_seconds"]),
            text(&r["deadline"]),
            if r["breach"] == true { "BREACH" } else { "" },
            calls.join("<br>")
        )?;
    }
    writeln!(out, "</table>")?;
    writeln!(
        out,
        "<h2>Audit rows</h2>\n<table><tr><th>seq</th><th>at</th><th>actor</th><th>event</th><th>app</th><th>outcome</th><th>hash</th></tr>"
    )?;
    for row in e["audit_rows"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            text(&row["seq"]),
            text(&row["at"]),
            text(&row["actor"]),
            text(&row["event"]),
            text(&row["connector"]),
            text(&row["outcome"]),
            text(&row["hash"])
        )?;
    }
    writeln!(out, "</table>\n<h2>Proof</h2>")?;
    match e["checkpoint"].as_object() {
        Some(_) => writeln!(
            out,
            "<p>Covered by the checkpoint of row {} signed at {} by key {}: <code>{}</code></p>",
            text(&e["checkpoint"]["seq"]),
            text(&e["checkpoint"]["at"]),
            text(&e["checkpoint"]["key_id"]),
            text(&Value::String(e["checkpoint"].to_string()))
        )?,
        None => writeln!(out, "<p>No signed checkpoint covers these rows yet.</p>")?,
    }
    match &signed.signature {
        Some(s) => writeln!(
            out,
            "<p>Record SHA-256 <code>{}</code>, signed by key {}: <code>{}</code>. Check it with the JSON form (docs/evidence.md).</p>",
            signed.evidence_sha256,
            quick_xml::escape::escape(s.key_id.as_str()),
            quick_xml::escape::escape(s.sig.as_str())
        )?,
        None => writeln!(
            out,
            "<p>Record SHA-256 <code>{}</code> (unsigned: no [checkpoints] key is configured).</p>",
            signed.evidence_sha256
        )?,
    }
    writeln!(out, "</body></html>")?;
    Ok(())
}
