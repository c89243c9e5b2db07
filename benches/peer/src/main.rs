//! The peer of benchmark B7: graphile_worker draining no-op jobs on a PostgreSQL database.
//!
//! `offboard-bench-peer URL JOBS CONCURRENCY [PROCESSES_INDEX]`: with a JOBS argument above zero it adds
//! that many no-op jobs (in batches) and prints nothing; with JOBS = 0 it runs one worker of
//! CONCURRENCY until the queue is empty (graphile_worker's `run_once`) and prints `drained SECONDS`.
//! The harness adds the jobs once, then starts one or three draining processes at the same moment.

use std::time::Instant;

use graphile_worker::{IntoTaskHandlerResult, JobSpec, TaskHandler, WorkerContext, WorkerOptions};
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize, Serialize)]
struct Noop {
    n: u64,
}

impl TaskHandler for Noop {
    const IDENTIFIER: &'static str = "noop";

    async fn run(self, _ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        Ok::<(), String>(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, jobs, concurrency] = args.as_slice() else {
        return Err("usage: offboard-bench-peer URL JOBS CONCURRENCY".into());
    };
    let jobs: u64 = jobs.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency + 2)?)
        .connect(url)
        .await?;
    let worker = WorkerOptions::default()
        .pg_pool(pool)
        .concurrency(concurrency)
        .schema("graphile_worker")
        .define_job::<Noop>()
        .init()
        .await?;
    if jobs > 0 {
        let spec = JobSpec::default();
        let utils = worker.create_utils();
        let mut next = 0;
        while next < jobs {
            let batch: Vec<(Noop, &JobSpec)> = (next..jobs.min(next + 1000))
                .map(|n| (Noop { n }, &spec))
                .collect();
            next += batch.len() as u64;
            utils.add_jobs(&batch).await?;
        }
        return Ok(());
    }
    let started = Instant::now();
    worker.run_once().await?;
    println!("drained {:.6}", started.elapsed().as_secs_f64());
    Ok(())
}
