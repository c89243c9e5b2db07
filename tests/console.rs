//! The web console in a real headless browser (Debian's chromium through chromedriver, over WebDriver):
//! log in, see a held batch, approve it, watch its removals run, search the audit log and download it,
//! verify the chain; a viewer cannot approve; a cross-site POST is refused; behind a reverse proxy only
//! the proxy's addresses may name a person; the four-eyes rule. Each page's screenshot is written to
//! `docs/screenshots/` (the README shows the overview).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{HEADER, OK_SCRIPT, TestApp, config_text, write_script};

const ALICE: &str = "alice-approver-token-5b8f0c2e9d";
const VICTOR: &str = "victor-viewer-token-77a1e4c03b";
const PUSH: &str = "console-test-push-token-canary-91d2";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver cannot start ({e}): install Debian's chromium and chromium-driver (scripts/test does)")
            });
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "chromedriver did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }

    async fn browser(&self) -> Client {
        // fantoccini's TLS stack wants a process-wide provider; the WebDriver itself is plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The page's text; while a click's navigation is still under way the body may go stale, so it is
/// read again.
async fn text(browser: &Client) -> String {
    for _ in 0..50 {
        if let Ok(body) = browser.find(Locator::Css("body")).await
            && let Ok(text) = body.text().await
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page's body could not be read");
}

/// The page's text once it holds `needle` (a form's answer may take a moment on a busy machine), or
/// as it is after five seconds.
async fn text_once(browser: &Client, needle: &str) -> String {
    let mut page = text(browser).await;
    for _ in 0..50 {
        if page.contains(needle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = text(browser).await;
    }
    page
}

async fn log_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/login")
    );
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    browser
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        text(browser).await.contains("Overview"),
        "{}",
        text(browser).await
    );
}

/// The browser's cookies as a `Cookie` header, for requests made beside it.
async fn cookie_header(browser: &Client) -> String {
    browser
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf_of(cookies: &str) -> String {
    cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("offboard_csrf="))
        .unwrap()
        .to_string()
}

fn leavers(from: usize, to: usize) -> String {
    (from..=to)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,Person {i},2026-01-05,Terminated\n"))
        .collect()
}

/// A daemon with the console on (login tokens), the guard at 2 per batch, and a push token canary.
async fn daemon(console: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{HEADER}{}e9,not-an-email,p9,,Bad Row,not-a-date,Terminated\n",
            leavers(1, 3)
        ),
    )
    .unwrap();
    crate::vendor_http::write_secret(
        dir.path(),
        "console-tokens",
        &format!("# name role token\nalice approver {ALICE}\nvictor viewer {VICTOR}\n"),
    );
    crate::vendor_http::write_secret(dir.path(), "push-token", PUSH);
    let text = config_text(
        "[[connector]]\nname = \"wiki\"\nkind = \"exec\"\naccount = \"{email}\"\nprogram = \"remove.sh\"\nargs = [\"{account}\"]\n",
    )
    .replace("max_terminations_percent = 100.0", "max_terminations_percent = 100.0\nmax_terminations_per_batch = 2")
    .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\npush_token_file = \"push-token\"");
    TestApp::in_dir(dir, &format!("{text}\n{console}")).await
}

const TOKENS: &str =
    "[console]\nlisten = \"127.0.0.1:0\"\nauth = \"tokens\"\ntokens_file = \"console-tokens\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_a_held_batch_in_the_browser_and_a_viewer_and_another_site_cannot() {
    let t = daemon(TOKENS).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = t.app.clone().start(stopped).await.unwrap();
    let base = format!(
        "http://localhost:{}",
        running.console_addr.expect("the console listens").port()
    );
    let driver = Driver::start();
    let browser = driver.browser().await;

    // The held batch is the first thing the overview shows.
    log_in(&browser, &base, ALICE).await;
    let until = Instant::now() + Duration::from_secs(20);
    while !text(&browser).await.contains("Held batches (1)") {
        assert!(Instant::now() < until, "{}", text(&browser).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.unwrap();
    }
    shoot(&browser, "overview").await;
    browser
        .find(Locator::LinkText("batch 1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = text(&browser).await;
    assert!(page.contains("held by the mass-removal guard"), "{page}");
    assert!(page.contains("3 new terminations"), "{page}");
    shoot(&browser, "batch").await;
    browser
        .find(Locator::Id("approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = text_once(&browser, "Approved").await;
    assert!(page.contains("Approved"), "{page}");

    // Its removals run.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let removals = t.removals().await;
        if removals.len() == 3 && removals.iter().all(|r| r.state == "done") {
            break;
        }
        assert!(Instant::now() < until, "{removals:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let approved = t.events("batch_approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(
        approved[0].actor, "alice",
        "the action is audited with the person's name"
    );
    let removal = t.removal("e1").await;
    browser
        .goto(&format!("{base}/removals/{}", removal.id))
        .await
        .unwrap();
    let page = text(&browser).await;
    assert!(
        page.contains("done") && page.contains("vendor_call"),
        "{page}"
    );
    shoot(&browser, "removal").await;
    browser.goto(&format!("{base}/people/e1")).await.unwrap();
    assert!(text(&browser).await.contains("removal_done"));
    shoot(&browser, "person").await;

    // The audit search, its download, and the chain's verification.
    browser.goto(&format!("{base}/audit")).await.unwrap();
    browser
        .find(Locator::Css("input[name=employee]"))
        .await
        .unwrap()
        .send_keys("e2")
        .await
        .unwrap();
    browser
        .find(Locator::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = text_once(&browser, "removal_done").await;
    assert!(
        page.contains("removal_done") && !page.contains("p1@example.org"),
        "{page}"
    );
    shoot(&browser, "audit").await;
    let cookies = cookie_header(&browser).await;
    let http = reqwest::Client::new();
    let csv = http
        .get(format!("{base}/audit?employee=e2&format=csv"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("seq,at,actor,event"), "{csv}");
    assert!(
        csv.contains("removal_done") && csv.contains("e2") && !csv.contains(",e1,"),
        "{csv}"
    );
    browser
        .find(Locator::Id("verify"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = text_once(&browser, "The chain verifies").await;
    assert!(page.contains("The chain verifies"), "{page}");

    browser
        .goto(&format!("{base}/revoke?since=2026-01-01"))
        .await
        .unwrap();
    let page = text(&browser).await;
    assert!(
        page.contains("Time to revoke") && page.contains("wiki"),
        "{page}"
    );
    assert!(
        browser
            .find(Locator::Css("figure svg polyline, figure svg circle"))
            .await
            .is_ok()
    );
    // The page's figures are `offboard report`'s.
    let report = offboard::report::build(
        &t.app.store,
        &t.app.config,
        &offboard::report::ReportFilter {
            since: offboard::cli::parse_time_arg("2026-01-01"),
            ..Default::default()
        },
        t.clock.now(),
    )
    .await
    .unwrap();
    let s = &report.summary;
    let human = |v: Option<i64>| offboard::report::human(v.unwrap());
    for expected in [
        format!("{} removals: {} done, {} open", s.removals, s.done, s.open),
        format!(
            "median {}, worst {}",
            human(s.median_time_to_revoke_seconds),
            human(s.worst_time_to_revoke_seconds)
        ),
        format!("{} SLA breaches", s.breaches),
        format!("Breaches ({})", s.breaches),
    ] {
        assert!(page.contains(&expected), "{expected:?} in {page}");
    }
    shoot(&browser, "revoke").await;
    browser.goto(&format!("{base}/rejects")).await.unwrap();
    let page = text(&browser).await;
    assert!(
        page.contains("effective_date") || page.contains("email"),
        "{page}"
    );
    assert!(
        !page.contains("not-a-date"),
        "rejected values are never shown: {page}"
    );
    shoot(&browser, "rejects").await;

    // A second held batch; a viewer sees it but gets no buttons, and a POST of theirs is refused.
    t.write_feed(&format!("{}{}", leavers(1, 3), leavers(4, 6)));
    t.poll().await;
    browser.delete_all_cookies().await.unwrap();
    log_in(&browser, &base, VICTOR).await;
    browser.goto(&format!("{base}/batches/2")).await.unwrap();
    let page = text(&browser).await;
    assert!(page.contains("takes the approver role"), "{page}");
    assert!(
        browser.find(Locator::Id("approve")).await.is_err(),
        "no approve button for a viewer"
    );
    let viewer = cookie_header(&browser).await;
    let refused = http
        .post(format!("{base}/batches/2/approve"))
        .header("cookie", &viewer)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", csrf_of(&viewer)))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    // Another site's form, even with the approver's cookies, is refused; so is one without the token.
    let cross = http
        .post(format!("{base}/batches/2/approve"))
        .header("cookie", &cookies)
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", csrf_of(&cookies)))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    let session_only: String = cookies
        .split("; ")
        .filter(|c| c.starts_with("offboard_session="))
        .collect();
    let tokenless = http
        .post(format!("{base}/batches/2/approve"))
        .header("cookie", session_only)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(tokenless.status().as_u16(), 403);
    assert_eq!(
        t.events("batch_approved").await.len(),
        1,
        "batch 2 is still held"
    );

    // Nothing secret on any page: the push token and the login tokens.
    for path in [
        "/",
        "/batches/1",
        "/audit",
        "/revoke",
        "/rejects",
        "/people/e1",
    ] {
        let html = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert!(
            html.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        let html = html.text().await.unwrap();
        for secret in [PUSH, ALICE, VICTOR] {
            assert!(!html.contains(secret), "{secret} on {path}");
        }
    }
    browser.close().await.unwrap();
    let _ = stop.send(true);
    running.join.await.unwrap().unwrap();
}

#[tokio::test]
async fn behind_a_proxy_only_its_addresses_name_the_person_and_four_eyes_holds() {
    let proxied = "[console]\nlisten = \"127.0.0.1:0\"\nauth = \"proxy\"\ntrusted_proxies = [\"127.0.0.1\"]\napprovers = [\"alice\", \"bea\"]\nviewers = [\"*\"]\n";
    let t = daemon(proxied).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = t.app.clone().start(stopped).await.unwrap();
    let base = format!("http://127.0.0.1:{}", running.console_addr.unwrap().port());
    let http = reqwest::Client::new();
    let get = |user: Option<&'static str>, path: &'static str| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(user) = user {
            request = request.header("X-Forwarded-User", user);
        }
        request.send()
    };
    assert_eq!(
        get(None, "/").await.unwrap().status().as_u16(),
        403,
        "the proxy named nobody"
    );
    let page = get(Some("zoe"), "/").await.unwrap().text().await.unwrap();
    assert!(page.contains("zoe · viewer"), "{page}");

    // A batch alice sent by hand (an enqueue) is held; she may not approve it, bea may.
    let now = t.clock.now();
    let records = (10..13)
        .map(|i| offboard::feed::intake::Record {
            row: i,
            line: None,
            result: Ok(offboard::domain::FeedRow {
                person: offboard::domain::Person {
                    employee_id: format!("m{i}"),
                    email: Some(format!("m{i}@example.org")),
                    username: None,
                    upn: None,
                    display_name: None,
                    attributes: Default::default(),
                },
                status: offboard::domain::HrStatus::Terminated { effective_at: now },
            }),
        })
        .collect();
    let batch = offboard::feed::intake::Batch {
        source: offboard::feed::intake::BatchSource::Cli,
        source_ref: None,
        actor: "alice".into(),
        content_sha256: None,
        records,
    };
    let summary = offboard::feed::intake::ingest(
        &t.app.store,
        &t.app.config.connectors,
        &t.app.config.safety,
        batch,
        now,
    )
    .await
    .unwrap();
    assert!(summary.held);
    let path = format!("/batches/{}", summary.batch_id);
    let page = http
        .get(format!("{base}{path}"))
        .header("X-Forwarded-User", "alice")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("another approver must decide"), "{page}");
    let csrf_cookie = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| {
                v.to_str()
                    .ok()?
                    .split(';')
                    .next()?
                    .strip_prefix("offboard_csrf=")
                    .map(str::to_string)
            })
            .unwrap()
    };
    let first = get(Some("alice"), "/").await.unwrap();
    let token = csrf_cookie(&first);
    let approve = |user: &'static str| {
        http.post(format!("{base}{path}/approve"))
            .header("X-Forwarded-User", user)
            .header("cookie", format!("offboard_csrf={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}", token.clone()))
            .send()
    };
    assert_eq!(approve("alice").await.unwrap().status().as_u16(), 403);
    assert_eq!(
        approve("zoe").await.unwrap().status().as_u16(),
        403,
        "a viewer"
    );
    let approved = approve("bea").await.unwrap();
    assert!(
        approved.status().is_redirection() || approved.status().is_success(),
        "{}",
        approved.status()
    );
    assert_eq!(t.events("batch_approved").await[0].actor, "bea");
    let _ = stop.send(true);
    running.join.await.unwrap().unwrap();

    // From an address that is not a trusted proxy, nobody is named.
    let elsewhere = "[console]\nlisten = \"127.0.0.1:0\"\nauth = \"proxy\"\ntrusted_proxies = [\"10.9.9.9\"]\nviewers = [\"*\"]\n";
    let t = daemon(elsewhere).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = t.app.clone().start(stopped).await.unwrap();
    let refused = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/",
            running.console_addr.unwrap().port()
        ))
        .header("X-Forwarded-User", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("only through its reverse proxy")
    );
    let _ = stop.send(true);
    running.join.await.unwrap().unwrap();
}

/// The time-to-revoke page serves figures the console read in the background (so a large database
/// never makes it wait), and the overview lists legal holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_revoke_is_read_ahead_and_the_overview_lists_legal_holds() {
    let proxied = "[console]\nlisten = \"127.0.0.1:0\"\nauth = \"proxy\"\ntrusted_proxies = [\"127.0.0.1\"]\nviewers = [\"*\"]\n";
    let t = daemon(proxied).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = t.app.clone().start(stopped).await.unwrap();
    let base = format!("http://127.0.0.1:{}", running.console_addr.unwrap().port());
    let http = reqwest::Client::new();
    let page = |path: &'static str| {
        let request = http
            .get(format!("{base}{path}"))
            .header("X-Forwarded-User", "zoe");
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let asked_at = t.clock.now();
    let revoke = page("/revoke").await;
    let as_of = revoke
        .split("as of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no 'as of' time: {revoke}"));
    assert!(
        as_of < asked_at,
        "read before it was asked for: as of {as_of}, asked at {asked_at}"
    );

    let stages = offboard::config::hold_stages(&t.app.config.connectors);
    t.app
        .store
        .hold_add(
            "e2",
            "matter 7",
            None,
            "cli",
            &stages,
            "legal",
            t.clock.now(),
        )
        .await
        .unwrap();
    let overview = page("/").await;
    assert!(overview.contains("Legal holds (1)"), "{overview}");
    assert!(overview.contains("matter 7"), "{overview}");
    stop.send(true).unwrap();
    running.join.await.unwrap().unwrap();
}
