//! `modelgate doctor` against real faults: real Redis and PostgreSQL, refused and silent ports,
//! TLS both ways, wrong passwords, unresolvable names and a misbehaving auth service.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;
use support::auth_stub::AuthStub;
use support::chaos::{ChaosProxy, Fault};
use support::redis_server::{free_port, redis_server, tls_server};
use support::{postgres_admin_url, REDIS};

/// A run of the binary: its exit status, stdout, stderr and how long it took.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    /// The report of one dependency, from `--json` output.
    fn dependency(&self, name: &str) -> Value {
        self.json()["dependencies"]
            .as_array()
            .expect("dependencies array")
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{}", self.stdout))
            .clone()
    }

    fn verdict(&self, name: &str) -> String {
        self.dependency(name)["verdict"]
            .as_str()
            .expect("verdict")
            .to_string()
    }

    /// The first failed step of a dependency.
    fn failed_step(&self, name: &str) -> String {
        let dependency = self.dependency(name);
        dependency["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["ok"] == false)
            .and_then(|s| s["step"].as_str())
            .unwrap_or_else(|| panic!("{name} has no failed step:\n{}", self.stdout))
            .to_string()
    }

    fn assert_verdict(&self, name: &str, cause: &str) {
        let verdict = self.verdict(name);
        assert!(
            verdict.contains(cause),
            "{name}: {verdict}\n{}",
            self.stdout
        );
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn assert_hides(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "secret leaked:\n{}\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `modelgate doctor ARGS` with a clean environment plus `env` (SQLite and the repository's
/// models unless `env` says otherwise).
async fn doctor(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::from(support::modelgate_command(dir));
    command.arg("doctor").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output: Output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("doctor must never hang")
        .expect("run modelgate");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn redis_url(value: impl Into<String>) -> (&'static str, String) {
    ("MODELGATE_REDIS_URL", value.into())
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    free_port()
}

/// A listener that accepts connections and never says a word, as a firewall dropping packets
/// after the handshake looks; runs until the test ends.
async fn silent_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An HTTP server answering every request with `status` and `body` (JSON content type).
async fn http_stub(status: StatusCode, body: &'static str) -> SocketAddr {
    let router = axum::Router::new()
        .fallback(move || async move { (status, [("content-type", "application/json")], body) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

#[tokio::test]
async fn everything_healthy_exits_0_with_well_formed_json() {
    let dir = tempfile::tempdir().expect("dir");
    let stub = AuthStub::start().await;
    let env = [
        ("MODELGATE_DATABASE_URL", postgres_admin_url()),
        redis_url(format!("redis://{REDIS}/0")),
        (
            "MODELGATE_AUTH_SERVICE_URL",
            format!("http://{}", stub.addr),
        ),
    ];
    let run = doctor(dir.path(), &env, &["--json"]).await;
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["status"], "ok");
    let names: Vec<&str> = report["dependencies"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["database", "redis", "auth_service", "models", "mlflow"]
    );
    let configured = report["dependencies"].as_array().expect("array").iter();
    for dependency in configured.filter(|d| d["configured"] == true) {
        assert_eq!(dependency["ok"], true, "{dependency:#}");
        assert!(dependency["required"].is_boolean());
        assert!(dependency["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("healthy")));
        assert!(dependency["url"].is_string());
        for step in dependency["steps"].as_array().expect("steps") {
            assert_eq!(step["ok"], true, "{step:#}");
            assert!(step["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{step:#}");
            assert!(step["detail"].is_string() && step["step"].is_string());
        }
    }
    let steps = |name: &str| -> Vec<String> {
        run.dependency(name)["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["step"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(steps("database"), ["dns", "tcp", "auth", "roundtrip"]);
    assert_eq!(steps("redis"), ["dns", "tcp", "tls", "auth", "roundtrip"]);
    assert_eq!(steps("auth_service"), ["dns", "tcp", "roundtrip"]);
    assert!(
        stub.calls() >= 1,
        "the contract check must reach the service"
    );

    // The same in text: one block per dependency, ending in its verdict, and a status line.
    let run = doctor(dir.path(), &env, &[]).await;
    run.assert_code(0);
    assert!(run.stdout.contains("=> healthy"), "{}", run.stdout);
    assert!(run.stdout.contains("status: ok"), "{}", run.stdout);
}

#[tokio::test]
async fn unconfigured_dependencies_are_listed_and_do_not_fail() {
    let dir = tempfile::tempdir().expect("dir");
    let run = doctor(dir.path(), &[], &["--json"]).await;
    run.assert_code(0);
    for name in ["redis", "auth_service", "mlflow"] {
        let dependency = run.dependency(name);
        assert_eq!(dependency["configured"], false);
        assert!(run.verdict(name).starts_with("not configured"));
    }
}

#[tokio::test]
async fn refused_redis_is_optional_and_names_nothing_listening() {
    let dir = tempfile::tempdir().expect("dir");
    let port = closed_port();
    let run = doctor(
        dir.path(),
        &[redis_url(format!("redis://127.0.0.1:{port}"))],
        &["--json"],
    )
    .await;
    run.assert_code(3);
    assert_eq!(run.json()["status"], "degraded");
    assert_eq!(run.failed_step("redis"), "tcp");
    run.assert_verdict("redis", "nothing listening");
    // Later steps are listed as skipped, not silently dropped.
    let steps = run.dependency("redis")["steps"].clone();
    let skipped: Vec<&Value> = steps
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["ok"].is_null())
        .collect();
    assert_eq!(skipped.len(), 3, "{steps:#}");
    assert!(run.stderr.contains("redis"), "{}", run.stderr);
}

#[tokio::test]
async fn refused_database_is_required_and_exits_1() {
    let dir = tempfile::tempdir().expect("dir");
    let port = closed_port();
    let env = [(
        "MODELGATE_DATABASE_URL",
        format!("postgres://app:db-s3cret@127.0.0.1:{port}/main"),
    )];
    let run = doctor(dir.path(), &env, &["--json"]).await;
    run.assert_code(1);
    assert_eq!(run.json()["status"], "failed");
    run.assert_verdict("database", "nothing listening");
    assert_eq!(
        run.dependency("database")["url"],
        format!("postgres://app:***@127.0.0.1:{port}/main")
    );
    run.assert_hides("db-s3cret");
}

#[tokio::test]
async fn silent_listener_finishes_within_the_timeout_and_names_the_silence() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = silent_listener().await;
    let database = silent_listener().await;
    let auth = silent_listener().await;
    let env = [
        redis_url(format!("redis://{redis}")),
        (
            "MODELGATE_DATABASE_URL",
            format!("postgres://app@{database}/main"),
        ),
        ("MODELGATE_AUTH_SERVICE_URL", format!("http://{auth}")),
    ];
    let run = doctor(dir.path(), &env, &["--json", "--timeout", "500ms"]).await;
    run.assert_code(1);
    assert!(
        run.took < Duration::from_secs(5),
        "three silent dependencies took {:?}",
        run.took
    );
    for name in ["redis", "database", "auth_service"] {
        let verdict = run.verdict(name);
        assert!(
            verdict.contains("no answer within 500ms"),
            "{name}: {verdict}"
        );
    }
    run.assert_verdict("redis", "packets dropped");
}

#[tokio::test]
async fn chaos_silent_and_connect_hang_are_told_apart() {
    let dir = tempfile::tempdir().expect("dir");
    let target: SocketAddr = REDIS.parse().expect("addr");
    let proxy = ChaosProxy::start(target).await;
    let env = [redis_url(format!("redis://{}", proxy.addr()))];

    let run = doctor(dir.path(), &env, &["--json"]).await;
    run.assert_code(0);
    assert!(
        proxy.upstream_bytes() > 0,
        "the proxy must carry the checks to Redis"
    );

    proxy.set(Fault::Silent);
    let run = doctor(dir.path(), &env, &["--json", "--timeout", "500ms"]).await;
    run.assert_code(3);
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    assert_eq!(run.failed_step("redis"), "tls");
    run.assert_verdict("redis", "never answered PING");

    proxy.set(Fault::ConnectHang);
    // The proxy closes its port and jams a new backlog in the background; let it finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = doctor(dir.path(), &env, &["--json", "--timeout", "500ms"]).await;
    run.assert_code(3);
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    assert_eq!(run.failed_step("redis"), "tcp");
    run.assert_verdict("redis", "packets are being dropped");
}

#[tokio::test]
async fn rediss_against_plaintext_redis_is_a_tls_mismatch() {
    let dir = tempfile::tempdir().expect("dir");
    let run = doctor(
        dir.path(),
        &[redis_url(format!("rediss://{REDIS}"))],
        &["--json"],
    )
    .await;
    run.assert_code(3);
    assert_eq!(run.failed_step("redis"), "tls");
    assert!(
        run.verdict("redis")
            .contains("TLS mismatch: URL scheme says rediss:// (TLS), server speaks plaintext"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn redis_against_a_tls_server_is_a_tls_mismatch_and_certificates_are_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, ca) = tls_server();
    let port = server.port;

    let run = doctor(
        dir.path(),
        &[redis_url(format!("redis://127.0.0.1:{port}"))],
        &["--json"],
    )
    .await;
    run.assert_code(3);
    assert!(
        run.verdict("redis")
            .contains("TLS mismatch: URL scheme says redis:// (plaintext), server speaks TLS"),
        "{}",
        run.stdout
    );

    // The test CA is in no trust store: named, with the setting that fixes it.
    let tls_url = redis_url(format!("rediss://localhost:{port}"));
    let run = doctor(dir.path(), std::slice::from_ref(&tls_url), &["--json"]).await;
    run.assert_code(3);
    let verdict = run.verdict("redis");
    assert!(
        verdict.contains("unknown issuer") && verdict.contains("redis.tls_ca_file"),
        "{verdict}"
    );

    let with_ca = ("MODELGATE_REDIS_TLS_CA_FILE", ca.display().to_string());
    let run = doctor(dir.path(), &[tls_url.clone(), with_ca], &["--json"]).await;
    run.assert_code(0);

    // The explicit opt-out connects, and says the certificate was not checked.
    let insecure = ("MODELGATE_REDIS_TLS_INSECURE", "true".to_string());
    let run = doctor(dir.path(), &[tls_url, insecure], &[]).await;
    run.assert_code(0);
    assert!(
        run.stdout.contains("certificate NOT verified"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn redis_passwords_are_checked_and_never_shown() {
    let dir = tempfile::tempdir().expect("dir");
    let server = redis_server(
        tempfile::tempdir().expect("dir"),
        &["--requirepass".into(), "right-pa55".into()],
        false,
    );
    let port = server.port;

    let run = doctor(
        dir.path(),
        &[redis_url(format!("redis://:wrong-pa55@127.0.0.1:{port}/0"))],
        &["--json"],
    )
    .await;
    run.assert_code(3);
    assert_eq!(run.failed_step("redis"), "auth");
    run.assert_verdict("redis", "wrong password");
    assert_eq!(
        run.dependency("redis")["url"],
        format!("redis://:***@127.0.0.1:{port}/0")
    );
    run.assert_hides("wrong-pa55");

    let run = doctor(
        dir.path(),
        &[redis_url(format!("redis://127.0.0.1:{port}"))],
        &[],
    )
    .await;
    run.assert_code(3);
    assert!(
        run.stdout
            .contains("server requires a password, URL has none"),
        "{}",
        run.stdout
    );

    let run = doctor(
        dir.path(),
        &[redis_url(format!("redis://:right-pa55@127.0.0.1:{port}/0"))],
        &[],
    )
    .await;
    run.assert_code(0);
    run.assert_hides("right-pa55");
}

#[tokio::test]
async fn unresolvable_name_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let run = doctor(
        dir.path(),
        &[redis_url("redis://doctor-check.invalid:6379")],
        &["--json", "--timeout", "5s"],
    )
    .await;
    run.assert_code(3);
    assert_eq!(run.failed_step("redis"), "dns");
    run.assert_verdict("redis", "resolve");
}

#[tokio::test]
async fn postgres_login_problems_are_named() {
    let dir = tempfile::tempdir().expect("dir");
    let admin = postgres_admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).expect("admin url");
    let missing = (
        "MODELGATE_DATABASE_URL",
        format!("{base}/mg_doctor_no_such_db"),
    );
    let run = doctor(dir.path(), &[missing], &["--json"]).await;
    run.assert_code(1);
    assert_eq!(run.failed_step("database"), "auth");
    run.assert_verdict("database", "3D000");

    let stranger = (
        "MODELGATE_DATABASE_URL",
        "postgres://mg_doctor_no_such_role@127.0.0.1:5432/postgres".to_string(),
    );
    let run = doctor(dir.path(), &[stranger], &["--json"]).await;
    run.assert_code(1);
    run.assert_verdict("database", "28000");
}

#[tokio::test]
async fn postgres_sslmode_require_is_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("{}?sslmode=require", postgres_admin_url());
    let run = doctor(dir.path(), &[("MODELGATE_DATABASE_URL", url)], &["--json"]).await;
    // A server without TLS is a mismatch at `tls`; one with TLS passes it, and then this
    // build's PostgreSQL client (no TLS support) is named at `auth`.
    run.assert_code(1);
    let step = run.failed_step("database");
    let verdict = run.verdict("database");
    match step.as_str() {
        "tls" => assert!(verdict.contains("TLS mismatch"), "{verdict}"),
        "auth" => assert!(verdict.contains("cannot speak TLS"), "{verdict}"),
        other => panic!("unexpected failure at {other}: {verdict}"),
    }
}

#[tokio::test]
async fn auth_service_contract_is_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let accepts = http_stub(StatusCode::OK, r#"{"user_id": 1}"#).await;
    let env = [("MODELGATE_AUTH_SERVICE_URL", format!("http://{accepts}"))];
    let run = doctor(dir.path(), &env, &["--json"]).await;
    run.assert_code(1);
    run.assert_verdict("auth_service", "accepted a bogus key");

    let erroring = http_stub(StatusCode::SERVICE_UNAVAILABLE, "{}").await;
    let env = [("MODELGATE_AUTH_SERVICE_URL", format!("http://{erroring}"))];
    let run = doctor(dir.path(), &env, &["--json"]).await;
    run.assert_code(1);
    run.assert_verdict("auth_service", "erroring (503");
}

#[tokio::test]
async fn bad_timeout_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("dir");
    for bad in ["0s", "soon"] {
        let run = doctor(dir.path(), &[], &["--timeout", bad]).await;
        run.assert_code(2);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[tokio::test]
async fn a_cluster_node_without_redis_cluster_is_named_and_each_master_is_checked_with_it() {
    let cluster = support::redis_cluster::RedisCluster::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let seeds = cluster.seeds();
    let first = seeds.split(',').next().expect("a seed").to_string();

    let run = doctor(dir.path(), &[redis_url(first.clone())], &["--json"]).await;
    run.assert_code(3);
    assert_eq!(run.failed_step("redis"), "roundtrip");
    run.assert_verdict("redis", "server answered MOVED");
    run.assert_verdict("redis", "set redis.cluster");

    let cluster_on = ("MODELGATE_REDIS_CLUSTER", "true".to_string());
    let run = doctor(dir.path(), &[redis_url(first), cluster_on], &["--json"]).await;
    run.assert_code(0);
    let redis: Vec<Value> = run.json()["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|d| d["name"] == "redis")
        .cloned()
        .collect();
    // The seed, then each of the three masters it listed, every one checked to PING.
    assert_eq!(redis.len(), 4, "{}", run.stdout);
    assert!(redis.iter().all(|d| d["ok"] == true), "{}", run.stdout);
    let listed = redis[0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == "cluster")
        .and_then(|s| s["detail"].as_str())
        .expect("a cluster step")
        .to_string();
    assert!(listed.contains("3 masters"), "{listed}");
    assert!(listed.contains("every slot assigned"), "{listed}");

    // A plain server named as a cluster is refused just as clearly.
    let run = doctor(
        dir.path(),
        &[
            redis_url(format!("redis://{REDIS}")),
            ("MODELGATE_REDIS_CLUSTER", "true".to_string()),
        ],
        &["--json"],
    )
    .await;
    run.assert_code(3);
    run.assert_verdict("redis", "not a Cluster node");
}
