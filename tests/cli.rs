//! The binary: check-config, run --once on the demo, operator commands, and SIGTERM.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::helpers::{OK_SCRIPT, config_text, write_script};

fn offboard(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "test-operator")
        .env_remove("SUDO_USER")
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

fn workspace(connectors: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    std::fs::write(dir.path().join("offboard.toml"), config_text(connectors)).unwrap();
    dir
}

const CONNECTOR: &str = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\nargs = [\"{account}\"]\n";

#[test]
fn the_readme_demo_runs_once_and_exits_zero() {
    // The demo as shipped, copied so the test does not write into the source tree.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("demo.toml"), dir.path().join("demo.toml")).unwrap();
    std::fs::create_dir(dir.path().join("demo")).unwrap();
    for entry in std::fs::read_dir(root.join("demo")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(
                entry.path(),
                dir.path().join("demo").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let config = dir.path().join("demo.toml");

    let first = offboard(&config, &["run", "--once"]);
    assert!(first.status.success(), "{}", text(&first));
    let out = text(&first);
    assert!(out.contains("rejected"), "{out}");
    let second = offboard(&config, &["run", "--once", "--format", "json"]);
    assert!(second.status.success(), "{}", text(&second));
    let json: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        json["summary"]["poll"]["new_terminations"], 0,
        "a re-poll creates nothing"
    );
    assert_eq!(json["summary"]["drain"]["attempts"], 0);

    let removals = offboard(&config, &["removals", "--format", "json"]);
    let removals: serde_json::Value = serde_json::from_slice(&removals.stdout).unwrap();
    let states: Vec<&str> = removals
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"done") && states.contains(&"pending") && states.contains(&"planned"),
        "{states:?}"
    );
    assert!(!states.contains(&"failed"));
    let verify = offboard(&config, &["audit", "verify"]);
    assert!(
        verify.status.success() && text(&verify).starts_with("ok:"),
        "{}",
        text(&verify)
    );
}

#[test]
fn check_config_says_ok_or_names_every_problem() {
    let dir = workspace(CONNECTOR);
    let ok = offboard(&dir.path().join("offboard.toml"), &["check-config"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .lines()
            .any(|l| l == "ok")
    );

    let bad = config_text(CONNECTOR)
        .replace("lease = \"10s\"", "lease = \"10 seconds\"\nleese = 1")
        .replace("schedule = \"0 0 * * * *\"", "schedule = \"*/5 * * * *\"")
        + "auth_token_file = \"x\"\n";
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let out = offboard(&dir.path().join("bad.toml"), &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(msg.contains("leese"), "{msg}");
}

#[test]
fn each_config_mistake_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("unknown key", "[workers]\n", "[workers]\nconcurency = 3\n"),
        ("bad duration", "lease = \"10s\"", "lease = \"ten seconds\""),
        (
            "five-field cron",
            "schedule = \"0 0 * * * *\"",
            "schedule = \"*/5 * * * *\"",
        ),
        (
            "missing secret file",
            "path = \"feed.csv\"",
            "url = \"https://hr.invalid/feed.csv\"\nauth = { kind = \"bearer\", token_file = \"missing-token\" }",
        ),
    ];
    let keys = [
        "workers.concurency",
        "workers.lease",
        "feed.schedule",
        "feed.auth.token_file",
    ];
    for ((label, from, to), key) in cases.iter().zip(keys) {
        let dir = workspace(CONNECTOR);
        let text_ = config_text(CONNECTOR).replacen(from, to, 1);
        std::fs::write(dir.path().join("offboard.toml"), text_).unwrap();
        let out = offboard(&dir.path().join("offboard.toml"), &["check-config"]);
        assert_eq!(out.status.code(), Some(1), "{label}");
        let msg = text(&out);
        assert!(msg.contains(key), "{label}: expected {key} in {msg}");
        // A config problem stops `run` too, before anything starts.
        let run = offboard(&dir.path().join("offboard.toml"), &["run", "--once"]);
        assert_eq!(run.status.code(), Some(1), "{label}");
        assert!(
            !dir.path().join("state").exists(),
            "{label}: nothing may start on a bad config"
        );
    }
}

#[test]
fn operator_commands_are_audited_with_the_actor() {
    let dir = workspace(&format!("{CONNECTOR}exit_permanent = [2]\n"));
    write_script(dir.path(), "remove.sh", "#!/bin/sh\nexit 2\n");
    let config = dir.path().join("offboard.toml");

    let enq = offboard(
        &config,
        &[
            "enqueue",
            "--employee-id",
            "e42",
            "--email",
            "Zed@Example.org",
            "--effective",
            "2026-01-05",
        ],
    );
    assert!(enq.status.success(), "{}", text(&enq));
    let run = offboard(&config, &["run", "--once"]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "a failed removal makes --once exit 1: {}",
        text(&run)
    );
    let retry = offboard(&config, &["retry", "--failed", "--actor", "alice"]);
    assert!(text(&retry).contains("retried 1"), "{}", text(&retry));
    let cancel = offboard(&config, &["cancel", "1", "--reason", "legal hold"]);
    assert!(cancel.status.success(), "{}", text(&cancel));

    let audit = offboard(&config, &["audit", "--employee", "e42", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let find = |event: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["event"] == event)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("operator_retry")["actor"], "alice");
    assert_eq!(find("operator_cancel")["actor"], "test-operator");
    assert_eq!(find("termination_created")["employee_id"], "e42");
    let removals = offboard(
        &config,
        &["removals", "--state", "cancelled", "--format", "csv"],
    );
    let csv = String::from_utf8_lossy(&removals.stdout);
    assert!(
        csv.starts_with("id,employee_id,connector,stage,account,state,due_at,attempts,outcome,last_error,effective_at,finished_at\n"),
        "the JSON keys, every column: {csv}"
    );
    assert!(
        csv.contains("zed@example.org"),
        "email is lower-cased: {csv}"
    );

    let bad = offboard(&config, &["enqueue", "--employee-id", "x y"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad).contains("--employee-id: invalid_value"),
        "{}",
        text(&bad)
    );
}

#[test]
fn import_queues_every_account_of_an_export_as_one_batch() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        dir.path().join("export.csv"),
        "User ID,Name\nu-1,One\nu-2,Two\n,Blank\nu-1,Again\n",
    )
    .unwrap();

    let out = offboard(
        &config,
        &[
            "import",
            "export.csv",
            "--connector",
            "app",
            "--column",
            "user id",
        ],
    );
    // The file path is relative to the working directory, which is not the temp dir.
    assert_eq!(out.status.code(), Some(1));
    let out = offboard(
        &config,
        &[
            "import",
            dir.path().join("export.csv").to_str().unwrap(),
            "--connector",
            "app",
            "--column",
            "user id",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 account(s) queued"), "{}", text(&out));
    assert!(text(&out).contains("1 rejected"), "{}", text(&out));
    let run = offboard(&config, &["run", "--once", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["summary"]["drain"]["done"], 2);
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_the_next_start_finishes_the_work() {
    let dir = workspace(&CONNECTOR.replace("remove.sh", "slow.sh"));
    write_script(dir.path(), "slow.sh", "#!/bin/sh\nsleep 1\nexit 0\n");
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n",
            crate::helpers::HEADER
        ),
    )
    .unwrap();
    let config = dir.path().join("offboard.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the daemon did not stop within 10 s of SIGTERM");
    });
    assert!(status.success(), "exit status {status:?}");

    let after = offboard(&config, &["run", "--once", "--format", "json"]);
    let removals = offboard(&config, &["removals", "--format", "json"]);
    let removals: serde_json::Value = serde_json::from_slice(&removals.stdout).unwrap();
    assert_eq!(removals[0]["state"], "done", "{}", text(&after));
}

/// With neither $USER nor $SUDO_USER (cron, kubectl exec) and no --actor, the commands the audit log
/// attributes to a person refuse to run and change nothing; with --actor they run.
#[test]
fn operator_commands_without_a_named_operator_are_refused() {
    let dir = workspace(&format!("{CONNECTOR}exit_permanent = [2]\n"));
    write_script(dir.path(), "remove.sh", "#!/bin/sh\nexit 2\n");
    let config = dir.path().join("offboard.toml");
    let anonymous = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("USER")
            .env_remove("SUDO_USER")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let enqueue = [
        "enqueue",
        "--employee-id",
        "e42",
        "--email",
        "zed@example.org",
        "--effective",
        "2026-01-05",
    ];
    let refused = anonymous(&enqueue);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("needs a named operator") && text(&refused).contains("--actor"),
        "{}",
        text(&refused)
    );
    let mut named = enqueue.to_vec();
    named.extend(["--actor", "ops-bot"]);
    assert!(anonymous(&named).status.success());
    assert_eq!(anonymous(&["run", "--once"]).status.code(), Some(1));
    for args in [
        &["retry", "--failed"][..],
        &["cancel", "1", "--reason", "x"][..],
        &["approve", "1"][..],
        &["reject", "1"][..],
    ] {
        let out = anonymous(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("needs a named operator"),
            "{args:?}: {}",
            text(&out)
        );
    }
    let removals = anonymous(&["removals", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&removals.stdout).unwrap();
    assert_eq!(
        rows[0]["state"], "failed",
        "nothing was retried or cancelled"
    );
    let audit = anonymous(&["audit", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor"] != "unknown"),
        "no row is attributed to nobody"
    );
}

/// `run --once` exits non-zero when the feed poll failed, naming it, and does the retries that fall
/// due within the run instead of leaving them for the next one.
#[test]
fn run_once_fails_on_a_failed_poll_and_does_the_retries_that_fall_due_within_it() {
    let dir = workspace(&format!(
        "{CONNECTOR}[connector.retry]\ninitial = \"100ms\"\nmax = \"200ms\"\n"
    ));
    write_script(
        dir.path(),
        "remove.sh",
        "#!/bin/sh\nd=$(dirname \"$0\")\nif [ -e \"$d/tried\" ]; then exit 0; fi\ntouch \"$d/tried\"\nexit 1\n",
    );
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n",
            crate::helpers::HEADER
        ),
    )
    .unwrap();
    let run = offboard(&config, &["run", "--once"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains("2 attempts; 1 done"), "{}", text(&run));
    assert!(text(&run).contains("result: ok"), "{}", text(&run));

    // The feed is gone: the poll fails, and so does the run, saying why.
    std::fs::remove_file(dir.path().join("feed.csv")).unwrap();
    let run = offboard(&config, &["run", "--once"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(
        text(&run).contains("result: FAILED: the feed poll failed"),
        "{}",
        text(&run)
    );
    let json = offboard(&config, &["run", "--once", "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("the feed poll failed")
    );
}

/// Every listing takes the same `-o` formats and `--no-headers`, status and `run --once` included.
#[test]
fn every_listing_speaks_table_wide_json_yaml_and_csv() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n",
            crate::helpers::HEADER
        ),
    )
    .unwrap();
    let once = offboard(&config, &["run", "--once", "-o", "yaml"]);
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    let yaml = String::from_utf8_lossy(&once.stdout).to_string();
    assert!(yaml.contains("\"ok\": true\n"), "{yaml}");
    let once = offboard(&config, &["run", "--once", "-o", "csv", "--no-headers"]);
    let csv = String::from_utf8_lossy(&once.stdout).to_string();
    assert!(csv.lines().any(|l| l == "ok,true"), "{csv}");

    let status = offboard(&config, &["status", "-o", "csv"]);
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .starts_with("connector,state,removals\napp,done,1\n"),
        "{}",
        text(&status)
    );
    let table = String::from_utf8_lossy(&offboard(&config, &["removals"]).stdout).to_string();
    let wide =
        String::from_utf8_lossy(&offboard(&config, &["removals", "-o", "wide"]).stdout).to_string();
    assert!(
        !table.contains("FINISHED_AT") && wide.contains("FINISHED_AT"),
        "{table}\n{wide}"
    );
    let bare = String::from_utf8_lossy(
        &offboard(&config, &["removals", "--output", "wide", "--no-headers"]).stdout,
    )
    .to_string();
    assert!(bare.starts_with("1 "), "{bare}");
    let yaml =
        String::from_utf8_lossy(&offboard(&config, &["audit", "-o", "yaml"]).stdout).to_string();
    assert!(
        yaml.starts_with("- \"actor\": ") && yaml.contains("\n  \"seq\": 1\n"),
        "{yaml}"
    );
    for args in [
        &["plan", "-o", "yaml"][..],
        &["report", "-o", "wide"],
        &["rejects", "-o", "yaml"],
        &["rejected", "-o", "csv"],
        &["connector", "list", "-o", "json"],
        &["hold", "list", "-o", "wide"],
    ] {
        let o = offboard(&config, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
}

/// `offboard rejects` lists the rejected rows of the feed (where and why, never their values).
#[test]
fn rejects_lists_the_rejected_feed_rows_with_row_line_field_and_reason() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n,bob@example.org,bob,,Bob,2026-01-05,Terminated\ne3,c@example.org,c,,C,2026-02-30,Terminated\n",
            crate::helpers::HEADER
        ),
    )
    .unwrap();
    assert_eq!(offboard(&config, &["run", "--once"]).status.code(), Some(0));

    let json = offboard(&config, &["rejects", "--format", "json"]);
    assert!(json.status.success(), "{}", text(&json));
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (
            rows[0]["row"].as_i64(),
            rows[0]["line"].as_i64(),
            rows[0]["field"].as_str(),
            rows[0]["reason"].as_str()
        ),
        (Some(2), Some(3), Some("employee_id"), Some("missing"))
    );
    assert_eq!(rows[1]["field"], "effective_date");
    assert_eq!(rows[0]["batch_id"], 1);
    assert!(!String::from_utf8_lossy(&json.stdout).contains("bob@example.org"));

    let csv = offboard(&config, &["rejects", "--batch", "1", "--format", "csv"]);
    assert!(
        String::from_utf8_lossy(&csv.stdout)
            .starts_with("batch_id,received_at,source,row,line,field,reason\n"),
        "{}",
        text(&csv)
    );
    let none = offboard(&config, &["rejects", "--batch", "99", "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "[]");
}

/// `check-config --probe` reads the feed as the first poll will: a CSV without the default `upn`
/// column is fine for both, one without the `status` column fails both with the same words; and
/// `plan` works before any database exists, creating none.
#[test]
fn check_config_probe_predicts_the_first_poll_and_plan_works_on_a_fresh_install() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    let db = dir.path().join("state/offboard.db");
    std::fs::write(
        dir.path().join("feed.csv"),
        "employee_id,email,effective_date,status\ne1,ann@example.org,2026-01-05,Terminated\n",
    )
    .unwrap();
    let plan = offboard(&config, &["plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("no database at"), "{}", text(&plan));
    assert!(!db.exists(), "plan created no database");

    let check = offboard(&config, &["check-config", "--probe"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("1 records read"), "{}", text(&check));
    let run = offboard(&config, &["run", "--once"]);
    assert!(run.status.success(), "{}", text(&run));

    std::fs::write(
        dir.path().join("feed.csv"),
        "employee_id,email,effective_date\ne2,bob@example.org,2026-01-05\n",
    )
    .unwrap();
    let check = offboard(&config, &["check-config", "--probe"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let run = offboard(&config, &["run", "--once"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let said = |o: &Output| {
        text(o)
            .lines()
            .find(|l| l.contains("\"status\""))
            .map(|l| l[l.find("column").unwrap()..].to_string())
    };
    assert!(said(&check).is_some(), "{}", text(&check));
    assert_eq!(
        said(&check),
        said(&run),
        "check-config says what the run says"
    );
}

/// `offboard backup` writes a consistent copy and verifies its audit chain; it never overwrites.
#[test]
fn backup_writes_a_verified_copy_and_never_overwrites() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n",
            crate::helpers::HEADER
        ),
    )
    .unwrap();
    assert!(offboard(&config, &["run", "--once"]).status.success());
    let copy = dir.path().join("copy.db");
    let backup = offboard(&config, &["backup", "--out", copy.to_str().unwrap()]);
    if crate::helpers::postgres_server().is_some() {
        // PostgreSQL has its own backups; the command says so instead of copying anything.
        assert_eq!(backup.status.code(), Some(1), "{}", text(&backup));
        assert!(text(&backup).contains("pg_dump"), "{}", text(&backup));
        assert!(!copy.exists());
        return;
    }
    assert!(backup.status.success(), "{}", text(&backup));
    assert!(
        text(&backup).contains("its audit chain verifies"),
        "{}",
        text(&backup)
    );
    // The copy is a database of its own, with the removal done.
    let copied = std::fs::read(&copy).unwrap();
    assert!(copied.starts_with(b"SQLite format 3\0"));
    let again = offboard(&config, &["backup", "--out", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("refusing to overwrite"),
        "{}",
        text(&again)
    );
}

/// A `--connector` that is not configured is an error naming the configured ones, not an empty list.
#[test]
fn an_unknown_connector_name_is_an_error_everywhere() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    assert!(offboard(&config, &["migrate"]).status.success());
    for args in [
        &["removals", "--connector", "wikki"][..],
        &["report", "--connector", "wikki"][..],
        &["audit", "--connector", "wikki"][..],
        &["retry", "--failed", "--connector", "wikki"][..],
        &["connector", "resume", "wikki"][..],
    ] {
        let out = offboard(&config, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("no connector named \"wikki\"")
                && text(&out).contains("configured: app"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert!(
        offboard(&config, &["removals", "--connector", "app"])
            .status
            .success()
    );
}

/// `offboard migrate --to postgres://...` moves a SQLite database whole: the daemon goes on from
/// it on PostgreSQL, with one audit chain across the move. Runs in the PostgreSQL pass.
#[test]
fn migrate_to_moves_a_sqlite_database_to_postgres_and_the_chain_goes_on() {
    let Some(server) = crate::helpers::postgres_server() else {
        eprintln!("migrate --to: runs in the PostgreSQL pass of scripts/test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    let config = dir.path().join("offboard.toml");
    let sqlite = crate::helpers::config_text_on("sqlite://state/offboard.db", CONNECTOR);
    std::fs::write(&config, &sqlite).unwrap();
    let leaver = |id: &str| format!("{id},{id}@example.org,{id},,{id},2026-01-05,Terminated\n");
    std::fs::write(
        dir.path().join("feed.csv"),
        format!("{}{}{}", crate::helpers::HEADER, leaver("e1"), leaver("e2")),
    )
    .unwrap();
    assert!(offboard(&config, &["run", "--once"]).status.success());
    let rows_before: usize = text(&offboard(&config, &["audit", "--format", "json"]))
        .matches("\"seq\"")
        .count();

    let target = crate::helpers::new_postgres_database(&server);
    let moved = offboard(&config, &["migrate", "--to", &target]);
    assert!(moved.status.success(), "{}", text(&moved));
    assert!(text(&moved).contains("ok: moved to"), "{}", text(&moved));
    assert!(
        text(&moved).contains(&format!("audit_log: {rows_before} rows")),
        "{}",
        text(&moved)
    );
    assert!(
        text(&moved).contains("removals: 2 rows"),
        "{}",
        text(&moved)
    );
    let again = offboard(&config, &["migrate", "--to", &target]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains("already holds offboard rows"),
        "{}",
        text(&again)
    );

    // The daemon goes on from PostgreSQL: a new leaver, and the chain still verifies whole.
    std::fs::write(
        &config,
        sqlite.replace("sqlite://state/offboard.db", &target),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("feed.csv"),
        format!(
            "{}{}{}{}",
            crate::helpers::HEADER,
            leaver("e1"),
            leaver("e2"),
            leaver("e3")
        ),
    )
    .unwrap();
    let run = offboard(&config, &["run", "--once"]);
    assert!(run.status.success(), "{}", text(&run));
    let removals = offboard(&config, &["removals", "--format", "json"]);
    let removals: Vec<serde_json::Value> = serde_json::from_slice(&removals.stdout).unwrap();
    assert_eq!(removals.len(), 3, "{removals:?}");
    assert!(
        removals.iter().all(|r| r["state"] == "done"),
        "{removals:?}"
    );
    let verify = offboard(&config, &["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let verified: usize = text(&verify)
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!(verified > rows_before, "{}", text(&verify));
}

/// `check-config --probe` on PostgreSQL says whether the server takes this config's connections and
/// writes, as the first start will. Runs in the PostgreSQL pass.
#[test]
fn check_config_probe_reaches_the_postgres_server_or_says_why_not() {
    if crate::helpers::postgres_server().is_none() {
        eprintln!("check-config on PostgreSQL: runs in the PostgreSQL pass of scripts/test");
        return;
    }
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    let check = offboard(&config, &["check-config", "--probe"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("reachable and writable; no offboard tables yet"),
        "{}",
        text(&check)
    );

    // Nobody listens on port 1.
    let text_before = std::fs::read_to_string(&config).unwrap();
    let start = text_before.find("@127.0.0.1:").unwrap() + "@127.0.0.1:".len();
    let end = start + text_before[start..].find('/').unwrap();
    let unreachable = format!("{}1{}", &text_before[..start], &text_before[end..]);
    std::fs::write(&config, unreachable).unwrap();
    let check = offboard(&config, &["check-config", "--probe"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains("cannot connect to the database postgres://offboard@127.0.0.1:1/"),
        "{}",
        text(&check)
    );
}

/// The daemon's first line names its version, where it listens and its database, even with
/// `log.level = "warn"`; nothing else is written at that level on a quiet start.
#[tokio::test]
async fn the_start_line_is_logged_at_any_level_with_the_version_and_the_address() {
    let dir = workspace(CONNECTOR);
    let config = dir.path().join("offboard.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let log = dir.path().join("daemon.log");
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("offboard started")) {
            break line.to_string();
        }
        assert!(std::time::Instant::now() < until, "no start line: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line}");
    assert!(line.contains("address=127.0.0.1:"), "{line}");
    assert!(line.contains("console=off"), "{line}");
    let status = crate::helpers::sigterm_and_wait(&mut child, Duration::from_secs(10))
        .await
        .expect("stopped");
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "only the start line at warn: {text}"
    );
}

/// Shell completions and the manual page come from the command definitions, without a config.
#[test]
fn completions_and_the_manual_page_need_no_config() {
    let nowhere = Path::new("/nonexistent/offboard.toml");
    let bash = offboard(nowhere, &["completions", "bash"]);
    assert!(bash.status.success(), "{}", text(&bash));
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(script.contains("complete -F _offboard"), "{script}");
    assert!(
        script.contains("migrate") && script.contains("--to"),
        "{script}"
    );
    let zsh = offboard(nowhere, &["completions", "zsh"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).contains("#compdef offboard"));
    let man = offboard(nowhere, &["man"]);
    assert!(man.status.success(), "{}", text(&man));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH offboard 1"), "{page}");
    assert!(
        page.contains("completions") && page.contains("quiet"),
        "{page}"
    );
}
