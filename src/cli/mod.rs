//! The `modelgate` command line. `main.rs` parses; this module runs.

mod banner;
mod doctor;
mod keys;
mod output;
mod probe;
mod show;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::config::{Config, ConfigError};

/// Exit status for bad usage or configuration (clap uses the same for bad arguments).
const EXIT_USAGE: u8 = 2;
const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Model-serving API with API keys, limits and health"
)]
pub struct Cli {
    /// TOML configuration file; environment variables override it.
    #[arg(long, global = true, env = "MODELGATE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default when no command is given).
    Serve,
    /// Manage API keys in the configured store.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Inspect the models folder.
    #[command(subcommand)]
    Models(show::ModelsCommand),
    /// Inspect the effective configuration.
    #[command(subcommand)]
    Config(show::ConfigCommand),
    /// Diagnose every configured dependency, step by step (exit 1: a required one failed,
    /// 3: only optional ones failed).
    Doctor(doctor::DoctorArgs),
    /// Check a running server end to end (health and one prediction) at an interval.
    Probe(probe::ProbeArgs),
}

/// A command's failure: what to print and with which exit status. Status 0 is a stop that is
/// no error (the reader closed stdout) and prints nothing.
#[derive(Debug)]
pub struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }

    fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            status: EXIT_FAILURE,
            message: message.into(),
        }
    }

    fn stdout_closed() -> Failure {
        Failure {
            status: 0,
            message: String::new(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::usage(err.to_string())
    }
}

impl From<app::StartError> for Failure {
    fn from(err: app::StartError) -> Self {
        if err.is_configuration() {
            Failure::usage(err.to_string())
        } else {
            Failure::runtime(err.to_string())
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(dispatch(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.status != 0 {
                // Not eprintln!: a closed stderr must not turn a failure into a panic.
                let _ = writeln!(std::io::stderr(), "modelgate: {}", failure.message);
            }
            ExitCode::from(failure.status)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    // Loaded only by the commands that use it: a probe checks a server from the outside and
    // must work without the server's configuration file or store.
    let config = || Config::load(cli.config.as_deref());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config()?, cli.config.as_deref()).await,
        Command::Keys(command) => keys::run(command, &config()?).await,
        Command::Models(command) => show::models(command, &config()?),
        Command::Config(command) => show::config(command, &config()?),
        Command::Doctor(args) => doctor::run(args, &config()?).await,
        Command::Probe(args) => probe::run(args).await,
    }
}

async fn serve(config: Config, config_file: Option<&Path>) -> Result<(), Failure> {
    // Held to the end of serving, so that the shutdown lines are written before exit.
    let _log = crate::telemetry::init(&config.log);
    let welcome = banner::Welcome::new(&config, config_file);
    let app = App::build(config).await?;
    let addr = app.local_addr();
    let keys = app.state().store.count_keys().await.unwrap_or(0);
    // A closed stdout (e.g. a supervisor that stopped reading) must not take the server down.
    let _ = writeln!(std::io::stdout(), "{}", welcome.render(addr, keys == 0));
    tracing::info!(%addr, models = app.state().models.len(), backend = ?app.state().store.backend(), "modelgate listening");
    app.serve(app::shutdown_signal())
        .await
        .map_err(|e| Failure::runtime(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}
