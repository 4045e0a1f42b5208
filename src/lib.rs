//! modelgate: a model-serving API that a sick dependency cannot take down.

pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod events;
pub mod health;
pub mod http;
pub mod metrics;
pub mod models;
pub mod ratelimit;
pub mod resilience;
pub mod store;
pub mod telemetry;
