//! The HTTP conventions a client used to Kong or Envoy expects: whole numbers written as
//! `150.0`, error messages in JSON terms (never a Rust type), compressed request bodies (and
//! a zip bomb cut off at the body limit), CORS, response compression, ETags and cache
//! directives, `Location` on 201, no `Allow` for strangers, and the current draft's
//! `RateLimit`/`RateLimit-Policy` fields.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use modelgate::auth::{issue_key, NewKey, RateLimit, Scope};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use support::{problem, Backend, TestApp};

const PREDICT: &str = "/api/v1/models/21/predict";
const ORIGIN: &str = "https://app.example.com";

fn row() -> Value {
    json!({"inputs": {"company_size": 250, "engagement_score": 85, "demo_requested": true,
        "budget_confirmed": true, "industry": "Technology", "title": "VP of Sales"}})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("deflate");
    encoder.finish().expect("deflate")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 1, 22);
        encoder.write_all(bytes).expect("br");
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut decoder = flate2::write::GzDecoder::new(&mut out);
    decoder.write_all(bytes).expect("gunzip");
    decoder.finish().expect("gunzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("unbrotli");
    out
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every value of a list-valued header, split at commas and lowercased.
fn listed(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Vec<u8>,
    encoding: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn whole_numbers_written_with_a_fraction_are_integers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.key(&[Scope::Admin]).await;

    for body in [
        r#"{"name": "float", "credits": 150.0}"#,
        r#"{"name": "exponent", "credits": 1.5e2}"#,
    ] {
        let created = post_raw(&app, "/api/v1/keys", &admin, body.into(), None).await;
        assert_eq!(created.status(), 201, "{body}");
        let location = header(created.headers(), "location")
            .expect("Location on 201")
            .to_string();
        let key: Value = created.json().await.expect("json");
        assert_eq!(key["credits"], 150, "{body}");
        assert_eq!(
            location,
            format!("/api/v1/keys/{}", key["id"].as_str().expect("id"))
        );
    }

    let (_, id) = app.prepaid_key(5).await;
    let topped = post_raw(
        &app,
        &format!("/api/v1/keys/{id}/topup"),
        &admin,
        r#"{"credits": 10.0}"#.into(),
        None,
    )
    .await;
    assert_eq!(topped.status(), 200);
    assert_eq!(topped.json::<Value>().await.expect("json")["credits"], 15);

    for (path, body) in [
        (
            "/api/v1/keys".to_string(),
            json!({"name": "half", "credits": 150.5}),
        ),
        (format!("/api/v1/keys/{id}/topup"), json!({"credits": 0.5})),
    ] {
        let refused = app.post_json(&path, &admin, &body).await;
        assert_eq!(refused.status(), 422, "{body}");
        let problem = problem(refused).await;
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "credits");
        assert_eq!(problem["detail"], "credits must be a whole number.");
    }
    app.stop().await;
}

/// Words that belong to Rust, not to the JSON a client sent.
const RUST_WORDS: &[&str] = &[
    "i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128", "f32", "f64", "usize",
    "isize", "struct", "enum", "variant", "sequence", "Option", "String", "Vec", "serde", "bool",
    "char",
];
const RUST_PHRASES: &[&str] = &["invalid type", "floating point", "invalid value", "::"];

fn assert_no_rust(text: &str, context: &str) {
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
    for word in RUST_WORDS {
        assert!(!words.contains(word), "{context}: {text:?} says {word}");
    }
    for phrase in RUST_PHRASES {
        assert!(!text.contains(phrase), "{context}: {text:?} says {phrase}");
    }
}

#[tokio::test]
async fn wrong_types_are_described_in_json_terms_on_every_body_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.key(&[Scope::Admin]).await;
    let (_, prepaid) = app.prepaid_key(1).await;
    let topup = format!("/api/v1/keys/{prepaid}/topup");
    let outcome = |field: &str, value: Value| {
        let mut body = json!({"inference_log_id": "01936c9e-7f60-7cc2-9a2b-5b0a2a3f1c11",
            "outcome_score": 1.0, "outcome_type": "converted"});
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value)> = vec![
        ("/api/v1/keys", json!({"name": 5})),
        ("/api/v1/keys", json!({"name": null})),
        ("/api/v1/keys", json!({"name": ["x"]})),
        ("/api/v1/keys", json!({"name": "x", "scopes": "predict"})),
        ("/api/v1/keys", json!({"name": "x", "scopes": [5]})),
        ("/api/v1/keys", json!({"name": "x", "scopes": ["root"]})),
        ("/api/v1/keys", json!({"name": "x", "rate_limit": 5})),
        ("/api/v1/keys", json!({"name": "x", "rate_limit": "fast"})),
        ("/api/v1/keys", json!({"name": "x", "expires_in": 5})),
        ("/api/v1/keys", json!({"name": "x", "expires_in": "soon"})),
        ("/api/v1/keys", json!({"name": "x", "credits": "5"})),
        ("/api/v1/keys", json!({"name": "x", "credits": true})),
        ("/api/v1/keys", json!({"name": "x", "credits": 1e30})),
        ("/api/v1/keys", json!({"name": "x", "credits": {}})),
        ("/api/v1/keys", json!({"name": "x", "credits": -0.5})),
        ("/api/v1/keys", json!({"name": "x", "nmae": "y"})),
        ("/api/v1/keys", json!([])),
        (&topup, json!({"credits": "5"})),
        (&topup, json!({"credits": 1.5})),
        (&topup, json!({"credits": null})),
        (&topup, json!({"credits": []})),
        (&topup, json!({"credits": 18446744073709551615u64})),
        (&topup, json!({})),
        ("/api/v1/outcomes", outcome("inference_log_id", json!(5))),
        ("/api/v1/outcomes", outcome("outcome_score", json!("high"))),
        ("/api/v1/outcomes", outcome("outcome_score", json!(null))),
        ("/api/v1/outcomes", outcome("outcome_type", json!(5))),
        ("/api/v1/outcomes", outcome("outcome_type", json!({}))),
        (PREDICT, json!({"inputs": 5})),
        (PREDICT, json!({"inputs": null})),
        (PREDICT, json!({"inputs": {"company_size": "big"}})),
        (PREDICT, json!({"inputs": {"demo_requested": 1}})),
        (PREDICT, json!({"inputs": {"title": 5}})),
        (PREDICT, json!({"inputs": [5]})),
    ];
    for (path, body) in cases {
        let response = app.post_json(path, &admin, &body).await;
        let status = response.status();
        assert!(status.is_client_error(), "{path} {body}: {status}");
        let problem = problem(response).await;
        let context = format!("{path} {body}");
        assert!(problem["code"].is_string(), "{context}");
        assert_no_rust(problem["detail"].as_str().expect("detail"), &context);
        for error in problem["errors"].as_array().into_iter().flatten() {
            assert_no_rust(error["message"].as_str().expect("message"), &context);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn compressed_request_bodies_are_decoded() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let body = serde_json::to_vec(&row()).expect("json");
    let plain: Value = post_raw(&app, PREDICT, &key, body.clone(), None)
        .await
        .json()
        .await
        .expect("json");
    for (encoding, encoded) in [
        ("gzip", gzip(&body)),
        ("GZip", gzip(&body)),
        ("x-gzip", gzip(&body)),
        ("deflate", deflate(&body)),
        ("br", brotli(&body)),
        ("identity", body.clone()),
    ] {
        let response = post_raw(&app, PREDICT, &key, encoded, Some(encoding)).await;
        assert_eq!(response.status(), 200, "{encoding}");
        let scored: Value = response.json().await.expect("json");
        assert_eq!(scored["predictions"], plain["predictions"], "{encoding}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_zip_bomb_is_cut_off_at_the_body_limit() {
    const LIMIT: u64 = 64 * 1024;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.http.body_limit_bytes = LIMIT).await;
    let key = app.predict_key().await;
    // 4 MiB of JSON that inflates from a few kilobytes: 64 times the limit.
    let mut json = br#"{"inputs": {"title": ""#.to_vec();
    json.resize(4 * 1024 * 1024, b'a');
    json.extend_from_slice(br#""}}"#);
    let bomb = gzip(&json);
    assert!((bomb.len() as u64) < LIMIT / 2, "{} bytes", bomb.len());
    for encoding in ["gzip", "br"] {
        let encoded = if encoding == "gzip" {
            bomb.clone()
        } else {
            brotli(&json)
        };
        let started = Instant::now();
        let response = post_raw(&app, PREDICT, &key, encoded, Some(encoding)).await;
        assert_eq!(response.status(), 413, "{encoding}");
        assert_eq!(problem(response).await["code"], "payload_too_large");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{encoding}: {:?}",
            started.elapsed()
        );
    }
    // The server is unharmed.
    let after = post_raw(
        &app,
        PREDICT,
        &key,
        gzip(&serde_json::to_vec(&row()).expect("json")),
        Some("gzip"),
    )
    .await;
    assert_eq!(after.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn unknown_or_broken_encodings_are_problems_not_invalid_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    let body = serde_json::to_vec(&row()).expect("json");
    for encoding in ["zstd", "compress", "gzip, br"] {
        let response = post_raw(&app, PREDICT, &key, body.clone(), Some(encoding)).await;
        assert_eq!(response.status(), 415, "{encoding}");
        let accepted = listed(response.headers(), "accept-encoding");
        assert!(accepted.contains(&"gzip".to_string()), "{accepted:?}");
        assert_eq!(
            problem(response).await["code"],
            "unsupported_content_encoding"
        );
    }
    let broken = post_raw(
        &app,
        PREDICT,
        &key,
        b"not gzip at all".to_vec(),
        Some("gzip"),
    )
    .await;
    assert_eq!(broken.status(), 400);
    assert_eq!(problem(broken).await["code"], "unreadable_body");
    // Authentication comes first: a stranger learns nothing about encodings.
    let stranger = app
        .client
        .post(app.url(PREDICT))
        .header("content-encoding", "zstd")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(stranger.status(), 401);
    app.stop().await;
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,content-encoding,x-api-key,x-request-id",
        )
        .send()
        .await
        .expect("preflight")
}

fn has_cors_headers(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control-"))
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = preflight(&app, PREDICT, ORIGIN).await;
    assert_eq!(response.status(), 401);
    assert!(!has_cors_headers(response.headers()));
    assert!(response.headers().get("allow").is_none());
    let health = app
        .client
        .get(app.url("/health"))
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    assert!(!has_cors_headers(health.headers()));
    app.stop().await;
}

#[tokio::test]
async fn cors_preflight_is_answered_without_a_key_for_allowed_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.cors_allowed_origins = vec![ORIGIN.into(), "http://localhost:3000".into()];
    })
    .await;
    let response = preflight(&app, PREDICT, ORIGIN).await;
    assert_eq!(response.status(), 204);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(ORIGIN));
    assert!(listed(headers, "access-control-allow-methods").contains(&"post".to_string()));
    let allowed = listed(headers, "access-control-allow-headers");
    for name in [
        "authorization",
        "x-api-key",
        "content-type",
        "content-encoding",
        "x-request-id",
    ] {
        assert!(allowed.contains(&name.to_string()), "{name} in {allowed:?}");
    }
    assert_eq!(header(headers, "access-control-max-age"), Some("600"));
    assert!(headers.get("allow").is_none());

    // An origin not on the list gets no permission.
    let other = preflight(&app, PREDICT, "https://evil.example.com").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // The real request is authenticated as usual, and the page may read the answer and the
    // headers a client needs, a 401 included.
    let key = app.predict_key().await;
    let scored = app
        .client
        .post(app.url(PREDICT))
        .bearer_auth(&key)
        .header("origin", ORIGIN)
        .json(&row())
        .send()
        .await
        .expect("predict");
    assert_eq!(scored.status(), 200);
    assert_eq!(
        header(scored.headers(), "access-control-allow-origin"),
        Some(ORIGIN)
    );
    let exposed = listed(scored.headers(), "access-control-expose-headers");
    for name in [
        "ratelimit",
        "ratelimit-policy",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "x-request-id",
        "location",
        "etag",
    ] {
        assert!(exposed.contains(&name.to_string()), "{name} in {exposed:?}");
    }
    let refused = app
        .client
        .post(app.url(PREDICT))
        .header("origin", ORIGIN)
        .json(&row())
        .send()
        .await
        .expect("predict");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        header(refused.headers(), "access-control-allow-origin"),
        Some(ORIGIN)
    );
    app.stop().await;
}

#[tokio::test]
async fn cors_may_allow_any_origin() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.cors_allowed_origins = vec!["*".into()]
    })
    .await;
    let response = preflight(&app, "/api/v1/models", "https://anywhere.example").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        Some("*")
    );
    app.stop().await;
}

async fn get_encoded(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    accept: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(path))
        .header("accept-encoding", accept);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn large_responses_are_compressed_when_the_client_asks() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let identity = app.get("/openapi.json", None).await;
    assert!(identity.headers().get("content-encoding").is_none());
    let identity = identity.bytes().await.expect("body");
    assert!(identity.len() > 1024);
    for (encoding, decode) in [
        ("gzip", gunzip as fn(&[u8]) -> Vec<u8>),
        ("br", unbrotli as fn(&[u8]) -> Vec<u8>),
    ] {
        let response = get_encoded(&app, "/openapi.json", None, encoding).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(response.headers(), "content-encoding"),
            Some(encoding)
        );
        assert!(listed(response.headers(), "vary").contains(&"accept-encoding".to_string()));
        let body = response.bytes().await.expect("body");
        assert!(
            body.len() < identity.len() / 2,
            "{encoding}: {}",
            body.len()
        );
        assert_eq!(decode(&body), identity.to_vec(), "{encoding}");
    }
    let metrics = get_encoded(&app, "/metrics", None, "gzip, br;q=0.5").await;
    assert_eq!(header(metrics.headers(), "content-encoding"), Some("gzip"));

    // A prediction is far below the threshold: it is sent as is.
    let key = app.predict_key().await;
    let scored = app
        .client
        .post(app.url(PREDICT))
        .bearer_auth(&key)
        .header("accept-encoding", "gzip, br")
        .json(&row())
        .send()
        .await
        .expect("predict");
    assert_eq!(scored.status(), 200);
    assert!(scored.headers().get("content-encoding").is_none());
    app.stop().await;
}

#[tokio::test]
async fn model_descriptions_carry_etags_and_answer_304_when_unchanged() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.predict_key().await;
    for path in ["/api/v1/models", "/api/v1/models/21/info"] {
        let first = app.get(path, Some(&key)).await;
        assert_eq!(first.status(), 200);
        assert_eq!(
            header(first.headers(), "cache-control"),
            Some("private, no-cache")
        );
        let etag = header(first.headers(), "etag").expect("etag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let again = app.get(path, Some(&key)).await;
        assert_eq!(header(again.headers(), "etag"), Some(etag.as_str()));

        let revalidated = app
            .client
            .get(app.url(path))
            .bearer_auth(&key)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("request");
        assert_eq!(revalidated.status(), 304, "{path}");
        assert_eq!(header(revalidated.headers(), "etag"), Some(etag.as_str()));
        assert_eq!(
            header(revalidated.headers(), "cache-control"),
            Some("private, no-cache")
        );
        assert!(revalidated.bytes().await.expect("body").is_empty());

        let stale = app
            .client
            .get(app.url(path))
            .bearer_auth(&key)
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .expect("request");
        assert_eq!(stale.status(), 200);

        // The key is checked on every revalidation.
        let stranger = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("request");
        assert_eq!(stranger.status(), 401);
    }
    // A compressed representation is other bytes, so it has another strong tag.
    let plain = app.get("/api/v1/models/21/info", Some(&key)).await;
    let gzipped = get_encoded(&app, "/api/v1/models/21/info", Some(&key), "gzip").await;
    assert_eq!(header(gzipped.headers(), "content-encoding"), Some("gzip"));
    assert_ne!(
        header(gzipped.headers(), "etag"),
        header(plain.headers(), "etag")
    );
    let gzip_tag = header(gzipped.headers(), "etag").expect("etag").to_string();
    let revalidated = app
        .client
        .get(app.url("/api/v1/models/21/info"))
        .bearer_auth(&key)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &gzip_tag)
        .send()
        .await
        .expect("request");
    assert_eq!(revalidated.status(), 304);
    app.stop().await;
}

#[tokio::test]
async fn health_answers_are_never_stored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/live",
        "/ready",
    ] {
        let response = app.get(path, None).await;
        assert_eq!(
            header(response.headers(), "cache-control"),
            Some("no-store"),
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn only_an_authenticated_caller_learns_which_methods_a_route_has() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let predict = app.predict_key().await;
    let admin = app.key(&[Scope::Admin]).await;
    for (method, path, key) in [
        (Method::GET, PREDICT, None),
        (Method::GET, PREDICT, Some("mg_not_a_real_key")),
        (Method::PUT, "/api/v1/keys", None),
        (Method::GET, "/api/v1/keys/key_123/topup", None),
    ] {
        let mut request = app.client.request(method.clone(), app.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 401, "{method} {path}");
        assert!(response.headers().get("allow").is_none(), "{method} {path}");
    }
    for (method, path, key, allowed) in [
        (Method::GET, PREDICT, &predict, "POST"),
        (Method::PUT, "/api/v1/keys", &admin, "GET,HEAD,POST"),
        (Method::GET, "/api/v1/keys/key_123/topup", &admin, "POST"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 405, "{method} {path}");
        let mut methods = listed(response.headers(), "allow");
        methods.sort();
        let mut expected: Vec<String> =
            allowed.split(',').map(|m| m.to_ascii_lowercase()).collect();
        expected.sort();
        assert_eq!(methods, expected, "{method} {path}");
    }
    // Public routes have nothing to hide.
    let response = app
        .client
        .post(app.url("/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    assert!(response.headers().get("allow").is_some());
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_fields_of_the_current_draft_sit_beside_the_trio() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let issued = issue_key(
        &app.store,
        NewKey {
            name: "limited".into(),
            scopes: vec![Scope::Predict],
            rate_limit: Some("5/m".parse::<RateLimit>().expect("limit")),
            ..NewKey::default()
        },
    )
    .await
    .expect("issue key");
    for remaining in (0..5).rev() {
        let response = app.post_json(PREDICT, &issued.key, &row()).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        // One request frees up every 12 s.
        assert_eq!(
            header(headers, "ratelimit"),
            Some(format!("\"default\";r={remaining};t=12").as_str())
        );
        let policies: Vec<&str> = headers
            .get_all("ratelimit-policy")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(policies, ["5;w=60", "\"default\";q=5;w=60"]);
        assert_eq!(
            header(headers, "ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
    }
    let refused = app.post_json(PREDICT, &issued.key, &row()).await;
    assert_eq!(refused.status(), 429);
    let retry_after = header(refused.headers(), "retry-after")
        .expect("retry-after")
        .to_string();
    assert_eq!(
        header(refused.headers(), "ratelimit"),
        Some(format!("\"default\";r=0;t={retry_after}").as_str())
    );
    assert!(refused.headers().get("ratelimit-policy").is_some());
    app.stop().await;
}

/// Our own limits answer in problem+json, before authentication, with the request's id.
#[tokio::test]
async fn a_long_target_or_large_headers_are_problems_not_empty_answers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let long = format!("/api/v1/models/{}/info", "a".repeat(9 * 1024));
    let response = app.get(&long, None).await;
    assert_eq!(response.status(), 414);
    assert!(header(response.headers(), "x-request-id").is_some());
    let body = problem(response).await;
    assert_eq!(body["code"], "uri_too_long", "{body}");

    let padding = "v".repeat(17 * 1024);
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-padding", &padding)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 431);
    assert_eq!(problem(response).await["code"], "headers_too_large");

    // Just under both limits: served as usual.
    let response = app
        .client
        .get(app.url(&format!("/health?{}", "q".repeat(8 * 1024 - 10))))
        .header("x-padding", &padding[..15 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    app.stop().await;
}

/// Requests hyper refuses while parsing never reach the app: empty answers, as docs/api.md
/// ("Errors before the app") says. Pinned here so that the documentation stays true.
#[tokio::test]
async fn requests_hyper_cannot_parse_get_its_empty_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let heads: [&[u8]; 2] = [
        b"GET /api/v1/models/\xff/info HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /api/v1/outcomes HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
    ];
    for head in heads {
        let mut stream = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        stream.write_all(head).await.expect("send");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("hyper closes the connection")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 400"), "{answer}");
        assert!(answer.contains("content-length: 0"), "{answer}");
    }
    app.stop().await;
}

/// A failing request repeats its input only in part: a 900 KB scope name, a 7 KB model id.
#[tokio::test]
async fn problems_do_not_echo_large_input() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.key(&[Scope::Admin]).await;
    let huge = "x".repeat(900 * 1024);
    let response = app
        .post_json(
            "/api/v1/keys",
            &admin,
            &json!({"name": "n", "scopes": [huge]}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.expect("body");
    assert!(text.len() < 2_000, "a {}-byte problem", text.len());
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["code"], "validation_failed");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("unknown scope") && message.ends_with('…'),
        "{message}"
    );

    let response = app
        .post_json(
            "/api/v1/keys",
            &admin,
            &json!({"name": "n", huge.as_str(): 1}),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.expect("body").len() < 2_000);

    let key = app.predict_key().await;
    let id = "m".repeat(7 * 1024);
    let response = app
        .post_json(
            &format!("/api/v1/models/{id}/predict"),
            &key,
            &json!({"inputs": {}}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let body = problem(response).await;
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.len() < 400, "{detail}");
    assert!(
        detail.ends_with("GET /api/v1/models lists them."),
        "{detail}"
    );
    app.stop().await;
}
