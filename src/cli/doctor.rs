//! `modelgate doctor`: diagnose every configured dependency.

use std::time::Duration;

use clap::Args;

use super::output::{self, outln};
use super::{Failure, EXIT_FAILURE};
use crate::config::Config;
use crate::doctor;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Longest any single step (resolve, connect, handshake, login, query) may take.
    #[arg(long, default_value = "2s", value_parser = positive_duration, value_name = "DURATION")]
    timeout: Duration,
}

fn positive_duration(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("expected a duration above zero, such as 2s or 500ms".into()),
        Err(e) => Err(format!("{e}: expected a duration such as 2s or 500ms")),
    }
}

pub async fn run(args: DoctorArgs, config: &Config) -> Result<(), Failure> {
    let report = doctor::diagnose(config, args.timeout).await;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::runtime(format!("cannot render the report: {e}")))?;
        outln!("{text}")?;
    } else {
        output::write(format_args!("{}", doctor::human(&report)))?;
    }
    let status = report.exit_status();
    if status == 0 {
        return Ok(());
    }
    // The report is on stdout; stderr gets the one line scripts and humans look for.
    let required = status == EXIT_FAILURE;
    let which = if required { "required" } else { "optional" };
    Err(Failure {
        status,
        message: format!(
            "doctor: {which} {} failed",
            report.failed(required).join(", ")
        ),
    })
}
