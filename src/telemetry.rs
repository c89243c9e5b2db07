//! Logging: human format on a terminal, JSON otherwise; level from `RUST_LOG` or the config.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (once). Logs go to stderr so command output on stdout stays clean.
pub fn init(format: LogFormat, level: &str) {
    // The scheduler crate logs its own start-up at INFO; only its warnings matter to an operator.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},tokio_cron_scheduler=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // The start-up line (version, addresses, database) is written at any level: the first thing to
    // know about a daemon, and one line.
    let filter = match "offboard::startup=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // A line that cannot be written (stderr closed: `offboard run | head`, a log collector that went away)
    // is dropped. Reporting that failure would print to the same closed stderr, which panics the task
    // that logged: the signal handler, a worker or `main` itself.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        // Colour only on a terminal: journald and log files get plain text.
        builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
