//! Configs that are wrong in the ways people get them wrong, through `offboard check-config` on the
//! real binary: each exits 1 with a message naming the key (and never a panic), and `run` refuses
//! to start on it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::{OK_SCRIPT, config_text, write_script};

const CONNECTOR: &str = "[[connector]]\nname = \"app\"\nkind = \"exec\"\naccount = \"{email}\"\nprogram = \"remove.sh\"\nargs = [\"{account}\"]\n";

/// A secret file with the given mode.
fn secret(dir: &Path, name: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::write(&path, "bad-config-secret-4e1d\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn offboard(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// One mistake: a label, how to make it (replace `from` with `to` in the good config, then
/// `prepare` the directory), the key the message must name and a text it must hold.
struct Mistake {
    label: &'static str,
    from: &'static str,
    to: &'static str,
    prepare: fn(&Path),
    key: &'static str,
    says: &'static str,
}

fn nothing(_: &Path) {}

const MISTAKES: &[Mistake] = &[
    Mistake {
        label: "typo in a key",
        from: "concurrency = 4",
        to: "concurency = 4",
        prepare: nothing,
        key: "workers.concurency",
        says: "unknown field",
    },
    Mistake {
        label: "typo in a connector key",
        from: "program = \"remove.sh\"",
        to: "program = \"remove.sh\"\ntimout = \"5s\"",
        prepare: nothing,
        key: "connector.app.timout",
        says: "unknown field",
    },
    Mistake {
        label: "typo in a table name",
        from: "[retry]",
        to: "[retries]",
        prepare: nothing,
        key: "retries",
        says: "unknown key `retries`, expected one of",
    },
    Mistake {
        label: "a number as a string",
        from: "max_attempts = 5",
        to: "max_attempts = \"5\"",
        prepare: nothing,
        key: "retry.max_attempts",
        says: "invalid type: string, expected i64",
    },
    Mistake {
        label: "a string as a number",
        from: "lease = \"10s\"",
        to: "lease = 10",
        prepare: nothing,
        key: "workers.lease",
        says: "invalid type: integer `10`, expected a string",
    },
    Mistake {
        label: "a list where a string belongs",
        from: "program = \"remove.sh\"",
        to: "program = [\"remove.sh\"]",
        prepare: nothing,
        key: "connector.app.program",
        says: "invalid type: sequence, expected a string",
    },
    Mistake {
        label: "a boolean as a string",
        from: "max_terminations_percent = 100.0",
        to: "max_terminations_percent = 100.0\ndry_run = \"yes\"",
        prepare: nothing,
        key: "safety.dry_run",
        says: "invalid type: string, expected a boolean",
    },
    Mistake {
        label: "secret file missing",
        from: "listen = \"127.0.0.1:0\"",
        to: "listen = \"127.0.0.1:0\"\npush_token_file = \"push-token\"",
        prepare: nothing,
        key: "http.push_token_file",
        says: "cannot read",
    },
    Mistake {
        label: "secret file world-readable",
        from: "listen = \"127.0.0.1:0\"",
        to: "listen = \"127.0.0.1:0\"\npush_token_file = \"push-token\"",
        prepare: |dir| secret(dir, "push-token", 0o644),
        key: "http.push_token_file",
        says: "world-readable; chmod 600",
    },
    Mistake {
        label: "secret variable not set",
        from: "listen = \"127.0.0.1:0\"",
        to: "listen = \"127.0.0.1:0\"\npush_token_env = \"OFFBOARD_BAD_CONFIG_UNSET_TOKEN\"",
        prepare: nothing,
        key: "http.push_token_env",
        says: "OFFBOARD_BAD_CONFIG_UNSET_TOKEN is not set",
    },
    Mistake {
        label: "duplicate connector names",
        from: "[[connector]]",
        to: "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n\n[[connector]]",
        prepare: nothing,
        key: "connector[1].name",
        says: "duplicate name \"app\"",
    },
    Mistake {
        label: "account template naming an unknown field",
        from: "account = \"{email}\"",
        to: "account = \"{mail}\"",
        prepare: nothing,
        key: "connector.app.account",
        says: "unknown field {mail}",
    },
    Mistake {
        label: "argument template naming an unknown field",
        from: "args = [\"{account}\"]",
        to: "args = [\"{account}\", \"{employee}\"]",
        prepare: nothing,
        key: "connector.app.args[1]",
        says: "unknown field {employee}",
    },
    Mistake {
        label: "a cron with five fields",
        from: "schedule = \"0 0 * * * *\"",
        to: "schedule = \"*/5 * * * *\"",
        prepare: nothing,
        key: "feed.schedule",
        says: "has five fields (minutes first); offboard needs six fields",
    },
    Mistake {
        label: "an unknown time zone",
        from: "schedule = \"0 0 * * * *\"",
        to: "schedule = \"0 0 * * * *\"\ntimezone = \"Europe/Amsterdm\"",
        prepare: nothing,
        key: "feed.timezone",
        says: "unknown time zone \"Europe/Amsterdm\"",
    },
    Mistake {
        label: "an unknown connector kind",
        from: "kind = \"exec\"",
        to: "kind = \"ldap\"",
        prepare: nothing,
        key: "connector.app.kind",
        says: "unknown variant `ldap`",
    },
    Mistake {
        label: "a rate without a unit",
        from: "program = \"remove.sh\"",
        to: "program = \"remove.sh\"\nrate = \"5\"",
        prepare: nothing,
        key: "connector.app.rate",
        says: "invalid rate \"5\"",
    },
];

#[test]
fn each_config_mistake_is_a_clear_error_naming_its_key() {
    let mut failures = Vec::new();
    for m in MISTAKES {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "remove.sh", OK_SCRIPT);
        std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
        (m.prepare)(dir.path());
        let good = config_text(CONNECTOR);
        assert!(
            good.contains(m.from),
            "{}: {:?} is not in the config",
            m.label,
            m.from
        );
        let text = good.replacen(m.from, m.to, 1);
        let path = dir.path().join("offboard.toml");
        std::fs::write(&path, text).unwrap();

        let out = offboard(&path, &["check-config"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all = format!("{stdout}{stderr}");
        // Every problem line is "PATH: KEY: MESSAGE".
        let line = all.lines().find(|l| l.contains(&format!(": {}", m.key)));
        if out.status.code() != Some(1)
            || all.contains("panicked")
            || all.contains("bad-config-secret")
            || !line.is_some_and(|l| l.contains(m.says))
        {
            failures.push(format!("{}: exit {:?}: {all}", m.label, out.status.code()));
            continue;
        }

        let run = offboard(&path, &["run", "--once"]);
        assert_eq!(run.status.code(), Some(1), "{}: run starts", m.label);
        assert!(
            !dir.path().join("state").exists(),
            "{}: nothing may start on a bad config",
            m.label
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_good_config_of_these_cases_passes() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    secret(dir.path(), "push-token", 0o600);
    let text = config_text(CONNECTOR).replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\npush_token_file = \"push-token\"",
    );
    let path = dir.path().join("offboard.toml");
    std::fs::write(&path, text).unwrap();
    let out = offboard(&path, &["check-config"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
