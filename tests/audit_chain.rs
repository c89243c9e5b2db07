//! The audit log: same-transaction rows, append-only triggers, and `verify` finding tampering.

use crate::helpers::{OK_SCRIPT, Raw, TestApp};
use offboard::audit::{self, Verification};

async fn run_some(t: &TestApp) {
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n");
    t.poll().await;
    t.drain().await;
}

#[tokio::test]
async fn verify_passes_after_a_normal_run_and_every_change_has_its_row() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    run_some(&t).await;

    let v = audit::verify(&t.app.store).await.unwrap();

    let rows = t.audit().await;
    assert!(matches!(v, Verification::Ok { rows: n, .. } if n == rows.len() as i64));
    for event in [
        "batch_received",
        "termination_created",
        "removal_claimed",
        "vendor_call",
        "removal_done",
    ] {
        assert!(rows.iter().any(|r| r.event == event), "missing {event}");
    }
    // Two removals: each planned (listed by its termination's row), claimed, called and done once.
    let planned = t.planned().await;
    assert_eq!(planned.len(), 2, "{planned:?}");
    for r in t.removals().await {
        let item = planned
            .iter()
            .find(|p| p["removal_id"] == r.id)
            .expect("the removal is listed by its termination");
        assert_eq!(item["connector"], r.connector.as_str());
        assert_eq!(item["to"], "pending");
        assert_eq!(item["due_at"], r.due_at.as_str());
    }
    assert_eq!(t.events("removal_done").await.len(), 2);
    // No personal data beyond the employee id.
    for r in &rows {
        assert!(
            !r.detail.contains("ann@example.org") && !r.detail.contains("Ann"),
            "{}",
            r.detail
        );
    }
}

#[tokio::test]
async fn the_audit_log_refuses_update_and_delete() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    run_some(&t).await;
    let raw = Raw::of(&t.app.store);
    let update = raw
        .execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", &[])
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = raw
        .execute("DELETE FROM audit_log WHERE seq = 2", &[])
        .await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

#[tokio::test]
async fn verify_reports_the_exact_row_that_was_changed() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    run_some(&t).await;
    let raw = Raw::of(&t.app.store);
    raw.drop_audit_guards().await;
    raw.execute(
        "UPDATE audit_log SET outcome = 'removed' WHERE seq = 5",
        &[],
    )
    .await
    .unwrap();

    let v = audit::verify(&t.app.store).await.unwrap();

    let Verification::Broken { seq, reason } = v else {
        panic!("tampering not detected");
    };
    assert_eq!(seq, 5);
    assert!(reason.contains("changed"));
}

#[tokio::test]
async fn verify_reports_a_deleted_row() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    run_some(&t).await;
    let raw = Raw::of(&t.app.store);
    raw.drop_audit_guards().await;
    raw.execute("DELETE FROM audit_log WHERE seq = 7", &[])
        .await
        .unwrap();

    let v = audit::verify(&t.app.store).await.unwrap();

    assert!(matches!(v, Verification::Broken { seq: 7, .. }), "{v:?}");
}

#[tokio::test]
async fn verify_reports_a_row_whose_hash_was_recomputed_but_whose_successor_was_not() {
    // A forger who rewrites a row and its own hash still breaks the link to the next row.
    let t = TestApp::exec(OK_SCRIPT, "").await;
    run_some(&t).await;
    let raw = Raw::of(&t.app.store);
    raw.drop_audit_guards().await;
    // Changes the first two hex digits (whatever they were: a fixed 'ff' would change nothing one
    // time in 256).
    raw.execute(
        "UPDATE audit_log SET hash = (CASE WHEN substr(hash, 1, 2) = 'ff' THEN '00' ELSE 'ff' END) \
         || substr(hash, 3) WHERE seq = 3",
        &[],
    )
    .await
    .unwrap();

    let v = audit::verify(&t.app.store).await.unwrap();

    assert!(matches!(v, Verification::Broken { seq: 3, .. }), "{v:?}");
}
