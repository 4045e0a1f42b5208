//! The `modelgate` command line. `main.rs` parses; this module runs.

mod doctor;
mod keys;
mod probe;
mod show;

use std::io::Write;
use std::path::PathBuf;
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

/// A command's failure: what to print and with which exit status.
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
            eprintln!("modelgate: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    // Loaded only by the commands that use it: a probe checks a server from the outside and
    // must work without the server's configuration file or store.
    let config = || Config::load(cli.config.as_deref());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config()?).await,
        Command::Keys(command) => keys::run(command, &config()?).await,
        Command::Models(command) => show::models(command, &config()?),
        Command::Config(command) => show::config(command, &config()?),
        Command::Doctor(args) => doctor::run(args, &config()?).await,
        Command::Probe(args) => probe::run(args).await,
    }
}

async fn serve(config: Config) -> Result<(), Failure> {
    // Held to the end of serving, so that the shutdown lines are written before exit.
    let _log = crate::telemetry::init(&config.log);
    let app = App::build(config).await?;
    let addr = app.local_addr();
    let keys = app.state().store.count_keys().await.unwrap_or(0);
    // A closed stdout (e.g. a supervisor that stopped reading) must not take the server down.
    let _ = writeln!(std::io::stdout(), "{}", welcome(addr, keys == 0));
    tracing::info!(%addr, models = app.state().models.len(), backend = ?app.state().store.backend(), "modelgate listening");
    app.serve(app::shutdown_signal())
        .await
        .map_err(|e| Failure::runtime(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// The first thing a new user reads: how to get a key and call Model 21.
fn welcome(addr: std::net::SocketAddr, no_keys_yet: bool) -> String {
    let create = if no_keys_yet {
        "No API key exists yet. In another terminal, create one:\n\n    ./target/release/modelgate keys create --name my-first-key\n\n"
    } else {
        "Create another key with: ./target/release/modelgate keys create --name NAME\n\n"
    };
    format!(
        "modelgate is serving on http://{addr}\n\n{create}\
         Then call Model 21 (replace $KEY with the key printed once by `keys create`):\n\n    \
         curl -s http://{addr}/api/v1/models/21/predict \\\n      \
         -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n      \
         -d '{{\"inputs\": {{\"company_size\": 250, \"engagement_score\": 85, \"demo_requested\": true, \
         \"budget_confirmed\": true, \"industry\": \"Technology\", \"decision_timeline\": \"Q1 2025\", \
         \"title\": \"VP of Sales\"}}}}'\n"
    )
}
