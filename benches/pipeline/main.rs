//! The offboard benchmark harness: scenarios B1–B6 of BENCHMARKS.md against the whole pipeline (library code
//! or the real binary, a real SQLite file with the production pragmas, real HTTP to a fake vendor on 127.0.0.1).
//!
//! ```text
//! cargo bench --bench pipeline -- all            # every scenario at full size, 3 runs each
//! cargo bench --bench pipeline -- B1 B3 --runs 5
//! cargo bench --bench pipeline -- all --quick    # every scenario once at a small size
//! ```
//!
//! Run by `cargo test` (no `--bench` flag), it does the `--quick` run: the harness must keep working, and it fails
//! only on errors (a removal not done, a vendor call missing, a process that does not start), never on a timing.

mod console;
mod drain;
mod footprint;
mod intake;
mod process;
mod replicas;
mod revoke;
mod setup;
mod vendor;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The real binary, built by cargo for benchmarks.
const BIN: &str = env!("CARGO_BIN_EXE_offboard");

/// Worker and connector concurrency of the B1 and B2 drains (`--concurrency` changes it).
const DRAIN_CONCURRENCY: usize = 8;
/// Connector concurrency of B3.
const B3_CONCURRENCY: usize = 32;
/// The fake vendor's latency in B3.
const B3_LATENCY: Duration = Duration::from_millis(50);
/// Vendor calls per removal with `actions = ["deactivate"]`: the lookup and the PATCH.
const CALLS_PER_REMOVAL: f64 = 2.0;
/// How long the B6 daemon idles before its memory is read.
const B6_IDLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    B1,
    B2,
    B3,
    B4,
    B5,
    B6,
    B7,
    B8,
}

const ALL: [Scenario; 8] = [
    Scenario::B1,
    Scenario::B2,
    Scenario::B3,
    Scenario::B4,
    Scenario::B5,
    Scenario::B6,
    Scenario::B7,
    Scenario::B8,
];

/// Sizes of one invocation.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    raw_commits: usize,
    b1: usize,
    b2: usize,
    b3: usize,
    b3_sequential: usize,
    b4_pushes: usize,
    b4_polls: usize,
    b5_rows: usize,
    b7_b1: usize,
    b7_b3: usize,
    b7_pushes: usize,
    b8_removals: usize,
}

const FULL: Sizes = Sizes {
    raw_commits: 3_000,
    b1: 10_000,
    b2: 100_000,
    b3: 2_000,
    b3_sequential: 40,
    b4_pushes: 200,
    b4_polls: 10,
    b5_rows: 100_000,
    b7_b1: 10_000,
    b7_b3: 1_000,
    b7_pushes: 200,
    b8_removals: 100_000,
};

const QUICK: Sizes = Sizes {
    raw_commits: 100,
    b1: 100,
    b2: 1_000,
    b3: 64,
    b3_sequential: 4,
    b4_pushes: 10,
    b4_polls: 2,
    b5_rows: 1_000,
    b7_b1: 100,
    b7_b3: 32,
    b7_pushes: 10,
    b8_removals: 500,
};

struct Options {
    scenarios: Vec<Scenario>,
    quick: bool,
    runs: usize,
    dir: PathBuf,
    concurrency: usize,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench pipeline -- [all | B1 … B8] [--quick] [--runs N] [--concurrency N] [--dir PATH]\n\
     \n\
     all          every scenario (the default)\n\
     --quick      small sizes, one run: checks that the harness works; timings are not judged\n\
     --runs N     repeat each measurement N times and report the best and the spread (default 3)\n\
     --concurrency N  worker and connector concurrency of the B1 and B2 drains (default 8)\n\
     --dir PATH   where the SQLite files go (default: the system temp directory); use the disk you deploy on"
}

fn parse_options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test` runs benchmark targets without it, as a smoke test.
    let under_bench = args.iter().any(|a| a == "--bench");
    let mut scenarios = Vec::new();
    let mut quick = !under_bench;
    let mut runs = None;
    let mut dir = std::env::temp_dir();
    let mut concurrency = DRAIN_CONCURRENCY;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            "--runs" => {
                let n: usize = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .context("--runs needs a positive number")?;
                runs = Some(n);
            }
            "--dir" => dir = PathBuf::from(it.next().context("--dir needs a path")?),
            "--concurrency" => {
                concurrency = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=256).contains(n))
                    .context("--concurrency needs a number from 1 to 256")?;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            "all" => scenarios.extend(ALL),
            other => {
                let scenario = match other.to_ascii_uppercase().as_str() {
                    "B1" => Scenario::B1,
                    "B2" => Scenario::B2,
                    "B3" => Scenario::B3,
                    "B4" => Scenario::B4,
                    "B5" => Scenario::B5,
                    "B6" => Scenario::B6,
                    "B7" => Scenario::B7,
                    "B8" => Scenario::B8,
                    // libtest-style flags that `cargo test` may pass through are not ours.
                    _ if other.starts_with("--") => {
                        eprintln!("pipeline: ignoring {other}");
                        continue;
                    }
                    _ => anyhow::bail!("unknown scenario {other:?}\n{}", usage()),
                };
                scenarios.push(scenario);
            }
        }
    }
    if scenarios.is_empty() {
        scenarios.extend(ALL);
    }
    // B2's target is relative to B1's time.
    if scenarios.contains(&Scenario::B2) {
        scenarios.push(Scenario::B1);
    }
    scenarios.sort();
    scenarios.dedup();
    Ok(Options {
        scenarios,
        quick,
        runs: runs.unwrap_or(if quick { 1 } else { 3 }),
        dir,
        concurrency,
    })
}

/// Whether a target was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Met {
    Yes,
    No,
    /// Only reported (no target), or not judged (quick run, debug build).
    NotJudged,
}

struct Row {
    id: &'static str,
    scenario: String,
    size: String,
    result: String,
    spread: String,
    target: String,
    met: Met,
}

/// Collects rows and judges them only when the run can be compared with the targets.
struct Report {
    rows: Vec<Row>,
    judged: bool,
    errors: Vec<String>,
}

impl Report {
    // One argument per table column reads best at the call sites.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        id: &'static str,
        scenario: impl Into<String>,
        size: impl Into<String>,
        result: impl Into<String>,
        spread: impl Into<String>,
        target: impl Into<String>,
        met: Option<bool>,
    ) {
        let met = match met {
            Some(_) if !self.judged => Met::NotJudged,
            Some(true) => Met::Yes,
            Some(false) => Met::No,
            None => Met::NotJudged,
        };
        self.rows.push(Row {
            id,
            scenario: scenario.into(),
            size: size.into(),
            result: result.into(),
            spread: spread.into(),
            target: target.into(),
            met,
        });
    }

    fn error(&mut self, id: &str, e: &anyhow::Error) {
        eprintln!("{id}: error: {e:#}");
        self.errors.push(format!("{id}: {e:#}"));
    }

    fn print(&self, judged_note: &str) {
        let header = Row {
            id: "id",
            scenario: "scenario".into(),
            size: "size".into(),
            result: "result (best run)".into(),
            spread: "all runs".into(),
            target: "target".into(),
            met: Met::NotJudged,
        };
        let met_text = |row: &Row, header: bool| -> String {
            if header {
                return "met".into();
            }
            match row.met {
                Met::Yes => "yes".into(),
                Met::No => "NO".into(),
                Met::NotJudged if row.target == "—" => "—".into(),
                Met::NotJudged => judged_note.into(),
            }
        };
        let all: Vec<(&Row, bool)> = std::iter::once((&header, true))
            .chain(self.rows.iter().map(|r| (r, false)))
            .collect();
        let width = |f: &dyn Fn(&Row) -> usize| all.iter().map(|(r, _)| f(r)).max().unwrap_or(0);
        let w = [
            width(&|r| r.id.chars().count()),
            width(&|r| r.scenario.chars().count()),
            width(&|r| r.size.chars().count()),
            width(&|r| r.result.chars().count()),
            width(&|r| r.spread.chars().count()),
            width(&|r| r.target.chars().count()),
        ];
        for (row, is_header) in &all {
            let line = format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {:<w4$}  {:<w5$}  {}",
                row.id,
                row.scenario,
                row.size,
                row.result,
                row.spread,
                row.target,
                met_text(row, *is_header),
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4],
                w5 = w[5],
            );
            println!("{}", line.trim_end());
            if *is_header {
                println!("{}", "-".repeat(line.trim_end().chars().count()));
            }
        }
    }
}

/// 12345 → "12,345".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(r: f64) -> String {
    thousands(r.round() as u64)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn max_f(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn min_f(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MAX, f64::min)
}

/// "a–b (n runs)" for values formatted by `f`.
fn spread<T: Copy>(v: &[T], lo: T, hi: T, f: impl Fn(T) -> String) -> String {
    if v.len() == 1 {
        "1 run".into()
    } else {
        format!("{}–{} ({} runs)", f(lo), f(hi), v.len())
    }
}

fn min_d(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

fn max_d(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

/// The nearest-rank percentile of `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut sorted = v.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| format!("({program} not available)"))
}

fn print_machine(options: &Options) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    println!("offboard pipeline benchmarks");
    println!(
        "  build: {}; mode: {}; runs per measurement: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if options.quick {
            "quick (small sizes)"
        } else {
            "full size"
        },
        options.runs
    );
    println!("  nproc: {}", command_output("nproc", &[]));
    println!("  cpu: {cpu}");
    println!("  kernel: {kernel}");
    for line in command_output("free", &["-h"]).lines() {
        println!("  {line}");
    }
    println!("  databases under: {}", options.dir.display());
    println!(
        "  load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    // The in-process scenarios log as the daemon does in production (JSON at INFO); the lines go nowhere, but
    // they are formatted.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,tokio_cron_scheduler=warn",
        ))
        .with_writer(std::io::sink)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot build the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    print_machine(&options);
    let started = Instant::now();
    let report = runtime.block_on(run(&options));
    println!();
    report.print(if options.quick {
        "n/a (quick)"
    } else if cfg!(debug_assertions) {
        "n/a (debug)"
    } else {
        "?"
    });
    println!();
    println!(
        "{} measured in {:.0} s. Timings never fail this harness; errors do.",
        if options.quick {
            "Quick run"
        } else {
            "Full run"
        },
        started.elapsed().as_secs_f64()
    );
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} scenario(s) failed with errors:", report.errors.len());
        for e in &report.errors {
            eprintln!("  {e}");
        }
        ExitCode::from(1)
    }
}

async fn run(options: &Options) -> Report {
    let mut report = Report {
        rows: Vec::new(),
        judged: !options.quick && !cfg!(debug_assertions),
        errors: Vec::new(),
    };
    let sizes = if options.quick { QUICK } else { FULL };
    if let Err(e) = std::fs::create_dir_all(&options.dir) {
        report.error("setup", &e.into());
        return report;
    }
    let bin = Path::new(BIN);
    let mut b1_time = None;
    for scenario in &options.scenarios {
        eprintln!("running {scenario:?} …");
        let result = match scenario {
            Scenario::B1 => b1(options, sizes, &mut report)
                .await
                .map(|t| b1_time = Some(t)),
            Scenario::B2 => b2(options, sizes, b1_time, &mut report).await,
            Scenario::B3 => b3(options, sizes, &mut report).await,
            Scenario::B4 => b4(bin, options, sizes, &mut report).await,
            Scenario::B5 => b5(bin, options, sizes, &mut report).await,
            Scenario::B6 => b6(bin, options, &mut report).await,
            Scenario::B7 => b7(bin, options, sizes, &mut report).await,
            Scenario::B8 => b8(options, sizes, &mut report).await,
        };
        if let Err(e) = result {
            report.error(&format!("{scenario:?}"), &e);
        }
    }
    report
}

/// The least CPU time and context switches per removal over the runs, as text.
fn per_removal(runs: &[drain::Drained], n: usize) -> String {
    let cpu = runs.iter().map(|r| r.cpu).min().unwrap_or_default();
    let switches = runs.iter().map(|r| r.switches).min().unwrap_or_default();
    format!(
        "{:.0} µs CPU and {:.1} context switches per removal",
        cpu.as_secs_f64() * 1e6 / n as f64,
        switches as f64 / n as f64
    )
}

/// Raw commit rate, then the 10,000-removal drain; returns the best drain time (for B2).
async fn b1(options: &Options, sizes: Sizes, report: &mut Report) -> anyhow::Result<Duration> {
    let mut raw = Vec::new();
    for _ in 0..options.runs {
        raw.push(drain::raw_commit_rate(&options.dir, sizes.raw_commits).await?);
    }
    let raw_best = max_f(&raw);
    report.row(
        "B1",
        "raw SQLite: single-row transactions (WAL, synchronous=FULL)",
        thousands(sizes.raw_commits as u64),
        format!("{} commits/s", rate(raw_best)),
        spread(&raw, min_f(&raw), raw_best, rate),
        "—",
        None,
    );
    let vendor = vendor::Vendor::start(Duration::ZERO, false)?;
    let mut runs = Vec::new();
    for _ in 0..options.runs {
        runs.push(drain::drain(&options.dir, &vendor, sizes.b1, options.concurrency).await?);
    }
    let times: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let best = min_d(&times);
    let cost = per_removal(&runs, sizes.b1);
    let per_s = |d: Duration| sizes.b1 as f64 / d.as_secs_f64();
    let best_rate = per_s(best);
    let floor = 2_000f64.max(raw_best / 3.0);
    report.row(
        "B1",
        format!(
            "drain due removals, one scim connector, instant vendor (concurrency {})",
            options.concurrency
        ),
        thousands(sizes.b1 as u64),
        format!(
            "{} removals/s ({} s; {:.2} of raw; {cost})",
            rate(best_rate),
            format_args!("{:.2}", best.as_secs_f64()),
            best_rate / raw_best
        ),
        spread(&times, max_d(&times), best, |d| {
            format!("{}/s", rate(per_s(d)))
        }),
        format!("≥ 2,000/s and ≥ raw/3 ({}/s)", rate(raw_best / 3.0)),
        Some(best_rate >= floor),
    );
    // The same drain with the checkpointer running beside it, alternating with plain runs so that
    // both see the same machine; the cost is the loss of throughput between the two best runs.
    let mut plain = Vec::new();
    let mut signed = Vec::new();
    for _ in 0..options.runs {
        plain.push(
            drain::drain(&options.dir, &vendor, sizes.b1, options.concurrency)
                .await?
                .wall,
        );
        signed.push(
            drain::drain_with(&options.dir, &vendor, sizes.b1, options.concurrency, true)
                .await?
                .wall,
        );
    }
    let (plain_best, signed_best) = (min_d(&plain), min_d(&signed));
    let cost = 1.0 - per_s(signed_best) / per_s(plain_best);
    report.row(
        "B1",
        "the same drain with signed checkpoints (every 1,000 rows or 1 s)",
        thousands(sizes.b1 as u64),
        format!(
            "{} removals/s ({:+.1} % against {}/s without, same runs)",
            rate(per_s(signed_best)),
            -cost * 100.0,
            rate(per_s(plain_best))
        ),
        spread(&signed, max_d(&signed), signed_best, |d| {
            format!("{}/s", rate(per_s(d)))
        }),
        "cost < 5 %",
        Some(cost < 0.05),
    );
    Ok(best)
}

async fn b2(
    options: &Options,
    sizes: Sizes,
    b1_time: Option<Duration>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let b1_time = b1_time.context("B2 needs B1's time, and B1 failed")?;
    let vendor = vendor::Vendor::start(Duration::ZERO, false)?;
    let mut runs = Vec::new();
    for _ in 0..options.runs {
        runs.push(drain::drain(&options.dir, &vendor, sizes.b2, options.concurrency).await?);
    }
    let times: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let best = min_d(&times);
    let cost = per_removal(&runs, sizes.b2);
    let ratio = best.as_secs_f64() / b1_time.as_secs_f64();
    let scale = sizes.b2 as f64 / sizes.b1 as f64;
    report.row(
        "B2",
        "the same drain, 10 × the removals",
        thousands(sizes.b2 as u64),
        format!(
            "{} ({}/s; {ratio:.1} × B1's time; {cost})",
            secs(best),
            rate(sizes.b2 as f64 / best.as_secs_f64())
        ),
        spread(&times, best, max_d(&times), secs),
        format!(
            "≤ {:.0} × B1's time ({})",
            scale * 1.1,
            secs(b1_time.mul_f64(scale * 1.1))
        ),
        Some(ratio <= scale * 1.1),
    );
    Ok(())
}

async fn b3(options: &Options, sizes: Sizes, report: &mut Report) -> anyhow::Result<()> {
    let vendor = vendor::Vendor::start(B3_LATENCY, false)?;
    let ideal = B3_CONCURRENCY as f64 / (CALLS_PER_REMOVAL * B3_LATENCY.as_secs_f64());
    let mut times = Vec::new();
    for _ in 0..options.runs {
        times.push(
            drain::drain(&options.dir, &vendor, sizes.b3, B3_CONCURRENCY)
                .await?
                .wall,
        );
    }
    let best = min_d(&times);
    let per_s = |d: Duration| sizes.b3 as f64 / d.as_secs_f64();
    let best_rate = per_s(best);
    report.row(
        "B3",
        format!(
            "drain, vendor answers after {} ms, connector concurrency {B3_CONCURRENCY}",
            B3_LATENCY.as_millis()
        ),
        thousands(sizes.b3 as u64),
        format!(
            "{} removals/s = {:.1} % of ideal {}/s",
            rate(best_rate),
            100.0 * best_rate / ideal,
            rate(ideal)
        ),
        spread(&times, max_d(&times), best, |d| {
            format!("{:.1} %", 100.0 * per_s(d) / ideal)
        }),
        "≥ 90 % of ideal",
        Some(best_rate >= 0.9 * ideal),
    );
    let mut seq = Vec::new();
    for _ in 0..options.runs {
        seq.push(
            drain::drain(&options.dir, &vendor, sizes.b3_sequential, 1)
                .await?
                .wall,
        );
    }
    let seq_best = min_d(&seq);
    let seq_rate = sizes.b3_sequential as f64 / seq_best.as_secs_f64();
    report.row(
        "B3",
        "the same, one at a time (concurrency 1)",
        thousands(sizes.b3_sequential as u64),
        format!(
            "{:.2} removals/s; concurrency {B3_CONCURRENCY} is {:.1} × faster",
            seq_rate,
            best_rate / seq_rate
        ),
        spread(&seq, max_d(&seq), seq_best, |d| {
            format!("{:.2}/s", sizes.b3_sequential as f64 / d.as_secs_f64())
        }),
        "—",
        None,
    );
    Ok(())
}

async fn b4(
    bin: &Path,
    options: &Options,
    sizes: Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut p99s = Vec::new();
    let mut best: Option<Vec<Duration>> = None;
    for _ in 0..options.runs {
        let latencies = revoke::push_latencies(bin, &options.dir, sizes.b4_pushes).await?;
        let p99 = percentile(&latencies, 99.0);
        if p99s.iter().all(|p| p99 < *p) {
            best = Some(latencies.clone());
        }
        p99s.push(p99);
    }
    let best = best.unwrap_or_default();
    let p99 = percentile(&best, 99.0);
    report.row(
        "B4",
        "time to revoke: push (effective now) → vendor's first call, idle daemon",
        format!("{} pushes", sizes.b4_pushes),
        format!(
            "p99 {} (p50 {}, max {})",
            secs(p99),
            secs(percentile(&best, 50.0)),
            secs(max_d(&best))
        ),
        spread(&p99s, min_d(&p99s), max_d(&p99s), |d| {
            format!("p99 {}", secs(d))
        }),
        "p99 ≤ 250 ms",
        Some(p99 <= Duration::from_millis(250)),
    );
    let mut maxes = Vec::new();
    let mut all = Vec::new();
    for _ in 0..options.runs {
        let latencies = revoke::poll_latencies(bin, &options.dir, sizes.b4_polls).await?;
        maxes.push(max_d(&latencies));
        all.extend(latencies);
    }
    let best_max = min_d(&maxes);
    report.row(
        "B4",
        "time to revoke: feed row → vendor's first call, poll every 1 s",
        format!("{} changes", sizes.b4_polls),
        format!(
            "max {} (median of all runs {})",
            secs(best_max),
            secs(percentile(&all, 50.0))
        ),
        spread(&maxes, best_max, max_d(&maxes), |d| {
            format!("max {}", secs(d))
        }),
        "≤ interval + 1 s (2 s)",
        Some(best_max <= Duration::from_secs(2)),
    );
    Ok(())
}

async fn b5(
    bin: &Path,
    options: &Options,
    sizes: Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..options.runs {
        let (bin, dir, rows) = (bin.to_path_buf(), options.dir.clone(), sizes.b5_rows);
        let run = tokio::task::spawn_blocking(move || intake::intake(&bin, &dir, rows)).await??;
        walls.push(run.wall);
        rss.push(run.max_rss_kib);
    }
    let best = min_d(&walls);
    let rss_best = rss.iter().copied().min().unwrap_or(0);
    let rss_max = rss.iter().copied().max().unwrap_or(0);
    report.row(
        "B5",
        "CSV feed intake, 3 connectors (offboard run --once, spawn to exit)",
        format!("{} rows", thousands(sizes.b5_rows as u64)),
        format!(
            "{} ({}/s rows)",
            secs(best),
            rate(sizes.b5_rows as f64 / best.as_secs_f64())
        ),
        spread(&walls, best, max_d(&walls), secs),
        "≤ 5 s",
        Some(best <= Duration::from_secs(5)),
    );
    report.row(
        "B5",
        "the same: peak RSS of the process (VmHWM)",
        format!("{} rows", thousands(sizes.b5_rows as u64)),
        mib(rss_best),
        spread(&rss, rss_best, rss_max, mib),
        "≤ 100 MB",
        Some(rss_best * 1024 <= 100_000_000),
    );
    Ok(())
}

async fn b6(bin: &Path, options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for _ in 0..options.runs {
        runs.push(footprint::footprint(bin, &options.dir, B6_IDLE).await?);
    }
    let rss: Vec<u64> = runs.iter().map(|r| r.idle_rss_kib).collect();
    let hwm: Vec<u64> = runs.iter().map(|r| r.peak_rss_kib).collect();
    let new: Vec<Duration> = runs.iter().map(|r| r.ready_new).collect();
    let existing: Vec<Duration> = runs.iter().map(|r| r.ready_existing).collect();
    let rss_best = rss.iter().copied().min().unwrap_or(0);
    report.row(
        "B6",
        format!(
            "idle RSS after start, 5 connectors + CSV feed (VmRSS after {} s)",
            B6_IDLE.as_secs()
        ),
        "5 connectors",
        format!(
            "{} (peak {})",
            mib(rss_best),
            mib(hwm.iter().copied().min().unwrap_or(0))
        ),
        spread(&rss, rss_best, rss.iter().copied().max().unwrap_or(0), mib),
        "≤ 20 MB",
        Some(rss_best * 1024 <= 20_000_000),
    );
    report.row(
        "B6",
        "start → /readyz 200, new database (migrations)",
        "5 connectors",
        secs(min_d(&new)),
        spread(&new, min_d(&new), max_d(&new), secs),
        "≤ 300 ms",
        Some(min_d(&new) <= Duration::from_millis(300)),
    );
    report.row(
        "B6",
        "start → /readyz 200, existing database",
        "5 connectors",
        secs(min_d(&existing)),
        spread(&existing, min_d(&existing), max_d(&existing), secs),
        "≤ 300 ms",
        Some(min_d(&existing) <= Duration::from_millis(300)),
    );
    Ok(())
}

/// Worker and connector concurrency of each replica in B7's drain with a 50 ms vendor.
const B7_CONCURRENCY: usize = 8;

/// B7: the drains of B1 and B3 on PostgreSQL with one and three replicas, push → first call across
/// replicas, and graphile_worker draining no-op jobs on the same server.
async fn b7(
    bin: &Path,
    options: &Options,
    sizes: Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let server = replicas::Server::start()?;
    let instant = vendor::Vendor::start(Duration::ZERO, false)?;
    let slow = vendor::Vendor::start(B3_LATENCY, false)?;
    let mut rates = std::collections::HashMap::new();
    for (label, vendor, n, concurrency) in [
        ("instant vendor", &instant, sizes.b7_b1, options.concurrency),
        (
            "vendor answers after 50 ms",
            &slow,
            sizes.b7_b3,
            B7_CONCURRENCY,
        ),
    ] {
        for k in [1, 3] {
            let mut times = Vec::new();
            for _ in 0..options.runs {
                times.push(
                    replicas::drain(bin, &options.dir, &server, vendor, n, k, concurrency).await?,
                );
            }
            let fastest = min_d(&times);
            let per_s = |d: Duration| n as f64 / d.as_secs_f64();
            rates.insert((label, k), per_s(fastest));
            let (judgement, target) = if k == 3 {
                let ratio = per_s(fastest) / rates[&(label, 1)];
                let judged = (label != "instant vendor").then_some(ratio >= 2.7);
                (
                    format!(" = {ratio:.2} × one replica"),
                    if judged.is_some() {
                        "≥ 2.7 × one replica".to_string()
                    } else {
                        "—".to_string()
                    },
                )
            } else {
                (String::new(), "—".to_string())
            };
            report.row(
                "B7",
                format!(
                    "PostgreSQL, {k} replica{} (processes), {label}, concurrency {concurrency} each",
                    if k == 1 { "" } else { "s" }
                ),
                thousands(n as u64),
                format!("{} removals/s{judgement}", rate(per_s(fastest))),
                spread(&times, max_d(&times), fastest, |d| format!("{}/s", rate(per_s(d)))),
                target.clone(),
                (k == 3 && label != "instant vendor").then(|| per_s(fastest) / rates[&(label, 1)] >= 2.7),
            );
        }
    }
    let mut p99s = Vec::new();
    let mut all = Vec::new();
    for _ in 0..options.runs {
        let latencies =
            replicas::push_latencies(bin, &options.dir, &server, sizes.b7_pushes).await?;
        p99s.push(percentile(&latencies, 99.0));
        all.extend(latencies);
    }
    let p99 = min_d(&p99s);
    report.row(
        "B7",
        "push to a random one of 3 replicas → the vendor's first call",
        thousands(sizes.b7_pushes as u64),
        format!(
            "p50 {} ms, p99 {} ms",
            percentile(&all, 50.0).as_millis(),
            p99.as_millis()
        ),
        spread(&p99s, max_d(&p99s), p99, |d| {
            format!("p99 {} ms", d.as_millis())
        }),
        "p99 ≤ 250 ms",
        Some(p99 <= Duration::from_millis(250)),
    );
    if options.quick {
        return Ok(());
    }
    // The peer: graphile_worker, no-op jobs, on the same server; one and three processes.
    for k in [1, 3] {
        let mut times = Vec::new();
        for _ in 0..options.runs {
            let db = server.database().await?;
            times.push(replicas::peer_drain(
                &server,
                &db,
                sizes.b7_b1,
                k,
                options.concurrency,
            )?);
        }
        let fastest = min_d(&times);
        let per_s = |d: Duration| sizes.b7_b1 as f64 / d.as_secs_f64();
        let ours = rates[&("instant vendor", k)];
        report.row(
            "B7",
            format!(
                "peer: graphile_worker 0.14, no-op jobs, {k} process{}, concurrency {} each",
                if k == 1 { "" } else { "es" },
                options.concurrency
            ),
            thousands(sizes.b7_b1 as u64),
            format!(
                "{} jobs/s; offboard's drain (two vendor calls and five audit rows per removal) is {:.2} × it",
                rate(per_s(fastest)),
                ours / per_s(fastest)
            ),
            spread(&times, max_d(&times), fastest, |d| format!("{}/s", rate(per_s(d)))),
            "—",
            None,
        );
    }
    Ok(())
}

/// B8: each console page on a database of 100,000 removals, asked over HTTP with a session.
async fn b8(options: &Options, sizes: Sizes, report: &mut Report) -> anyhow::Result<()> {
    let runs = options.runs.max(3) * 2;
    let pages = console::page_times(&options.dir, sizes.b8_removals, runs).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (page, first, times) in pages {
        let median = percentile(&times, 50.0);
        let worst = max_d(&times).max(first);
        report.row(
            "B8",
            format!("console page {page}"),
            format!("{} removals", thousands(sizes.b8_removals as u64)),
            format!(
                "first {:.1} ms, then median {:.1} ms, worst {:.1} ms",
                ms(first),
                ms(median),
                ms(max_d(&times))
            ),
            format!("1 + {runs} requests"),
            "< 100 ms",
            Some(worst < Duration::from_millis(100)),
        );
    }
    Ok(())
}
