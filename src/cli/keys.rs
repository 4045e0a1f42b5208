//! `modelgate keys create|list|topup|revoke`.

use std::io::Write;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::output::{escape_controls, outln};
use super::Failure;
use crate::auth::{
    issue_key, revoke_shared_now, NewKey, NewKeyError, RateLimit, Scope, MAX_CREDITS,
};
use crate::config::Config;
use crate::redis::{ExchangeError, Redis};
use crate::store::{ApiKeyRecord, KeyList, Revocation, Store, StoreLocation};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        /// A name that tells people what the key is for.
        #[arg(long)]
        name: String,
        /// predict (default) or admin; repeat for several.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<Scope>,
        /// Requests allowed per key: N/s, N/m or N/h.
        #[arg(long, value_name = "N/s|m|h")]
        rate_limit: Option<RateLimit>,
        /// Lifetime, e.g. 30d or 12h.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        expires: Option<Duration>,
        /// Make the key prepaid: each prediction takes one credit; at zero, 402.
        #[arg(long, value_name = "N")]
        credits: Option<i64>,
        /// Limit the key to these model ids (comma-separated and/or repeated); without it,
        /// every model. Other models answer 403 model_not_allowed, whether or not they exist.
        #[arg(long, value_name = "ID,...", value_delimiter = ',')]
        models: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add credits to a prepaid key.
    Topup {
        id: String,
        #[arg(value_name = "N", value_parser = clap::value_parser!(i64).range(1..=MAX_CREDITS))]
        credits: i64,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; a running server sharing this store stops accepting it.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// The raw store, deliberately without the server's `database` guard: a one-shot command is
/// not on a request path, a breaker learns nothing from a single call, and the request-path
/// timeout (`database.timeout`, 500 ms) would fail `keys list` on a large table. The pool's
/// `database.connect_timeout` still bounds the wait for a connection.
///
/// It says on stderr which store it opened (stdout stays the command's output): run from
/// another folder than the server, a relative SQLite path is another, new store.
async fn open(config: &Config) -> Result<Store, Failure> {
    let location = StoreLocation::of(&config.database.url);
    let existed = location.file().is_none_or(|file| file.exists());
    let store = Store::open(&config.database)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let note = if existed {
        String::new()
    } else {
        " (did not exist, created empty: if a server should see these keys, run from its \
         folder or set MODELGATE_DATABASE_URL / --config as it has them)"
            .into()
    };
    // Best effort: a closed stderr must not stop the command.
    let _ = writeln!(std::io::stderr(), "store: {location}{note}");
    Ok(store)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
    outln!("{text}")
}

fn key_line(key: &ApiKeyRecord) -> String {
    let scopes: Vec<String> = key.scopes.iter().map(|s| s.to_string()).collect();
    let state = match (key.revoked_at, key.expires_at) {
        (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d")),
        (None, Some(at)) => format!("expires {}", at.format("%Y-%m-%d")),
        (None, None) => "active".into(),
    };
    let shown = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    // Last, since a list of models has no fixed width; `all` rather than `-`, which elsewhere
    // reads "none".
    let models = key.models.as_ref().map_or_else(
        || "all".to_string(),
        |models| escape_controls(&models.join(",")).into_owned(),
    );
    format!(
        "{:<36}  {:<11}  {:<20}  {:<14}  {:<8}  {:<8}  {:<18}  {}",
        key.id,
        key.prefix,
        escape_controls(&key.name),
        scopes.join(","),
        shown(key.rate_limit.map(|r| r.to_string())),
        shown(key.credits.map(|c| c.to_string())),
        state,
        models
    )
}

pub async fn run(command: KeysCommand, config: &Config) -> Result<(), Failure> {
    let store = open(config).await?;
    let result = match command {
        KeysCommand::Create {
            name,
            scopes,
            rate_limit,
            expires,
            credits,
            models,
            json,
        } => {
            create(
                &store,
                NewKey {
                    name,
                    scopes,
                    rate_limit,
                    expires_in: expires,
                    credits,
                    models: (!models.is_empty()).then_some(models),
                },
                json,
            )
            .await
        }
        KeysCommand::List { json } => list(&store, json).await,
        KeysCommand::Topup { id, credits, json } => topup(&store, &id, credits, json).await,
        KeysCommand::Revoke { id, json } => revoke(&store, config, &id, json).await,
    };
    store.close().await;
    result
}

async fn create(store: &Store, new: NewKey, as_json: bool) -> Result<(), Failure> {
    let issued = issue_key(store, new)
        .await
        .map_err(|e| match (e.field(), e) {
            (_, NewKeyError::Store(err)) => Failure::runtime(err.to_string()),
            (field, invalid) => Failure::usage(format!(
                "--{}: {invalid}",
                field.unwrap_or("name").replace("expires_in", "expires")
            )),
        })?;
    let record = &issued.record;
    if as_json {
        print_json(&json!({
            "id": record.id,
            "key": issued.key,
            "prefix": record.prefix,
            "name": record.name,
            "scopes": record.scopes,
            "rate_limit": record.rate_limit,
            "expires_at": record.expires_at,
            "credits": record.credits,
            "models": record.models,
        }))
    } else {
        outln!("Created key {} ({}).", record.id, record.name)?;
        outln!("\n    {}\n", issued.key)?;
        outln!("This is the only time the key is shown; store it now. It is kept only as a hash.")
    }
}

async fn list(store: &Store, as_json: bool) -> Result<(), Failure> {
    let keys = store
        .list_keys()
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    if as_json {
        return print_json(&KeyList { keys });
    }
    outln!(
        "{:<36}  {:<11}  {:<20}  {:<14}  {:<8}  {:<8}  {:<18}  MODELS",
        "ID",
        "PREFIX",
        "NAME",
        "SCOPES",
        "LIMIT",
        "CREDITS",
        "STATE"
    )?;
    for key in &keys {
        outln!("{}", key_line(key))?;
    }
    Ok(())
}

async fn topup(store: &Store, id: &str, credits: i64, as_json: bool) -> Result<(), Failure> {
    let balance = store
        .add_credits(id, credits)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?
        .ok_or_else(|| {
            Failure::usage(format!(
                "no prepaid key with id {id} (create prepaid keys with --credits)"
            ))
        })?;
    if as_json {
        print_json(&json!({ "id": id, "credits": balance }))
    } else {
        outln!("Key {id} now has {balance} credits.")
    }
}

async fn revoke(store: &Store, config: &Config, id: &str, as_json: bool) -> Result<(), Failure> {
    let outcome = store
        .revoke_key(id, chrono::Utc::now())
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let (already, key_hash) = match outcome {
        Revocation::NotFound => return Err(Failure::runtime(format!("no key with id {id}"))),
        Revocation::Revoked { key_hash } => (false, key_hash),
        Revocation::AlreadyRevoked { key_hash } => (true, key_hash),
    };
    if let Some(url) = &config.redis.url {
        // Servers sharing Redis forget the key at once; without it, within their cache TTL.
        let announced = match Redis::new(&config.redis, url, config.breaker.clone()) {
            Ok(redis) => revoke_shared_now(&redis, &key_hash)
                .await
                .map_err(|e| match e {
                    ExchangeError::Refused(kind) => {
                        format!("Redis refused the revocation ({kind:?})")
                    }
                    ExchangeError::TimedOut => e.to_string(),
                }),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = announced {
            let _ = writeln!(std::io::stderr(), "modelgate: warning: revoked in the store, but not announced on Redis ({reason}); servers stop accepting the key within auth.cache_ttl + auth.shared_ttl");
        }
    }
    if as_json {
        print_json(&json!({ "id": id, "revoked": true, "already_revoked": already }))
    } else if already {
        outln!("Key {id} was already revoked.")
    } else {
        outln!("Revoked key {id}. Servers that cached it stop accepting it within their cache TTL.")
    }
}
