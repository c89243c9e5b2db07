//! No secret leaks, anywhere: every connector kind is configured with its own canary secrets (exec,
//! scim with a bearer token and with Anaplan's login, panopto with a password and with an
//! application key, echo360, openconext), plus the feed's basic auth, the push token and a console
//! login token. Fake
//! vendors (wiremock) remove one leaver and refuse the other, and their refusals repeat every
//! credential they received, the way a careless error page does. The real binary runs with text
//! and with JSON logs at debug level, receives pushes, serves `/metrics` and every console page (with the
//! audit downloads), and every command's output
//! is read in every format. None of them, and none of the bytes of the database, may hold a canary
//! in any form a secret travels in: as written, upper- or lower-cased, percent-encoded, as the
//! Base64 of a Basic `user:password` pair, as an issued token, or as Panopto's AuthCode derived
//! from the application key.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use offboard::connectors::panopto::soap::{self, Envelope};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::vendor_http::write_secret;

// The canaries. Each appears exactly once in the configuration (a file or a variable).
const SCIM_TOKEN: &str = "canary-scim-bearer-1f6e0a27";
const ANAPLAN_LOGIN: &str = "canary.anaplan.login@example.net";
const ANAPLAN_PASSWORD: &str = "canary-anaplan-password-7c2d";
const ANAPLAN_ISSUED: &str = "canary-anaplan-issued-token-93be";
const PANOPTO_PASSWORD: &str = "canary-panopto-password-4a1b";
const PANOPTO_APP_KEY: &str = "c4a7a7e2-0b1d-4c55-9d0e-ca7a7c0ffee1";
const ECHO_CLIENT_ID: &str = "canary-echo-client-id-55d0";
const ECHO_CLIENT_SECRET: &str = "canary-echo-client-secret-e81c";
const ECHO_ISSUED: &str = "canary-echo-access-token-0b9f";
const OC_USER: &str = "canary-oc-user-2d4e";
const OC_PASSWORD: &str = "canary-oc-password-b7a3";
const FEED_USER: &str = "feed-reader";
const FEED_PASSWORD: &str = "canary-feed-password-6f0c";
const PUSH_TOKEN: &str = "canary-push-token-a91e3f0c";
const CONSOLE_TOKEN: &str = "canary-console-token-7d20b9e4";

/// Secrets given as environment variables: the daemon's environment holds them (an exec program
/// must not see them).
const ENV: &[(&str, &str)] = &[
    ("CANARY_ANAPLAN_LOGIN", ANAPLAN_LOGIN),
    ("CANARY_PANOPTO_APP_KEY", PANOPTO_APP_KEY),
    ("CANARY_ECHO_SECRET", ECHO_CLIENT_SECRET),
    ("CANARY_FEED_PASSWORD", FEED_PASSWORD),
    ("CANARY_PUSH_TOKEN", PUSH_TOKEN),
];

const PANOPTO_HOST: &str = "canary.hosted.panopto.com";
const PANOPTO_SSO_USER: &str = "MyIdP\\svc-offboard";
const PANOPTO_SVC: &str = "/Panopto/PublicAPI/4.6/UserManagement.svc";
const TEMPURI: &str = "http://tempuri.org/";
const V40: &str = "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40";

/// Panopto's AuthCode, computed here from its published definition (not with the daemon's code;
/// the encoders here are the crates', independent of the daemon's use of them).
fn panopto_auth_code() -> String {
    let payload = format!(
        "{PANOPTO_SSO_USER}@{}|{}",
        PANOPTO_HOST.to_lowercase(),
        PANOPTO_APP_KEY.to_lowercase()
    );
    hex::encode_upper(Sha1::digest(payload.as_bytes()))
}

/// The Base64 of a Basic pair as it travels (RFC 7617, padded).
fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// Everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Every form in which a canary must never appear.
fn forbidden() -> Vec<String> {
    let mut secrets: Vec<String> = [
        SCIM_TOKEN,
        ANAPLAN_LOGIN,
        ANAPLAN_PASSWORD,
        ANAPLAN_ISSUED,
        PANOPTO_PASSWORD,
        PANOPTO_APP_KEY,
        ECHO_CLIENT_ID,
        ECHO_CLIENT_SECRET,
        ECHO_ISSUED,
        OC_USER,
        OC_PASSWORD,
        FEED_PASSWORD,
        PUSH_TOKEN,
        CONSOLE_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    secrets.push(panopto_auth_code());
    // Basic credentials as they travel.
    for (user, password) in [
        (ANAPLAN_LOGIN, ANAPLAN_PASSWORD),
        (OC_USER, OC_PASSWORD),
        (FEED_USER, FEED_PASSWORD),
    ] {
        secrets.push(base64(format!("{user}:{password}").as_bytes()));
    }
    let mut forms = Vec::new();
    for secret in secrets {
        forms.push(secret.to_lowercase());
        forms.push(secret.to_uppercase());
        forms.push(percent_encode(&secret));
        forms.push(secret);
    }
    forms.sort();
    forms.dedup();
    forms
}

/// What a careless vendor says when it refuses a request: every credential it received, first.
fn echo(request: &Request) -> String {
    let mut received = format!(
        "{:?} {}",
        request.headers.get("authorization"),
        String::from_utf8_lossy(&request.body)
    );
    if let Some(auth) = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        received.push_str(auth);
    }
    let mut found: Vec<String> = forbidden()
        .into_iter()
        .filter(|form| received.contains(form.as_str()))
        .collect();
    // A Basic header, decoded.
    for (user, password) in [
        (ANAPLAN_LOGIN, ANAPLAN_PASSWORD),
        (OC_USER, OC_PASSWORD),
        (FEED_USER, FEED_PASSWORD),
    ] {
        if received.contains(&base64(format!("{user}:{password}").as_bytes())) {
            found.push(format!("user {user} password {password}"));
        }
    }
    format!(
        "credentials received: {}; request {}",
        found.join(", "),
        received
    )
}

fn is_bad(text: &str) -> bool {
    text.contains("bad")
}

// ------------------------------------------------------------------------------------------------
// Fake vendors
// ------------------------------------------------------------------------------------------------

const SCIM_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SCIM_LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// SCIM for the bearer and the Anaplan flavours, and Anaplan's token service.
async fn fake_scim() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/token/authenticate"))
        .respond_with(|_: &Request| {
            let expires = chrono::Utc::now().timestamp_millis() + 30 * 60 * 1000;
            ResponseTemplate::new(200).set_body_json(json!({
                "status": "SUCCESS",
                "statusMessage": "Login successful",
                "tokenInfo": {"tokenId": "t-1", "tokenValue": ANAPLAN_ISSUED, "expiresAt": expires, "refreshTokenId": "r-1"}
            }))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/refuse/token/authenticate"))
        .respond_with(|request: &Request| {
            ResponseTemplate::new(401).set_body_json(json!({
                "status": "FAILURE_BAD_CREDENTIAL",
                "statusMessage": echo(request),
            }))
        })
        .mount(&server)
        .await;
    Mock::given(path_regex("^/scim/Users"))
        .respond_with(|request: &Request| {
            let scim = |status: u16, body: Value| {
                ResponseTemplate::new(status)
                    .set_body_raw(body.to_string().into_bytes(), "application/scim+json")
            };
            let query = request.url.query().unwrap_or_default().to_string();
            let url = request.url.path().to_string();
            if is_bad(&query) || is_bad(&url) {
                return scim(
                    500,
                    json!({"schemas": [SCIM_ERROR], "status": "500", "detail": echo(request)}),
                );
            }
            match request.method.as_str() {
                "GET" if query.contains("filter") => {
                    let name = if query.contains("ok2") {
                        "ok2@example.org"
                    } else if query.contains("okpush") {
                        "okpush@example.org"
                    } else {
                        "ok@example.org"
                    };
                    scim(
                        200,
                        json!({"schemas": [SCIM_LIST], "totalResults": 1, "Resources": [
                            {"schemas": [SCIM_USER], "id": format!("u-{}", name.split('@').next().unwrap()), "userName": name, "active": true}
                        ]}),
                    )
                }
                "GET" => scim(
                    200,
                    json!({"schemas": [SCIM_LIST], "totalResults": 0, "Resources": []}),
                ),
                _ => ResponseTemplate::new(204),
            }
        })
        .mount(&server)
        .await;
    server
}

fn soap_xml(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{body}</s:Body></s:Envelope>"#
        )
        .into_bytes(),
        "text/xml; charset=utf-8",
    )
}

/// Panopto's UserManagement service: finds and deletes ok users; refuses bad ones with a fault
/// that repeats the AuthenticationInfo it received.
async fn fake_panopto() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PANOPTO_SVC))
        .respond_with(|request: &Request| {
            let Ok(Envelope::Response(op)) = soap::read_envelope(&request.body) else {
                return soap_xml(400, "");
            };
            let key = op
                .child(Some(TEMPURI), "userKey")
                .map(|e| e.text.clone())
                .unwrap_or_default();
            if is_bad(&key) {
                let message = quick_xml::escape::escape(echo(request)).into_owned();
                return soap_xml(
                    500,
                    &format!(
                        r#"<s:Fault><faultcode>s:Client</faultcode><faultstring xml:lang="en-US">{message}</faultstring></s:Fault>"#
                    ),
                );
            }
            if op.name == "DeleteUsers" {
                return soap_xml(200, r#"<DeleteUsersResponse xmlns="http://tempuri.org/"/>"#);
            }
            let key = quick_xml::escape::escape(key).into_owned();
            soap_xml(
                200,
                &format!(
                    r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"><GetUserByKeyResult xmlns:a="{V40}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><a:Email i:nil="true"/><a:EmailSessionNotifications>false</a:EmailSessionNotifications><a:FirstName i:nil="true"/><a:GroupMemberships i:nil="true"/><a:LastName i:nil="true"/><a:SystemRole>Admin</a:SystemRole><a:UserBio i:nil="true"/><a:UserId>3d6d15b1-1234-1234-1234-12345f44224d</a:UserId><a:UserKey>{key}</a:UserKey><a:UserSettingsUrl i:nil="true"/></GetUserByKeyResult></GetUserByKeyResponse>"#
                ),
            )
        })
        .mount(&server)
        .await;
    server
}

/// EchoVideo: the token service, user lookup by email and deletion; a second token path refuses.
async fn fake_echo360() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "access_token": ECHO_ISSUED, "expires_in": 3600
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/refuse"))
        .respond_with(|request: &Request| {
            ResponseTemplate::new(401).set_body_json(json!({
                "error": "invalid_client", "error_description": echo(request)
            }))
        })
        .mount(&server)
        .await;
    Mock::given(path_regex("^/public/api/v1/users"))
        .respond_with(|request: &Request| {
            let url = request.url.path().to_string();
            if is_bad(&url) {
                return ResponseTemplate::new(500).set_body_json(json!({"message": echo(request)}));
            }
            match request.method.as_str() {
                "GET" if url.ends_with("/users") => {
                    ResponseTemplate::new(200).set_body_json(json!({"data": [], "next": null}))
                }
                "GET" => {
                    let email = url.rsplit('/').next().unwrap().replace("%40", "@");
                    ResponseTemplate::new(200).set_body_json(json!({
                        "id": format!("u-{}", email.split('@').next().unwrap()),
                        "email": email, "firstName": "Ok", "lastName": "Leaver", "roles": []
                    }))
                }
                _ => ResponseTemplate::new(200).set_body_json(json!("ok")),
            }
        })
        .mount(&server)
        .await;
    server
}

/// An OpenConext deprovision API.
async fn fake_openconext() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "UP"})))
        .mount(&server)
        .await;
    // The probe's authenticated read is refused, repeating the Basic credentials.
    Mock::given(method("GET"))
        .and(path_regex("^/api/deprovision/"))
        .respond_with(|request: &Request| {
            ResponseTemplate::new(401).set_body_json(json!({"message": echo(request)}))
        })
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/api/deprovision/"))
        .respond_with(|request: &Request| {
            if is_bad(request.url.path()) {
                return ResponseTemplate::new(500).set_body_json(json!({
                    "status": "FAILED", "name": "EngineBlock", "data": [], "message": echo(request)
                }));
            }
            ResponseTemplate::new(200).set_body_json(json!({
                "status": "OK", "name": "EngineBlock",
                "data": [{"name": "user", "value": {"collab_person_id": "x"}}]
            }))
        })
        .mount(&server)
        .await;
    server
}

/// The HR feed over HTTP with basic auth; its first answer is a refusal that repeats the
/// credentials, later ones serve `feed.csv` from the workspace.
async fn fake_feed(dir: &Path) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/hr/leavers.csv"))
        .respond_with(|request: &Request| ResponseTemplate::new(401).set_body_string(echo(request)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let feed = dir.join("feed.csv");
    let expected = format!(
        "Basic {}",
        base64(format!("{FEED_USER}:{FEED_PASSWORD}").as_bytes())
    );
    Mock::given(method("GET"))
        .and(path("/hr/leavers.csv"))
        .respond_with(move |request: &Request| {
            let auth = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if auth != Some(expected.as_str()) {
                return ResponseTemplate::new(403).set_body_string(echo(request));
            }
            ResponseTemplate::new(200)
                .set_body_raw(std::fs::read(&feed).unwrap(), "text/csv; charset=utf-8")
        })
        .mount(&server)
        .await;
    server
}

// ------------------------------------------------------------------------------------------------
// The workspace
// ------------------------------------------------------------------------------------------------

struct Fakes {
    /// The `database.url` of every run of the test.
    db: String,
    scim: MockServer,
    panopto: MockServer,
    echo: MockServer,
    openconext: MockServer,
    feed: MockServer,
}

const CONNECTORS: &[&str] = &[
    "ldap",
    "wiki",
    "anaplan",
    "anaplan_refused",
    "panopto_internal",
    "panopto_sso",
    "echo",
    "echo_refused",
    "engineblock",
];

fn config(fakes: &Fakes, log_format: &str) -> String {
    let scim = fakes.scim.uri();
    let panopto = fakes.panopto.uri();
    let echo = fakes.echo.uri();
    let oc = fakes.openconext.uri();
    let feed = fakes.feed.uri();
    let db = &fakes.db;
    format!(
        r#"[database]
url = "{db}"

[feed]
kind = "csv"
url = "{feed}/hr/leavers.csv"
auth = {{ kind = "basic", username = "{FEED_USER}", password_env = "CANARY_FEED_PASSWORD" }}
schedule = "*/2 * * * * *"

[workers]
concurrency = 8
lease = "10s"
idle_poll = "1s"
shutdown_grace = "5s"

[retry]
initial = "1s"
max = "2s"
max_attempts = 3

[safety]
max_terminations_per_batch = 100
max_terminations_percent = 100.0

[http]
listen = "127.0.0.1:0"
push_token_env = "CANARY_PUSH_TOKEN"

[console]
listen = "127.0.0.1:0"
auth = "tokens"
tokens_file = "console-tokens"

[log]
format = "{log_format}"
level = "debug"

[[connector]]
name = "ldap"
kind = "exec"
account = "{{email}}"
program = "remove.sh"
args = ["{{account}}"]
timeout = "5s"

[[connector]]
name = "wiki"
kind = "scim"
account = "{{email}}"
base_url = "{scim}/scim"
actions = ["delete"]
rate = "100/s"
timeout = "5s"
auth = {{ kind = "bearer", token_file = "scim-token" }}

[[connector]]
name = "anaplan"
kind = "scim"
account = "{{email}}"
base_url = "{scim}/scim"
actions = ["deactivate"]
rate = "100/s"
timeout = "5s"
auth = {{ kind = "anaplan", username_env = "CANARY_ANAPLAN_LOGIN", password_file = "anaplan-password", auth_url = "{scim}/auth" }}

[[connector]]
name = "anaplan_refused"
kind = "scim"
account = "{{email}}"
base_url = "{scim}/scim"
rate = "100/s"
timeout = "5s"
auth = {{ kind = "anaplan", username_env = "CANARY_ANAPLAN_LOGIN", password_file = "anaplan-password", auth_url = "{scim}/refuse" }}

[[connector]]
name = "panopto_internal"
kind = "panopto"
account = "MyIdP\\{{username}}"
host = "{PANOPTO_HOST}"
endpoint = "{panopto}{PANOPTO_SVC}"
api_user_key = "svc-internal"
password_file = "panopto-password"
rate = "100/s"
timeout = "5s"

[[connector]]
name = "panopto_sso"
kind = "panopto"
account = "MyIdP\\{{username}}"
host = "{PANOPTO_HOST}"
endpoint = "{panopto}{PANOPTO_SVC}"
api_user_key = "MyIdP\\svc-offboard"
application_key_env = "CANARY_PANOPTO_APP_KEY"
rate = "100/s"
timeout = "5s"

[[connector]]
name = "echo"
kind = "echo360"
account = "{{email}}"
base_url = "{echo}"
client_id_file = "echo-client-id"
client_secret_env = "CANARY_ECHO_SECRET"
action = "delete"
rate = "100/s"
timeout = "5s"

[[connector]]
name = "echo_refused"
kind = "echo360"
account = "{{email}}"
base_url = "{echo}"
client_id_file = "echo-client-id"
client_secret_env = "CANARY_ECHO_SECRET"
action = "delete"
rate = "100/s"
timeout = "5s"
[connector.paths]
token = "/oauth2/refuse"

[[connector]]
name = "engineblock"
kind = "openconext"
account = "urn:collab:person:example.org:{{username}}"
base_url = "{oc}/api"
username_file = "oc-user"
password_file = "oc-password"
rate = "100/s"
timeout = "5s"
"#
    )
}

/// The exec program: removes ok leavers, fails for bad ones, printing its arguments and its whole
/// environment to stderr (which ends up in the reason).
const EXEC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in\n  *bad*) echo \"cannot remove $1; environment:\" >&2; env >&2; exit 1;;\nesac\nexit 0\n";

fn leaver(id: &str, name: &str) -> String {
    format!("{id},{name}@example.org,{name},,{name},2026-01-05,Terminated\n")
}

fn offboard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.join("offboard.toml"))
        .args(args)
        .envs(ENV.iter().copied())
        .env("USER", "test-operator")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `offboard run` until every removal of `employees` was tried, pushing `pushed` (and a push
/// with a wrong token) once it listens, and reading `/metrics`. Returns the daemon's log and the
/// metrics text.
async fn run_daemon(dir: &Path, employees: &[&str], pushed: &str) -> (String, String) {
    let log = dir.join(format!("daemon-{pushed}.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.join("offboard.toml"))
        .arg("run")
        .envs(ENV.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("127.0.0.1:") {
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            break rest[..end].to_string();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited:\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "the daemon never listened:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = reqwest::Client::new();
    let push = |token: &str| {
        http.post(format!("http://{address}/v1/terminations"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(
                json!({"employee_id": format!("E-{pushed}"), "email": format!("{pushed}@example.org"),
                       "username": pushed, "effective_date": "2026-01-05", "status": "terminated"})
                .to_string(),
            )
            .send()
    };
    let refused = push("not-the-push-token-0000").await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let accepted = push(PUSH_TOKEN).await.unwrap();
    assert_eq!(accepted.status().as_u16(), 202);

    // Every removal of these leavers (and the pushed one) has been tried.
    let pool = crate::helpers::database_of(&dir.join("offboard.toml"))
        .await
        .unwrap();
    let mut wanted: Vec<String> = employees.iter().map(|e| e.to_string()).collect();
    wanted.push(format!("E-{pushed}"));
    loop {
        let tried_by: Vec<String> = on_db!(pool, |db| {
            sqlx::query_scalar(
            "SELECT t.employee_id FROM removals r JOIN terminations t ON t.id = r.termination_id \
             WHERE r.state = 'done' OR r.last_error IS NOT NULL",
        )
        .fetch_all(db)
        .await
        .unwrap()
        });
        let tried = tried_by.iter().filter(|e| wanted.contains(e)).count();
        if tried == wanted.len() * CONNECTORS.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{tried} of {} removals tried; log:\n{}",
            wanted.len() * CONNECTORS.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pool.close().await;
    let metrics = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("offboard_"), "{metrics}");
    let console = console_pages(&std::fs::read_to_string(&log).unwrap()).await;

    let status = crate::helpers::sigterm_and_wait(&mut child, Duration::from_secs(15))
        .await
        .expect("no exit within 15 s of SIGTERM");
    assert!(status.success(), "{status}");
    (
        std::fs::read_to_string(&log).unwrap(),
        format!("{metrics}\n{console}"),
    )
}

/// Every console page (and the audit downloads), logged in with the console's token: the address is
/// the one the log line "The console listens." names.
async fn console_pages(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("console listens"))
        .expect("the console's address is logged");
    let at = line.find("127.0.0.1:").unwrap();
    let rest = &line[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    let site = format!("http://{}", &rest[..end]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http.get(format!("{site}/login")).send().await.unwrap();
    let cookie = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| {
                v.to_str()
                    .ok()?
                    .split(';')
                    .next()?
                    .strip_prefix(&format!("{name}="))
                    .map(str::to_string)
            })
            .unwrap()
    };
    let csrf = cookie(&login, "offboard_csrf");
    let session = http
        .post(format!("{site}/login"))
        .header("cookie", format!("offboard_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&token={CONSOLE_TOKEN}"))
        .send()
        .await
        .unwrap();
    let session = cookie(&session, "offboard_session");
    let mut pages = String::new();
    for path in [
        "/",
        "/batches/1",
        "/removals/1",
        "/people/E1",
        "/audit",
        "/audit?format=csv",
        "/audit?format=json",
        "/revoke?since=2026-01-01",
        "/rejects",
    ] {
        let page = http
            .get(format!("{site}{path}"))
            .header(
                "cookie",
                format!("offboard_csrf={csrf}; offboard_session={session}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200, "{path}");
        pages.push_str(&page.text().await.unwrap());
    }
    assert!(
        pages.contains("Overview") && pages.contains("vendor_call"),
        "{pages}"
    );
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_secret_reaches_logs_errors_outputs_metrics_or_the_database() {
    assert_eq!(
        base64(b"deprov:oc-password-91f2"),
        "ZGVwcm92Om9jLXBhc3N3b3JkLTkxZjI=",
        "the test's own Base64"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::helpers::write_script(d, "remove.sh", EXEC_SCRIPT);
    write_secret(d, "scim-token", SCIM_TOKEN);
    write_secret(
        d,
        "console-tokens",
        &format!("auditor approver {CONSOLE_TOKEN}\n"),
    );
    write_secret(d, "anaplan-password", ANAPLAN_PASSWORD);
    write_secret(d, "panopto-password", PANOPTO_PASSWORD);
    write_secret(d, "echo-client-id", ECHO_CLIENT_ID);
    write_secret(d, "oc-user", OC_USER);
    write_secret(d, "oc-password", OC_PASSWORD);
    std::fs::write(
        d.join("feed.csv"),
        format!(
            "{}{}{}",
            crate::helpers::HEADER,
            leaver("E1", "ok"),
            leaver("E2", "bad")
        ),
    )
    .unwrap();
    let fakes = Fakes {
        scim: fake_scim().await,
        panopto: fake_panopto().await,
        echo: fake_echo360().await,
        openconext: fake_openconext().await,
        feed: fake_feed(d).await,
        db: crate::helpers::database_url(),
    };
    let mut outputs: Vec<(String, String)> = Vec::new();

    // Text logs: the probes, a run that sees a refused feed poll, then the leavers and a push.
    std::fs::write(d.join("offboard.toml"), config(&fakes, "text")).unwrap();
    let probe = offboard(d, &["check-config", "--probe"]);
    outputs.push(("check-config --probe".into(), text(&probe)));
    let (log, metrics) = run_daemon(d, &["E1", "E2"], "okpush").await;
    outputs.push(("run (text log)".into(), log));
    outputs.push(("/metrics (first run)".into(), metrics));

    // JSON logs: two more leavers and another push.
    std::fs::write(d.join("offboard.toml"), config(&fakes, "json")).unwrap();
    std::fs::write(
        d.join("feed.csv"),
        format!(
            "{}{}{}{}{}",
            crate::helpers::HEADER,
            leaver("E1", "ok"),
            leaver("E2", "bad"),
            leaver("E3", "ok2"),
            leaver("E4", "bad2")
        ),
    )
    .unwrap();
    let (log, metrics) = run_daemon(d, &["E3", "E4"], "badpush").await;
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "JSON lines only"
    );
    outputs.push(("run (JSON log)".into(), log));
    outputs.push(("/metrics (second run)".into(), metrics));

    // A run --once in both summary formats, and every reading command in every format it has.
    for args in [
        &["run", "--once"][..],
        &["run", "--once", "--format", "json"],
        &["plan", "--resolve"],
        &["plan", "--resolve", "--format", "json"],
        &["status"],
        &["status", "--format", "json"],
        &["removals"],
        &["removals", "--format", "json"],
        &["removals", "--format", "csv"],
        &["report"],
        &["report", "--format", "json"],
        &["report", "--format", "csv"],
        &["audit"],
        &["audit", "--format", "json"],
        &["audit", "--format", "csv"],
        &["audit", "verify"],
    ] {
        outputs.push((args.join(" "), text(&offboard(d, args))));
    }

    // The failures happened, reached the outputs, and the vendors' echoes were masked.
    let removals: Value =
        serde_json::from_slice(&offboard(d, &["removals", "--format", "json"]).stdout).unwrap();
    let removals = removals.as_array().unwrap();
    assert_eq!(removals.len(), 6 * CONNECTORS.len());
    for r in removals {
        let (employee, connector) = (
            r["employee_id"]
                .as_str()
                .or(r["employee"].as_str())
                .unwrap_or_default(),
            r["connector"].as_str().unwrap(),
        );
        let bad = matches!(employee, "E2" | "E4" | "E-badpush") || connector.ends_with("_refused");
        let error = r["last_error"].as_str().unwrap_or_default();
        if bad {
            assert_ne!(r["state"], "done", "{r}");
            assert!(!error.is_empty(), "{r}");
        } else {
            assert_eq!(r["state"], "done", "{r}");
        }
    }
    let errors: String = removals
        .iter()
        .filter_map(|r| r["last_error"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(errors.contains("credentials received"), "{errors}");
    assert!(
        errors.contains("<redacted>"),
        "the vendors' echoes were masked, not dropped: {errors}"
    );
    for connector in [
        "wiki",
        "anaplan_refused",
        "panopto_sso",
        "echo",
        "engineblock",
    ] {
        assert!(
            removals.iter().any(|r| r["connector"] == connector
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("credentials received: <redacted>"))),
            "{connector}: a vendor's echo of the credentials, masked"
        );
    }
    assert!(
        errors.contains("OFFBOARD_ACCOUNT"),
        "the exec environment was printed: {errors}"
    );
    let (_, run_log) = &outputs[1];
    assert!(
        run_log.contains("HTTP 401"),
        "the refused feed poll is logged: {run_log}"
    );

    // The database, its WAL and everything printed: no canary in any form.
    outputs.push((
        "the database".into(),
        crate::helpers::stored_everything(&d.join("offboard.toml")).await,
    ));
    let forms = forbidden();
    let mut leaks = Vec::new();
    for (label, output) in &outputs {
        for form in &forms {
            if let Some(at) = output.find(form.as_str()) {
                let start = output[..at]
                    .char_indices()
                    .rev()
                    .nth(150)
                    .map_or(0, |(i, _)| i);
                let end = (at + form.len() + 150).min(output.len());
                let end = (end..=output.len())
                    .find(|i| output.is_char_boundary(*i))
                    .unwrap_or(output.len());
                leaks.push(format!("{form} in {label}: …{}…", &output[start..end]));
            }
        }
    }
    let count = leaks.len();
    leaks.truncate(40);
    assert!(
        count == 0,
        "{count} leaks, the first:\n{}",
        leaks.join("\n\n")
    );
}

#[test]
fn a_secret_pasted_into_the_config_is_refused_without_being_repeated() {
    let dir = tempfile::tempdir().unwrap();
    // The secrets themselves where a _file or _env key belongs, and one where a number belongs.
    let config = format!(
        r#"[feed]
kind = "csv"
url = "https://hr.example.org/leavers.csv"
auth = {{ kind = "basic", username = "{FEED_USER}", password = "{FEED_PASSWORD}" }}
schedule = "0 0 * * * *"

[http]
push_token = "{PUSH_TOKEN}"

[workers]
concurrency = "{ECHO_CLIENT_SECRET}"

[[connector]]
name = "wiki"
kind = "scim"
base_url = "https://scim.example.org/scim/v2"
auth = {{ kind = "bearer", token = "{SCIM_TOKEN}" }}

[[connector]]
name = "engineblock"
kind = "openconext"
account = "urn:collab:person:example.org:{{username}}"
base_url = "https://engine-api.example.org/"
username = "{OC_USER}"
password = "{OC_PASSWORD}"
"#
    );
    std::fs::write(dir.path().join("offboard.toml"), config).unwrap();

    let mut output = String::new();
    for args in [&["check-config"][..], &["run", "--once"]] {
        let out = offboard(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        output.push_str(&text(&out));
    }

    for key in [
        "feed.auth.password",
        "http.push_token",
        "workers.concurrency",
        "connector.wiki.auth.token",
        "connector.engineblock.password",
    ] {
        assert!(output.contains(key), "{key} is named: {output}");
    }
    for form in forbidden() {
        assert!(!output.contains(&form), "{form} repeated:\n{output}");
    }
}
