//! modelgate: a model-serving API that a sick dependency cannot take down.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod events;
pub mod grpc;
pub mod health;
pub mod http;
pub mod metrics;
pub mod models;
pub mod ratelimit;
pub mod redis;
pub mod resilience;
pub mod store;
pub mod telemetry;
pub mod v2;
pub mod vocabulary;

/// mimalloc instead of glibc's allocator: requests allocate and free on different worker
/// threads, and glibc spent a third of the CPU in malloc and free at load (docs/benchmarks.md:
/// predict throughput doubled). Set here, not in `main.rs`, so tests and benches measure the
/// binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
