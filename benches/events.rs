//! Events benchmark, one run, one machine, load generator in-process (32 reqwest workers
//! sharing the cores with the server, as in `benches/chaos.rs`):
//!   1. predict throughput with events off and on (database + Redis stream sinks), two
//!      alternating 10 s rounds each, so drift on a noisy VM hits both alike;
//!   2. outbox drain rate: under a steady load (`DRAIN_LOAD_PER_S`), Redis's packets are
//!      dropped (chaos proxy, `Silent`) for 60 s; stream records go to the outbox; once Redis
//!      is back, how long the outbox takes to empty while the load continues, in records/s.
//!
//! Throughput rounds also read the CPU time spent per request, on the whole machine and, of
//! that, by the Redis server and by this process's SQLite worker threads: the load generator,
//! Redis and SQLite share the cores with modelgate, and this says where the events' cost goes.
//!
//! Writes bench/results/events-<UTC date>.json. Not a test: no assertion on speed.

#[allow(dead_code)]
#[path = "../tests/support/chaos.rs"]
mod chaos;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos::{ChaosProxy, Fault};
use modelgate::app::App;
use modelgate::auth::{issue_key, NewKey};
use modelgate::config::{Config, LogConfig};
use modelgate::store::Store;

const WORKERS: usize = 32;
const ROUND: Duration = Duration::from_secs(10);
const OUTAGE_AFTER: Duration = Duration::from_secs(5);
const OUTAGE: Duration = Duration::from_secs(60);
/// Longest the drain is waited for.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
/// The drain phase's load: steady, well below saturation, as a busy production instance.
const DRAIN_LOAD_PER_S: u32 = 10_000;
const REDIS: &str = "127.0.0.1:6379";

struct Server {
    base: String,
    key: String,
    stream: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn serve(events: bool, redis: SocketAddr) -> Server {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        models_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/models").into(),
        log: LogConfig {
            filter: "warn".into(),
            ..LogConfig::default()
        },
        ..Config::default()
    };
    // `BENCH_DATABASE_URL` (e.g. PostgreSQL) instead of a fresh SQLite file.
    config.database.url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    config.redis.url = Some(format!("redis://{redis}/0"));
    config.events.enabled = events;
    config.events.outbox_dir = dir.path().join("outbox");
    let stream = format!("modelgate:bench:{}", uuid::Uuid::now_v7().simple());
    config.events.stream = stream.clone();
    // Keys are issued as `modelgate keys create` would: through the raw store.
    let store = Store::open(&config.database).await.expect("store");
    let app = App::build(config).await.expect("app");
    let base = format!("http://{}", app.local_addr());
    let new = NewKey {
        name: "bench".into(),
        ..NewKey::default()
    };
    let key = issue_key(&store, new).await.expect("key").key;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        key,
        stream,
        stop,
        task,
        _dir: dir,
    }
}

/// Predict latencies of `WORKERS` workers until `until` is set, as fast as they can or, with
/// `per_s`, at that many requests per second in all.
async fn load(server: &Server, until: Arc<AtomicBool>, per_s: Option<u32>) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/models/21/predict", server.base);
    let body = serde_json::json!({"inputs": {"company_size": 250, "engagement_score": 85,
        "demo_requested": true, "industry": "Technology", "title": "VP of Sales"}});
    let samples = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, url, body, key) = (
                client.clone(),
                url.clone(),
                body.clone(),
                server.key.clone(),
            );
            let (samples, until) = (samples.clone(), until.clone());
            let mut pace = per_s.map(|per_s| {
                let mut pace =
                    tokio::time::interval(Duration::from_secs(WORKERS as u64) / per_s.max(1));
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                pace
            });
            tokio::spawn(async move {
                while !until.load(Ordering::SeqCst) {
                    if let Some(pace) = &mut pace {
                        pace.tick().await;
                    }
                    let sent = Instant::now();
                    let ok = client
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    assert!(ok, "predict failed");
                    samples.lock().expect("samples").push(sent.elapsed());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let mut samples = samples.lock().expect("samples").clone();
    samples.sort();
    samples
}

/// Linux reports CPU time in clock ticks of 1/100 s (`USER_HZ`, fixed at 100 on x86_64 and
/// aarch64 whatever the kernel's own tick).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds spent so far: by the whole machine (busy, not idle or waiting for I/O), by the
/// Redis server, and by this process's SQLite worker threads (sqlx runs one per connection).
#[derive(Clone, Copy, Default)]
struct CpuTime {
    machine: f64,
    redis: f64,
    sqlite: f64,
}

impl CpuTime {
    async fn read() -> CpuTime {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .expect("cpu line")
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("ticks"))
            .collect();
        // user, nice, system, (idle, iowait,) irq, softirq; steal is other guests' time.
        let machine = [0, 1, 2, 5, 6].iter().map(|&i| ticks[i]).sum::<f64>() / TICKS_PER_S;
        CpuTime {
            machine,
            redis: redis_cpu().await,
            sqlite: sqlite_worker_cpu(),
        }
    }

    /// `f` applied field by field to `self` and `other`.
    fn zip(self, other: CpuTime, f: impl Fn(f64, f64) -> f64) -> CpuTime {
        CpuTime {
            machine: f(self.machine, other.machine),
            redis: f(self.redis, other.redis),
            sqlite: f(self.sqlite, other.sqlite),
        }
    }

    fn since(self, start: CpuTime) -> CpuTime {
        self.zip(start, |now, then| now - then)
    }

    fn add(self, other: CpuTime) -> CpuTime {
        self.zip(other, |a, b| a + b)
    }

    /// CPU microseconds per request.
    fn per_request(self, requests: usize) -> CpuTime {
        let per = 1e6 / requests.max(1) as f64;
        self.zip(CpuTime::default(), |seconds, _| seconds * per)
    }

    fn to_json(self) -> serde_json::Value {
        let tenths = |us: f64| (us * 10.0).round() / 10.0;
        serde_json::json!({
            "machine": tenths(self.machine),
            "of_which_redis_server": tenths(self.redis),
            "of_which_sqlite_workers": tenths(self.sqlite),
            "rest": tenths(self.machine - self.redis - self.sqlite),
        })
    }
}

/// The Redis server's CPU seconds (`INFO cpu`: `used_cpu_user` + `used_cpu_sys`).
async fn redis_cpu() -> f64 {
    let mut redis = redis_connection().await;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut redis)
        .await
        .expect("INFO cpu");
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| matches!(*name, "used_cpu_user" | "used_cpu_sys"))
        .map(|(_, seconds)| seconds.trim().parse::<f64>().expect("cpu seconds"))
        .sum()
}

/// CPU seconds of this process's threads named `sqlx-sqlite-worker-…` (cut to 15 characters).
fn sqlite_worker_cpu() -> f64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let ticks: f64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // `pid (comm) state ppid …`: utime and stime are the 12th and 13th fields after comm.
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let cpu = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            comm.starts_with("sqlx-sqlite").then_some(cpu)
        })
        .sum();
    ticks / TICKS_PER_S
}

async fn timed_load(server: &Server, run: Duration) -> Vec<Duration> {
    let until = Arc::new(AtomicBool::new(false));
    let flag = until.clone();
    tokio::spawn(async move {
        tokio::time::sleep(run).await;
        flag.store(true, Ordering::SeqCst);
    });
    load(server, until, None).await
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((sorted.len().max(1) as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn summary(samples: &[Duration], seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "requests": samples.len(),
        "requests_per_s": (samples.len() as f64 / seconds).round(),
        "p50_ms": percentile_ms(samples, 0.5),
        "p99_ms": percentile_ms(samples, 0.99),
    })
}

async fn metric(client: &reqwest::Client, base: &str, series: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{REDIS}/0")).expect("redis url");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

/// Stops the server and deletes its stream (a bench run adds millions of entries).
async fn stop(server: Server) {
    let _ = server.stop.send(());
    let _ = server.task.await;
    let mut redis = redis_connection().await;
    let _: i64 = redis::cmd("DEL")
        .arg(&server.stream)
        .query_async(&mut redis)
        .await
        .expect("DEL");
}

async fn bench(stamp: &str) -> serde_json::Value {
    // Throughput straight to Redis, as deployed; the outage phase needs the chaos proxy.
    let redis: SocketAddr = REDIS.parse().expect("addr");
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut cpu_off, mut cpu_on) = (CpuTime::default(), CpuTime::default());
    for _ in 0..2 {
        for (events, samples, cpu) in [
            (false, &mut off, &mut cpu_off),
            (true, &mut on, &mut cpu_on),
        ] {
            let server = serve(events, redis).await;
            let start = CpuTime::read().await;
            samples.extend(timed_load(&server, ROUND).await);
            *cpu = cpu.add(CpuTime::read().await.since(start));
            stop(server).await;
        }
    }
    off.sort();
    on.sort();
    let seconds = 2.0 * ROUND.as_secs_f64();
    let (cpu_off, cpu_on) = (cpu_off.per_request(off.len()), cpu_on.per_request(on.len()));
    let cpu = serde_json::json!({
        "events_off": cpu_off.to_json(),
        "events_on": cpu_on.to_json(),
        "events_cost": cpu_on.since(cpu_off).to_json(),
    });
    let (off, on) = (summary(&off, seconds), summary(&on, seconds));
    let ratio = on["requests_per_s"].as_f64().unwrap_or(0.0)
        / off["requests_per_s"].as_f64().unwrap_or(1.0);

    // Outage under load, then drain under load.
    let proxy = ChaosProxy::start(redis).await;
    let server = serve(true, proxy.addr()).await;
    let client = reqwest::Client::new();
    let until = Arc::new(AtomicBool::new(false));
    let loading = load(&server, until.clone(), Some(DRAIN_LOAD_PER_S));
    let watch = async {
        tokio::time::sleep(OUTAGE_AFTER).await;
        proxy.set(Fault::Silent);
        tokio::time::sleep(OUTAGE).await;
        let outboxed = metric(
            &client,
            &server.base,
            "modelgate_events_outboxed_total{sink=\"stream\"}",
        )
        .await;
        let peak = metric(&client, &server.base, "modelgate_events_outbox_bytes").await;
        let replayed_before = metric(
            &client,
            &server.base,
            "modelgate_events_replayed_total{sink=\"stream\"}",
        )
        .await;
        proxy.set(Fault::None);
        let back = Instant::now();
        let mut drained = None;
        while back.elapsed() < DRAIN_LIMIT {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if metric(&client, &server.base, "modelgate_events_outbox_bytes").await == 0.0 {
                drained = Some(back.elapsed());
                break;
            }
        }
        let replayed = metric(
            &client,
            &server.base,
            "modelgate_events_replayed_total{sink=\"stream\"}",
        )
        .await
            - replayed_before;
        let dropped = metric(
            &client,
            &server.base,
            "modelgate_events_dropped_total{reason=\"outbox_full\"}",
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        until.store(true, Ordering::SeqCst);
        serde_json::json!({
            "load_requests_per_s": DRAIN_LOAD_PER_S,
            "redis_silent_s": OUTAGE.as_secs(),
            "records_outboxed_during_outage": outboxed,
            "outbox_bytes_at_recovery": peak,
            "replayed_after_recovery": replayed,
            "drain_seconds": drained.map(|d| (d.as_secs_f64() * 100.0).round() / 100.0),
            "drain_records_per_s": drained.map(|d| (replayed / d.as_secs_f64()).round()),
            "dropped": dropped,
        })
    };
    let started = Instant::now();
    let (samples, mut outage) = tokio::join!(loading, watch);
    outage["load_throughout"] = summary(&samples, started.elapsed().as_secs_f64());
    stop(server).await;

    serde_json::json!({
        "date_utc": stamp,
        "machine": format!("{} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), std::env::consts::ARCH),
        "command": "bench/events.sh",
        "workers": WORKERS,
        "predict_events_off": off,
        "predict_events_on": on,
        "ratio_on_to_off": (ratio * 1000.0).round() / 1000.0,
        "cpu_us_per_request": cpu,
        "outage": outage,
    })
}

fn main() {
    // `cargo bench` passes flags such as --bench; this program takes none.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H%M%SZ").to_string();
    let result = runtime.block_on(bench(&stamp));
    let path = format!(
        "{}/bench/results/events-{stamp}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = serde_json::to_string_pretty(&result).expect("json");
    std::fs::write(&path, &text).expect("write");
    println!("{text}\nwrote {path}");
}
