//! Helpers for connector tests against wiremock: secret files, request timestamps, call windows,
//! and running the binary while the mock server keeps serving.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wiremock::{Request, Respond, ResponseTemplate};

/// Writes a secret file readable only by its owner.
pub(crate) fn write_secret(dir: &Path, name: &str, value: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A responder that records when each request arrived, then answers with `inner`.
#[derive(Clone)]
pub(crate) struct Stamped<R> {
    pub(crate) at: Arc<Mutex<Vec<Instant>>>,
    inner: R,
}

impl<R> Stamped<R> {
    pub(crate) fn new(at: &Arc<Mutex<Vec<Instant>>>, inner: R) -> Self {
        Stamped {
            at: at.clone(),
            inner,
        }
    }
}

impl<R: Respond> Respond for Stamped<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.at.lock().unwrap().push(Instant::now());
        self.inner.respond(request)
    }
}

/// The most requests that arrived within any window of length `window`.
pub(crate) fn busiest_window(stamps: &[Instant], window: Duration) -> usize {
    let mut sorted = stamps.to_vec();
    sorted.sort();
    let mut best = 0;
    for (i, start) in sorted.iter().enumerate() {
        let n = sorted[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < window)
            .count();
        best = best.max(n);
    }
    best
}

/// Runs the binary without blocking the test's runtime (the mock server lives on it).
pub(crate) async fn run_binary(config: &Path, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "test-operator")
        .env_remove("SUDO_USER")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every audit row and every removal's last error, as one text to search for things that must
/// not be there.
pub(crate) async fn stored_text(store: &offboard::store::Store) -> String {
    let audit: Vec<(String, String, Option<String>)> = on_db!(store, |pool| sqlx::query_as(
        "SELECT event, detail, outcome FROM audit_log"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    let removals: Vec<(Option<String>,)> = on_db!(store, |pool| sqlx::query_as(
        "SELECT last_error FROM removals"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    format!("{audit:?}{removals:?}")
}

/// A commented-out connector block of the example config, from the line containing `start` to the
/// next `# ---` heading, with its TOML lines uncommented except the keys in `skip` (alternatives
/// such as `_env` next to `_file`).
pub(crate) fn example_block(start: &str, skip: &[&str]) -> String {
    let example = include_str!("../config/offboard.example.toml");
    let from = example.find(start).expect("the block is in the example");
    let rest = &example[from + start.len()..];
    let block = match rest.find("\n# ---") {
        Some(end) => &rest[..end],
        None => rest,
    };
    block
        .lines()
        .filter_map(|line| {
            let body = line.strip_prefix("# ")?;
            let key = body.split(" =").next().unwrap_or_default();
            let is_toml = body.starts_with('[')
                || (body.contains(" = ")
                    && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            (is_toml && !skip.contains(&key)).then(|| format!("{body}\n"))
        })
        .collect()
}
