//! Retries with backoff, dead letter, and the exec connector's exit-code contract.

use std::time::Duration;

use crate::helpers::{TestApp, detail};

const FEED: &str = "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n";

/// Fails (exit 1) until it has been called `n` times, then succeeds.
fn flaky(n: u32) -> String {
    format!(
        "#!/bin/sh\nf=\"$(dirname \"$0\")/count\"\nc=$(cat \"$f\" 2>/dev/null || echo 0)\nc=$((c+1))\necho $c > \"$f\"\n\
         if [ $c -le {n} ]; then echo \"vendor busy (try $c)\" >&2; exit 1; fi\nexit 0\n"
    )
}

#[tokio::test]
async fn a_program_that_fails_twice_then_succeeds_ends_done_after_three_attempts_with_growing_delays()
 {
    let t = TestApp::exec(&flaky(2), "").await;
    t.write_feed(FEED);
    t.poll().await;

    let mut attempts = 0;
    for _ in 0..10 {
        attempts += t.drain().await.attempts;
        if t.removal("e1").await.state == "done" {
            break;
        }
        t.advance(Duration::from_secs(9)); // past any delay (max is 8s)
    }

    let r = t.removal("e1").await;
    assert_eq!(r.state, "done");
    assert_eq!(r.attempts, 3);
    assert_eq!(attempts, 3);
    let retries = t.events("removal_retry_scheduled").await;
    assert_eq!(retries.len(), 2);
    let ceilings: Vec<i64> = retries
        .iter()
        .map(|r| detail(r)["backoff_ceiling_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(ceilings, vec![1000, 2000], "the backoff ceiling doubles");
    for r in &retries {
        let d = detail(r);
        assert!(d["retry_in_ms"].as_i64().unwrap() <= d["backoff_ceiling_ms"].as_i64().unwrap());
        assert!(
            d["error"].as_str().unwrap().contains("vendor busy"),
            "stderr is kept: {d}"
        );
    }
    // Every vendor call is in the audit log with its exit code.
    let calls = t.events("vendor_call").await;
    let codes: Vec<i64> = calls
        .iter()
        .map(|c| detail(c)["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![1, 1, 0]);
    assert!(calls.iter().all(|c| c.duration_ms.is_some()));
}

#[tokio::test]
async fn a_program_that_always_fails_ends_failed_after_max_attempts() {
    let t = TestApp::exec(&flaky(1000), "").await;
    t.write_feed(FEED);
    t.poll().await;

    for _ in 0..10 {
        t.drain().await;
        t.advance(Duration::from_secs(9));
    }

    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    assert_eq!(r.attempts, 5);
    assert!(
        r.last_error
            .unwrap()
            .starts_with("gave up after 5 attempts")
    );
    assert_eq!(t.events("removal_failed").await.len(), 1);
    assert_eq!(t.events("removal_retry_scheduled").await.len(), 4);
}

#[tokio::test]
async fn a_connector_retry_override_changes_the_attempt_budget() {
    let t = TestApp::exec(&flaky(1000), "[connector.retry]\nmax_attempts = 2\n").await;
    t.write_feed(FEED);
    t.poll().await;
    for _ in 0..5 {
        t.drain().await;
        t.advance(Duration::from_secs(9));
    }
    assert_eq!(t.removal("e1").await.attempts, 2);
}

#[tokio::test]
async fn a_permanent_exit_code_fails_at_once_and_already_absent_is_success() {
    let script = "#!/bin/sh\ncase \"$1\" in\n  ann@example.org) echo 'account locked by legal hold' >&2; exit 2;;\n  bob@example.org) exit 3;;\nesac\nexit 0\n";
    let t = TestApp::exec(script, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n");
    t.poll().await;

    let summary = t.drain().await;

    assert_eq!(summary.attempts, 2);
    let ann = t.removal("e1").await;
    assert_eq!(ann.state, "failed");
    assert_eq!(ann.attempts, 1);
    assert!(ann.last_error.unwrap().contains("legal hold"));
    let bob = t.removal("e2").await;
    assert_eq!(bob.state, "done");
    assert_eq!(bob.outcome.as_deref(), Some("already_absent"));
}

#[tokio::test]
async fn a_program_that_hangs_is_killed_at_the_timeout_and_retried() {
    // A long backoff, so full jitter never makes the retry due again within this drain.
    let t = TestApp::exec(
        "#!/bin/sh\nsleep 30\n",
        "timeout = \"500ms\"\n[connector.retry]\ninitial = \"1h\"\nmax = \"2h\"",
    )
    .await;
    t.write_feed(FEED);
    t.poll().await;

    let summary = t.drain().await;

    assert_eq!(summary.retried, 1);
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert!(r.last_error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn the_program_gets_a_clean_environment_and_only_the_first_bytes_of_stderr_are_kept() {
    let script = "#!/bin/sh\nd=\"$(dirname \"$0\")\"\nenv > \"$d/env\"\nhead -c 5000 /dev/zero | tr '\\0' x >&2\nexit 1\n";
    let t = TestApp::exec(script, "").await;
    t.write_feed(FEED);
    t.poll().await;
    t.drain().await;

    let env = std::fs::read_to_string(t.path("env")).unwrap();
    assert!(env.contains("OFFBOARD_ACCOUNT=ann@example.org"));
    assert!(env.contains("OFFBOARD_EMPLOYEE_ID=e1"));
    // Only PATH and the OFFBOARD_* variables are passed on (the shell itself adds PWD and SHLVL).
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        assert!(
            matches!(name, "PATH" | "PWD" | "SHLVL" | "_") || name.starts_with("OFFBOARD_"),
            "the daemon's environment leaked to the program: {name}"
        );
    }
    let error = t.removal("e1").await.last_error.unwrap();
    let kept = error.strip_prefix("exit code 1: ").unwrap();
    assert_eq!(
        kept,
        "x".repeat(400),
        "the first 400 bytes of stderr are kept"
    );
}

/// The program removed the account and then hung, so its answer was lost at the timeout; the retry's
/// run says the account is absent (exit 3). That reads as removed by the first run, not as "was
/// never there", and the program ran twice for the one account.
#[tokio::test]
async fn a_program_that_acted_and_then_hung_ends_removed_unconfirmed() {
    let t = TestApp::exec(
        "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$1\" >> \"$d/runs\"\nif [ -e \"$d/removed\" ]; then exit 3; fi\ntouch \"$d/removed\"\nsleep 30\n",
        "timeout = \"500ms\"\n[connector.retry]\ninitial = \"1h\"\nmax = \"2h\"",
    )
    .await;
    t.write_feed(FEED);
    t.poll().await;

    assert_eq!(t.drain().await.retried, 1);
    t.advance(std::time::Duration::from_secs(3 * 3600));
    assert_eq!(t.drain().await.done, 1);

    let r = t.removal("e1").await;
    assert_eq!(r.outcome.as_deref(), Some("removed_unconfirmed"));
    let runs = std::fs::read_to_string(t.path("runs")).unwrap();
    assert_eq!(runs.lines().collect::<Vec<_>>().len(), 2, "{runs}");
    assert!(
        runs.lines().all(|l| l == runs.lines().next().unwrap()),
        "one account: {runs}"
    );
}
