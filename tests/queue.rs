//! Leases, the completion fence, dry-run, due times and the idle wake-up.

use std::time::Duration;

use offboard::store::queue::{self, Applied, Attempt, Completion};

use crate::helpers::{OK_SCRIPT, TestApp, detail};

#[tokio::test]
async fn an_expired_lease_is_reclaimed_and_the_stale_workers_late_result_is_refused() {
    // Arrange: one due removal, claimed by a worker that then goes silent.
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n");
    t.poll().await;
    let stale = t
        .app
        .store
        .claim(
            "stale-worker",
            "app",
            10,
            Duration::from_secs(10),
            t.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].attempt, 1);

    // Act 1: before the lease expires nothing else can take it.
    assert_eq!(t.drain().await.attempts, 0);
    assert_eq!(t.removal("e1").await.state, "running");

    // Act 2: after the lease, the pool reclaims it and completes it once.
    t.advance(Duration::from_secs(11));
    let summary = t.drain().await;
    assert_eq!(summary.done, 1);
    let r = t.removal("e1").await;
    assert_eq!(r.state, "done");
    assert_eq!(r.attempts, 2);
    assert_eq!(t.events("lease_expired").await.len(), 1);

    // Act 3: the stale worker finally reports; the fence refuses it.
    let applied = t
        .app
        .store
        .complete(
            &stale[0],
            &[],
            &Completion::Failed {
                error: "late".into(),
            },
            t.clock.now(),
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(applied, Applied::Stale);
    let r = t.removal("e1").await;
    assert_eq!(
        r.state, "done",
        "the late failure must not overwrite the newer attempt"
    );
    assert_eq!(r.outcome.as_deref(), Some("removed"));
    let refused = t.events("stale_completion_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].attempt, Some(1));
    assert_eq!(detail(&refused[0])["late_result"], "failed");
    assert_eq!(t.events("removal_done").await.len(), 1);
}

#[tokio::test]
async fn attempts_cut_short_by_expired_leases_count_toward_max_attempts_and_end_failed() {
    // Arrange: one due removal whose attempts never finish (the daemon dies during each of them):
    // max_attempts is 5 in the test config.
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n");
    t.poll().await;
    let lease = Duration::from_secs(10);
    for attempt in 1..=5 {
        let claimed = t
            .app
            .store
            .claim("dies", "app", 1, lease, t.clock.now())
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt} is claimed");
        assert_eq!(claimed[0].attempt, attempt);
        t.advance(Duration::from_secs(11));
        if attempt < 5 {
            let reclaimed = t
                .app
                .store
                .reclaim_expired(t.clock.now(), |_| 5)
                .await
                .unwrap();
            assert_eq!(
                reclaimed,
                queue::Reclaimed {
                    requeued: 1,
                    failed: 0
                },
                "attempt {attempt} of 5 is requeued"
            );
        }
    }

    // Act: the worker pool finds the fifth lease expired.
    let summary = t.drain().await;

    // Assert: no sixth attempt; the removal is dead-lettered with the reason, audited.
    assert_eq!(summary.attempts, 0);
    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    assert_eq!(r.attempts, 5);
    assert_eq!(r.outcome.as_deref(), Some("failed"));
    assert!(r.finished_at.is_some());
    let error = r.last_error.unwrap_or_default();
    assert!(
        error.starts_with("gave up after 5 attempts") && error.contains("lease"),
        "{error}"
    );
    let expired = t.events("lease_expired").await;
    assert_eq!(expired.len(), 5);
    assert_eq!(detail(&expired[4])["to"], "failed");
    assert_eq!(expired[4].outcome.as_deref(), Some("failed"));
    assert!(
        expired[..4].iter().all(|e| detail(e)["to"] == "pending"),
        "the first four go back to pending"
    );
    assert!(matches!(
        offboard::audit::verify(&t.app.store).await.unwrap(),
        offboard::audit::Verification::Ok { .. }
    ));

    // An operator's retry starts a fresh count: the removal runs again and completes.
    let retried = t
        .app
        .store
        .retry(
            &queue::RetrySelection::One(r.id),
            &offboard::planner::renderer(&t.app.config),
            "ops",
            t.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(retried.0, vec![r.id]);
    assert_eq!(t.drain().await.done, 1);
    assert_eq!(t.removal("e1").await.state, "done");
}

#[tokio::test]
async fn a_future_termination_waits_until_it_is_due_plus_grace() {
    let t = TestApp::exec(OK_SCRIPT, "grace = \"2d\"").await;
    let soon = (t.clock.now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    t.write_feed(&format!("e1,ann@example.org,ann,,Ann,{soon},Terminated\n"));
    t.poll().await;

    assert_eq!(t.drain().await.attempts, 0, "not due yet");
    t.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(
        t.drain().await.attempts,
        0,
        "effective date passed, grace not over"
    );
    t.advance(Duration::from_secs(86_400 + 60));
    assert_eq!(t.drain().await.done, 1);
    assert_eq!(t.removal("e1").await.state, "done");
}

#[tokio::test]
async fn dry_run_resolves_only_and_ends_planned() {
    let marker_script = "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\nexit 0\n";
    let t = TestApp::exec(marker_script, "dry_run = true").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n");
    t.poll().await;

    let summary = t.drain().await;

    assert_eq!(summary.planned, 1);
    let r = t.removal("e1").await;
    assert_eq!(r.state, "planned");
    assert!(r.last_error.unwrap().contains("would run"));
    assert!(!t.path("ran").exists(), "dry-run must not run the program");
    assert_eq!(t.events("removal_planned_dry_run").await.len(), 1);
}

#[tokio::test]
async fn an_account_template_the_person_cannot_fill_fails_at_planning_with_the_reason() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,,ann,,Ann,2026-01-05,Terminated\n");
    t.poll().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    assert!(r.last_error.unwrap().contains("{email}"));
}

#[tokio::test]
async fn per_connector_concurrency_bounds_calls_in_flight() {
    // Each call records its start and end; with concurrency 2, no more than two overlap.
    let script = "#!/bin/sh\nd=\"$(dirname \"$0\")\"\nmkdir -p \"$d/inflight\"\ntouch \"$d/inflight/$OFFBOARD_REMOVAL_ID\"\n\
                  n=$(ls \"$d/inflight\" | wc -l)\necho $n >> \"$d/peaks\"\nsleep 0.3\nrm \"$d/inflight/$OFFBOARD_REMOVAL_ID\"\nexit 0\n";
    let t = TestApp::exec(script, "concurrency = 2").await;
    let rows: String = (0..6)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,P,2026-01-05,Terminated\n"))
        .collect();
    t.write_feed(&rows);
    t.poll().await;

    let summary = t.drain().await;

    assert_eq!(summary.done, 6);
    let peaks = std::fs::read_to_string(t.path("peaks")).unwrap();
    let max: u32 = peaks
        .lines()
        .map(|l| l.trim().parse::<u32>().unwrap())
        .max()
        .unwrap();
    assert!(max <= 2, "at most two calls at once, saw {max}");
    assert_eq!(max, 2, "the two slots are used in parallel");
}

#[tokio::test]
async fn the_daemon_wakes_for_work_that_becomes_due_without_waiting_for_idle_poll() {
    // idle_poll is long; a removal becoming due in a second must still run promptly.
    let t = TestApp::exec(OK_SCRIPT, "").await;
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace("idle_poll = \"1s\"", "idle_poll = \"10m\"");
    std::fs::write(t.path("offboard.toml"), text).unwrap();
    let config = offboard::config::Config::load(&t.path("offboard.toml")).unwrap();
    let app = offboard::app::App::build(config, t.clock.clone())
        .await
        .unwrap();
    let due = t.clock.now() + chrono::Duration::seconds(1);
    t.write_feed(&format!(
        "e1,ann@example.org,ann,,Ann,{},Terminated\n",
        due.format("%Y-%m-%dT%H:%M:%SZ")
    ));
    t.poll().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = app.workers();
    let handle = tokio::spawn(workers.run_until_stopped(stop_rx));

    let mut state = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = t.removal("e1").await.state;
        if state == "done" {
            break;
        }
    }
    stop_tx.send(true).unwrap();
    handle.await.unwrap().unwrap();
    assert_eq!(state, "done", "the worker slept past the due time");
}

#[tokio::test]
async fn one_turn_records_several_attempts_and_the_fence_refuses_only_the_stale_one() {
    // Arrange: three claimed removals; the third reports under an attempt number that is not the current one.
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed(
        "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n\
         e2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n\
         e3,cy@example.org,cy,,Cy,2026-01-05,Terminated\n",
    );
    t.poll().await;
    let mut claims = t
        .app
        .store
        .claim("worker", "app", 10, Duration::from_secs(60), t.clock.now())
        .await
        .unwrap();
    assert_eq!(claims.len(), 3);
    claims[2].attempt += 1;
    let done = Completion::Done {
        outcome: "removed".into(),
        remote_id: None,
    };
    let failed = Completion::Failed {
        error: "permanent".into(),
    };
    let attempts: Vec<Attempt> = [done.clone(), failed, done]
        .into_iter()
        .zip(claims)
        .map(|(completion, claim)| Attempt {
            claim,
            calls: Vec::new(),
            completion,
        })
        .collect();

    // Act: one turn records all three and claims nothing.
    let turn = t
        .app
        .store
        .record_and_claim(
            &attempts,
            &[],
            &[],
            0,
            "worker",
            Duration::from_secs(60),
            t.clock.now(),
            t.clock.now(),
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(
        turn.applied,
        [Applied::Applied, Applied::Applied, Applied::Stale]
    );
    assert!(turn.claimed.is_empty());
    assert_eq!(t.removal("e1").await.state, "done");
    assert_eq!(t.removal("e2").await.state, "failed");
    assert_eq!(
        t.removal("e3").await.state,
        "running",
        "the stale result changed nothing"
    );
    assert_eq!(t.events("removal_done").await.len(), 1);
    assert_eq!(t.events("removal_failed").await.len(), 1);
    assert_eq!(t.events("stale_completion_refused").await.len(), 1);
    assert!(matches!(
        offboard::audit::verify(&t.app.store).await.unwrap(),
        offboard::audit::Verification::Ok { .. }
    ));
}

#[tokio::test]
async fn a_turn_shares_the_free_slots_between_connectors_and_skips_one_with_nothing_due() {
    // Arrange: "later" has nothing due (a day of grace), "now" has three due removals.
    let connectors = "[[connector]]\nname = \"later\"\nkind = \"exec\"\nprogram = \"remove.sh\"\ngrace = \"1d\"\n\
                      [[connector]]\nname = \"now\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n";
    let t = TestApp::with(connectors, &[("remove.sh", OK_SCRIPT)]).await;
    let today = t.clock.now().format("%Y-%m-%d");
    t.write_feed(&format!(
        "e1,ann@example.org,ann,,Ann,{today},Terminated\n\
         e2,bob@example.org,bob,,Bob,{today},Terminated\n\
         e3,cy@example.org,cy,,Cy,{today},Terminated\n"
    ));
    t.poll().await;

    // Act: two free slots in all, each connector could take two.
    let turn = t
        .app
        .store
        .record_and_claim(
            &[],
            &[("later", 2), ("now", 2)],
            &[],
            2,
            "worker",
            Duration::from_secs(60),
            t.clock.now(),
            t.clock.now(),
        )
        .await
        .unwrap();

    // Assert: the slots "later" could not use went to "now", and no more than two were claimed.
    assert_eq!(turn.claimed.len(), 2);
    assert!(turn.claimed.iter().all(|c| c.connector == "now"));
    let ids: Vec<&str> = turn
        .claimed
        .iter()
        .map(|c| c.person.employee_id.as_str())
        .collect();
    assert_eq!(ids, ["e1", "e2"], "oldest due first, then by id");
    assert_eq!(t.events("removal_claimed").await.len(), 2);
}

/// A leaver sent without the username the account template needs gets a failed removal; sending the
/// person again with it queues the removal again, and `offboard retry` makes the account from the
/// record and template as they are now (and leaves it failed, saying why, while it still cannot).
#[tokio::test]
async fn a_removal_that_failed_for_a_missing_field_runs_once_the_record_or_template_has_it() {
    let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\naccount = \"{username}\"\nprogram = \"remove.sh\"\nargs = [\"{account}\"]\n";
    let t = TestApp::with(connector, &[("remove.sh", OK_SCRIPT)]).await;
    t.write_feed("e1,ann@example.org,,,Ann,2026-01-05,Terminated\ne2,bob@example.org,,,Bob,2026-01-05,Terminated\n");
    let first = t.poll().await;
    assert_eq!(first.failed_at_planning, 2);
    assert!(t.removals().await.iter().all(|r| r.state == "failed"));
    assert!(
        t.removal("e1")
            .await
            .last_error
            .unwrap()
            .contains("{username}")
    );

    // HR sends e1 again, now with a username: the removal is queued again and runs.
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,,,Bob,2026-01-05,Terminated\n");
    let again = t.poll().await;
    assert_eq!((again.replanned, again.new_terminations), (1, 0));
    assert_eq!(t.drain().await.done, 1);
    let e1 = t.removal("e1").await;
    assert_eq!(
        (e1.state.as_str(), e1.account.as_deref()),
        ("done", Some("ann"))
    );
    assert_eq!(t.events("removal_replanned").await.len(), 1);

    // e2 still has no username: a retry leaves it failed and says why.
    let render = offboard::planner::renderer(&t.app.config);
    let (retried, not) = t
        .app
        .store
        .retry(
            &queue::RetrySelection::Failed { connector: None },
            &render,
            "ops",
            t.clock.now(),
        )
        .await
        .unwrap();
    assert!(retried.is_empty());
    assert_eq!(not.len(), 1);
    assert!(not[0].reason.contains("{username}"), "{}", not[0].reason);
    assert_eq!(t.removal("e2").await.state, "failed");

    // The operator changes the template to the email: the retry makes the account from it.
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace("account = \"{username}\"", "account = \"{email}\"");
    let dir = t.dir;
    std::fs::write(dir.path().join("offboard.toml"), &text).unwrap();
    let t = TestApp::in_dir(dir, &text).await;
    let render = offboard::planner::renderer(&t.app.config);
    let (retried, not) = t
        .app
        .store
        .retry(
            &queue::RetrySelection::Failed { connector: None },
            &render,
            "ops",
            t.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!((retried.len(), not.len()), (1, 0));
    assert_eq!(t.drain().await.done, 1);
    let e2 = t.removal("e2").await;
    assert_eq!(
        (e2.state.as_str(), e2.account.as_deref()),
        ("done", Some("bob@example.org"))
    );
}
