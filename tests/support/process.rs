//! The real `modelgate` binary in a child process: serving until dropped (SIGKILL), or running
//! one command.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Runs `command serve` (build it with `support::modelgate_command`) on an ephemeral port
    /// and waits until it says where it listens.
    pub fn serve(command: Command) -> Server {
        Self::serve_logging(command, Stdio::null())
    }

    /// [`Server::serve`], its log (stderr) written to `log`: a test whose servers misbehave
    /// keeps what they said.
    pub fn serve_logging(mut command: Command, log: impl Into<Stdio>) -> Server {
        let mut child = command
            .env("MODELGATE_LISTEN", "127.0.0.1:0")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn modelgate");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server printed its address")
                .expect("line");
            if let Some(rest) = line.strip_prefix("modelgate is serving on http://") {
                break rest.trim().to_string();
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// `kill -HUP`: reload the models.
    pub fn signal_hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success(), "kill -HUP failed");
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// A key as `modelgate keys create --json` printed it.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
}

/// Runs `command keys create --json --name test ARGS` (build it with
/// `support::modelgate_command`, on the store the servers use).
pub fn create_key(mut command: Command, args: &[&str]) -> CreatedKey {
    let output = command
        .args(["keys", "create", "--json", "--name", "test"])
        .args(args)
        .output()
        .expect("run keys create");
    assert!(
        output.status.success(),
        "keys create {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).expect("key json");
    let field = |name: &str| created[name].as_str().expect(name).to_string();
    CreatedKey {
        id: field("id"),
        key: field("key"),
    }
}
