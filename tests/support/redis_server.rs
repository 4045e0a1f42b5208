//! Real `redis-server` processes for a test (the machine's Redis binary): plain, with a
//! password, or TLS-only with certificates made by `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// `kill -9`: the server is gone at once, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `redis-server` with `args`, listening (plain or TLS) on the returned port.
pub fn redis_server(dir: tempfile::TempDir, args: &[String], tls: bool) -> RedisServer {
    redis_server_on(free_port(), dir, args, tls)
}

/// [`redis_server`] on a given port.
pub fn redis_server_on(
    port: u16,
    dir: tempfile::TempDir,
    args: &[String],
    tls: bool,
) -> RedisServer {
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

pub fn tls_server() -> (RedisServer, PathBuf) {
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
