//! Redis with AUTH and with TLS: real `redis-server` processes started by the test (the
//! machine's Redis binary), certificates made with `openssl`.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelgate::resilience::DependencyStatus;
use serde_json::json;
use support::{Backend, TestApp};

struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `redis-server` with `args`, listening (plain or TLS) on the returned port.
fn redis_server(dir: tempfile::TempDir, args: &[String], tls: bool) -> RedisServer {
    let port = free_port();
    let mut command = Command::new("redis-server");
    command
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if tls {
        command.args(["--port", "0", "--tls-port", &port.to_string()]);
    } else {
        command.args(["--port", &port.to_string()]);
    }
    let child = command
        .spawn()
        .expect("redis-server must be installed for this test");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    RedisServer {
        child,
        port,
        _dir: dir,
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed for this test");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for localhost / 127.0.0.1, signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=modelgate-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn tls_server() -> (RedisServer, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let args = vec![
        "--tls-cert-file".to_string(),
        file("server.crt"),
        "--tls-key-file".to_string(),
        file("server.key"),
        "--tls-ca-cert-file".to_string(),
        file("ca.crt"),
        "--tls-auth-clients".to_string(),
        "no".to_string(),
    ];
    let ca = dir.path().join("ca.crt");
    (redis_server(dir, &args, true), ca)
}

/// Serves one cold key (one L2 read, then a background fill) and returns Redis's status.
async fn redis_status_after_traffic(app: &TestApp) -> DependencyStatus {
    let key = app.predict_key().await;
    let response = app
        .post_json("/api/v1/models/21/predict", &key, &json!({"inputs": {}}))
        .await;
    assert_eq!(
        response.status(),
        200,
        "Redis trouble must never fail a request"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.redis_status()
}

#[tokio::test]
async fn auth_token_is_used_and_never_shown() {
    let server = redis_server(
        tempfile::tempdir().expect("dir"),
        &["--requirepass".into(), "t0ken-s3cret".into()],
        false,
    );
    let port = server.port;
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://:t0ken-s3cret@127.0.0.1:{port}/0"));
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_some(),
        "authenticated Redis is used: {status:?}"
    );
    assert!(status.last_error.is_none(), "{status:?}");
    app.stop().await;

    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(format!("redis://:wrong-pass@127.0.0.1:{port}/0"));
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    let error = status.last_error.expect("a wrong password is an error");
    assert!(
        !error.contains("wrong-pass"),
        "password leaked into: {error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn tls_verifies_against_the_configured_ca() {
    let (server, ca) = tls_server();
    let url = format!("rediss://localhost:{}/0", server.port);

    let trusted = url.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(trusted);
        c.redis.tls_ca_file = Some(ca);
        c.redis.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_some(),
        "TLS with our CA works: {status:?}"
    );
    app.stop().await;

    // Without our CA, the server's certificate is not trusted: Redis is unusable, requests fine.
    let untrusted = url.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(untrusted);
        c.redis.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_none(),
        "an untrusted certificate must be refused"
    );
    assert!(status.last_error.is_some());
    app.stop().await;

    // The explicit opt-out connects anyway.
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.redis.url = Some(url);
        c.redis.tls_insecure = true;
        c.redis.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let status = redis_status_after_traffic(&app).await;
    assert!(
        status.last_success.is_some(),
        "insecure mode connects: {status:?}"
    );
    app.stop().await;
}
