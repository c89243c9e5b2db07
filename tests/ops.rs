//! Operations: /metrics after a run with successes, retries and a failure; the evidence report.

use std::time::Duration;

use offboard::report::{self, ReportFilter};

use crate::helpers::{OK_SCRIPT, TestApp};

/// ok@ succeeds, flaky@ fails once then succeeds, bad@ fails for good.
const SCRIPT: &str = "#!/bin/sh\nd=\"$(dirname \"$0\")\"\ncase \"$1\" in\n\
  bad@*) exit 2;;\n\
  flaky@*) if [ ! -f \"$d/flaky\" ]; then touch \"$d/flaky\"; exit 1; fi;;\n\
esac\nexit 0\n";

#[tokio::test]
async fn metrics_expose_queue_state_attempts_and_time_to_revoke() {
    let t = TestApp::exec(
        SCRIPT,
        "[connector.retry]\ninitial = \"250ms\"\nmax = \"250ms\"\n",
    )
    .await;
    t.write_feed(
        "e1,ok@example.org,ok,,O,2026-01-05,Terminated\ne2,flaky@example.org,f,,F,2026-01-05,Terminated\n\
         e3,bad@example.org,b,,B,2026-01-05,Terminated\ne4,later@example.org,l,,L,2035-01-05,Terminated\n",
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    let config = offboard::config::Config::load(&t.path("offboard.toml")).unwrap();
    let app = offboard::app::App::build(config, t.clock.clone())
        .await
        .unwrap();
    let running = app.start(rx).await.unwrap();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let states: Vec<String> = t.removals().await.into_iter().map(|r| r.state).collect();
        if states.iter().filter(|s| *s == "done").count() == 2
            && states.contains(&"failed".to_string())
        {
            break;
        }
    }

    let text = reqwest::get(format!("http://{}/metrics", running.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.send(true).unwrap();
    running.join.await.unwrap().unwrap();

    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        value(
            "offboard_removals",
            &[("connector", "app"), ("state", "done")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "offboard_removals",
            &[("connector", "app"), ("state", "failed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "offboard_removals",
            &[("connector", "app"), ("state", "pending")]
        ),
        1.0
    );
    // Every state of a configured connector has a series, 0 where it has no removal.
    for state in ["held", "on_hold", "running", "planned", "cancelled"] {
        assert_eq!(
            value(
                "offboard_removals",
                &[("connector", "app"), ("state", state)]
            ),
            0.0,
            "{state}"
        );
    }
    assert_eq!(value("offboard_build_info", &[]), 1.0);
    assert_eq!(
        value("offboard_pushes_total", &[("result", "accepted")]),
        0.0
    );
    assert!(value("process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(value("process_open_fds", &[]) > 0.0);
    assert_eq!(
        value(
            "offboard_removal_attempts_total",
            &[("connector", "app"), ("result", "done")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "offboard_removal_attempts_total",
            &[("connector", "app"), ("result", "retry")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "offboard_removal_attempts_total",
            &[("connector", "app"), ("result", "failed")]
        ),
        1.0
    );
    assert_eq!(
        value("offboard_feed_polls_total", &[("result", "ingested")]),
        1.0
    );
    assert_eq!(value("offboard_held_batches", &[]), 0.0);
    assert_eq!(value("offboard_oldest_due_removal_age_seconds", &[]), 0.0);
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "offboard_time_to_revoke_seconds")
        .expect("a time-to-revoke histogram");
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
        panic!("time to revoke is a histogram");
    };
    assert_eq!(buckets.last().unwrap().count, 2.0, "two removals done");
    assert!(
        !text.contains("ok@example.org"),
        "no personal data in labels"
    );
}

#[tokio::test]
async fn the_report_shows_times_to_revoke_breaches_and_reasons() {
    // Two connectors: `fast` has no grace; `slow` keeps access for 3 days (policy, not a breach).
    let connectors = "[[connector]]\nname = \"fast\"\nkind = \"exec\"\nprogram = \"ok.sh\"\n\
                      [[connector]]\nname = \"slow\"\nkind = \"exec\"\nprogram = \"ok.sh\"\ngrace = \"3d\"\nnever_remove = [\"keep@*\"]\n";
    let t = TestApp::with(connectors, &[("ok.sh", OK_SCRIPT)]).await;
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace("[http]", "[report]\nsla = \"1h\"\n\n[http]");
    let t = TestApp::in_dir(t.dir, &text).await;
    let now = t.clock.now();
    let day = |d: i64| {
        (now - chrono::Duration::days(d))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    // e1 became effective 3 days ago and e2 30 minutes ago; keep@ is excluded on `slow`.
    let recent = (now - chrono::Duration::minutes(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    t.write_feed(&format!(
        "e1,a@example.org,a,,A,{},Terminated\ne2,b@example.org,b,,B,{recent},Terminated\ne3,keep@example.org,k,,K,{},Terminated\n",
        day(3),
        day(3)
    ));
    t.poll().await;
    t.drain().await;

    let r = report::build(
        &t.app.store,
        &t.app.config,
        &ReportFilter::default(),
        t.clock.now(),
    )
    .await
    .unwrap();

    let row = |e: &str, c: &str| {
        r.rows
            .iter()
            .find(|x| x.employee_id == e && x.connector == c)
            .unwrap()
            .clone()
    };
    // e1 on fast: removed about 3 days after the effective time with a 1 h SLA: a breach.
    let e1 = row("e1", "fast");
    assert_eq!(e1.state, "done");
    assert_eq!(e1.removed_at_from, Some("answer"));
    assert!(e1.breach);
    assert!((e1.time_to_revoke_seconds.unwrap() - 3 * 86_400).abs() < 120);
    // e1 on slow: due just now (3 days ago + 3 d), deadline in an hour: in time.
    assert!(!row("e1", "slow").breach);
    // e2 on fast: 30 minutes, within the hour.
    let e2 = row("e2", "fast");
    assert!(!e2.breach);
    assert!((e2.time_to_revoke_seconds.unwrap() - 1800).abs() < 120);
    // e2 on slow is not due yet: open, no breach.
    assert_eq!(row("e2", "slow").state, "pending");
    assert!(!row("e2", "slow").breach);
    let keep = row("e3", "slow");
    assert_eq!(
        (keep.state.as_str(), keep.note.as_deref(), keep.breach),
        ("cancelled", Some("excluded"), false)
    );
    let s = &r.summary;
    assert_eq!(
        (s.leavers, s.removals, s.done, s.open, s.cancelled),
        (3, 6, 4, 1, 1)
    );
    assert_eq!(s.breaches, 2, "e1 and e3 on fast");
    assert!(s.worst_time_to_revoke_seconds.unwrap() >= 3 * 86_400 - 120);
    assert_eq!(s.sla_seconds, 3600);

    // CSV and JSON forms carry the same figures.
    let mut csv = Vec::new();
    report::print(&mut csv, &r, offboard::cli::Format::Csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with(
        "removal_id,employee_id,connector,stage,effective_at,received_at,source,state,outcome,removed_at,removed_at_from,\
         time_to_revoke_seconds,deadline,breach,note,later_stages\n"
    ), "the JSON keys, every column: {csv}");
    assert_eq!(csv.lines().count(), 7);
    assert!(
        csv.lines()
            .any(|l| l.contains(",e1,fast,") && l.contains(",true,")),
        "{csv}"
    );
    let mut json = Vec::new();
    report::print(&mut json, &r, offboard::cli::Format::Json).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["summary"]["breaches"], 2);
    assert_eq!(json["rows"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn json_logs_are_json_lines_with_span_fields_and_no_secret() {
    use std::os::unix::fs::PermissionsExt;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const CANARY: &str = "canary-secret-5f1e9a0b7c";
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "{}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n",
            crate::helpers::HEADER
        )))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(
        dir.path(),
        "remove.sh",
        "#!/bin/sh\necho 'vendor said no' >&2\nexit 1\n",
    );
    for name in ["feed-password", "push-token"] {
        std::fs::write(dir.path().join(name), format!("{CANARY}-{name}")).unwrap();
        std::fs::set_permissions(
            dir.path().join(name),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let text = crate::helpers::config_text("[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n")
        .replace(
            "path = \"feed.csv\"",
            &format!("url = \"{}/leavers.csv\"\nauth = {{ kind = \"basic\", username = \"svc\", password_file = \"feed-password\" }}", server.uri()),
        )
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\npush_token_file = \"push-token\"")
        .replace("format = \"text\"\nlevel = \"warn\"", "format = \"json\"\nlevel = \"debug\"");
    std::fs::write(dir.path().join("offboard.toml"), text).unwrap();

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .arg("run")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert!(
        !stderr.contains(CANARY),
        "a secret reached the log:\n{stderr}"
    );
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let attempt = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Attempt failed"))
        })
        .unwrap_or_else(|| panic!("no failed attempt logged:\n{stderr}"));
    assert_eq!(attempt["level"], "WARN");
    assert_eq!(attempt["span"]["connector"], "app");
    assert_eq!(attempt["span"]["attempt"], 1);
    assert!(attempt["span"]["removal_id"].is_number());
}

#[tokio::test]
async fn a_feed_failing_longer_than_alert_after_is_logged_at_error() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(dir.path(), "remove.sh", OK_SCRIPT);
    let text = crate::helpers::config_text(
        "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n",
    )
    .replace(
        "path = \"feed.csv\"",
        "path = \"missing.csv\"\nalert_after = \"0s\"",
    )
    .replace("format = \"text\"", "format = \"json\"");
    std::fs::write(dir.path().join("offboard.toml"), text).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .arg("run")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let error = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line:\n{stderr}"));
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("feed.alert_after")
    );
}

#[tokio::test]
async fn the_oldest_due_age_is_the_oldest_over_every_connector() {
    // Two connectors; the second has a grace period, so its removals fall due later. Nothing is drained.
    let connectors = "[[connector]]\nname = \"a\"\nkind = \"exec\"\naccount = \"{email}\"\nprogram = \"ok.sh\"\n\
        args = [\"{account}\"]\n\
        [[connector]]\nname = \"b\"\nkind = \"exec\"\naccount = \"{email}\"\nprogram = \"ok.sh\"\n\
        args = [\"{account}\"]\ngrace = \"1d\"\n";
    let t = TestApp::with(connectors, &[("ok.sh", OK_SCRIPT)]).await;
    t.write_feed(
        "e1,one@example.org,one,,One,2026-01-05,Terminated\ne2,two@example.org,two,,Two,2026-01-07,Terminated\n",
    );
    t.poll().await;
    let due: Vec<(String, String)> = t
        .removals()
        .await
        .into_iter()
        .map(|r| (r.connector, r.due_at))
        .collect();
    let oldest = due.iter().map(|(_, d)| d.clone()).min().unwrap();
    let now = t.clock.now();
    let expected =
        (now - offboard::store::parse_ts(&oldest).unwrap()).num_milliseconds() as f64 / 1000.0;

    let text = t.app.metrics.render(&t.app.store, now).await.unwrap();

    let line = text
        .lines()
        .find(|l| l.starts_with("offboard_oldest_due_removal_age_seconds "))
        .unwrap();
    let age: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(expected > 0.0, "{due:?}");
    assert!(
        (age - expected).abs() < 0.001,
        "{line} vs {expected}: {due:?}"
    );
    let status = offboard::status::gather(&t.app.store, now).await.unwrap();
    assert_eq!(status.oldest_due.unwrap().due_at, oldest);
}
