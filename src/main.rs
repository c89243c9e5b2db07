//! The `offboard` binary: parse the command line, load the config, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use offboard::cli::{self, Cli, Command};
use offboard::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A key pair needs no config (it is made before the config that names it).
    if let Command::Keygen { out } = &cli.command {
        return match cli::keygen(out, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    // Completions and the manual page are made from the command definitions alone.
    let made = match &cli.command {
        Command::Completions { shell } => Some(cli::completions(*shell, &mut std::io::stdout())),
        Command::Man => Some(cli::man(&mut std::io::stdout())),
        _ => None,
    };
    if let Some(made) = made {
        return match made {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            if !matches!(cli.command, Command::CheckConfig { .. }) {
                eprintln!("offboard: the config has problems; nothing was started.");
            }
            return ExitCode::from(1);
        }
    };
    let level = if cli.quiet {
        "warn"
    } else if cli.verbose {
        "debug"
    } else {
        config.log.level.as_str()
    };
    offboard::telemetry::init(config.log.format, level);
    match cli::execute(cli, config).await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // A reader that went away (`offboard audit | head`) is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
