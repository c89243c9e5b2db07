//! Per-connector quarantine: a vendor down for a while stops its connector's claims without spending
//! the removals' attempts, the other connector drains at full speed, a probe brings it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{HEADER, OK_SCRIPT, TestApp, config_text, write_script};

const TOKEN: &str = "quarantine-test-token-4d2e";

/// A SCIM service that answers 503 to everything while `down`, 401 while `refusing`, and properly
/// after.
#[derive(Clone, Default)]
struct Vendor {
    down: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Respond for Vendor {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let scim = |status: u16, body: serde_json::Value| {
            ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/scim+json")
        };
        if self.down.load(Ordering::SeqCst) {
            return scim(
                503,
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "503", "detail": "maintenance"}),
            );
        }
        if self.refusing.load(Ordering::SeqCst) {
            return scim(
                401,
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401", "detail": "invalid token"}),
            );
        }
        match request.method.as_str() {
            "PATCH" => ResponseTemplate::new(204),
            _ => {
                let query = request.url.query().unwrap_or_default().to_string();
                let user = query
                    .split("%22")
                    .nth(1)
                    .map(|n| n.replace("%40", "@"))
                    .unwrap_or_else(|| "someone@example.org".into());
                scim(
                    200,
                    json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                        "totalResults": 1, "startIndex": 1, "itemsPerPage": 1,
                        "Resources": [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                       "id": format!("u-{user}"), "userName": user, "active": true}],
                    }),
                )
            }
        }
    }
}

async fn by(t: &TestApp, connector: &str) -> Vec<offboard::store::queue::RemovalView> {
    t.removals()
        .await
        .into_iter()
        .filter(|r| r.connector == connector)
        .collect()
}

#[tokio::test]
async fn a_vendor_down_for_a_while_quarantines_its_connector_and_no_removal_fails() {
    let server = MockServer::start().await;
    let vendor = Vendor::default();
    vendor.down.store(true, Ordering::SeqCst);
    Mock::given(wiremock::matchers::any())
        .respond_with(vendor.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    crate::vendor_http::write_secret(dir.path(), "token", TOKEN);
    let connectors = format!(
        "[[connector]]\nname = \"down\"\nkind = \"scim\"\nbase_url = \"{}/scim/v2\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n\
         account = \"{{email}}\"\nquarantine_after = 3\nconcurrency = 1\n\n\
         [[connector]]\nname = \"up\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n",
        server.uri()
    );
    let t = TestApp::in_dir(dir, &config_text(&connectors)).await;
    let rows: String = (0..12)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,P,2026-01-05,Terminated\n"))
        .collect();
    t.write_feed(&rows);
    t.poll().await;

    let first = t.drain().await;
    assert!(
        by(&t, "up").await.iter().all(|r| r.state == "done"),
        "the other connector drained"
    );
    let down = by(&t, "down").await;
    let attempts: i64 = down.iter().map(|r| r.attempts).sum();
    // The turn that records the third failure has already claimed the next removal (concurrency 1).
    assert!(
        (3..=4).contains(&attempts),
        "three failures quarantine the connector: {attempts} attempts, {first:?}"
    );
    assert!(down.iter().all(|r| r.state == "pending"), "nothing failed");
    let states = t.app.store.connector_states().await.unwrap();
    assert_eq!((states.len(), states[0].state.as_str()), (1, "quarantined"));
    assert!(
        states[0].reason.contains("maintenance"),
        "{}",
        states[0].reason
    );
    assert_eq!(t.events("connector_quarantined").await.len(), 1);
    let metrics = offboard::metrics::Metrics::default()
        .render(&t.app.store, t.clock.now())
        .await
        .unwrap();
    assert!(
        metrics.contains("offboard_connector_stopped{connector=\"down\",state=\"quarantined\"} 1"),
        "{metrics}"
    );

    // Still down at the first probe: it waits longer, nothing is claimed.
    t.advance(Duration::from_secs(61));
    t.drain().await;
    let states = t.app.store.connector_states().await.unwrap();
    assert_eq!(states[0].probes, 1);
    assert_eq!(
        by(&t, "down").await.iter().map(|r| r.attempts).sum::<i64>(),
        attempts,
        "no attempt while quarantined"
    );

    // The vendor is back: the next probe resumes the connector and every removal completes.
    vendor.down.store(false, Ordering::SeqCst);
    t.advance(Duration::from_secs(125));
    let after = t.drain().await;
    assert_eq!(after.failed, 0);
    let down = by(&t, "down").await;
    assert!(down.iter().all(|r| r.state == "done"), "{down:?}");
    assert!(down.iter().all(|r| r.attempts <= 2), "attempts stay low");
    assert!(t.app.store.connector_states().await.unwrap().is_empty());
    assert_eq!(t.events("connector_resumed").await.len(), 1);
}

#[tokio::test]
async fn credentials_refused_for_good_quarantine_at_once_and_the_rest_wait_for_good_ones() {
    let server = MockServer::start().await;
    let vendor = Vendor::default();
    vendor.refusing.store(true, Ordering::SeqCst);
    Mock::given(wiremock::matchers::any())
        .respond_with(vendor.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    crate::vendor_http::write_secret(dir.path(), "token", TOKEN);
    let connectors = format!(
        "[[connector]]\nname = \"wiki\"\nkind = \"scim\"\nbase_url = \"{}/scim/v2\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n\
         account = \"{{email}}\"\nconcurrency = 1\n",
        server.uri()
    );
    let t = TestApp::in_dir(dir, &config_text(&connectors)).await;
    let rows: String = (0..6)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,P,2026-01-05,Terminated\n"))
        .collect();
    t.write_feed(&rows);
    t.poll().await;

    // Each removal's first refused attempt is retried once, later (a rotation may be under way): no
    // quarantine yet, and nothing failed.
    t.drain().await;
    let wiki = by(&t, "wiki").await;
    assert!(wiki.iter().all(|r| r.state == "pending"), "{wiki:?}");
    assert!(t.app.store.connector_states().await.unwrap().is_empty());

    // Refused again after the retry: that removal fails asking to check the credentials, and the
    // connector is quarantined at once, so the others do not each fail the same way.
    t.advance(Duration::from_secs(6 * 60));
    t.drain().await;
    let wiki = by(&t, "wiki").await;
    let failed = wiki.iter().filter(|r| r.state == "failed").count();
    // The turn that records the failure has already claimed the next removal (concurrency 1).
    assert!((1..=2).contains(&failed), "{wiki:?}");
    assert!(
        wiki.iter().filter(|r| r.state == "failed").all(|r| r
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("check the connector's credentials")),
        "{wiki:?}"
    );
    let states = t.app.store.connector_states().await.unwrap();
    assert_eq!((states.len(), states[0].state.as_str()), (1, "quarantined"));
    assert!(
        states[0].reason.contains("refused the credentials"),
        "{}",
        states[0].reason
    );
    assert!(!states[0].reason.contains(TOKEN));
    assert_eq!(t.events("connector_quarantined").await.len(), 1);

    // Still refused at the first probe (it authenticates): the removals keep waiting.
    let calls = vendor.requests.load(Ordering::SeqCst);
    t.advance(Duration::from_secs(61));
    t.drain().await;
    assert_eq!(t.app.store.connector_states().await.unwrap()[0].probes, 1);
    assert!(
        vendor.requests.load(Ordering::SeqCst) - calls <= 2,
        "only the probe reached the vendor"
    );
    assert_eq!(
        by(&t, "wiki")
            .await
            .iter()
            .filter(|r| r.state == "failed")
            .count(),
        failed
    );

    // The credentials are fixed: the next probe resumes the connector and the rest complete.
    vendor.refusing.store(false, Ordering::SeqCst);
    t.advance(Duration::from_secs(125));
    t.drain().await;
    let wiki = by(&t, "wiki").await;
    assert_eq!(
        wiki.iter().filter(|r| r.state == "done").count(),
        6 - failed,
        "{wiki:?}"
    );
    assert!(t.app.store.connector_states().await.unwrap().is_empty());
}

#[test]
fn an_operator_pauses_and_resumes_a_connector_by_name_audited() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(
        dir.path().join("feed.csv"),
        format!("{HEADER}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("offboard.toml"),
        config_text("[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n"),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(dir.path().join("offboard.toml"))
            .args(args)
            .args(["--actor", "ops"])
            .output()
            .unwrap()
    };
    assert!(cli(&["migrate"]).status.success());
    let paused = cli(&[
        "connector",
        "pause",
        "app",
        "--reason",
        "vendor migration tonight",
    ]);
    assert!(paused.status.success(), "{paused:?}");
    let run = cli(&["run", "--once", "--format", "json"]);
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        summary["summary"]["drain"]["attempts"], 0,
        "a paused connector's removals wait"
    );
    let status = cli(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("vendor migration tonight"));
    assert!(
        cli(&["connector", "pause", "nope", "--reason", "x"])
            .status
            .code()
            == Some(1)
    );
    assert!(cli(&["connector", "resume", "app"]).status.success());
    let run = cli(&["run", "--once", "--format", "json"]);
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["summary"]["drain"]["done"], 1);
    let audit = cli(&["audit", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let events: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "ops")
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["connector_paused", "connector_resumed"]);
}
