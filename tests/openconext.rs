//! The openconext connector against a wiremock deprovision API: the four answer shapes, values of
//! any JSON type, planning-time id checks, dry-run, every error class, rate limits, and secrets
//! and erased values kept out of logs and the audit log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offboard::config::Config;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{HEADER, TestApp, config_text, detail};
use crate::vendor_http::{
    Stamped, busiest_window, example_block, run_binary, stored_text, write_secret,
};

const PASSWORD: &str = "oc-password-91f2";
/// base64("deprov:oc-password-91f2"), as sent in the Basic header.
const BASIC: &str = "Basic ZGVwcm92Om9jLXBhc3N3b3JkLTkxZjI=";

const ANN: &str = "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n";
/// Ann's collab person id, URL-encoded as the client sends it.
const ANN_PATH: &str = "/api/deprovision/urn%3Acollab%3Aperson%3Aexample.org%3Aann";

// Values a service returns about the user: they must never reach the audit log.
const PERSISTENT_ID: &str = "a7d1f0c2-persistent-ann";
const USER_UUID: &str = "5b9c-uuid-of-ann";
const SP_ENTITY: &str = "https://sp.example.org/metadata";

/// EngineBlock's answer for a known user: structured values, not strings.
fn engineblock_data() -> Value {
    json!({
        "status": "OK",
        "name": "EngineBlock",
        "data": [
            {"name": "user", "value": {"collab_person_id": "urn:collab:person:example.org:ann", "uuid": USER_UUID}},
            {"name": "saml_persistent_id", "value": [
                {"persistent_id": PERSISTENT_ID, "user_uuid": USER_UUID, "service_provider_entity_id": SP_ENTITY},
                {"persistent_id": "second-pid", "user_uuid": USER_UUID, "service_provider_entity_id": "https://sp2.example.org"}
            ]},
            {"name": "consent", "value": [{"service_id": SP_ENTITY}, {"service_id": "x"}, {"service_id": "y"}]}
        ]
    })
}

fn ok_empty() -> Value {
    json!({"status": "OK", "name": "EngineBlock", "data": []})
}

fn failed_not_found() -> Value {
    json!({
        "status": "FAILED",
        "name": "OpenConext-teams-server",
        "data": [],
        "message": ["User identified by: urn:collab:person:example.org:ann was not found. Unable to provide deprovision data."]
    })
}

fn failed_other() -> Value {
    json!({
        "status": "FAILED",
        "name": "OpenConext-teams-server",
        "data": [],
        "message": "Database connection lost while removing urn:collab:person:example.org:ann"
    })
}

/// The rules of the published response schema (required keys, the status enum, `data` items as
/// objects with `name` and `value`, `message` as a list), checked by hand on our fixtures. The
/// schema types `value` as a string, which services do not honour: that rule is left out.
fn assert_schema_shape(answer: &Value) {
    let object = answer.as_object().expect("an object");
    for key in ["status", "name", "data"] {
        assert!(object.contains_key(key), "{key} is required");
    }
    assert!(matches!(answer["status"].as_str(), Some("OK" | "FAILED")));
    assert!(answer["name"].is_string());
    for item in answer["data"].as_array().expect("data is an array") {
        assert!(item["name"].is_string() && item.get("value").is_some());
    }
    if let Some(message) = object.get("message") {
        assert!(message.is_array() || message.is_string());
    }
}

fn connector(server: &MockServer, extra: &str) -> String {
    format!(
        "[[connector]]\nname = \"engine\"\nkind = \"openconext\"\n\
         account = \"urn:collab:person:example.org:{{collab_uid}}\"\nbase_url = \"{}/api\"\n\
         username = \"deprov\"\npassword_file = \"oc-password\"\ntimeout = \"1s\"\n{extra}\n",
        server.uri()
    )
}

fn workspace(server: &MockServer, extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    write_secret(dir.path(), "oc-password", PASSWORD);
    let text = config_text(&connector(server, extra));
    (dir, text)
}

async fn app(server: &MockServer, extra: &str) -> TestApp {
    let (dir, text) = workspace(server, extra);
    TestApp::in_dir(dir, &text).await
}

/// Ann's DELETE answered with `response`, expected `times` times.
async fn mount_delete(server: &MockServer, response: ResponseTemplate, times: u64) {
    Mock::given(method("DELETE"))
        .and(path(ANN_PATH))
        .and(header("authorization", BASIC))
        .and(header("accept", "application/json"))
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

/// One leaver whose DELETE is answered with `response`; returns the app after one drain.
async fn one_removal(response: ResponseTemplate, extra: &str) -> (TestApp, MockServer) {
    let server = MockServer::start().await;
    mount_delete(&server, response, 1).await;
    let t = app(&server, extra).await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;
    (t, server)
}

#[tokio::test]
async fn ok_with_data_is_removed_and_the_audit_holds_category_names_and_counts_only() {
    assert_schema_shape(&engineblock_data());
    let (t, _server) = one_removal(
        ResponseTemplate::new(200).set_body_json(engineblock_data()),
        "",
    )
    .await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "done", "{:?}", r.last_error);
    assert_eq!(r.outcome.as_deref(), Some("removed"));
    let calls = t.events("vendor_call").await;
    assert_eq!(calls.len(), 1, "the DELETE is the only call");
    let call = detail(&calls[0]);
    assert_eq!(call["operation"], "DELETE deprovision/{id}");
    assert_eq!(
        call["evidence"],
        json!({
            "service": "EngineBlock",
            "dry_run": false,
            "categories": {"user": 1, "saml_persistent_id": 2, "consent": 3}
        })
    );
    let stored = stored_text(&t.app.store).await;
    for value in [
        PERSISTENT_ID,
        USER_UUID,
        SP_ENTITY,
        "second-pid",
        "urn:collab:person",
        "ann@example.org",
    ] {
        assert!(
            !stored.contains(value),
            "{value} reached the audit log or the removal"
        );
    }
}

#[tokio::test]
async fn a_value_that_is_an_object_is_accepted_and_counted_once() {
    let answer = json!({
        "status": "OK", "name": "OpenConext-attribute-aggregation",
        "data": [{"name": "linked_accounts", "value": {"orcid": "0000-0002-1825-0097", "since": 2019}}]
    });
    assert_schema_shape(&answer);
    let (t, _server) = one_removal(ResponseTemplate::new(200).set_body_json(answer), "").await;

    let r = t.removal("e1").await;
    assert_eq!(r.outcome.as_deref(), Some("removed"));
    let call = detail(&t.events("vendor_call").await[0]);
    assert_eq!(
        call["evidence"]["categories"],
        json!({"linked_accounts": 1})
    );
    assert!(!stored_text(&t.app.store).await.contains("0000-0002"));
}

#[tokio::test]
async fn ok_with_empty_data_and_failed_not_found_are_already_absent() {
    for answer in [ok_empty(), failed_not_found()] {
        assert_schema_shape(&answer);
        let (t, _server) =
            one_removal(ResponseTemplate::new(200).set_body_json(answer.clone()), "").await;
        let r = t.removal("e1").await;
        assert_eq!(r.state, "done", "{answer}");
        assert_eq!(r.outcome.as_deref(), Some("already_absent"), "{answer}");
    }
}

#[tokio::test]
async fn failed_for_another_reason_is_retried_with_the_message_without_the_id() {
    assert_schema_shape(&failed_other());
    let (t, _server) =
        one_removal(ResponseTemplate::new(200).set_body_json(failed_other()), "").await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    let error = r.last_error.unwrap();
    assert!(
        error.contains("OpenConext-teams-server answered FAILED: Database connection lost while removing <person>"),
        "{error}"
    );
    assert!(!error.contains("urn:collab"));
}

#[tokio::test]
async fn the_base_url_gets_its_trailing_slash_and_the_id_is_url_encoded() {
    // `base_url` is written without a slash in `connector()`; the request still goes under /api/.
    let (t, server) = one_removal(ResponseTemplate::new(200).set_body_json(ok_empty()), "").await;
    assert_eq!(t.removal("e1").await.state, "done");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].url.path(), ANN_PATH);
    let offboard::connectors::ConnectorKind::Openconext(oc) = &t.app.config.connectors[0].kind
    else {
        panic!("expected openconext");
    };
    assert!(oc.base_url.ends_with("/api/"), "{}", oc.base_url);
}

#[tokio::test]
async fn an_invalid_collab_person_id_is_rejected_at_planning() {
    let server = MockServer::start().await;
    let long = "x".repeat(240);
    // `{email}` makes no collab person id; a huge username makes one over 255 bytes.
    let t = app(&server, "").await;
    t.write_feed(&format!(
        "e2,bo@example.org,{long},,Bo,2026-01-05,Terminated\n"
    ));
    t.poll().await;
    let (dir, text) = workspace(&server, "");
    let text = text.replace(
        "account = \"urn:collab:person:example.org:{collab_uid}\"",
        "account = \"{email}\"",
    );
    let by_email = TestApp::in_dir(dir, &text).await;
    by_email.write_feed(ANN);
    by_email.poll().await;

    let ann = by_email.removal("e1").await;
    assert_eq!(ann.state, "failed");
    let error = ann.last_error.unwrap();
    assert!(
        error.contains(
            "is refused: an OpenConext collab person id must start with \"urn:collab:person:\""
        ),
        "{error}"
    );
    assert!(
        !error.contains("ann@example.org"),
        "the reason does not repeat the key"
    );
    let bo = t.removal("e2").await;
    assert_eq!(bo.state, "failed");
    assert!(
        bo.last_error
            .unwrap()
            .contains("OpenConext accepts at most 255"),
        "too long"
    );
    assert_eq!(
        t.drain().await.attempts + by_email.drain().await.attempts,
        0
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    let planned = by_email.planned().await;
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0]["to"], "failed");
    assert!(
        planned[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is refused"),
        "{planned:?}"
    );
}

#[tokio::test]
async fn dry_run_calls_only_the_services_simulation_and_ends_planned() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{ANN_PATH}/dry-run")))
        .and(header("authorization", BASIC))
        .respond_with(ResponseTemplate::new(200).set_body_json(engineblock_data()))
        .expect(1)
        .mount(&server)
        .await;
    mount_delete(
        &server,
        ResponseTemplate::new(200).set_body_json(ok_empty()),
        0,
    )
    .await;
    let t = app(&server, "dry_run = true").await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "planned");
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "would deprovision the user at EngineBlock, erasing: consent (3), saml_persistent_id (2), user (1) (the service's own dry-run)"
        )
    );
    let call = detail(&t.events("vendor_call").await[0]);
    assert_eq!(call["operation"], "DELETE deprovision/{id}/dry-run");
    assert_eq!(call["evidence"]["dry_run"], true);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn dry_run_of_an_unknown_user_plans_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{ANN_PATH}/dry-run")))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_empty()))
        .expect(1)
        .mount(&server)
        .await;
    let t = app(&server, "dry_run = true").await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "planned");
    assert!(r.last_error.unwrap().contains("no such account"));
}

#[tokio::test]
async fn each_error_class_is_classified() {
    let cases: Vec<(&str, ResponseTemplate, &str, &str)> = vec![
        (
            "5xx",
            ResponseTemplate::new(502).set_body_string("Bad Gateway"),
            "pending",
            "HTTP 502: Bad Gateway",
        ),
        (
            "timeout",
            ResponseTemplate::new(200)
                .set_body_json(ok_empty())
                .set_delay(Duration::from_secs(3)),
            "pending",
            "timed out",
        ),
        (
            "malformed body",
            ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"),
            "pending",
            "response does not follow the deprovision contract (the body is not JSON)",
        ),
        (
            "JSON outside the contract",
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "DONE", "name": "EngineBlock", "data": []})),
            "pending",
            "response does not follow the deprovision contract (`status` is neither",
        ),
        (
            "a 2xx other than 200",
            ResponseTemplate::new(204),
            "pending",
            "response does not follow the deprovision contract (HTTP 204 instead of 200)",
        ),
        (
            "404 with EngineBlock's bare JSON string",
            ResponseTemplate::new(404).set_body_json(json!(
                "User ID is not valid: \"a CollabPersonId must start with the \\\"urn:collab:person\\\" namespace\""
            )),
            "failed",
            "HTTP 404: User ID is not valid",
        ),
        (
            "404 without a body (wrong base_url)",
            ResponseTemplate::new(404),
            "failed",
            "no deprovision API at this base_url",
        ),
        (
            "405",
            ResponseTemplate::new(405),
            "failed",
            "HTTP 405",
        ),
    ];
    for (name, response, state, reason) in cases {
        let (t, _server) = one_removal(response, "").await;
        let r = t.removal("e1").await;
        let error = r.last_error.unwrap_or_default();
        assert_eq!(r.state, state, "{name}: {error}");
        assert!(error.contains(reason), "{name}: {error}");
    }
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let (t, _server) = one_removal(
        ResponseTemplate::new(429).insert_header("retry-after", "12"),
        "",
    )
    .await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    let retry = detail(&t.events("removal_retry_scheduled").await[0]);
    assert_eq!(retry["retry_after_ms"], 12_000);
    assert!(retry["retry_in_ms"].as_i64().unwrap() >= 11_900);
}

#[tokio::test]
async fn a_401_or_403_is_sent_once_more_retried_once_after_a_long_delay_then_permanent() {
    for (status, body, says) in [
        (
            401,
            json!({"errors": ["You are required to authorise before accessing this API."]}),
            "required to authorise",
        ),
        (
            403,
            json!("Access to the content listing API requires the role ROLE_API_USER_DEPROVISION"),
            "ROLE_API_USER_DEPROVISION",
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            // Sent once more at once, retried once, failed at the third refusal.
            .expect(3)
            .mount(&server)
            .await;
        let t = app(&server, "").await;
        t.write_feed(ANN);
        t.poll().await;

        t.drain().await;
        let r = t.removal("e1").await;
        assert_eq!(r.state, "pending", "{status}");
        let error = r.last_error.unwrap();
        assert!(
            error.contains(says) && error.contains("retrying once"),
            "{error}"
        );
        let retry = detail(&t.events("removal_retry_scheduled").await[0]);
        assert!(retry["retry_in_ms"].as_i64().unwrap() >= 290_000);

        t.advance(Duration::from_secs(6 * 60));
        t.drain().await;
        let r = t.removal("e1").await;
        assert_eq!(r.state, "failed", "{status}");
        assert!(
            r.last_error
                .unwrap()
                .contains("refused again after a retry")
        );
    }
}

#[tokio::test]
async fn a_429_pauses_every_worker_of_the_connector() {
    let server = MockServer::start().await;
    let throttled = Arc::new(Mutex::new(None::<Instant>));
    let mark = throttled.clone();
    Mock::given(method("DELETE"))
        .and(path(ANN_PATH))
        .respond_with(move |_: &Request| {
            *mark.lock().unwrap() = Some(Instant::now());
            ResponseTemplate::new(429).insert_header("retry-after", "1")
        })
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let stamps = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("DELETE"))
        .respond_with(Stamped::new(
            &stamps,
            ResponseTemplate::new(200).set_body_json(ok_empty()),
        ))
        .mount(&server)
        .await;
    let t = app(&server, "concurrency = 1").await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;
    assert_eq!(t.removal("e1").await.state, "pending");

    t.write_feed(&format!(
        "{ANN}e2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n"
    ));
    t.poll().await;
    t.drain().await;

    assert_eq!(t.removal("e2").await.state, "done");
    let throttled_at = throttled.lock().unwrap().unwrap();
    let next = stamps.lock().unwrap().iter().copied().min().unwrap();
    assert!(
        next.duration_since(throttled_at) >= Duration::from_millis(900),
        "{:?}",
        next.duration_since(throttled_at)
    );
}

#[tokio::test]
async fn the_configured_rate_holds_over_a_batch() {
    let server = MockServer::start().await;
    let stamps = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("DELETE"))
        .respond_with(Stamped::new(
            &stamps,
            ResponseTemplate::new(200).set_body_json(ok_empty()),
        ))
        .mount(&server)
        .await;
    let t = app(&server, "concurrency = 4\nrate = \"4/s\"").await;
    let rows: String = (0..12)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,P,2026-01-05,Terminated\n"))
        .collect();
    t.write_feed(&rows);
    t.poll().await;

    let started = Instant::now();
    assert_eq!(t.drain().await.done, 12);
    let took = started.elapsed();

    let stamps = stamps.lock().unwrap().clone();
    assert_eq!(stamps.len(), 12);
    // A bucket of 4 refilled at 4/s: 12 calls need at least 2 s; no second holds more than 4 + 4.
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    assert!(busiest_window(&stamps, Duration::from_secs(1)) <= 8);
}

#[tokio::test]
async fn the_probe_checks_health_at_the_host_root_then_an_authenticated_read() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "UP"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/api/deprovision/urn%3Acollab%3Aperson%3Aoffboard.invalid%3Aprobe",
        ))
        .and(header("authorization", BASIC))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_empty()))
        .expect(1)
        .mount(&server)
        .await;
    let t = app(&server, "").await;

    let said = t.app.registry.get("engine").unwrap().probe().await.unwrap();

    assert!(said.contains("health OK; EngineBlock answered"), "{said}");
}

#[tokio::test]
async fn secrets_never_reach_the_logs_or_the_audit_log() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(ANN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(engineblock_data()))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"errors": ["Bad credentials"]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_empty()))
        .mount(&server)
        .await;
    let (dir, text) = workspace(&server, "");
    let text = text.replace("level = \"warn\"", "level = \"debug\"");
    std::fs::write(dir.path().join("offboard.toml"), &text).unwrap();
    std::fs::write(
        dir.path().join("feed.csv"),
        format!("{HEADER}{ANN}e2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n"),
    )
    .unwrap();
    let config = dir.path().join("offboard.toml");

    let (_, output) = run_binary(&config, &["run", "--once"]).await;
    let (_, probe) = run_binary(&config, &["check-config", "--probe"]).await;

    assert!(
        output.contains("Bad credentials"),
        "the run did happen: {output}"
    );
    assert!(probe.contains("health OK"), "{probe}");
    let loaded = Config::load(&config).unwrap();
    let pool = offboard::store::Store::open_configured(&loaded.database)
        .await
        .unwrap();
    let stored = stored_text(&pool).await;
    let encoded = BASIC.trim_start_matches("Basic ");
    for secret in [PASSWORD, encoded] {
        assert!(!output.contains(secret), "{secret} in the run's output");
        assert!(!probe.contains(secret), "{secret} in the probe's output");
        assert!(!stored.contains(secret), "{secret} in the database");
    }
    for value in [PERSISTENT_ID, USER_UUID] {
        assert!(
            !output.contains(value) && !stored.contains(value),
            "{value} leaked"
        );
    }
}

#[tokio::test]
async fn config_reads_the_user_from_exactly_one_place() {
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "pw", PASSWORD);
    write_secret(dir.path(), "user", "deprov");
    let head = "[[connector]]\nname = \"teams\"\nkind = \"openconext\"\naccount = \"urn:collab:person:example.org:{collab_uid}\"\nbase_url = \"https://teams.example.org/api\"\npassword_file = \"pw\"\n";
    let parse =
        |extra: &str| Config::from_toml_str(&format!("{head}{extra}"), &dir.path().join("o.toml"));

    let config = parse("username_file = \"user\"\n").unwrap();
    let offboard::connectors::ConnectorKind::Openconext(oc) = &config.connectors[0].kind else {
        panic!("expected openconext");
    };
    assert_eq!(oc.base_url, "https://teams.example.org/api/");
    assert_eq!(oc.username.expose(), "deprov");
    let err = parse("username = \"deprov\"\nusername_file = \"user\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("set only one of username"), "{err}");
    let err = parse("").unwrap_err().to_string();
    assert!(err.contains("connector.teams.username: missing"), "{err}");
    let err = parse("username = \"d\"\nverify_ssl = false\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connector.teams.verify_ssl"),
        "unknown keys are refused: {err}"
    );
    let err = Config::from_toml_str(
        &format!(
            "{}username = \"d\"\n",
            head.replace(
                "https://teams.example.org/api",
                "https://u:p@teams.example.org/"
            )
        ),
        &dir.path().join("o.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("must not contain credentials"), "{err}");
}

#[tokio::test]
async fn the_example_block_parses_once_uncommented() {
    let block = example_block(
        "An OpenConext deprovision API connector",
        &["username_file", "username_env", "password_env"],
    );
    assert!(block.contains("kind = \"openconext\""));
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "engineblock-deprovision-password", PASSWORD);

    let config = Config::from_toml_str(&block, &dir.path().join("o.toml")).unwrap();

    let c = &config.connectors[0];
    assert_eq!(
        c.account.source(),
        "urn:collab:person:example.org:{collab_uid}"
    );
    let offboard::connectors::ConnectorKind::Openconext(oc) = &c.kind else {
        panic!("expected openconext");
    };
    assert_eq!(oc.base_url, "https://engine-api.example.org/");
}

/// The service deprovisioned ann but the answer was lost; the retry's DELETE finds nothing left.
/// That reads as removed by the first attempt (removed_unconfirmed), not as "was never there".
#[tokio::test]
async fn a_lost_deprovision_answer_ends_removed_unconfirmed_not_already_absent() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(ANN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(engineblock_data()))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(ANN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_empty()))
        .expect(1)
        .mount(&server)
        .await;
    let proxy = crate::lossy::LossyProxy::start(&server.uri(), &["DELETE "], 1).await;
    let (dir, text) = workspace(&server, "");
    let t = TestApp::in_dir(dir, &text.replace(&server.uri(), &proxy.uri)).await;
    t.write_feed(ANN);
    t.poll().await;

    assert_eq!(t.drain().await.retried, 1, "the lost answer is retried");
    assert_eq!(proxy.lost(), 1);
    t.advance(Duration::from_secs(60));
    assert_eq!(t.drain().await.done, 1);
    assert_eq!(
        t.removal("e1").await.outcome.as_deref(),
        Some("removed_unconfirmed")
    );
    server.verify().await;
}
