//! The Python tools the tests drive (schemathesis, Triton's client), from the environments
//! `./scripts/prepare` builds: found or failed with how to build them, run to their end.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::repo_path;

/// `program` of the environment `venv` (under target/) built from `requirements`; a missing
/// one fails the test and says how to build it.
pub fn program(venv: &str, program: &str, requirements: &str) -> PathBuf {
    let path = repo_path(&format!("target/{venv}/bin/{program}"));
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/prepare (it creates the Python environment of {requirements})",
        path.display()
    );
    path
}

/// Runs `command` to its end within `patience` (killed if the test ends first): its exit
/// status, and its stdout and stderr as one report.
pub async fn run(mut command: tokio::process::Command, patience: Duration) -> (ExitStatus, String) {
    let run = command.kill_on_drop(true).output();
    let output = tokio::time::timeout(patience, run)
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not finish within {patience:?}"))
        .expect("the tool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, report)
}
