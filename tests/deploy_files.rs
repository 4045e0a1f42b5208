//! The shipped Prometheus rules and Grafana dashboard parse and refer only to metrics that
//! modelgate exports (a renamed metric must not silently break an alert).

use std::collections::BTreeSet;

use yaml_rust2::YamlLoader;

fn repo(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// Metric names declared in src/metrics.rs.
fn exported_metrics() -> BTreeSet<String> {
    repo("src/metrics.rs")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_string)
        .collect()
}

/// Every `modelgate_*` name in a PromQL expression, without histogram suffixes.
fn referenced_metrics(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("modelgate_"))
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
