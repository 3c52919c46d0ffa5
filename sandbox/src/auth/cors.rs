//! CORS for `/auth/v1`, as the hosted API answers a browser (the dashboard calls the sandbox from the Worker's
//! origin): preflights are answered here, before the API key check (a preflight carries no credentials), and
//! every answer allows any origin and exposes the headers supabase-js reads. Like PostgREST 12 behind
//! `/rest/v1` (`Access-Control-Allow-Origin: *`, no credentials: supabase-js sends none, its key and token
//! travel in headers), so both halves of the Supabase URL answer a browser alike.

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// What supabase-js sends (auth-js `_request`, SupabaseClient's global headers) and GoTrue's own list.
const ALLOW_HEADERS: &str =
    "apikey, authorization, content-type, accept, x-client-info, x-supabase-api-version, x-client-ip, x-retry-count";
const EXPOSE_HEADERS: &str = "x-sb-error-code, x-supabase-api-version, x-total-count, link";

pub async fn cors(request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
        // What the browser asks to send, and ours (PostgREST adds its defaults to the requested ones too).
        let requested = request.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok());
        let allowed = HeaderValue::from_str(&allowed_headers(requested.unwrap_or_default()))
            .unwrap_or(HeaderValue::from_static(ALLOW_HEADERS));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed);
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return response;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    response
}

/// The requested headers followed by ours, each once (names compared case-insensitively).
fn allowed_headers(requested: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    for name in requested.split(',').chain(ALLOW_HEADERS.split(',')).map(|n| n.trim().to_ascii_lowercase()) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn requested_headers_come_first_and_once() {
        assert_eq!(
            super::allowed_headers("X-Custom, apikey"),
            "x-custom, apikey, authorization, content-type, accept, x-client-info, x-supabase-api-version, \
             x-client-ip, x-retry-count"
        );
        assert_eq!(super::allowed_headers(""), super::ALLOW_HEADERS);
    }
}
