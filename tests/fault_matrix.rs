//! The vendor fault matrix (docs/fault-matrix.md): every HTTP connector against every fault class,
//! one attempt each, asserting the classification the worker acts on (retry and after how long,
//! already absent, or permanent) and that the reason names what went wrong; then the exec
//! connector's equivalents. Each cell is one `Case` in a table; a test per fault class runs its row.
//!
//! The fault is put on the connector's first vendor call after authentication (the lookup; for
//! openconext the DELETE, which is its lookup); for scim with Anaplan's auth on the login itself. Faults below HTTP come from a raw TCP listener on
//! 127.0.0.1 (a reset after the headers) or from a port with nothing listening.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use offboard::clock::Clock;
use offboard::config::Config;
use offboard::connectors::classify::CredentialResend;
use offboard::connectors::{
    CallLog, Connector, ConnectorError, ErrorClass, Registry, RemovalOutcome, Resolution, Target,
};
use offboard::domain::Person;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{config_text, write_script};
use crate::vendor_http::write_secret;

// ------------------------------------------------------------------------------------------------
// Fault classes and expected classifications
// ------------------------------------------------------------------------------------------------

/// A fault the vendor (or the network) can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing listens on the port.
    ConnectionRefused,
    /// The status line and headers arrive, then the connection is reset.
    ResetMidResponse,
    /// No answer within the connector's timeout.
    Timeout,
    Http500,
    Http502,
    Http502RetryAfter,
    Http503,
    Http503RetryAfter,
    Http429Seconds,
    Http429Date,
    Http401,
    Http403,
    Http404,
    /// HTTP 200 carrying the vendor's own error shape.
    VendorError200,
    /// HTTP 200 with the right content type and a body cut off or not the vendor's format.
    MalformedBody,
    /// HTTP 200 with an HTML page (a proxy's or a login page), `text/html`.
    WrongContentType,
}

/// Retry-After used by the faults that send one, in seconds.
const RETRY_AFTER_SECS: u64 = 37;
/// How far ahead the HTTP-date Retry-After points.
const RETRY_AT_SECS: u64 = 120;
/// Message texts the vendor sends, which the reason must name.
const VENDOR_SAYS: &str = "vendor says: maintenance window";

/// What one attempt must end in.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Retryable, with exactly this Retry-After floor (None: the worker's backoff alone).
    Retry(Option<Duration>, &'static str),
    /// Retryable with an HTTP-date Retry-After: a floor close to [`RETRY_AT_SECS`].
    RetryAtDate(&'static str),
    /// Done: the vendor has no such account.
    Absent,
    /// Permanent, with a reason containing the text.
    Permanent(&'static str),
    /// A refused credential (the worker retries it once after five minutes, then fails it), with a
    /// reason containing the text.
    Refused(&'static str),
}

const fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

/// The outcome of one attempt as the worker sees it.
#[derive(Debug)]
enum Attempt {
    Done(RemovalOutcome),
    Failed(ConnectorError),
}

/// resolve → remove, as the worker runs one attempt (the first of removal 1, so a refused
/// credential is sent once more before the attempt ends).
async fn attempt(connector: &dyn Connector, account: &str) -> Attempt {
    let target = Target {
        removal_id: 1,
        attempt: 1,
        account: account.to_string(),
        person: Person {
            employee_id: "e1".into(),
            email: Some("ann@example.org".into()),
            username: Some("ann".into()),
            ..Person::default()
        },
        bound: None,
        stage: String::new(),
        calls: CallLog::default(),
    };
    let mut resend = CredentialResend::for_attempt(0);
    let resolution = match resend.run(|| connector.resolve(&target)).await {
        Ok(r) => r,
        Err(e) => return Attempt::Failed(e),
    };
    match resolution {
        Resolution::NotFound => Attempt::Done(RemovalOutcome::AlreadyAbsent),
        Resolution::Ambiguous(n) => Attempt::Failed(ConnectorError::new(
            offboard::connectors::Fault::WrongAccount,
            format!("{n} accounts match, needs a human"),
        )),
        Resolution::Found(account) => {
            match resend.run(|| connector.remove(&target, &account)).await {
                Ok(outcome) => Attempt::Done(outcome),
                Err(e) => Attempt::Failed(e),
            }
        }
    }
}

fn check(cell: &str, got: &Attempt, expect: Expect) {
    match (expect, got) {
        (Expect::Absent, Attempt::Done(RemovalOutcome::AlreadyAbsent)) => {}
        (Expect::Permanent(says), Attempt::Failed(e)) => {
            assert_eq!(e.class, ErrorClass::Permanent, "{cell}: {e:?}");
            assert!(
                e.reason.contains(says),
                "{cell}: {:?} lacks {says:?}",
                e.reason
            );
        }
        (Expect::Refused(says), Attempt::Failed(e)) => {
            assert_eq!(e.class, ErrorClass::CredentialRefused, "{cell}: {e:?}");
            assert!(
                e.reason.contains(says),
                "{cell}: {:?} lacks {says:?}",
                e.reason
            );
        }
        (Expect::Retry(after, says), Attempt::Failed(e)) => {
            assert_eq!(e.class, ErrorClass::Retryable { after }, "{cell}: {e:?}");
            assert!(
                e.reason.contains(says),
                "{cell}: {:?} lacks {says:?}",
                e.reason
            );
        }
        (Expect::RetryAtDate(says), Attempt::Failed(e)) => {
            let ErrorClass::Retryable { after: Some(after) } = e.class else {
                panic!("{cell}: expected a retry with a floor, got {e:?}");
            };
            // The date has whole seconds and the test takes a moment: a generous bound.
            let low = Duration::from_secs(RETRY_AT_SECS - 30);
            let high = Duration::from_secs(RETRY_AT_SECS + 1);
            assert!(low <= after && after <= high, "{cell}: floor {after:?}");
            assert!(
                e.reason.contains(says),
                "{cell}: {:?} lacks {says:?}",
                e.reason
            );
        }
        (expect, got) => panic!("{cell}: expected {expect:?}, got {got:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// The connectors under test
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Scim,
    /// scim with Anaplan's auth: the fault is on the login.
    Anaplan,
    Panopto,
    Echo360,
    Openconext,
}

const VENDORS: [Vendor; 5] = [
    Vendor::Scim,
    Vendor::Anaplan,
    Vendor::Panopto,
    Vendor::Echo360,
    Vendor::Openconext,
];

const SOAP_SVC: &str = "/Panopto/PublicAPI/4.6/UserManagement.svc";
const ECHO_TOKEN_PATH: &str = "/oauth2/access_token";
const ECHO_TOKEN: &str = r#"{"token_type":"Bearer","access_token":"tok-1","expires_in":3600}"#;

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::Scim => "scim",
            Vendor::Anaplan => "anaplan",
            Vendor::Panopto => "panopto",
            Vendor::Echo360 => "echo360",
            Vendor::Openconext => "openconext",
        }
    }

    /// The account key the connector's template renders for Ann.
    fn account(self) -> &'static str {
        match self {
            Vendor::Scim | Vendor::Anaplan | Vendor::Echo360 => "ann@example.org",
            Vendor::Panopto => "MyIdP\\ann",
            Vendor::Openconext => "urn:collab:person:example.org:ann",
        }
    }

    /// The connector block for a vendor at `uri` (scheme, host and port).
    fn connector(self, uri: &str) -> String {
        let body = match self {
            Vendor::Scim => format!(
                "account = \"{{email}}\"\nbase_url = \"{uri}/scim/v2\"\n\
                 auth = {{ kind = \"bearer\", token_file = \"secret\" }}\n"
            ),
            Vendor::Anaplan => format!(
                "account = \"{{email}}\"\nbase_url = \"{uri}/scim/1/0/v2\"\n\
                 auth = {{ kind = \"anaplan\", username = \"svc@example.com\", password_file = \"secret\", auth_url = \"{uri}/auth\" }}\n"
            ),
            Vendor::Panopto => format!(
                "account = \"MyIdP\\\\{{username}}\"\nhost = \"demo.hosted.panopto.com\"\n\
                 endpoint = \"{uri}{SOAP_SVC}\"\napi_user_key = \"svc-offboard\"\npassword_file = \"secret\"\n"
            ),
            Vendor::Echo360 => format!(
                "account = \"{{email}}\"\nbase_url = \"{uri}\"\nclient_id_file = \"client-id\"\n\
                 client_secret_file = \"secret\"\naction = \"delete\"\n"
            ),
            Vendor::Openconext => format!(
                "account = \"urn:collab:person:example.org:{{collab_uid}}\"\nbase_url = \"{uri}/api\"\n\
                 username = \"deprov\"\npassword_file = \"secret\"\n"
            ),
        };
        let kind = match self {
            Vendor::Anaplan => "scim",
            other => other.name(),
        };
        format!(
            "[[connector]]\nname = \"{}\"\nkind = \"{kind}\"\ntimeout = \"1s\"\n{body}",
            self.name()
        )
    }

    /// The method and path of the call the fault is put on.
    fn faulted_call(self) -> (&'static str, &'static str) {
        match self {
            Vendor::Scim => ("GET", "/scim/v2/Users"),
            Vendor::Anaplan => ("POST", "/auth/token/authenticate"),
            Vendor::Panopto => ("POST", SOAP_SVC),
            Vendor::Echo360 => ("GET", "/public/api/v1/users/ann%40example.org"),
            Vendor::Openconext => (
                "DELETE",
                "/api/deprovision/urn%3Acollab%3Aperson%3Aexample.org%3Aann",
            ),
        }
    }

    /// Calls before the faulted one that must succeed (echo360's token).
    async fn mount_setup(self, server: &MockServer) {
        if self == Vendor::Echo360 {
            Mock::given(method("POST"))
                .and(path(ECHO_TOKEN_PATH))
                .respond_with(
                    ResponseTemplate::new(200).set_body_raw(ECHO_TOKEN, "application/json"),
                )
                .mount(server)
                .await;
        }
    }

    /// The vendor's content type for a normal answer.
    fn content_type(self) -> &'static str {
        match self {
            Vendor::Scim => "application/scim+json",
            Vendor::Panopto => "text/xml; charset=utf-8",
            Vendor::Anaplan | Vendor::Echo360 | Vendor::Openconext => "application/json",
        }
    }

    /// A 200 carrying the vendor's own way of saying that something went wrong.
    fn vendor_error_body(self) -> String {
        match self {
            Vendor::Scim => json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400", "scimType": "invalidFilter", "detail": VENDOR_SAYS
            })
            .to_string(),
            Vendor::Anaplan => {
                json!({"status": "FAILURE_BAD_CREDENTIAL", "statusMessage": VENDOR_SAYS})
                    .to_string()
            }
            Vendor::Panopto => soap_fault("s:Client", VENDOR_SAYS),
            Vendor::Echo360 => json!({"message": VENDOR_SAYS}).to_string(),
            Vendor::Openconext => json!({
                "status": "FAILED", "name": "EngineBlock", "data": [], "message": [VENDOR_SAYS]
            })
            .to_string(),
        }
    }

    /// A body in the vendor's content type that is cut off.
    fn malformed_body(self) -> String {
        match self {
            Vendor::Scim => r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1, "Resour"#.into(),
            Vendor::Anaplan => r#"{"status": "SUCCESS", "tokenInfo": {"tokenValue": "9f2c"#.into(),
            Vendor::Panopto => {
                let whole = soap_envelope(r#"<GetUserByKeyResponse xmlns="http://tempuri.org/"><GetUserByKeyResult>"#);
                whole[..whole.len() - 20].to_string()
            }
            Vendor::Echo360 => r#"{"id": "u-1", "email": "ann@exa"#.into(),
            Vendor::Openconext => r#"{"status": "OK", "name": "EngineBlock", "da"#.into(),
        }
    }

    /// An error body in the vendor's shape for a non-success status, saying [`VENDOR_SAYS`].
    fn error_body(self) -> String {
        match self {
            Vendor::Scim => json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "503", "detail": VENDOR_SAYS
            })
            .to_string(),
            Vendor::Anaplan => {
                json!({"status": "FAILURE_SERVICE", "statusMessage": VENDOR_SAYS}).to_string()
            }
            Vendor::Panopto => soap_fault("s:Server", VENDOR_SAYS),
            Vendor::Echo360 => json!({"message": VENDOR_SAYS}).to_string(),
            Vendor::Openconext => json!({"errors": [VENDOR_SAYS]}).to_string(),
        }
    }
}

fn soap_envelope(body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn soap_fault(code: &str, string: &str) -> String {
    soap_envelope(&format!(
        "<s:Fault><faultcode>{code}</faultcode><faultstring>{string}</faultstring></s:Fault>"
    ))
}

/// Builds the named connector from a real config file in `dir`.
fn build(dir: &Path, connectors: &str, name: &str) -> Arc<dyn Connector> {
    write_secret(dir, "secret", "fault-matrix-secret-5b1e");
    write_secret(dir, "client-id", "fault-matrix-client");
    std::fs::write(dir.join("feed.csv"), crate::helpers::HEADER).unwrap();
    let config_path = dir.join("offboard.toml");
    std::fs::write(&config_path, config_text(connectors)).unwrap();
    let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::build(&config, &Clock::system()).unwrap();
    registry.get(name).unwrap()
}

/// An HTTP date `secs` from now (RFC 9110 IMF-fixdate).
fn http_date_in(secs: u64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs as i64))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The response a fault class gets from wiremock.
fn response(vendor: Vendor, fault: Fault) -> ResponseTemplate {
    let error = |status: u16| {
        ResponseTemplate::new(status).set_body_raw(vendor.error_body(), vendor.content_type())
    };
    match fault {
        Fault::Timeout => ResponseTemplate::new(200).set_delay(Duration::from_secs(4)),
        Fault::Http500 => error(500),
        Fault::Http502 => ResponseTemplate::new(502).set_body_raw("Bad Gateway", "text/plain"),
        Fault::Http502RetryAfter => ResponseTemplate::new(502)
            .set_body_raw("Bad Gateway", "text/plain")
            .insert_header("Retry-After", RETRY_AFTER_SECS.to_string().as_str()),
        Fault::Http503 => error(503),
        Fault::Http503RetryAfter => {
            error(503).insert_header("Retry-After", RETRY_AFTER_SECS.to_string().as_str())
        }
        Fault::Http429Seconds => {
            error(429).insert_header("Retry-After", RETRY_AFTER_SECS.to_string().as_str())
        }
        Fault::Http429Date => {
            error(429).insert_header("Retry-After", http_date_in(RETRY_AT_SECS).as_str())
        }
        Fault::Http401 => error(401),
        Fault::Http403 => error(403),
        Fault::Http404 => error(404),
        Fault::VendorError200 => ResponseTemplate::new(200)
            .set_body_raw(vendor.vendor_error_body(), vendor.content_type()),
        Fault::MalformedBody => {
            ResponseTemplate::new(200).set_body_raw(vendor.malformed_body(), vendor.content_type())
        }
        Fault::WrongContentType => ResponseTemplate::new(200).set_body_raw(
            "<html><body><h1>Sign in</h1><p>Your session has expired.</p></body></html>",
            "text/html",
        ),
        Fault::ConnectionRefused | Fault::ResetMidResponse => {
            unreachable!("{fault:?} is not an HTTP answer")
        }
    }
}

/// A port on 127.0.0.1 with nothing listening.
async fn refused_uri() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A raw listener that answers echo360's token request properly and every other request with a
/// status line and headers promising a body, then resets the connection.
async fn resetting_uri(vendor: Vendor) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let content_type = vendor.content_type();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(request_line) = read_request(&mut stream).await else {
                    return;
                };
                if request_line.contains(ECHO_TOKEN_PATH) {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ECHO_TOKEN}",
                        ECHO_TOKEN.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 4096\r\n\r\n{{\"par"
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.flush().await;
                // A zero linger turns the close into a TCP RST.
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    uri
}

/// Reads one request (head and a Content-Length body); returns its request line.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    head.lines().next().map(str::to_string)
}

/// Runs one attempt of `vendor`'s connector against `fault`.
async fn run_cell(vendor: Vendor, fault: Fault) -> Attempt {
    let dir = tempfile::tempdir().unwrap();
    let (uri, _server) = match fault {
        Fault::ConnectionRefused => (refused_uri().await, None),
        Fault::ResetMidResponse => (resetting_uri(vendor).await, None),
        _ => {
            let server = MockServer::start().await;
            vendor.mount_setup(&server).await;
            let (verb, route) = vendor.faulted_call();
            Mock::given(method(verb))
                .and(path(route))
                .respond_with(response(vendor, fault))
                .mount(&server)
                .await;
            (server.uri(), Some(server))
        }
    };
    let connector = build(dir.path(), &vendor.connector(&uri), vendor.name());
    attempt(connector.as_ref(), vendor.account()).await
}

/// Runs one fault class against every HTTP connector and checks each cell.
async fn row(fault: Fault, expect: impl Fn(Vendor) -> Expect) {
    for vendor in VENDORS {
        let got = run_cell(vendor, fault).await;
        check(
            &format!("{} × {fault:?}", vendor.name()),
            &got,
            expect(vendor),
        );
    }
}

// ------------------------------------------------------------------------------------------------
// The matrix: one test per fault class, one cell per HTTP connector
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_refused_is_retried() {
    row(Fault::ConnectionRefused, |_| {
        Expect::Retry(None, "connection failed")
    })
    .await;
}

#[tokio::test]
async fn a_connection_reset_after_the_headers_is_retried() {
    // echo360's token call succeeds on the raw listener; its lookup is the call reset.
    row(Fault::ResetMidResponse, |_| {
        Expect::Retry(None, "reading the response failed")
    })
    .await;
}

#[tokio::test]
async fn a_timeout_is_retried() {
    row(Fault::Timeout, |_| Expect::Retry(None, "timed out")).await;
}

#[tokio::test]
async fn a_500_is_retried_naming_the_vendors_message() {
    row(Fault::Http500, |_| Expect::Retry(None, VENDOR_SAYS)).await;
}

#[tokio::test]
async fn a_502_without_retry_after_is_retried_on_the_backoff() {
    row(Fault::Http502, |_| Expect::Retry(None, "HTTP 502")).await;
}

#[tokio::test]
async fn a_502_with_retry_after_is_retried_no_sooner() {
    row(Fault::Http502RetryAfter, |_| {
        Expect::Retry(secs(RETRY_AFTER_SECS), "HTTP 502")
    })
    .await;
}

#[tokio::test]
async fn a_503_without_retry_after_is_retried_naming_the_vendors_message() {
    row(Fault::Http503, |_| Expect::Retry(None, VENDOR_SAYS)).await;
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_no_sooner() {
    row(Fault::Http503RetryAfter, |_| {
        Expect::Retry(secs(RETRY_AFTER_SECS), VENDOR_SAYS)
    })
    .await;
}

#[tokio::test]
async fn a_429_with_retry_after_in_seconds_is_retried_no_sooner() {
    row(Fault::Http429Seconds, |_| {
        Expect::Retry(secs(RETRY_AFTER_SECS), "HTTP 429")
    })
    .await;
}

#[tokio::test]
async fn a_429_with_retry_after_as_an_http_date_is_retried_no_sooner() {
    row(Fault::Http429Date, |_| Expect::RetryAtDate("HTTP 429")).await;
}

#[tokio::test]
async fn a_401_is_a_refused_credential_for_every_connector() {
    // One rule for all (connectors::classify): the refusal is sent once more at once, with a fresh
    // token or login where the connector has one; refused again, the attempt ends as a refused
    // credential, which the worker retries once after five minutes and fails on the third refusal.
    row(Fault::Http401, |vendor| match vendor {
        Vendor::Scim => Expect::Refused("refused the bearer token"),
        Vendor::Anaplan => Expect::Refused("Anaplan refused the login"),
        Vendor::Panopto => Expect::Refused("HTTP 401"),
        Vendor::Echo360 => Expect::Refused("the API refused the token"),
        Vendor::Openconext => Expect::Refused("refused the credentials"),
    })
    .await;
}

#[tokio::test]
async fn a_403_is_a_refused_credential_for_every_connector() {
    row(Fault::Http403, |vendor| match vendor {
        Vendor::Scim => Expect::Refused(VENDOR_SAYS),
        Vendor::Anaplan => Expect::Refused("Anaplan refused the login"),
        Vendor::Panopto => Expect::Refused("HTTP 403"),
        Vendor::Echo360 => Expect::Refused("the API refused the token"),
        Vendor::Openconext => Expect::Refused("refused the credentials"),
    })
    .await;
}

#[tokio::test]
async fn a_404_is_already_absent_only_where_it_means_no_such_user() {
    row(Fault::Http404, |vendor| match vendor {
        // GET /Users?filter answers an empty list for nobody: a 404 is a wrong base_url.
        Vendor::Scim => Expect::Permanent(VENDOR_SAYS),
        // No login service at auth_url.
        Vendor::Anaplan => Expect::Permanent(VENDOR_SAYS),
        Vendor::Panopto => Expect::Permanent("check host and endpoint"),
        // GET users/{email} answers 404 for an unknown email.
        Vendor::Echo360 => Expect::Absent,
        Vendor::Openconext => Expect::Permanent(VENDOR_SAYS),
    })
    .await;
}

#[tokio::test]
async fn a_200_with_the_vendors_error_shape_names_the_vendors_message() {
    row(Fault::VendorError200, |vendor| match vendor {
        // The SCIM error's own status (400) decides.
        Vendor::Scim => Expect::Permanent(VENDOR_SAYS),
        // Anaplan's FAILURE_BAD_CREDENTIAL in a success answer is a refused login.
        Vendor::Anaplan => Expect::Refused(VENDOR_SAYS),
        _ => Expect::Retry(None, VENDOR_SAYS),
    })
    .await;
}

#[tokio::test]
async fn a_malformed_body_is_retried() {
    row(Fault::MalformedBody, |vendor| match vendor {
        Vendor::Scim => Expect::Retry(None, "not JSON"),
        // Never an excerpt of a token answer: it could hold the token.
        Vendor::Anaplan => Expect::Retry(None, "HTTP 200 but the body is not JSON"),
        Vendor::Panopto => Expect::Retry(None, "malformed SOAP response"),
        Vendor::Echo360 => Expect::Retry(None, "malformed response: the body is not JSON"),
        Vendor::Openconext => Expect::Retry(None, "does not follow the deprovision contract"),
    })
    .await;
}

#[tokio::test]
async fn an_html_page_instead_of_the_vendors_content_type_is_retried() {
    row(Fault::WrongContentType, |vendor| match vendor {
        Vendor::Scim => Expect::Retry(None, "Content-Type \"text/html\""),
        Vendor::Anaplan => Expect::Retry(None, "HTTP 200 but the body is not JSON"),
        Vendor::Panopto => Expect::Retry(
            None,
            "not a SOAP response (HTTP 200, content type text/html",
        ),
        Vendor::Echo360 => Expect::Retry(None, "the body is not JSON"),
        Vendor::Openconext => Expect::Retry(None, "the body is not JSON"),
    })
    .await;
}

// ------------------------------------------------------------------------------------------------
// exec: the same classes, as a local program can show them
// ------------------------------------------------------------------------------------------------

fn exec_connector(program: &str) -> String {
    format!(
        "[[connector]]\nname = \"app\"\nkind = \"exec\"\naccount = \"{{email}}\"\nprogram = \"{program}\"\n\
         args = [\"{{account}}\"]\ntimeout = \"1s\"\nexit_already_absent = [3]\nexit_permanent = [2]\n"
    )
}

/// One attempt of an exec connector running `script` (written to the directory first); `sabotage`
/// then changes the directory between loading the config and the attempt.
async fn exec_cell_after(script: &str, sabotage: impl FnOnce(&Path)) -> Attempt {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", script);
    let connector = build(dir.path(), &exec_connector("remove.sh"), "app");
    sabotage(dir.path());
    attempt(connector.as_ref(), "ann@example.org").await
}

async fn exec_cell(script: &str) -> Attempt {
    exec_cell_after(script, |_| {}).await
}

/// The config error for an exec program that `prepare` sets up wrongly.
fn exec_config_error(prepare: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    let config_path = dir.path().join("offboard.toml");
    std::fs::write(&config_path, config_text(&exec_connector("remove.sh"))).unwrap();
    match Config::load(&config_path) {
        Ok(_) => panic!("the config was accepted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn exec_a_missing_program_is_refused_by_the_config_and_retried_at_run_time() {
    // Like a refused connection: the other end is not there (yet; a deployment may be under way).
    let error = exec_config_error(|_| {});
    assert!(
        error.contains("connector.app.program") && error.contains("No such file"),
        "{error}"
    );
    let got = exec_cell_after("#!/bin/sh\nexit 0\n", |dir| {
        std::fs::remove_file(dir.join("remove.sh")).unwrap()
    })
    .await;
    check(
        "exec × missing program",
        &got,
        Expect::Retry(None, "cannot start"),
    );
}

#[tokio::test]
async fn exec_a_program_without_execute_permission_is_refused_by_the_config_and_retried_at_run_time()
 {
    use std::os::unix::fs::PermissionsExt;
    let not_executable = |dir: &Path| {
        std::fs::set_permissions(
            dir.join("remove.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap()
    };
    let error = exec_config_error(|dir| {
        write_script(dir, "remove.sh", "#!/bin/sh\nexit 0\n");
        not_executable(dir);
    });
    assert!(
        error.contains("connector.app.program") && error.contains("not executable"),
        "{error}"
    );
    let got = exec_cell_after("#!/bin/sh\nexit 0\n", not_executable).await;
    check(
        "exec × permission denied",
        &got,
        Expect::Retry(None, "Permission denied"),
    );
}

#[tokio::test]
async fn exec_a_program_killed_by_a_signal_is_retried() {
    // Like a reset mid-response: the program died before saying how it ended.
    let got = exec_cell("#!/bin/sh\nkill -KILL $$\n").await;
    check(
        "exec × signal",
        &got,
        Expect::Retry(None, "killed by a signal"),
    );
}

#[tokio::test]
async fn exec_a_program_that_hangs_is_killed_and_retried() {
    let got = exec_cell("#!/bin/sh\nexec sleep 30\n").await;
    check(
        "exec × timeout",
        &got,
        Expect::Retry(None, "timed out after 1s"),
    );
}

#[tokio::test]
async fn exec_an_unlisted_exit_code_is_retried_with_the_programs_stderr() {
    // Like a 5xx: the program's own words (stderr) name the failure.
    let script = format!("#!/bin/sh\necho '{VENDOR_SAYS}' >&2\nexit 1\n");
    let got = exec_cell(&script).await;
    check("exec × exit 1", &got, Expect::Retry(None, VENDOR_SAYS));
}

#[tokio::test]
async fn exec_a_permanent_exit_code_fails_with_the_programs_stderr() {
    // Like a 4xx: the program says retrying cannot help.
    let script = format!("#!/bin/sh\necho '{VENDOR_SAYS}' >&2\nexit 2\n");
    let got = exec_cell(&script).await;
    check(
        "exec × exit_permanent",
        &got,
        Expect::Permanent(VENDOR_SAYS),
    );
}

#[tokio::test]
async fn exec_the_already_absent_exit_code_is_already_absent() {
    // Like a 404 for an unknown user.
    let got = exec_cell("#!/bin/sh\nexit 3\n").await;
    check("exec × exit_already_absent", &got, Expect::Absent);
}

#[tokio::test]
async fn exec_output_on_stdout_is_not_read() {
    // There is no body to be malformed or of the wrong type: only the exit code counts.
    let script = "#!/bin/sh\necho '<html>not what anyone expects</html>'\nexit 0\n";
    let got = exec_cell(script).await;
    assert!(
        matches!(got, Attempt::Done(RemovalOutcome::Removed)),
        "exec × garbage on stdout: {got:?}"
    );
}
