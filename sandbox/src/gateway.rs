//! The `/rest/v1` gateway: what Supabase's Kong does in front of PostgREST.
//! The `apikey` must be the project's anon or service_role key; the request
//! is then passed through unchanged (PostgREST checks the Authorization JWT).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;

use crate::jwt::ApiKeys;
use crate::state::AppState;

const PREFIX: &str = "/rest/v1";
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Batch inserts can be large; Kong's default limit is far above axum's 2 MB.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PREFIX, any(proxy)).route("/rest/v1/", any(proxy)).route("/rest/v1/{*path}", any(proxy))
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus
/// the ones the HTTP client recomputes.
fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "trailers"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

fn passthrough(headers: &HeaderMap) -> HeaderMap {
    headers.iter().filter(|(name, _)| !is_hop_header(name)).map(|(n, v)| (n.clone(), v.clone())).collect()
}

pub fn kong_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// Kong's key-auth: the `apikey` header (or the `apikey` query parameter, already split off by [`split_apikey`])
/// must be the anon or service_role key; otherwise the 401 Kong answers (None: the key is good). `/auth/v1`
/// uses it too.
pub fn api_key_refusal(keys: &ApiKeys, headers: &HeaderMap, query_key: Option<String>) -> Option<Response> {
    let key = headers.get("apikey").and_then(|v| v.to_str().ok()).map(str::to_string).or(query_key);
    match key {
        None => Some(kong_error(StatusCode::UNAUTHORIZED, "No API key found in request")),
        Some(k) if !keys.accepts(k.trim()) => Some(kong_error(StatusCode::UNAUTHORIZED, "Invalid API key")),
        Some(_) => None,
    }
}

/// Splits the `apikey` query parameter (some clients send the key that way)
/// from the rest of the query, which goes upstream untouched.
pub fn split_apikey(query: &str) -> (Option<String>, String) {
    let mut key = None;
    let mut kept = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        match part.strip_prefix("apikey=") {
            Some(v) if key.is_none() => {
                key = Some(percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
            }
            _ => kept.push(part),
        }
    }
    (key, kept.join("&"))
}

async fn proxy(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (query_key, query) = split_apikey(uri.query().unwrap_or_default());
    // Preflight requests carry no credentials; PostgREST answers CORS itself.
    if method != Method::OPTIONS {
        if let Some(refused) = api_key_refusal(&state.keys, &headers, query_key) {
            return refused;
        }
    }

    let rest = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let path = if rest.is_empty() { "/" } else { rest };
    *crate::state::lock(&state.gateway_requests).entry(path.to_owned()).or_default() += 1;
    let mut url = format!("{}{path}", state.config.postgrest_url);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let upstream = state
        .http
        .request(method.clone(), &url)
        .headers(passthrough(&headers))
        .body(body)
        .timeout(UPSTREAM_TIMEOUT)
        .send()
        .await;
    let response = match upstream {
        Ok(r) => r,
        Err(e) => {
            crate::log!(error, "gateway", "{method} {path} upstream error: {}", crate::logging::error_chain(&e));
            return kong_error(StatusCode::BAD_GATEWAY, "An invalid response was received from the upstream server");
        }
    };
    let status = response.status();
    let response_headers = passthrough(response.headers());
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            crate::log!(error, "gateway", "{method} {path} upstream body error: {}", crate::logging::error_chain(&e));
            return kong_error(StatusCode::BAD_GATEWAY, "An invalid response was received from the upstream server");
        }
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    *out.headers_mut() = response_headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apikey_query_is_taken_out() {
        assert_eq!(split_apikey("select=*&apikey=a%2Eb&id=eq.1"), (Some("a.b".into()), "select=*&id=eq.1".into()));
        assert_eq!(split_apikey("id=eq.1"), (None, "id=eq.1".into()));
        assert_eq!(split_apikey(""), (None, String::new()));
    }

    #[test]
    fn hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("host", "x".parse().unwrap());
        h.insert("connection", "close".parse().unwrap());
        h.insert("prefer", "return=representation".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        let out = passthrough(&h);
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("prefer") && out.contains_key("authorization"));
    }
}
