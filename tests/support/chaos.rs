//! A fault-injecting TCP proxy placed between modelgate and a real dependency.
//!
//! Faults apply to new and existing connections alike, as a firewall change would.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    None,
    /// Every chunk, each way, waits this long.
    Latency(Duration),
    /// Connections are accepted but nothing moves either way until the fault clears, as when
    /// a firewall drops packets (TCP then delivers the held bytes late, in order).
    Silent,
    /// Nothing listens: new connections are refused, existing ones reset.
    Refused,
    /// Connections are accepted and reset at once; existing ones are reset.
    Reset,
    /// New connections never complete their handshake (the accept queue is full, SYNs are
    /// dropped); existing ones stall as with `Silent`.
    ConnectHang,
}

pub struct ChaosProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bytes delivered to the dependency: proof that it is being used.
    upstream_bytes: Arc<AtomicU64>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    pub async fn start(target: SocketAddr) -> ChaosProxy {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target).await
    }

    /// [`ChaosProxy::start`] listening on `listen` (port 0: any free one), e.g. an address
    /// only another network namespace is routed to.
    pub async fn start_on(listen: SocketAddr, target: SocketAddr) -> ChaosProxy {
        let listener = TcpListener::bind(listen).await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let (fault, _) = watch::channel(Fault::None);
        let upstream_bytes = Arc::new(AtomicU64::new(0));
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            addr,
            target,
            fault.clone(),
            upstream_bytes.clone(),
        ));
        ChaosProxy {
            addr,
            fault,
            upstream_bytes,
            accept_loop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Alternates between `fault` and health every `period` until the returned task is
    /// aborted (then leaves the proxy healthy).
    pub fn flap(&self, fault: Fault, period: Duration) -> Flapping {
        let sender = self.fault.clone();
        let task = tokio::spawn(async move {
            let mut faulty = false;
            loop {
                faulty = !faulty;
                sender.send_replace(if faulty { fault } else { Fault::None });
                tokio::time::sleep(period).await;
            }
        });
        Flapping {
            task,
            fault: self.fault.clone(),
        }
    }

    /// Flaps silent ↔ healthy every 250 ms for 2 s while `round` sends requests (about every
    /// 30 ms; until it says `Break`); the proxy is healthy again when this returns.
    pub async fn while_flapping(&self, mut round: impl AsyncFnMut() -> ControlFlow<()>) {
        let flap = self.flap(Fault::Silent, Duration::from_millis(250));
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if round().await.is_break() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        flap.stop();
    }

    pub fn upstream_bytes(&self) -> u64 {
        self.upstream_bytes.load(Ordering::SeqCst)
    }
}

/// A running flap; stopping it leaves the proxy healthy.
pub struct Flapping {
    task: tokio::task::JoinHandle<()>,
    fault: watch::Sender<Fault>,
}

impl Flapping {
    pub fn stop(self) {
        self.task.abort();
        self.fault.send_replace(Fault::None);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    target: SocketAddr,
    fault: watch::Sender<Fault>,
    upstream_bytes: Arc<AtomicU64>,
) {
    let mut listener = Some(listener);
    let mut changes = fault.subscribe();
    loop {
        let current = *changes.borrow_and_update();
        if current == Fault::Refused {
            // Close the port so connects are refused; reopen it when the fault changes.
            listener = None;
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        }
        if current == Fault::ConnectHang {
            listener = None;
            let jammed = jam(addr).await;
            let changed = changes.changed().await;
            drop(jammed);
            if changed.is_err() {
                return;
            }
            continue;
        }
        let Some(active) = listener.as_ref() else {
            match TcpListener::bind(addr).await {
                Ok(bound) => listener = Some(bound),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            continue;
        };
        tokio::select! {
            accepted = active.accept() => {
                let Ok((client, _)) = accepted else { continue };
                tokio::spawn(serve(client, target, fault.subscribe(), upstream_bytes.clone()));
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// A listener on `addr` whose accept queue is full and never drained: further connects hang.
async fn jam(addr: SocketAddr) -> Option<(std::net::TcpListener, Vec<TcpStream>)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.set_reuse_address(true).ok()?;
    socket.bind(&addr.into()).ok()?;
    socket.listen(0).ok()?;
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_millis(50), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    Some((socket.into(), fillers))
}

fn reset(stream: TcpStream) {
    // Zero linger turns the close into an RST, as a crashed or firewalled peer would send.
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    client: TcpStream,
    target: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    upstream_bytes: Arc<AtomicU64>,
) {
    let initial = *fault.borrow_and_update();
    if matches!(initial, Fault::Reset | Fault::Refused) {
        reset(client);
        return;
    }
    let upstream = loop {
        let current = *fault.borrow();
        match current {
            Fault::None | Fault::Latency(_) => break TcpStream::connect(target).await.ok(),
            Fault::Reset | Fault::Refused => break None,
            Fault::Silent | Fault::ConnectHang => {
                // Hold the client without answering until the fault changes.
                if fault.changed().await.is_err() {
                    break None;
                }
            }
        }
    };
    let Some(upstream) = upstream else {
        reset(client);
        return;
    };
    let _ = client.set_zero_linger();
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let to_upstream = pump(
        client_read,
        upstream_write,
        fault.clone(),
        Some(upstream_bytes),
    );
    let to_client = pump(upstream_read, client_write, fault, None);
    // Either direction ending (close, error or a reset fault) ends the connection.
    tokio::select! {
        _ = to_upstream => {},
        _ = to_client => {},
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
    counter: Option<Arc<AtomicU64>>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = fault.changed() => {
                if changed.is_err() || matches!(*fault.borrow(), Fault::Reset | Fault::Refused) {
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let current = *fault.borrow_and_update();
            match current {
                Fault::Silent | Fault::ConnectHang => {
                    if fault.changed().await.is_err() {
                        return;
                    }
                }
                Fault::Reset | Fault::Refused => return,
                Fault::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Fault::None => break,
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        if let Some(counter) = &counter {
            counter.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
}

/// One `#[tokio::test]` per network fault, each running `$scenario(fault)`.
#[macro_export]
macro_rules! every_fault {
    ($scenario:ident) => {
        mod every_fault {
            use super::support::chaos::Fault;
            use std::time::Duration;

            #[tokio::test]
            async fn latency_2s() {
                super::$scenario(Fault::Latency(Duration::from_secs(2))).await;
            }

            #[tokio::test]
            async fn silent() {
                super::$scenario(Fault::Silent).await;
            }

            #[tokio::test]
            async fn refused() {
                super::$scenario(Fault::Refused).await;
            }

            #[tokio::test]
            async fn reset() {
                super::$scenario(Fault::Reset).await;
            }

            #[tokio::test]
            async fn connect_never_completes() {
                super::$scenario(Fault::ConnectHang).await;
            }
        }
    };
}
