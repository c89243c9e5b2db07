//! The HTTP listener: pushed terminations, health and readiness.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::helpers::{OK_SCRIPT, TestApp, config_text, write_script};

const TOKEN: &str = "push-token-0123456789abcdef";

struct Daemon {
    t: TestApp,
    base: String,
    stop: tokio::sync::watch::Sender<bool>,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    async fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "remove.sh", OK_SCRIPT);
        std::fs::write(dir.path().join("push-token"), TOKEN).unwrap();
        std::fs::set_permissions(
            dir.path().join("push-token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\ngrace = \"1d\"\n";
        let text = config_text(connector).replace(
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
        Daemon {
            base: format!("http://{}", running.http_addr),
            t,
            stop,
            join: running.join,
        }
    }

    async fn push(
        &self,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/terminations", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn stop(self) -> TestApp {
        self.stop.send(true).unwrap();
        self.join.await.unwrap().unwrap();
        self.t
    }
}

fn leaver(id: &str) -> Value {
    json!({"employee_id": id, "email": format!("{id}@example.org"), "effective_date": "2030-01-05", "status": "terminated"})
}

#[tokio::test]
async fn a_push_is_acknowledged_only_after_it_is_committed() {
    let d = Daemon::start().await;

    let (status, body) = d
        .push(
            Some(TOKEN),
            "application/json; charset=utf-8",
            json!([leaver("p1"), leaver("p2")]).to_string(),
        )
        .await;

    assert_eq!(status, 202, "{body}");
    assert_eq!(body["new_terminations"], 2);
    let batch_id = body["batch_id"].as_i64().unwrap();
    let t = d.stop().await;
    let r = t.removal("p1").await;
    assert_eq!(r.state, "pending");
    assert_eq!(
        r.due_at, "2030-01-06T00:00:00.000Z",
        "effective date plus the connector's grace"
    );
    let source: String = on_db!(t.app.store, |pool| sqlx::query_scalar(
        "SELECT source FROM batches WHERE id = $1"
    )
    .bind(batch_id)
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(source, "push");
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_before_the_body_is_read() {
    let d = Daemon::start().await;
    let (status, _) = d
        .push(
            Some("wrong-token-0123456789"),
            "application/json",
            "{not json",
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = d
        .push(None, "application/json", leaver("p1").to_string())
        .await;
    assert_eq!(status, 401);
    let t = d.stop().await;
    assert!(t.removals().await.is_empty());
}

#[tokio::test]
async fn one_bad_record_refuses_the_whole_body_naming_its_index() {
    let d = Daemon::start().await;
    let mut bad = leaver("p2");
    bad["effective_date"] = json!("2030-02-30");
    bad["emial"] = json!("typo@example.org");

    let (status, body) = d
        .push(
            Some(TOKEN),
            "application/json",
            json!([leaver("p1"), bad, leaver("p3")]).to_string(),
        )
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_records");
    assert_eq!(
        body["rejected"],
        json!([
            {"index": 1, "field": "effective_date", "reason": "invalid_date"},
            {"index": 1, "field": "emial", "reason": "unknown_field"}
        ])
    );
    let t = d.stop().await;
    assert!(
        t.removals().await.is_empty(),
        "all or nothing: no record of the body is stored"
    );
}

#[tokio::test]
async fn bodies_that_are_too_large_not_json_or_empty_are_refused() {
    let d = Daemon::start().await;
    let (status, body) = d
        .push(Some(TOKEN), "application/json", vec![b' '; 1024 * 1024 + 1])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("body_too_large"))
    );
    let (status, body) = d.push(Some(TOKEN), "text/csv", "employee_id\n1\n").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, body) = d.push(Some(TOKEN), "application/json", "[]").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("empty_batch")));
    let (status, body) = d.push(Some(TOKEN), "application/json", "[1").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = d.push(Some(TOKEN), "application/json", "42").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("not_object_or_array"))
    );
    d.stop().await;
}

#[tokio::test]
async fn pushes_pass_the_mass_removal_guard() {
    let d = Daemon::start().await;
    let body: Vec<Value> = (0..51).map(|i| leaver(&format!("m{i}"))).collect();
    let (status, reply) = d
        .push(Some(TOKEN), "application/json", json!(body).to_string())
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        reply["held"], true,
        "51 new terminations exceed the default absolute limit of 50"
    );
    let t = d.stop().await;
    assert!(t.removals().await.iter().all(|r| r.state == "held"));
}

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let d = Daemon::start().await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = client
        .get(format!("{}/readyz", d.base))
        .send()
        .await
        .unwrap();
    let status = ready.status().as_u16();
    let text = ready.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    d.stop().await;
}
