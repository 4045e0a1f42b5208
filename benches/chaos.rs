//! Chaos benchmark: steady predict load with warm keys for 30 s while Redis (behind a
//! fault-injecting proxy) is blackholed, in two scenarios:
//!   - `outage`: healthy, then packets dropped from second 10 to 20, then healthy;
//!   - `dropped_at_start`: packets dropped from start-up to second 20, then healthy.
//!
//! Writes per-second throughput, p50, p99 and non-2xx counts to bench/results/ (JSON);
//! `bench/chaos.sh` runs it and draws docs/chaos.png. Not a test: no assertion on speed.

#[allow(dead_code)]
#[path = "../tests/support/chaos.rs"]
mod chaos;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos::{ChaosProxy, Fault};
use modelgate::app::App;
use modelgate::auth::{issue_key, NewKey};
use modelgate::config::{Config, LogConfig};
use modelgate::store::Store;

const RUN: Duration = Duration::from_secs(30);
const WORKERS: usize = 32;
const KEYS: usize = 64;

struct Scenario {
    name: &'static str,
    dropped_from: Duration,
    dropped_until: Duration,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    latency: Duration,
    ok: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank].as_secs_f64() * 1e3
}

fn summary(samples: &[Sample]) -> serde_json::Value {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    serde_json::json!({
        "requests": samples.len(),
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "non_2xx": samples.iter().filter(|s| !s.ok).count(),
    })
}

async fn run(scenario: &Scenario, stamp: &str) -> serde_json::Value {
    let redis: SocketAddr = "127.0.0.1:6379".parse().expect("addr");
    let proxy = ChaosProxy::start(redis).await;
    if scenario.dropped_from.is_zero() {
        proxy.set(Fault::Silent);
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        models_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/models").into(),
        log: LogConfig {
            filter: "warn".into(),
            ..LogConfig::default()
        },
        ..Config::default()
    };
    let mut config = config;
    config.database.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    config.redis.url = Some(format!("redis://{}/0", proxy.addr()));
    // Short L1 lifetime so that keys are re-validated (L2, then store) during the outage.
    config.auth.cache_ttl = Duration::from_secs(5);
    // Keys are issued as `modelgate keys create` would: through the raw store.
    let store = Store::open(&config.database).await.expect("store");
    let app = App::build(config).await.expect("app");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async move {
        let _ = stopped.await;
    }));

    let mut keys = Vec::new();
    for i in 0..KEYS {
        let new = NewKey {
            name: format!("bench-{i}"),
            scopes: vec![],
            rate_limit: None,
            expires_in: None,
            ..NewKey::default()
        };
        keys.push(issue_key(&store, new).await.expect("key").key);
    }
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/models/21/predict");
    let body = serde_json::json!({"inputs": {"company_size": 250, "engagement_score": 85,
        "demo_requested": true, "industry": "Technology", "title": "VP of Sales"}});
    for key in &keys {
        let _ = client.post(&url).bearer_auth(key).json(&body).send().await;
    }

    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (client, url, body, keys, samples) = (
                client.clone(),
                url.clone(),
                body.clone(),
                keys.clone(),
                samples.clone(),
            );
            tokio::spawn(async move {
                let mut i = w;
                while started.elapsed() < RUN {
                    let key = &keys[i % keys.len()];
                    i += WORKERS;
                    let sent = Instant::now();
                    let ok = client
                        .post(&url)
                        .bearer_auth(key)
                        .json(&body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    let sample = Sample {
                        at: sent.duration_since(started),
                        latency: sent.elapsed(),
                        ok,
                    };
                    samples.lock().expect("samples").push(sample);
                }
            })
        })
        .collect();
    let from = scenario.dropped_from;
    let until = scenario.dropped_until;
    if !from.is_zero() {
        tokio::time::sleep(from).await;
        proxy.set(Fault::Silent);
    }
    tokio::time::sleep(until.saturating_sub(started.elapsed())).await;
    proxy.set(Fault::None);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = stop.send(());
    let _ = server.await;

    let samples = samples.lock().expect("samples").clone();
    let seconds: Vec<serde_json::Value> = (0..RUN.as_secs())
        .map(|s| {
            let in_second: Vec<Sample> = samples
                .iter()
                .copied()
                .filter(|x| x.at.as_secs() == s)
                .collect();
            let mut row = summary(&in_second);
            row["second"] = s.into();
            row
        })
        .collect();
    let window = |lo: Duration, hi: Duration| -> Vec<Sample> {
        samples
            .iter()
            .copied()
            .filter(|s| s.at >= lo && s.at < hi)
            .collect()
    };
    let healthy = window(until + Duration::from_secs(2), RUN);
    let outage = window(from, until);
    let result = serde_json::json!({
        "scenario": scenario.name,
        "date_utc": stamp,
        "machine": format!("{} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), std::env::consts::ARCH),
        "command": "bench/chaos.sh",
        "workers": WORKERS,
        "keys": KEYS,
        "redis_dropped_s": [from.as_secs(), until.as_secs()],
        "healthy_after": summary(&healthy),
        "outage": summary(&outage),
        "total": summary(&samples),
        "per_second": seconds,
    });
    let path = format!(
        "{}/bench/results/chaos-{}-{stamp}.json",
        env!("CARGO_MANIFEST_DIR"),
        scenario.name
    );
    std::fs::write(&path, serde_json::to_string_pretty(&result).expect("json")).expect("write");
    println!("wrote {path}");
    result
}

fn main() {
    // `cargo bench` passes flags such as --bench; this program takes none.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H%M%SZ").to_string();
    let scenarios = [
        Scenario {
            name: "outage",
            dropped_from: Duration::from_secs(10),
            dropped_until: Duration::from_secs(20),
        },
        Scenario {
            name: "dropped_at_start",
            dropped_from: Duration::ZERO,
            dropped_until: Duration::from_secs(20),
        },
    ];
    for scenario in &scenarios {
        let result = runtime.block_on(run(scenario, &stamp));
        println!(
            "{}: outage {} / healthy {}",
            scenario.name, result["outage"], result["healthy_after"]
        );
    }
}
