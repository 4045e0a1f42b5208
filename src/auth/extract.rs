//! Finding the API key in a request.

use axum::http::{header, HeaderMap};

use super::AuthError;

/// Longest key accepted; anything longer is not ours and is not worth hashing.
const MAX_KEY_LEN: usize = 256;

fn from_authorization(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::Invalid)?.trim();
    let (scheme, key) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("apikey") {
        Ok(Some(key.trim().to_string()).filter(|k| !k.is_empty()))
    } else {
        // Another scheme (e.g. Basic) is not an API key; X-API-Key may still carry one.
        Ok(None)
    }
}

fn from_header(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let Some(value) = headers.get("x-api-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| AuthError::Invalid)?.trim();
    Ok(Some(key.to_string()).filter(|k| !k.is_empty()))
}

fn from_query(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "api_key")
        .map(|(_, value)| value.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// The key from `Authorization: Bearer|ApiKey`, `X-API-Key`, or (only when allowed) `?api_key=`.
pub fn api_key(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query: bool,
) -> Result<String, AuthError> {
    let in_query = from_query(query);
    if in_query.is_some() && !allow_query {
        return Err(AuthError::QueryKeyRefused);
    }
    let key = from_authorization(headers)?
        .or(from_header(headers)?)
        .or(in_query)
        .ok_or(AuthError::Missing)?;
    if key.len() > MAX_KEY_LEN {
        return Err(AuthError::Invalid);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn bearer_and_apikey_schemes_in_any_case() {
        for value in [
            "Bearer k1",
            "bearer k1",
            "BEARER   k1 ",
            "ApiKey k1",
            "apikey k1",
        ] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(
                api_key(&h, None, false).ok().as_deref(),
                Some("k1"),
                "{value}"
            );
        }
    }

    #[test]
    fn x_api_key_header() {
        let h = headers(&[("x-api-key", "k2")]);
        assert_eq!(api_key(&h, None, false).ok().as_deref(), Some("k2"));
    }

    #[test]
    fn other_scheme_falls_back_to_x_api_key() {
        let h = headers(&[("authorization", "Basic dTpw"), ("x-api-key", "k3")]);
        assert_eq!(api_key(&h, None, false).ok().as_deref(), Some("k3"));
    }

    #[test]
    fn nothing_or_empty_is_missing() {
        assert!(matches!(
            api_key(&HeaderMap::new(), None, false),
            Err(AuthError::Missing)
        ));
        let h = headers(&[("authorization", "Bearer ")]);
        assert!(matches!(api_key(&h, None, false), Err(AuthError::Missing)));
    }

    #[test]
    fn query_key_is_refused_unless_allowed() {
        let h = headers(&[("authorization", "Bearer k4")]);
        assert!(matches!(
            api_key(&h, Some("a=1&api_key=k5"), false),
            Err(AuthError::QueryKeyRefused)
        ));
        assert_eq!(
            api_key(&HeaderMap::new(), Some("api_key=k5"), true)
                .ok()
                .as_deref(),
            Some("k5")
        );
    }

    #[test]
    fn absurdly_long_key_is_invalid() {
        let long = format!("Bearer {}", "a".repeat(300));
        let h = headers(&[("authorization", &long)]);
        assert!(matches!(api_key(&h, None, false), Err(AuthError::Invalid)));
    }
}
