//! The access log of the real binary: which requests get a line (`log.access`), what a line
//! holds, and that it is written by the time the server has exited after SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const PREDICT: &str = "/api/v1/models/21/predict";
const PREDICT_ROUTE: &str = "/api/v1/models/{id}/predict";
const UNKNOWN_KEY: &str = "mg_thisKeyIsNotKnownAnywhere0000000000000";

/// A key created with the CLI in `dir`'s store: (id, key).
fn create_key(dir: &Path) -> (String, String) {
    let output = support::modelgate_command(dir)
        .args(["keys", "create", "--name", "access-log", "--json"])
        .output()
        .expect("run keys create");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).expect("json");
    let field = |name: &str| created[name].as_str().expect(name).to_string();
    (field("id"), field("key"))
}

/// `modelgate serve` on an ephemeral port, JSON logs into a file.
struct Server {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let log = dir.join("server.log");
        let mut command = support::modelgate_command(dir);
        command
            .envs([
                ("MODELGATE_LISTEN", "127.0.0.1:0"),
                ("MODELGATE_LOG_FORMAT", "json"),
                ("MODELGATE_EVENTS_ENABLED", "false"),
            ])
            .envs(env.iter().copied())
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")));
        let mut child = command.spawn().expect("spawn modelgate");
        let stdout = child.stdout.take().expect("stdout");
        let addr = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("modelgate is serving on http://")
                    .map(|addr| addr.trim().to_string())
            })
            .expect("server printed its address");
        Server { child, addr, log }
    }

    /// One request over a fresh connection: (status, body).
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let body = r#"{"inputs": {"engagement_score": 90, "demo_requested": true}}"#;
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        stream.write_all(head.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status line");
        (status, response)
    }

    /// Stops the server with SIGTERM and returns everything it logged.
    fn stop(mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("exit");
        assert_eq!(status.code(), Some(0));
        std::fs::read_to_string(&self.log).expect("log")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The access lines of a JSON log, by request id.
fn access_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "access")
        .map(|line| line["fields"].clone())
        .collect()
}

fn line_for<'a>(lines: &'a [Value], request_id: &str) -> Option<&'a Value> {
    lines.iter().find(|line| line["request_id"] == request_id)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[test]
fn by_default_failures_are_logged_and_successes_are_not() {
    let dir = tempfile::tempdir().expect("dir");
    let (key_id, key) = create_key(dir.path());
    let server = Server::start(dir.path(), &[]);
    let auth = bearer(&key);

    let ok = server.send(
        "POST",
        PREDICT,
        &[("Authorization", &auth), ("X-Request-Id", "ok-1")],
    );
    assert_eq!(ok.0, 200, "{}", ok.1);
    let unknown_key = bearer(UNKNOWN_KEY);
    let refused = server.send(
        "POST",
        PREDICT,
        &[
            ("Authorization", &unknown_key),
            ("X-Request-Id", "refused-1"),
        ],
    );
    assert_eq!(refused.0, 401, "{}", refused.1);
    let no_model = server.send(
        "POST",
        "/api/v1/models/nope/predict",
        &[("Authorization", &auth), ("X-Request-Id", "no-model-1")],
    );
    assert_eq!(no_model.0, 404, "{}", no_model.1);
    let no_path = server.send(
        "GET",
        "/no/such/path?token=private",
        &[("Authorization", &auth), ("X-Request-Id", "no-path-1")],
    );
    assert_eq!(no_path.0, 404, "{}", no_path.1);
    let (_, metrics) = server.send("GET", "/metrics", &[]);
    assert!(
        metrics.contains("modelgate_log_lines_dropped_total 0"),
        "{metrics}"
    );

    let log = server.stop();
    let lines = access_lines(&log);
    assert!(
        line_for(&lines, "ok-1").is_none(),
        "a 2xx was logged: {log}"
    );

    let refused = line_for(&lines, "refused-1").expect("401 logged");
    assert_eq!(refused["method"], "POST");
    assert_eq!(refused["route"], PREDICT_ROUTE);
    assert_eq!(refused["status"], 401);
    assert!(refused["latency_ms"].as_f64().is_some(), "{refused}");
    assert!(
        refused["bytes"].as_u64().is_some_and(|b| b > 0),
        "{refused}"
    );
    assert!(refused.get("key_id").is_none(), "{refused}");

    let no_model = line_for(&lines, "no-model-1").expect("404 logged");
    assert_eq!(no_model["route"], PREDICT_ROUTE);
    assert_eq!(no_model["status"], 404);
    assert_eq!(no_model["key_id"], key_id.as_str());

    let no_path = line_for(&lines, "no-path-1").expect("unmatched 404 logged");
    assert_eq!(no_path["route"], "unmatched");
    assert_eq!(no_path["key_id"], key_id.as_str());

    for secret in [
        key.as_str(),
        &key[3..20],
        UNKNOWN_KEY,
        "/no/such/path",
        "private",
    ] {
        assert!(!log.contains(secret), "{secret} reached the log: {log}");
    }
    assert!(log.contains("\"stopped\""), "shutdown line flushed: {log}");
}

#[test]
fn all_logs_successes_and_off_logs_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (key_id, key) = create_key(dir.path());
    let auth = bearer(&key);
    let unknown_key = bearer(UNKNOWN_KEY);

    // `log.filter = warn` silences INFO lines, but not access lines: they are `log.access`'s.
    let server = Server::start(
        dir.path(),
        &[
            ("MODELGATE_LOG_ACCESS", "all"),
            ("MODELGATE_LOG_FILTER", "warn"),
        ],
    );
    let ok = server.send(
        "POST",
        PREDICT,
        &[("Authorization", &auth), ("X-Request-Id", "ok-all")],
    );
    assert_eq!(ok.0, 200, "{}", ok.1);
    let log = server.stop();
    let lines = access_lines(&log);
    let line = line_for(&lines, "ok-all").expect("2xx logged under all");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], PREDICT_ROUTE);
    assert_eq!(line["key_id"], key_id.as_str());
    assert!(line["bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
    assert!(!log.contains(&key), "the key reached the log");

    let server = Server::start(dir.path(), &[("MODELGATE_LOG_ACCESS", "off")]);
    let refused = server.send("POST", PREDICT, &[("Authorization", &unknown_key)]);
    assert_eq!(refused.0, 401, "{}", refused.1);
    let log = server.stop();
    assert!(access_lines(&log).is_empty(), "{log}");
    assert!(
        log.contains("\"stopped\""),
        "other lines still written: {log}"
    );
}

#[test]
fn an_unknown_access_setting_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let output = support::modelgate_command(dir.path())
        .env("MODELGATE_LOG_ACCESS", "loud")
        .args(["config", "show"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("log.access (from MODELGATE_LOG_ACCESS)")
            && err.contains("`all`, `errors`, `off`"),
        "{err}"
    );
}

/// Long unauthenticated paths (up to the 8 KiB target limit, and past it) and a 1 MB body
/// that fails: no log line repeats them, at any level.
#[test]
fn no_line_repeats_a_long_path_or_body() {
    let dir = tempfile::tempdir().expect("dir");
    let (_, key) = create_key(dir.path());
    let server = Server::start(
        dir.path(),
        &[
            ("MODELGATE_LOG_ACCESS", "all"),
            ("MODELGATE_LOG_FILTER", "trace"),
        ],
    );
    let auth = bearer(&key);
    let long = "a".repeat(8 * 1024 - 100);
    let unauthenticated = server.send("GET", &format!("/api/v1/{long}"), &[]);
    assert_eq!(unauthenticated.0, 401, "{}", unauthenticated.1);
    let unknown_model = server.send(
        "POST",
        &format!("/api/v1/models/{long}/predict"),
        &[("Authorization", &auth)],
    );
    assert_eq!(unknown_model.0, 404, "{}", unknown_model.1);
    assert!(unknown_model.1.len() < 2_000, "{}", unknown_model.1.len());
    let too_long = server.send("GET", &format!("/{}", "b".repeat(60_000)), &[]);
    assert_eq!(too_long.0, 414, "{}", too_long.1);

    let log = server.stop();
    assert_eq!(access_lines(&log).len(), 3, "{log}");
    for line in log.lines() {
        assert!(
            line.len() < 1_000 && !line.contains("aaaaaaaaaaaaaaaaaaaa"),
            "a {}-byte line: {}",
            line.len(),
            &line[..line.len().min(300)]
        );
    }
}
