//! The real `modelgate` binary, serving in a child process until dropped (SIGKILL).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Runs `command serve` (build it with `support::modelgate_command`) on an ephemeral port
    /// and waits until it says where it listens.
    pub fn serve(mut command: Command) -> Server {
        let mut child = command
            .env("MODELGATE_LISTEN", "127.0.0.1:0")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
