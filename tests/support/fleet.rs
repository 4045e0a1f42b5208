//! Several real `modelgate` processes sharing one PostgreSQL database and one Redis: the
//! "many stateless instances" of DESIGN.md, principle 6. No balancer sits in front: a test
//! picks the instance each request goes to. Each instance has its own working folder and
//! outbox, as each pod has its own volume, so that one can be killed and restarted on its own.
//!
//! The Redis the fleet shares is a value ([`RedisTarget`]), so the same tests run against a
//! standalone server or a cluster, and the test side reads the fleet's stream from the same.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::Arc;

use serde_json::Value;

use super::events::{delete_stream, undelivered, undelivered_on};
use super::process::{create_key, CreatedKey, Server};
use super::redis_cluster::RedisCluster;
use super::{modelgate_command, unique_stream, Backend, TestDatabase, REDIS};

/// The Redis every instance of a fleet is given.
#[derive(Clone)]
pub struct RedisTarget {
    /// `MODELGATE_REDIS_URL`.
    pub url: String,
    /// Further variables every instance and command gets (e.g. a cluster switch).
    pub env: Vec<(String, String)>,
    /// The cluster, when it is one: kept running as long as the target, and read through.
    cluster: Option<Arc<RedisCluster>>,
}

impl RedisTarget {
    /// The tests' standalone Redis ([`REDIS`]).
    pub fn standalone() -> RedisTarget {
        RedisTarget {
            url: format!("redis://{REDIS}/0"),
            env: Vec::new(),
            cluster: None,
        }
    }

    /// A Redis Cluster of its own (three masters, three replicas), every node a seed.
    pub async fn cluster() -> RedisTarget {
        let cluster = RedisCluster::start().await;
        RedisTarget {
            url: cluster.seeds(),
            env: vec![("MODELGATE_REDIS_CLUSTER".into(), "true".into())],
            cluster: Some(Arc::new(cluster)),
        }
    }
}

/// How instance `index` is launched, given the command every instance would get: e.g. run in
/// a network namespace of its own, or with a setting of its own.
type Place = Box<dyn Fn(usize, Command) -> Command + Send + Sync>;

/// One instance: its folder (working directory, outbox, log) outlives its processes.
struct Member {
    dir: tempfile::TempDir,
    server: Option<Server>,
}

/// `size` instances of the real binary on one fresh PostgreSQL database and `redis`, each
/// recording into the same, fresh stream. Dropping it kills them (SIGKILL) and drops the
/// database and the stream.
pub struct Fleet {
    members: Vec<Member>,
    redis: RedisTarget,
    /// Extra variables of every instance, after the fleet's own.
    env: Vec<(String, String)>,
    place: Place,
    pub stream: String,
    pub client: reqwest::Client,
    /// Last: the database is dropped once the processes using it are gone.
    pub db: TestDatabase,
}

impl Fleet {
    /// Starts `size` instances on `redis` and waits until each serves and reports every
    /// configured dependency healthy.
    pub async fn start(redis: RedisTarget, size: usize) -> Fleet {
        Self::start_with(redis, size, &[]).await
    }

    /// [`Fleet::start`], every instance also given `env`.
    pub async fn start_with(redis: RedisTarget, size: usize, env: &[(&str, &str)]) -> Fleet {
        Self::start_each(redis, size, env, |_, command| command).await
    }

    /// [`Fleet::start_with`], each instance's command (serving, and the CLI as that instance)
    /// then passed through `place` with its index.
    pub async fn start_each(
        redis: RedisTarget,
        size: usize,
        env: &[(&str, &str)],
        place: impl Fn(usize, Command) -> Command + Send + Sync + 'static,
    ) -> Fleet {
        let mut fleet = Fleet {
            members: (0..size)
                .map(|_| Member {
                    dir: tempfile::tempdir().expect("instance dir"),
                    server: None,
                })
                .collect(),
            redis,
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            place: Box::new(place),
            stream: unique_stream(),
            client: reqwest::Client::new(),
            db: TestDatabase::new(Backend::Postgres).await,
        };
        // Together, as a deployment's pods start: migrations and the shared cache secret are
        // raced for on the fresh database.
        let starting: Vec<_> = (0..size)
            .map(|index| {
                let (command, log) = (fleet.command(index), fleet.log_file(index));
                tokio::task::spawn_blocking(move || Server::serve_logging(command, log))
            })
            .collect();
        for (index, started) in starting.into_iter().enumerate() {
            fleet.members[index].server = Some(started.await.expect("instance starts"));
        }
        for index in 0..size {
            fleet.wait_healthy(index).await;
        }
        fleet
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The base URL (`http://addr`) of instance `index`, which must be running.
    pub fn base(&self, index: usize) -> &str {
        &self.members[index]
            .server
            .as_ref()
            .unwrap_or_else(|| panic!("instance {index} is not running"))
            .base
    }

    /// Every running instance's base URL, by index.
    pub fn bases(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.base(i).to_string()).collect()
    }

    /// `kill -9` of instance `index`: no shutdown, no flush. Its folder (outbox) stays.
    pub fn kill(&mut self, index: usize) {
        if let Some(server) = self.members[index].server.take() {
            server.kill();
        }
    }

    /// Starts instance `index` again on its own folder (so its outbox is replayed) and waits
    /// until it is healthy.
    pub async fn restart(&mut self, index: usize) {
        assert!(
            self.members[index].server.is_none(),
            "instance {index} is running"
        );
        let (command, log) = (self.command(index), self.log_file(index));
        let server = tokio::task::spawn_blocking(move || Server::serve_logging(command, log))
            .await
            .expect("instance restarts");
        self.members[index].server = Some(server);
        self.wait_healthy(index).await;
    }

    /// A `modelgate` command configured as instance `index` is (database, Redis, stream,
    /// outbox, placement), run from its folder: for the CLI, or `serve`.
    pub fn command(&self, index: usize) -> Command {
        let dir = self.members[index].dir.path();
        let mut command = modelgate_command(dir);
        command
            .env("MODELGATE_DATABASE_URL", &self.db.url)
            .env("MODELGATE_REDIS_URL", &self.redis.url)
            .envs(self.redis.env.iter().map(|(k, v)| (k, v)))
            .env("MODELGATE_EVENTS_STREAM", &self.stream)
            .env("MODELGATE_EVENTS_OUTBOX_DIR", dir.join("outbox"))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        (self.place)(index, command)
    }

    /// `modelgate keys create --json ARGS` on the fleet's database.
    pub fn create_key(&self, args: &[&str]) -> CreatedKey {
        create_key(self.command(0), args)
    }

    /// A key with the `admin` scope, for the admin API.
    pub fn admin_key(&self) -> CreatedKey {
        self.create_key(&["--scope", "admin"])
    }

    /// Waits up to `patience` for every record of `ids` to be in `inference_logs` and in the
    /// fleet's stream; how many are still missing from each, `(table, stream)`.
    pub async fn undelivered(&self, ids: &HashSet<String>, patience: Duration) -> (usize, usize) {
        match &self.redis.cluster {
            Some(cluster) => {
                let mut redis = cluster.connection().await;
                undelivered_on(&mut redis, &self.db.url, &self.stream, ids, patience).await
            }
            None => undelivered(&self.db.url, &self.stream, ids, patience).await,
        }
    }

    /// The last lines of the log (stderr) of instance `index`, over every start of it: enough
    /// to see why it failed, short enough to read in a failure message.
    pub fn log_tail(&self, index: usize) -> String {
        let log = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.members[index].dir.path().join("stderr.log")
    }

    fn log_file(&self, index: usize) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(index))
            .expect("instance log")
    }

    async fn wait_healthy(&self, index: usize) {
        let url = format!("{}/health", self.base(index));
        let started = Instant::now();
        loop {
            let body = self.get_json(&url).await.unwrap_or_default();
            if let Some(services) = body["services"].as_object() {
                if services
                    .values()
                    .all(|state| state == "healthy" || state == "disabled")
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "instance {index} did not report its dependencies healthy within 15 s; its log:\n{}",
                self.log_tail(index)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get_json(&self, url: &str) -> Option<Value> {
        self.client.get(url).send().await.ok()?.json().await.ok()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.server.take();
        }
        if self.redis.cluster.is_some() {
            return; // the cluster, and the stream with it, goes with the test
        }
        let stream = self.stream.clone();
        // Drop runs outside async; a short-lived runtime on its own thread cleans up.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(delete_stream(&stream));
        })
        .join();
    }
}
