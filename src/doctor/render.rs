//! The human form of a report: one block per dependency, steps aligned, verdict last.

use std::fmt::Write;

use super::{DependencyReport, Report, Status};

/// Width of the first column: the longest dependency name.
const NAME: usize = 12;

pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for dependency in &report.dependencies {
        block(&mut out, dependency);
        out.push('\n');
    }
    let failed = |required: bool| report.failed(required).join(", ");
    let summary = match report.status {
        Status::Ok => "ok: every configured dependency answers".to_string(),
        Status::Failed => format!("FAILED: required {} failed", failed(true)),
        Status::Degraded => format!(
            "DEGRADED: optional {} failed; modelgate serves without it",
            failed(false)
        ),
    };
    let _ = writeln!(out, "status: {summary} (exit {})", report.exit_status());
    out
}

fn block(out: &mut String, d: &DependencyReport) {
    let Some(url) = &d.url else {
        let _ = writeln!(out, "{:<NAME$}  {}", d.name, d.verdict);
        return;
    };
    let need = if d.required { "required" } else { "optional" };
    let _ = writeln!(out, "{:<NAME$}  {need}  {url}", d.name);
    for step in &d.steps {
        let state = match step.ok {
            Some(true) => "ok",
            Some(false) => "FAILED",
            None => "skipped",
        };
        let ms = step.ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_default();
        // A failed step's detail is the verdict, printed once below.
        let detail = if step.ok == Some(true) {
            &step.detail
        } else {
            ""
        };
        let line = format!("  {:<10}  {state:<7}  {ms:>9}  {detail}", step.step);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let verdict = match d.steps.iter().find(|s| s.ok == Some(false)) {
        Some(step) => format!("FAILED at {}: {}", step.step, d.verdict),
        None => d.verdict.clone(),
    };
    let _ = writeln!(out, "  => {verdict}");
}
