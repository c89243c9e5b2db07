//! The panopto connector against a wiremock fake of Panopto's UserManagement SOAP service, its
//! requests checked against Panopto's published schemas, and its secrets kept out of every output.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offboard::connectors::panopto::soap::{self, Envelope};
use quick_xml::escape::escape;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{HEADER, TestApp, config_text, detail};

const SVC: &str = "/Panopto/PublicAPI/4.6/UserManagement.svc";
const GET: &str = "\"http://tempuri.org/IUserManagement/GetUserByKey\"";
const DELETE: &str = "\"http://tempuri.org/IUserManagement/DeleteUsers\"";
const TEMPURI: &str = "http://tempuri.org/";
const V40: &str = "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40";
const ARRAYS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The site's FQDN, in mixed case: the AuthCode uses it lower-cased.
const HOST: &str = "Demo.Hosted.Panopto.com";
/// The internal API user and its password (with characters XML must escape).
const API_USER: &str = "svc-offboard";
const PASSWORD: &str = "pw&<Secr3t>'\"-9f8e7d";
/// The identity-provider API user, its application key and the AuthCode of panopto.md's test vector.
const SSO_USER: &str = "MyIdP\\jdoe";
const APP_KEY: &str = "8D2B5E4A-1C3F-4E5D-9A7B-0C1D2E3F4A5B";
const AUTH_CODE: &str = "2ACB7BDE0D751EF9E55043484EF7FC25A0503CCC";

const ANN_KEY: &str = "MyIdP\\ann";
const ANN_GUID: &str = "3d6d15b1-1234-1234-1234-12345f44224d";
const ANN: &str = "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n";
const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";

// ------------------------------------------------------------------------------------------------
// Fake Panopto
// ------------------------------------------------------------------------------------------------

/// How the fake answers GetUserByKey for a key it does not know.
#[derive(Clone, Copy, Debug)]
enum Miss {
    /// `<GetUserByKeyResult i:nil="true"/>`.
    NilResult,
    /// A User whose UserId is the all-zero GUID.
    ZeroGuid,
    /// No GetUserByKeyResult element at all.
    NoResult,
}

/// A fake UserManagement service: checks the caller's credentials, then answers GetUserByKey and
/// DeleteUsers from its directory of users.
#[derive(Clone)]
struct Directory {
    users: Arc<Mutex<HashMap<String, String>>>,
    miss: Miss,
    /// Answer every found user with this user key instead of the one asked for.
    answer_key: Option<String>,
}

impl Directory {
    fn with(users: &[(&str, &str)]) -> Self {
        Self {
            users: Arc::new(Mutex::new(
                users
                    .iter()
                    .map(|(k, g)| (k.to_string(), g.to_string()))
                    .collect(),
            )),
            miss: Miss::NilResult,
            answer_key: None,
        }
    }

    fn missing(mut self, miss: Miss) -> Self {
        self.miss = miss;
        self
    }

    fn has(&self, key: &str) -> bool {
        self.users.lock().unwrap().contains_key(key)
    }

    fn authenticated(auth: &soap::Element) -> bool {
        let member = |name: &str| auth.child(Some(V40), name).map(|e| e.text.as_str());
        matches!(
            (member("AuthCode"), member("Password"), member("UserKey")),
            (None, Some(PASSWORD), Some(API_USER)) | (Some(AUTH_CODE), None, Some(SSO_USER))
        )
    }
}

impl Respond for Directory {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let action = request
            .headers
            .get("SOAPAction")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let Ok(Envelope::Response(operation)) = soap::read_envelope(&request.body) else {
            return xml(400, "<html><body>Bad Request</body></html>".into());
        };
        if !operation
            .child(Some(TEMPURI), "auth")
            .is_some_and(Self::authenticated)
        {
            return xml(500, fault("s:Client", "Invalid credentials"));
        }
        match action.as_str() {
            GET => {
                let key = operation
                    .child(Some(TEMPURI), "userKey")
                    .map(|e| e.text.clone())
                    .unwrap_or_default();
                match self.users.lock().unwrap().get(&key) {
                    Some(guid) => xml(
                        200,
                        user_response(self.answer_key.as_deref().unwrap_or(&key), guid),
                    ),
                    None => xml(200, miss_response(self.miss)),
                }
            }
            DELETE => {
                let guids: Vec<String> = operation
                    .child(Some(TEMPURI), "userIds")
                    .map(|ids| {
                        ids.children
                            .iter()
                            .filter(|g| g.is(Some(ARRAYS), "guid"))
                            .map(|g| g.text.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut users = self.users.lock().unwrap();
                let before = users.len();
                users.retain(|_, guid| !guids.contains(guid));
                if users.len() == before {
                    return xml(500, fault("s:Client", "The user does not exist."));
                }
                xml(
                    200,
                    envelope(r#"<DeleteUsersResponse xmlns="http://tempuri.org/"/>"#),
                )
            }
            _ => xml(
                500,
                fault(
                    "a:ActionNotSupported",
                    "The message with Action cannot be processed at the receiver, due to a ContractFilter mismatch at the EndpointDispatcher.",
                ),
            ),
        }
    }
}

fn xml(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into_bytes(), "text/xml; charset=utf-8")
}

fn envelope(body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn fault(code: &str, string: &str) -> String {
    envelope(&format!(
        r#"<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher">{code}</faultcode><faultstring xml:lang="en-US">{}</faultstring></s:Fault>"#,
        escape(string)
    ))
}

/// A GetUserByKeyResponse shaped like WCF's: every User member, in schema order.
fn user_response(key: &str, guid: &str) -> String {
    envelope(&format!(
        r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"><GetUserByKeyResult xmlns:a="{V40}" xmlns:i="{XSI}"><a:Email>ann@example.org</a:Email><a:EmailSessionNotifications>false</a:EmailSessionNotifications><a:FirstName>Ann</a:FirstName><a:GroupMemberships xmlns:b="{ARRAYS}"><b:guid>ed0be016-1234-1234-1234-1234c5c74c03</b:guid></a:GroupMemberships><a:LastName>Example</a:LastName><a:SystemRole>None</a:SystemRole><a:UserBio i:nil="true"/><a:UserId>{guid}</a:UserId><a:UserKey>{}</a:UserKey><a:UserSettingsUrl>https://demo.hosted.panopto.com/Panopto/Pages/Settings.aspx</a:UserSettingsUrl></GetUserByKeyResult></GetUserByKeyResponse>"#,
        escape(key)
    ))
}

fn miss_response(miss: Miss) -> String {
    match miss {
        Miss::NilResult => envelope(&format!(
            r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"><GetUserByKeyResult i:nil="true" xmlns:i="{XSI}"/></GetUserByKeyResponse>"#
        )),
        Miss::ZeroGuid => envelope(&format!(
            r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"><GetUserByKeyResult xmlns:a="{V40}" xmlns:i="{XSI}"><a:Email i:nil="true"/><a:EmailSessionNotifications>false</a:EmailSessionNotifications><a:FirstName i:nil="true"/><a:GroupMemberships i:nil="true" xmlns:b="{ARRAYS}"/><a:LastName i:nil="true"/><a:SystemRole>None</a:SystemRole><a:UserBio i:nil="true"/><a:UserId>{ZERO_GUID}</a:UserId><a:UserKey i:nil="true"/><a:UserSettingsUrl i:nil="true"/></GetUserByKeyResult></GetUserByKeyResponse>"#
        )),
        Miss::NoResult => envelope(r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"/>"#),
    }
}

async fn serve(directory: Directory) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SVC))
        .respond_with(directory)
        .mount(&server)
        .await;
    server
}

/// Answers `action` with `response` ahead of the directory, at most `times` times.
async fn answer(server: &MockServer, action: &str, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(SVC))
        .and(header("SOAPAction", action))
        .respond_with(response)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
}

/// The operations the fake received, in order.
async fn operations(server: &MockServer) -> Vec<&'static str> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(
            |r| match r.headers.get("SOAPAction").and_then(|v| v.to_str().ok()) {
                Some(GET) => "GetUserByKey",
                Some(DELETE) => "DeleteUsers",
                _ => "other",
            },
        )
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The daemon under test
// ------------------------------------------------------------------------------------------------

/// How the connector authenticates.
#[derive(Clone, Copy)]
enum Auth {
    Password,
    ApplicationKey,
}

fn connector(name: &str, server: &MockServer, auth: Auth, extra: &str) -> String {
    connector_at(name, &server.uri(), auth, extra)
}

fn connector_at(name: &str, uri: &str, auth: Auth, extra: &str) -> String {
    let (user, secret) = match auth {
        Auth::Password => (API_USER, "password_file = \"panopto-password\""),
        Auth::ApplicationKey => (SSO_USER, "application_key_file = \"panopto-app-key\""),
    };
    format!(
        "[[connector]]\nname = \"{name}\"\nkind = \"panopto\"\naccount = \"MyIdP\\\\{{username}}\"\nhost = \"{HOST}\"\n\
         endpoint = \"{uri}{SVC}\"\napi_user_key = {user:?}\n{secret}\ntimeout = \"2s\"\n{extra}\n"
    )
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, value) in [("panopto-password", PASSWORD), ("panopto-app-key", APP_KEY)] {
        let path = dir.path().join(file);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    dir
}

async fn app(connectors: &str) -> TestApp {
    TestApp::in_dir(workspace(), &config_text(connectors)).await
}

async fn panopto(server: &MockServer, auth: Auth, extra: &str) -> TestApp {
    app(&connector("panopto", server, auth, extra)).await
}

async fn leaver(t: &TestApp, rows: &str) {
    t.write_feed(rows);
    t.poll().await;
}

/// The last scheduled retry's audit detail.
async fn last_retry(t: &TestApp) -> Value {
    detail(t.events("removal_retry_scheduled").await.last().unwrap())
}

// ------------------------------------------------------------------------------------------------
// Schema validation with lxml (Python from the test venv)
// ------------------------------------------------------------------------------------------------

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OFFBOARD_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python test environment at {}: run scripts/test, which creates it \
         (python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt), or set OFFBOARD_TEST_VENV",
        venv.display()
    );
    python
}

/// Runs tests/tools/panopto_validate.py over the messages; returns its per-message results.
fn validate(items: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/panopto_validate.py");
    let mut child = Command::new(venv_python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(items).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schema validation failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

async fn requests_of(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let header = |name: &str| {
                r.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            json!({
                "kind": "request",
                "soap_action": header("SOAPAction"),
                "content_type": header("content-type"),
                "body": String::from_utf8(r.body.clone()).unwrap(),
            })
        })
        .collect()
}

#[tokio::test]
async fn every_request_validates_against_panoptos_published_schemas_with_its_soap_action() {
    let odd = "MyIdP\\o'brien&<x>";
    let directory = Directory::with(&[
        (ANN_KEY, ANN_GUID),
        (odd, "5f0c2a4e-9b1d-4c3e-8a7f-6d5e4c3b2a19"),
        ("MyIdP\\bob", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"),
    ]);
    let server = serve(directory.clone()).await;
    let with_password = panopto(&server, Auth::Password, "").await;
    leaver(&with_password, ANN).await;
    with_password.drain().await;
    let with_code = panopto(&server, Auth::ApplicationKey, "").await;
    leaver(
        &with_code,
        "e2,ob@example.org,o'brien&<x>,,O,2026-01-05,Terminated\ne3,bob@example.org,bob,,Bob,2026-01-05,Terminated\n",
    )
    .await;
    with_code.drain().await;
    assert_eq!(
        operations(&server).await.len(),
        6,
        "three lookups, three deletes"
    );

    let mut items = requests_of(&server).await;
    // The fake's answers are checked too, so the fake looks like the real service.
    for body in [
        user_response(ANN_KEY, ANN_GUID),
        user_response(odd, ANN_GUID),
        miss_response(Miss::NilResult),
        miss_response(Miss::ZeroGuid),
        miss_response(Miss::NoResult),
        envelope(r#"<DeleteUsersResponse xmlns="http://tempuri.org/"/>"#),
    ] {
        items.push(json!({"kind": "response", "body": body}));
    }
    let results = validate(&items);

    assert_eq!(results.len(), 12);
    let requests: Vec<&Value> = results.iter().filter(|r| r["kind"] == "request").collect();
    let lookups: Vec<&&Value> = requests
        .iter()
        .filter(|r| r["operation"] == "GetUserByKey")
        .collect();
    let deletes: Vec<&&Value> = requests
        .iter()
        .filter(|r| r["operation"] == "DeleteUsers")
        .collect();
    assert_eq!((lookups.len(), deletes.len()), (3, 3));
    for r in &requests {
        assert_eq!(r["errors"], json!([]), "{r}");
    }
    // AuthenticationInfo in every call, members in schema order, never a RequestUri.
    let orders: Vec<&Value> = requests.iter().map(|r| &r["auth"]).collect();
    assert!(orders.contains(&&json!(["Password", "UserKey"])));
    assert!(orders.contains(&&json!(["AuthCode", "UserKey"])));
    assert!(
        orders
            .iter()
            .all(|o| *o == &json!(["Password", "UserKey"]) || *o == &json!(["AuthCode", "UserKey"]))
    );
    // lxml reads the user keys back exactly as the feed gave them.
    let mut keys: Vec<&str> = lookups
        .iter()
        .map(|r| r["user_key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec![ANN_KEY, "MyIdP\\bob", odd]);
    assert!(
        deletes
            .iter()
            .any(|r| r["guids"] == json!(["5f0c2a4e-9b1d-4c3e-8a7f-6d5e4c3b2a19"]))
    );
}

// ------------------------------------------------------------------------------------------------
// Outcomes
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_leaver_is_looked_up_and_deleted_with_the_api_users_password() {
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    let summary = t.drain().await;

    assert_eq!(summary.done, 1);
    let r = t.removal("e1").await;
    assert_eq!(
        (r.state.as_str(), r.outcome.as_deref()),
        ("done", Some("removed"))
    );
    assert!(!directory.has(ANN_KEY), "the fake no longer has the user");
    assert_eq!(
        operations(&server).await,
        vec!["GetUserByKey", "DeleteUsers"]
    );
    let calls: Vec<Value> = t
        .events("vendor_call")
        .await
        .iter()
        .map(|row| {
            assert_eq!(row.http_status, Some(200));
            detail(row)["operation"].clone()
        })
        .collect();
    assert_eq!(
        calls,
        vec![json!("SOAP GetUserByKey"), json!("SOAP DeleteUsers")]
    );
    let done = detail(&t.events("removal_done").await[0]);
    assert_eq!(done["remote_id"], ANN_GUID);
    let requests = server.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&requests[0].body);
    assert!(
        body.contains(&format!("<p:Password>{}</p:Password>", escape(PASSWORD))),
        "{body}"
    );
    assert!(!body.contains("RequestUri") && !body.contains("AuthCode"));
}

#[tokio::test]
async fn an_identity_provider_api_user_sends_the_auth_code() {
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    let t = panopto(&server, Auth::ApplicationKey, "").await;
    leaver(&t, ANN).await;

    t.drain().await;

    assert_eq!(t.removal("e1").await.outcome.as_deref(), Some("removed"));
    for request in server.received_requests().await.unwrap() {
        let body = String::from_utf8_lossy(&request.body).to_string();
        assert!(
            body.contains(&format!(
                "<auth><p:AuthCode>{AUTH_CODE}</p:AuthCode><p:UserKey>MyIdP\\jdoe</p:UserKey></auth>"
            )),
            "{body}"
        );
        assert!(!body.contains("Password") && !body.contains(APP_KEY));
    }
}

#[tokio::test]
async fn a_leaver_panopto_does_not_know_is_already_absent_for_each_way_of_saying_so() {
    for miss in [Miss::NilResult, Miss::ZeroGuid, Miss::NoResult] {
        let server = serve(Directory::with(&[]).missing(miss)).await;
        let t = panopto(&server, Auth::Password, "").await;
        leaver(&t, ANN).await;

        t.drain().await;

        let r = t.removal("e1").await;
        assert_eq!(
            (r.state.as_str(), r.outcome.as_deref()),
            ("done", Some("already_absent")),
            "{miss:?}"
        );
        assert_eq!(operations(&server).await, vec!["GetUserByKey"], "{miss:?}");
    }
}

#[tokio::test]
async fn fallback_prefixes_are_tried_in_order_when_the_account_key_finds_nobody() {
    let directory = Directory::with(&[("unified\\ann", ANN_GUID)]).missing(Miss::ZeroGuid);
    let server = serve(directory.clone()).await;
    let t = panopto(
        &server,
        Auth::Password,
        "fallback_prefixes = [\"legacy\", \"unified\"]",
    )
    .await;
    leaver(&t, ANN).await;

    t.drain().await;

    assert_eq!(t.removal("e1").await.outcome.as_deref(), Some("removed"));
    assert!(!directory.has("unified\\ann"));
    let keys: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| match soap::read_envelope(&r.body) {
            Ok(Envelope::Response(op)) => {
                op.child(Some(TEMPURI), "userKey").map(|k| k.text.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec![ANN_KEY, "legacy\\ann", "unified\\ann"]);
    assert_eq!(operations(&server).await.last(), Some(&"DeleteUsers"));

    // Nobody under any prefix: already absent after every key was tried.
    let server = serve(Directory::with(&[])).await;
    let t = panopto(&server, Auth::Password, "fallback_prefixes = [\"unified\"]").await;
    leaver(&t, ANN).await;
    t.drain().await;
    assert_eq!(
        t.removal("e1").await.outcome.as_deref(),
        Some("already_absent")
    );
    assert_eq!(
        operations(&server).await,
        vec!["GetUserByKey", "GetUserByKey"]
    );
}

/// The answer to DeleteUsers is lost after Panopto deleted `MyIdP\ann`; `unified\ann`, which the
/// fallback prefix would find, is another person's account and must survive the retry.
#[tokio::test]
async fn a_lost_delete_answer_is_never_followed_by_a_delete_under_a_fallback_prefix() {
    const OTHER_GUID: &str = "7a1e0c44-5678-5678-5678-0000aaaa1111";
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID), ("unified\\ann", OTHER_GUID)]);
    let server = serve(directory.clone()).await;
    let proxy = crate::lossy::LossyProxy::start(&server.uri(), &["DeleteUsers"], 1).await;
    let t = app(&connector_at(
        "panopto",
        &proxy.uri,
        Auth::Password,
        "fallback_prefixes = [\"unified\"]",
    ))
    .await;
    leaver(&t, ANN).await;

    assert_eq!(t.drain().await.retried, 1, "the lost answer is retried");
    assert_eq!(proxy.lost(), 1);
    assert!(!directory.has(ANN_KEY), "Panopto did delete the account");
    t.advance(Duration::from_secs(60));
    assert_eq!(t.drain().await.done, 1);

    let r = t.removal("e1").await;
    assert_eq!(r.outcome.as_deref(), Some("removed_unconfirmed"));
    assert!(
        directory.has("unified\\ann"),
        "the account under the fallback prefix is untouched"
    );
    // The retry looked up the bound key alone and deleted nothing more.
    assert_eq!(
        operations(&server).await,
        vec!["GetUserByKey", "DeleteUsers", "GetUserByKey"]
    );
    let bound = t.events("removal_bound").await;
    assert_eq!(bound.len(), 1);
    assert_eq!(detail(&bound[0])["remote_id"], ANN_GUID);

    // The report dates the removal at the first attempt's call, and says why.
    let report = offboard::report::build(
        &t.app.store,
        &t.app.config,
        &Default::default(),
        t.clock.now(),
    )
    .await
    .unwrap();
    let row = &report.rows[0];
    assert_eq!(row.outcome.as_deref(), Some("removed_unconfirmed"));
    assert_eq!(row.removed_at_from, Some("lost_answer"));
    assert_eq!(row.removed_at.as_deref(), Some(bound[0].at.as_str()));
    assert!(r.finished_at.as_deref() > Some(bound[0].at.as_str()));
}

#[tokio::test]
async fn a_user_key_with_ampersand_angle_bracket_and_backslash_survives_the_round_trip() {
    let odd = "MyIdP\\o'brien&<x>";
    let directory = Directory::with(&[(odd, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(
        &t,
        "e2,ob@example.org,o'brien&<x>,,O,2026-01-05,Terminated\n",
    )
    .await;

    t.drain().await;

    // The fake found the exact key, and the connector accepted the escaped key in the answer.
    let r = t.removal("e2").await;
    assert_eq!(r.outcome.as_deref(), Some("removed"), "{:?}", r.last_error);
    assert!(!directory.has(odd));
    let requests = server.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&requests[0].body);
    assert!(
        body.contains("<userKey>MyIdP\\o&apos;brien&amp;&lt;x&gt;</userKey>"),
        "{body}"
    );
}

#[tokio::test]
async fn dry_run_looks_the_leaver_up_and_deletes_nothing() {
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    let t = panopto(&server, Auth::Password, "dry_run = true").await;
    leaver(&t, ANN).await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "planned");
    let would = r.last_error.unwrap();
    assert!(
        would.contains(&format!("would delete Panopto user {ANN_GUID}")),
        "{would}"
    );
    assert!(directory.has(ANN_KEY));
    assert_eq!(operations(&server).await, vec!["GetUserByKey"]);
}

#[tokio::test]
async fn the_api_users_own_account_is_never_deleted() {
    let server = serve(Directory::with(&[(SSO_USER, ANN_GUID)])).await;
    let t = panopto(&server, Auth::ApplicationKey, "").await;
    leaver(&t, "e9,jdoe@example.org,JDoe,,J,2026-01-05,Terminated\n").await;

    t.drain().await;

    let r = t.removal("e9").await;
    assert_eq!(r.state, "failed");
    assert!(r.last_error.unwrap().contains("API user's own"));
    assert!(operations(&server).await.is_empty(), "no call was made");
}

#[tokio::test]
async fn an_answer_for_a_different_user_key_is_not_deleted() {
    let mut directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    directory.answer_key = Some("MyIdP\\anna".into());
    let server = serve(directory.clone()).await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(r.state, "failed");
    let error = r.last_error.unwrap();
    assert!(error.contains("differs from the one asked for"), "{error}");
    assert!(
        !error.contains("anna") && !error.contains("ann\\"),
        "{error}"
    );
    assert_eq!(operations(&server).await, vec!["GetUserByKey"]);
}

// ------------------------------------------------------------------------------------------------
// Faults
// ------------------------------------------------------------------------------------------------

fn fault_response(code: &str, string: &str) -> ResponseTemplate {
    xml(500, fault(code, string))
}

#[tokio::test]
async fn an_authorisation_fault_is_retried_once_then_fails_asking_to_check_the_credentials() {
    let server = serve(Directory::with(&[(ANN_KEY, ANN_GUID)])).await;
    let no_access = "The current user does not have access to call this method.";
    answer(&server, GET, fault_response("s:Client", no_access), 10).await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert!(r.last_error.unwrap().contains(no_access));
    let retry = last_retry(&t).await;
    assert_eq!(retry["retry_after_ms"], 300_000, "a long wait: {retry}");
    assert!(retry["retry_in_ms"].as_i64().unwrap() >= 299_000, "{retry}");

    t.advance(Duration::from_secs(301));
    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!((r.state.as_str(), r.attempts), ("failed", 2));
    let error = r.last_error.unwrap();
    assert!(
        error.contains(no_access) && error.contains("check the connector's credentials"),
        "{error}"
    );
    assert!(error.contains("SOAP GetUserByKey: SOAP fault (HTTP 500) s:Client"));
}

#[tokio::test]
async fn an_authentication_fault_that_clears_up_on_the_resend_ends_removed_in_the_same_attempt() {
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    answer(
        &server,
        GET,
        fault_response("s:Client", "Invalid credentials"),
        1,
    )
    .await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(
        (r.state.as_str(), r.outcome.as_deref(), r.attempts),
        ("done", Some("removed"), 1)
    );
    assert_eq!(
        operations(&server).await,
        ["GetUserByKey", "GetUserByKey", "DeleteUsers"]
    );
    assert!(!directory.has(ANN_KEY));
}

#[tokio::test]
async fn an_authentication_fault_that_clears_up_on_the_retry_ends_removed() {
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    // Refused, and refused again when sent once more: the attempt ends, the retry succeeds.
    answer(
        &server,
        GET,
        fault_response("s:Client", "Invalid credentials"),
        2,
    )
    .await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;
    assert_eq!(t.removal("e1").await.state, "pending");
    t.advance(Duration::from_secs(301));
    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(
        (r.state.as_str(), r.outcome.as_deref()),
        ("done", Some("removed"))
    );
    assert!(!directory.has(ANN_KEY));
}

#[tokio::test]
async fn wrong_credentials_fail_after_one_retry() {
    // The fake refuses this password with its own fault.
    let server = serve(Directory::with(&[(ANN_KEY, ANN_GUID)])).await;
    let dir = workspace();
    std::fs::write(dir.path().join("panopto-password"), "not-the-password\n").unwrap();
    let t = TestApp::in_dir(
        dir,
        &config_text(&connector("panopto", &server, Auth::Password, "")),
    )
    .await;
    leaver(&t, ANN).await;

    t.drain().await;
    t.advance(Duration::from_secs(301));
    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!((r.state.as_str(), r.attempts), ("failed", 2));
    let error = r.last_error.unwrap();
    assert!(error.contains("Invalid credentials"), "{error}");
    assert!(!error.contains("not-the-password"));
}

#[tokio::test]
async fn a_delete_fault_saying_the_user_does_not_exist_is_already_absent() {
    let server = serve(Directory::with(&[(ANN_KEY, ANN_GUID)])).await;
    answer(
        &server,
        DELETE,
        fault_response("s:Client", "The user does not exist."),
        1,
    )
    .await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!(
        (r.state.as_str(), r.outcome.as_deref()),
        ("done", Some("already_absent"))
    );
    let calls = t.events("vendor_call").await;
    assert_eq!(calls[1].http_status, Some(500));
    assert!(
        detail(&calls[1])["error"]
            .as_str()
            .unwrap()
            .contains("The user does not exist.")
    );
}

#[tokio::test]
async fn a_lookup_fault_saying_the_user_does_not_exist_is_never_taken_as_already_absent() {
    // GetUserByKey reports a missing leaver with an empty answer, so this fault is about the caller.
    let server = serve(Directory::with(&[])).await;
    answer(
        &server,
        GET,
        fault_response("s:Client", "The user does not exist."),
        10,
    )
    .await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    t.advance(Duration::from_secs(301));
    t.drain().await;
    assert_eq!(t.removal("e1").await.state, "failed");
}

#[tokio::test]
async fn other_server_faults_are_retried_with_the_faults_code_and_message() {
    let directory = Directory::with(&[(ANN_KEY, ANN_GUID)]);
    let server = serve(directory.clone()).await;
    let message = "Object reference not set to an instance of an object.";
    answer(
        &server,
        DELETE,
        fault_response("a:InternalServiceFault", message),
        1,
    )
    .await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    let error = r.last_error.unwrap();
    assert!(
        error.starts_with(
            "SOAP DeleteUsers: SOAP fault (HTTP 500) a:InternalServiceFault: Object reference"
        ),
        "{error}"
    );
    assert_eq!(last_retry(&t).await["retry_after_ms"], Value::Null);

    t.advance(Duration::from_secs(9));
    t.drain().await;
    assert_eq!(t.removal("e1").await.outcome.as_deref(), Some("removed"));
}

#[tokio::test]
async fn a_fault_saying_the_request_could_not_be_read_fails_at_once() {
    let server = serve(Directory::with(&[(ANN_KEY, ANN_GUID)])).await;
    answer(
        &server,
        GET,
        fault_response(
            "a:DeserializationFailed",
            "An error occurred deserializing the message. See server logs for details",
        ),
        1,
    )
    .await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;

    let r = t.removal("e1").await;
    assert_eq!((r.state.as_str(), r.attempts), ("failed", 1));
    assert!(r.last_error.unwrap().contains("could not read the request"));
}

// ------------------------------------------------------------------------------------------------
// HTTP failure classes
// ------------------------------------------------------------------------------------------------

/// Runs one attempt against a server that answers GetUserByKey with `response` once.
async fn one_attempt_with(response: ResponseTemplate) -> (TestApp, MockServer) {
    let server = serve(Directory::with(&[(ANN_KEY, ANN_GUID)])).await;
    answer(&server, GET, response, 1).await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;
    t.drain().await;
    (t, server)
}

#[tokio::test]
async fn a_500_without_a_fault_is_retried_and_the_retry_succeeds() {
    let (t, _server) =
        one_attempt_with(ResponseTemplate::new(500).set_body_string("<html>Server Error</html>"))
            .await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert_eq!(r.last_error.unwrap(), "SOAP GetUserByKey: HTTP 500");

    t.advance(Duration::from_secs(9));
    t.drain().await;
    assert_eq!(t.removal("e1").await.outcome.as_deref(), Some("removed"));
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let (t, _server) = one_attempt_with(
        xml(200, miss_response(Miss::NilResult)).set_delay(Duration::from_secs(5)),
    )
    .await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert_eq!(r.last_error.unwrap(), "SOAP GetUserByKey: timed out");
    let call = &t.events("vendor_call").await[0];
    assert_eq!(call.http_status, None);
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let (t, _server) =
        one_attempt_with(ResponseTemplate::new(429).insert_header("Retry-After", "120")).await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert_eq!(r.last_error.unwrap(), "SOAP GetUserByKey: HTTP 429");
    let retry = last_retry(&t).await;
    assert_eq!(retry["retry_after_ms"], 120_000);
    assert!(retry["retry_in_ms"].as_i64().unwrap() >= 119_000, "{retry}");
}

#[tokio::test]
async fn a_401_is_sent_once_more_retried_once_then_fails_at_the_third_refusal() {
    let server = serve(Directory::with(&[(ANN_KEY, ANN_GUID)])).await;
    answer(&server, GET, ResponseTemplate::new(401), 10).await;
    let t = panopto(&server, Auth::Password, "").await;
    leaver(&t, ANN).await;

    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert!(
        r.last_error
            .unwrap()
            .starts_with("SOAP GetUserByKey: HTTP 401")
    );
    t.advance(Duration::from_secs(301));
    t.drain().await;
    let r = t.removal("e1").await;
    assert_eq!((r.state.as_str(), r.attempts), ("failed", 2));
    // Sent once more at once, retried once, failed at the third refusal.
    assert_eq!(
        operations(&server).await,
        ["GetUserByKey", "GetUserByKey", "GetUserByKey"]
    );
}

#[tokio::test]
async fn a_404_fails_at_once_and_points_at_the_endpoint() {
    let (t, _server) = one_attempt_with(ResponseTemplate::new(404)).await;
    let r = t.removal("e1").await;
    assert_eq!((r.state.as_str(), r.attempts), ("failed", 1));
    let error = r.last_error.unwrap();
    assert!(
        error.starts_with("SOAP GetUserByKey: HTTP 404")
            && error.contains("check host and endpoint"),
        "{error}"
    );
}

#[tokio::test]
async fn a_200_that_is_not_a_soap_envelope_is_retried() {
    let (t, _server) = one_attempt_with(ResponseTemplate::new(200).set_body_raw(
        b"<html><body>Sign in to continue</body></html>".to_vec(),
        "text/html",
    ))
    .await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    let error = r.last_error.unwrap();
    assert!(
        error.starts_with(
            "SOAP GetUserByKey: not a SOAP response (HTTP 200, content type text/html"
        ),
        "{error}"
    );
    assert!(error.contains("Sign in to continue"));
    let call = detail(&t.events("vendor_call").await[0]);
    assert!(
        call["error"]
            .as_str()
            .unwrap()
            .contains("not a SOAP response")
    );
}

#[tokio::test]
async fn malformed_xml_is_retried() {
    let truncated = user_response(ANN_KEY, ANN_GUID);
    let truncated = truncated[..truncated.len() / 2].to_string();
    let (t, _server) = one_attempt_with(xml(200, truncated)).await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    let error = r.last_error.unwrap();
    assert!(
        error.starts_with("SOAP GetUserByKey: malformed SOAP response"),
        "{error}"
    );

    let (t, _server) = one_attempt_with(xml(
        200,
        envelope(&format!(
            r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"><GetUserByKeyResult xmlns:a="{V40}"><a:UserId>not-a-guid</a:UserId></GetUserByKeyResult></GetUserByKeyResponse>"#
        )),
    ))
    .await;
    let r = t.removal("e1").await;
    assert_eq!(r.state, "pending");
    assert!(r.last_error.unwrap().contains("UserId is not a GUID"));
}

// ------------------------------------------------------------------------------------------------
// Secrets and personal data
// ------------------------------------------------------------------------------------------------

/// Runs the binary; returns its stdout and its stderr (the logs).
fn offboard(config: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "test-operator")
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn secrets_never_reach_logs_errors_last_error_or_the_audit_table() {
    // A server that refuses every call and echoes what it knows back in its fault: the password or
    // AuthCode it received (and the application key behind an AuthCode), and the user key asked for.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(|request: &Request| {
            let Ok(Envelope::Response(op)) = soap::read_envelope(&request.body) else {
                return xml(400, String::new());
            };
            let auth = op.child(Some(TEMPURI), "auth").unwrap();
            let member = |name: &str| {
                auth.child(Some(V40), name)
                    .map(|e| e.text.clone())
                    .unwrap_or_default()
            };
            let credential = match member("Password").as_str() {
                "" => format!(
                    "AuthCode={} ({}) does not match {} or {}",
                    member("AuthCode"),
                    member("AuthCode").to_lowercase(),
                    APP_KEY,
                    APP_KEY.to_lowercase()
                ),
                password => format!("Password={password} is wrong"),
            };
            let key = op
                .child(Some(TEMPURI), "userKey")
                .map(|e| e.text.clone())
                .unwrap_or_default();
            fault_response(
                "s:Client",
                &format!("Invalid credentials: {credential} while looking up user {key}"),
            )
        })
        .mount(&server)
        .await;
    let dir = workspace();
    std::fs::write(dir.path().join("feed.csv"), format!("{HEADER}{ANN}")).unwrap();
    let connectors = format!(
        "{}{}",
        connector("panopto_internal", &server, Auth::Password, ""),
        connector("panopto_sso", &server, Auth::ApplicationKey, "")
    );
    let config = config_text(&connectors).replace("level = \"warn\"", "level = \"trace\"");
    let config_path = dir.path().join("offboard.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut output = String::new();
    for args in [
        &["check-config", "--probe"][..],
        &["run", "--once"],
        &["removals", "--format", "json"],
        &["audit", "--format", "json"],
        &["status"],
    ] {
        let (stdout, stderr) = offboard(&config_path, args);
        output.push_str(&stdout);
        output.push_str(&stderr);
    }

    // The calls were made and their failures recorded, so there was something to leak.
    assert!(server.received_requests().await.unwrap().len() >= 4);
    assert!(output.contains("Invalid credentials"), "{output}");
    assert!(output.contains("<redacted>"), "{output}");
    let stored = crate::helpers::stored_everything(&config_path).await;
    assert!(stored.contains("Invalid credentials"));
    for secret in [
        PASSWORD.to_string(),
        escape(PASSWORD).into_owned(),
        "Secr3t".to_string(),
        APP_KEY.to_string(),
        APP_KEY.to_lowercase(),
        AUTH_CODE.to_string(),
        AUTH_CODE.to_lowercase(),
    ] {
        assert!(
            !output.contains(&secret),
            "{secret} in the output:\n{output}"
        );
        assert!(!stored.contains(&secret), "{secret} in the database");
    }
    // The server's message is kept, with the leaver's user key masked.
    let removals: Value =
        serde_json::from_str(&offboard(&config_path, &["removals", "--format", "json"]).0).unwrap();
    for r in removals.as_array().unwrap() {
        let error = r["last_error"].as_str().unwrap();
        assert!(
            error.contains("Invalid credentials") && error.contains("looking up user <person>"),
            "{error}"
        );
        assert!(!error.contains("ann"), "{error}");
    }
    // The audit log holds the employee id, not the leaver's Panopto user key.
    let (audit, _) = offboard(&config_path, &["audit", "--format", "json"]);
    assert!(audit.contains("\"e1\""), "{audit}");
    assert!(
        !audit.contains("MyIdP") && !audit.contains("ann@") && !audit.contains("\\\\ann"),
        "{audit}"
    );
}

#[tokio::test]
async fn probe_looks_up_the_api_user_itself() {
    let server = serve(Directory::with(&[
        (API_USER, ANN_GUID),
        (SSO_USER, ZERO_GUID),
    ]))
    .await;
    let t = app(&format!(
        "{}{}",
        connector("internal", &server, Auth::Password, ""),
        connector("sso", &server, Auth::ApplicationKey, "")
    ))
    .await;

    let ok = t
        .app
        .registry
        .get("internal")
        .unwrap()
        .probe()
        .await
        .unwrap();
    assert!(
        ok.contains("authenticated as svc-offboard") && ok.contains(ANN_GUID),
        "{ok}"
    );
    // The SSO API user's lookup comes back empty: the probe says so.
    let err = t
        .app
        .registry
        .get("sso")
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(
        err.reason.contains("does not find the API user"),
        "{}",
        err.reason
    );
    assert_eq!(
        operations(&server).await,
        vec!["GetUserByKey", "GetUserByKey"]
    );
    let keys: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| match soap::read_envelope(&r.body) {
            Ok(Envelope::Response(op)) => {
                op.child(Some(TEMPURI), "userKey").map(|k| k.text.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec![API_USER, SSO_USER]);
}
