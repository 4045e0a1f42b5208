//! The stable `code` of every problem body: the one list clients may program against.
//!
//! docs/api.md's table of error codes is checked against this list by a test, in both
//! directions, so a code cannot be added, renamed or dropped without the docs saying so.

use serde::{Serialize, Serializer};

/// Declares [`ErrorCode`], its wire strings and the list of all of them from one table, so
/// that the three cannot disagree.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident => $code:literal,)+) => {
        /// What went wrong, as the problem body's `code` (snake_case on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of declaration.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    /// 400: a key was sent as `?api_key=` while `auth.allow_query_key` is off.
    ApiKeyInQuery => "api_key_in_query",
    /// 400: a path segment (such as a model or key id) is not valid UTF-8 text.
    InvalidPath => "invalid_path",
    /// 401: no key was sent to a path that needs one.
    ApiKeyRequired => "api_key_required",
    /// 401: the key is unknown, revoked or expired.
    InvalidApiKey => "invalid_api_key",
    /// 402: a prepaid key has no credits left, or the remote auth service says the account
    /// cannot pay.
    InsufficientBalance => "insufficient_balance",
    /// 403: the key lacks the scope the route needs.
    InsufficientScope => "insufficient_scope",
    /// 403: the key is limited to other models (whether or not this one exists).
    ModelNotAllowed => "model_not_allowed",
    /// 404: the path names a model that is not configured.
    ModelNotFound => "model_not_found",
    /// 404: the path pins a version of the model that is not loaded.
    ModelVersionNotFound => "model_version_not_found",
    /// 503: the model is configured but no version of it is loaded (the detail says why).
    ModelNotReady => "model_not_ready",
    /// 404: revocation of a key id the store does not know.
    KeyNotFound => "key_not_found",
    /// 404: an outcome for a prediction that is not (or not yet) in the inference log.
    InferenceNotFound => "inference_not_found",
    /// 403: an outcome for another key's prediction, sent by a key that is not admin.
    InferenceNotOwned => "inference_not_owned",
    /// 404: a top-up of a key that is unknown or not prepaid.
    PrepaidKeyNotFound => "prepaid_key_not_found",
    /// 404: no route has this path.
    NotFound => "not_found",
    /// 405: the route exists but not with this method.
    MethodNotAllowed => "method_not_allowed",
    /// 400: the body could not be read: not valid data for its `Content-Encoding`.
    UnreadableBody => "unreadable_body",
    /// 408: the body did not arrive within the request deadline (`http.request_deadline`).
    BodyTimeout => "body_timeout",
    /// 413: the body (decoded, when compressed) is larger than `http.body_limit_bytes`.
    PayloadTooLarge => "payload_too_large",
    /// 414: the request target (path and query) is longer than 8 KiB.
    UriTooLong => "uri_too_long",
    /// 415: the body is not declared `application/json`.
    UnsupportedMediaType => "unsupported_media_type",
    /// 415: the body's `Content-Encoding` is not gzip, deflate, br or identity.
    UnsupportedContentEncoding => "unsupported_content_encoding",
    /// 431: the request's headers add up to more than 16 KiB.
    HeadersTooLarge => "headers_too_large",
    /// 400: a `/v2` input tensor's name, datatype, shape or size is wrong, a required input
    /// is missing, an output is unknown, or the batch is too large.
    InvalidTensor => "invalid_tensor",
    /// 422: the body is not JSON.
    InvalidJson => "invalid_json",
    /// 422: the body is JSON but a field is missing or wrong; `errors` names each.
    ValidationFailed => "validation_failed",
    /// 429: the key is over its rate limit, or the remote auth service said so.
    RateLimited => "rate_limited",
    /// 429: the client address failed authentication too often; no key is checked from it
    /// (except keys known valid) until `Retry-After`.
    TooManyFailedAuth => "too_many_failed_auth",
    /// 500: the model failed on inputs that passed validation (a bug; logged).
    InferenceFailed => "inference_failed",
    /// 500: a handler panicked or its task was lost (a bug; logged).
    InternalError => "internal_error",
    /// 503: the key's source cannot answer and the key is not cached within the stale horizon.
    AuthUnavailable => "auth_unavailable",
    /// 503: the store needed by the admin API or by outcomes cannot be reached.
    StoreUnavailable => "store_unavailable",
    /// 503: a prepaid key's balance cannot be checked because the store cannot be reached.
    CreditsUnavailable => "credits_unavailable",
    /// 503: a reload of the models could not read the models folder.
    ModelsUnavailable => "models_unavailable",
    /// 503: `server.max_connections` connections are open; this one is closed at once.
    TooManyConnections => "too_many_connections",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ErrorCode;

    const API_DOCS: &str = include_str!("../../docs/api.md");

    /// The `code` column of the table under `## Errors` (rows whose first cell is a status).
    fn documented_codes() -> Vec<&'static str> {
        let section = API_DOCS
            .split("\n## Errors")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_default();
        section
            .lines()
            .filter_map(|line| {
                let mut cells = line.trim().strip_prefix('|')?.split('|').map(str::trim);
                cells.next()?.parse::<u16>().ok()?;
                cells.next()?.strip_prefix('`')?.strip_suffix('`')
            })
            .collect()
    }

    #[test]
    fn docs_table_lists_exactly_the_codes() {
        let documented = documented_codes();
        let unique: BTreeSet<&str> = documented.iter().copied().collect();
        assert_eq!(unique.len(), documented.len(), "a code is documented twice");
        let declared: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let undocumented: Vec<_> = declared.difference(&unique).collect();
        let unknown: Vec<_> = unique.difference(&declared).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "docs/api.md's error table disagrees with ErrorCode: not documented {undocumented:?}, \
             documented but not in ErrorCode {unknown:?}"
        );
    }

    #[test]
    fn codes_are_distinct_snake_case_and_serialize_as_such() {
        let mut seen = BTreeSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} declared twice");
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text}"
            );
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(text))
            );
        }
    }
}
