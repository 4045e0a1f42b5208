//! Hosts of their own for the processes a test starts: Linux network namespaces, each joined
//! to the root namespace by one veth pair per service it may reach, so that one host's path to
//! one service can be cut while everything else it does goes on.
//!
//! A cut drops packets silently, as the firewall change behind DESIGN.md's incident did:
//! connections stall, nothing is refused or reset. `netem`, `tc` filters and iptables are not
//! in every kernel or image (not in the ones these tests run on), so a cut gives both ends of
//! the link a queue of zero packets instead: everything sent is dropped before the wire, TCP
//! retransmits it later, and the application sees only silence. Neighbours are pinned, because a
//! firewall drops IP, not ARP: an ARP entry expiring during a cut would otherwise turn the
//! silence into quick "no route to host" errors.
//!
//! The services (PostgreSQL, Redis) listen on the root namespace's loopback, which no other
//! namespace can reach: the root end of each link carries a relay to its service (a
//! [`ChaosProxy`] that is never faulted; the cut is in the kernel, not in the relay), and a
//! command run on a host has each service's address rewritten to its relay's.
//!
//! Needs root and iproute2 (`ip`, `tc`); a test using it fails when they are missing. Names
//! carry the test process's id. A host's namespace and links are removed when it is dropped
//! (panics included); what a killed run left behind is removed by the next one.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::chaos::ChaosProxy;

const NAMESPACE_PREFIX: &str = "mgtest-";
const LINK_PREFIX: &str = "mg";

/// Links one process may make: its addresses are a block of this many /30s of 198.18.0.0/15
/// (RFC 2544's range for tests), chosen by process id so that concurrent runs differ.
const LINKS_PER_PROCESS: u32 = 8;

static HOSTS: AtomicU32 = AtomicU32::new(0);
static LINKS: AtomicU32 = AtomicU32::new(0);

/// A network namespace reaching the root namespace's `services` (one link each).
pub struct Host {
    name: String,
    links: Vec<Link>,
}

struct Link {
    /// The root namespace's end (the host's end is `eth<index>`).
    outer: String,
    inner: String,
    /// The host's address on this link.
    address: Ipv4Addr,
    service: SocketAddr,
    relay: ChaosProxy,
}

impl Host {
    /// A new namespace with one link per service of `services`, each relayed to its service.
    pub async fn start(services: &[SocketAddr]) -> Host {
        sweep_dead_runs();
        let pid = std::process::id();
        let name = format!(
            "{NAMESPACE_PREFIX}{pid}-{}",
            HOSTS.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]);
        // Built up link by link: dropping it removes whatever exists when a step fails.
        let mut host = Host {
            name,
            links: Vec::new(),
        };
        ip(&["-n", &host.name, "link", "set", "lo", "up"]);
        for (index, service) in services.iter().enumerate() {
            let link = host.link(index, *service).await;
            host.links.push(link);
        }
        host
    }

    async fn link(&self, index: usize, service: SocketAddr) -> Link {
        let pid = std::process::id();
        let number = LINKS.fetch_add(1, Ordering::SeqCst);
        assert!(
            number < LINKS_PER_PROCESS,
            "a test process may make {LINKS_PER_PROCESS} links"
        );
        let blocks = (1 << 15) / LINKS_PER_PROCESS; // of the /15's 2^15 /30s
        let block = (pid % blocks) * LINKS_PER_PROCESS + number;
        let subnet = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + block * 4;
        let (near, far) = (Ipv4Addr::from(subnet + 1), Ipv4Addr::from(subnet + 2));
        let outer = format!("{LINK_PREFIX}{pid}x{number}");
        let inner = format!("eth{index}");
        let (near_mac, far_mac) = (mac(near), mac(far));
        let ns = self.name.as_str();
        ip(&[
            "link", "add", &outer, "address", &near_mac, "type", "veth", "peer", "name", &inner,
            "address", &far_mac, "netns", ns,
        ]);
        ip(&["addr", "add", &format!("{near}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&["-n", ns, "addr", "add", &format!("{far}/30"), "dev", &inner]);
        ip(&["-n", ns, "link", "set", &inner, "up"]);
        let pin = |prefix: &[&str], address: Ipv4Addr, mac: &str, dev: &str| {
            let address = address.to_string();
            let mut args = prefix.to_vec();
            args.extend(["neigh", "replace", &address, "lladdr", mac, "dev", dev]);
            args.extend(["nud", "permanent"]);
            ip(&args);
        };
        pin(&[], far, &far_mac, &outer);
        pin(&["-n", ns], near, &near_mac, &inner);
        let relay = ChaosProxy::start_on(SocketAddr::from((near, 0)), service).await;
        Link {
            outer,
            inner,
            address: far,
            service,
            relay,
        }
    }

    /// The host's address on its first link, where the root namespace reaches what it serves.
    pub fn address(&self) -> Ipv4Addr {
        self.links.first().expect("a host has a link").address
    }

    /// `inner` run on this host (`ip netns exec`), with its environment and working directory,
    /// every mention of a service's address in a variable replaced by its relay's. `last` is
    /// set just before the program starts, over anything later added to the returned
    /// command's environment (a listen address on the root namespace's loopback, say).
    /// `inner`'s environment is taken as explicitly set on it: as if it had been cleared.
    pub fn command(&self, inner: &Command, last: &[(&str, String)]) -> Command {
        let mut outer = Command::new(tool("ip"));
        outer
            .args(["netns", "exec", &self.name, "env"])
            .args(last.iter().map(|(name, value)| format!("{name}={value}")))
            .arg(inner.get_program())
            .args(inner.get_args())
            .env_clear();
        for (name, value) in inner.get_envs() {
            match value {
                Some(value) => outer.env(name, self.rewrite(value)),
                None => outer.env_remove(name),
            };
        }
        if let Some(dir) = inner.get_current_dir() {
            outer.current_dir(dir);
        }
        outer
    }

    fn rewrite(&self, value: &OsStr) -> std::ffi::OsString {
        let Some(text) = value.to_str() else {
            return value.to_owned();
        };
        self.links
            .iter()
            .fold(text.to_string(), |text, link| {
                text.replace(&link.service.to_string(), &link.relay.addr().to_string())
            })
            .into()
    }

    /// Drops every packet between this host and `service`, both ways, until [`Host::heal`].
    pub fn cut(&self, service: SocketAddr) {
        let link = self.link_to(service);
        // A queue of zero: every packet is dropped on the way out (see the module's note).
        tc(&[
            "qdisc",
            "replace",
            "dev",
            &link.outer,
            "root",
            "pfifo",
            "limit",
            "0",
        ]);
        let ns = self.name.as_str();
        tc(&[
            "-n",
            ns,
            "qdisc",
            "replace",
            "dev",
            &link.inner,
            "root",
            "pfifo",
            "limit",
            "0",
        ]);
    }

    /// Ends a [`Host::cut`]: packets to and from `service` flow again.
    pub fn heal(&self, service: SocketAddr) {
        let link = self.link_to(service);
        tc(&["qdisc", "del", "dev", &link.outer, "root"]);
        tc(&["-n", &self.name, "qdisc", "del", "dev", &link.inner, "root"]);
    }

    fn link_to(&self, service: SocketAddr) -> &Link {
        self.links
            .iter()
            .find(|link| link.service == service)
            .unwrap_or_else(|| panic!("host {} has no link to {service}", self.name))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the root end removes the pair at once, even while a process still holds
        // the namespace; no panics here, a test may be unwinding already.
        for link in &self.links {
            let _ = run_quietly(&tool("ip"), &["link", "del", &link.outer]);
        }
        let _ = run_quietly(&tool("ip"), &["netns", "del", &self.name]);
    }
}

/// Removes namespaces and links left by test processes that no longer run (killed before
/// their hosts were dropped): their addresses would otherwise shadow a later run's.
fn sweep_dead_runs() {
    for line in ip(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if left_by_dead_process(name, NAMESPACE_PREFIX, '-') {
            let _ = run_quietly(&tool("ip"), &["netns", "del", name]);
        }
    }
    for line in ip(&["-o", "link", "show", "type", "veth"]).lines() {
        // `12: mg4242x0@if2: <BROADCAST,…`
        let name = line.split(": ").nth(1).unwrap_or_default();
        let name = name.split('@').next().unwrap_or_default();
        if left_by_dead_process(name, LINK_PREFIX, 'x') {
            let _ = run_quietly(&tool("ip"), &["link", "del", name]);
        }
    }
}

/// Whether `name` is `<prefix><pid><end>…` of a process that is gone.
fn left_by_dead_process(name: &str, prefix: &str, end: char) -> bool {
    let Some(pid) = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.split(end).next())
    else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !Path::new("/proc").join(pid).exists()
}

/// A locally administered MAC address that spells `address`, so that each link's differs.
fn mac(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

fn ip(args: &[&str]) -> String {
    run(&tool("ip"), args)
}

fn tc(args: &[&str]) -> String {
    run(&tool("tc"), args)
}

fn run(program: &Path, args: &[&str]) -> String {
    match run_quietly(program, args) {
        Ok(stdout) => stdout,
        Err(error) => panic!("{} {}: {error}", program.display(), args.join(" ")),
    }
}

fn run_quietly(program: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// An iproute2 program, on `PATH` or where distributions put it (often not on a test's
/// `PATH`): a test that needs it fails when it is nowhere.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` (iproute2) is needed for network namespaces"))
}
