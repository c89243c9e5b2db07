//! Notifications: events from the outbox to a webhook receiver that checks the HMAC signature, retried
//! after a refusal, each delivered once by its key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use offboard::store::batches::Decision;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{HEADER, TestApp, config_text, write_script};

const SECRET: &str = "notify-hmac-secret-6b1f";

/// A program whose every removal fails for good (exit 2 is `exit_permanent`).
const FAILS: &str = "#!/bin/sh\nexit 2\n";

/// The exec connector `app` of every test here, failing for good on exit 2.
const CONNECTOR: &str = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\nexit_permanent = [2]\n";

/// A daemon whose connector runs `script`, with one `[[notify]]` channel of `keys`, the guard's
/// per-batch limit when given, and `secrets` written as secret files beside the config.
async fn notify_app(
    script: &str,
    per_batch: Option<u32>,
    keys: &str,
    secrets: &[(&str, &str)],
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", script);
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    for (name, value) in secrets {
        crate::vendor_http::write_secret(dir.path(), name, value);
    }
    let mut config = config_text(CONNECTOR);
    if let Some(limit) = per_batch {
        config = config.replace(
            "max_terminations_percent = 100.0",
            &format!("max_terminations_percent = 100.0\nmax_terminations_per_batch = {limit}"),
        );
    }
    TestApp::in_dir(dir, &format!("{config}\n[[notify]]\n{keys}")).await
}

/// A receiver that refuses the first request, then takes every request whose signature is right.
#[derive(Clone, Default)]
struct Receiver {
    taken: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    seen: Arc<Mutex<usize>>,
}

impl Respond for Receiver {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        *seen += 1;
        if *seen == 1 {
            return ResponseTemplate::new(500);
        }
        let body = String::from_utf8_lossy(&request.body).to_string();
        let signed = request
            .headers
            .get(offboard::notify::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if signed != offboard::notify::signature(SECRET, &body) {
            return ResponseTemplate::new(401);
        }
        let key = request
            .headers
            .get(offboard::notify::KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.taken
            .lock()
            .unwrap()
            .push((key, serde_json::from_str(&body).unwrap()));
        ResponseTemplate::new(204)
    }
}

#[tokio::test]
async fn held_batches_and_failed_removals_reach_a_signed_webhook_once_each() {
    let server = MockServer::start().await;
    let receiver = Receiver::default();
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(receiver.clone())
        .mount(&server)
        .await;
    let t = notify_app(
        FAILS,
        Some(1),
        &format!(
            "name = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hooks/offboard\"\nsecret_file = \"notify-secret\"\n",
            server.uri()
        ),
        &[("notify-secret", SECRET)],
    )
    .await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n");
    let s = t.poll().await;
    assert!(s.held);
    t.app
        .store
        .decide_batch(s.batch_id, Decision::Approve, "alice", t.clock.now())
        .await
        .unwrap();
    assert_eq!(t.drain().await.failed, 2);

    let channels = &t.app.config.notify;
    let first = offboard::notify::deliver(&t.app.store, channels, &t.app.http, t.clock.now())
        .await
        .unwrap();
    assert_eq!(
        first, 0,
        "the receiver refused the first one; the rest wait"
    );
    t.advance(Duration::from_secs(11));
    let second = offboard::notify::deliver(&t.app.store, channels, &t.app.http, t.clock.now())
        .await
        .unwrap();
    assert_eq!(second, 3);
    let third = offboard::notify::deliver(&t.app.store, channels, &t.app.http, t.clock.now())
        .await
        .unwrap();
    assert_eq!(third, 0, "nothing is sent twice");

    let taken = receiver.taken.lock().unwrap().clone();
    let events: Vec<&str> = taken
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["batch_held", "removal_failed", "removal_failed"]);
    let mut keys: Vec<&str> = taken.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[0], format!("batch_held:{}", s.batch_id));
    keys.dedup();
    assert_eq!(keys.len(), 3, "one key each");
    for (key, body) in &taken {
        assert_eq!(body["schema"], "offboard.notification.v1");
        assert_eq!(body["key"], key.as_str());
        assert!(
            !body.to_string().contains("ann@example.org"),
            "no email in messages"
        );
    }
    assert!(
        taken[1].1["summary"]
            .as_str()
            .unwrap()
            .contains("offboard retry")
    );
}

/// A removal still not done as its SLA (24 h after the effective time here) runs out gets a warning in
/// the SLA's last quarter and a breach once it is over, each once.
#[tokio::test]
async fn removals_running_out_of_their_sla_are_warned_about_then_reported_as_breaches() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let t = notify_app(
        FAILS,
        None,
        &format!(
            "name = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nevents = [\"sla_warning\", \"sla_breach\"]\n",
            server.uri()
        ),
        &[],
    )
    .await;
    let recent = (t.clock.now() - chrono::Duration::hours(20)).to_rfc3339();
    t.write_feed(&format!(
        "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,{recent},Terminated\ne3,cy@example.org,cy,,Cy,2099-01-05,Terminated\n"
    ));
    t.poll().await;
    assert_eq!(t.drain().await.failed, 2);

    for _ in 0..2 {
        offboard::notify::scan_sla(&t.app.store, &t.app.config, t.clock.now())
            .await
            .unwrap();
    }
    let sent = offboard::notify::deliver(
        &t.app.store,
        &t.app.config.notify,
        &t.app.http,
        t.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(
        sent, 2,
        "one breach, one warning, nothing for the future leaver, nothing twice"
    );
    let bodies: Vec<serde_json::Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let by_employee = |e: &str| {
        bodies
            .iter()
            .find(|b| b["detail"]["employee_id"] == e)
            .map(|b| b["event"].as_str().unwrap().to_string())
    };
    assert_eq!(by_employee("e1").as_deref(), Some("sla_breach"));
    assert_eq!(by_employee("e2").as_deref(), Some("sla_warning"));
    assert_eq!(by_employee("e3"), None);
}

/// aiosmtpd on 127.0.0.1, storing what it receives in a maildir; killed when dropped.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        Self::start_with(&[])
    }

    /// With `args` for aiosmtpd (e.g. `--tlscert`, `--tlskey`: STARTTLS required).
    fn start_with(args: &[&std::ffi::OsStr]) -> SmtpServer {
        let venv = std::env::var_os("OFFBOARD_TEST_VENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(venv.join("bin/python"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(args)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("md"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd from the test venv (tests/requirements.txt)");
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < until, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("md/new");
        std::fs::read_dir(new)
            .map(|d| {
                d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An email channel: a held batch reaches the operators' mailbox on a real SMTP server, once.
#[tokio::test]
async fn a_held_batch_is_mailed_to_the_operators_over_smtp() {
    let smtp = SmtpServer::start();
    let t = notify_app(
        "#!/bin/sh\nexit 0\n",
        Some(1),
        &format!(
            "name = \"mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
             from = \"offboard@example.org\"\nto = [\"it-ops@example.org\", \"security@example.org\"]\nevents = [\"batch_held\"]\n",
            smtp.port
        ),
        &[],
    )
    .await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2026-01-05,Terminated\n");
    let s = t.poll().await;
    assert!(s.held);

    for _ in 0..2 {
        offboard::notify::deliver(
            &t.app.store,
            &t.app.config.notify,
            &t.app.http,
            t.clock.now(),
        )
        .await
        .unwrap();
    }
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        1,
        "one message, delivered once: {messages:?}"
    );
    let m = &messages[0];
    assert!(m.contains("Subject: offboard: batch held"), "{m}");
    assert!(
        m.contains("it-ops@example.org") && m.contains("security@example.org"),
        "{m}"
    );
    assert!(
        m.contains(&format!("offboard approve {}", s.batch_id)),
        "{m}"
    );
    assert!(m.contains("Message-ID: <"), "{m}");
    assert!(
        !m.contains("ann@example.org"),
        "no leaver's email in the message"
    );
}

/// A channel to managers: a failed removal is mailed to the leaver's manager alone (the address from a
/// feed column mapped to a person attribute), once; a leaver without a manager address is skipped.
#[tokio::test]
async fn a_failed_removal_is_mailed_to_the_leavers_manager_alone() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", FAILS);
    // The feed gains a Manager column, mapped to the attribute the channel names.
    let header = format!("{},Manager\n", HEADER.trim_end());
    std::fs::write(dir.path().join("feed.csv"), &header).unwrap();
    let config = config_text(CONNECTOR).replace(
        "schedule = \"0 0 * * * *\"",
        "schedule = \"0 0 * * * *\"\n\n[feed.attributes]\nmanager_email = \"Manager\"",
    );
    let t = TestApp::in_dir(
        dir,
        &format!(
            "{config}\n[[notify]]\nname = \"managers\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             tls = \"none\"\nfrom = \"offboard@example.org\"\nto_manager = \"manager_email\"\n",
            smtp.port
        ),
    )
    .await;
    let header = format!("{},Manager\n", HEADER.trim_end());
    std::fs::write(
        t.path("feed.csv"),
        format!(
            "{header}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated,boss@example.org\n\
             e2,bob@example.org,bob,,Bob,2026-01-05,Terminated,\n"
        ),
    )
    .unwrap();
    t.poll().await;
    assert_eq!(t.drain().await.failed, 2);
    for _ in 0..2 {
        offboard::notify::deliver(
            &t.app.store,
            &t.app.config.notify,
            &t.app.http,
            t.clock.now(),
        )
        .await
        .unwrap();
    }
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        1,
        "one message, to e1's manager: {messages:?}"
    );
    let m = &messages[0];
    assert!(m.contains("To: boss@example.org"), "{m}");
    assert!(m.contains("e1") && !m.contains("e2 "), "{m}");
    assert!(m.contains("Subject: offboard: removal failed"), "{m}");
}

/// Eight removals failing in one drain make one digest message, not eight; none is sent again.
#[tokio::test]
async fn many_failed_removals_at_once_make_one_digest() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let t = notify_app(
        FAILS,
        None,
        &format!(
            "name = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nevents = [\"removal_failed\"]\n",
            server.uri()
        ),
        &[],
    )
    .await;
    let rows: String = (0..8)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,P,2026-01-05,Terminated\n"))
        .collect();
    t.write_feed(&rows);
    t.poll().await;
    assert_eq!(t.drain().await.failed, 8);

    for _ in 0..2 {
        offboard::notify::deliver(
            &t.app.store,
            &t.app.config.notify,
            &t.app.http,
            t.clock.now(),
        )
        .await
        .unwrap();
    }
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "one digest");
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["detail"]["digest"], true);
    assert_eq!(body["detail"]["count"], 8);
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .starts_with("8 removals failed for good")
    );
}

/// The daemon is killed (SIGKILL) while it delivers notifications to a slow receiver; after a restart
/// every event reaches the receiver, and counted by key each arrives exactly once (a repeat after the
/// kill carries the same key, which the receiver keeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_notifying_loses_none_and_repeats_none_by_key() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(700)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", FAILS);
    let text = format!(
        "{}\n[[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
        config_text(CONNECTOR),
        server.uri()
    );
    std::fs::write(dir.path().join("offboard.toml"), &text).unwrap();
    std::fs::write(
        dir.path().join("feed.csv"),
        format!("{HEADER}e1,a@example.org,a,,A,2026-01-05,Terminated\ne2,b@example.org,b,,B,2026-01-05,Terminated\ne3,c@example.org,c,,C,2026-01-05,Terminated\ne4,d@example.org,d,,D,2026-01-05,Terminated\n"),
    )
    .unwrap();
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(dir.path().join("offboard.toml"))
            .arg("run")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = start();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < until,
            "no notification was sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL, with a delivery in flight
    first.wait().unwrap();

    let store = crate::helpers::database_of(&dir.path().join("offboard.toml"))
        .await
        .unwrap();
    let mut second = start();
    let pending = || async {
        let (events, sent): (i64, i64) = on_db!(store, |pool| sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM notify_events), \
                    (SELECT COUNT(*) FROM notify_deliveries WHERE sent_at IS NOT NULL)",
        )
        .fetch_one(pool)
        .await
        .unwrap());
        (events, sent)
    };
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (events, sent) = pending().await;
        if events >= 4 && sent == events {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "{sent} of {events} delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crate::helpers::sigterm_and_wait(&mut second, Duration::from_secs(15))
        .await
        .expect("the daemon stopped");

    let (events, _) = pending().await;
    let mut keys = std::collections::BTreeMap::<String, usize>::new();
    for request in server.received_requests().await.unwrap() {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let listed: Vec<String> = match body["detail"]["keys"].as_array() {
            Some(keys) => keys
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect(),
            None => vec![body["key"].as_str().unwrap().to_string()],
        };
        for key in listed {
            *keys.entry(key).or_default() += 1;
        }
    }
    assert_eq!(keys.len() as i64, events, "every event arrived: {keys:?}");
    assert!(
        keys.values().all(|n| *n <= 2),
        "a repeat comes only from the delivery the kill cut short: {keys:?}"
    );
}

/// A test CA and a certificate for `localhost` it signed, made with openssl in `dir`.
fn certificates(dir: &std::path::Path) {
    let script = "set -e\n\
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj '/CN=offboard test CA' 2>/dev/null\n\
        openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj '/CN=localhost' 2>/dev/null\n\
        printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth\\n' > leaf.ext\n\
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 1 -extfile leaf.ext 2>/dev/null\n";
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "openssl made the test certificates");
}

/// STARTTLS, required by the server: the message goes through when the server's certificate chains
/// to the configured CA (`tls_ca_file`), and is refused (retried later, nothing sent) without it.
#[tokio::test]
async fn mail_goes_over_starttls_to_a_server_whose_certificate_chains_to_the_configured_ca() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let cert = certs.path().join("leaf.pem");
    let key = certs.path().join("leaf.key");
    let smtp = SmtpServer::start_with(&[
        "--tlscert".as_ref(),
        cert.as_os_str(),
        "--tlskey".as_ref(),
        key.as_os_str(),
    ]);
    for (with_ca, delivered) in [(false, 0), (true, 1)] {
        let ca = if with_ca {
            format!(
                "tls_ca_file = \"{}\"\n",
                certs.path().join("ca.pem").display()
            )
        } else {
            String::new()
        };
        let t = notify_app(
            FAILS,
            None,
            &format!(
                "name = \"mail\"\nkind = \"email\"\nsmtp_host = \"localhost\"\nsmtp_port = {}\ntls = \"starttls\"\n{ca}\
                 from = \"offboard@example.org\"\nto = [\"it-ops@example.org\"]\nevents = [\"removal_failed\"]\n",
                smtp.port
            ),
            &[],
        )
        .await;
        t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n");
        t.poll().await;
        assert_eq!(t.drain().await.failed, 1);
        let sent = offboard::notify::deliver(
            &t.app.store,
            &t.app.config.notify,
            &t.app.http,
            t.clock.now(),
        )
        .await
        .unwrap();
        assert_eq!(sent, delivered, "with the CA: {with_ca}");
    }
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("Subject: offboard: removal failed"));
}
