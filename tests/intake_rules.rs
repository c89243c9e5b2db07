//! Intake rules (docs/intake-rules-coverage.md) that no other test covers: the "within one file or
//! body" rules for feeds and pushes, and the "across polls" rules for an unchanged date, an employee
//! missing from a later file, and a body pushed twice.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::helpers::{OK_SCRIPT, TestApp, config_text, write_script};

async fn terminations(t: &TestApp) -> Vec<(String, String, String)> {
    on_db!(t.app.store, |pool| sqlx::query_as(
        "SELECT employee_id, effective_at, status FROM terminations ORDER BY id"
    )
    .fetch_all(pool)
    .await)
    .unwrap()
}

async fn email_of(t: &TestApp, employee: &str) -> Option<String> {
    on_db!(t.app.store, |pool| sqlx::query_scalar(
        "SELECT email FROM people WHERE employee_id = $1"
    )
    .bind(employee)
    .fetch_one(pool)
    .await)
    .unwrap()
}

// ------------------------------------------------------------------------------------------------
// Within one file
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_last_valid_row_of_an_employee_wins_for_status_date_and_person_fields() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed(
        "e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n\
         e1,ann.new@example.org,ann,,Ann,2030-02-01,Terminated\n",
    );

    let s = t.poll().await;

    assert_eq!((s.rows, s.accepted, s.new_terminations), (2, 2, 1));
    let all = terminations(&t).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].1.starts_with("2030-02-01"), "{all:?}");
    assert_eq!(
        email_of(&t, "e1").await.as_deref(),
        Some("ann.new@example.org")
    );
    assert_eq!(t.removal("e1").await.due_at, "2030-02-01T00:00:00.000Z");
}

#[tokio::test]
async fn a_rejected_row_has_no_effect_even_on_its_employees_other_rows() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    // The later Active row would rescind, but its email is invalid: it is rejected and ignored.
    t.write_feed(
        "e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n\
         e1,not-an-email,ann,,Ann,,Active\n",
    );

    let s = t.poll().await;

    assert_eq!((s.accepted, s.rejected, s.new_terminations), (1, 1, 1));
    assert_eq!(t.removal("e1").await.state, "pending");
    assert_eq!(email_of(&t, "e1").await.as_deref(), Some("ann@example.org"));
}

#[tokio::test]
async fn an_identical_duplicate_row_is_valid_and_makes_one_termination() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    let row = "e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n";
    t.write_feed(&format!("{row}{row}"));

    let s = t.poll().await;

    assert_eq!(
        (s.rows, s.accepted, s.rejected, s.new_terminations),
        (2, 2, 0, 1)
    );
    assert_eq!(terminations(&t).await.len(), 1);
    assert_eq!(t.removals().await.len(), 1);
}

#[tokio::test]
async fn active_then_terminated_in_one_file_terminates_with_the_later_rows_date() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed(
        "e1,ann@example.org,ann,,Ann,,Active\n\
         e1,ann@example.org,ann,,Ann,2030-03-01,Terminated\n",
    );

    let s = t.poll().await;

    assert_eq!(s.new_terminations, 1);
    let all = terminations(&t).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].1.starts_with("2030-03-01"), "{all:?}");
}

// ------------------------------------------------------------------------------------------------
// Across polls
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_later_terminated_row_with_the_same_date_changes_nothing() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n");
    t.poll().await;
    let before = t.removal("e1").await;
    // The same date with other person fields and another (equivalent) spelling of the status.
    t.write_feed("e1,ann@example.org,ann,,Ann Example,2030-01-05,TERMINATED\n");

    let s = t.poll().await;

    assert_eq!((s.new_terminations, s.moved, s.rescinded), (0, 0, 0));
    assert!(t.events("termination_moved").await.is_empty());
    let after = t.removal("e1").await;
    assert_eq!(
        (after.id, after.due_at, after.state),
        (before.id, before.due_at, before.state)
    );
    assert_eq!(terminations(&t).await.len(), 1);
}

#[tokio::test]
async fn an_employee_missing_from_a_later_file_is_not_rescinded() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed(
        "e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n\
         e2,bob@example.org,bob,,Bob,2030-01-05,Terminated\n",
    );
    t.poll().await;
    // The next export lists only Bob (a delta export, or Ann dropped off the report).
    t.write_feed("e2,bob@example.org,bob,,Bob,2030-01-05,Terminated\n");

    let s = t.poll().await;

    assert_eq!(s.rescinded, 0);
    assert_eq!(t.removal("e1").await.state, "pending");
    assert!(t.events("termination_rescinded").await.is_empty());
}

// ------------------------------------------------------------------------------------------------
// Pushes: the within-one-file rules apply within one body; the same body twice changes nothing
// ------------------------------------------------------------------------------------------------

const TOKEN: &str = "intake-push-token-7f3a9c";

/// A running daemon with pushes enabled.
struct Pushing {
    t: TestApp,
    url: String,
    stop: tokio::sync::watch::Sender<bool>,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Pushing {
    async fn start() -> Pushing {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "remove.sh", OK_SCRIPT);
        std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
        let token = dir.path().join("push-token");
        std::fs::write(&token, TOKEN).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = config_text(
            "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n",
        )
        .replace(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:0\"\npush_token_file = \"push-token\"",
        );
        let t = TestApp::in_dir(dir, &text).await;
        let config = offboard::config::Config::load(&t.path("offboard.toml")).unwrap();
        let app = offboard::app::App::build(config, t.clock.clone())
            .await
            .unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let running = app.start(rx).await.unwrap();
        Pushing {
            url: format!("http://{}/v1/terminations", running.http_addr),
            t,
            stop,
            join: running.join,
        }
    }

    async fn push(&self, body: &Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn stop(self) -> TestApp {
        self.stop.send(true).unwrap();
        self.join.await.unwrap().unwrap();
        self.t
    }
}

fn record(id: &str, status: &str, date: Option<&str>) -> Value {
    let mut r = json!({"employee_id": id, "email": format!("{id}@example.org"), "status": status});
    if let Some(date) = date {
        r["effective_date"] = json!(date);
    }
    r
}

#[tokio::test]
async fn within_one_push_body_the_last_record_of_an_employee_wins() {
    let d = Pushing::start().await;

    // Terminated then active: the employee ends active, so nothing is created.
    let (status, reply) = d
        .push(&json!([
            record("p1", "terminated", Some("2030-01-05")),
            record("p1", "active", None)
        ]))
        .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["new_terminations"], 0);

    // Active then terminated, and a repeated identical record: one termination, the later date.
    let (status, reply) = d
        .push(&json!([
            record("p2", "active", None),
            record("p2", "terminated", Some("2030-03-01")),
            record("p3", "terminated", Some("2030-01-05")),
            record("p3", "terminated", Some("2030-01-05"))
        ]))
        .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["new_terminations"], 2);

    let t = d.stop().await;
    let all = terminations(&t).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|(id, _, _)| id != "p1"));
    let p2 = all.iter().find(|(id, _, _)| id == "p2").unwrap();
    assert!(p2.1.starts_with("2030-03-01"), "{p2:?}");
}

#[tokio::test]
async fn pushing_the_same_body_twice_changes_nothing_the_second_time() {
    let d = Pushing::start().await;
    let body = json!([
        record("p1", "terminated", Some("2030-01-05")),
        record("p2", "terminated", Some("2030-01-06"))
    ]);

    let (first, reply1) = d.push(&body).await;
    let (second, reply2) = d.push(&body).await;

    assert_eq!((first, second), (202, 202), "{reply1} {reply2}");
    assert_eq!(reply1["new_terminations"], 2);
    assert_eq!(reply2["new_terminations"], 0);
    let t = d.stop().await;
    assert_eq!(terminations(&t).await.len(), 2);
    assert_eq!(t.removals().await.len(), 2);
}
