//! Scenario fixtures: config files (production pragmas are the only ones offboard has), secret files, leavers.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use offboard::domain::{FeedRow, HrStatus, Person};
use offboard::feed::intake::Record;

use crate::vendor;

/// The push token of the daemons the harness starts.
pub(crate) const PUSH_TOKEN: &str = "bench-push-token-0123456789";

/// A rate high enough never to hold the connector back: the benchmarks measure offboard, not a vendor's quota.
pub(crate) const UNLIMITED_RATE: &str = "1000000/s";

/// The CSV header of every feed the harness writes.
pub(crate) const CSV_HEADER: &str =
    "employee_id,email,username,upn,display_name,effective_date,status\n";

/// Writes a secret file readable only by its owner, as offboard requires.
pub(crate) fn write_secret(dir: &Path, name: &str, value: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, value)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A `[[connector]]` of kind scim against `base_url` with the fake vendor's bearer token.
pub(crate) fn scim_connector(name: &str, base_url: &str, concurrency: usize) -> String {
    format!(
        r#"
[[connector]]
name = "{name}"
kind = "scim"
account = "{{email}}"
rate = "{UNLIMITED_RATE}"
concurrency = {concurrency}
base_url = "{base_url}"
actions = ["deactivate"]
auth = {{ kind = "bearer", token_file = "scim-token" }}
"#
    )
}

/// The common part of every config: the database in `dir`, the guard opened wide (the benchmarks feed many
/// leavers at once on purpose), logs as JSON at INFO (as in production under systemd).
pub(crate) fn base_config(workers: usize, listen: &str, extra: &str) -> String {
    format!(
        r#"[database]
url = "sqlite://offboard.db"

[workers]
concurrency = {workers}

[safety]
max_terminations_per_batch = 4294967295
max_terminations_percent = 100.0

[http]
listen = "{listen}"
push_token_file = "push-token"

[log]
format = "json"
level = "info"
{extra}"#
    )
}

/// Writes `offboard.toml` with `text` and the secret files it references into `dir`; returns its path.
pub(crate) fn write_config(dir: &Path, text: &str) -> anyhow::Result<PathBuf> {
    write_secret(dir, "scim-token", vendor::TOKEN)?;
    write_secret(dir, "push-token", PUSH_TOKEN)?;
    let path = dir.join("offboard.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The person of leaver `i` under `prefix`.
pub(crate) fn person(prefix: &str, i: usize) -> Person {
    let id = format!("{prefix}{i:06}");
    Person {
        email: Some(format!("{id}@example.org")),
        username: Some(id.clone()),
        upn: None,
        display_name: Some(format!("Leaver {i}")),
        employee_id: id,
        attributes: Default::default(),
    }
}

/// `n` valid leaver records effective at `effective_at`, as a feed would hand them to intake.
pub(crate) fn leavers(prefix: &str, n: usize, effective_at: DateTime<Utc>) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            row: i as u64 + 1,
            line: Some(i as u64 + 2),
            result: Ok(FeedRow {
                person: person(prefix, i),
                status: HrStatus::Terminated { effective_at },
            }),
        })
        .collect()
}

/// Writes a CSV feed of `n` terminated leavers effective on `date` (`YYYY-MM-DD`).
pub(crate) fn write_csv_feed(
    path: &Path,
    prefix: &str,
    n: usize,
    date: &str,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(CSV_HEADER.as_bytes())?;
    for i in 0..n {
        let p = person(prefix, i);
        writeln!(
            out,
            "{},{},{},,{},{date},terminated",
            p.employee_id,
            p.email.unwrap_or_default(),
            p.username.unwrap_or_default(),
            p.display_name.unwrap_or_default()
        )?;
    }
    out.flush()?;
    Ok(())
}
