//! `modelgate probe`: synthetic end-to-end checks of a running server, from the outside.
//!
//! Each check asks `/health` what the server thinks of itself and makes one real prediction
//! with a valid input, then prints one line. It needs no configuration file and no database:
//! only the server's URL and a key with the `predict` scope.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use clap::Args;
use serde_json::{json, Map, Value};

use super::Failure;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long, value_parser = parse_base_url)]
    url: url::Url,
    /// API key with the predict scope. Never printed.
    #[arg(long, env = "MODELGATE_PROBE_KEY", hide_env_values = true)]
    key: Key,
    /// Model to predict with; its example input comes from its info endpoint.
    #[arg(long, default_value = "21")]
    model: String,
    /// Time between the starts of two checks.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    interval: Duration,
    /// Stop after this many checks (default: until Ctrl-C).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// A prediction slower than this fails the check.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    max_latency: Duration,
    /// Longest one request may take.
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    timeout: Duration,
    /// One JSON object per check instead of text.
    #[arg(long)]
    json: bool,
}

/// The API key; its `Debug` shows nothing, so it cannot leak through a debug print.
#[derive(Clone)]
struct Key(String);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(***)")
    }
}

impl std::str::FromStr for Key {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim();
        if key.is_empty() {
            Err("expected a non-empty API key")
        } else {
            Ok(Key(key.to_string()))
        }
    }
}

fn parse_base_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("expected an http(s) URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".into());
    }
    Ok(url)
}

fn positive_duration(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("expected a duration above zero, such as 10s".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a check failed, in the words printed after `FAIL`.
#[derive(Debug, Clone, PartialEq)]
enum Reason {
    /// The server answered with a problem (its `code`) or an unexpected status.
    Answer {
        status: u16,
        code: Option<String>,
    },
    Timeout(Duration),
    Refused,
    Unreachable(String),
    TooSlow {
        took: Duration,
        max: Duration,
    },
    /// The model's info did not describe inputs a probe can fill in.
    NoExample,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Answer {
                code: Some(code), ..
            } => f.write_str(code),
            Reason::Answer { status, code: None } => write!(f, "HTTP {status}"),
            Reason::Timeout(after) => {
                write!(f, "timeout after {}", humantime::format_duration(*after))
            }
            Reason::Refused => f.write_str("connection refused"),
            Reason::Unreachable(why) => write!(f, "unreachable: {why}"),
            Reason::TooSlow { took, max } => write!(
                f,
                "latency {}ms over {}",
                took.as_millis(),
                humantime::format_duration(*max)
            ),
            Reason::NoExample => f.write_str("model info lists no inputs to build an example from"),
        }
    }
}

/// One finished check.
#[derive(Debug)]
struct Check {
    at: chrono::DateTime<Utc>,
    predict_status: Option<u16>,
    latency: Option<Duration>,
    health: String,
    failure: Option<Reason>,
}

impl Check {
    fn line(&self, json: bool) -> String {
        let timestamp = self.at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let latency_ms = self.latency.map(|d| (d.as_secs_f64() * 1e4).round() / 10.0);
        if json {
            return json!({
                "timestamp": timestamp,
                "predict_status": self.predict_status,
                "latency_ms": latency_ms,
                "health": self.health,
                "ok": self.failure.is_none(),
                "reason": self.failure.as_ref().map(ToString::to_string),
            })
            .to_string();
        }
        let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let verdict = match &self.failure {
            None => "ok".to_string(),
            Some(reason) => format!("FAIL {reason}"),
        };
        format!(
            "{timestamp}  predict={}  latency_ms={}  health={}  {verdict}",
            show(self.predict_status.map(|s| s.to_string())),
            show(latency_ms.map(|l| format!("{l:.1}"))),
            self.health,
        )
    }
}

struct Prober {
    client: reqwest::Client,
    args: ProbeArgs,
    /// Built from the model's info on the first check that can fetch it.
    example: Option<Value>,
}

impl Prober {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.args.url.as_str().trim_end_matches('/'))
    }

    fn reason(&self, err: &reqwest::Error) -> Reason {
        if err.is_timeout() {
            return Reason::Timeout(self.args.timeout);
        }
        let mut source: Option<&dyn std::error::Error> = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return Reason::Refused;
                }
            }
            source = e.source();
        }
        // The innermost cause says most (e.g. "dns error"); the URL is the user's own.
        let mut innermost: &dyn std::error::Error = err;
        while let Some(next) = innermost.source() {
            innermost = next;
        }
        Reason::Unreachable(innermost.to_string())
    }

    async fn health(&self) -> String {
        match self.client.get(self.endpoint("/health")).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.json::<Value>().await {
                    Ok(body) => body["status"]
                        .as_str()
                        .map_or_else(|| format!("http_{status}"), str::to_string),
                    Err(_) => format!("http_{status}"),
                }
            }
            Err(err) if err.is_timeout() => "timeout".into(),
            Err(_) => "unreachable".into(),
        }
    }

    /// The example input, fetching the model's info when it is not known yet.
    async fn example(&mut self) -> Result<Value, Reason> {
        if let Some(example) = &self.example {
            return Ok(example.clone());
        }
        let path = format!("/api/v1/models/{}/info", self.args.model);
        let response = self
            .client
            .get(self.endpoint(&path))
            .bearer_auth(&self.args.key.0)
            .send()
            .await
            .map_err(|e| self.reason(&e))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(problem_reason(status, &body));
        }
        let example = example_inputs(&body).ok_or(Reason::NoExample)?;
        self.example = Some(example.clone());
        Ok(example)
    }

    /// The prediction: its status and latency, or why it could not be made.
    async fn predict(&mut self) -> (Option<u16>, Option<Duration>, Option<Reason>) {
        let inputs = match self.example().await {
            Ok(inputs) => inputs,
            Err(reason) => return (None, None, Some(reason)),
        };
        let path = format!("/api/v1/models/{}/predict", self.args.model);
        let started = Instant::now();
        let sent = self
            .client
            .post(self.endpoint(&path))
            .bearer_auth(&self.args.key.0)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return (None, None, Some(self.reason(&err))),
        };
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let took = started.elapsed();
        let failure = if status != 200 {
            Some(problem_reason(status, &body))
        } else if took > self.args.max_latency {
            Some(Reason::TooSlow {
                took,
                max: self.args.max_latency,
            })
        } else {
            None
        };
        (Some(status), Some(took), failure)
    }

    async fn check(&mut self) -> Check {
        let at = Utc::now();
        let health = self.health().await;
        let (predict_status, latency, failure) = self.predict().await;
        Check {
            at,
            predict_status,
            latency,
            health,
            failure,
        }
    }
}

fn problem_reason(status: u16, body: &Value) -> Reason {
    Reason::Answer {
        status,
        code: body["code"].as_str().map(str::to_string),
    }
}

/// A valid input row from a model's info: its `example` when it has one, otherwise each
/// input's default, or a value its type and encoder accept.
fn example_inputs(info: &Value) -> Option<Value> {
    if let Some(example) = info.get("example").filter(|e| e.is_object()) {
        return Some(example.clone());
    }
    let inputs = info["inputs"].as_array().filter(|i| !i.is_empty())?;
    let mut row = Map::new();
    for input in inputs {
        let name = input["name"].as_str()?;
        let value = match input.get("default").filter(|d| !d.is_null()) {
            Some(default) => default.clone(),
            None => match input["type"].as_str()? {
                "number" => json!(1),
                "boolean" => json!(false),
                _ => json!(string_example(&input["encoder"])),
            },
        };
        row.insert(name.to_string(), value);
    }
    Some(Value::Object(row))
}

/// A string the encoder knows (its first category or keyword), so the example is realistic.
fn string_example(encoder: &Value) -> String {
    let category = encoder["map"]
        .as_object()
        .and_then(|m| m.keys().next().cloned());
    let keyword = encoder["rules"][0]["words"][0].as_str().map(str::to_string);
    category.or(keyword).unwrap_or_else(|| "example".into())
}

pub async fn run(args: ProbeArgs) -> Result<(), Failure> {
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .connect_timeout(args.timeout)
        .user_agent(concat!("modelgate-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::runtime(format!("cannot build the HTTP client: {e}")))?;
    let (count, interval, json) = (args.count, args.interval, args.json);
    let mut prober = Prober {
        client,
        args,
        example: None,
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let (mut done, mut failed) = (0u64, 0u64);
    while count.is_none_or(|n| done < n) {
        let check = tokio::select! {
            _ = &mut ctrl_c => break,
            check = async {
                ticks.tick().await;
                prober.check().await
            } => check,
        };
        done += 1;
        failed += u64::from(check.failure.is_some());
        // A closed stdout must not stop the checks or change their verdict.
        let _ = writeln!(std::io::stdout(), "{}", check.line(json));
    }
    if failed > 0 {
        Err(Failure::runtime(format!(
            "{failed} of {done} checks failed"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model21_info() -> Value {
        json!({
            "id": "21",
            "inputs": [
                {"name": "company_size", "type": "number", "default": 0},
                {"name": "demo_requested", "type": "boolean", "default": false},
                {"name": "industry", "type": "string",
                 "encoder": {"kind": "categorical", "fallback": 1.0, "map": {"finance": 3.0, "technology": 3.0}}},
                {"name": "title", "type": "string",
                 "encoder": {"kind": "keywords", "fallback": 0.0, "rules": [{"words": ["vp", "vice president"], "value": 3.0}]}},
                {"name": "score", "type": "number"},
                {"name": "note", "type": "string"},
            ]
        })
    }

    #[test]
    fn example_uses_defaults_then_what_the_encoders_know() {
        let example = example_inputs(&model21_info()).expect("example");
        assert_eq!(
            example,
            json!({"company_size": 0, "demo_requested": false, "industry": "finance",
                   "title": "vp", "score": 1, "note": "example"})
        );
    }

    #[test]
    fn a_published_example_wins() {
        let mut info = model21_info();
        info["example"] = json!({"company_size": 250});
        assert_eq!(example_inputs(&info), Some(json!({"company_size": 250})));
    }

    #[test]
    fn info_without_inputs_has_no_example() {
        assert_eq!(example_inputs(&json!({"id": "x"})), None);
        assert_eq!(example_inputs(&json!({"inputs": []})), None);
    }

    #[test]
    fn lines_name_the_reason() {
        let check = Check {
            at: Utc::now(),
            predict_status: Some(401),
            latency: Some(Duration::from_micros(1234)),
            health: "healthy".into(),
            failure: Some(problem_reason(401, &json!({"code": "invalid_api_key"}))),
        };
        let line = check.line(false);
        assert!(
            line.ends_with("predict=401  latency_ms=1.2  health=healthy  FAIL invalid_api_key"),
            "{line}"
        );
        let parsed: Value = serde_json::from_str(&check.line(true)).expect("json line");
        assert_eq!(parsed["ok"], false);
        assert_eq!(parsed["reason"], "invalid_api_key");
        assert_eq!(parsed["latency_ms"], 1.2);
        let slow = Reason::TooSlow {
            took: Duration::from_millis(1500),
            max: Duration::from_secs(1),
        };
        assert_eq!(slow.to_string(), "latency 1500ms over 1s");
        assert_eq!(problem_reason(502, &Value::Null).to_string(), "HTTP 502");
    }

    #[test]
    fn keys_do_not_show_in_debug_output() {
        let key: Key = "mg_secret".parse().expect("key");
        assert!(!format!("{key:?}").contains("mg_secret"));
        assert!("  ".parse::<Key>().is_err());
    }

    #[test]
    fn urls_and_durations_are_checked() {
        assert!(parse_base_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_base_url("ftp://host").is_err());
        assert!(parse_base_url("localhost:8080").is_err());
        assert!(positive_duration("0s").is_err());
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
    }
}
