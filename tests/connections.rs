//! Connections (issue 12, parts 1 and 6): clients holding connections open — sending nothing,
//! headers a byte at a time, or a body that never completes — are closed within their
//! timeouts; over `server.max_connections` new connections are answered 503 at once; a client
//! with a connection keeps getting fast answers throughout, the admin listener keeps answering
//! probes, and the flood costs at most one rate-limited log line. And a response that leaves
//! part of a body unread says `Connection: close`, so clients that reuse connections do not
//! send their next request into a closed one.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::metrics::{metric, metrics_at};
use support::predict::PREDICT;
use support::{Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const CAP: u32 = 16;
const HEADER_READ: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_secs(3);
/// The default `http.request_deadline`, which bounds reading a body.
const DEADLINE: Duration = Duration::from_secs(1);
/// Connections of each kind in the flood: with the client's own, they fill the cap.
const EACH: usize = 5;

/// Log lines written while the test runs, as JSON objects.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    }

    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("log buffer").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }
}

/// Reads until the server closes the connection: what it sent, and when (since `started`).
async fn until_closed(mut stream: TcpStream, started: Instant) -> (Duration, String) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let patience = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(patience, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {patience:?}"),
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

/// A connection that sends nothing.
async fn idle(addr: SocketAddr, started: Instant) -> JoinHandle<(Duration, String)> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    tokio::spawn(until_closed(stream, started))
}

/// A connection sending its request's headers one byte every 100 ms (slowloris).
async fn slowloris(addr: SocketAddr, started: Instant) -> JoinHandle<(Duration, String)> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    tokio::spawn(async move {
        let header = b"GET /health/live HTTP/1.1\r\nHost: modelgate\r\nX-Slow: ";
        for byte in header.iter().chain(b"a".repeat(200).iter()) {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let stream = read;
    tokio::spawn(async move {
        let mut stream = stream;
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                Err(_) => panic!("slowloris connection still open after 10 s"),
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&received).into_owned(),
        )
    })
}

/// A prediction announcing a 1000-byte body and sending one byte of it.
async fn partial_body(
    addr: SocketAddr,
    key: &str,
    started: Instant,
) -> JoinHandle<(Duration, String)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST {PREDICT} HTTP/1.1\r\nHost: modelgate\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send head");
    tokio::spawn(until_closed(stream, started))
}

async fn joined(tasks: Vec<JoinHandle<(Duration, String)>>) -> Vec<(Duration, String)> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("reader task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_over_the_cap_is_refused_and_timed_out_while_predictions_stay_fast() {
    let logs = Captured::install();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.max_connections = CAP;
        c.server.header_read_timeout = HEADER_READ;
        c.server.idle_timeout = IDLE;
        c.server.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let admin = format!("http://{}", app.admin_addr.expect("admin listener"));
    let key = app.predict_key().await;
    // The client's keep-alive connection is open before the flood, as in a client's pool.
    assert_eq!(app.predict(&key).await.status, 200);
    let logged_before = logs.lines().len();

    let started = Instant::now();
    let mut idles = Vec::new();
    let mut slows = Vec::new();
    let mut partials = Vec::new();
    for _ in 0..EACH {
        idles.push(idle(app.addr, started).await);
        slows.push(slowloris(app.addr, started).await);
        partials.push(partial_body(app.addr, &key, started).await);
    }
    // With the client's connection, EACH * 3 + 1 = CAP: every further one is refused at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..EACH {
        let refused_at = Instant::now();
        let stream = TcpStream::connect(app.addr).await.expect("connect");
        let (_, answer) = until_closed(stream, refused_at).await;
        let took = refused_at.elapsed();
        assert!(took < Duration::from_millis(500), "refusal took {took:?}");
        assert!(
            answer.starts_with("HTTP/1.1 503"),
            "over the cap: {answer:?}"
        );
        assert!(answer.contains("\"code\":\"too_many_connections\""));
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
    }
    // Probes and Prometheus use the admin listener, outside the public cap.
    let admin_client = reqwest::Client::new();
    let live = admin_client
        .get(format!("{admin}/health/live"))
        .send()
        .await
        .expect("admin /health/live");
    assert_eq!(live.status(), 200);
    let during = metrics_at(&admin_client, &admin).await;
    assert_eq!(
        metric(&during, "modelgate_connections_open"),
        f64::from(CAP)
    );
    assert!(metric(&during, "modelgate_connections_refused_total") >= EACH as f64);

    // Predictions on the established connection stay fast while the flood lasts.
    let mut slowest = Duration::ZERO;
    while started.elapsed() < DEADLINE + Duration::from_millis(500) {
        let predicted = app.predict(&key).await;
        assert_eq!(predicted.status, 200);
        slowest = slowest.max(predicted.took);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        slowest < Duration::from_millis(100),
        "slowest prediction during the flood: {slowest:?}"
    );

    // Each kind is closed within its own timeout (wide bounds: early vs late, not precise).
    for (took, _) in joined(idles).await {
        assert!(
            took >= HEADER_READ - Duration::from_millis(50) && took < HEADER_READ * 3,
            "an idle connection was closed after {took:?}"
        );
    }
    for (took, _) in joined(slows).await {
        assert!(
            took >= HEADER_READ - Duration::from_millis(50) && took < HEADER_READ * 3,
            "a slowloris connection was closed after {took:?}"
        );
    }
    for (took, answer) in joined(partials).await {
        assert!(
            took >= DEADLINE - Duration::from_millis(50) && took < DEADLINE * 3,
            "a partial body's connection was closed after {took:?}"
        );
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "partial body: {answer:?}"
        );
        assert!(answer.contains("\"code\":\"body_timeout\""));
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
    }

    // The cap is free again: a new connection is served.
    let fresh = reqwest::Client::new()
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("fresh connection");
    assert_eq!(fresh.status(), 200);
    let after = metrics_at(&admin_client, &admin).await;
    for phase in ["idle", "header", "body"] {
        let series = format!("modelgate_connection_timeouts_total{{phase=\"{phase}\"}}");
        assert!(
            metric(&after, &series) >= EACH as f64,
            "{series} in {after}"
        );
    }

    // One rate-limited line for the refusals; nothing per connection. (4xx answers, such as
    // the 408s, get access lines per request under `log.access`, which governs those.)
    let flood_lines: Vec<Value> = logs
        .lines()
        .into_iter()
        .skip(logged_before)
        .filter(|line| line["target"] != "access")
        .collect();
    assert_eq!(flood_lines.len(), 1, "{flood_lines:#?}");
    let line = &flood_lines[0]["fields"];
    assert!(line["message"]
        .as_str()
        .is_some_and(|m| m.contains("connection limit reached")));
    assert_eq!(line["refused"], 1, "the first refusal is logged at once");
    app.stop().await;
}

/// Sends `head` and `body` on `stream` and reads one response (head and declared body).
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.expect("send");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read");
        assert!(n > 0, "closed before a whole response");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn an_early_401_says_connection_close_when_the_body_was_left_unread() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    // Headers and 10 of 100 announced bytes: the 401 comes before the body is read.
    let head = format!(
        "POST {PREDICT} HTTP/1.1\r\nHost: modelgate\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"inputs\":"
    );
    let answer = exchange(&mut stream, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    let (_, rest) = until_closed(stream, Instant::now()).await;
    assert_eq!(rest, "", "closed after the answer");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_whose_bodies_were_read_is_reused_after_401s() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // A body the handler never reaches but that arrived whole: the connection stays usable.
    let body = r#"{"inputs": {}}"#;
    let request = format!(
        "POST {PREDICT} HTTP/1.1\r\nHost: modelgate\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    for _ in 0..20 {
        let answer = exchange(&mut stream, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(!answer.to_ascii_lowercase().contains("connection: close"));
    }
    // And a client library reusing its connections sees only 401s, never a failed request.
    for _ in 0..50 {
        let response = app
            .client
            .post(app.url(PREDICT))
            .json(&serde_json::json!({"inputs": {"x": "y".repeat(2000)}}))
            .send()
            .await
            .expect("no connection error on reuse");
        assert_eq!(response.status(), 401);
        assert_ne!(
            response
                .headers()
                .get("connection")
                .and_then(|v| v.to_str().ok()),
            Some("close"),
            "a body sent whole is drained, and the connection kept"
        );
        let _ = response.bytes().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_admin_listener_serves_monitoring_routes_only() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let admin = format!("http://{}", app.admin_addr.expect("admin listener"));
    let key = app.predict_key().await;
    let get = |path: &str| {
        app.client
            .get(format!("{admin}{path}"))
            .bearer_auth(&key)
            .send()
    };
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/version",
    ] {
        assert_eq!(get(path).await.expect(path).status(), 200, "{path}");
    }
    for path in ["/api/v1/models", "/status", "/openapi.json"] {
        assert_eq!(get(path).await.expect(path).status(), 404, "{path}");
    }
    let predicted = app
        .client
        .post(format!("{admin}{PREDICT}"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"inputs": {}}))
        .send()
        .await
        .expect("predict on admin");
    assert_eq!(predicted.status(), 404);
    app.stop().await;
}
