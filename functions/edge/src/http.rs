//! Building responses and reading requests, the same way on every route.

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use outcall_core::body::{self, BodyPlan, CappedBody};
use outcall_core::config::{Config, ConfigError};
use outcall_core::error::{constant_time_eq, ApiError};
use outcall_core::routes::{self, Route};
use serde::Serialize;
use std::cell::OnceCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use worker::{
    wasm_bindgen::JsValue, web_sys, AbortController, AbortSignal, ByteStream, Delay, Env, Headers, Method, Request,
    Response,
};

/// The request as workerd hands it to the Worker. Not workers-rs's `Request`: making one reads `request.cf`, which
/// workerd builds for the asking (a JSON parse) on every request, and only the listener's route needs it
/// ([`Incoming::into_request`]). Its URL is split as serialized, never parsed again (`routes::path_and_query`).
pub struct Incoming {
    request: web_sys::Request,
    url: String,
}

impl Incoming {
    pub fn new(request: web_sys::Request) -> Self {
        let url = request.url();
        Incoming { request, url }
    }

    /// The method as sent (the fetch API upper-cases only the standard ones). Not worker-rs's `Method`: it reads
    /// a method it has no name for (`QUERY`, `PROPFIND`) as GET, which would answer it.
    pub fn method(&self) -> String {
        self.request.method()
    }

    /// The URL's path, percent-encoded as sent.
    pub fn path(&self) -> &str {
        routes::path_and_query(&self.url).0
    }

    /// The URL as sent.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn query(&self) -> Option<&str> {
        routes::path_and_query(&self.url).1
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.request.headers().get(name).ok().flatten()
    }

    /// For what takes workers-rs's `Request` (a Durable Object's `fetch`).
    pub fn into_request(self) -> Request {
        Request::from(self.request)
    }
}

/// What every route returns: a response, or an error that becomes `{"error": {...}}`.
pub type Answer = Result<Response, ApiError>;

pub fn json<T: Serialize>(status: u16, body: &T) -> Answer {
    Response::from_json(body)
        .map(|r| r.with_status(status))
        .map_err(|_| ApiError::new(500, "internal_error", "the response could not be encoded"))
}

/// Sets a header on an answer being built; a name or value the runtime refuses is our bug, answered as 500.
pub fn set_header(response: &Response, name: &str, value: &str) -> Result<(), ApiError> {
    response.headers().set(name, value).map_err(|_| ApiError::new(500, "internal_error", format!("bad header {name}")))
}

pub fn error(error: &ApiError) -> worker::Result<Response> {
    Ok(Response::from_json(&error.body())?.with_status(error.status))
}

/// One Worker variable: a secret (preferred) or a plain var.
fn variable(env: &Env, name: &str) -> Option<String> {
    env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
}

thread_local! {
    /// The configuration as the isolate's first request read it: an isolate's variables never change, so it is
    /// read and checked once (a wrong one stays the same clear `configuration_error` for every request).
    static CONFIG: OnceCell<Result<Rc<Config>, ApiError>> = const { OnceCell::new() };
}

/// The whole configuration (read once per isolate).
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    CONFIG.with(|cached| {
        cached
            .get_or_init(|| Config::from_lookup(|name| variable(env, name)).map(Rc::new).map_err(ApiError::from))
            .clone()
    })
}

/// Reads only what a route checks its caller with (`outcall_core::config::webhook_secret` and the like),
/// before the whole configuration.
pub fn credential<T>(
    env: &Env,
    read: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<T, ConfigError>,
) -> Result<T, ApiError> {
    read(&|name| variable(env, name)).map_err(ApiError::from)
}

/// The request's body, as `outcall_core::body` decides for its route: a `Content-Length` over the
/// route's cap is refused (413) before a byte is read; otherwise the body is streamed in and refused the
/// moment it passes the cap (a body without `Content-Length` too). Call it after every check that needs
/// no body (the route's credential header first, where it has one).
/// `batch_max_targets` (`BATCH_MAX_TARGETS`) sizes the batch route's cap; the other routes' caps are fixed.
pub async fn body(req: &Incoming, route: Route, batch_max_targets: usize) -> Result<String, ApiError> {
    let length = req.header("Content-Length");
    let method = req.method();
    match body::plan(&method, route, length.as_deref(), batch_max_targets)? {
        BodyPlan::Ignore => Ok(String::new()),
        BodyPlan::Read { cap } => read_capped(req, cap).await,
    }
}

async fn read_capped(req: &Incoming, cap: usize) -> Result<String, ApiError> {
    let unreadable = || ApiError::bad_request("invalid_body", "the request body could not be read");
    let mut received = CappedBody::new(cap);
    // No body at all (workerd gives none for an empty one) reads as empty text.
    let Some(mut stream) = req.request.body().map(ByteStream::from) else {
        return received.finish();
    };
    while let Some(chunk) = stream.next().await {
        // Past the cap the stream is dropped unread: the rest of the body is never taken in.
        received.push(&chunk.map_err(|_| unreadable())?)?;
    }
    received.finish()
}

/// Checks a shared-secret header in constant time.
pub fn require_secret(req: &Incoming, header_name: &str, expected: &str) -> Result<(), ApiError> {
    match req.header(header_name) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(format!("{header_name} does not match"))),
        None => Err(ApiError::unauthorized(format!("{header_name} is missing"))),
    }
}

/// An outgoing request: `method` to `url` with `headers` and, when given, a text body (fetch's defaults
/// otherwise, as `worker::RequestInit` would set them). Built on web-sys's `RequestInit`: worker's also
/// converts its Cloudflare `cf` options, always default here, and that conversion is ~13 KB of wasm
/// (docs/wasm-size.md).
pub fn outgoing(method: Method, url: &str, headers: Headers, body: Option<&str>) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(&headers.0);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(body));
    }
    web_sys::Request::new_with_str_and_init(url, &init).map(Request::from).map_err(|e| {
        worker::Error::JsError(e.as_string().unwrap_or_else(|| "invalid URL or options for Request".to_owned()))
    })
}

/// `fetch(signal)`'s result if it comes within `limit`; otherwise the fetch behind it is aborted and nothing
/// comes. (An outgoing request is never left to hang a Worker's invocation.)
pub async fn within<T, F: Future<Output = Option<T>>>(
    limit: Duration,
    fetch: impl FnOnce(AbortSignal) -> F,
) -> Option<T> {
    let controller = AbortController::default();
    let work = std::pin::pin!(fetch(controller.signal()));
    let timeout = std::pin::pin!(Delay::from(limit));
    match select(work, timeout).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => {
            controller.abort();
            None
        }
    }
}
