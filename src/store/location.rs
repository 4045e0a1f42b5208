//! Where a database URL points, said so that it means the same from any folder.
//!
//! A relative SQLite path (the default `sqlite://data/modelgate.db`) resolves against the
//! current folder: `modelgate keys create` run from another folder than the server silently
//! makes a second, empty store, and the key it prints then gets 401. Commands name the store
//! by its absolute location so that the mistake shows.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::redact;

/// The path and query of an SQLite URL (`sqlite://data/x.db?mode=ro` → `data/x.db`,
/// `mode=ro`); `None` for another engine.
pub(super) fn sqlite_parts(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sqlite") {
        return None;
    }
    let path = rest.trim_start_matches("//");
    Some(path.split_once('?').unwrap_or((path, "")))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file, its path made absolute against the current folder.
    SqliteFile { path: PathBuf, query: String },
    /// `sqlite::memory:`: private to one process.
    SqliteMemory,
    /// A database server; its URL with the password replaced by `***`.
    Server { url: String, has_password: bool },
}

impl StoreLocation {
    pub fn of(url: &str) -> StoreLocation {
        match sqlite_parts(url) {
            Some((path, _)) if path.is_empty() || path == ":memory:" => StoreLocation::SqliteMemory,
            Some((path, query)) => StoreLocation::SqliteFile {
                // Fails only when the current folder cannot be read; SQLite then fails too.
                path: std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path)),
                query: query.to_string(),
            },
            None => StoreLocation::Server {
                url: redact::url_secrets(url),
                has_password: url::Url::parse(url).is_ok_and(|u| u.password().is_some()),
            },
        }
    }

    /// The SQLite file, if the store is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            StoreLocation::SqliteFile { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// A URL that selects the same store from any folder (a server's password shown as `***`).
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::SqliteFile { path, query } if query.is_empty() => {
                write!(f, "sqlite://{}", path.display())
            }
            StoreLocation::SqliteFile { path, query } => {
                write!(f, "sqlite://{}?{query}", path.display())
            }
            StoreLocation::SqliteMemory => f.write_str("sqlite::memory:"),
            StoreLocation::Server { url, .. } => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_become_absolute() {
        let cwd = std::env::current_dir().expect("cwd");
        let location = StoreLocation::of("sqlite://data/modelgate.db");
        assert_eq!(
            location.file(),
            Some(cwd.join("data/modelgate.db").as_path())
        );
        assert_eq!(
            location.to_string(),
            format!("sqlite://{}", cwd.join("data/modelgate.db").display())
        );
        assert_eq!(
            StoreLocation::of("sqlite:///srv/mg.db?mode=rwc").to_string(),
            "sqlite:///srv/mg.db?mode=rwc"
        );
    }

    #[test]
    fn memory_and_server_urls() {
        assert_eq!(
            StoreLocation::of("sqlite::memory:"),
            StoreLocation::SqliteMemory
        );
        assert_eq!(
            StoreLocation::of("postgres://app:pw@db:5432/main"),
            StoreLocation::Server {
                url: "postgres://app:***@db:5432/main".into(),
                has_password: true
            }
        );
        assert_eq!(
            StoreLocation::of("postgres://app@db/main").to_string(),
            "postgres://app@db/main"
        );
    }
}
