//! Crash safety of the real binary: `offboard run` is killed with SIGKILL at random moments while it
//! removes 500 leavers through the `scim` connector from a slow, sometimes failing fake SCIM service,
//! restarted, killed again, and finally left to finish.
//!
//! The kills are spread over the daemon's phases on purpose: right after start (migrations, the feed
//! intake of 500 rows, the first claims), while a DELETE is in flight at the fake, right after the
//! fake answered (the daemon is reading the answer or recording the outcome and claiming the next
//! removal), and at a random moment. `OFFBOARD_CRASH_ROUNDS` sets the number of kills (default 10;
//! 50 for a longer run), `OFFBOARD_CRASH_SEED` replays the random choices of a run (printed at the
//! start; timing still varies).
//!
//! The fake commits a DELETE as soon as it arrives and then takes 20–50 ms to answer, so a kill in
//! that window leaves the account deleted without the daemon knowing. Every 23rd request is a 503
//! with `Retry-After: 1`, and every 19th DELETE is committed and then answered 500.
//!
//! # The invariants checked afterwards
//!
//! - Every removal is `done` exactly once: 500 rows, one per leaver, no lease left, exactly one
//!   terminal audit event (`removal_done`) per removal, written by its last attempt.
//! - The vendor saw every leaver removed: the fake's directory is empty and each account was
//!   deleted by exactly one DELETE. A removal whose final attempt made the DELETE (answered 204)
//!   ends `removed`; one whose account was deleted by an earlier attempt (killed mid-call, or
//!   committed-then-500) looks up the account it is bound to by id, finds nobody and ends
//!   `removed_unconfirmed`; none ends `already_absent`, since every leaver had an account.
//! - Binding: a removal is bound (`removal_bound`) at most once, and every audited DELETE is made by
//!   the bound attempt or a later one; later attempts look the account up by id only.
//! - Every attempt is accounted for: attempts 1..=n of each removal each have exactly one
//!   `removal_claimed` row and then either exactly one completion row or, when the daemon was
//!   killed during the attempt, a `lease_expired` row written when a later daemon reclaimed it.
//! - Vendor calls and the audit: a call's `vendor_call` row is written with the attempt's outcome,
//!   so the calls of an attempt killed before it recorded its outcome have no row. Per leaver and
//!   per operation (the GET lookup, the DELETE), the audited calls are a sub-multiset of what the
//!   fake received (same HTTP statuses; a call audited as timed out matches any), and the fake
//!   received at most one more call of each operation per abandoned attempt (one attempt makes at
//!   most one lookup and one DELETE). So every call the fake received is either audited or belongs
//!   to an attempt that the audit shows as claimed and then abandoned by a crash.
//! - Nothing is stuck `running`, and `offboard audit verify` accepts the hash chain.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::vendor_http::write_secret;

const LEAVERS: usize = 500;
const TOKEN: &str = "crash-test-scim-token-5f3a9c";
const SCIM_LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SCIM_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const OP_GET: &str = "GET /Users?filter";
const OP_DELETE: &str = "DELETE /Users/{id}";
const OP_GET_ID: &str = "GET /Users/{id}";

// ------------------------------------------------------------------------------------------------
// The fake SCIM service
// ------------------------------------------------------------------------------------------------

/// One request the fake received, recorded on arrival (before the slow part of the answer), with
/// the status it decided to answer.
#[derive(Debug, Clone)]
struct Call {
    op: &'static str,
    user: String,
    status: u16,
    /// A DELETE that removed the account (even if its answer was an error or never arrived).
    applied: bool,
}

#[derive(Default)]
struct Directory {
    /// userName → id.
    users: HashMap<String, String>,
    /// id → userName, kept after deletion so late calls can be attributed.
    names: HashMap<String, String>,
    calls: Vec<Call>,
    requests: u64,
    deletes: u64,
}

#[derive(Clone)]
pub(crate) struct Fake {
    /// How many leavers have an account.
    pub(crate) leavers: usize,
    dir: Arc<Mutex<Directory>>,
    /// Requests received.
    arrived: Arc<AtomicU64>,
    /// Requests whose answer was handed to the server.
    answered: Arc<AtomicU64>,
    /// DELETEs between arrival and answer.
    deletes_in_flight: Arc<AtomicUsize>,
    /// Any requests between arrival and answer.
    in_flight: Arc<AtomicUsize>,
    rng: Arc<Mutex<StdRng>>,
}

/// Decrements a counter when dropped: also when the server drops a handler whose client went away.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Fake {
    pub(crate) fn new(seed: u64, leavers: usize) -> Self {
        let mut dir = Directory::default();
        for i in 1..=leavers {
            let name = email(i);
            let id = format!("scim-{i:04}-{:08x}", seed.wrapping_mul(i as u64) as u32);
            dir.users.insert(name.clone(), id.clone());
            dir.names.insert(id, name);
        }
        Fake {
            leavers,
            dir: Arc::new(Mutex::new(dir)),
            arrived: Arc::default(),
            answered: Arc::default(),
            deletes_in_flight: Arc::default(),
            in_flight: Arc::default(),
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed))),
        }
    }

    pub(crate) async fn serve(self) -> String {
        let router = Router::new()
            .route("/scim/v2/Users", get(lookup))
            .route("/scim/v2/Users/{id}", delete(remove).get(by_id))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}/scim/v2")
    }

    /// The vendor's think time: 20 to 50 ms.
    async fn think(&self) {
        let ms = self.rng.lock().unwrap().random_range(20..=50);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn calls(&self) -> Vec<Call> {
        self.dir.lock().unwrap().calls.clone()
    }
}

fn scim_error(status: StatusCode, detail: &str) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        json!({"schemas": [SCIM_ERROR], "status": status.as_u16().to_string(), "detail": detail})
            .to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    response
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"))
}

async fn lookup(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _guard = InFlight::enter(&fake.in_flight);
    fake.arrived.fetch_add(1, Ordering::SeqCst);
    if !authorized(&headers) {
        return scim_error(StatusCode::UNAUTHORIZED, "bad token");
    }
    let filter = query.get("filter").cloned().unwrap_or_default();
    let Some(name) = filter
        .strip_prefix("userName eq \"")
        .and_then(|f| f.strip_suffix('"'))
        .map(str::to_string)
    else {
        return scim_error(StatusCode::BAD_REQUEST, "unsupported filter");
    };
    let (status, found) = {
        let mut dir = fake.dir.lock().unwrap();
        dir.requests += 1;
        let status = if dir.requests % 23 == 0 { 503 } else { 200 };
        let found = dir.users.get(&name).cloned();
        dir.calls.push(Call {
            op: OP_GET,
            user: name.clone(),
            status,
            applied: false,
        });
        (status, found)
    };
    fake.think().await;
    let response = if status == 503 {
        scim_error(StatusCode::SERVICE_UNAVAILABLE, "try again later")
    } else {
        let resources: Vec<Value> = found
            .iter()
            .map(|id| json!({"schemas": [SCIM_USER], "id": id, "userName": name, "active": true}))
            .collect();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/scim+json")],
            json!({
                "schemas": [SCIM_LIST],
                "totalResults": resources.len(),
                "startIndex": 1,
                "itemsPerPage": resources.len(),
                "Resources": resources,
            })
            .to_string(),
        )
            .into_response()
    };
    fake.answered.fetch_add(1, Ordering::SeqCst);
    response
}

async fn remove(
    State(fake): State<Fake>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let _guard = InFlight::enter(&fake.in_flight);
    let _deleting = InFlight::enter(&fake.deletes_in_flight);
    fake.arrived.fetch_add(1, Ordering::SeqCst);
    if !authorized(&headers) {
        return scim_error(StatusCode::UNAUTHORIZED, "bad token");
    }
    // The decision and the deletion happen on arrival: a client that goes away mid-answer does not
    // undo a committed deletion.
    let status = {
        let mut dir = fake.dir.lock().unwrap();
        dir.requests += 1;
        let user = dir.names.get(&id).cloned().unwrap_or_else(|| id.clone());
        if dir.requests % 23 == 0 {
            dir.calls.push(Call {
                op: OP_DELETE,
                user,
                status: 503,
                applied: false,
            });
            503
        } else {
            let existed = dir.users.remove(&user).is_some();
            if existed {
                dir.deletes += 1;
            }
            let status = match (existed, dir.deletes % 19 == 0) {
                (true, true) => 500,
                (true, false) => 204,
                (false, _) => 404,
            };
            dir.calls.push(Call {
                op: OP_DELETE,
                user,
                status,
                applied: existed,
            });
            status
        }
    };
    fake.think().await;
    let response = match status {
        204 => StatusCode::NO_CONTENT.into_response(),
        404 => scim_error(StatusCode::NOT_FOUND, "no such user"),
        500 => scim_error(StatusCode::INTERNAL_SERVER_ERROR, "replication lag"),
        _ => scim_error(StatusCode::SERVICE_UNAVAILABLE, "try again later"),
    };
    fake.answered.fetch_add(1, Ordering::SeqCst);
    response
}

/// `GET /Users/{id}`: how a removal bound to an account looks it up again.
async fn by_id(
    State(fake): State<Fake>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let _guard = InFlight::enter(&fake.in_flight);
    fake.arrived.fetch_add(1, Ordering::SeqCst);
    if !authorized(&headers) {
        return scim_error(StatusCode::UNAUTHORIZED, "bad token");
    }
    let (status, name) = {
        let mut dir = fake.dir.lock().unwrap();
        dir.requests += 1;
        let name = dir.names.get(&id).cloned().unwrap_or_else(|| id.clone());
        let status = if dir.users.contains_key(&name) {
            200
        } else {
            404
        };
        dir.calls.push(Call {
            op: OP_GET_ID,
            user: name.clone(),
            status,
            applied: false,
        });
        (status, name)
    };
    fake.think().await;
    let response = if status == 200 {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/scim+json")],
            json!({"schemas": [SCIM_USER], "id": id, "userName": name, "active": true}).to_string(),
        )
            .into_response()
    } else {
        scim_error(StatusCode::NOT_FOUND, "no such user")
    };
    fake.answered.fetch_add(1, Ordering::SeqCst);
    response
}

fn email(i: usize) -> String {
    format!("leaver{i:04}@example.org")
}

fn employee(i: usize) -> String {
    format!("E{i:04}")
}

// ------------------------------------------------------------------------------------------------
// The daemon
// ------------------------------------------------------------------------------------------------

/// A daemon's directory: the feed of `leavers` leavers, the token, and the config on database `db`.
pub(crate) fn workspace(base_url: &str, leavers: usize, db: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut feed = String::from(crate::helpers::HEADER);
    for i in 1..=leavers {
        feed.push_str(&format!(
            "{},{},leaver{i:04},,Leaver {i},2026-01-05,Terminated\n",
            employee(i),
            email(i)
        ));
    }
    std::fs::write(dir.path().join("feed.csv"), feed).unwrap();
    write_secret(dir.path(), "scim-token", TOKEN);
    // The feed is read at every start; its schedule never fires during the test.
    let config = format!(
        r#"[database]
url = "{db}"

[feed]
kind = "csv"
path = "feed.csv"
schedule = "0 0 0 1 1 *"

[workers]
concurrency = 4
lease = "10s"
idle_poll = "1s"
shutdown_grace = "5s"

[retry]
initial = "200ms"
max = "1s"
max_attempts = 50

[safety]
max_terminations_per_batch = 10000
max_terminations_percent = 100.0

[http]
listen = "127.0.0.1:0"

[log]
format = "json"
level = "info"

[[connector]]
name = "crm"
kind = "scim"
account = "{{email}}"
base_url = "{base_url}"
actions = ["delete"]
concurrency = 4
rate = "1000/s"
timeout = "3s"
auth = {{ kind = "bearer", token_file = "scim-token" }}
"#
    );
    std::fs::write(dir.path().join("offboard.toml"), config).unwrap();
    dir
}

pub(crate) fn start_daemon(dir: &Path, log: &Path) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.join("offboard.toml"))
        .arg("run")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Fails the test if the daemon exited on its own (it must only ever stop because it was killed).
pub(crate) fn assert_alive(child: &mut Child, log: &Path) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!(
            "the daemon exited by itself ({status}); its log ends:\n{}",
            log_tail(log)
        );
    }
}

/// Where a round's kill is aimed.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// A random moment soon after the start: migrations, feed intake, reclaiming, first claims.
    Start(u64),
    /// While a DELETE is in flight, after at least this many more requests arrived.
    MidCall(u64),
    /// Right after the fake answered this many more requests.
    AfterAnswer(u64),
    /// A random moment.
    Anytime(u64),
}

fn aim(round: usize, rng: &mut StdRng) -> Aim {
    match round % 4 {
        0 if round == 0 => Aim::Start(rng.random_range(0..=800)),
        0 => Aim::Start(rng.random_range(0..=150)),
        1 => Aim::MidCall(rng.random_range(0..=100)),
        2 => Aim::AfterAnswer(rng.random_range(1..=100)),
        _ => Aim::Anytime(rng.random_range(0..=1200)),
    }
}

/// Waits until `ready` holds, checking every millisecond, for at most `limit`; false on timeout.
async fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if ready() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

/// Runs one round: starts the daemon, waits for the aimed moment, kills it with SIGKILL. Returns a
/// line describing where the kill landed.
async fn kill_round(dir: &Path, log: &Path, fake: &Fake, aim: Aim) -> String {
    let arrived = fake.arrived.load(Ordering::SeqCst);
    let answered = fake.answered.load(Ordering::SeqCst);
    let mut child = start_daemon(dir, log);
    let started = Instant::now();
    // A round whose aim no longer comes (all work done) ends after this long.
    let limit = Duration::from_millis(1500);
    match aim {
        Aim::Start(ms) | Aim::Anytime(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Aim::MidCall(more) => {
            wait_until(limit, || {
                fake.arrived.load(Ordering::SeqCst) >= arrived + more
            })
            .await;
            wait_until(limit, || fake.deletes_in_flight.load(Ordering::SeqCst) > 0).await;
        }
        Aim::AfterAnswer(more) => {
            wait_until(limit, || {
                fake.answered.load(Ordering::SeqCst) >= answered + more
            })
            .await;
        }
    }
    let in_flight = fake.in_flight.load(Ordering::SeqCst);
    let deleting = fake.deletes_in_flight.load(Ordering::SeqCst);
    assert_alive(&mut child, log);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_after = started.elapsed();
    format!(
        "{aim:?}: killed after {} ms with {in_flight} call(s) in flight ({deleting} DELETE), {} request(s) this round; then {}",
        killed_after.as_millis(),
        fake.arrived.load(Ordering::SeqCst) - arrived,
        progress(dir).await,
    )
}

/// The test daemon's database, once a daemon created it and got past its migrations.
pub(crate) async fn open_store(dir: &Path) -> Option<offboard::store::Store> {
    let loaded = offboard::config::Config::load(&dir.join("offboard.toml")).ok()?;
    if loaded.database.sqlite_path().is_some_and(|db| !db.exists()) {
        return None;
    }
    let store = crate::helpers::database_of(&dir.join("offboard.toml"))
        .await
        .ok()?;
    if store.migrations_applied().await.unwrap_or(0) == 0 {
        store.close().await;
        return None;
    }
    Some(store)
}

/// What the database holds after a kill: batches polled and removals by state.
pub(crate) async fn progress(dir: &Path) -> String {
    let Some(pool) = open_store(dir).await else {
        return "no database yet".into();
    };
    let batches: Result<i64, _> = on_db!(pool, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM batches"
    )
    .fetch_one(pool)
    .await);
    let states: Result<Vec<(String, i64)>, _> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT state, COUNT(*) FROM removals GROUP BY state ORDER BY state"
    )
    .fetch_all(pool)
    .await);
    pool.close().await;
    match (batches, states) {
        (Ok(b), Ok(s)) => format!("{b} batch(es), removals {s:?}"),
        _ => "schema not complete yet".into(),
    }
}

/// Starts the daemon and lets it finish: waits until no removal is left open, then stops it with
/// SIGTERM and expects a clean exit.
async fn finish(dir: &Path, log: &Path) -> Duration {
    let started = Instant::now();
    let logged_before = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
    let mut child = start_daemon(dir, log);
    // Up once it listens (its SIGTERM handler is installed by then): when the rounds already did all
    // the work, the stop below must not land in the middle of its start-up.
    let listening = wait_until(Duration::from_secs(30), || {
        std::fs::read(log).is_ok_and(|text| {
            String::from_utf8_lossy(&text[logged_before.min(text.len())..]).contains("Listening")
        })
    })
    .await;
    assert!(
        listening,
        "the final daemon never listened; its log ends:\n{}",
        log_tail(log)
    );
    let pool = loop {
        // The database exists once a daemon got past its migrations; the previous rounds may all have
        // been killed before that.
        if let Some(pool) = open_store(dir).await {
            break pool;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert_alive(&mut child, log);
        let open: Result<(i64, i64), _> = on_db!(pool, |pool| {
            sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE state NOT IN ('done', 'failed', 'cancelled', 'planned')) FROM removals",
        )
        .fetch_one(pool).await
        });
        if let Ok((all, 0)) = open
            && all as usize == LEAVERS
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the final run did not finish within 60 s ({open:?}); its log ends:\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pool.close().await;
    let took = started.elapsed();
    let status = crate::helpers::sigterm_and_wait(&mut child, Duration::from_secs(15))
        .await
        .expect("no exit within 15 s of SIGTERM");
    assert!(
        status.success(),
        "{status}; the log ends:\n{}",
        log_tail(log)
    );
    took
}

// ------------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Attempt {
    claimed: usize,
    bound: usize,
    completions: Vec<String>,
    lease_expired: usize,
    /// (operation, HTTP status) of each audited vendor call.
    calls: Vec<(String, Option<i64>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_no_removal_and_repeats_none() {
    let rounds: usize = std::env::var("OFFBOARD_CRASH_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("OFFBOARD_CRASH_ROUNDS is a number"))
        .unwrap_or(10);
    let seed: u64 = std::env::var("OFFBOARD_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("OFFBOARD_CRASH_SEED is a number"))
        .unwrap_or_else(rand::random);
    eprintln!("crash test: {rounds} rounds, OFFBOARD_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let fake = Fake::new(seed, LEAVERS);
    let base_url = fake.clone().serve().await;
    let dir = workspace(&base_url, LEAVERS, &crate::helpers::database_url());
    let log: PathBuf = dir.path().join("daemon.log");
    let started = Instant::now();

    let mut report = Vec::new();
    for round in 0..rounds {
        let aim = aim(round, &mut rng);
        let line = kill_round(dir.path(), &log, &fake, aim).await;
        report.push(format!("round {round:>2}: {line}"));
    }
    let killing = started.elapsed();
    let final_run = finish(dir.path(), &log).await;
    for line in &report {
        eprintln!("{line}");
    }
    eprintln!(
        "crash test: {rounds} kills in {} ms, final run {} ms",
        killing.as_millis(),
        final_run.as_millis()
    );

    // `offboard audit verify` accepts the chain that the killed daemons left.
    let verify = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .args(["audit", "verify"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let verify_text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        verify.status.success() && verify_text.starts_with("ok:"),
        "{verify_text}{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let pool = open_store(dir.path()).await.unwrap();
    check_invariants(&pool, &fake, seed).await;
    let _ = std::io::stderr().flush();
}

/// A removal as the checks read it: id, employee, state, outcome, attempts, lease owner.
type RemovalRow = (i64, String, String, Option<String>, i64, Option<String>);

pub(crate) async fn check_invariants(store: &offboard::store::Store, fake: &Fake, seed: u64) {
    let ctx = format!("(OFFBOARD_CRASH_SEED={seed})");
    // Every removal is done, once, with no lease left.
    let removals: Vec<RemovalRow> = on_db!(store, |pool| sqlx::query_as(
        "SELECT r.id, t.employee_id, r.state, r.outcome, r.attempts, r.lease_owner \
         FROM removals r JOIN terminations t ON t.id = r.termination_id ORDER BY t.employee_id",
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(removals.len(), fake.leavers, "one removal per leaver {ctx}");
    let terminations: i64 = on_db!(store, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM terminations"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(terminations as usize, fake.leavers, "{ctx}");

    let rows: Vec<(i64, i64, String, Option<i64>, String)> = on_db!(store, |pool| sqlx::query_as(
        "SELECT removal_id, COALESCE(attempt, 0), event, http_status, detail FROM audit_log \
         WHERE removal_id IS NOT NULL ORDER BY seq",
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    let mut attempts: HashMap<i64, BTreeMap<i64, Attempt>> = HashMap::new();
    // Each removal is listed once by its termination's termination_created row.
    let mut planned: HashMap<i64, usize> = HashMap::new();
    let created: Vec<String> = on_db!(store, |pool| sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE event = 'termination_created'"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    for detail in created {
        let detail: Value = serde_json::from_str(&detail).unwrap();
        for item in detail["removals"].as_array().cloned().unwrap_or_default() {
            if let Some(removal) = item["removal_id"].as_i64() {
                *planned.entry(removal).or_default() += 1;
            }
        }
    }
    for (removal, attempt, event, status, detail) in rows {
        let a = attempts
            .entry(removal)
            .or_default()
            .entry(attempt)
            .or_default();
        match event.as_str() {
            "removal_claimed" => a.claimed += 1,
            "removal_bound" => a.bound += 1,
            "lease_expired" => a.lease_expired += 1,
            "vendor_call" => {
                let detail: Value = serde_json::from_str(&detail).unwrap();
                a.calls
                    .push((detail["operation"].as_str().unwrap().to_string(), status));
            }
            "removal_done"
            | "removal_retry_scheduled"
            | "removal_failed"
            | "removal_cancelled"
            | "removal_planned_dry_run"
            | "stale_completion_refused" => a.completions.push(event),
            other => panic!("unexpected audit event {other} for removal {removal} {ctx}"),
        }
    }

    let calls = fake.calls();
    let mut fake_calls: HashMap<String, Vec<&Call>> = HashMap::new();
    for call in &calls {
        fake_calls.entry(call.user.clone()).or_default().push(call);
    }
    assert!(
        fake.dir.lock().unwrap().users.is_empty(),
        "every account is gone from the vendor {ctx}"
    );

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut abandoned_total = 0;
    let mut audited_total = 0;
    for (id, employee_id, state, outcome, n, lease_owner) in &removals {
        let who = format!("removal {id} ({employee_id}) {ctx}");
        assert_eq!(state, "done", "{who}");
        assert_eq!(planned.get(id), Some(&1), "{who}: created once");
        assert!(lease_owner.is_none(), "{who}: a lease is left");
        let outcome = outcome.clone().unwrap_or_default();
        *outcomes.entry(outcome.clone()).or_default() += 1;
        let by_attempt = attempts.remove(id).unwrap_or_default();
        assert_eq!(
            by_attempt.keys().copied().collect::<Vec<_>>(),
            (1..=*n).collect::<Vec<_>>(),
            "{who}: attempts 1..={n} each appear in the audit"
        );
        let mut abandoned = 0;
        let mut bound_by: Option<i64> = None;
        let mut audited: HashMap<&str, Vec<Option<i64>>> = HashMap::new();
        for (number, a) in &by_attempt {
            assert_eq!(a.claimed, 1, "{who}: attempt {number} claimed once");
            match (a.completions.as_slice(), a.lease_expired) {
                ([_], 0) => {}
                ([], 1) => {
                    abandoned += 1;
                    assert!(
                        a.calls.is_empty(),
                        "{who}: an abandoned attempt has no recorded calls"
                    );
                }
                other => panic!("{who}: attempt {number} ended as {other:?}"),
            }
            let terminal = a.completions.iter().any(|c| c != "removal_retry_scheduled");
            assert_eq!(
                terminal,
                *number == *n,
                "{who}: only the last attempt ({n}) ends the removal; attempt {number}: {:?}",
                a.completions
            );
            bound_by = bound_by.or((a.bound > 0).then_some(*number));
            assert!(
                a.bound <= 1,
                "{who}: attempt {number} bound {} times",
                a.bound
            );
            for (op, status) in &a.calls {
                if op == OP_DELETE {
                    assert!(
                        bound_by.is_some(),
                        "{who}: attempt {number} sent a DELETE before any attempt bound the removal"
                    );
                }
                let op = match op.as_str() {
                    OP_GET => OP_GET,
                    OP_GET_ID => OP_GET_ID,
                    OP_DELETE => OP_DELETE,
                    other => panic!("{who}: unexpected operation {other}"),
                };
                audited.entry(op).or_default().push(*status);
            }
        }
        let last = &by_attempt[n];
        assert_eq!(last.completions, ["removal_done"], "{who}");
        assert!(
            by_attempt.values().map(|a| a.bound).sum::<usize>() <= 1,
            "{who}: bound more than once"
        );
        abandoned_total += abandoned;
        audited_total += audited.values().map(Vec::len).sum::<usize>();

        // The vendor's view of this leaver.
        let account = email(
            employee_id
                .trim_start_matches('E')
                .parse::<usize>()
                .unwrap(),
        );
        let received = fake_calls.remove(&account).unwrap_or_default();
        let applied = received.iter().filter(|c| c.applied).count();
        assert_eq!(applied, 1, "{who}: the account was deleted exactly once");
        for op in [OP_GET, OP_GET_ID, OP_DELETE] {
            let mut at_fake: Vec<Option<i64>> = received
                .iter()
                .filter(|c| c.op == op)
                .map(|c| Some(i64::from(c.status)))
                .collect();
            let ours = audited.remove(op).unwrap_or_default();
            // Every audited call with an answer was received, with the status the fake answered.
            for status in ours.iter().filter(|s| s.is_some()) {
                let Some(pos) = at_fake.iter().position(|s| s == status) else {
                    panic!(
                        "{who}: the audit holds a {op} answered {status:?} that the vendor never answered; vendor saw {:?}",
                        received
                    );
                };
                at_fake.swap_remove(pos);
            }
            // A call audited without an answer (timed out on a loaded machine) may or may not have
            // reached the vendor.
            for _ in ours.iter().filter(|s| s.is_none()) {
                at_fake.pop();
            }
            // What is left was received during attempts that were killed: at most one per abandoned
            // attempt.
            assert!(
                at_fake.len() <= abandoned,
                "{who}: {} {op} call(s) without an audit row but only {abandoned} abandoned attempt(s); vendor saw {received:?}",
                at_fake.len()
            );
        }
        // The last attempt's calls explain the outcome.
        let last_delete = last.calls.iter().find(|(op, _)| op == OP_DELETE);
        match outcome.as_str() {
            "removed" => assert_eq!(
                last_delete.map(|(_, s)| *s),
                Some(Some(204)),
                "{who}: removed by the final attempt's DELETE"
            ),
            "removed_unconfirmed" => {
                assert!(
                    bound_by.is_some_and(|b| b < *n),
                    "{who}: unconfirmed, so an earlier attempt was bound and sent the DELETE"
                );
                assert!(
                    last_delete.is_none() || last_delete.map(|(_, s)| *s) == Some(Some(404)),
                    "{who}: removed unconfirmed: {:?}",
                    last.calls
                );
            }
            other => panic!("{who}: unexpected outcome {other}"),
        }
    }
    assert!(
        attempts.is_empty(),
        "audit rows for unknown removals: {:?} {ctx}",
        attempts.keys()
    );
    assert!(
        fake_calls.is_empty(),
        "the vendor received calls for accounts nobody leaves: {:?}",
        fake_calls.keys()
    );
    let faults = calls.iter().filter(|c| c.status >= 500).count();
    eprintln!(
        "crash test: outcomes {outcomes:?}; {} vendor calls ({faults} answered 5xx), {audited_total} audited, {abandoned_total} attempts abandoned by kills",
        calls.len()
    );
    assert!(faults > 0, "the vendor's faults were exercised");
}

// ------------------------------------------------------------------------------------------------
// Process robustness
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_daemon_whose_stderr_is_closed_keeps_running_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(dir.path(), "remove.sh", crate::helpers::OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    let config = crate::helpers::config_text(
        "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n",
    )
    .replace("level = \"warn\"", "level = \"debug\"");
    std::fs::write(dir.path().join("offboard.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .arg("run")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log reader goes away (a collector that died, `offboard run | head -1`).
    drop(child.stderr.take());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died of its closed stderr: {:?}",
        child.try_wait()
    );
    let status = crate::helpers::sigterm_and_wait(&mut child, Duration::from_secs(10))
        .await
        .expect("SIGTERM did not stop the daemon within 10 s (its signal handler died logging?)");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_worker_loop_stops_when_its_shutdown_sender_is_gone() {
    let t = crate::helpers::TestApp::exec(crate::helpers::OK_SCRIPT, "").await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    drop(stop);

    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        t.app.workers().run_until_stopped(rx),
    )
    .await;

    assert!(
        matches!(ended, Ok(Ok(()))),
        "a loop that can never be told to stop must not spin on: {ended:?}"
    );
}

/// A shutdown abandons a call still running after the grace; the next start takes that lease back
/// at once (its holder is gone), instead of leaving the removal for a whole lease (5 minutes here).
#[tokio::test]
async fn a_call_abandoned_at_shutdown_runs_again_at_the_next_start_without_waiting_for_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(
        dir.path(),
        "remove.sh",
        "#!/bin/sh\nd=$(dirname \"$0\")\nif [ -e \"$d/started\" ]; then exit 0; fi\ntouch \"$d/started\"\nsleep 60\n",
    );
    std::fs::write(dir.path().join("feed.csv"), crate::helpers::HEADER).unwrap();
    let config = crate::helpers::config_text(
        "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\ntimeout = \"2m\"\n",
    )
    .replace("lease = \"10s\"", "lease = \"5m\"")
    .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"1s\"");
    std::fs::write(dir.path().join("offboard.toml"), &config).unwrap();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(dir.path().join("offboard.toml"))
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let enqueued = cli(&[
        "enqueue",
        "--employee-id",
        "e1",
        "--email",
        "ann@example.org",
        "--effective",
        "2026-01-05",
        "--actor",
        "test",
    ]);
    assert!(enqueued.status.success(), "{enqueued:?}");
    let state = || -> String {
        let out = cli(&["removals", "--format", "json"]);
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows[0]["state"].as_str().unwrap_or_default().to_string()
    };
    let log = dir.path().join("daemon.log");

    let mut first = start_daemon(dir.path(), &log);
    let until = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("started").exists() {
        assert!(
            Instant::now() < until,
            "the call never started: {}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::helpers::sigterm_and_wait(&mut first, Duration::from_secs(15))
        .await
        .expect("the daemon stopped");
    assert_eq!(state(), "running", "the abandoned call holds its lease");

    let restarted = Instant::now();
    let mut second = start_daemon(dir.path(), &log);
    while state() != "done" {
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "the removal waited for its lease: {}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "abandoned removal done {:?} after the restart",
        restarted.elapsed()
    );
    crate::helpers::sigterm_and_wait(&mut second, Duration::from_secs(15))
        .await
        .expect("the daemon stopped");
}
