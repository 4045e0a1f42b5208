//! The first thing a new user reads when the server starts: how to get a key and call Model 21.
//!
//! The user runs the key command in another terminal, usually in another folder and without
//! the server's environment. So the command names the running executable by its absolute path
//! and carries what locates the store (the absolute store URL, the config file); a relative
//! SQLite path would otherwise silently open a second, empty store there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{redact, Config};
use crate::store::StoreLocation;

/// Where this server's keys come from, decided before the server starts.
#[derive(Debug)]
enum KeySource {
    /// A remote auth service validates keys (its URL, password hidden).
    Remote(String),
    /// The local store; `modelgate keys create` reaches it with `command`, after `export`
    /// (what to set first, when it holds a secret that must not be printed).
    Local {
        command: String,
        export: Option<String>,
    },
    /// `sqlite::memory:`: no other process can reach it.
    Memory,
}

#[derive(Debug)]
pub struct Welcome {
    keys: KeySource,
}

impl Welcome {
    /// `config_file` is the server's `--config`/`MODELGATE_CONFIG`, if any.
    pub fn new(config: &Config, config_file: Option<&Path>) -> Welcome {
        // Without a readable executable path, the name on PATH is the best guess left.
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("modelgate"));
        let url_from_env = std::env::var_os("MODELGATE_DATABASE_URL").is_some();
        Welcome::of(config, config_file, &exe, url_from_env)
    }

    fn of(config: &Config, config_file: Option<&Path>, exe: &Path, url_from_env: bool) -> Welcome {
        if let Some(url) = &config.auth.service_url {
            return Welcome {
                keys: KeySource::Remote(redact::url_secrets(url)),
            };
        }
        let store = StoreLocation::of(&config.database.url);
        let mut words = Vec::new();
        let mut export = None;
        match &store {
            StoreLocation::SqliteMemory => {
                return Welcome {
                    keys: KeySource::Memory,
                }
            }
            StoreLocation::Server {
                url,
                has_password: true,
            } => {
                // The password is not printed; the config file carries it when it came from
                // there, otherwise the user sets the variable as the server has it.
                if url_from_env || config_file.is_none() {
                    export = Some(format!(
                        "First set MODELGATE_DATABASE_URL as this server has it ({url}; *** \
                         stands for its password, not shown here)."
                    ));
                }
            }
            _ => words.push(format!(
                "MODELGATE_DATABASE_URL={}",
                quoted(&store.to_string())
            )),
        }
        words.push(quoted(&exe.display().to_string()));
        if let Some(file) = config_file {
            let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
            words.push(format!("--config {}", quoted(&file.display().to_string())));
        }
        Welcome {
            keys: KeySource::Local {
                command: words.join(" "),
                export,
            },
        }
    }

    pub fn render(&self, addr: SocketAddr, no_keys_yet: bool) -> String {
        let (keys, replace) = match &self.keys {
            KeySource::Remote(url) => (
                format!(
                    "Keys are validated by the auth service at {url} (auth.service_url): use a \
                     key it issued. `modelgate keys` manages only the local store, which this \
                     server does not use for keys.\n\n"
                ),
                "your key",
            ),
            KeySource::Memory => (
                "The key store is in memory (sqlite::memory:): no other process can reach it, \
                 so `modelgate keys create` cannot add keys to this server. Set \
                 MODELGATE_DATABASE_URL to a file or a server.\n\n"
                    .to_string(),
                "a key",
            ),
            KeySource::Local { command, export } => {
                let export = export
                    .as_deref()
                    .map(|e| format!("{e}\n\n"))
                    .unwrap_or_default();
                let create = if no_keys_yet {
                    format!(
                        "No API key exists yet. In another terminal, from any folder, create \
                         one:\n\n{export}    {command} keys create --name my-first-key\n\n"
                    )
                } else {
                    format!(
                        "Create another key (from any folder) with:\n\n{export}    {command} \
                         keys create --name NAME\n\n"
                    )
                };
                (create, "the key printed once by `keys create`")
            }
        };
        format!(
            "modelgate is serving on http://{addr}\n\n{keys}\
             Then call Model 21 (replace $KEY with {replace}):\n\n    \
             curl -s http://{addr}/api/v1/models/21/predict \\\n      \
             -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n      \
             -d '{{\"inputs\": {{\"company_size\": 250, \"engagement_score\": 85, \"demo_requested\": true, \
             \"budget_confirmed\": true, \"industry\": \"Technology\", \"decision_timeline\": \"Q1 2025\", \
             \"title\": \"VP of Sales\"}}}}'\n"
        )
    }
}

/// A shell word for `text` (quoted only when it needs to be).
fn quoted(text: &str) -> String {
    // Only a NUL byte cannot be quoted; paths and URLs have none.
    shlex::try_quote(text)
        .map(|word| word.into_owned())
        .unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banner(config: &Config, file: Option<&Path>, from_env: bool) -> String {
        Welcome::of(config, file, Path::new("/opt/mg/modelgate"), from_env)
            .render("127.0.0.1:8080".parse().expect("addr"), true)
    }

    #[test]
    fn relative_sqlite_store_is_named_absolutely() {
        let config = Config::default();
        let text = banner(&config, Some(Path::new("conf/mg.toml")), false);
        let cwd = std::env::current_dir().expect("cwd");
        let expected = format!(
            "MODELGATE_DATABASE_URL=sqlite://{}/data/modelgate.db /opt/mg/modelgate --config {}/conf/mg.toml keys create --name my-first-key",
            cwd.display(),
            cwd.display()
        );
        assert!(text.contains(&expected), "{text}");
        assert!(text.contains("No API key exists yet"), "{text}");
    }

    #[test]
    fn a_database_password_is_never_printed() {
        let mut config = Config::default();
        config.database.url = "postgres://app:s3cret@db/main".into();
        for (file, from_env) in [(None, true), (Some(Path::new("/etc/mg.toml")), true)] {
            let text = banner(&config, file, from_env);
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains("postgres://app:***@db/main"), "{text}");
            assert!(text.contains("First set MODELGATE_DATABASE_URL"), "{text}");
        }
        let from_file = banner(&config, Some(Path::new("/etc/mg.toml")), false);
        assert!(!from_file.contains("s3cret") && !from_file.contains("First set"));
        assert!(from_file.contains("/opt/mg/modelgate --config /etc/mg.toml keys create"));
    }

    #[test]
    fn remote_auth_points_at_the_service() {
        let mut config = Config::default();
        config.auth.service_url = Some("https://svc:pw@auth.internal".into());
        let text = banner(&config, None, false);
        assert!(text.contains("https://svc:***@auth.internal"), "{text}");
        assert!(!text.contains("No API key exists yet"), "{text}");
        assert!(!text.contains("pw@"), "{text}");
    }
}
