//! A real Redis Cluster on loopback for a test: six `redis-server` processes (three masters,
//! three replicas) joined by `redis-cli --cluster create`, with a short node timeout so that a
//! killed master's replica is promoted within seconds.

use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use super::redis_server::{free_port, redis_server_on, RedisServer};

/// How long a node may be silent before the cluster calls it failed.
const NODE_TIMEOUT_MS: u64 = 1000;

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Ports of the nodes the test killed.
    killed: Vec<u16>,
}

impl RedisCluster {
    /// Starts six nodes and joins them; returns once every slot is served.
    pub async fn start() -> RedisCluster {
        Self::start_on(Self::free_ports()).await
    }

    /// Six ports nothing listens on yet, for [`RedisCluster::start_on`].
    pub fn free_ports() -> [u16; 6] {
        std::array::from_fn(|_| free_port())
    }

    /// Every node of a cluster on `ports` as a seed, comma-separated, as `redis.url` takes
    /// them (whether or not it runs yet).
    pub fn seeds_of(ports: &[u16]) -> String {
        ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// [`RedisCluster::start`] on the given ports.
    pub async fn start_on(ports: [u16; 6]) -> RedisCluster {
        let nodes: Vec<RedisServer> = ports
            .iter()
            .map(|&port| {
                let args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &NODE_TIMEOUT_MS.to_string(),
                    // A replica may always take over: the data here is seconds old at most.
                    "--cluster-replica-validity-factor",
                    "0",
                    // A replica that has not finished its first sync would lose what its
                    // master held when killed: sync at once.
                    "--repl-diskless-sync-delay",
                    "0",
                    // The bus port is the data port + 10000 by default, which may not be free.
                    "--cluster-port",
                    &free_port().to_string(),
                ]
                .iter()
                .map(|arg| arg.to_string())
                .collect();
                redis_server_on(port, tempfile::tempdir().expect("dir"), &args, false)
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli must be installed for this test");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster {
            nodes,
            killed: Vec::new(),
        };
        cluster.wait_until_whole(Duration::from_secs(20)).await;
        cluster
    }

    /// Every node as a seed, comma-separated, as `redis.url` takes them.
    pub fn seeds(&self) -> String {
        let ports: Vec<u16> = self.nodes.iter().map(|node| node.port).collect();
        Self::seeds_of(&ports)
    }

    /// A cluster-aware connection for the test's own reads.
    pub async fn connection(&self) -> ClusterConnection {
        let seeds: Vec<String> = self.seeds().split(',').map(String::from).collect();
        ClusterClient::new(seeds)
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("cluster connection")
    }

    /// Kills (`kill -9`) the master that serves `key`'s slot; returns its port.
    pub async fn kill_master_of(&mut self, key: &str) -> u16 {
        let port = self.master_of(key).await;
        self.kill(port);
        port
    }

    /// The living nodes where someone is subscribed to `channel`, with how many subscribers.
    pub async fn subscribers(&self, channel: &str) -> Vec<(u16, u64)> {
        let mut found = Vec::new();
        for port in self.living_ports() {
            let Ok(mut node) = connect(port).await else {
                continue;
            };
            let (_, count): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut node)
                .await
                .expect("PUBSUB NUMSUB");
            if count > 0 {
                found.push((port, count));
            }
        }
        found
    }

    /// Kills (`kill -9`) the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("the master is one of ours");
        node.kill();
        self.killed.push(port);
    }

    /// The port of the master that serves `key`'s slot now, as a living node sees it.
    pub async fn master_of(&self, key: &str) -> u16 {
        let mut node = self.any_living_node().await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut node)
            .await
            .expect("CLUSTER KEYSLOT");
        let nodes = text(&mut node, &["CLUSTER", "NODES"])
            .await
            .expect("CLUSTER NODES");
        masters(&nodes)
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|(port, _)| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}:\n{nodes}"))
    }

    /// Waits until the cluster reports every slot served (`cluster_state:ok`) on every living
    /// node, no master is flagged failed, and every replica is in sync with its master.
    pub async fn wait_until_whole(&self, patience: Duration) {
        let started = Instant::now();
        loop {
            if self.is_whole().await {
                return;
            }
            assert!(
                started.elapsed() < patience,
                "the cluster is not whole after {patience:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_whole(&self) -> bool {
        for port in self.living_ports() {
            let Ok(mut node) = connect(port).await else {
                continue;
            };
            let (Ok(info), Ok(nodes), Ok(replication)) = (
                text(&mut node, &["CLUSTER", "INFO"]).await,
                text(&mut node, &["CLUSTER", "NODES"]).await,
                text(&mut node, &["INFO", "replication"]).await,
            ) else {
                return false;
            };
            let living = self.living_ports();
            let masters = masters(&nodes);
            if !info.contains("cluster_state:ok")
                || (replication.contains("role:slave")
                    && !replication.contains("master_link_status:up"))
                || masters.iter().any(|(port, _)| !living.contains(port))
            {
                return false;
            }
        }
        true
    }

    fn living_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| !self.killed.contains(&node.port))
            .map(|node| node.port)
            .collect()
    }

    async fn any_living_node(&self) -> redis::aio::MultiplexedConnection {
        for port in self.living_ports() {
            if let Ok(node) = connect(port).await {
                return node;
            }
        }
        panic!("no cluster node answers")
    }
}

/// A command whose answer is text (`CLUSTER INFO`, `INFO …`).
async fn text(
    node: &mut redis::aio::MultiplexedConnection,
    command: &[&str],
) -> redis::RedisResult<String> {
    redis::cmd(command[0])
        .arg(&command[1..])
        .query_async(node)
        .await
}

async fn connect(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_multiplexed_async_connection()
        .await
}

/// The masters `CLUSTER NODES` lists that serve slots: their ports and slot ranges.
fn masters(nodes: &str) -> Vec<(u16, Vec<(u16, u16)>)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let port = fields
                .get(1)?
                .split(['@', ','])
                .next()?
                .rsplit(':')
                .next()?;
            let ranges: Vec<(u16, u16)> = fields
                .iter()
                .skip(8)
                .filter(|range| !range.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => range.parse().ok().map(|slot| (slot, slot)),
                })
                .collect();
            (!ranges.is_empty()).then(|| Some((port.parse().ok()?, ranges)))?
        })
        .collect()
}
