//! The mass-removal guard, approve and reject, exclusions, scope, and `plan`.

use offboard::feed::intake::PlanLine;
use offboard::store::batches::Decision;

use crate::helpers::{OK_SCRIPT, TestApp, detail};

/// A feed of `n` leavers and `active` people still employed.
fn feed(n: usize, active: usize) -> String {
    let mut rows = String::new();
    for i in 0..n {
        rows.push_str(&format!(
            "t{i},t{i}@example.org,t{i},,T,2026-01-05,Terminated\n"
        ));
    }
    for i in 0..active {
        rows.push_str(&format!("a{i},a{i}@example.org,a{i},,A,,Active\n"));
    }
    rows
}

async fn guarded(limits: &str) -> TestApp {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace("max_terminations_percent = 100.0", limits);
    let dir = t.dir;
    std::fs::write(dir.path().join("offboard.toml"), &text).unwrap();
    TestApp::in_dir(dir, &text).await
}

#[tokio::test]
async fn a_batch_over_the_absolute_limit_is_held_and_removes_nobody() {
    let t = guarded("max_terminations_per_batch = 3\nmax_terminations_percent = 100.0").await;
    t.write_feed(&feed(4, 0));

    let s = t.poll().await;

    assert!(s.held);
    assert_eq!((s.new_terminations, s.limit), (4, 3));
    assert_eq!(t.drain().await.attempts, 0, "nothing held may run");
    assert!(t.removals().await.iter().all(|r| r.state == "held"));
    let status = offboard::status::gather(&t.app.store, t.clock.now())
        .await
        .unwrap();
    assert_eq!(status.held_batches.len(), 1);
    assert_eq!(status.held_batches[0].held_removals, 4);
}

#[tokio::test]
async fn a_batch_over_the_percentage_is_held_and_approve_releases_it() {
    // 3 leavers among 40 rows is 7.5 %, over 5 %; the absolute limit (50) is not reached.
    let t = guarded("max_terminations_percent = 5.0").await;
    t.write_feed(&feed(3, 37));
    let s = t.poll().await;
    assert!(s.held);
    assert_eq!(s.limit, 2);

    let n = t
        .app
        .store
        .decide_batch(s.batch_id, Decision::Approve, "alice", t.clock.now())
        .await
        .unwrap();

    assert_eq!(n, 3);
    assert_eq!(t.drain().await.done, 3);
    let approved = t.events("batch_approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].actor, "alice");
    assert_eq!(t.events("removal_approved").await.len(), 3);
    assert!(
        t.app
            .store
            .decide_batch(s.batch_id, Decision::Approve, "alice", t.clock.now())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn reject_cancels_a_held_batch_and_is_audited() {
    let t = guarded("max_terminations_per_batch = 1\nmax_terminations_percent = 100.0").await;
    t.write_feed(&feed(2, 0));
    let s = t.poll().await;

    t.app
        .store
        .decide_batch(s.batch_id, Decision::Reject, "bob", t.clock.now())
        .await
        .unwrap();

    assert!(
        t.removals()
            .await
            .iter()
            .all(|r| r.state == "cancelled" && r.last_error.as_deref() == Some("rejected"))
    );
    assert_eq!(t.drain().await.attempts, 0);
    let rejected = t.events("batch_rejected").await;
    assert_eq!(rejected[0].actor, "bob");
    assert_eq!(t.events("removal_rejected").await.len(), 2);
}

#[tokio::test]
async fn a_feed_that_shrinks_to_nothing_rescinds_nobody() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n");
    t.poll().await;

    t.write_feed("");
    let s = t.poll().await;

    assert_eq!((s.rows, s.rescinded), (0, 0));
    assert_eq!(t.removal("e1").await.state, "pending");
}

#[tokio::test]
async fn never_remove_matches_ids_emails_usernames_and_globs_and_is_audited() {
    let t = TestApp::exec(OK_SCRIPT, "never_remove = [\"legal-hold@example.org\"]").await;
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace(
            "[safety]\n",
            "[safety]\nnever_remove = [\"E0001\", \"svc-*\", \"BreakGlass\"]\n",
        );
    let dir = t.dir;
    let t = TestApp::in_dir(dir, &text).await;
    t.write_feed(
        "e0001,a@example.org,a,,A,2026-01-05,Terminated\n\
         E0001,b@example.org,b,,B,2026-01-05,Terminated\n\
         e3,svc-backup@example.org,svcbackup,,S,2026-01-05,Terminated\n\
         e4,c@example.org,breakglass,,C,2026-01-05,Terminated\n\
         e5,legal-hold@example.org,lh,,L,2026-01-05,Terminated\n\
         e6,d@example.org,d,,D,2026-01-05,Terminated\n",
    );

    let s = t.poll().await;

    // Employee ids are compared exactly in the feed, but patterns ignore case: both e0001 and E0001 are protected.
    assert_eq!(s.excluded, 5);
    let done = t.drain().await;
    assert_eq!(done.done, 1);
    for e in ["e0001", "E0001", "e3", "e4", "e5"] {
        let r = t.removal(e).await;
        assert_eq!(
            (r.state.as_str(), r.last_error.as_deref()),
            ("cancelled", Some("excluded")),
            "{e}"
        );
    }
    assert_eq!(t.removal("e6").await.state, "done");
    let planned = t.planned().await;
    assert_eq!(
        planned
            .iter()
            .filter(|r| r["to"] == "cancelled" && r["error"] == "excluded")
            .count(),
        5
    );
}

#[tokio::test]
async fn a_connector_only_gets_people_in_its_scope() {
    let connectors = "[[connector]]\nname = \"sales_crm\"\nkind = \"exec\"\nprogram = \"remove.sh\"\nscope = { email = [\"*@sales.example.org\"] }\n\
                      [[connector]]\nname = \"wiki\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n";
    let t = TestApp::with(connectors, &[("remove.sh", OK_SCRIPT)]).await;
    t.write_feed("e1,ann@sales.example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n");

    t.poll().await;

    let all = t.removals().await;
    let pairs: Vec<(String, String)> = all
        .iter()
        .map(|r| (r.employee_id.clone(), r.connector.clone()))
        .collect();
    assert_eq!(pairs.len(), 3);
    assert!(pairs.contains(&("e1".into(), "sales_crm".into())));
    assert!(!pairs.contains(&("e2".into(), "sales_crm".into())));
}

async fn table_counts(t: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "people",
        "batches",
        "feed_rejects",
        "terminations",
        "removals",
        "audit_log",
    ] {
        let n: i64 = on_db!(t.app.store, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(
            format!("SELECT COUNT(*) FROM {table}")
        ))
        .fetch_one(pool)
        .await)
        .unwrap();
        counts.push(n);
    }
    counts
}

#[tokio::test]
async fn plan_shows_every_category_and_writes_nothing() {
    let connectors = "[[connector]]\nname = \"wiki\"\nkind = \"exec\"\nprogram = \"remove.sh\"\ngrace = \"1d\"\n\
                      [[connector]]\nname = \"sales_crm\"\nkind = \"exec\"\nprogram = \"remove.sh\"\nscope = { email = [\"*@sales.example.org\"] }\n";
    let t = TestApp::with(connectors, &[("remove.sh", OK_SCRIPT)]).await;
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace("[safety]\n", "[safety]\nnever_remove = [\"svc-*\"]\n");
    let t = TestApp::in_dir(t.dir, &text).await;
    // Before: one leaver already removed, one pending that will be rescinded, one whose date moves.
    t.write_feed(
        "done1,d@example.org,d,,D,2026-01-05,Terminated\n\
         back1,b@example.org,b,,B,2030-01-05,Terminated\n\
         move1,m@example.org,m,,M,2030-01-05,Terminated\n",
    );
    t.poll().await;
    t.drain().await;
    t.write_feed(
        "done1,d@example.org,d,,D,2026-01-05,Terminated\n\
         back1,b@example.org,b,,B,,Active\n\
         move1,m@example.org,m,,M,2030-02-01,Terminated\n\
         new1,n@sales.example.org,n,,N,2026-01-05,Terminated\n\
         svc1,svc-x@example.org,svc,,S,2026-01-05,Terminated\n",
    );
    let before = table_counts(&t).await;
    let head = offboard::audit::verify(&t.app.store).await.unwrap();

    let plan = offboard::preview::plan(&t.app.store, &t.app.config, false, t.clock.now())
        .await
        .unwrap();

    assert_eq!(table_counts(&t).await, before, "plan must not write");
    assert_eq!(offboard::audit::verify(&t.app.store).await.unwrap(), head);
    let find = |emp: &str, conn: Option<&str>| -> PlanLine {
        plan.lines
            .iter()
            .map(|i| i.line.clone())
            .find(|l| l.employee_id == emp && l.connector.as_deref() == conn)
            .unwrap_or_else(|| panic!("no line for {emp} {conn:?}: {:#?}", plan.lines))
    };
    assert_eq!(find("new1", Some("wiki")).action, "new");
    assert_eq!(find("new1", Some("sales_crm")).action, "new");
    assert_eq!(find("done1", Some("wiki")).action, "already_done");
    assert_eq!(find("svc1", Some("sales_crm")).action, "out_of_scope");
    assert_eq!(find("back1", None).action, "rescinded");
    assert_eq!(find("back1", Some("wiki")).action, "cancelled");
    assert_eq!(find("move1", None).action, "moved");
    assert_eq!(find("svc1", Some("wiki")).action, "excluded");
    assert_eq!(plan.summary.new_terminations, 2);
    assert!(!plan.summary.held);

    // The same feed with a tight guard: the plan says the batch would be held.
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace(
            "max_terminations_percent = 100.0",
            "max_terminations_per_batch = 1",
        );
    let t = TestApp::in_dir(t.dir, &text).await;
    let plan = offboard::preview::plan(&t.app.store, &t.app.config, false, t.clock.now())
        .await
        .unwrap();
    assert!(plan.summary.held);
    assert_eq!(
        plan.lines
            .iter()
            .find(|i| i.line.employee_id == "new1" && i.line.connector.as_deref() == Some("wiki"))
            .unwrap()
            .line
            .action,
        "held"
    );
}

#[tokio::test]
async fn an_import_goes_through_the_planner_like_a_feed_row() {
    // Arrange: one connector whose never_remove protects an account of the export.
    let t = TestApp::exec(OK_SCRIPT, "never_remove = [\"svc-*\"]").await;
    let connector = t.app.config.connector("app").unwrap();
    let export = "Login,Name\nu-1,One\nsvc-backup,Backup\n,Blank\nu-1,Again\nu-2,Two\n";

    // Act
    let s = offboard::feed::import::import_accounts(
        &t.app.store,
        connector,
        &t.app.config.safety,
        export.as_bytes(),
        "login",
        "export.csv",
        "ops",
        t.clock.now(),
    )
    .await
    .unwrap();

    // Assert: a duplicate account is queued once, a blank one rejected, a protected one excluded.
    assert_eq!(
        (s.rows, s.accepted, s.rejected, s.new_terminations),
        (4, 3, 1, 3)
    );
    assert_eq!((s.removals_planned, s.excluded, s.held), (3, 1, false));
    let removals = t.removals().await;
    let states: Vec<(&str, &str, &str)> = removals
        .iter()
        .map(|r| {
            (
                r.account.as_deref().unwrap_or(""),
                r.state.as_str(),
                r.employee_id.as_str(),
            )
        })
        .collect();
    let id = s.batch_id;
    assert_eq!(
        states,
        [
            ("u-1", "pending", format!("import-{id}-1").as_str()),
            ("svc-backup", "cancelled", format!("import-{id}-2").as_str()),
            ("u-2", "pending", format!("import-{id}-5").as_str()),
        ]
    );
    // Due at once: the connector's grace does not apply.
    assert!(removals.iter().all(|r| r.due_at == r.effective_at));
    // Audited as any batch: a termination lists its removal, the batch names the connector and column.
    let planned = t.planned().await;
    assert_eq!(planned.len(), 3);
    assert_eq!(planned[1]["to"], "cancelled");
    assert_eq!(planned[1]["error"], "excluded");
    let received = t.events("batch_received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].connector.as_deref(), Some("app"));
    assert_eq!(detail(&received[0])["column"], "login");
    assert_eq!(detail(&received[0])["source"], "import");
    assert!(t.events("removal_planned").await.is_empty());
    assert!(matches!(
        offboard::audit::verify(&t.app.store).await.unwrap(),
        offboard::audit::Verification::Ok { .. }
    ));
}

/// After `reject`, the unchanged feed is not held again: the rejected people with the same effective
/// date are remembered, `status` counts them; a changed date, or `unreject`, starts them again.
#[tokio::test]
async fn a_rejected_batch_stays_rejected_until_the_feed_changes_or_an_operator_lifts_it() {
    let t = guarded("max_terminations_per_batch = 1\nmax_terminations_percent = 100.0").await;
    t.write_feed(&feed(2, 0));
    let s = t.poll().await;
    assert!(s.held);
    t.app
        .store
        .decide_batch(s.batch_id, Decision::Reject, "bob", t.clock.now())
        .await
        .unwrap();

    let again = t.poll().await;
    assert!(!again.held, "the same people are not held again");
    assert_eq!((again.new_terminations, again.still_rejected), (0, 2));
    assert_eq!(t.removals().await.len(), 2, "no new removal");
    let status = offboard::status::gather(&t.app.store, t.clock.now())
        .await
        .unwrap();
    assert_eq!(
        (status.held_batches.len(), status.rejected_terminations),
        (0, 2)
    );
    let rejected = t.app.store.rejected_terminations().await.unwrap();
    assert_eq!(rejected[0].rejected_by.as_deref(), Some("bob"));

    // HR corrects t1's date: that is a new termination.
    t.write_feed(&feed(2, 0).replace(
        "t1,t1@example.org,t1,,T,2026-01-05",
        "t1,t1@example.org,t1,,T,2026-01-09",
    ));
    let changed = t.poll().await;
    assert_eq!((changed.new_terminations, changed.still_rejected), (1, 1));
    assert!(!changed.held);

    // An operator lifts t0's rejection: the next poll takes t0 again.
    t.app
        .store
        .unreject("t0", "alice", t.clock.now())
        .await
        .unwrap();
    assert_eq!(t.events("termination_unrejected").await[0].actor, "alice");
    let lifted = t.poll().await;
    assert_eq!((lifted.new_terminations, lifted.still_rejected), (1, 0));
    assert_eq!(t.drain().await.done, 2);
    assert!(
        t.app
            .store
            .unreject("t0", "alice", t.clock.now())
            .await
            .is_err()
    );
}
