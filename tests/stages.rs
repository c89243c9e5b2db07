//! Leaver policy: staged removals across simulated time (deactivate now, delete later), legal holds
//! that make deletions wait while access is still removed, and a rehire between stages.

use std::time::Duration;

use crate::helpers::{TestApp, detail};

/// A program that records each call as `ACTION EMPLOYEE` in `calls.log` beside it.
const LOGS: &str = "#!/bin/sh\necho \"$OFFBOARD_ACTION $OFFBOARD_EMPLOYEE_ID\" >> \"$(dirname \"$0\")/calls.log\"\nexit 0\n";

const STAGED: &str = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n\n\
    [[connector.stage]]\naction = \"deactivate\"\nafter = \"0d\"\n\n\
    [[connector.stage]]\naction = \"delete\"\nafter = \"30d\"\n";

async fn staged() -> TestApp {
    TestApp::with(STAGED, &[("remove.sh", LOGS)]).await
}

fn calls(t: &TestApp) -> Vec<String> {
    std::fs::read_to_string(t.path("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Feed rows for `people`, effective today (the test clock's date).
fn rows(t: &TestApp, people: &[&str]) -> String {
    let today = t.clock.now().format("%Y-%m-%d");
    people
        .iter()
        .map(|p| format!("{p},{p}@example.org,{p},,{p},{today},Terminated\n"))
        .collect()
}

/// (stage, state) of each of a person's removals, in stage order.
async fn stages_of(t: &TestApp, employee: &str) -> Vec<(String, String)> {
    let mut all: Vec<_> = t
        .removals()
        .await
        .into_iter()
        .filter(|r| r.employee_id == employee)
        .collect();
    all.sort_by_key(|r| r.id);
    all.into_iter().map(|r| (r.stage, r.state)).collect()
}

fn pair(stage: &str, state: &str) -> (String, String) {
    (stage.to_string(), state.to_string())
}

#[tokio::test]
async fn each_stage_is_a_removal_of_its_own_due_after_its_delay() {
    let t = staged().await;
    t.write_feed(&rows(&t, &["e1"]));
    let s = t.poll().await;
    assert_eq!(s.removals_planned, 2, "one removal per stage");
    let planned = t.planned().await;
    assert_eq!(
        planned
            .iter()
            .map(|p| p["stage"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["deactivate", "delete"]
    );

    t.drain().await;
    assert_eq!(calls(&t), ["deactivate e1"], "only the first stage is due");
    assert_eq!(
        stages_of(&t, "e1").await,
        [pair("deactivate", "done"), pair("delete", "pending")]
    );

    // 29 days on: still not due.
    t.advance(Duration::from_secs(29 * 86_400));
    t.drain().await;
    assert_eq!(calls(&t).len(), 1);

    t.advance(Duration::from_secs(2 * 86_400));
    t.drain().await;
    assert_eq!(calls(&t), ["deactivate e1", "delete e1"]);
    assert_eq!(
        stages_of(&t, "e1").await,
        [pair("deactivate", "done"), pair("delete", "done")]
    );

    // The report counts the time to revoke of the first stage and tells the deletion beside it.
    let report = offboard::report::build(
        &t.app.store,
        &t.app.config,
        &offboard::report::ReportFilter::default(),
        t.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(report.rows.len(), 1, "{:?}", report.rows);
    let row = &report.rows[0];
    assert_eq!(row.stage.as_deref(), Some("deactivate"));
    assert!(!row.breach, "{row:?}");
    assert!(
        row.later_stages
            .as_deref()
            .unwrap()
            .starts_with("delete: done "),
        "{row:?}"
    );
    assert!(row.time_to_revoke_seconds.unwrap() < 86_400, "{row:?}");
    assert_eq!(report.summary.removals, 1);

    // The evidence record's removal is the first stage's, with that stage's own calls.
    let signed = offboard::evidence::build(&t.app.store, &t.app.config, "e1", t.clock.now())
        .await
        .unwrap()
        .unwrap();
    let removals = signed.evidence["removals"].as_array().unwrap();
    assert_eq!(removals.len(), 1);
    assert_eq!(removals[0]["removal_id"], row.removal_id);
    let first = t
        .removals()
        .await
        .into_iter()
        .find(|r| r.stage == "deactivate")
        .unwrap();
    assert_eq!(row.removal_id, first.id);
    let calls = removals[0]["vendor_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "the deactivation's one call: {calls:?}");
}

#[tokio::test]
async fn a_legal_hold_stops_the_deletion_but_not_the_deactivation_until_it_is_lifted() {
    let t = staged().await;
    let stages = offboard::config::hold_stages(&t.app.config.connectors);
    t.app
        .store
        .hold_add(
            "e1",
            "matter 2026-17",
            None,
            "cli",
            &stages,
            "legal",
            t.clock.now(),
        )
        .await
        .unwrap();
    // A second hold on the same person is refused with the first's reason.
    let again = t
        .app
        .store
        .hold_add("e1", "other", None, "cli", &stages, "legal", t.clock.now())
        .await
        .unwrap_err();
    assert!(format!("{again:#}").contains("matter 2026-17"), "{again:#}");

    t.write_feed(&rows(&t, &["e1", "e2"]));
    t.poll().await;
    t.drain().await;
    t.advance(Duration::from_secs(31 * 86_400));
    t.drain().await;
    let log = calls(&t);
    assert!(
        log.contains(&"deactivate e1".to_string()),
        "access still goes: {log:?}"
    );
    assert!(log.contains(&"delete e2".to_string()), "{log:?}");
    assert!(!log.contains(&"delete e1".to_string()), "held: {log:?}");
    assert_eq!(
        stages_of(&t, "e1").await,
        [pair("deactivate", "done"), pair("delete", "on_hold")]
    );
    let on_hold = t.events("removal_on_hold").await;
    assert_eq!(on_hold.len(), 1);
    assert_eq!(on_hold[0].employee_id.as_deref(), Some("e1"));
    assert_eq!(t.events("hold_added").await[0].actor, "legal");

    // Draining again changes nothing: a held deletion is never claimed, and nothing spins.
    let again = t.drain().await;
    assert_eq!(again.done, 0);

    let released = t
        .app
        .store
        .hold_remove("e1", "legal", t.clock.now())
        .await
        .unwrap();
    assert_eq!(released, 1);
    t.drain().await;
    assert!(calls(&t).contains(&"delete e1".to_string()));
    assert_eq!(
        stages_of(&t, "e1").await,
        [pair("deactivate", "done"), pair("delete", "done")]
    );
    assert_eq!(t.events("removal_released").await.len(), 1);
    assert!(t.app.store.holds().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_hold_with_an_end_date_ends_by_itself() {
    let t = staged().await;
    let stages = offboard::config::hold_stages(&t.app.config.connectors);
    let until = t.clock.now() + chrono::Duration::days(40);
    t.app
        .store
        .hold_add(
            "e3",
            "until the audit",
            Some(until),
            "cli",
            &stages,
            "legal",
            t.clock.now(),
        )
        .await
        .unwrap();
    t.write_feed(&rows(&t, &["e3"]));
    t.poll().await;
    t.advance(Duration::from_secs(31 * 86_400));
    t.drain().await;
    assert_eq!(
        stages_of(&t, "e3").await,
        [pair("deactivate", "done"), pair("delete", "on_hold")]
    );
    t.advance(Duration::from_secs(10 * 86_400));
    t.drain().await;
    assert_eq!(
        stages_of(&t, "e3").await,
        [pair("deactivate", "done"), pair("delete", "done")]
    );
    let removed = t.events("hold_removed").await;
    assert_eq!(removed[0].actor, offboard::audit::DAEMON);
}

#[tokio::test]
async fn a_rehire_between_stages_cancels_the_rest_and_says_what_to_undo() {
    let t = staged().await;
    t.write_feed(&rows(&t, &["e4"]));
    t.poll().await;
    t.drain().await;
    // Rehired: the same person active again.
    let today = t.clock.now().format("%Y-%m-%d");
    t.write_feed(&format!("e4,e4@example.org,e4,,e4,{today},Active\n"));
    let s = t.poll().await;
    assert_eq!(s.rehired_after_removal, 1);
    assert_eq!(
        stages_of(&t, "e4").await,
        [pair("deactivate", "done"), pair("delete", "cancelled")]
    );
    let rehired = t.events("rehired_after_removal").await;
    assert_eq!(
        detail(&rehired[0])["stages_done"],
        serde_json::json!([{"connector": "app", "stage": "deactivate"}])
    );
    t.advance(Duration::from_secs(31 * 86_400));
    t.drain().await;
    assert_eq!(calls(&t), ["deactivate e4"], "the deletion never runs");
}

#[tokio::test]
async fn the_feed_places_and_lifts_a_hold_through_an_attribute() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(dir.path(), "remove.sh", LOGS);
    let header = format!("{},Legal Hold\n", crate::helpers::HEADER.trim_end());
    std::fs::write(dir.path().join("feed.csv"), &header).unwrap();
    let config = crate::helpers::config_text(STAGED)
        .replace(
            "schedule = \"0 0 * * * *\"",
            "schedule = \"0 0 * * * *\"\n\n[feed.attributes]\nlegal_hold = \"Legal Hold\"",
        )
        .replace(
            "max_terminations_percent = 100.0",
            "max_terminations_percent = 100.0\nlegal_hold_attribute = \"legal_hold\"",
        );
    let t = TestApp::in_dir(dir, &config).await;
    let today = t.clock.now().format("%Y-%m-%d");
    let feed = |e5: &str| {
        std::fs::write(
            t.path("feed.csv"),
            format!(
                "{header}e5,e5@example.org,e5,,e5,{today},Terminated,{e5}\ne6,e6@example.org,e6,,e6,{today},Terminated,\n"
            ),
        )
        .unwrap();
    };
    feed("yes");
    t.poll().await;
    let holds = t.app.store.holds().await.unwrap();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(
        (holds[0].employee_id.as_str(), holds[0].source.as_str()),
        ("e5", "feed")
    );
    t.advance(Duration::from_secs(31 * 86_400));
    t.drain().await;
    assert_eq!(
        stages_of(&t, "e5").await,
        [pair("deactivate", "done"), pair("delete", "on_hold")]
    );
    assert_eq!(
        stages_of(&t, "e6").await,
        [pair("deactivate", "done"), pair("delete", "done")]
    );

    // An operator's enqueue of the same person carries no attribute: it lifts nothing.
    let batch = offboard::feed::intake::Batch {
        source: offboard::feed::intake::BatchSource::Cli,
        source_ref: None,
        actor: "ops".into(),
        content_sha256: None,
        records: vec![offboard::feed::intake::Record {
            row: 1,
            line: None,
            result: Ok(offboard::domain::FeedRow {
                person: offboard::domain::Person {
                    employee_id: "e5".into(),
                    email: Some("e5@example.org".into()),
                    ..Default::default()
                },
                status: offboard::domain::HrStatus::Terminated {
                    effective_at: t.clock.now(),
                },
            }),
        }],
    };
    offboard::feed::intake::ingest(
        &t.app.store,
        &t.app.config.connectors,
        &t.app.config.safety,
        batch,
        t.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(t.app.store.holds().await.unwrap().len(), 1, "still held");

    // The feed clears the attribute: the hold ends and the deletion runs.
    feed("");
    t.poll().await;
    assert!(t.app.store.holds().await.unwrap().is_empty());
    t.drain().await;
    assert_eq!(
        stages_of(&t, "e5").await,
        [pair("deactivate", "done"), pair("delete", "done")]
    );
}

#[tokio::test]
async fn inactive_accounts_go_through_the_guard_and_never_remove() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(dir.path(), "remove.sh", LOGS);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\nnever_remove = [\"svc-*\"]\n\n\
        [connector.inactive]\nafter = \"90d\"\npath = \"logins.csv\"\naccount_column = \"login\"\nlast_login_column = \"seen\"\n";
    let config = crate::helpers::config_text(connector).replace(
        "max_terminations_percent = 100.0",
        "max_terminations_percent = 100.0\nmax_terminations_per_batch = 2",
    );
    let t = TestApp::in_dir(dir, &config).await;
    let old = (t.clock.now() - chrono::Duration::days(100)).format("%Y-%m-%d");
    std::fs::write(
        t.path("logins.csv"),
        format!("login,seen\na@example.org,{old}\nb@example.org,{old}\nc@example.org,{old}\nsvc-backup,{old}\n"),
    )
    .unwrap();
    offboard::app::scan_inactive(&t.app.store, &t.app.config, t.clock.now()).await;
    let removals = t.removals().await;
    assert_eq!(removals.len(), 4);
    assert_eq!(
        removals.iter().filter(|r| r.state == "held").count(),
        3,
        "over the guard's limit: held for approval {removals:?}"
    );
    let excluded: Vec<_> = removals.iter().filter(|r| r.state == "cancelled").collect();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0].employee_id, "inactive:app:svc-backup");
    t.drain().await;
    assert!(calls(&t).is_empty(), "nothing runs while held");
    let held = t.app.store.held_batches().await.unwrap();
    assert_eq!(held.len(), 1);
}

#[tokio::test]
async fn a_json_export_in_the_shape_of_a_scim_list_is_read_with_pointers() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(dir.path(), "remove.sh", LOGS);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n\n\
        [connector.inactive]\nafter = \"90d\"\npath = \"users.json\"\naccount_column = \"userName\"\n\
        last_login_column = \"/meta/lastLogin\"\n";
    let t = TestApp::in_dir(dir, &crate::helpers::config_text(connector)).await;
    let day = |days: i64| (t.clock.now() - chrono::Duration::days(days)).to_rfc3339();
    std::fs::write(
        t.path("users.json"),
        serde_json::json!({"Resources": [
            {"userName": "old@example.org", "meta": {"lastLogin": day(120)}},
            {"userName": "new@example.org", "meta": {"lastLogin": day(3)}},
            {"userName": "never@example.org", "meta": {}},
            {"userName": ["not", "a", "string"], "meta": {"lastLogin": day(120)}},
        ]})
        .to_string(),
    )
    .unwrap();
    offboard::app::scan_inactive(&t.app.store, &t.app.config, t.clock.now()).await;
    let removals = t.removals().await;
    assert_eq!(removals.len(), 1, "{removals:?}");
    assert_eq!(removals[0].employee_id, "inactive:app:old@example.org");
    let rejects = t.app.store.rejected_rows(None).await.unwrap();
    let faults: Vec<(i64, Option<String>, String)> = rejects
        .iter()
        .map(|r| (r.row, r.field.clone(), r.reason.clone()))
        .collect();
    assert_eq!(
        faults,
        [
            (3, Some("last_login".into()), "missing".into()),
            (4, Some("account".into()), "wrong_type".into()),
        ]
    );
}
