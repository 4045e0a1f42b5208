//! Configuration: defaults, overlaid by an optional TOML file, overlaid by environment variables.
//!
//! - `settings`: every setting, grouped by section, with its default;
//! - `load`: defaults ← TOML file ← environment (`env`: the `MODELGATE_*` names and the
//!   compatibility names of the Redis location, normalized by `redis_url`);
//! - `validate`: the checks a loaded configuration must pass;
//! - `redact`: the configuration as operators may see it.

mod env;
mod error;
mod load;
pub mod redact;
pub mod redis_url;
mod settings;
mod validate;

pub use env::{documented_env_vars, EnvVar};
pub use error::ConfigError;
pub use settings::*;
