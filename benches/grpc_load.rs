//! A closed-loop load generator for `inference.GRPCInferenceService/ModelInfer`: the gRPC
//! counterpart of `wrk` with bench/predict.lua, used by bench/protocols.sh. BENCH_CONNECTIONS
//! requests stay in flight over BENCH_CHANNELS HTTP/2 connections for BENCH_DURATION_S; at
//! the end it prints the same `RESULT {json}` line as predict.lua (bench/wrk_result.py reads it).
//!
//! Like wrk, which sends a fixed body and never parses the answer, the request is encoded once
//! and answers are not decoded in the loop (only the warm-up answers are, and checked), so the
//! generator's CPU, which shares the machine with the server, stays small.

use std::time::{Duration, Instant};

use modelgate::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use modelgate::grpc::proto::{InferTensorContents, ModelInferRequest, ModelInferResponse};
use prost::bytes::{Buf, BufMut, Bytes};
use prost::Message;
use serde_json::{json, Value};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

const USAGE: &str = "\
grpc_load: closed-loop load on inference.GRPCInferenceService/ModelInfer (bench/protocols.sh).
  BENCH_GRPC_ADDR    host:port (required; without it this prints this text and exits 0)
  BENCH_KEY          API key, sent as `authorization: Bearer KEY` (unless BENCH_NO_AUTH=1)
  BENCH_MODEL        model name (default 21)
  BENCH_ROWS         rows per request (default 1)
  BENCH_ROWS_FILE    JSON array of rows, cycled to fill BENCH_ROWS (default: one Model 21 row).
                     Objects: one tensor per field (numbers FP64, booleans BOOL, strings BYTES).
                     Arrays of numbers: one FP32 [N, width] tensor named BENCH_INPUT_NAME
                     (default input-0), as MLServer's scikit-learn runtime takes it.
  BENCH_OUTPUT       ask for this output only (e.g. predict_proba); default: the server's default
  BENCH_RAW=1        send raw_input_contents, as tritonclient does, instead of typed contents
  BENCH_DURATION_S   seconds of load (default 10)
  BENCH_CONNECTIONS  requests in flight (default 64)
  BENCH_CHANNELS     HTTP/2 connections they share (default 4)";

/// Sends pre-encoded request bytes and hands back the answer's bytes undecoded.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn env_num(name: &str, default: u64) -> u64 {
    let text = env_or(name, &default.to_string());
    text.parse()
        .unwrap_or_else(|_| panic!("{name}={text} is not a number"))
}

/// One input tensor of `n` rows: typed contents, or (raw) its bytes for raw_input_contents.
struct Column {
    name: String,
    datatype: &'static str,
    shape: Vec<i64>,
    contents: InferTensorContents,
    raw: Vec<u8>,
}

/// Model 21 rows as objects: one column per field, typed from the first row's value.
fn field_columns(rows: &[Value]) -> Vec<Column> {
    let first = rows[0].as_object().expect("rows are objects");
    let shape = vec![rows.len() as i64];
    first
        .iter()
        .map(|(name, sample)| {
            let values = rows.iter().map(|r| &r[name]);
            let mut c = InferTensorContents::default();
            let mut raw = Vec::new();
            let datatype = match sample {
                Value::Bool(_) => {
                    for v in values {
                        let b = v.as_bool().expect("same type in every row");
                        c.bool_contents.push(b);
                        raw.push(u8::from(b));
                    }
                    "BOOL"
                }
                Value::Number(_) => {
                    for v in values {
                        let x = v.as_f64().expect("same type in every row");
                        c.fp64_contents.push(x);
                        raw.extend_from_slice(&x.to_le_bytes());
                    }
                    "FP64"
                }
                _ => {
                    for v in values {
                        let s = v.as_str().expect("strings, numbers or booleans").as_bytes();
                        c.bytes_contents.push(s.to_vec());
                        raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
                        raw.extend_from_slice(s);
                    }
                    "BYTES"
                }
            };
            Column {
                name: name.clone(),
                datatype,
                shape: shape.clone(),
                contents: c,
                raw,
            }
        })
        .collect()
}

/// Feature vectors: one FP32 [N, width] tensor.
fn feature_column(rows: &[Value], name: String) -> Column {
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.as_array().expect("rows are arrays of numbers").iter())
        .map(|v| v.as_f64().expect("numbers") as f32)
        .collect();
    let width = values.len() / rows.len();
    Column {
        name,
        datatype: "FP32",
        shape: vec![rows.len() as i64, width as i64],
        raw: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        contents: InferTensorContents {
            fp32_contents: values,
            ..Default::default()
        },
    }
}

fn build_request(n: usize) -> ModelInferRequest {
    let source: Vec<Value> = match std::env::var("BENCH_ROWS_FILE") {
        Ok(path) if !path.is_empty() => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        }
        _ => vec![
            json!({"company_size": 250, "engagement_score": 85, "website_visits": 30,
            "email_opens": 20, "content_downloads": 6, "demo_requested": true,
            "budget_confirmed": true, "industry": "Technology",
            "decision_timeline": "Q1 2025", "title": "VP of Sales"}),
        ],
    };
    assert!(!source.is_empty(), "no rows");
    let rows: Vec<Value> = source.iter().cycle().take(n).cloned().collect();
    let columns = if rows[0].is_array() {
        vec![feature_column(&rows, env_or("BENCH_INPUT_NAME", "input-0"))]
    } else {
        field_columns(&rows)
    };
    let raw = env_or("BENCH_RAW", "0") == "1";
    let mut request = ModelInferRequest {
        model_name: env_or("BENCH_MODEL", "21"),
        ..Default::default()
    };
    if let Ok(output) = std::env::var("BENCH_OUTPUT") {
        request.outputs.push(InferRequestedOutputTensor {
            name: output,
            ..Default::default()
        });
    }
    for c in columns {
        request.inputs.push(InferInputTensor {
            name: c.name,
            datatype: c.datatype.into(),
            shape: c.shape,
            parameters: Default::default(),
            contents: (!raw).then_some(c.contents),
        });
        if raw {
            request.raw_input_contents.push(c.raw);
        }
    }
    request
}

struct Caller {
    grpc: tonic::client::Grpc<Channel>,
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    body: Bytes,
}

impl Caller {
    async fn call(&mut self) -> Result<Bytes, Status> {
        let mut request = Request::new(self.body.clone());
        if let Some(auth) = &self.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");
        Ok(self.grpc.unary(request, path, RawCodec).await?.into_inner())
    }
}

/// The p-th percentile of sorted latencies, in microseconds.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let Ok(addr) = std::env::var("BENCH_GRPC_ADDR") else {
        println!("{USAGE}");
        return;
    };
    let rows = env_num("BENCH_ROWS", 1) as usize;
    let duration = Duration::from_secs(env_num("BENCH_DURATION_S", 10));
    let connections = env_num("BENCH_CONNECTIONS", 64).max(1) as usize;
    let channels = env_num("BENCH_CHANNELS", 4).clamp(1, connections as u64) as usize;
    let auth = match (
        std::env::var("BENCH_KEY"),
        env_or("BENCH_NO_AUTH", "0").as_str(),
    ) {
        (Ok(key), "0") => Some(format!("Bearer {key}").parse().expect("key is ASCII")),
        _ => None,
    };
    let body = Bytes::from(build_request(rows).encode_to_vec());

    // One HTTP/2 connection per channel, each checked with one answer, decoded.
    let mut callers = Vec::new();
    for _ in 0..channels {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("BENCH_GRPC_ADDR is host:port")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        let mut caller = Caller {
            grpc: tonic::client::Grpc::new(channel),
            auth: auth.clone(),
            body: body.clone(),
        };
        let answer = caller.call().await.unwrap_or_else(|s| {
            panic!("warm-up ModelInfer failed: {:?} {}", s.code(), s.message())
        });
        let answer = ModelInferResponse::decode(answer).expect("a ModelInferResponse");
        let shape = answer.outputs.first().map(|o| o.shape.clone());
        assert_eq!(
            shape.and_then(|s| s.first().copied()),
            Some(rows as i64),
            "warm-up answer has no output of {rows} rows: {answer:?}"
        );
        callers.push(caller);
    }

    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for i in 0..connections {
        let mut caller = Caller {
            grpc: callers[i % channels].grpc.clone(),
            auth: auth.clone(),
            body: body.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
            while Instant::now() < deadline {
                let sent = Instant::now();
                match caller.call().await {
                    Ok(_) => latencies.push(sent.elapsed().as_micros() as u64),
                    Err(status) => {
                        if errors < 3 {
                            eprintln!("ModelInfer: {:?} {}", status.code(), status.message());
                        }
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.expect("load task");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    println!(
        "RESULT {}",
        json!({
            "requests": latencies.len() as u64 + errors,
            "duration_us": elapsed.as_micros() as u64,
            "non_2xx": errors,
            "socket_errors": 0,
            "p50_us": percentile(&latencies, 50.0),
            "p99_us": percentile(&latencies, 99.0),
            "max_us": latencies.last().copied().unwrap_or(0),
        })
    );
}
