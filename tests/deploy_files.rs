//! The shipped Prometheus rules and Grafana dashboard parse, pass promtool, and refer only to
//! metrics that modelgate exports and docs/api.md documents (a renamed metric must not silently
//! break an alert); what `GET /metrics` serves passes `promtool check metrics`.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::json;
use support::{Backend, TestApp};
use yaml_rust2::YamlLoader;

fn repo(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// Every metric modelgate can export: its catalogue (histograms included before their first
/// sample) and what a render shows (the `process_*` metrics).
fn exported_metrics() -> BTreeSet<String> {
    let rendered = modelgate::metrics::render();
    modelgate::metrics::CATALOGUE
        .iter()
        .map(|metric| metric.name.to_string())
        .chain(typed_metrics(&rendered))
        .collect()
}

/// The names of the `# TYPE` lines of a Prometheus text exposition.
fn typed_metrics(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Runs promtool (Debian package `prometheus`), feeding it `stdin`.
fn promtool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run promtool ({err}): run ./scripts/prepare (Debian package prometheus)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to promtool");
    child.wait_with_output().expect("promtool output")
}

fn assert_promtool_passes(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "promtool rejects {what} ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `modelgate_*` and `process_*` name in a PromQL expression, without histogram suffixes.
fn referenced_metrics(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("modelgate_") || word.starts_with("process_"))
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .fold(word.to_string(), |w, suffix| {
                    w.strip_suffix(suffix).map(str::to_string).unwrap_or(w)
                })
        })
        .collect()
}

#[test]
fn alert_rules_parse_and_use_exported_metrics() {
    let exported = exported_metrics();
    assert!(
        exported.len() >= 5,
        "metric names not found in src/metrics.rs"
    );
    let docs = repo("docs/runbook.md").to_lowercase();
    let yaml =
        YamlLoader::load_from_str(&repo("deploy/prometheus/alerts.yml")).expect("valid YAML");
    let rules = yaml[0]["groups"][0]["rules"].as_vec().expect("rules");
    assert!(rules.len() >= 4);
    for rule in rules {
        let name = rule["alert"].as_str().expect("alert name");
        let expr = rule["expr"].as_str().expect("expr");
        assert!(rule["for"].as_str().is_some(), "{name}: for");
        assert!(
            rule["labels"]["severity"].as_str().is_some(),
            "{name}: severity"
        );
        assert!(
            rule["annotations"]["summary"].as_str().is_some(),
            "{name}: summary"
        );
        let metrics = referenced_metrics(expr);
        assert!(!metrics.is_empty(), "{name}: no modelgate metric");
        for metric in metrics {
            assert!(
                exported.contains(&metric),
                "{name} uses unknown metric {metric}"
            );
        }
        assert!(
            docs.contains(&format!("### {}", name.to_lowercase())),
            "{name} has no runbook entry"
        );
    }
}

#[test]
fn dashboard_parses_and_uses_exported_metrics() {
    let exported = exported_metrics();
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo("deploy/grafana/modelgate.json")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty());
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            for metric in referenced_metrics(expr) {
                assert!(
                    exported.contains(&metric),
                    "panel {} uses unknown metric {metric}",
                    panel["title"]
                );
            }
        }
    }
}

fn alert_rules() -> Vec<yaml_rust2::Yaml> {
    let yaml =
        YamlLoader::load_from_str(&repo("deploy/prometheus/alerts.yml")).expect("valid YAML");
    yaml[0]["groups"][0]["rules"]
        .as_vec()
        .expect("rules")
        .clone()
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo("deploy/grafana/modelgate.json")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |target| {
                    let expr = target["expr"].as_str().expect("expr").to_string();
                    (title.clone(), expr)
                })
        })
        .collect()
}

#[test]
fn every_alert_says_how_bad_what_and_where_to_read_on() {
    for rule in alert_rules() {
        let name = rule["alert"].as_str().expect("alert name");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("page" | "ticket")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|text| text.len() > 20),
                "{name}: {annotation}"
            );
        }
        assert_eq!(
            rule["annotations"]["runbook"].as_str(),
            Some(format!("docs/runbook.md#{}", name.to_lowercase()).as_str()),
            "{name}: runbook link"
        );
    }
}

#[test]
fn an_instance_that_stops_reporting_is_alerted_on() {
    let exprs: Vec<String> = alert_rules()
        .iter()
        .filter_map(|rule| rule["expr"].as_str().map(str::to_string))
        .collect();
    assert!(
        exprs.iter().any(|e| e.contains("up == 0")),
        "no alert on a failing scrape: {exprs:?}"
    );
    assert!(
        exprs.iter().any(|e| e.contains("absent(")),
        "no alert on metrics gone altogether: {exprs:?}"
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let output = promtool(&["check", "rules", "deploy/prometheus/alerts.yml"], "");
    assert_promtool_passes(&output, "deploy/prometheus/alerts.yml");
}

/// The alerts fire on the series they are meant for, and stay silent otherwise.
#[test]
fn promtool_rule_tests_of_the_alerts_pass() {
    let output = promtool(&["test", "rules", "deploy/prometheus/alerts.test.yml"], "");
    assert_promtool_passes(&output, "deploy/prometheus/alerts.test.yml");
}

/// The rows of docs/api.md's Metrics table: the metric names in their first column.
fn documented_metrics() -> BTreeSet<String> {
    let api = repo("docs/api.md");
    let section = api
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/api.md has a ## Metrics section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" |").next())
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn docs_list_every_metric_the_alerts_and_dashboard_use() {
    let documented = documented_metrics();
    assert!(
        documented.len() >= 10,
        "metrics table not found: {documented:?}"
    );
    let alert_exprs = alert_rules()
        .iter()
        .map(|rule| {
            let name = rule["alert"].as_str().expect("alert name").to_string();
            (name, rule["expr"].as_str().expect("expr").to_string())
        })
        .collect::<Vec<_>>();
    for (user, expr) in alert_exprs.iter().chain(&dashboard_exprs()) {
        for metric in referenced_metrics(expr) {
            assert!(
                documented.contains(&metric),
                "{user} uses {metric}, which docs/api.md's Metrics table does not list"
            );
        }
    }
    for metric in modelgate::metrics::CATALOGUE {
        assert!(
            documented.contains(metric.name),
            "{} is not in docs/api.md's Metrics table",
            metric.name
        );
    }
}

#[test]
fn dashboard_queries_follow_the_scrape_interval_and_the_instance_picker() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo("deploy/grafana/modelgate.json")).expect("JSON");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(instance["type"], "query");
    assert!(instance["includeAll"].as_bool().unwrap_or(false));
    assert!(
        instance["definition"]
            .as_str()
            .is_some_and(|q| q.contains("label_values(modelgate_build_info, instance)")),
        "{instance}"
    );
    for (title, expr) in dashboard_exprs() {
        for window in expr.split('[').skip(1) {
            assert!(
                window.starts_with("$__rate_interval]"),
                "{title}: range [{window} instead of [$__rate_interval]"
            );
        }
        let metrics = referenced_metrics(&expr);
        assert!(!metrics.is_empty(), "{title}: {expr}");
        // Each metric's selector names the picked instances.
        let selectors = expr.matches("instance=~\"$instance\"").count();
        assert_eq!(
            selectors,
            metrics.len(),
            "{title}: every metric selector needs instance=~\"$instance\": {expr}"
        );
    }
}

/// Grafana's variables replaced by what they stand for, the dashboard's queries are PromQL
/// that Prometheus accepts (checked as recording rules, the one way promtool parses PromQL
/// offline).
#[test]
fn promtool_parses_the_dashboard_queries() {
    let rules: String = dashboard_exprs()
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let quoted = serde_json::to_string(&expr).expect("JSON string");
            format!("      - record: dashboard:query_{i}\n        expr: {quoted}\n")
        })
        .collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        file.path(),
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .expect("write rules");
    let path = file.path().to_str().expect("UTF-8 temp path");
    let output = promtool(&["check", "rules", path], "");
    assert_promtool_passes(&output, "the dashboard's queries");
}

/// The exposition after real traffic (a prediction included) passes promtool's checks and
/// lints (HELP for every metric, `_total` counters, base units), shows the process and build
/// metrics, and has known counters at 0 before their first event.
#[tokio::test]
async fn metrics_endpoint_passes_promtool_check_metrics() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let predicted = app
        .post_json("/api/v1/models/21/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(predicted.status(), 200);
    assert_eq!(app.get("/api/v1/models", None).await.status(), 401);
    assert_eq!(app.get("/health", None).await.status(), 200);
    let text = app
        .get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics text");
    let output = promtool(&["check", "metrics"], &text);
    assert_promtool_passes(&output, "GET /metrics");
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(problems.trim().is_empty(), "promtool: {problems}");

    for metric in typed_metrics(&text) {
        assert!(
            text.contains(&format!("# HELP {metric} ")),
            "{metric} has no # HELP"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    for line in [
        format!("modelgate_build_info{{version=\"{version}\"}} 1"),
        "modelgate_ratelimit_redis_fallbacks_total{reason=\"timeout\"} 0".to_string(),
        "modelgate_events_dropped_total{reason=\"outbox_full\"} 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    for metric in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(metric)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(value.is_some(), "no {metric} sample");
    }
    let fds = text
        .lines()
        .find_map(|l| l.strip_prefix("process_open_fds "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(fds.is_some_and(|n| n > 0.0), "open fds: {fds:?}");
    app.stop().await;
}
