//! Evidence against someone with write access to the database: signed checkpoints of the audit chain
//! and `audit verify --checkpoints`, each attack of docs/evidence.md tried on a real database file.

use std::path::Path;
use std::time::Duration;

use crate::helpers::{OK_SCRIPT, Raw, TestApp, config_text, write_script};
use offboard::audit::{self, AuditRow, Verification};
use offboard::checkpoint::{self, Checkpoint, PublicKey};

/// A daemon with `[checkpoints]` (a fresh key pair in its directory) and two leavers removed, then one
/// checkpoint signed.
async fn signed_run() -> (TestApp, Vec<Checkpoint>, PublicKey) {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    let keygen = offboard::cli::keygen(dir.path(), &mut Vec::new());
    keygen.unwrap();
    let text = format!(
        "{}\n[checkpoints]\nsigning_key_file = \"checkpoint.key\"\nfile = \"checkpoints.jsonl\"\nlog = false\n",
        config_text("[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n")
    );
    let t = TestApp::in_dir(dir, &text).await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n");
    t.poll().await;
    assert_eq!(t.drain().await.done, 2);
    let mut checkpointer = t.app.checkpointer().unwrap().unwrap();
    checkpointer
        .checkpoint(t.clock.now())
        .await
        .unwrap()
        .unwrap();
    let checkpoints = checkpoint::read_file(&t.path("checkpoints.jsonl")).unwrap();
    let key = PublicKey::read(&t.path("checkpoint.pub")).unwrap();
    (t, checkpoints, key)
}

async fn check(t: &TestApp, checkpoints: &[Checkpoint], key: &PublicKey) -> Verification {
    audit::verify_against(
        &t.app.store,
        Some(audit::Against {
            checkpoints,
            key,
            max_uncovered: Duration::from_secs(900),
            now: t.clock.now(),
        }),
    )
    .await
    .unwrap()
}

/// Write access to the daemon's database with the append-only guards dropped.
async fn raw(t: &TestApp) -> Raw {
    let raw = Raw::of(&t.app.store);
    raw.drop_audit_guards().await;
    raw
}

/// Writes `rows` back with every hash computed again from `from` on, as a careful forger would.
async fn rechain(raw: &Raw, mut rows: Vec<AuditRow>, from: usize) {
    for i in from..rows.len() {
        if i > 0 {
            rows[i].prev_hash = rows[i - 1].hash.clone();
        }
        rows[i].hash = audit::row_hash(&rows[i]);
        let r = &rows[i];
        raw.execute(
            "UPDATE audit_log SET detail = $1, outcome = $2, prev_hash = $3, hash = $4 WHERE seq = $5",
            &[(&r.detail).into(), (&r.outcome).into(), (&r.prev_hash).into(), (&r.hash).into(), r.seq.into()],
        )
        .await
        .unwrap();
    }
}

fn broken(v: Verification) -> (i64, String) {
    match v {
        Verification::Broken { seq, reason } => (seq, reason),
        Verification::Ok { .. } => panic!("the attack was not detected"),
    }
}

#[tokio::test]
async fn the_honest_chain_verifies_against_its_checkpoints() {
    let (t, checkpoints, key) = signed_run().await;
    assert_eq!(checkpoints.len(), 1);
    assert!(matches!(
        check(&t, &checkpoints, &key).await,
        Verification::Ok { .. }
    ));
    // The key file holds nothing but the seed; the checkpoint verifies with the public key alone.
    assert!(checkpoints[0].verify(&key).is_ok());
    let mut forged = checkpoints[0].clone();
    forged.seq += 1;
    assert!(
        forged.verify(&key).is_err(),
        "a changed checkpoint is refused"
    );
}

#[tokio::test]
async fn a_full_rewrite_with_recomputed_hashes_passes_the_chain_but_not_the_checkpoints() {
    let (t, checkpoints, key) = signed_run().await;
    let raw = raw(&t).await;
    let mut all = raw.audit_rows().await;
    let victim = all.iter().position(|r| r.event == "vendor_call").unwrap();
    all[victim].detail = all[victim].detail.replace("\"ok\"", "\"error\"");
    all[victim].outcome = Some("error".into());
    rechain(&raw, all, victim).await;

    assert!(
        matches!(
            audit::verify(&t.app.store).await.unwrap(),
            Verification::Ok { .. }
        ),
        "without checkpoints a careful rewrite passes (docs/evidence.md says so)"
    );
    let (seq, reason) = broken(check(&t, &checkpoints, &key).await);
    assert_eq!(seq, 1);
    assert!(reason.contains("were changed"), "{reason}");
}

#[tokio::test]
async fn an_edited_row_is_reported_at_that_row() {
    let (t, checkpoints, key) = signed_run().await;
    let raw = raw(&t).await;
    raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4", &[])
        .await
        .unwrap();
    let (seq, reason) = broken(check(&t, &checkpoints, &key).await);
    assert_eq!(seq, 4);
    assert!(reason.contains("changed"), "{reason}");
}

#[tokio::test]
async fn a_cut_tail_is_reported_with_and_without_checkpoints() {
    let (t, checkpoints, key) = signed_run().await;
    let raw = raw(&t).await;
    let last = raw.audit_rows().await.len() as i64;
    // Cut off everything from the last removal_done on.
    let cut = raw
        .integer("SELECT MAX(seq) FROM audit_log WHERE event = 'removal_done'")
        .await;
    raw.execute("DELETE FROM audit_log WHERE seq >= $1", &[cut.into()])
        .await
        .unwrap();

    let (_, reason) = broken(audit::verify(&t.app.store).await.unwrap());
    assert!(reason.contains("no audit row records that"), "{reason}");
    let (seq, reason) = broken(check(&t, &checkpoints, &key).await);
    assert_eq!(seq, cut);
    assert!(
        reason.contains(&format!("rows {cut}..={last} were cut off")),
        "{reason}"
    );
}

#[tokio::test]
async fn a_forged_back_dated_tail_is_reported() {
    let (t, checkpoints, key) = signed_run().await;
    let raw = raw(&t).await;
    let all = raw.audit_rows().await;
    let last = all.last().unwrap().clone();
    let mut forged = last.clone();
    forged.seq = last.seq + 1;
    forged.at = offboard::store::ts(t.clock.now() - chrono::Duration::hours(2));
    forged.event = "operator_cancel".into();
    forged.prev_hash = last.hash.clone();
    forged.hash = audit::row_hash(&forged);
    raw.execute(
        "INSERT INTO audit_log (seq, at, actor, event, employee_id, connector, removal_id, batch_id, attempt, \
         outcome, http_status, duration_ms, detail, prev_hash, hash) \
         SELECT $1, $2, actor, $3, employee_id, connector, removal_id, batch_id, attempt, outcome, http_status, \
                duration_ms, detail, $4, $5 FROM audit_log WHERE seq = $6",
        &[
            forged.seq.into(),
            (&forged.at).into(),
            (&forged.event).into(),
            (&forged.prev_hash).into(),
            (&forged.hash).into(),
            last.seq.into(),
        ],
    )
    .await
    .unwrap();

    assert!(matches!(
        audit::verify(&t.app.store).await.unwrap(),
        Verification::Ok { .. }
    ));
    let (seq, reason) = broken(check(&t, &checkpoints, &key).await);
    assert_eq!(seq, forged.seq);
    assert!(reason.contains("not covered by any checkpoint"), "{reason}");
}

#[tokio::test]
async fn insert_or_replace_is_refused_by_the_database() {
    let (t, _, _) = signed_run().await;
    let raw = Raw::of(&t.app.store);
    // SQLite's INSERT OR REPLACE deletes the old row without its delete trigger; PostgreSQL's upsert
    // is an UPDATE, and meets the update trigger.
    let replace = if t.app.store.postgres_pool().is_some() {
        "INSERT INTO audit_log (seq, at, actor, event, employee_id, connector, removal_id, batch_id, \
         attempt, outcome, http_status, duration_ms, detail, prev_hash, hash) \
         SELECT seq, at, 'mallory', event, employee_id, connector, removal_id, batch_id, attempt, outcome, \
                http_status, duration_ms, detail, prev_hash, hash FROM audit_log WHERE seq = 3 \
         ON CONFLICT (seq) DO UPDATE SET actor = excluded.actor"
    } else {
        "INSERT OR REPLACE INTO audit_log (seq, at, actor, event, employee_id, connector, removal_id, batch_id, \
         attempt, outcome, http_status, duration_ms, detail, prev_hash, hash) \
         SELECT seq, at, 'mallory', event, employee_id, connector, removal_id, batch_id, attempt, outcome, \
                http_status, duration_ms, detail, prev_hash, hash FROM audit_log WHERE seq = 3"
    };
    let replaced = raw.execute(replace, &[]).await;
    assert!(
        replaced.unwrap_err().to_string().contains("append-only"),
        "a replacing insert must be refused"
    );
    assert!(matches!(
        audit::verify(&t.app.store).await.unwrap(),
        Verification::Ok { .. }
    ));
}

#[tokio::test]
async fn the_cli_makes_a_key_pair_and_verifies_against_the_checkpoints() {
    let (t, _, _) = signed_run().await;
    let verify = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(t.path("offboard.toml"))
            .args(["audit", "verify"])
            .args(extra)
            .output()
            .unwrap()
    };
    let checkpoints = t.path("checkpoints.jsonl");
    let key = t.path("checkpoint.pub");
    let args = [
        "--checkpoints",
        checkpoints.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ];
    let ok = verify(&args);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("1 checkpoint(s) signed by key"));
    // Another key pair's public key does not verify these checkpoints.
    let other = tempfile::tempdir().unwrap();
    offboard::cli::keygen(other.path(), &mut Vec::new()).unwrap();
    assert!(
        offboard::cli::keygen(other.path(), &mut Vec::new()).is_err(),
        "no overwrite"
    );
    let wrong = other.path().join("checkpoint.pub");
    let bad = verify(&[args[0], args[1], "--public-key", wrong.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("not genuine"),
        "{bad:?}"
    );
    let mode = std::fs::metadata(other.path().join("checkpoint.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    assert!(Path::new(&checkpoints).exists());
}

/// The one-line check of docs/evidence.md, run as written with Python's `cryptography` (another
/// Ed25519 implementation than the daemon's), accepts a checkpoint the daemon signed.
#[tokio::test]
async fn the_documented_one_line_check_accepts_a_daemon_checkpoint() {
    let (t, _, _) = signed_run().await;
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/evidence.md"))
            .unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("python3 -c '"))
        .expect("the one-liner in docs/evidence.md");
    let venv = std::env::var_os("OFFBOARD_TEST_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let script = line
        .replacen("python3", &venv.join("bin/python").display().to_string(), 1)
        .replace("checkpoints.jsonl", "cp.jsonl");
    std::fs::copy(t.path("checkpoints.jsonl"), t.path("cp.jsonl")).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "genuine");
}

/// `offboard evidence`: one leaver's record, signed, checked offline with the documented line; and
/// the HTML page is self-contained.
#[tokio::test]
async fn the_evidence_record_of_a_leaver_is_complete_signed_and_verifies_offline() {
    let (t, _, key) = signed_run().await;
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(t.path("offboard.toml"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["evidence", "e1"]);
    assert!(out.status.success(), "{out:?}");
    std::fs::write(t.path("e1.json"), &out.stdout).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &record["evidence"];
    assert_eq!(e["employee_id"], "e1");
    assert_eq!(e["termination"]["effective_at"], "2026-01-05T00:00:00.000Z");
    let app = &e["removals"][0];
    assert_eq!(
        (app["connector"].as_str(), app["state"].as_str()),
        (Some("app"), Some("done"))
    );
    assert!(!app["vendor_calls"].as_array().unwrap().is_empty());
    let rows = e["audit_rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["employee_id"] == "e1"));
    let newest = rows
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(e["checkpoint"]["seq"].as_i64().unwrap() >= newest);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ann@example.org"));
    // The signature, checked here with the public key.
    let sha = offboard::evidence::digest(e);
    assert_eq!(record["evidence_sha256"], sha.as_str());
    let sig = &record["signature"];
    key.verify_bytes(
        &offboard::evidence::signed_message(&sha, sig["key_id"].as_str().unwrap()),
        sig["sig"].as_str().unwrap(),
    )
    .unwrap();
    // And offline with the line of docs/evidence.md.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/evidence.md"))
            .unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("python3 -c 'import json,hashlib"))
        .expect("the record check in docs/evidence.md");
    let venv = std::env::var_os("OFFBOARD_TEST_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let script = line
        .replacen("python3", &venv.join("bin/python").display().to_string(), 1)
        .replace("E1001.json", "e1.json");
    let checked = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    assert_eq!(String::from_utf8_lossy(&checked.stdout).trim(), "genuine");

    let html = cli(&["evidence", "e1", "--format", "html"]);
    let page = String::from_utf8_lossy(&html.stdout);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("Offboarding evidence: employee e1"));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    let missing = cli(&["evidence", "nobody"]);
    assert_eq!(missing.status.code(), Some(1));
}

/// The HTTP sink: a checkpoint the endpoint refuses stays in the outbox and is delivered, in order and
/// unchanged, once the endpoint takes it; the removal path never waits for it.
#[tokio::test]
async fn checkpoints_reach_an_http_sink_through_a_durable_outbox() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/checkpoints"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/checkpoints"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    offboard::cli::keygen(dir.path(), &mut Vec::new()).unwrap();
    let text = format!(
        "{}\n[checkpoints]\nsigning_key_file = \"checkpoint.key\"\nlog = false\nurl = \"{}/checkpoints\"\n",
        config_text("[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n"),
        server.uri()
    );
    let t = TestApp::in_dir(dir, &text).await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n");
    t.poll().await;
    assert_eq!(t.drain().await.done, 1);

    let mut checkpointer = t.app.checkpointer().unwrap().unwrap();
    let first = checkpointer
        .checkpoint(t.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.app.store.outbox_unsent().await.unwrap().len(),
        1,
        "the 503 left it in the outbox"
    );
    assert_eq!(checkpointer.deliver().await, 1);
    assert!(t.app.store.outbox_unsent().await.unwrap().is_empty());
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let body: Checkpoint = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(body, first);
    let key = PublicKey::read(&t.path("checkpoint.pub")).unwrap();
    assert!(body.verify(&key).is_ok());
}

/// Retention: the oldest rows go to a signed segment that verifies on its own; what stays verifies
/// against the checkpoints from the anchor on; rows cannot be deleted past an anchor; a changed
/// segment is caught.
#[tokio::test]
async fn old_rows_are_archived_to_a_signed_segment_and_the_rest_still_verifies() {
    let (t, _, key) = signed_run().await;
    let head = t.app.store.audit_head().await.unwrap().unwrap().0;
    let out = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(t.path("offboard.toml"))
            .args(args)
            .args(["--actor", "records-office"])
            .output()
            .unwrap()
    };
    let through = (head - 3).to_string();
    let archived = cli(&[
        "audit",
        "archive",
        "--through",
        &through,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(archived.status.success(), "{archived:?}");
    let segment = std::fs::read_dir(out.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pubkey = t.path("checkpoint.pub");

    // The segment on its own.
    let seg = cli(&[
        "audit",
        "verify-segment",
        segment.to_str().unwrap(),
        "--public-key",
        pubkey.to_str().unwrap(),
    ]);
    assert!(seg.status.success(), "{seg:?}");
    assert!(String::from_utf8_lossy(&seg.stdout).contains(&format!("ok: {} rows", head - 3)));
    // What stays, with and without the checkpoints (the one signed before archiving is inside the segment).
    assert!(matches!(
        audit::verify(&t.app.store).await.unwrap(),
        Verification::Ok { .. }
    ));
    let checkpoints = checkpoint::read_file(&t.path("checkpoints.jsonl")).unwrap();
    assert!(matches!(
        check(&t, &checkpoints, &key).await,
        Verification::Ok { .. }
    ));
    assert_eq!(t.events("audit_archived").await[0].actor, "records-office");
    // The database refuses to delete a row past the anchor.
    let delete = Raw::of(&t.app.store)
        .execute("DELETE FROM audit_log WHERE seq = $1", &[head.into()])
        .await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    // A changed segment is caught.
    let text =
        std::fs::read_to_string(&segment)
            .unwrap()
            .replacen("\"offboard\"", "\"mallory\"", 1);
    std::fs::write(&segment, text).unwrap();
    let changed = cli(&[
        "audit",
        "verify-segment",
        segment.to_str().unwrap(),
        "--public-key",
        pubkey.to_str().unwrap(),
    ]);
    assert_eq!(changed.status.code(), Some(1), "{changed:?}");
    assert!(String::from_utf8_lossy(&changed.stdout).contains("was changed"));
}
