//! CORS for `/auth/v1`, as the hosted API answers a browser (the dashboard calls the sandbox from the Worker's
//! origin): preflights are answered here, before the API key check (a preflight carries no credentials), and
//! every answer names the caller's origin and exposes the headers supabase-js reads.

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// What supabase-js sends (auth-js `_request`, SupabaseClient's global headers) and GoTrue's own list.
const ALLOW_HEADERS: &str =
    "apikey, authorization, content-type, accept, x-client-info, x-supabase-api-version, x-client-ip, x-retry-count";
const EXPOSE_HEADERS: &str = "x-sb-error-code, x-supabase-api-version, x-total-count, link";

pub async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(ORIGIN).cloned();
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        allow_origin(headers, origin);
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
        // Whatever the browser asks to send is allowed (as PostgREST does); our list when it asks nothing.
        let requested = request.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested.unwrap_or(HeaderValue::from_static(ALLOW_HEADERS)));
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return response;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    response
}

/// The caller's origin echoed (with credentials allowed), or `*` for a caller that sent none.
fn allow_origin(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    match origin {
        Some(origin) => {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
}
