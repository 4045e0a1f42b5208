//! The `modelgate` binary: configuration errors, `config show`, `keys`, `models`, and `serve`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary with a clean environment plus `env`.
fn modelgate(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = support::modelgate_command(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    modelgate(dir, env)
        .args(args)
        .output()
        .expect("run modelgate")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `args`, which must exit 2; returns what it printed on stderr.
fn usage_error(dir: &Path, args: &[&str]) -> String {
    let output = run(dir, &[], args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    err
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit status 2, exactly one line naming `key`, no panic, no secret.
fn assert_config_error(output: &Output, key: &str, secret: Option<&str>) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.contains(key), "{key} not named in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    if let Some(secret) = secret {
        assert!(!err.contains(secret), "secret leaked: {err}");
    }
}

#[test]
fn bad_environment_values_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().expect("dir");
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("MODELGATE_LISTEN", "nonsense", "MODELGATE_LISTEN", None),
        ("MODELGATE_AUTH_CACHE_TTL", "soon", "auth.cache_ttl", None),
        (
            "MODELGATE_DATABASE_MAX_CONNECTIONS",
            "many",
            "MODELGATE_DATABASE_MAX_CONNECTIONS",
            None,
        ),
        (
            "MODELGATE_DATABASE_URL",
            "mysql://u:pw1@db/x",
            "database.url",
            Some("pw1"),
        ),
        (
            "MODELGATE_REDIS_URL",
            "redis://:pw2@[broken",
            "redis.url",
            Some("pw2"),
        ),
        ("REDIS_PORT", "http", "redis.url", None),
        (
            "MODELGATE_AUTH_SERVICE_URL",
            "ftp://auth",
            "auth.service_url",
            None,
        ),
        (
            "MODELGATE_AUTH_ALLOW_QUERY_KEY",
            "perhaps",
            "auth.allow_query_key",
            None,
        ),
        ("MODELGATE_LOG_FORMAT", "xml", "log.format", None),
    ];
    for (name, value, key, secret) in cases {
        let mut env = vec![(*name, *value)];
        if *name == "REDIS_PORT" {
            env.push(("REDIS_HOST", "cache"));
        }
        let output = run(dir.path(), &env, &["config", "show"]);
        assert_config_error(&output, key, *secret);
    }
}

#[test]
fn bad_config_files_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("[auth]\ncache_tll = \"5s\"\n", "cache_tll"),
        (
            "[database]\nmax_connections = \"many\"\n",
            "database.max_connections",
        ),
        ("[auth]\nnegative_ttl = 5\n", "auth.negative_ttl"),
        ("colour = \"blue\"\n", "colour"),
        ("[database\nurl = 1", "not valid TOML"),
    ];
    for (text, key) in cases {
        let file = dir.path().join("modelgate.toml");
        std::fs::write(&file, text).expect("write");
        let output = run(
            dir.path(),
            &[],
            &["--config", file.to_str().expect("path"), "config", "show"],
        );
        assert_config_error(&output, key, None);
    }
    let output = run(
        dir.path(),
        &[],
        &["--config", "/nonexistent/modelgate.toml", "config", "show"],
    );
    assert_config_error(&output, "/nonexistent/modelgate.toml", None);
}

#[test]
fn missing_models_dir_exits_2() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [&["serve"][..], &["models", "list"][..]] {
        let output = run(
            dir.path(),
            &[("MODELGATE_MODELS_DIR", "/no/such/models")],
            args,
        );
        assert_config_error(&output, "models_dir", None);
    }
}

#[test]
fn file_is_overlaid_by_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("modelgate.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[auth]\ncache_ttl = \"45s\"\nservice_id = \"file\"\n",
    )
    .expect("write");
    let output = run(
        dir.path(),
        &[
            ("MODELGATE_AUTH_SERVICE_ID", "env"),
            ("MODELGATE_CONFIG", file.to_str().expect("path")),
        ],
        &["config", "show", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let shown: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(shown["listen"], "127.0.0.1:9000");
    assert_eq!(shown["auth"]["cache_ttl"], "45s");
    assert_eq!(shown["auth"]["service_id"], "env");
    assert_eq!(shown["auth"]["negative_ttl"], "5s");
}

#[test]
fn config_show_redacts_every_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [
        ("REDIS_HOST", " cache "),
        ("REDIS_PORT", "6380"),
        ("REDIS_AUTH_TOKEN", "tok3n"),
        ("REDIS_TLS_ENABLED", "TRUE"),
        (
            "MODELGATE_DATABASE_URL",
            "postgres://app:dbpass@db:5432/main",
        ),
        (
            "MODELGATE_AUTH_SERVICE_URL",
            "https://svc:authpass@auth.internal",
        ),
        (
            "MODELGATE_AUTH_CACHE_SECRET",
            "cachesecret-0123456789abcdef0123456789",
        ),
    ];
    let json = run(dir.path(), &env, &["config", "show", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let shown: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(shown["redis"]["url"], "rediss://:***@cache:6380/0");
    assert_eq!(shown["database"]["url"], "postgres://app:***@db:5432/main");
    assert_eq!(shown["auth"]["cache_secret"], "***");
    let text = run(dir.path(), &env, &["config", "show"]);
    assert_eq!(text.status.code(), Some(0));
    for out in [stdout(&json), stdout(&text), stderr(&json), stderr(&text)] {
        for secret in ["tok3n", "dbpass", "authpass", "cachesecret"] {
            assert!(!out.contains(secret), "{secret} leaked");
        }
    }
    assert!(stdout(&text).contains("rediss://:***@cache:6380/0"));
}

#[test]
fn a_short_cache_secret_is_refused_without_being_echoed() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [("MODELGATE_AUTH_CACHE_SECRET", "tooShort42")];
    let out = run(dir.path(), &env, &["config", "show"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("auth.cache_secret (from MODELGATE_AUTH_CACHE_SECRET)"),
        "{said}"
    );
    assert!(!said.contains("tooShort42"), "{said}");
}

#[test]
fn redis_url_aliases_resolve_in_priority_order() {
    let dir = tempfile::tempdir().expect("dir");
    let url = |env: &[(&str, &str)]| -> Value {
        let out = run(dir.path(), env, &["config", "show", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).expect("json")["redis"]["url"].clone()
    };
    assert_eq!(url(&[]), Value::Null);
    assert_eq!(url(&[("REDIS_URL", "legacy:6390")]), "redis://legacy:6390");
    assert_eq!(
        url(&[
            ("REDIS_URL", "legacy"),
            ("MODELGATE_REDIS_URL", "redis://new:1")
        ]),
        "redis://new:1"
    );
    assert_eq!(
        url(&[("REDIS_URL", "legacy"), ("REDIS_HOST", "other")]),
        "redis://legacy:6379"
    );
}

fn create_key(dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["keys", "create", "--name", "ci", "--json"];
    args.extend_from_slice(extra);
    let output = run(dir, &[], &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn keys_create_list_revoke() {
    let dir = tempfile::tempdir().expect("dir");
    let created = create_key(
        dir.path(),
        &[
            "--scope",
            "admin",
            "--scope",
            "predict",
            "--rate-limit",
            "50/m",
            "--expires",
            "30d",
        ],
    );
    let key = created["key"].as_str().expect("key");
    assert!(key.starts_with("mg_") && key.len() >= 35);
    assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(key.starts_with(created["prefix"].as_str().expect("prefix")));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["scopes"], serde_json::json!(["predict", "admin"]));
    let id = created["id"].as_str().expect("id");

    for args in [&["keys", "list"][..], &["keys", "list", "--json"][..]] {
        let listed = run(dir.path(), &[], args);
        assert_eq!(listed.status.code(), Some(0));
        let text = stdout(&listed);
        assert!(text.contains(id), "{text}");
        assert!(!text.contains(key), "key shown by keys list");
    }
    let human = run(dir.path(), &[], &["keys", "create", "--name", "human"]);
    assert!(stdout(&human).contains("only time"));

    let revoked = run(dir.path(), &[], &["keys", "revoke", id, "--json"]);
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    let again: Value =
        serde_json::from_slice(&run(dir.path(), &[], &["keys", "revoke", id, "--json"]).stdout)
            .expect("json");
    assert_eq!(again["already_revoked"], true);
    let unknown = run(dir.path(), &[], &["keys", "revoke", "key_nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no key"));
}

#[test]
fn keys_limited_to_models_are_created_and_listed() {
    let dir = tempfile::tempdir().expect("dir");
    let created = create_key(dir.path(), &["--models", "21,22", "--models", "lead-v2"]);
    assert_eq!(
        created["models"],
        serde_json::json!(["21", "22", "lead-v2"])
    );
    let id = created["id"].as_str().expect("id");
    let open = create_key(dir.path(), &[]);
    assert_eq!(open["models"], Value::Null);

    let listed: Value =
        serde_json::from_slice(&run(dir.path(), &[], &["keys", "list", "--json"]).stdout)
            .expect("json");
    let keys = listed["keys"].as_array().expect("keys");
    let limited = keys.iter().find(|k| k["id"] == id).expect("listed");
    assert_eq!(
        limited["models"],
        serde_json::json!(["21", "22", "lead-v2"])
    );
    let unlimited = keys.iter().find(|k| k["id"] == open["id"]).expect("listed");
    assert!(unlimited.get("models").is_none(), "{listed}");

    let human = stdout(&run(dir.path(), &[], &["keys", "list"]));
    assert!(
        human.lines().next().is_some_and(|h| h.ends_with("MODELS")),
        "{human}"
    );
    let line = human.lines().find(|l| l.contains(id)).expect("line");
    assert!(line.ends_with("21,22,lead-v2"), "{human}");
    let line = human
        .lines()
        .find(|l| l.contains(open["id"].as_str().expect("id")))
        .expect("line");
    assert!(line.ends_with("all"), "{human}");

    for args in [
        &["keys", "create", "--name", "x", "--models", "21,21"][..],
        &["keys", "create", "--name", "x", "--models", ""][..],
    ] {
        let err = usage_error(dir.path(), args);
        assert!(err.contains("--models"), "{err}");
    }
    let help = stdout(&run(dir.path(), &[], &["keys", "create", "--help"]));
    assert!(help.contains("--models"), "{help}");
}

#[test]
fn prepaid_keys_are_created_and_topped_up() {
    let dir = tempfile::tempdir().expect("dir");
    let created = create_key(dir.path(), &["--credits", "5"]);
    assert_eq!(created["credits"], 5);
    let id = created["id"].as_str().expect("id");
    let topped = run(dir.path(), &[], &["keys", "topup", id, "3", "--json"]);
    assert_eq!(topped.status.code(), Some(0), "{}", stderr(&topped));
    let topped: Value = serde_json::from_slice(&topped.stdout).expect("json");
    assert_eq!(topped["credits"], 8);
    let listed = stdout(&run(dir.path(), &[], &["keys", "list"]));
    assert!(listed.contains("CREDITS"), "{listed}");

    let unmetered = create_key(dir.path(), &[]);
    let unmetered = unmetered["id"].as_str().expect("id");
    for args in [
        &["keys", "topup", unmetered, "3"][..],
        &["keys", "topup", "key_nope", "3"][..],
        &["keys", "topup", id, "0"][..],
        &["keys", "topup", id, "lots"][..],
        &["keys", "create", "--name", "x", "--credits", "-1"][..],
    ] {
        let err = usage_error(dir.path(), args);
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn bad_key_arguments_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    for extra in [
        &["--rate-limit", "fast"][..],
        &["--rate-limit", "0/s"][..],
        &["--scope", "root"][..],
        &["--expires", "whenever"][..],
    ] {
        let mut args = vec!["keys", "create", "--name", "x"];
        args.extend_from_slice(extra);
        let output = run(dir.path(), &[], &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{extra:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"));
    }
    let blank = run(dir.path(), &[], &["keys", "create", "--name", "  "]);
    assert_eq!(blank.status.code(), Some(2));
}

#[test]
fn models_list_shows_model_21() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(dir.path(), &[], &["models", "list", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let models: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(models[0]["id"], "21");
    assert_eq!(models[0]["inputs"], 10);
}

/// A models folder serving each `(id, graph bytes)` under Model 21's manifest.
fn models_with_graphs(graphs: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let manifest =
        std::fs::read_to_string(support::repo_path("models/21/model.toml")).expect("manifest");
    for (id, graph) in graphs {
        let folder = dir.path().join(id);
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join("model.onnx"), graph).expect("graph");
        std::fs::write(folder.join("model.toml"), &manifest).expect("manifest");
    }
    dir
}

fn corpus_graph(name: &str) -> Vec<u8> {
    std::fs::read(support::repo_path(&format!(
        "tests/fixtures/onnx-corpus/{name}.onnx"
    )))
    .expect("corpus graph")
}

#[test]
fn models_list_names_the_engine_of_each_pipeline() {
    let dir = tempfile::tempdir().expect("dir");
    let models = models_with_graphs(&[
        ("lightgbm", corpus_graph("lightgbm_classifier")),
        (
            "scaled",
            corpus_graph("standard_scaler__random_forest_classifier"),
        ),
        ("forest", corpus_graph("random_forest_classifier")),
    ]);
    let models_dir = models.path().to_str().expect("path");
    let output = run(
        dir.path(),
        &[("MODELGATE_MODELS_DIR", models_dir)],
        &["models", "list", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let listed: Value = serde_json::from_slice(&output.stdout).expect("json");
    let engine = |id: &str| {
        listed
            .as_array()
            .expect("list")
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["engine"].clone())
    };
    assert_eq!(
        engine("lightgbm"),
        Some("native-onnx-ml".into()),
        "{listed}"
    );
    assert_eq!(engine("scaled"), Some("native-onnx-ml".into()), "{listed}");
    assert_eq!(
        engine("forest"),
        Some("native-tree-ensemble".into()),
        "{listed}"
    );
}

#[test]
fn a_graph_with_an_operator_nobody_implements_names_it_and_the_model() {
    use prost::Message;
    let mut graph = tract_onnx::pb::ModelProto::decode(
        &corpus_graph("standard_scaler__random_forest_classifier")[..],
    )
    .expect("onnx");
    let scaler = graph
        .graph
        .as_mut()
        .and_then(|g| g.node.iter_mut().find(|n| n.op_type == "Scaler"))
        .expect("a Scaler node");
    scaler.op_type = "Frobnicate".into();
    let dir = tempfile::tempdir().expect("dir");
    let models = models_with_graphs(&[("42", graph.encode_to_vec())]);
    let output = run(
        dir.path(),
        &[(
            "MODELGATE_MODELS_DIR",
            models.path().to_str().expect("path"),
        )],
        &["models", "list"],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("42") && err.contains("ai.onnx.ml:Frobnicate"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Server {
    start_server_logging(dir, Stdio::null(), "info")
}

fn start_server_logging(dir: &Path, logs: Stdio, filter: &str) -> Server {
    let (server, banner) = spawn_server(dir, &[("MODELGATE_LOG_FILTER", filter)], logs);
    assert!(banner.contains("keys create"), "{banner}");
    assert!(
        banner.contains(&format!(
            "curl -s http://{}/api/v1/models/21/predict",
            server.addr
        )),
        "{banner}"
    );
    server
}

/// Starts `modelgate serve` in `dir` with `env` added; returns it and its start banner.
fn spawn_server(dir: &Path, env: &[(&str, &str)], logs: Stdio) -> (Server, String) {
    let mut child = modelgate(
        dir,
        &[
            ("MODELGATE_LISTEN", "127.0.0.1:0"),
            ("MODELGATE_SHUTDOWN_GRACE", "5s"),
            ("MODELGATE_AUTH_CACHE_TTL", "500ms"),
        ],
    )
    .envs(env.iter().copied())
    .arg("serve")
    .stdout(Stdio::piped())
    .stderr(logs)
    .spawn()
    .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = String::new();
    let addr = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("line");
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.strip_prefix("modelgate is serving on http://") {
            break rest.trim().to_string();
        }
    };
    for line in lines.by_ref() {
        let line = line.expect("line");
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("curl -s") {
            break;
        }
    }
    (Server { child, addr }, banner)
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().expect("dir");
    let key = create_key(dir.path(), &[])["key"]
        .as_str()
        .expect("key")
        .to_string();
    let mut server = start_server(dir.path());

    let body = br#"{"inputs": {"engagement_score": 90, "demo_requested": true}}"#;
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /api/v1/models/21/predict HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&body[..10]).expect("partial body");
    std::thread::sleep(Duration::from_millis(300));

    let pid = server.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));

    stream.write_all(&body[10..]).expect("rest of body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("conversion_probability"));

    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

/// One predict call over a fresh connection; returns the status code.
fn predict_status(addr: &str, key: &str) -> u16 {
    predict_status_at(addr, key, "/api/v1/models/21/predict")
}

fn predict_status_at(addr: &str, key: &str, path: &str) -> u16 {
    let body = r#"{"inputs": {}}"#;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line")
}

#[test]
fn keys_revoke_reaches_a_running_server() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start_server(dir.path());
    // Created while the server runs, by another process, on the same SQLite file.
    let created = create_key(dir.path(), &[]);
    let key = created["key"].as_str().expect("key");
    assert_eq!(predict_status(&server.addr, key), 200);
    let revoked = run(
        dir.path(),
        &[],
        &["keys", "revoke", created["id"].as_str().expect("id")],
    );
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    // The server trusts its cache for auth.cache_ttl (500 ms here), then asks the store.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(predict_status(&server.addr, key), 401);
}

#[test]
fn keys_never_reach_the_logs() {
    let dir = tempfile::tempdir().expect("dir");
    let key = create_key(dir.path(), &[])["key"]
        .as_str()
        .expect("key")
        .to_string();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut server = start_server_logging(dir.path(), Stdio::from(log), "trace");
    assert_eq!(predict_status(&server.addr, &key), 200);
    let unknown = "mg_thisKeyIsNotKnownAnywhere0000000000000";
    assert_eq!(predict_status(&server.addr, unknown), 401);
    let in_query = format!("/api/v1/models/21/predict?api_key={key}");
    assert_eq!(predict_status_at(&server.addr, &key, &in_query), 400);
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    server.child.wait().expect("exit");
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(logs.contains("key_"), "logs should name keys by id");
    for secret in [key.as_str(), unknown, &key[3..20]] {
        assert!(!logs.contains(secret), "a key reached the logs");
    }
}

/// Fills the store `modelgate_command` uses in `dir` with `count` keys, directly (a process per
/// key would take minutes); returns nothing, the CLI reads them back.
fn fill_store(dir: &Path, count: usize) {
    use modelgate::auth::{issue_key, NewKey};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = modelgate::config::DatabaseConfig {
            url: format!("sqlite://{}", dir.join("db.sqlite").display()),
            ..Default::default()
        };
        let store = modelgate::store::Store::open(&config).await.expect("store");
        for n in 0..count {
            let new = NewKey {
                name: format!("{n:0>100}"),
                ..NewKey::default()
            };
            issue_key(&store, new).await.expect("key");
        }
        store.close().await;
    });
}

/// Exit 0, nothing on stderr but the store line: a closed pipe is the reader saying "enough".
fn assert_quiet_stop(output: &Output, args: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    assert!(
        err.lines().all(|l| l.starts_with("store: ")),
        "{args:?}: {err}"
    );
}

#[test]
fn output_into_a_pipe_closed_after_a_few_bytes_stops_quietly() {
    let dir = tempfile::tempdir().expect("dir");
    // More than a pipe buffer (64 KiB) of output in both forms, so the writer meets the close.
    fill_store(dir.path(), 700);
    for args in [&["keys", "list", "--json"][..], &["keys", "list"][..]] {
        let mut child = modelgate(dir.path(), &[])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut head = [0u8; 10];
        stdout.read_exact(&mut head).expect("first bytes");
        drop(stdout); // `| head -c 10` exits here
        let output = child.wait_with_output().expect("wait");
        assert_quiet_stop(&output, args);
    }
}

#[test]
fn every_command_survives_an_already_closed_stdout() {
    let dir = tempfile::tempdir().expect("dir");
    let id = create_key(dir.path(), &["--credits", "5"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let commands: &[&[&str]] = &[
        &["keys", "list", "--json"],
        &["keys", "list"],
        &["keys", "create", "--name", "piped"],
        &["keys", "create", "--name", "piped", "--json"],
        &["keys", "topup", id.as_str(), "1"],
        &["keys", "topup", id.as_str(), "1", "--json"],
        &["keys", "revoke", id.as_str()],
        &["keys", "revoke", id.as_str(), "--json"],
        &["models", "list"],
        &["models", "list", "--json"],
        &["config", "show"],
        &["config", "show", "--json"],
        &["doctor"],
        &["doctor", "--json"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader); // every write now fails with EPIPE
        let output = modelgate(dir.path(), &[])
            .args(*args)
            .stdout(writer)
            .output()
            .expect("run");
        assert_quiet_stop(&output, args);
    }
}

#[test]
fn keys_commands_name_their_store_on_stderr() {
    let dir = tempfile::tempdir().expect("dir");
    let cwd = dir.path().canonicalize().expect("canonical dir");
    let relative = [("MODELGATE_DATABASE_URL", "sqlite://data/modelgate.db")];
    let store_line = format!("store: sqlite://{}/data/modelgate.db", cwd.display());

    let first = run(
        &cwd,
        &relative,
        &["keys", "create", "--name", "a", "--json"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let created: Value = serde_json::from_slice(&first.stdout).expect("stdout is only the JSON");
    assert!(stderr(&first).contains(&store_line), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("did not exist, created empty"),
        "{}",
        stderr(&first)
    );

    let id = created["id"].as_str().expect("id");
    for args in [
        &["keys", "list", "--json"][..],
        &["keys", "create", "--name", "b"][..],
        &["keys", "revoke", id][..],
    ] {
        let output = run(&cwd, &relative, args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let err = stderr(&output);
        assert!(err.contains(&store_line), "{args:?}: {err}");
        assert!(!err.contains("did not exist"), "{args:?}: {err}");
    }
}

/// `GET path` with a bearer key over a fresh connection; returns the body.
fn http_get(addr: &str, path: &str, key: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("body");
    body.to_string()
}

#[test]
fn keys_list_json_has_the_shape_of_the_api() {
    let dir = tempfile::tempdir().expect("dir");
    let admin = create_key(dir.path(), &["--scope", "admin", "--credits", "3"]);
    let server = start_server(dir.path());
    let api: Value = serde_json::from_str(&http_get(
        &server.addr,
        "/api/v1/keys",
        admin["key"].as_str().expect("key"),
    ))
    .expect("api json");
    let cli = run(dir.path(), &[], &["keys", "list", "--json"]);
    assert_eq!(cli.status.code(), Some(0), "{}", stderr(&cli));
    let cli: Value = serde_json::from_slice(&cli.stdout).expect("cli json");
    assert!(cli["keys"].is_array(), "{cli}");
    assert_eq!(cli, api);
}

#[test]
fn banner_with_remote_auth_points_at_the_service() {
    let dir = tempfile::tempdir().expect("dir");
    let (_server, banner) = spawn_server(
        dir.path(),
        &[(
            "MODELGATE_AUTH_SERVICE_URL",
            "http://svc:authpass@127.0.0.1:9",
        )],
        Stdio::null(),
    );
    assert!(
        banner.contains("validated by the auth service at http://svc:***@127.0.0.1:9"),
        "{banner}"
    );
    assert!(!banner.contains("No API key exists yet"), "{banner}");
    assert!(!banner.contains("authpass"), "{banner}");
}

#[test]
fn banner_command_works_from_another_folder() {
    let server_dir = tempfile::tempdir().expect("server dir");
    let elsewhere = tempfile::tempdir().expect("user's folder");
    let (server, banner) = spawn_server(
        server_dir.path(),
        &[("MODELGATE_DATABASE_URL", "sqlite://data/modelgate.db")],
        Stdio::null(),
    );
    assert!(banner.contains("No API key exists yet"), "{banner}");
    let command = banner
        .lines()
        .map(str::trim)
        .find(|line| line.ends_with("keys create --name my-first-key"))
        .unwrap_or_else(|| panic!("no keys create command in: {banner}"));
    // As a user would paste it: another folder, none of the server's environment.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --json"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(elsewhere.path())
        .output()
        .expect("run the banner's command");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let created: Value = serde_json::from_slice(&output.stdout).expect("json");
    let key = created["key"].as_str().expect("key");
    assert_eq!(predict_status(&server.addr, key), 200);
    assert!(
        !elsewhere.path().join("data").exists(),
        "a second store was created in the user's folder"
    );
}

/// libpq and sqlx also take the password from the query (`?password=`, `?sslpassword=`): it is
/// masked wherever the `user:pass@` form is, in `config show` and in `keys`' store line.
#[test]
fn a_password_in_the_query_is_masked_too() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [(
        "MODELGATE_DATABASE_URL",
        "postgres://app@127.0.0.1:1/main?password=qu3rypass&sslpassword=k3ypass&sslmode=disable",
    )];
    let json = run(dir.path(), &env, &["config", "show", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let shown: Value = serde_json::from_slice(&json.stdout).expect("json");
    let url = shown["database"]["url"].as_str().expect("url");
    assert!(
        url.contains("password=***") && url.contains("sslmode=disable"),
        "{url}"
    );
    let list = run(dir.path(), &env, &["keys", "list"]);
    assert_ne!(list.status.code(), Some(0), "nothing listens on port 1");
    for out in [stdout(&json), stderr(&json), stdout(&list), stderr(&list)] {
        for secret in ["qu3rypass", "k3ypass"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
    }
}
