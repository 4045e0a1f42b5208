//! Redis: dns, tcp, tls (or a plaintext probe), AUTH, and SELECT + PING, spoken in raw RESP so
//! that each layer's failure can be told apart. The round trip also asks whether the server is
//! a Cluster node, which a client that is not cluster-aware cannot use (it answers `MOVED`).
//! With `redis.cluster`, the first seed that answers lists the cluster's masters, and each
//! master is then checked like a server of its own.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::net::{self, Connected};
use super::tls::{self, Asked, Roots};
use super::{scrub, Check, DependencyReport};
use crate::config::redis_url::{target, Location, Target};
use crate::config::RedisConfig;
use crate::redis::{tls_trust, TlsTrust};

/// A reply line longer than this is not a reply to our commands.
const MAX_LINE: usize = 4096;
/// `CLUSTER NODES` is about 100 bytes per node.
const MAX_BULK: usize = 1024 * 1024;
const CA_HINT: &str = "set redis.tls_ca_file (MODELGATE_REDIS_TLS_CA_FILE) to the PEM file of \
                       the CA that signed the server's certificate";

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

pub(crate) async fn check(config: &RedisConfig, timeout: Duration) -> Vec<DependencyReport> {
    let Some(url) = config.url.as_deref() else {
        return vec![DependencyReport::not_configured(
            "redis",
            "optional: no shared cache",
        )];
    };
    if !config.cluster {
        return vec![check_node(config, url, timeout, Role::Single).await.0];
    }
    let mut reports = Vec::new();
    for seed in crate::config::redis_url::nodes(url) {
        let (report, masters) = check_node(config, seed, timeout, Role::Seed).await;
        reports.push(report);
        if let Some(masters) = masters {
            for master in masters {
                let node_url = node_url(seed, &master);
                reports.push(check_node(config, &node_url, timeout, Role::Master).await.0);
            }
            return reports;
        }
    }
    reports
}

/// What the node being checked is expected to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `redis.cluster` is off: the server must not be a Cluster node.
    Single,
    /// A seed of the Cluster: it must be one, and it lists the masters.
    Seed,
    /// A master the seed listed.
    Master,
}

/// One node's report, and the masters it listed when it is a seed that answered.
async fn check_node(
    config: &RedisConfig,
    url: &str,
    timeout: Duration,
    role: Role,
) -> (DependencyReport, Option<Vec<String>>) {
    let target = match target(url) {
        Ok(target) => target,
        Err(cause) => {
            let mut check = Check::new("redis", false, url, Vec::new(), timeout);
            check.fail("url", None, cause.to_string());
            return (check.finish(), None);
        }
    };
    let mut steps = match target.location {
        Location::Tcp { .. } => vec!["dns", "tcp", "tls", "auth", "roundtrip"],
        Location::Unix(_) => vec!["socket", "tls", "auth", "roundtrip"],
    };
    if role == Role::Seed {
        steps.push("cluster");
    }
    let mut check = Check::new("redis", false, url, steps, timeout);
    let mut masters = None;
    if let Some(mut conn) = connect(&mut check, config, &target).await {
        // The plaintext probe's answer doubles as the password check when no AUTH is sent.
        let first_reply = conn.1.take();
        if finish(&mut check, &mut conn.0, &target, first_reply, role).await && role == Role::Seed {
            let silence = "the seed did not list the cluster's nodes";
            masters = check
                .run("cluster", silence, cluster_masters(&mut conn.0))
                .await;
        }
    }
    (check.finish(), masters)
}

/// `seed` with its host and port replaced by `node`'s (`host:port`), credentials kept.
fn node_url(seed: &str, node: &str) -> String {
    let Some((host, port)) = node.rsplit_once(':') else {
        return seed.to_string();
    };
    let Ok(mut url) = url::Url::parse(seed) else {
        return seed.to_string();
    };
    if url.set_host(Some(host)).is_err() {
        return seed.to_string();
    }
    let _ = url.set_port(port.parse().ok());
    url.to_string()
}

/// The masters `CLUSTER NODES` lists (`host:port` each), and whether every slot is served.
async fn cluster_masters(conn: &mut Box<dyn Conn>) -> Result<(Vec<String>, String), String> {
    let nodes = expect_reply(command(conn, &["CLUSTER", "NODES"]).await, None)?;
    if nodes.starts_with('-') {
        return Err(format!("CLUSTER NODES refused: {}", printable(&nodes)));
    }
    let cluster = parse_nodes(&nodes);
    let masters: Vec<String> = cluster.masters.iter().map(|m| m.to_string()).collect();
    let mut detail = format!(
        "{} masters ({}), {} replicas",
        masters.len(),
        masters.join(", "),
        cluster.replicas
    );
    if !cluster.failing.is_empty() {
        return Err(format!(
            "the cluster marks {} as failing: a master is down (its slots fail until a replica \
             is promoted) or a replica is",
            cluster.failing.join(", ")
        ));
    }
    if cluster.slots < SLOTS {
        return Err(format!(
            "{detail}, but only {} of {SLOTS} slots are assigned: keys in the others fail",
            cluster.slots
        ));
    }
    detail.push_str(", every slot assigned");
    Ok((masters, detail))
}

const SLOTS: u32 = 16384;

/// What `CLUSTER NODES` says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Nodes<'a> {
    masters: Vec<&'a str>,
    replicas: usize,
    /// Nodes flagged `fail` or `fail?`.
    failing: Vec<&'a str>,
    /// Slots assigned to masters.
    slots: u32,
}

/// Reads `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong>
/// <epoch> <link> <slot> <slot>...`, one node per line.
fn parse_nodes(text: &str) -> Nodes<'_> {
    let mut nodes = Nodes::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let address = address.split(['@', ',']).next().unwrap_or(address);
        let flags: Vec<&str> = flags.split(',').collect();
        if flags.iter().any(|f| *f == "fail" || *f == "fail?") {
            nodes.failing.push(address);
            continue;
        }
        if flags.contains(&"master") {
            nodes.masters.push(address);
            nodes.slots += fields
                .iter()
                .skip(8)
                .map(|range| slot_count(range))
                .sum::<u32>();
        } else if flags.contains(&"slave") || flags.contains(&"replica") {
            nodes.replicas += 1;
        }
    }
    nodes
}

/// `a-b` or `a`; a slot being migrated (`[a->-id]`) is not counted twice.
fn slot_count(range: &str) -> u32 {
    if range.starts_with('[') {
        return 0;
    }
    match range.split_once('-') {
        Some((from, to)) => match (from.parse::<u32>(), to.parse::<u32>()) {
            (Ok(from), Ok(to)) if to >= from => to - from + 1,
            _ => 0,
        },
        None => u32::from(range.parse::<u32>().is_ok()),
    }
}

/// Silence after a plaintext PING.
const NO_PONG: &str = "connected, but the server never answered PING: packets dropped after \
                       connect, or it is not a Redis server";

/// Runs the connection steps up to `tls`: a stream ready for commands, and the reply to the
/// plaintext probe if one was sent.
async fn connect(
    check: &mut Check,
    config: &RedisConfig,
    target: &Target,
) -> Option<(Box<dyn Conn>, Option<String>)> {
    let secret = target.password.as_deref();
    let (host, port, tls) = match &target.location {
        Location::Unix(path) => {
            let silence = "the socket accepts nothing";
            let stream = check.run("socket", silence, connect_unix(path)).await?;
            let probe = plaintext_probe(stream, None, secret);
            let (stream, reply) = check.run("tls", NO_PONG, probe).await?;
            return Some((Box::new(stream), Some(reply)));
        }
        Location::Tcp { host, port, tls } => (host, *port, *tls),
    };
    let Connected { stream, addr } = net::dns_and_tcp(check, host, port).await?;
    if tls {
        let roots = match tls_trust(config) {
            Ok(TlsTrust::System) => Roots::Native,
            Ok(TlsTrust::Ca(pem)) => Roots::Pem(pem),
            Ok(TlsTrust::Insecure) => Roots::Insecure,
            Err(e) => {
                check.fail("tls", None, e.to_string());
                return None;
            }
        };
        let asked = Asked {
            by: "URL scheme says rediss://",
            ca_hint: CA_HINT,
        };
        let silence = "connected, but the TLS handshake got no answer: packets dropped after \
                       connect, or the server is overloaded";
        let handshake = handshake_or_mismatch(stream, addr, host, &roots, &asked);
        let tls = check.run("tls", silence, handshake).await?;
        Some((Box::new(tls), None))
    } else {
        let probe = plaintext_probe(stream, Some((addr, host.as_str())), secret);
        let (stream, reply) = check.run("tls", NO_PONG, probe).await?;
        Some((Box::new(stream), Some(reply)))
    }
}

/// After this long without a finished handshake, ask the port in plaintext as well.
const HANDSHAKE_GRACE: Duration = Duration::from_millis(150);

/// The TLS handshake; if it has not finished after a grace period, a plaintext PING on a second
/// connection runs alongside it. A plaintext Redis waits silently for the rest of what it takes
/// for an inline command, so without that PING it would be indistinguishable from a firewall.
async fn handshake_or_mismatch(
    stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    host: &str,
    roots: &Roots,
    asked: &Asked<'_>,
) -> Result<
    (
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        String,
    ),
    String,
> {
    let plaintext = async {
        tokio::time::sleep(HANDSHAKE_GRACE).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let reply = command(&mut stream, &["PING"]).await.ok()??;
        reply.starts_with(['+', '-']).then_some(reply)
    };
    tokio::select! {
        done = tls::handshake(stream, host, roots, asked) => done,
        Some(reply) = plaintext => Err(format!(
            "TLS mismatch: URL scheme says rediss:// (TLS), server speaks plaintext (it \
             answered a plaintext PING with {}): use redis://",
            printable(&reply)
        )),
    }
}

async fn connect_unix(path: &std::path::Path) -> Result<(tokio::net::UnixStream, String), String> {
    let shown = path.display();
    match tokio::net::UnixStream::connect(path).await {
        Ok(stream) => Ok((stream, format!("connected to {shown}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no socket at {shown}: Redis is not running, or the path is wrong"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(format!(
            "nothing listening on {shown}: Redis stopped and left its socket file"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "no permission to use {shown}: check the socket's owner and unixsocketperm"
        )),
        Err(e) => Err(format!("cannot connect to {shown}: {e}")),
    }
}

/// The `auth` and `roundtrip` steps on a connected stream.
async fn finish(
    check: &mut Check,
    conn: &mut Box<dyn Conn>,
    target: &Target,
    first_reply: Option<String>,
    role: Role,
) -> bool {
    let secret = target.password.as_deref();
    let silence = "the server did not answer the password check";
    if check
        .run("auth", silence, auth(conn, target, first_reply))
        .await
        .is_none()
    {
        return false;
    }
    let silence = "the server accepted the connection but did not answer PING";
    check
        .run(
            "roundtrip",
            silence,
            roundtrip(conn, target.db, secret, role),
        )
        .await
        .is_some()
}

/// On a plaintext URL: PING, and if the server at `tcp` hangs up instead of answering, find out
/// whether it expected TLS.
async fn plaintext_probe<S: Conn>(
    mut stream: S,
    tcp: Option<(std::net::SocketAddr, &str)>,
    secret: Option<&str>,
) -> Result<((S, String), String), String> {
    match command(&mut stream, &["PING"]).await {
        Ok(Some(reply)) if reply.starts_with(['+', '-']) => {
            let detail = format!(
                "plaintext, as redis:// says (PING answered {})",
                scrub(&reply, secret)
            );
            Ok(((stream, reply), detail))
        }
        Ok(Some(reply)) => Err(format!(
            "not a Redis server: it answered PING with {:?}",
            printable(&scrub(&reply, secret))
        )),
        Ok(None) | Err(_) if speaks_tls(tcp).await => Err(
            "TLS mismatch: URL scheme says redis:// (plaintext), server speaks TLS: use \
             rediss:// (or REDIS_TLS_ENABLED=true)"
                .into(),
        ),
        Ok(None) => Err(
            "the server closed the connection without answering PING: not a Redis server, or \
             it refuses this client (maxclients, protected mode)"
                .into(),
        ),
        Err(e) => Err(format!(
            "the connection failed before PING was answered: {e}"
        )),
    }
}

async fn speaks_tls(tcp: Option<(std::net::SocketAddr, &str)>) -> bool {
    match tcp {
        Some((addr, host)) => tls::speaks_tls(addr, host).await,
        None => false,
    }
}

async fn auth(
    conn: &mut Box<dyn Conn>,
    target: &Target,
    first_reply: Option<String>,
) -> Result<((), String), String> {
    let Some(password) = target.password.as_deref() else {
        let reply = match first_reply {
            Some(reply) => reply,
            None => expect_reply(command(conn, &["PING"]).await, None)?,
        };
        return if reply.starts_with("-NOAUTH") {
            Err(
                "server requires a password, URL has none: add it (redis://:PASSWORD@host) or \
                 set REDIS_AUTH_TOKEN"
                    .into(),
            )
        } else if reply.starts_with('-') {
            Err(format!("the server refused PING: {reply}"))
        } else {
            Ok(((), "no password in URL, none required".into()))
        };
    };
    let mut args = vec!["AUTH"];
    if let Some(user) = target.user.as_deref() {
        args.push(user);
    }
    args.push(password);
    let reply = expect_reply(command(conn, &args).await, Some(password))?;
    let upper = reply.to_ascii_uppercase();
    if reply.starts_with('+') {
        let who = target.user.as_deref().unwrap_or("default");
        Ok(((), format!("password accepted (user {who})")))
    } else if upper.starts_with("-WRONGPASS") || upper.contains("INVALID PASSWORD") {
        Err(match &target.user {
            Some(user) => format!("wrong password (or unknown user {user})"),
            None => "wrong password: the server rejected the password in the URL".into(),
        })
    } else if upper.contains("WITHOUT ANY PASSWORD CONFIGURED")
        || upper.contains("NO PASSWORD IS SET")
    {
        Err("the URL has a password but the server requires none: is this the right server?".into())
    } else {
        Err(format!("AUTH refused: {}", scrub(&reply, Some(password))))
    }
}

async fn roundtrip(
    conn: &mut Box<dyn Conn>,
    db: u32,
    secret: Option<&str>,
    role: Role,
) -> Result<((), String), String> {
    if db != 0 {
        let index = db.to_string();
        let reply = expect_reply(command(conn, &["SELECT", &index]).await, secret)?;
        if reply.starts_with('-') {
            return Err(format!(
                "database {db} of the URL cannot be selected: {}",
                scrub(&reply, secret)
            ));
        }
    }
    let started = std::time::Instant::now();
    let reply = expect_reply(command(conn, &["PING"]).await, secret)?;
    let elapsed = started.elapsed();
    match reply.as_str() {
        "+PONG" => {
            let is_cluster = cluster_enabled(conn, secret).await?;
            match (role, is_cluster) {
                (Role::Single, true) => Err("server answered MOVED: it is a Redis Cluster node, \
                     which sends each key's commands to the node that owns its slot; set \
                     redis.cluster (MODELGATE_REDIS_CLUSTER=true)"
                    .into()),
                (Role::Seed | Role::Master, false) => Err("redis.cluster is set, but this \
                     server is not a Cluster node: unset redis.cluster, or name the cluster's \
                     nodes"
                    .into()),
                _ => Ok((
                    (),
                    format!(
                        "PING answered PONG in {:.1} ms (database {db}{})",
                        elapsed.as_secs_f64() * 1000.0,
                        if is_cluster { ", cluster node" } else { "" }
                    ),
                )),
            }
        }
        other if other.starts_with("-LOADING") => {
            Err("Redis is loading its dataset into memory: retry in a moment".into())
        }
        other => Err(format!("PING answered {}", scrub(other, secret))),
    }
}

/// Whether the server is a Cluster node: `CLUSTER INFO` answers its state there, and an error
/// ("cluster support disabled") elsewhere.
async fn cluster_enabled(conn: &mut Box<dyn Conn>, secret: Option<&str>) -> Result<bool, String> {
    let reply = expect_reply(command(conn, &["CLUSTER", "INFO"]).await, secret)?;
    Ok(reply.starts_with("cluster_"))
}

fn expect_reply(
    reply: std::io::Result<Option<String>>,
    secret: Option<&str>,
) -> Result<String, String> {
    match reply {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err("the server closed the connection instead of answering".into()),
        Err(e) => Err(scrub(&format!("the connection failed: {e}"), secret)),
    }
}

/// Sends one RESP command and reads its reply: one line, or the text of a bulk string (`$n`);
/// `None` when the server hung up first.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut S,
    args: &[&str],
) -> std::io::Result<Option<String>> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    conn.write_all(&out).await?;
    conn.flush().await?;
    let mut line = Vec::new();
    let mut buffer = [0u8; 512];
    // Our commands are answered by one simple string or error: one line.
    while !line.contains(&b'\n') && line.len() < MAX_LINE {
        let n = conn.read(&mut buffer).await?;
        if n == 0 {
            return Ok(if line.is_empty() {
                None
            } else {
                Some(String::from_utf8_lossy(&line).trim_end().to_string())
            });
        }
        line.extend_from_slice(&buffer[..n]);
    }
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let first = String::from_utf8_lossy(&line[..end]).trim_end().to_string();
    let Some(length) = first
        .strip_prefix('$')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= MAX_BULK)
    else {
        return Ok(Some(first));
    };
    let mut body = line.split_off((end + 1).min(line.len()));
    while body.len() < length {
        let n = conn.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..n]);
    }
    body.truncate(length);
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// At most 60 printable characters of what a non-Redis server said.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '.'
            }
        })
        .take(60)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003,redis-3 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 slave 67ed 0 1426238316232 5 connected
824f 127.0.0.1:30006@40006 slave,fail 292f 0 1426238317741 6 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [93->-292f]
";

    #[test]
    fn cluster_nodes_name_the_masters_failing_nodes_and_slots() {
        assert_eq!(
            parse_nodes(NODES),
            Nodes {
                masters: vec!["127.0.0.1:30002", "127.0.0.1:30003", "127.0.0.1:30001"],
                replicas: 2,
                failing: vec!["127.0.0.1:30006"],
                slots: SLOTS,
            }
        );
    }

    #[test]
    fn a_master_is_checked_with_the_seeds_credentials() {
        assert_eq!(
            node_url("redis://:s%40cret@seed:7000/0", "10.0.0.2:7001"),
            "redis://:s%40cret@10.0.0.2:7001/0"
        );
    }
}
