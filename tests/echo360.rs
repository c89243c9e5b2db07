//! The echo360 connector against a wiremock EchoVideo: token, lookups, the paged index, removal,
//! every error class, rate limits, and secrets kept out of logs and the audit log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offboard::config::Config;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{HEADER, TestApp, config_text, detail};
use crate::vendor_http::{
    Stamped, busiest_window, example_block, run_binary, stored_text, write_secret,
};

const CLIENT_ID: &str = "echo-client-id-5c1d";
const CLIENT_SECRET: &str = "echo-client-secret-77ab90";
const TOKEN: &str = "echo-access-token-3e4f";
const TOKEN_2: &str = "echo-access-token-second-8a8a";
const USERS: &str = "/public/api/v1/users";

const ANN: &str = "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n";
const BOB: &str = "e2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n";

/// The connector's TOML; `extra` may replace the default `account = "{email}"`.
fn connector(server: &MockServer, extra: &str) -> String {
    let account = if extra.contains("account =") {
        ""
    } else {
        "account = \"{email}\"\n"
    };
    format!(
        "[[connector]]\nname = \"echo\"\nkind = \"echo360\"\n{account}base_url = \"{}\"\n\
         client_id_file = \"echo-client-id\"\nclient_secret_file = \"echo-client-secret\"\naction = \"delete\"\n\
         timeout = \"1s\"\n{extra}\n",
        server.uri()
    )
}

/// A temp directory with the feed header and the client secrets, and the whole config text.
fn workspace(server: &MockServer, extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    write_secret(dir.path(), "echo-client-id", CLIENT_ID);
    write_secret(dir.path(), "echo-client-secret", CLIENT_SECRET);
    let text = config_text(&connector(server, extra));
    (dir, text)
}

async fn app(server: &MockServer, extra: &str) -> TestApp {
    let (dir, text) = workspace(server, extra);
    TestApp::in_dir(dir, &text).await
}

fn token_body(token: &str) -> Value {
    json!({"token_type": "Bearer", "access_token": token, "expires_in": 3600, "refresh_token": "r-1"})
}

/// The token endpoint, checking the form body; answers `token` `times` times (None: always).
async fn mount_token(server: &MockServer, token: &str, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(token)));
    match times {
        Some(n) => mock.up_to_n_times(n).mount(server).await,
        None => mock.mount(server).await,
    }
}

fn user(id: &str, email: &str, first: &str) -> Value {
    json!({"id": id, "email": email, "firstName": first, "lastName": "Example", "roles": []})
}

async fn mount_user_by_email(server: &MockServer, email_encoded: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/{email_encoded}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

async fn mount_delete(server: &MockServer, id: &str, expect: u64) {
    Mock::given(method("DELETE"))
        .and(path(format!("{USERS}/{id}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("ok")))
        .expect(expect)
        .mount(server)
        .await;
}

fn token_requests(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.url.path() == "/oauth2/access_token")
        .collect()
}

#[tokio::test]
async fn leavers_found_by_email_are_deleted_with_one_shared_token() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_user_by_email(
        &server,
        "ann%40example.org",
        user("u-ann", "ann@example.org", "Ann"),
    )
    .await;
    mount_user_by_email(
        &server,
        "bob%40example.org",
        user("u-bob", "Bob@Example.org", "Bob"),
    )
    .await;
    mount_delete(&server, "u-ann", 1).await;
    mount_delete(&server, "u-bob", 1).await;
    let t = app(&server, "").await;
    t.write_feed(&format!("{ANN}{BOB}"));
    t.poll().await;

    let summary = t.drain().await;

    assert_eq!(summary.done, 2);
    for emp in ["e1", "e2"] {
        let r = t.removal(emp).await;
        assert_eq!(r.state, "done");
        assert_eq!(r.outcome.as_deref(), Some("removed"));
    }
    let requests = server.received_requests().await.unwrap();
    let tokens = token_requests(&requests);
    assert_eq!(tokens.len(), 1, "both workers share one token");
    assert!(
        tokens[0].url.query().is_none(),
        "the secret goes in the form body, not the URL"
    );
    let done = t.events("removal_done").await;
    let ids: Vec<String> = done
        .iter()
        .map(|r| detail(r)["remote_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"u-ann".to_string()) && ids.contains(&"u-bob".to_string()));
    let ops: Vec<String> = t
        .events("vendor_call")
        .await
        .iter()
        .map(|r| detail(r)["operation"].as_str().unwrap().to_string())
        .collect();
    assert!(ops.contains(&"GET /public/api/v1/users/{email}".to_string()));
    assert!(ops.contains(&"DELETE /public/api/v1/users/{id}".to_string()));
    assert!(
        ops.iter().all(|o| !o.contains("example.org")),
        "operation labels carry no email: {ops:?}"
    );
}

#[tokio::test]
async fn an_unknown_email_and_a_delete_answering_404_are_already_absent() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(ResponseTemplate::new(404).set_body_string("User not found"))
        .mount(&server)
        .await;
    mount_user_by_email(
        &server,
        "bob%40example.org",
        user("u-bob", "bob@example.org", "Bob"),
    )
    .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{USERS}/u-bob")))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{USERS}/u-ann")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("ok")))
        .expect(0)
        .mount(&server)
        .await;
    let t = app(&server, "").await;
    t.write_feed(&format!("{ANN}{BOB}"));
    t.poll().await;

    t.drain().await;

    for emp in ["e1", "e2"] {
        let r = t.removal(emp).await;
        assert_eq!(r.state, "done", "{emp}");
        assert_eq!(r.outcome.as_deref(), Some("already_absent"), "{emp}");
    }
}

#[tokio::test]
async fn a_lookup_answered_with_another_users_email_is_refused() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_user_by_email(
        &server,
        "ann%40example.org",
        user("u-x", "someone@example.org", "Xavier"),
    )
    .await;
    mount_delete(&server, "u-x", 0).await;
    let t = app(&server, "").await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    assert!(
        r.last_error.unwrap().contains("not the account key"),
        "never deletes a user other than the one asked for"
    );
}

/// Three pages of users; `next` cursors are opaque strings the server chose.
async fn mount_three_pages(server: &MockServer, page3: Vec<Value>) {
    let base = server.uri();
    let page1 = json!({
        "data": [
            {"id": "u-1", "email": "one@example.org", "ssoId": "ONE", "firstName": "One"},
            {"id": "u-ann", "email": "ann.private@example.net", "ssoId": "ann", "firstName": "Ann"},
        ],
        "next": format!("{base}{USERS}?limit=2&offset=Zx9-opaque-A"),
    });
    let page2 = json!({
        "data": [
            {"id": "u-2", "email": "two@example.org", "firstName": "Two"},
            {"id": "u-3", "email": "three@example.org", "ssoId": "three", "firstName": "Three"},
        ],
        "next": format!("{base}{USERS}?limit=2&offset=Qq7-opaque-B"),
    });
    let page3 = json!({"data": page3, "next": null});
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("limit", "2"))
        .and(wiremock::matchers::query_param_is_missing("offset"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page1))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("offset", "Zx9-opaque-A"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page2))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("offset", "Qq7-opaque-B"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page3))
        .mount(server)
        .await;
}

fn page_requests(requests: &[Request]) -> usize {
    requests.iter().filter(|r| r.url.path() == USERS).count()
}

#[tokio::test]
async fn an_sso_id_lookup_follows_next_over_three_pages_and_the_next_leaver_uses_the_cached_index()
{
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_three_pages(
        &server,
        vec![json!({"id": "u-bob", "email": "bob.private@example.net", "ssoId": "BOB", "firstName": "Bob"})],
    )
    .await;
    mount_delete(&server, "u-ann", 1).await;
    mount_delete(&server, "u-bob", 1).await;
    let t = app(
        &server,
        "account = \"{username}\"\nmatch = \"sso_id\"\npage_size = 2\nindex_ttl = \"10m\"",
    )
    .await;
    t.write_feed(&format!("{ANN}{BOB}"));
    t.poll().await;

    t.drain().await;

    for emp in ["e1", "e2"] {
        let r = t.removal(emp).await;
        assert_eq!(r.state, "done", "{emp}: {:?}", r.last_error);
        assert_eq!(r.outcome.as_deref(), Some("removed"));
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        page_requests(&requests),
        3,
        "one scan of three pages serves both leavers"
    );

    // A leaver of a later batch, after the index expired, gets a fresh scan.
    t.advance(Duration::from_secs(11 * 60));
    t.write_feed(&format!(
        "{ANN}{BOB}e3,c@example.org,nobody,,C,2026-01-05,Terminated\n"
    ));
    t.poll().await;
    t.drain().await;
    let r = t.removal("e3").await;
    assert_eq!(r.outcome.as_deref(), Some("already_absent"));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(page_requests(&requests), 6, "the expired index was rebuilt");
}

#[tokio::test]
async fn two_users_with_the_same_sso_id_are_ambiguous_and_nothing_is_deleted() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_three_pages(
        &server,
        vec![json!({"id": "u-ann-2", "email": "ann2@example.org", "ssoId": "ANN", "firstName": "Ann"})],
    )
    .await;
    mount_delete(&server, "u-ann", 0).await;
    mount_delete(&server, "u-ann-2", 0).await;
    let t = app(
        &server,
        "account = \"{username}\"\nmatch = \"sso_id\"\npage_size = 2",
    )
    .await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    assert_eq!(
        r.last_error.as_deref(),
        Some("2 accounts match, needs a human")
    );
}

#[tokio::test]
async fn the_anonymous_accounts_are_refused_at_planning_and_at_lookup() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_three_pages(
        &server,
        vec![json!({"id": "u-anon", "email": "a1b2@echo360.com", "externalId": "E-9", "firstName": "Anon-7f3e"})],
    )
    .await;
    mount_delete(&server, "u-anon", 0).await;
    let t = app(
        &server,
        "account = \"{attributes.hr_id}\"\nmatch = \"external_id\"\npage_size = 2",
    )
    .await;
    // The HR feed carries no attributes column: enqueue through the library with the attribute.
    let (dir, text) = workspace(&server, "");
    let email_app = TestApp::in_dir(dir, &text).await;
    email_app.write_feed("e9,anonymous@echo360.com,anon,,Anonymous,2026-01-05,Terminated\n");
    email_app.poll().await;
    let r = email_app.removal("e9").await;
    assert_eq!(r.state, "failed", "refused before any call");
    assert!(
        r.last_error
            .unwrap()
            .contains("system anonymous account, which offboard never removes")
    );
    assert_eq!(email_app.drain().await.attempts, 0);

    let person = offboard::domain::Person {
        employee_id: "e1".into(),
        attributes: [("hr_id".to_string(), "e-9".to_string())].into(),
        ..Default::default()
    };
    let account = offboard::planner::account_for(&t.app.config.connectors[0], &person).unwrap();
    let target = offboard::connectors::Target {
        removal_id: 1,
        attempt: 1,
        account,
        person,
        bound: None,
        stage: String::new(),
        calls: Default::default(),
    };
    let connector = t.app.registry.get("echo").unwrap();
    let err = connector.resolve(&target).await.unwrap_err();
    assert_eq!(err.class, offboard::connectors::ErrorClass::Permanent);
    assert!(
        err.reason.contains("system anonymous account"),
        "{}",
        err.reason
    );
}

#[tokio::test]
async fn deactivate_reads_the_user_sets_the_fields_and_writes_it_back() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_user_by_email(
        &server,
        "ann%40example.org",
        user("u-ann", "ann@example.org", "Ann"),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/u-ann")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "u-ann", "email": "ann@example.org", "firstName": "Ann", "lastName": "Example",
            "status": "Active", "ssoId": "ann"
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{USERS}/u-ann")))
        .and(body_partial_json(json!({
            "id": "u-ann", "email": "ann@example.org", "ssoId": "ann", "status": "Inactive"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "u-ann"})))
        .expect(1)
        .mount(&server)
        .await;
    mount_delete(&server, "u-ann", 0).await;
    let (dir, text) = workspace(&server, "");
    let text = text.replace(
        "action = \"delete\"",
        "action = \"deactivate\"\ndeactivate_fields = { status = \"Inactive\" }",
    );
    let t = TestApp::in_dir(dir, &text).await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "done", "{:?}", r.last_error);
    assert_eq!(r.outcome.as_deref(), Some("deactivated"));
}

#[tokio::test]
async fn dry_run_resolves_and_ends_planned_without_deleting() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    mount_user_by_email(
        &server,
        "ann%40example.org",
        user("u-ann", "ann@example.org", "Ann"),
    )
    .await;
    mount_delete(&server, "u-ann", 0).await;
    let t = app(&server, "dry_run = true").await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "planned");
    assert_eq!(
        r.last_error.as_deref(),
        Some("would delete Echo360 user u-ann")
    );
}

/// One lookup answered with `response`; the removal's state and last error after one drain, the
/// app and its server (to drain again).
async fn lookup_failing_with(response: ResponseTemplate) -> (String, String, TestApp, MockServer) {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(response)
        .mount(&server)
        .await;
    let t = app(&server, "").await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;
    let r = t.removal("e1").await;
    (r.state, r.last_error.unwrap_or_default(), t, server)
}

#[tokio::test]
async fn each_error_class_of_the_lookup_is_classified() {
    let cases: Vec<(&str, ResponseTemplate, &str, &str)> = vec![
        (
            "5xx",
            ResponseTemplate::new(503).set_body_string("maintenance"),
            "pending",
            "HTTP 503: maintenance",
        ),
        (
            "timeout",
            ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
            "pending",
            "timed out",
        ),
        (
            "malformed body",
            ResponseTemplate::new(200).set_body_string("<html>oops</html>"),
            "pending",
            "malformed response: the body is not JSON",
        ),
        (
            "a JSON body that is not a user",
            ResponseTemplate::new(200).set_body_json(json!({"name": "x"})),
            "pending",
            "not a user with an id",
        ),
        (
            "vendor error shape",
            ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid parameter"})),
            "failed",
            "HTTP 400: Invalid parameter",
        ),
        ("501", ResponseTemplate::new(501), "failed", "HTTP 501"),
    ];
    for (name, response, state, reason) in cases {
        let (got_state, error, _t, _server) = lookup_failing_with(response).await;
        assert_eq!(got_state, state, "{name}: {error}");
        assert!(error.contains(reason), "{name}: {error}");
    }
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let (state, error, t, _server) =
        lookup_failing_with(ResponseTemplate::new(429).insert_header("retry-after", "7")).await;
    assert_eq!(state, "pending");
    assert!(error.contains("HTTP 429"), "{error}");
    let retry = detail(&t.events("removal_retry_scheduled").await[0]);
    assert_eq!(retry["retry_after_ms"], 7000);
    assert!(retry["retry_in_ms"].as_i64().unwrap() >= 6900);
}

#[tokio::test]
async fn a_401_gets_a_fresh_token_once_per_call() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, Some(1)).await;
    mount_token(&server, TOKEN_2, None).await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_2}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(user(
            "u-ann",
            "ann@example.org",
            "Ann",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{USERS}/u-ann")))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_2}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("ok")))
        .expect(1)
        .mount(&server)
        .await;
    let t = app(&server, "").await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;

    assert_eq!(t.removal("e1").await.state, "done");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(token_requests(&requests).len(), 2);
}

#[tokio::test]
async fn a_401_that_survives_a_fresh_token_is_retried_once_then_fails_at_the_third_refusal() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let t = app(&server, "").await;
    t.write_feed(ANN);
    t.poll().await;

    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert!(r.last_error.unwrap().contains("retrying once"));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(token_requests(&requests).len(), 2, "one fresh grant");
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.url.path().starts_with(USERS))
            .count(),
        2,
        "the call is repeated once"
    );
    let retry = detail(&t.events("removal_retry_scheduled").await[0]);
    assert!(
        retry["retry_in_ms"].as_i64().unwrap() >= 290_000,
        "a long delay: {retry}"
    );

    t.advance(Duration::from_secs(6 * 60));
    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    assert!(
        r.last_error
            .unwrap()
            .contains("refused again after a retry"),
        "permanent the second time"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        token_requests(&requests).len(),
        3,
        "the retry starts with a fresh token: the refused one is never sent again"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.url.path().starts_with(USERS))
            .count(),
        3,
        "failed at the third refusal"
    );
}

#[tokio::test]
async fn a_403_and_refused_client_credentials_are_retried_once_then_permanent() {
    // 403 on the API.
    let (state, error, t, _server) = lookup_failing_with(
        ResponseTemplate::new(403).set_body_json(json!({"message": "Forbidden"})),
    )
    .await;
    assert_eq!(state, "pending");
    assert!(
        error.contains("HTTP 403") && error.contains("Forbidden"),
        "{error}"
    );
    t.advance(Duration::from_secs(6 * 60));
    t.drain().await;
    assert_eq!(t.removal("e1").await.state, "failed");

    // The token endpoint refusing the client.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client", "error_description": format!("unknown client {CLIENT_ID}")
        })))
        .mount(&server)
        .await;
    let t = app(&server, "").await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    let error = r.last_error.unwrap();
    assert!(
        error.contains("client credentials were refused (invalid_client)"),
        "{error}"
    );
    assert!(
        !error.contains(CLIENT_ID),
        "the vendor's description may repeat the client id"
    );
    t.advance(Duration::from_secs(6 * 60));
    t.drain().await;
    assert_eq!(t.removal("e1").await.state, "failed");
}

#[tokio::test]
async fn the_token_is_refreshed_before_its_hour_runs_out_on_the_daemon_clock() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, Some(1)).await;
    mount_token(&server, TOKEN_2, None).await;
    for (encoded, id, email) in [
        ("ann%40example.org", "u-ann", "ann@example.org"),
        ("bob%40example.org", "u-bob", "bob@example.org"),
        ("cy%40example.org", "u-cy", "cy@example.org"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("{USERS}/{encoded}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(user(id, email, "X")))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path(format!("{USERS}/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!("ok")))
            .mount(&server)
            .await;
    }
    let t = app(&server, "").await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;

    // 50 minutes on: the first token is still good.
    t.advance(Duration::from_secs(50 * 60));
    t.write_feed(&format!("{ANN}{BOB}"));
    t.poll().await;
    t.drain().await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(token_requests(&requests).len(), 1);

    // 56 minutes after the grant: inside the refresh margin, a new token is granted first.
    t.advance(Duration::from_secs(6 * 60));
    t.write_feed(&format!(
        "{ANN}{BOB}e3,cy@example.org,cy,,Cy,2026-01-05,Terminated\n"
    ));
    t.poll().await;
    t.drain().await;
    assert_eq!(t.removal("e3").await.state, "done");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(token_requests(&requests).len(), 2);
    let cy: Vec<&Request> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("cy%40example.org") || r.url.path().ends_with("u-cy"))
        .collect();
    assert_eq!(cy.len(), 2);
    for r in cy {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {TOKEN_2}")
        );
    }
    let failures: Vec<Value> = t
        .events("vendor_call")
        .await
        .iter()
        .map(detail)
        .filter(|d| !d["error"].is_null())
        .collect();
    assert!(failures.is_empty(), "no call failed: {failures:?}");
}

#[tokio::test]
async fn a_429_pauses_every_worker_of_the_connector() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let throttled = Arc::new(Mutex::new(None::<Instant>));
    let mark = throttled.clone();
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(move |_: &Request| {
            *mark.lock().unwrap() = Some(Instant::now());
            ResponseTemplate::new(429).insert_header("retry-after", "1")
        })
        .up_to_n_times(1)
        .mount(&server)
        .await;
    for (encoded, id, email) in [
        ("ann%40example.org", "u-ann", "ann@example.org"),
        ("bob%40example.org", "u-bob", "bob@example.org"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("{USERS}/{encoded}")))
            .respond_with(Stamped::new(
                &stamps,
                ResponseTemplate::new(200).set_body_json(user(id, email, "X")),
            ))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path(format!("{USERS}/{id}")))
            .respond_with(Stamped::new(
                &stamps,
                ResponseTemplate::new(200).set_body_json(json!("ok")),
            ))
            .mount(&server)
            .await;
    }
    // One worker: ann's lookup is throttled first, then bob must wait out the pause.
    let t = app(&server, "concurrency = 1\nrate = \"100/s\"").await;
    t.write_feed(ANN);
    t.poll().await;
    t.drain().await;
    assert_eq!(t.removal("e1").await.state, "pending");
    t.write_feed(&format!("{ANN}{BOB}"));
    t.poll().await;
    t.drain().await;

    assert_eq!(t.removal("e2").await.state, "done");
    let throttled_at = throttled.lock().unwrap().unwrap();
    let next = stamps.lock().unwrap().iter().copied().min().unwrap();
    assert!(
        next.duration_since(throttled_at) >= Duration::from_millis(900),
        "the next call waited for Retry-After: {:?}",
        next.duration_since(throttled_at)
    );
}

#[tokio::test]
async fn the_default_rate_of_two_calls_a_second_holds_over_a_batch() {
    let server = MockServer::start().await;
    let stamps = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(Stamped::new(
            &stamps,
            ResponseTemplate::new(200).set_body_json(token_body(TOKEN)),
        ))
        .mount(&server)
        .await;
    let mut rows = String::new();
    for i in 0..3 {
        let email = format!("p{i}@example.org");
        rows.push_str(&format!("e{i},{email},p{i},,P,2026-01-05,Terminated\n"));
        Mock::given(method("GET"))
            .and(path(format!("{USERS}/p{i}%40example.org")))
            .respond_with(Stamped::new(
                &stamps,
                ResponseTemplate::new(200).set_body_json(user(&format!("u{i}"), &email, "P")),
            ))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path(format!("{USERS}/u{i}")))
            .respond_with(Stamped::new(
                &stamps,
                ResponseTemplate::new(200).set_body_json(json!("ok")),
            ))
            .mount(&server)
            .await;
    }
    let t = app(&server, "concurrency = 3").await;
    t.write_feed(&rows);
    t.poll().await;

    let started = Instant::now();
    assert_eq!(t.drain().await.done, 3);
    let took = started.elapsed();

    let stamps = stamps.lock().unwrap().clone();
    assert_eq!(stamps.len(), 7, "one token and two calls per leaver");
    // A bucket of 2 that refills at 2/s: 7 calls need at least 2.5 s, and no second holds more
    // than 2 + 2.
    assert!(took >= Duration::from_millis(2300), "{took:?}");
    assert!(busiest_window(&stamps, Duration::from_secs(1)) <= 4);
}

#[tokio::test]
async fn secrets_never_reach_the_logs_or_the_audit_log() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, Some(1)).await;
    mount_token(&server, TOKEN_2, None).await;
    // A 401 on the first token exercises the refusal and fresh-grant paths too.
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_string("token expired"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(ResponseTemplate::new(200).set_body_json(user(
            "u-ann",
            "ann@example.org",
            "Ann",
        )))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{USERS}/u-ann")))
        .respond_with(ResponseTemplate::new(500).set_body_string("database locked"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("limit", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [], "next": null})))
        .mount(&server)
        .await;
    let (dir, text) = workspace(&server, "");
    let text = text.replace("level = \"warn\"", "level = \"debug\"");
    std::fs::write(dir.path().join("offboard.toml"), &text).unwrap();
    std::fs::write(dir.path().join("feed.csv"), format!("{HEADER}{ANN}")).unwrap();
    let config = dir.path().join("offboard.toml");

    let (_, output) = run_binary(&config, &["run", "--once"]).await;
    let (_, probe) = run_binary(&config, &["check-config", "--probe"]).await;

    assert!(output.contains("HTTP 500"), "the run did happen: {output}");
    assert!(probe.contains("the user list is readable"), "{probe}");
    let loaded = Config::load(&config).unwrap();
    let pool = offboard::store::Store::open_configured(&loaded.database)
        .await
        .unwrap();
    let stored = stored_text(&pool).await;
    for secret in [CLIENT_ID, CLIENT_SECRET, TOKEN, TOKEN_2] {
        assert!(!output.contains(secret), "{secret} in the run's output");
        assert!(!probe.contains(secret), "{secret} in the probe's output");
        assert!(!stored.contains(secret), "{secret} in the database");
    }
    assert!(
        !stored.contains("ann@example.org"),
        "no email in the audit log"
    );
}

#[tokio::test]
async fn config_requires_an_action_and_the_deactivate_fields_and_checks_paths() {
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "id", CLIENT_ID);
    write_secret(dir.path(), "secret", CLIENT_SECRET);
    let head = "[[connector]]\nname = \"echo\"\nkind = \"echo360\"\nbase_url = \"https://echo360.org.uk/\"\nclient_id_file = \"id\"\nclient_secret_file = \"secret\"\n";
    let parse =
        |extra: &str| Config::from_toml_str(&format!("{head}{extra}"), &dir.path().join("o.toml"));

    let err = parse("").unwrap_err().to_string();
    assert!(err.contains("connector.echo.action: missing"), "{err}");
    let err = parse("action = \"deactivate\"\n").unwrap_err().to_string();
    assert!(
        err.contains("connector.echo.deactivate_fields: missing"),
        "{err}"
    );
    let err = parse("action = \"delete\"\nmatch = \"upn\"\n[connector.paths]\nuser = \"/users\"\nbogus = \"/x\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connector.echo.match: unknown value \"upn\""),
        "{err}"
    );
    assert!(err.contains("connector.echo.paths.bogus"), "{err}");

    let config =
        parse("action = \"delete\"\n[connector.paths]\nuser = \"/api/v2/users/{id}\"\n").unwrap();
    let c = &config.connectors[0];
    assert!(c.rate.is_none(), "the kind's default applies");
    let offboard::connectors::ConnectorKind::Echo360(echo) = &c.kind else {
        panic!("expected echo360");
    };
    assert_eq!(echo.base_url, "https://echo360.org.uk");
    assert_eq!(echo.paths.user, "/api/v2/users/{id}");
    assert_eq!(echo.paths.users, "/public/api/v1/users");
    assert_eq!(echo.index_ttl, Duration::from_secs(900));
    let err = parse("action = \"delete\"\n[connector.paths]\nuser = \"/api/v2/users\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("must contain {id} exactly once"), "{err}");
}

#[tokio::test]
async fn the_example_block_parses_once_uncommented() {
    let block = example_block(
        "An EchoVideo (Echo360) connector",
        &["client_id_env", "client_secret_env", "deactivate_fields"],
    );
    assert!(block.contains("kind = \"echo360\"") && block.contains("[connector.paths]"));
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "echo360-client-id", CLIENT_ID);
    write_secret(dir.path(), "echo360-client-secret", CLIENT_SECRET);

    let config = Config::from_toml_str(&block, &dir.path().join("o.toml")).unwrap();

    let offboard::connectors::ConnectorKind::Echo360(echo) = &config.connectors[0].kind else {
        panic!("expected echo360");
    };
    assert_eq!(echo.base_url, "https://echo360.org.uk");
    assert_eq!(echo.page_size, 100);
    assert_eq!(echo.paths.user, "/public/api/v1/users/{id}");
}

/// EchoVideo deleted ann but the answer was lost; meanwhile a new user with ann's email appeared.
/// The retry looks up the user it acted on by id alone: removed_unconfirmed, and the new user,
/// whom a lookup by email would have found, is never deleted.
#[tokio::test]
async fn a_lost_delete_answer_ends_removed_unconfirmed_and_never_reaches_a_second_user() {
    let server = MockServer::start().await;
    mount_token(&server, TOKEN, None).await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(ResponseTemplate::new(200).set_body_json(user(
            "u-ann",
            "ann@example.org",
            "Ann",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_user_by_email(
        &server,
        "ann%40example.org",
        user("u-ann-new", "ann@example.org", "Ann"),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/u-ann")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "not found"})))
        .expect(1)
        .mount(&server)
        .await;
    mount_delete(&server, "u-ann", 1).await;
    mount_delete(&server, "u-ann-new", 0).await;
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

/// Echo360 counts calls per API client: three connectors on one client share the client's rate
/// (2/s by default) instead of each spending all of it.
#[tokio::test]
async fn connectors_on_the_same_api_client_share_one_rate_limit() {
    let server = MockServer::start().await;
    let stamps = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(Stamped::new(
            &stamps,
            ResponseTemplate::new(200).set_body_json(token_body(TOKEN)),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{USERS}/ann%40example.org")))
        .respond_with(Stamped::new(
            &stamps,
            ResponseTemplate::new(200).set_body_json(user("u-ann", "ann@example.org", "Ann")),
        ))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{USERS}/u-ann")))
        .respond_with(Stamped::new(
            &stamps,
            ResponseTemplate::new(200).set_body_json(json!("ok")),
        ))
        .mount(&server)
        .await;
    let (dir, text) = workspace(&server, "");
    let one = connector(&server, "");
    let three: String = ["a", "b", "c"]
        .iter()
        .map(|n| one.replace("name = \"echo\"", &format!("name = \"echo-{n}\"")))
        .collect();
    let t = TestApp::in_dir(dir, &text.replace(&one, &three)).await;
    t.write_feed(ANN);
    t.poll().await;

    let started = Instant::now();
    assert_eq!(t.drain().await.done, 3);
    let took = started.elapsed();
    let stamps = stamps.lock().unwrap().clone();
    assert_eq!(
        stamps.len(),
        9,
        "a token, a lookup and a delete per connector"
    );
    // One bucket of 2 refilling at 2/s for all nine calls: at least 3.5 s, never more than 4 in a second.
    assert!(took >= Duration::from_millis(3300), "{took:?}");
    assert!(busiest_window(&stamps, Duration::from_secs(1)) <= 4);
}
