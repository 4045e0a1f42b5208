//! The Open Inference Protocol's front ends against the real server: REST (JSON, the binary
//! extension, h2c) and gRPC share one prediction path: the same predictions, records that say
//! which protocol they came by, the per-model counters, and refusals in each protocol's
//! terms. tests/v2_tritonclient.rs drives the same routes with Triton's own client.

mod support;

use std::time::Duration;

use modelgate::auth::{issue_key, NewKey, Scope};
use modelgate::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use modelgate::grpc::proto::model_infer_request::InferInputTensor;
use modelgate::grpc::proto::{InferTensorContents, ModelInferRequest, ModelMetadataRequest};
use serde_json::{json, Value};
use support::events::wait_for_rows;
use support::metrics::metric;
use support::{Backend, TestApp};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Far beyond a healthy answer, far below a hang.
const PATIENCE: Duration = Duration::from_secs(10);

/// Two Model 21 rows, as `/api/v1` takes them.
fn rows() -> Value {
    json!([
        {"company_size": 250, "engagement_score": 85, "demo_requested": true,
         "industry": "technology", "decision_timeline": "Q1 2025", "title": "VP of Sales"},
        {"company_size": 10, "engagement_score": 5, "demo_requested": false,
         "industry": "retail", "decision_timeline": "2027", "title": "intern"},
    ])
}

/// The same rows as V2 JSON input tensors.
fn v2_inputs() -> Value {
    json!([
        {"name": "company_size", "datatype": "FP64", "shape": [2], "data": [250, 10]},
        {"name": "engagement_score", "datatype": "INT64", "shape": [2, 1], "data": [[85], [5]]},
        {"name": "demo_requested", "datatype": "BOOL", "shape": [2], "data": [true, false]},
        {"name": "industry", "datatype": "BYTES", "shape": [2], "data": ["technology", "retail"]},
        {"name": "decision_timeline", "datatype": "BYTES", "shape": [2], "data": ["Q1 2025", "2027"]},
        {"name": "title", "datatype": "BYTES", "shape": [2], "data": ["VP of Sales", "intern"]},
    ])
}

/// The same rows as gRPC tensors, in `contents`.
fn grpc_inputs() -> Vec<InferInputTensor> {
    let tensor = |name: &str, datatype: &str, contents: InferTensorContents| InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: vec![2],
        parameters: Default::default(),
        contents: Some(contents),
    };
    let bytes = |a: &str, b: &str| InferTensorContents {
        bytes_contents: vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()],
        ..Default::default()
    };
    vec![
        tensor(
            "company_size",
            "FP32",
            InferTensorContents {
                fp32_contents: vec![250.0, 10.0],
                ..Default::default()
            },
        ),
        tensor(
            "engagement_score",
            "INT32",
            InferTensorContents {
                int_contents: vec![85, 5],
                ..Default::default()
            },
        ),
        tensor(
            "demo_requested",
            "BOOL",
            InferTensorContents {
                bool_contents: vec![true, false],
                ..Default::default()
            },
        ),
        tensor("industry", "BYTES", bytes("technology", "retail")),
        tensor("decision_timeline", "BYTES", bytes("Q1 2025", "2027")),
        tensor("title", "BYTES", bytes("VP of Sales", "intern")),
    ]
}

async fn grpc(app: &TestApp) -> GrpcInferenceServiceClient<Channel> {
    let addr = app.grpc_addr.expect("gRPC listener");
    GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connects")
}

fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("metadata value"),
    );
    request
}

fn infer_request(inputs: Vec<InferInputTensor>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "21".into(),
        id: "grpc-1".into(),
        inputs,
        ..Default::default()
    }
}

/// The answer's output `name` as JSON values, one per row.
fn v2_output(body: &Value, name: &str) -> Vec<Value> {
    body["outputs"]
        .as_array()
        .and_then(|outputs| outputs.iter().find(|o| o["name"] == name))
        .and_then(|o| o["data"].as_array().cloned())
        .unwrap_or_else(|| panic!("no output {name} in {body}"))
}

#[tokio::test]
async fn every_protocol_scores_alike_and_is_recorded_and_counted_as_itself() {
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.events.flush_interval = Duration::from_millis(10);
    })
    .await;
    let key = app.predict_key().await;
    let v1: Value = app
        .post_json(
            "/api/v1/models/21/predict",
            &key,
            &json!({"inputs": rows()}),
        )
        .await
        .json()
        .await
        .expect("v1 json");
    let v1 = v1["predictions"].as_array().expect("predictions").clone();

    let rest = app
        .post_json(
            "/v2/models/21/infer",
            &key,
            &json!({"id": "rest-1", "inputs": v2_inputs()}),
        )
        .await;
    assert_eq!(rest.status(), 200);
    let rest: Value = rest.json().await.expect("v2 json");
    assert_eq!(rest["id"], "rest-1");
    assert_eq!(rest["model_version"], "1.0.0");
    assert!(rest["parameters"]["inference_log_id"].is_string(), "{rest}");

    let answer = grpc(&app)
        .await
        .model_infer(with_key(infer_request(grpc_inputs()), &key))
        .await
        .expect("gRPC infer")
        .into_inner();
    assert_eq!(answer.id, "grpc-1");
    assert!(
        answer.raw_output_contents.is_empty(),
        "contents in, contents out"
    );

    for (row, expected) in v1.iter().enumerate() {
        let p = expected["conversion_probability"].as_f64().expect("p");
        let rest_p = v2_output(&rest, "conversion_probability")[row]
            .as_f64()
            .expect("rest p");
        let grpc_p = answer.outputs[0]
            .contents
            .as_ref()
            .expect("contents")
            .fp64_contents[row];
        assert_eq!(answer.outputs[0].name, "conversion_probability");
        assert!((rest_p - p).abs() <= 1e-6 && (grpc_p - p).abs() <= 1e-6);
        assert_eq!(
            v2_output(&rest, "lead_score")[row],
            expected["lead_score"],
            "row {row}"
        );
        assert_eq!(
            v2_output(&rest, "recommendation")[row],
            expected["recommendation"]
        );
        let factors: Value = serde_json::from_str(
            v2_output(&rest, "factors")[row]
                .as_str()
                .expect("factors text"),
        )
        .expect("factors are JSON text");
        assert_eq!(factors, expected["factors"]);
    }

    let logged = wait_for_rows(&app.db_url, 3, PATIENCE).await;
    let mut protocols: Vec<&str> = logged.iter().map(|r| r.protocol.as_str()).collect();
    protocols.sort_unstable();
    assert_eq!(protocols, ["v1", "v2_grpc", "v2_http"]);
    let v2_row = logged
        .iter()
        .find(|r| r.protocol == "v2_http")
        .expect("row");
    assert_eq!(
        v2_row.inputs[0]["title"], "VP of Sales",
        "rows as /api/v1 records them"
    );

    let metrics = app.metrics().await;
    for protocol in ["v1", "v2_http", "v2_grpc"] {
        let series = format!(
            "modelgate_inference_requests_total{{model=\"21\",version=\"1.0.0\",protocol=\"{protocol}\",outcome=\"ok\"}}"
        );
        assert_eq!(metric(&metrics, &series), 1.0, "{series}\n{metrics}");
        let rows = format!(
            "modelgate_inference_rows_total{{model=\"21\",version=\"1.0.0\",protocol=\"{protocol}\"}}"
        );
        assert_eq!(metric(&metrics, &rows), 2.0, "{rows}");
    }
}

/// A body in the binary tensor extension's form: JSON, then each tensor's raw bytes.
fn binary_body(json: &Value, blobs: &[Vec<u8>]) -> (Vec<u8>, usize) {
    let mut body = serde_json::to_vec(json).expect("json");
    let json_length = body.len();
    blobs.iter().for_each(|b| body.extend_from_slice(b));
    (body, json_length)
}

fn length_prefixed(items: &[&str]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|s| {
            let mut bytes = (s.len() as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(s.as_bytes());
            bytes
        })
        .collect()
}

#[tokio::test]
async fn binary_tensors_go_in_and_come_out_after_the_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let sizes: Vec<u8> = [250.0f64, 10.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let titles = length_prefixed(&["VP of Sales", "intern"]);
    let request = json!({
        "inputs": [
            {"name": "company_size", "datatype": "FP64", "shape": [2],
             "parameters": {"binary_data_size": sizes.len()}},
            {"name": "title", "datatype": "BYTES", "shape": [2],
             "parameters": {"binary_data_size": titles.len()}},
        ],
        "outputs": [
            {"name": "lead_score", "parameters": {"binary_data": true}},
            {"name": "recommendation", "parameters": {"binary_data": false}},
        ],
    });
    let (body, json_length) = binary_body(&request, &[sizes, titles]);
    let response = app
        .client
        .post(app.url("/v2/models/21/infer"))
        .bearer_auth(&key)
        .header("Inference-Header-Content-Length", json_length)
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("infer");
    assert_eq!(response.status(), 200);
    let header: usize = response
        .headers()
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("the answer says where its JSON ends");
    let bytes = response.bytes().await.expect("body");
    let (head, raw) = bytes.split_at(header);
    let head: Value = serde_json::from_slice(head).expect("JSON part");
    assert_eq!(head["outputs"][0]["name"], "lead_score");
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 16);
    assert_eq!(head["outputs"][1]["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(raw.len(), 16, "two INT64 scores and nothing else");
    let scores: Vec<i64> = raw
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    assert!(scores.iter().all(|s| (0..=100).contains(s)), "{scores:?}");

    // A binary size beyond the body is named, not read past.
    let (body, json_length) = binary_body(
        &json!({"inputs": [{"name": "company_size", "datatype": "FP64", "shape": [1],
                            "parameters": {"binary_data_size": 800}}]}),
        &[vec![0; 8]],
    );
    let refused = app
        .client
        .post(app.url("/v2/models/21/infer"))
        .bearer_auth(&key)
        .header("Inference-Header-Content-Length", json_length)
        .body(body)
        .send()
        .await
        .expect("infer");
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.expect("json error");
    assert_eq!(error["code"], "invalid_tensor");
    assert!(
        error["error"].as_str().is_some_and(|e| e.contains("800")),
        "{error}"
    );
}

#[tokio::test]
async fn v2_errors_are_the_protocol_s_shape_with_the_stable_code() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.http.body_limit_bytes = 4096).await;
    let key = app.predict_key().await;
    let cases: [(&str, Option<Value>, u16, &str); 5] = [
        (
            "/v2/models/21/infer",
            Some(json!({"inputs": [
            {"name": "nope", "datatype": "FP64", "shape": [1], "data": [1]}]})),
            400,
            "invalid_tensor",
        ),
        (
            "/v2/models/21/infer",
            Some(json!({"inputs": [
            {"name": "company_size", "datatype": "FP64", "shape": [2], "data": [1]}]})),
            400,
            "invalid_tensor",
        ),
        (
            "/v2/models/21/infer",
            Some(json!({"inputs": [
            {"name": "company_size", "datatype": "FP64", "shape": [1], "data": ["x".repeat(5000)]}]})),
            413,
            "payload_too_large",
        ),
        (
            "/v2/models/21/versions/9.9.9/infer",
            Some(json!({"inputs": []})),
            404,
            "model_version_not_found",
        ),
        ("/v2/nothing/here", None, 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let response = match &body {
            Some(body) => app.post_json(path, &key, body).await,
            None => app.get(path, Some(&key)).await,
        };
        assert_eq!(response.status(), status, "{path} {body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["error"].is_string(), "{error}");
    }
    let not_json = app
        .client
        .post(app.url("/v2/models/21/infer"))
        .bearer_auth(&key)
        .body("{")
        .send()
        .await
        .expect("send");
    assert_eq!(
        not_json.status(),
        400,
        "the protocol answers 400 where /api/v1 says 422"
    );
    let error: Value = not_json.json().await.expect("json");
    assert_eq!(error["code"], "invalid_json");
}

#[tokio::test]
async fn grpc_refusals_carry_status_codes_the_stable_code_and_retry_info() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let throttled = issue_key(
        &app.store,
        NewKey {
            name: "throttled".into(),
            scopes: vec![Scope::Predict],
            rate_limit: Some("1/m".parse().expect("rate")),
            ..NewKey::default()
        },
    )
    .await
    .expect("key")
    .key;
    let mut client = grpc(&app).await;
    let code_of = |status: &tonic::Status| {
        status
            .metadata()
            .get("modelgate-code")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };

    let missing = client
        .model_infer(infer_request(grpc_inputs()))
        .await
        .expect_err("no key");
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    assert_eq!(code_of(&missing).as_deref(), Some("api_key_required"));

    let unknown = client
        .model_metadata(with_key(
            ModelMetadataRequest {
                name: "nope".into(),
                version: String::new(),
            },
            &key,
        ))
        .await
        .expect_err("unknown model");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut bad = grpc_inputs();
    bad[0].datatype = "BYTES".into();
    let invalid = client
        .model_infer(with_key(infer_request(bad), &key))
        .await
        .expect_err("BYTES for a number");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    assert!(invalid.message().contains("company_size"), "{invalid:?}");

    client
        .model_infer(with_key(infer_request(grpc_inputs()), &throttled))
        .await
        .expect("the first call is within 1/m");
    let limited = client
        .model_infer(with_key(infer_request(grpc_inputs()), &throttled))
        .await
        .expect_err("the second is not");
    assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    assert_eq!(code_of(&limited).as_deref(), Some("rate_limited"));
    let delay = limited
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(delay >= Duration::from_secs(1), "{delay:?}");

    let metrics = app.metrics().await;
    for (rpc, outcome, count) in [
        ("ModelInfer", "api_key_required", 1.0),
        ("ModelInfer", "invalid_tensor", 1.0),
        ("ModelInfer", "rate_limited", 1.0),
        ("ModelInfer", "ok", 1.0),
        ("ModelMetadata", "model_not_found", 1.0),
    ] {
        let series =
            format!("modelgate_grpc_requests_total{{rpc=\"{rpc}\",outcome=\"{outcome}\"}}");
        assert_eq!(metric(&metrics, &series), count, "{series}");
    }
}

#[tokio::test]
async fn grpc_health_follows_readiness_and_rest_speaks_h2c() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let addr = app.grpc_addr.expect("gRPC listener");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "inference.GRPCInferenceService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let key = app.predict_key().await;
    let response = h2
        .post(app.url("/v2/models/21/infer"))
        .bearer_auth(&key)
        .json(&json!({"inputs": v2_inputs()}))
        .send()
        .await
        .expect("h2c infer");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let ready = h2
        .get(app.url("/v2/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout_on_either_port() {
    let header_read = Duration::from_millis(200);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.header_read_timeout = header_read;
    })
    .await;
    for addr in [app.addr, app.grpc_addr.expect("gRPC listener")] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
        )
        .await
        .expect("closed before the patience ran out");
        assert!(matches!(read, Ok(0) | Err(_)), "{addr}: {read:?}");
        assert!(started.elapsed() >= header_read, "{addr}: closed too early");
    }
}
