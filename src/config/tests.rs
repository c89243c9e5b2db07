//! Tests of the whole config: defaults, every table's checks, and how problems are reported.

use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::redact_strings;
use super::testing::{FEED_HEAD, parse, parse_with, problem_for, problems, write_file};
use super::*;
use crate::connectors::ConnectorKind;
use crate::domain::{FieldNames, StatusValues, Template};

#[test]
fn example_config_parses_with_its_documented_values() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("scripts/remove-ldap-user"),
        "#!/bin/sh\nexit 0\n",
        0o755,
    );
    let path = dir.path().join("offboard.toml");
    write_file(
        &path,
        include_str!("../../config/offboard.example.toml"),
        0o644,
    );
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.database.sqlite_path(),
        Some(Path::new("/var/lib/offboard/offboard.db"))
    );
    let feed = config.feed.as_ref().unwrap();
    assert!(matches!(&feed.source, FeedSource::File(p) if p.ends_with("hr/terminations.csv")));
    assert_eq!(feed.timezone, chrono_tz::Europe::Amsterdam);
    let connector = config.connector("ldap_cleanup").unwrap();
    assert_eq!(connector.account.source(), "{username}");
    let ConnectorKind::Exec(exec) = &connector.kind else {
        panic!("expected an exec connector");
    };
    assert_eq!(exec.program, dir.path().join("scripts/remove-ldap-user"));
    assert_eq!(connector.retry.max_attempts, 5);
    assert_eq!(connector.retry.initial, config.retry.initial);
    assert!(config.connector("nope").is_none());
}

#[test]
fn example_config_documents_every_key() {
    let example = include_str!("../../config/offboard.example.toml");
    let keys = [
        "url",
        "max_connections",
        "busy_timeout",
        "kind",
        "path",
        "auth",
        "token_file",
        "token_env",
        "username",
        "password_file",
        "password_env",
        "schedule",
        "timezone",
        "timeout",
        "employee_id",
        "email",
        "upn",
        "display_name",
        "effective_date",
        "status",
        "terminated",
        "active",
        "concurrency",
        "lease",
        "idle_poll",
        "shutdown_grace",
        "initial",
        "max",
        "factor",
        "max_attempts",
        "dry_run",
        "format",
        "level",
        "name",
        "account",
        "grace",
        "program",
        "args",
        "exit_already_absent",
        "exit_permanent",
        "rate",
        "max_terminations_per_batch",
        "max_terminations_percent",
        "never_remove",
        "scope",
        "listen",
        "push_token_file",
        "push_token_env",
        "records",
        "cursor_param",
        "sla",
        "alert_after",
        "host",
        "endpoint",
        "api_user_key",
        "application_key_file",
        "application_key_env",
        "fallback_prefixes",
        "base_url",
        "client_id_file",
        "client_id_env",
        "client_secret_file",
        "client_secret_env",
        "match",
        "action",
        "deactivate_fields",
        "page_size",
        "index_ttl",
        "token",
        "users",
        "user",
        "username_file",
        "username_env",
        "url_env",
        "sslmode",
        "ssl_root_cert",
        "connect_timeout",
        "tokens_file",
        "user_header",
        "trusted_proxies",
        "approvers",
        "operators",
        "viewers",
        "four_eyes",
        "to_manager",
        "after",
        "legal_hold_attribute",
        "account_column",
        "last_login_column",
        "session_key_file",
        "session_hours",
    ];
    for key in keys {
        let documented = example.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{key} =")) || line.contains(&format!(" {key} ="))
        });
        assert!(documented, "key {key} is not shown in the example");
    }
    for table in [
        "[database]",
        "[feed]",
        "[feed.columns]",
        "[feed.status]",
        "[feed.attributes]",
        "[http]",
        "[report]",
        "[workers]",
        "[retry]",
        "[safety]",
        "[log]",
        "[console]",
        "[[connector]]",
        "[connector.retry]",
        "[connector.paths]",
    ] {
        assert!(
            example.contains(table),
            "table {table} is not shown in the example"
        );
    }
}

#[test]
fn minimal_config_gets_every_default() {
    let config = parse("").unwrap();
    assert_eq!(config.path, PathBuf::from("/etc/offboard/offboard.toml"));
    assert_eq!(
        config.database.sqlite_path(),
        Some(Path::new("/etc/offboard/offboard.db"))
    );
    assert_eq!(config.database.max_connections, 4);
    assert_eq!(config.database.busy_timeout, Duration::from_secs(5));
    assert!(config.feed.is_none());
    assert_eq!(
        config.workers,
        WorkersConfig {
            concurrency: 4,
            lease: Duration::from_secs(300),
            idle_poll: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(20),
        }
    );
    assert_eq!(
        config.retry,
        RetryPolicy {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(21_600),
            factor: 2.0,
            max_attempts: 12,
        }
    );
    assert!(!config.safety.dry_run);
    assert_eq!(
        config.log,
        LogConfig {
            format: LogFormat::Auto,
            level: "info".into()
        }
    );
    assert!(config.connectors.is_empty());
    assert!(
        config.warnings.iter().any(|w| w.contains("no [feed]")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn minimal_feed_and_connector_get_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("rm"), "#!/bin/sh\n", 0o700);
    let text = format!(
        "{FEED_HEAD}path = \"feed.csv\"\n[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"rm\"\n"
    );
    let config = parse_with(&text, dir.path(), &[]).unwrap();
    let feed = config.feed.unwrap();
    assert!(matches!(&feed.source, FeedSource::File(p) if *p == dir.path().join("feed.csv")));
    assert_eq!(feed.columns, FieldNames::default());
    assert_eq!(feed.statuses, StatusValues::default());
    assert_eq!(feed.timezone, chrono_tz::Tz::UTC);
    assert_eq!(feed.timeout, Duration::from_secs(60));
    let c = &config.connectors[0];
    assert_eq!(c.account.source(), "{email}");
    assert_eq!(
        (c.grace, c.dry_run, c.concurrency),
        (Duration::ZERO, false, 2)
    );
    assert_eq!(c.retry, RetryPolicy::default());
    let ConnectorKind::Exec(exec) = &c.kind else {
        panic!("expected an exec connector");
    };
    assert_eq!(exec.args, Vec::<Template>::new());
    assert_eq!(exec.timeout, Duration::from_secs(30));
    assert_eq!(
        (
            exec.exit_already_absent.as_slice(),
            exec.exit_permanent.as_slice()
        ),
        (&[3][..], &[2][..])
    );
}

#[test]
fn database_urls_resolve_against_the_config_dir_and_a_password_never_sits_in_one() {
    let db = |url: &str| {
        parse(&format!("[database]\nurl = \"{url}\"\n")).map(|c| {
            c.database
                .sqlite_path()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
    };
    assert_eq!(
        db("sqlite:///var/lib/x.db").unwrap(),
        PathBuf::from("/var/lib/x.db")
    );
    assert_eq!(
        db("sqlite:rel/x.db").unwrap(),
        PathBuf::from("/etc/offboard/rel/x.db")
    );
    assert_eq!(
        db("sqlite://x.db").unwrap(),
        PathBuf::from("/etc/offboard/x.db")
    );
    let err = db("postgres://offboard:hunter2@db/offboard").unwrap_err();
    assert_eq!(err.problems[0].key, "database.url");
    assert!(
        err.problems[0].message.contains("holds a password"),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(db("sqlite::memory:").is_err());
    assert!(db("mysql://db/offboard").is_err());

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("db-password");
    write_file(&secret, "s3cret-from-a-file\n", 0o600);
    let config = parse(&format!(
        "[database]\nurl = \"postgresql://offboard@db.example:5432/offboard\"\npassword_file = \"{}\"\nsslmode = \"verify-full\"\nmax_connections = 8\n",
        secret.display()
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let crate::config::Backend::Postgres(pg) = &config.database.backend else {
        panic!("a postgres URL makes a PostgreSQL backend")
    };
    assert_eq!(pg.password.as_ref().unwrap().expose(), "s3cret-from-a-file");
    assert_eq!(pg.sslmode.as_deref(), Some("verify-full"));
    assert_eq!(config.database.max_connections, 8);
    assert!(!format!("{:?}", config.database).contains("s3cret"));
    assert_eq!(
        config.database.describe(),
        "postgresql://offboard@db.example:5432/offboard"
    );

    let bad =
        parse("[database]\nurl = \"postgres://offboard@db/offboard\"\nsslmode = \"sometimes\"\n")
            .unwrap_err();
    assert_eq!(bad.problems[0].key, "database.sslmode");
    let sqlite_with_tls =
        parse("[database]\nurl = \"sqlite://x.db\"\nsslmode = \"require\"\n").unwrap_err();
    assert_eq!(sqlite_with_tls.problems[0].key, "database.sslmode");
}

#[test]
fn unknown_top_level_key_is_named_with_its_line() {
    let found = problems("[database]\nurl = \"sqlite://x.db\"\n\n[databse]\nurl = 1\n");
    let p = problem_for(&found, "databse");
    assert!(
        p.message.contains("unknown key `databse`") && p.message.contains("line 4"),
        "{p:?}"
    );
}

#[test]
fn unknown_key_in_feed_is_named_with_its_line() {
    let text = format!("{FEED_HEAD}path = \"f.csv\"\n[feed.columns]\nemial = \"mail\"\n");
    let found = problems(&text);
    let p = problem_for(&found, "feed.columns.emial");
    assert!(
        p.message.contains("unknown field `emial`") && p.message.contains("line 6"),
        "{p:?}"
    );
}

#[test]
fn unknown_key_in_connector_is_named_by_connector_name() {
    let text =
        "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ntimout = \"5s\"\n";
    let found = problems(text);
    let p = problem_for(&found, "connector.ldap.timout");
    assert!(
        p.message.contains("unknown field `timout`") && p.message.contains("line 5"),
        "{p:?}"
    );
    assert!(
        p.message.contains("`grace`"),
        "shared keys should be listed: {p:?}"
    );
}

#[test]
fn an_inactivity_export_needs_every_key_and_at_least_a_day() {
    let exec = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
    let found = problems(&format!("{exec}\n[connector.inactive]\nafter = \"12h\"\n"));
    for key in ["path", "account_column", "last_login_column"] {
        assert!(
            problem_for(&found, &format!("connector.app.inactive.{key}"))
                .message
                .starts_with("missing"),
            "{found:?}"
        );
    }
    assert!(
        problem_for(&found, "connector.app.inactive.after")
            .message
            .contains("under a day"),
        "{found:?}"
    );
    let config = parse(&format!(
        "{exec}\n[connector.inactive]\nafter = \"180d\"\npath = \"logins.csv\"\naccount_column = \"uid\"\nlast_login_column = \"seen\"\n"
    ))
    .unwrap();
    let inactive = config.connectors[0].inactive.as_ref().unwrap();
    assert_eq!(inactive.after, Duration::from_secs(180 * 86_400));
    assert_eq!(inactive.path, PathBuf::from("/etc/offboard/logins.csv"));
}

#[test]
fn stages_are_checked_against_the_kind_and_run_in_order() {
    let exec = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
    let config = parse(&format!(
        "{exec}\n[[connector.stage]]\naction = \"deactivate\"\nafter = \"0d\"\n\n[[connector.stage]]\naction = \"delete\"\nafter = \"30d\"\n"
    ))
    .unwrap();
    let app = &config.connectors[0];
    assert_eq!(
        app.stages
            .iter()
            .map(|s| (s.action.as_str(), s.after))
            .collect::<Vec<_>>(),
        [
            ("deactivate", Duration::ZERO),
            ("delete", Duration::from_secs(30 * 86_400))
        ]
    );
    assert!(!app.destructive("deactivate") && app.destructive("delete"));
    assert_eq!(
        hold_stages(&config.connectors),
        [("app".to_string(), vec!["delete".to_string()])]
    );

    // Without stages: one stage of the connector's own removal after its grace.
    let plain = parse(&format!("{exec}grace = \"2d\"\n")).unwrap();
    assert_eq!(plain.connectors[0].stages.len(), 1);
    assert_eq!(plain.connectors[0].stages[0].action, "");
    assert_eq!(
        plain.connectors[0].stages[0].after,
        Duration::from_secs(2 * 86_400)
    );

    let found = problems(&format!(
        "{exec}grace = \"1d\"\n\n[[connector.stage]]\naction = \"wipe\"\nafter = \"0d\"\n\n[[connector.stage]]\naction = \"delete\"\nafter = \"30d\"\n\n[[connector.stage]]\naction = \"deactivate\"\nafter = \"1d\"\n\n[[connector.stage]]\naction = \"delete\"\n"
    ));
    assert!(
        problem_for(&found, "connector.app.grace")
            .message
            .contains("its own delay"),
        "{found:?}"
    );
    assert!(
        problem_for(&found, "connector.app.stage[0].action")
            .message
            .contains("\"wipe\" is not an action of a exec connector"),
        "{found:?}"
    );
    assert!(
        problem_for(&found, "connector.app.stage[2].after")
            .message
            .contains("comes before"),
        "{found:?}"
    );
    assert!(
        problem_for(&found, "connector.app.stage[3].after")
            .message
            .contains("missing"),
        "{found:?}"
    );
}

#[test]
fn unknown_connector_kind_and_wrong_types_are_refused() {
    let text = "[[connector]]\nname = \"a\"\nkind = \"ldap\"\n[[connector]]\nname = \"b\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ndry_run = \"yes\"\n[workers]\nconcurrency = \"8\"\n";
    let found = problems(text);
    assert!(
        problem_for(&found, "connector.a.kind")
            .message
            .contains("unknown variant `ldap`"),
        "{found:?}"
    );
    assert!(
        problem_for(&found, "connector.b.dry_run")
            .message
            .contains("invalid type"),
        "{found:?}"
    );
    assert!(
        problem_for(&found, "workers.concurrency")
            .message
            .contains("line 10"),
        "{found:?}"
    );
}

#[test]
fn missing_secret_file_is_named_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/feed.csv\"\nauth = {{ kind = \"bearer\", token_file = \"feed-token\" }}\n"
    );
    let err = parse_with(&text, dir.path(), &[]).unwrap_err();
    let p = problem_for(&err.problems, "feed.auth.token_file");
    let expected = format!(
        "cannot read {}: No such file or directory",
        dir.path().join("feed-token").display()
    );
    assert_eq!(p.message, expected);
}

#[test]
fn world_readable_secret_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("token"), "s3cr3t-token\n", 0o644);
    let text = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
    );
    let err = parse_with(&text, dir.path(), &[]).unwrap_err();
    let p = problem_for(&err.problems, "feed.auth.token_file");
    assert!(p.message.ends_with("is world-readable; chmod 600"), "{p:?}");
    assert!(!err.to_string().contains("s3cr3t"));
}

#[test]
fn secret_file_is_read_from_the_credentials_directory_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    write_file(&creds.path().join("token"), "s3cr3t-token\n", 0o600);
    let text = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
    );
    let creds_dir = creds.path().to_str().unwrap();
    let config = parse_with(&text, dir.path(), &[("CREDENTIALS_DIRECTORY", creds_dir)]).unwrap();
    let Some(FeedSource::Http {
        auth: Some(HttpAuth::Bearer { token }),
        ..
    }) = config.feed.map(|f| f.source)
    else {
        panic!("expected an http feed with bearer auth");
    };
    assert_eq!(token.expose(), "s3cr3t-token");
}

#[test]
fn empty_secret_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("token"), "\n", 0o600);
    let text = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
    );
    let err = parse_with(&text, dir.path(), &[]).unwrap_err();
    assert!(
        problem_for(&err.problems, "feed.auth.token_file")
            .message
            .ends_with("is empty")
    );
}

#[test]
fn a_placeholder_secret_from_an_example_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("token"),
        "replace-with-a-long-random-push-token\n",
        0o600,
    );
    let text = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
    );
    let err = parse_with(&text, dir.path(), &[]).unwrap_err();
    assert!(
        problem_for(&err.problems, "feed.auth.token_file")
            .message
            .contains("placeholder")
    );
    let env = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_env = \"T\" }}\n"
    );
    let err = parse_with(&env, dir.path(), &[("T", "changeme")]).unwrap_err();
    assert!(
        problem_for(&err.problems, "feed.auth.token_env")
            .message
            .contains("placeholder")
    );
    assert!(parse_with(&env, dir.path(), &[("T", "9f2c41d07be3a8")]).is_ok());
}

#[test]
fn secret_from_env_is_resolved_and_a_missing_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"basic\", username = \"svc\", password_env = \"FEED_PASSWORD\" }}\n"
    );
    let config = parse_with(&text, dir.path(), &[("FEED_PASSWORD", "pa55word")]).unwrap();
    let Some(FeedSource::Http {
        auth: Some(HttpAuth::Basic { username, password }),
        ..
    }) = config.feed.map(|f| f.source)
    else {
        panic!("expected an http feed with basic auth");
    };
    assert_eq!((username.as_str(), password.expose()), ("svc", "pa55word"));

    let err = parse_with(&text, dir.path(), &[]).unwrap_err();
    assert_eq!(
        problem_for(&err.problems, "feed.auth.password_env").message,
        "environment variable FEED_PASSWORD is not set"
    );
    let err = parse_with(&text, dir.path(), &[("FEED_PASSWORD", "")]).unwrap_err();
    assert!(
        problem_for(&err.problems, "feed.auth.password_env")
            .message
            .ends_with("is empty")
    );
}

#[test]
fn secret_needs_exactly_one_source() {
    let both = format!(
        "{FEED_HEAD}url = \"https://h.example.org/f\"\nauth = {{ kind = \"bearer\", token_file = \"/t\", token_env = \"T\" }}\n"
    );
    assert!(
        problem_for(&problems(&both), "feed.auth.token_file")
            .message
            .contains("not both")
    );
    let neither =
        format!("{FEED_HEAD}url = \"https://h.example.org/f\"\nauth = {{ kind = \"bearer\" }}\n");
    assert!(
        problem_for(&problems(&neither), "feed.auth.token_file")
            .message
            .starts_with("missing")
    );
}

#[test]
fn a_channel_to_managers_takes_no_to_and_only_events_about_one_leaver() {
    let mail = "[[notify]]\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"o@example.org\"\n";
    let found = problems(&format!(
        "{mail}to = [\"ops@example.org\"]\nto_manager = \"manager_email\"\n"
    ));
    assert!(
        problem_for(&found, "notify[0].to_manager")
            .message
            .contains("has no `to`"),
        "{found:?}"
    );
    let found = problems(&format!(
        "{mail}to_manager = \"manager_email\"\nevents = [\"batch_held\"]\n"
    ));
    assert!(
        problem_for(&found, "notify[0].events")
            .message
            .contains("not about one leaver"),
        "{found:?}"
    );
    let found = problems(
        "[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example.org/x\"\nto_manager = \"m\"\n",
    );
    assert!(
        problem_for(&found, "notify[0].to_manager")
            .message
            .contains("only an email channel"),
        "{found:?}"
    );
    let config = parse(&format!("{mail}to_manager = \"manager_email\"\n")).unwrap();
    assert_eq!(
        config.notify[0].events,
        ["removal_failed", "sla_warning", "sla_breach"],
        "a channel to managers gets the events about one leaver by default"
    );
}

#[test]
fn bad_duration_names_the_key_and_shows_the_value() {
    let found = problems(
        "[[connector]]\nname = \"ldap_cleanup\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ntimeout = \"5 minutes\"\n",
    );
    assert_eq!(
        problem_for(&found, "connector.ldap_cleanup.timeout").message,
        "invalid duration \"5 minutes\": expected a number and a unit (ms, s, m, h, d), e.g. \"30s\""
    );
}

#[test]
fn parse_duration_reads_every_unit_and_refuses_the_rest() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
    assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
    for bad in ["", "30", "s", "1.5h", "-1s", " 30s", "30 s", "3w"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
    }
    assert!(
        parse_duration("99999999999999999999d")
            .unwrap_err()
            .contains("too large")
    );
}

#[test]
fn five_field_cron_asks_for_six_fields_seconds_first() {
    let text = "[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = \"*/5 * * * *\"\n";
    let p = problems(text);
    let message = &problem_for(&p, "feed.schedule").message;
    assert!(
        message.contains("six fields, seconds first") && message.contains("\"0 */5 * * * *\""),
        "{message}"
    );
}

#[test]
fn garbage_cron_is_refused_by_the_scheduler_parser() {
    let text = "[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = \"0 */5 * * * banana\"\n";
    let p = problems(text);
    assert!(
        problem_for(&p, "feed.schedule")
            .message
            .starts_with("invalid cron expression"),
        "{p:?}"
    );
    assert!(validate_cron("0 0 25 * * *").is_err());
    assert!(validate_cron(EXAMPLE_SCHEDULE).is_ok());
}

#[test]
fn bad_timezone_is_named() {
    let text = format!("{FEED_HEAD}path = \"f.csv\"\ntimezone = \"Europe/Amsterdm\"\n");
    let p = problems(&text);
    assert!(
        problem_for(&p, "feed.timezone")
            .message
            .contains("\"Europe/Amsterdm\""),
        "{p:?}"
    );
}

#[test]
fn json_feed_maps_fields_by_pointer_and_refuses_csv_keys() {
    let text = "[feed]\nkind = \"json\"\npath = \"f.json\"\nschedule = \"0 0 * * * *\"\n\
                records = \"/employees\"\ncursor_param = \"since\"\n\
                [feed.fields]\nemployee_id = \"/employeeNumber\"\nemail = \"/workEmail\"\nupn = \"\"\n\
                [feed.attributes]\ncompany = \"/company\"\n";
    let feed = parse(text).unwrap().feed.unwrap();
    let FeedFormat::Json {
        records,
        fields,
        cursor_param,
    } = &feed.format
    else {
        panic!("expected a JSON feed");
    };
    assert_eq!(records, "/employees");
    assert_eq!(cursor_param.as_deref(), Some("since"));
    assert_eq!(fields.employee_id, "/employeeNumber");
    assert_eq!(fields.status, "/status");
    assert_eq!(fields.upn, None);
    assert_eq!(
        fields.attributes.get("company").map(String::as_str),
        Some("/company")
    );

    let p = problems(
        "[feed]\nkind = \"json\"\npath = \"f.json\"\nschedule = \"0 0 * * * *\"\n[feed.columns]\nemail = \"Email\"\n[feed.fields]\nstatus = \"no-slash\"\n",
    );
    assert!(
        problem_for(&p, "feed.columns")
            .message
            .contains("[feed.fields]")
    );
    assert!(problem_for(&p, "feed.fields").message.contains("status"));
    let p = problems(&format!("{FEED_HEAD}path = \"f.csv\"\nrecords = \"/x\"\n"));
    assert!(problem_for(&p, "feed.records").message.contains("json"));
}

#[test]
fn columns_can_be_switched_off_but_required_ones_cannot() {
    let text = format!(
        "{FEED_HEAD}path = \"f.csv\"\n[feed.columns]\nupn = \"\"\nemail = \"Work Email\"\n"
    );
    let feed = parse(&text).unwrap().feed.unwrap();
    assert_eq!(feed.columns.upn, None);
    assert_eq!(feed.columns.email.as_deref(), Some("Work Email"));
    let text = format!("{FEED_HEAD}path = \"f.csv\"\n[feed.columns]\nstatus = \"\"\n");
    assert!(
        problem_for(&problems(&text), "feed.columns.status")
            .message
            .contains("required")
    );
}

#[test]
fn status_values_must_not_overlap_or_be_empty() {
    let text = format!(
        "{FEED_HEAD}path = \"f.csv\"\n[feed.status]\nterminated = [\"Terminated\", \"Left\"]\nactive = [\"left\"]\n"
    );
    assert!(
        problem_for(&problems(&text), "feed.status.active")
            .message
            .contains("\"left\"")
    );
    let text = format!("{FEED_HEAD}path = \"f.csv\"\n[feed.status]\nterminated = []\n");
    assert!(
        problem_for(&problems(&text), "feed.status.terminated")
            .message
            .contains("at least one")
    );
}

#[test]
fn feed_url_must_be_http_and_carry_no_credentials() {
    let ftp = format!("{FEED_HEAD}url = \"ftp://hr.example.org/f.csv\"\n");
    assert!(
        problem_for(&problems(&ftp), "feed.url")
            .message
            .contains("http:// or https://")
    );
    let creds = format!("{FEED_HEAD}url = \"https://u:hunter2@hr.example.org/f.csv\"\n");
    let err = parse(&creds).unwrap_err();
    assert!(
        problem_for(&err.problems, "feed.url")
            .message
            .contains("credentials")
    );
    assert!(!err.to_string().contains("hunter2"));
    let both = format!("{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\npath = \"f.csv\"\n");
    assert!(
        problem_for(&problems(&both), "feed")
            .message
            .contains("not both")
    );
}

#[test]
fn duplicate_connector_names_are_refused() {
    let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n\n[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
    let p = problems(text);
    assert!(
        problem_for(&p, "connector[1].name")
            .message
            .contains("duplicate name \"ldap\""),
        "{p:?}"
    );
}

#[test]
fn invalid_or_missing_connector_name_uses_the_position() {
    let text = "[[connector]]\nname = \"LDAP\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[[connector]]\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
    let p = problems(text);
    assert!(
        problem_for(&p, "connector[0].name")
            .message
            .contains("invalid name \"LDAP\"")
    );
    assert!(
        problem_for(&p, "connector[1].name")
            .message
            .starts_with("missing")
    );
}

#[test]
fn account_template_with_unknown_field_is_refused() {
    let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\naccount = \"{mail}\"\n";
    let p = problems(text);
    assert!(
        problem_for(&p, "connector.ldap.account")
            .message
            .contains("unknown field {mail}"),
        "{p:?}"
    );
    let constant = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\naccount = \"admin\"\n";
    assert!(
        problem_for(&problems(constant), "connector.ldap.account")
            .message
            .contains("no person field")
    );
}

#[test]
fn connector_retry_overrides_the_global_defaults() {
    let text = "[retry]\ninitial = \"1m\"\nfactor = 3\n[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[connector.retry]\nmax_attempts = 3\n";
    let config = parse(text).unwrap();
    let retry = config.connectors[0].retry;
    assert_eq!(retry.initial, Duration::from_secs(60));
    assert_eq!(retry.factor, 3.0);
    assert_eq!(retry.max_attempts, 3);
    assert_eq!(config.retry.max_attempts, 12);
    let bad = "[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[connector.retry]\ninitial = \"7h\"\nfactor = 0.5\n";
    let p = problems(bad);
    assert!(
        problem_for(&p, "connector.a.retry.initial")
            .message
            .contains("longer than max")
    );
    problem_for(&p, "connector.a.retry.factor");
}

#[test]
fn global_dry_run_makes_every_connector_dry() {
    let text = "[safety]\ndry_run = true\n[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
    let config = parse(text).unwrap();
    assert!(config.connectors[0].dry_run);
    assert!(config.warnings.iter().any(|w| w.contains("safety.dry_run")));
}

#[test]
fn worker_limits_are_enforced() {
    let p = problems("[workers]\nconcurrency = 0\nlease = \"5s\"\nidle_poll = \"500ms\"\n");
    assert!(
        problem_for(&p, "workers.concurrency")
            .message
            .contains("1 to 256")
    );
    assert!(
        problem_for(&p, "workers.lease")
            .message
            .contains("at least 10s")
    );
    assert!(
        problem_for(&p, "workers.idle_poll")
            .message
            .contains("at least 1s")
    );
}

#[test]
fn several_problems_are_reported_together_one_line_each() {
    let text = "bogus = 1\n[workers]\nlease = \"soon\"\n[retry]\nmax_attempts = 0\n[log]\nformat = \"xml\"\n[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = \"* * * * *\"\ntimezone = \"Mars/Olympus\"\n";
    let err = parse(text).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "bogus",
        "workers.lease",
        "retry.max_attempts",
        "log.format",
        "feed.schedule",
        "feed.timezone",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), err.problems.len());
    assert!(shown.lines().any(|l| {
        l.starts_with("/etc/offboard/offboard.toml: workers.lease: invalid duration")
    }));
}

#[test]
fn every_bad_key_in_a_table_is_reported_and_the_rest_still_validated() {
    let text = "[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = 5\nfoo = 1\nbar = 2\ntimezone = \"Nowhere/X\"\n";
    let found = problems(text);
    for key in ["feed.schedule", "feed.foo", "feed.bar", "feed.timezone"] {
        problem_for(&found, key);
    }
    // The dropped schedule is reported once, as a wrong type, not again as missing.
    let schedule: Vec<&Problem> = found.iter().filter(|p| p.key == "feed.schedule").collect();
    assert_eq!(schedule.len(), 1, "{schedule:?}");
    assert!(schedule[0].message.contains("invalid type"), "{schedule:?}");
}

#[test]
fn string_values_in_type_errors_are_not_echoed() {
    let text = "[feed]\nkind = \"csv\"\nurl = \"https://h.example.org/f\"\nschedule = \"0 0 * * * *\"\nauth = \"tok-\\\"123\"\n";
    let err = parse(text).unwrap_err();
    let p = problem_for(&err.problems, "feed.auth");
    assert!(
        p.message
            .starts_with("invalid type: string, expected a table"),
        "{p:?}"
    );
    assert!(!err.to_string().contains("tok-"), "{err}");
    assert_eq!(
        redact_strings(r#"a string "x\"y" b string "z" c"#),
        "a string b string c"
    );
}

#[test]
fn connector_must_be_an_array_of_tables() {
    let found = problems("[connector]\nname = \"a\"\n");
    assert!(
        problem_for(&found, "connector")
            .message
            .contains("[[connector]]")
    );
}

#[test]
fn toml_syntax_error_reports_the_line() {
    let err = parse("[database]\nurl = \n").unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].message.contains("line 2"), "{err}");
}

#[test]
fn secret_debug_and_display_are_redacted() {
    let secret = Secret::new("hunter2".to_string());
    assert_eq!(format!("{secret:?}"), "<redacted>");
    assert_eq!(secret.to_string(), "<redacted>");
    let auth = HttpAuth::Basic {
        username: "svc".into(),
        password: secret.clone(),
    };
    let debug = format!("{auth:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("svc"),
        "{debug}"
    );
    assert_eq!(secret.expose(), "hunter2");
}

#[test]
fn load_reports_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(&dir.path().join("absent.toml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read the config file: No such file or directory"),
        "{err}"
    );
}

#[test]
fn the_database_url_may_come_from_a_variable_and_a_postgres_password_from_another() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[database]\nurl_env = \"OFFBOARD_DATABASE_URL\"\npassword_env = \"OFFBOARD_DATABASE_PASSWORD\"\n";
    let config = parse_with(
        text,
        dir.path(),
        &[
            (
                "OFFBOARD_DATABASE_URL",
                "postgres://offboard@db:5432/offboard",
            ),
            ("OFFBOARD_DATABASE_PASSWORD", "from-the-secret"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let crate::config::Backend::Postgres(pg) = &config.database.backend else {
        panic!("the variable's URL is a PostgreSQL one")
    };
    assert_eq!(pg.url, "postgres://offboard@db:5432/offboard");
    assert_eq!(pg.password.as_ref().unwrap().expose(), "from-the-secret");

    let err = parse_with(text, dir.path(), &[]).unwrap_err();
    assert!(
        problem_for(&err.problems, "database.url_env")
            .message
            .contains("OFFBOARD_DATABASE_URL is not set"),
        "{err}"
    );
    let both = problems("[database]\nurl = \"sqlite://x.db\"\nurl_env = \"X\"\n");
    assert!(
        problem_for(&both, "database.url_env")
            .message
            .contains("not both")
    );
}

#[test]
fn the_console_takes_a_token_file_or_a_trusted_proxy_and_names_every_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("console-tokens");
    write_file(
        &tokens,
        "# who role token\nalice approver 0123456789abcdef0123\nbob viewer fedcba9876543210fedc\n",
        0o600,
    );
    let config = parse_with(
        "[console]\nlisten = \"127.0.0.1:9465\"\nauth = \"tokens\"\ntokens_file = \"console-tokens\"\n",
        dir.path(),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let console = config.console.unwrap();
    let crate::config::ConsoleAuth::Tokens(users) = &console.auth else {
        panic!("tokens")
    };
    assert_eq!(users.len(), 2);
    assert_eq!(
        (users[0].name.as_str(), users[0].role),
        ("alice", crate::config::Role::Approver)
    );
    assert!(console.four_eyes, "four eyes by default");
    assert!(!format!("{console:?}").contains("0123456789abcdef"));

    write_file(&tokens, "alice boss short\n", 0o600);
    let err = parse_with(
        "[console]\nlisten = \"nowhere\"\nauth = \"tokens\"\ntokens_file = \"console-tokens\"\n",
        dir.path(),
        &[],
    )
    .unwrap_err();
    assert!(
        problem_for(&err.problems, "console.listen")
            .message
            .contains("not an address")
    );
    assert!(
        problem_for(&err.problems, "console.tokens_file line 1")
            .message
            .contains("not viewer, operator or approver")
    );

    let proxy = problems(
        "[console]\nlisten = \"127.0.0.1:9465\"\nauth = \"proxy\"\ntrusted_proxies = [\"not-an-ip\"]\n",
    );
    assert!(
        problem_for(&proxy, "console.trusted_proxies[0]")
            .message
            .contains("not an IP address")
    );
    assert!(
        problem_for(&proxy, "console.viewers")
            .message
            .contains("nobody has a role")
    );
}
