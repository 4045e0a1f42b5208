//! A real MLflow tracking server for a test: `mlflow server` from target/mlflow-venv (built by
//! ./scripts/prepare from tools/mlflow/requirements.txt), with a SQLite registry and proxied
//! artifacts in a temporary folder, on a free port, killed with its workers when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_server::free_port;
use super::repo_path;

/// Importing MLflow takes seconds, more on a loaded machine; a server that has not answered
/// in this long is broken rather than slow.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct MlflowServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// `target/mlflow-venv/bin/<program>`, or a panic that says how to get it: a test that needs
/// MLflow fails when it is missing, never skips.
fn venv_program(program: &str) -> PathBuf {
    let path = repo_path("target/mlflow-venv/bin").join(program);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/prepare to build target/mlflow-venv \
         (tools/mlflow/requirements.txt)",
        path.display()
    );
    path
}

/// The MLflow environment of every process started here: quiet and nothing phoning home.
fn quiet(command: &mut Command) -> &mut Command {
    command
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .env("PYTHONWARNINGS", "ignore")
}

/// Whether an HTTP server on `port` answers `GET /health` with 200.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

impl MlflowServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> MlflowServer {
        let mlflow = venv_program("mlflow");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut command = Command::new(mlflow);
        quiet(&mut command)
            // The job runner (huey workers, for GenAI evaluation jobs) would add seven processes
            // the registry does not need.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .arg("server")
            .arg("--backend-store-uri")
            .arg(format!(
                "sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg("--serve-artifacts")
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--workers", "1"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            // `mlflow server` runs uvicorn as a child: its own process group lets drop kill both.
            .process_group(0);
        let child = command.spawn().expect("spawn mlflow server");
        let mut server = MlflowServer { child, port, dir };
        let started = Instant::now();
        while !healthy(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "mlflow server exited ({status}) before answering:\n{}",
                    server.log()
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "mlflow server did not answer on port {port} within {START_TIMEOUT:?}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server wrote so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Registers `onnx` as a new version of `name`, pointing `alias` at it; returns the version.
    pub fn register(&self, name: &str, onnx: &Path, alias: Option<&str>) -> String {
        let mut extra = Vec::new();
        if let Some(alias) = alias {
            extra.extend(["--alias", alias]);
        }
        self.run_register(name, onnx, &extra)
    }

    /// Registers `onnx` as a new version of `name` in `stage` (e.g. "Production").
    pub fn register_in_stage(&self, name: &str, onnx: &Path, stage: &str) -> String {
        self.run_register(name, onnx, &["--stage", stage])
    }

    /// Points `alias` of `name` at `version`, as a data scientist promoting a version would.
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/api/2.0/mlflow/registered-models/alias",
                self.url()
            ))
            .json(&serde_json::json!({"name": name, "alias": alias, "version": version}))
            .send()
            .await
            .expect("set alias");
        assert!(
            response.status().is_success(),
            "set alias: {}",
            response.status()
        );
    }

    /// The file holding `version`'s ONNX graph in the server's artifact store, to damage it.
    pub async fn graph_file(&self, name: &str, version: &str) -> PathBuf {
        let reply: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/api/2.0/mlflow/model-versions/get-download-uri",
                self.url()
            ))
            .query(&[("name", name), ("version", version)])
            .send()
            .await
            .expect("get-download-uri")
            .json()
            .await
            .expect("json");
        let uri = reply["artifact_uri"].as_str().expect("artifact_uri");
        let path = uri
            .strip_prefix("mlflow-artifacts:/")
            .expect("a proxied artifact");
        self.dir
            .path()
            .join("artifacts")
            .join(path)
            .join("model.onnx")
    }

    fn run_register(&self, name: &str, onnx: &Path, extra: &[&str]) -> String {
        let mut command = Command::new(venv_program("python"));
        let output = quiet(&mut command)
            .arg(repo_path("tools/model21/register.py"))
            .args(["--tracking-uri", &self.url(), "--name", name])
            .arg("--onnx")
            .arg(onnx)
            .args(extra)
            .current_dir(self.dir.path())
            .output()
            .expect("run register.py");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "register.py failed ({}):\n{}\n{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .last()
            .map(|line| line.trim().to_string())
            .filter(|version| version.parse::<u64>().is_ok())
            .unwrap_or_else(|| panic!("register.py printed no version: {stdout:?}"))
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // The whole group: killing `mlflow` alone would orphan the uvicorn worker.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
