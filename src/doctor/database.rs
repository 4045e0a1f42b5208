//! The key store: SQLite (file, then a query) or PostgreSQL (dns, tcp, tls when `sslmode`
//! asks for it, login, `SELECT 1`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::net::{self, Connected};
use super::tls::{self, Asked, Roots};
use super::{scrub, Check, DependencyReport};
use crate::config::{redact, DatabaseConfig};

/// PostgreSQL's SSLRequest: length 8, then the magic code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

pub(crate) async fn check(config: &DatabaseConfig, timeout: Duration) -> DependencyReport {
    let url = config.url.as_str();
    if config.is_sqlite() {
        let mut check = Check::new("database", true, url, vec!["file", "roundtrip"], timeout);
        sqlite(&mut check, url).await;
        return check.finish();
    }
    let password = redact::url_password(url);
    let options = match PgConnectOptions::from_str(url) {
        Ok(options) => options,
        Err(e) => {
            let mut check = Check::new("database", true, url, Vec::new(), timeout);
            let cause = format!("the database URL is not usable: {e}");
            check.fail("url", None, scrub(&cause, password.as_deref()));
            return check.finish();
        }
    };
    let mut steps = match options.get_socket() {
        Some(_) => vec!["socket"],
        None => vec!["dns", "tcp"],
    };
    if asks_for_tls(options.get_ssl_mode()) {
        steps.push("tls");
    }
    steps.extend(["auth", "roundtrip"]);
    let mut check = Check::new("database", true, url, steps, timeout);
    postgres(&mut check, url, options, password.as_deref()).await;
    check.finish()
}

async fn sqlite(check: &mut Check, url: &str) {
    let options = match SqliteConnectOptions::from_str(url) {
        Ok(options) => options.read_only(true).create_if_missing(false),
        Err(e) => return check.fail("file", None, format!("the SQLite URL is not usable: {e}")),
    };
    let path = options.get_filename().to_path_buf();
    if path.as_os_str() == ":memory:" {
        check.pass(
            "file",
            "in-memory database: nothing persists across restarts",
        );
    } else {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                check.pass("file", format!("{} ({} bytes)", path.display(), meta.len()))
            }
            Ok(_) => {
                let cause = format!("{} exists but is not a file", path.display());
                return check.fail("file", None, cause);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                check.pass(
                    "file",
                    format!(
                        "{} does not exist yet: `modelgate serve` creates it",
                        path.display()
                    ),
                );
                return check.pass("roundtrip", "nothing to query until the file exists");
            }
            Err(e) => {
                let cause = format!("cannot read {}: {e}", path.display());
                return check.fail("file", None, cause);
            }
        }
    }
    let silence = "SQLite did not answer: the file is locked or on a hung file system";
    check
        .run("roundtrip", silence, select_one_sqlite(options))
        .await;
}

async fn select_one_sqlite(options: SqliteConnectOptions) -> Result<((), String), String> {
    let mut conn = options
        .connect()
        .await
        .map_err(|e| format!("SQLite cannot open the file: {e}"))?;
    let result = sqlx::query("SELECT 1").execute(&mut conn).await;
    let _ = conn.close().await;
    result
        .map(|_| ((), "SELECT 1 answered".into()))
        .map_err(|e| format!("SELECT 1 failed: {e}"))
}

async fn postgres(check: &mut Check, url: &str, options: PgConnectOptions, password: Option<&str>) {
    let host = options.get_host().to_string();
    if let Some(socket) = options.get_socket() {
        // The login below connects to the socket itself; this step names a missing one.
        let path = socket.join(format!(".s.PGSQL.{}", options.get_port()));
        if path.exists() {
            check.pass("socket", format!("{} exists", path.display()));
        } else {
            let cause = format!(
                "no socket at {}: PostgreSQL is not running here, or the path is wrong",
                path.display()
            );
            return check.fail("socket", None, cause);
        }
    } else {
        let Some(Connected { stream, .. }) =
            net::dns_and_tcp(check, &host, options.get_port()).await
        else {
            return;
        };
        if asks_for_tls(options.get_ssl_mode()) {
            let silence = "connected, but PostgreSQL did not answer the TLS request";
            let negotiated = negotiate_tls(stream, &host, url, options.get_ssl_mode());
            if check.run("tls", silence, negotiated).await.is_none() {
                return;
            }
        }
    }
    let user = options.get_username().to_string();
    let database = options.get_database().unwrap_or(&user).to_string();
    let silence = "connected, but PostgreSQL did not complete the login: packets dropped after \
                   connect, or the server is overloaded";
    let login = async {
        let conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(|e| scrub(&login_error(&e, &user, &database), password))?;
        Ok((conn, format!("logged in as {user} to database {database}")))
    };
    let Some(mut conn) = check.run("auth", silence, login).await else {
        return;
    };
    let silence = "logged in, but SELECT 1 got no answer: the server is overloaded or locked";
    let select = async {
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map(|_| ((), "SELECT 1 answered".to_string()))
            .map_err(|e| scrub(&format!("SELECT 1 failed: {e}"), password))
    };
    check.run("roundtrip", silence, select).await;
}

/// Asks for TLS as the URL's `sslmode` requires, then shakes hands with the matching checks.
async fn negotiate_tls(
    mut stream: TcpStream,
    host: &str,
    url: &str,
    mode: PgSslMode,
) -> Result<((), String), String> {
    let by = format!("URL asks for TLS (sslmode={})", ssl_mode_name(mode));
    let io = |e: std::io::Error| format!("the TLS request failed: {e}");
    stream.write_all(&SSL_REQUEST).await.map_err(io)?;
    let mut answer = [0u8; 1];
    match stream.read(&mut answer).await.map_err(io)? {
        0 => {
            return Err(
                "the server closed the connection at the TLS request: is it PostgreSQL?".into(),
            )
        }
        _ if answer[0] == b'N' => {
            return Err(format!(
                "TLS mismatch: {by}, server does not offer TLS (ssl = off): use sslmode=prefer \
                 or disable, or turn ssl on in the server"
            ))
        }
        _ if answer[0] != b'S' => {
            return Err("the server did not answer the TLS request as PostgreSQL does".into())
        }
        _ => {}
    }
    // `require` encrypts without checking the certificate, as libpq does.
    let roots = match (mode, root_cert(url)) {
        (PgSslMode::Require, _) => Roots::Insecure,
        (_, Some(path)) => Roots::Pem(
            std::fs::read(&path).map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?,
        ),
        (_, None) => Roots::Native,
    };
    let asked = Asked {
        by: &by,
        ca_hint: "set sslrootcert=PATH in the database URL to the CA that signed it",
    };
    let (_, detail) = tls::handshake(stream, host, &roots, &asked).await?;
    Ok(((), detail))
}

/// The modes that fail rather than fall back to plaintext (`prefer` and `allow` fall back).
fn asks_for_tls(mode: PgSslMode) -> bool {
    matches!(
        mode,
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    )
}

fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

fn root_cert(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(key, _)| key == "sslrootcert" || key == "ssl-root-cert")
        .map(|(_, value)| value.into_owned())
}

/// The usual cause behind a failed PostgreSQL login, by SQLSTATE.
fn login_error(e: &sqlx::Error, user: &str, database: &str) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let message = db.message();
            match db.code().as_deref() {
                Some("28P01") => format!("wrong password for user {user} (SQLSTATE 28P01)"),
                Some("28000") if message.contains("no encryption") => format!(
                    "the server requires TLS for this client (pg_hba hostssl): add \
                     sslmode=require ({message})"
                ),
                Some("28000") => format!(
                    "the server refuses this login: unknown role {user}, or no pg_hba.conf \
                     entry allows it ({message}, SQLSTATE 28000)"
                ),
                Some("3D000") => {
                    format!("database {database} does not exist on this server (SQLSTATE 3D000)")
                }
                Some("53300") => "the server has no free connection slots (SQLSTATE 53300): \
                                  too many clients"
                    .into(),
                Some("57P03") => "the server is starting up, shutting down or in recovery \
                                  (SQLSTATE 57P03)"
                    .into(),
                Some(code) => format!("login refused: {message} (SQLSTATE {code})"),
                None => format!("login refused: {message}"),
            }
        }
        sqlx::Error::Tls(_) => "this build of modelgate cannot speak TLS to PostgreSQL (sqlx \
                                built without TLS): use sslmode=prefer or disable"
            .into(),
        sqlx::Error::Io(io) => format!("the connection failed during login: {io}"),
        other => format!("login failed: {other}"),
    }
}
