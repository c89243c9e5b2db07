//! The command line: the commands and their arguments (here), and what each runs, one file per
//! command group: `daemon.rs` (run, check-config, migrate), `queue.rs` (status, removals, retry,
//! approve, reject, cancel), `feed.rs` (plan, enqueue, import) and `evidence.rs` (report, audit).
//! Listings are written by [`crate::output`].

mod daemon;
mod evidence;
mod feed;
mod holds;
mod queue;

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::domain::RemovalState;
use crate::feed::rows;
pub use crate::output::Format;
use crate::store::Store;
use crate::store::queue::{RemovalFilter, RetrySelection};
pub use feed::EnqueueArgs;

/// offboard: removes a leaver's access to every SaaS app on the day HR says they leave, and proves it.
#[derive(Debug, Parser)]
#[command(name = "offboard", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "OFFBOARD_CONFIG",
        default_value = "/etc/offboard/offboard.toml"
    )]
    pub config: PathBuf,
    /// Only warnings and errors in the log (overrides `log.level`).
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Debug detail in the log (overrides `log.level`).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Tables and CSV without their header row (for scripts).
    #[arg(long, global = true)]
    pub no_headers: bool,
    /// Who runs an operator command (recorded in the audit log); default $SUDO_USER, else $USER.
    /// approve, reject, retry, cancel, enqueue and import refuse to run when none is known.
    #[arg(long, global = true)]
    pub actor: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the daemon: polls the feed on its schedule and works the queue until SIGTERM.
    Run {
        /// Poll once, process everything due, print a summary and exit (non-zero if anything failed).
        #[arg(long)]
        once: bool,
        /// Summary format for --once.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Checks the config: prints "ok" or every problem (exit 1).
    CheckConfig {
        /// Also run each connector's probe (a cheap authenticated read).
        #[arg(long)]
        probe: bool,
    },
    /// Applies database migrations; with `--to`, moves the SQLite database to PostgreSQL.
    Migrate {
        /// A PostgreSQL database to move every row of the configured SQLite database into
        /// (postgres://USER@HOST:PORT/DATABASE, no password in it). The daemon must be stopped; the
        /// audit chain is verified on the target afterwards.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// A file holding the target's password (else `$PGPASSWORD`, if set).
        #[arg(long, value_name = "FILE", requires = "to")]
        password_file: Option<std::path::PathBuf>,
    },
    /// Writes a consistent copy of the database to a new file while the daemon runs (SQLite's
    /// `VACUUM INTO`), then verifies the copy's audit chain.
    Backup {
        /// The file to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints a shell completion script for bash, zsh, fish, elvish or powershell (no config needed), e.g.
    /// `offboard completions bash > /etc/bash_completion.d/offboard`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff; no config needed): `offboard man > /usr/share/man/man1/offboard.1`.
    Man,
    /// Writes a new Ed25519 key pair for signed audit checkpoints: `checkpoint.key` (private, mode
    /// 0600: name it in `[checkpoints] signing_key_file`) and `checkpoint.pub` (give it to the auditors).
    Keygen {
        /// The directory to write them to (it must not hold them yet).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// The queue by state and connector, the oldest due removal, failures, rehires after removal.
    Status {
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Lists removals.
    Removals {
        /// Only this state.
        #[arg(long)]
        state: Option<RemovalState>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only this employee.
        #[arg(long)]
        employee: Option<String>,
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Connector states: list them, or pause and resume one (an operator's act, audited). A
    /// quarantined connector (its vendor kept failing) resumes by itself when a probe succeeds.
    Connector {
        /// What to do.
        #[command(subcommand)]
        action: ConnectorAction,
    },
    /// Reads each connector's last-login export (`[connector.inactive]`) and queues the accounts
    /// unused past its threshold (reason `inactive`), through the guard like any batch. `--plan` shows
    /// what it would do and writes nothing. The daemon does this daily.
    Inactive {
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Show the plan; write nothing.
        #[arg(long)]
        plan: bool,
        /// Output format (of --plan).
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Legal holds: while a person is on hold, their removals' deletions wait (access is still
    /// removed). Placing and lifting a hold is an operator's act, audited.
    Hold {
        /// What to do.
        #[command(subcommand)]
        action: HoldAction,
    },
    /// Lists rejected feed rows: batch, row, line, field and reason (never the rejected values).
    Rejects {
        /// Only this batch (as `status` and the poll summary number it).
        #[arg(long)]
        batch: Option<i64>,
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Puts a failed (or planned) removal, or every failed one, back in the queue.
    Retry {
        /// The removal id.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<i64>,
        /// Every failed removal.
        #[arg(long)]
        failed: bool,
        /// With --failed: only this connector.
        #[arg(long, requires = "failed")]
        connector: Option<String>,
    },
    /// Releases a batch held by the mass-removal guard, or a connector's dry-run (planned) removals.
    Approve {
        /// The held batch.
        #[arg(required_unless_present = "planned", conflicts_with = "planned")]
        batch: Option<i64>,
        /// Instead: move the connector's planned removals to pending (after turning its dry_run off).
        #[arg(long, requires = "connector")]
        planned: bool,
        /// With --planned: the connector.
        #[arg(long)]
        connector: Option<String>,
    },
    /// Cancels every removal of a batch held by the mass-removal guard.
    Reject {
        /// The held batch.
        batch: i64,
    },
    /// Lists the terminations rejected with `reject` that are remembered: a feed or push repeating the
    /// same person and effective date is not taken (nor held) again.
    Rejected {
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Lifts the rejection of a person's rejected termination: the next feed or push that reports it
    /// starts it again (through the mass-removal guard as usual).
    Unreject {
        /// The employee id.
        employee: String,
    },
    /// Reads the feed now and shows, per person and connector, what would happen; writes nothing.
    Plan {
        /// Also run each connector's read-only lookup for removals that would run.
        #[arg(long)]
        resolve: bool,
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Cancels a pending, held, failed or planned removal.
    Cancel {
        /// The removal id.
        id: i64,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Enqueues a termination by hand (same validation as the feed).
    Enqueue(EnqueueArgs),
    /// One-time bulk removal of the accounts listed in a column of a vendor's user export (one batch).
    Import {
        /// The CSV export.
        file: PathBuf,
        /// The connector to remove them from.
        #[arg(long)]
        connector: String,
        /// The column that holds the account key.
        #[arg(long)]
        column: String,
    },
    /// Evidence per leaver and connector: when access was removed, time to revoke, SLA breaches.
    Report {
        /// Terminations effective at or after this time (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Terminations effective before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// The evidence record of one leaver for an auditor: termination, each app's removal with its
    /// vendor calls, time to revoke against the SLA, the audit rows with their hashes and the signed
    /// checkpoint covering them; signed with the checkpoint key (docs/evidence.md).
    Evidence {
        /// The employee id.
        employee: String,
        /// json (for machines and the signature check) or html (a self-contained page).
        #[arg(long, value_enum, default_value_t = EvidenceFormat::Json)]
        format: EvidenceFormat,
    },
    /// Reads the audit log, or verifies its hash chain.
    Audit {
        /// verify: checks the hash chain.
        #[command(subcommand)]
        action: Option<AuditAction>,
        /// Only this employee.
        #[arg(long)]
        employee: Option<String>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only rows at or after this time (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
}

/// `offboard connector` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConnectorAction {
    /// The connectors that are quarantined or paused, with why and since when.
    List {
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Stops claiming the connector's removals (they wait, attempts untouched) until `resume`.
    Pause {
        /// The connector.
        name: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Claims the connector's removals again (ends a pause or a quarantine).
    Resume {
        /// The connector.
        name: String,
    },
}

/// `offboard hold` subcommands.
#[derive(Debug, Subcommand)]
pub enum HoldAction {
    /// The holds in force: person, reason, until, who placed it and when.
    List {
        /// Output format.
        #[arg(
            long,
            short = 'o',
            visible_alias = "output",
            value_enum,
            default_value_t
        )]
        format: Format,
    },
    /// Places a legal hold on a person: the deleting stages of their removals wait until it ends.
    Add {
        /// The employee id.
        employee: String,
        /// Why (a case or matter reference; recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// When the hold ends by itself (YYYY-MM-DD or RFC 3339). Default: when removed.
        #[arg(long)]
        until: Option<String>,
    },
    /// Lifts a person's hold: their waiting deletions run when due.
    Remove {
        /// The employee id.
        employee: String,
    },
}

/// The forms of an evidence record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvidenceFormat {
    /// The signed record as JSON.
    Json,
    /// A self-contained HTML page.
    Html,
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Checks that no audit row was changed, inserted or removed, and that every finished removal has
    /// the audit row that records it; with `--checkpoints`, against the signed checkpoints.
    Verify {
        /// A file of signed checkpoints (`[checkpoints] file`), one JSON line each.
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The public key that signed them (`offboard keygen`).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<PathBuf>,
        /// Rows after the last checkpoint older than this are an error (never signed).
        #[arg(long, default_value = "15m")]
        max_uncovered: String,
    },
    /// Moves the oldest audit rows, up to `--through`, out of the database into a signed segment file
    /// (one JSON row per line, then the checkpoint of the last row); the chain then starts after it.
    /// Needs `[checkpoints]` (the signing key). The newest row always stays.
    Archive {
        /// The last row to archive.
        #[arg(long)]
        through: i64,
        /// The directory the segment file is written to.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verifies an archived segment file on its own, with the public key.
    VerifySegment {
        /// The segment file.
        file: PathBuf,
        /// The public key (`offboard keygen`).
        #[arg(long)]
        public_key: PathBuf,
        /// The previous segment's last hash (the first segment starts from the genesis hash).
        #[arg(long)]
        after: Option<String>,
    },
}

/// `offboard keygen`: a new checkpoint key pair in `dir`; refuses to overwrite one.
pub fn keygen(dir: &std::path::Path, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let (private, public) = crate::checkpoint::keygen()?;
    let private_path = dir.join("checkpoint.key");
    let public_path = dir.join("checkpoint.pub");
    for path in [&private_path, &public_path] {
        if path.exists() {
            anyhow::bail!("{} exists: refusing to overwrite a key", path.display());
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private_path)
        .with_context(|| format!("cannot create {}", private_path.display()))?;
    writeln!(file, "{private}")?;
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    let key = crate::checkpoint::PublicKey::read(&public_path)?;
    writeln!(
        out,
        "wrote {} (private: keep it on this host only) and {} (public, key id {}: give it to your auditors)",
        private_path.display(),
        public_path.display(),
        key.key_id
    )?;
    Ok(())
}

/// The operator's name: `--actor`, else `$SUDO_USER`, else `$USER`; `None` when none is set (cron,
/// `kubectl exec`), and then the commands that the audit log attributes to a person refuse to run.
pub fn actor(explicit: Option<&str>) -> Option<String> {
    let named = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    named(explicit.map(str::to_string))
        .or_else(|| named(std::env::var("SUDO_USER").ok()))
        .or_else(|| named(std::env::var("USER").ok()))
}

/// The operator, or the error that stops a command the audit log must attribute to a person.
fn operator(actor: &Option<String>, command: &str) -> anyhow::Result<String> {
    actor.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "`offboard {command}` needs a named operator for the audit log, and none is known: \
             $USER and $SUDO_USER are not set (cron, kubectl exec); pass --actor NAME"
        )
    })
}

/// Runs a parsed command; returns the process exit code.
pub async fn execute(cli: Cli, config: Config) -> anyhow::Result<i32> {
    let actor = actor(cli.actor.as_deref());
    let mut out = std::io::stdout().lock();
    crate::output::set_headers(!cli.no_headers);
    // A connector name that is not configured is a typo, not an empty result.
    let named = match &cli.command {
        Command::Removals { connector, .. }
        | Command::Retry { connector, .. }
        | Command::Approve { connector, .. }
        | Command::Report { connector, .. }
        | Command::Audit { connector, .. }
        | Command::Inactive { connector, .. } => connector.as_deref(),
        Command::Import { connector, .. } => Some(connector.as_str()),
        Command::Connector {
            action: ConnectorAction::Pause { name, .. } | ConnectorAction::Resume { name },
        } => Some(name.as_str()),
        _ => None,
    };
    if let Some(name) = named
        && config.connector(name).is_none()
    {
        let known: Vec<&str> = config.connectors.iter().map(|c| c.name.as_str()).collect();
        anyhow::bail!(
            "no connector named {name:?} in {} (configured: {})",
            config.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    match cli.command {
        Command::CheckConfig { probe } => daemon::check_config(&config, probe, &mut out).await,
        Command::Run { once: false, .. } => daemon::run(config).await,
        Command::Run { once: true, format } => daemon::run_once(config, format, &mut out).await,
        Command::Migrate { to: None, .. } => daemon::migrate(&config, &mut out).await,
        Command::Migrate {
            to: Some(to),
            password_file,
        } => daemon::migrate_to(&config, &to, password_file.as_deref(), &mut out).await,
        Command::Keygen { out: dir } => keygen(&dir, &mut out).map(|()| 0),
        Command::Completions { shell } => completions(shell, &mut out).map(|()| 0),
        Command::Man => man(&mut out).map(|()| 0),
        Command::Backup { out: file } => evidence::backup(&config, &file, &mut out).await,
        Command::Status { format } => queue::status(&config, format, &mut out).await,
        Command::Removals {
            state,
            connector,
            employee,
            format,
        } => {
            let filter = RemovalFilter {
                state,
                connector,
                employee_id: employee,
                ..RemovalFilter::default()
            };
            queue::removals(&config, &filter, format, &mut out).await
        }
        Command::Rejects { batch, format } => {
            queue::rejects(&config, batch, format, &mut out).await
        }
        Command::Retry {
            id,
            failed: _,
            connector,
        } => {
            let selection = match id {
                Some(id) => RetrySelection::One(id),
                None => RetrySelection::Failed { connector },
            };
            let actor = operator(&actor, "retry")?;
            queue::retry(&config, &selection, &actor, &mut out).await
        }
        Command::Approve {
            batch,
            planned: _,
            connector,
        } => {
            let actor = operator(&actor, "approve")?;
            queue::approve(&config, batch, connector, &actor, &mut out).await
        }
        Command::Reject { batch } => {
            let actor = operator(&actor, "reject")?;
            queue::reject(&config, batch, &actor, &mut out).await
        }
        Command::Rejected { format } => queue::rejected(&config, format, &mut out).await,
        Command::Connector { action } => match action {
            ConnectorAction::List { format } => {
                queue::connector_states(&config, format, &mut out).await
            }
            ConnectorAction::Pause { name, reason } => {
                let actor = operator(&actor, "connector pause")?;
                queue::pause(&config, &name, &reason, &actor, &mut out).await
            }
            ConnectorAction::Resume { name } => {
                let actor = operator(&actor, "connector resume")?;
                queue::resume(&config, &name, &actor, &mut out).await
            }
        },
        Command::Inactive {
            connector,
            plan,
            format,
        } => {
            let actor = if plan {
                crate::audit::DAEMON.to_string()
            } else {
                operator(&actor, "inactive")?
            };
            feed::inactive(
                &config,
                connector.as_deref(),
                plan,
                format,
                &actor,
                &mut out,
            )
            .await
        }
        Command::Hold { action } => match action {
            HoldAction::List { format } => holds::list(&config, format, &mut out).await,
            HoldAction::Add {
                employee,
                reason,
                until,
            } => {
                let actor = operator(&actor, "hold add")?;
                let until = time_arg("--until", until.as_deref())?;
                holds::add(&config, &employee, &reason, until, &actor, &mut out).await
            }
            HoldAction::Remove { employee } => {
                let actor = operator(&actor, "hold remove")?;
                holds::remove(&config, &employee, &actor, &mut out).await
            }
        },
        Command::Unreject { employee } => {
            let actor = operator(&actor, "unreject")?;
            queue::unreject(&config, &employee, &actor, &mut out).await
        }
        Command::Cancel { id, reason } => {
            let actor = operator(&actor, "cancel")?;
            queue::cancel(&config, id, &reason, &actor, &mut out).await
        }
        Command::Plan { resolve, format } => feed::plan(&config, resolve, format, &mut out).await,
        Command::Enqueue(args) => {
            let actor = operator(&actor, "enqueue")?;
            feed::enqueue(&config, args, &actor, &mut out).await
        }
        Command::Import {
            file,
            connector,
            column,
        } => {
            let actor = operator(&actor, "import")?;
            feed::import(&config, &file, &connector, &column, &actor, &mut out).await
        }
        Command::Evidence { employee, format } => {
            evidence::record(&config, &employee, format, &mut out).await
        }
        Command::Report {
            since,
            until,
            connector,
            format,
        } => {
            evidence::report(
                &config,
                since.as_deref(),
                until.as_deref(),
                connector,
                format,
                &mut out,
            )
            .await
        }
        Command::Audit {
            action:
                Some(AuditAction::Verify {
                    checkpoints,
                    public_key,
                    max_uncovered,
                }),
            ..
        } => {
            let against = match (checkpoints, public_key) {
                (Some(c), Some(k)) => Some((c, k, max_uncovered)),
                _ => None,
            };
            evidence::verify(&config, against, &mut out).await
        }
        Command::Audit {
            action: Some(AuditAction::Archive { through, out: dir }),
            ..
        } => {
            let actor = operator(&actor, "audit archive")?;
            evidence::archive(&config, through, &dir, &actor, &mut out).await
        }
        Command::Audit {
            action:
                Some(AuditAction::VerifySegment {
                    file,
                    public_key,
                    after,
                }),
            ..
        } => evidence::verify_segment(&file, &public_key, after.as_deref(), &mut out),
        Command::Audit {
            action: None,
            employee,
            connector,
            since,
            format,
        } => {
            evidence::list(
                &config,
                employee,
                connector,
                since.as_deref(),
                format,
                &mut out,
            )
            .await
        }
    }
}

/// A `--since` / `--until` argument, if given.
fn time_arg(flag: &str, value: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    value
        .map(|s| {
            parse_time_arg(s)
                .with_context(|| format!("{flag} {s:?}: expected YYYY-MM-DD or RFC 3339"))
        })
        .transpose()
}

/// Parses a time argument: YYYY-MM-DD (UTC midnight) or RFC 3339.
pub fn parse_time_arg(s: &str) -> Option<DateTime<Utc>> {
    rows::parse_effective_date(s, chrono_tz::UTC)
}

/// Opens the database for a command that reads or changes existing state: a missing file is an
/// error (a wrong path must not show an empty, healthy-looking queue).
async fn open_existing(config: &Config) -> anyhow::Result<Store> {
    match config.database.sqlite_path() {
        Some(path) if !path.exists() => anyhow::bail!(
            "no database at {} (database.url in {}); check the path, or run `offboard migrate` to create it",
            path.display(),
            config.path.display()
        ),
        Some(_) => open(config).await,
        None => {
            let store = Store::connect_configured(&config.database).await?;
            if store.migrations_applied().await.unwrap_or(0) == 0 {
                anyhow::bail!(
                    "the database {} (database.url in {}) holds no offboard tables; check the URL, or run `offboard migrate` to create them",
                    config.database.describe(),
                    config.path.display()
                );
            }
            store.migrate().await?;
            Ok(store)
        }
    }
}

/// Opens (creating if need be) the database.
async fn open(config: &Config) -> anyhow::Result<Store> {
    Store::open_configured(&config.database).await
}

/// `offboard completions SHELL`: the completion script, generated from the command definitions.
pub fn completions(
    shell: clap_complete::Shell,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "offboard", out);
    Ok(())
}

/// `offboard man`: the manual page, generated from the command definitions.
pub fn man(out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(command).render(out)?;
    Ok(())
}
