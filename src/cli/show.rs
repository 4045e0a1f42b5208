//! `modelgate models list` and `modelgate config show`.

use clap::Subcommand;
use serde_json::json;

use super::output::{self, outln};
use super::Failure;
use crate::config::Config;
use crate::models::{Catalog, Registry};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Load every model of the models folder and list it.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Show {
        #[arg(long)]
        json: bool,
    },
}

pub fn models(command: ModelsCommand, config: &Config) -> Result<(), Failure> {
    let ModelsCommand::List { json } = command;
    config.require_models_dir()?;
    let registry = std::sync::Arc::new(Registry::new(&config.models, config.breaker.clone()));
    let catalog =
        Catalog::open(&config.models_dir, registry).map_err(|e| Failure::usage(e.to_string()))?;
    if json {
        let models: Vec<_> = catalog.serving().iter().map(|m| m.summary()).collect();
        return outln!("{:#}", json!(models));
    }
    outln!(
        "{:<8}  {:<28}  {:<10}  {:<11}  ENGINE",
        "ID",
        "NAME",
        "VERSION",
        "KIND"
    )?;
    for m in catalog.serving() {
        let manifest = m.manifest();
        outln!(
            "{:<8}  {:<28}  {:<10}  {:<11}  {}",
            m.id(),
            manifest.name,
            m.version().version,
            format!("{:?}", manifest.kind).to_lowercase(),
            m.engine()
        )?;
    }
    Ok(())
}

pub fn config(command: ConfigCommand, config: &Config) -> Result<(), Failure> {
    let ConfigCommand::Show { json } = command;
    let shown = config.redacted();
    if json {
        let value = serde_json::to_value(&shown).map_err(|e| Failure::runtime(e.to_string()))?;
        outln!("{value:#}")
    } else {
        let text = toml::to_string_pretty(&shown).map_err(|e| Failure::runtime(e.to_string()))?;
        output::write(format_args!("{text}"))
    }
}
