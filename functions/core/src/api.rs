//! The batch API (`/api/v1`): which route a request is, who may call it, how the SQL functions'
//! answers become HTTP answers. The OpenAPI document (`openapi.json` beside this crate) describes the
//! same routes; a test holds the two together.

use crate::batch::{self, BatchRequestError, ItemError};
use crate::error::{constant_time_eq, ApiError};
use crate::ids::BatchId;
use crate::rpc::{BatchCreated, DatabaseItemError};
use serde_json::{json, Map, Value};

/// The API's OpenAPI 3.1 description, served at `/api/v1/openapi.json`.
pub const OPENAPI_DOCUMENT: &str = include_str!("../openapi.json");

/// Every route, as the OpenAPI document names it: (method, path template).
pub const ROUTES: [(&str, &str); 8] = [
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/batches"),
    ("GET", "/api/v1/batches"),
    ("GET", "/api/v1/batches/{batchId}"),
    ("GET", "/api/v1/batches/{batchId}/transcripts"),
    ("GET", "/api/v1/batches/{batchId}/events"),
    ("POST", "/api/v1/batches/{batchId}/cancel"),
    ("POST", "/api/v1/batches/{batchId}/retry-failed"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    OpenApi,
    CreateBatch,
    ListBatches,
    GetBatch(BatchId),
    Transcripts(BatchId),
    Events(BatchId),
    Cancel(BatchId),
    RetryFailed(BatchId),
}

/// The route for a request under `/api/v1`: `None` for paths outside the API, an error for a known path
/// with the wrong method (405) or a malformed batch id (400).
pub fn route(method: &str, path: &str) -> Option<Result<Route, ApiError>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (template, id) = match segments.as_slice() {
        ["openapi.json"] => ("/api/v1/openapi.json", None),
        ["batches"] => ("/api/v1/batches", None),
        ["batches", id] => ("/api/v1/batches/{batchId}", Some(*id)),
        ["batches", id, action @ ("transcripts" | "events" | "cancel" | "retry-failed")] => {
            (ROUTES.iter().find(|(_, t)| t.ends_with(action)).map_or("", |(_, t)| t), Some(*id))
        }
        _ => return None,
    };
    if !ROUTES.iter().any(|(m, t)| *m == method && *t == template) {
        let allowed = allowed_methods(template).join(", ");
        let message = format!("{path} takes {allowed}, not {method}");
        return Some(Err(ApiError::new(405, "method_not_allowed", message)));
    }
    let batch = match id.map(BatchId::parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Some(Err(ApiError::bad_request("invalid_id", "a batch id is a UUID"))),
    };
    Some(Ok(match (method, template, batch) {
        (_, "/api/v1/openapi.json", _) => Route::OpenApi,
        ("POST", "/api/v1/batches", _) => Route::CreateBatch,
        ("GET", "/api/v1/batches", _) => Route::ListBatches,
        (_, t, Some(id)) if t.ends_with("/transcripts") => Route::Transcripts(id),
        (_, t, Some(id)) if t.ends_with("/events") => Route::Events(id),
        (_, t, Some(id)) if t.ends_with("/cancel") => Route::Cancel(id),
        (_, t, Some(id)) if t.ends_with("/retry-failed") => Route::RetryFailed(id),
        (_, _, Some(id)) => Route::GetBatch(id),
        _ => return None,
    }))
}

/// The methods a route template takes (a 405's `Allow` header).
pub fn allowed_methods(template: &str) -> Vec<&'static str> {
    ROUTES.iter().filter(|(_, t)| *t == template).map(|(m, _)| *m).collect()
}

/// The `Allow` header of a 405 for `path`: the methods its route takes.
pub fn allow_header(path: &str) -> Option<String> {
    ["GET", "POST"]
        .into_iter()
        .filter(|m| matches!(route(m, path), Some(Ok(_)) | Some(Err(ApiError { status: 400, .. }))))
        .map(str::to_owned)
        .reduce(|a, b| format!("{a}, {b}"))
}

/// `Authorization: Bearer <API_KEY>`: missing → 401, wrong → 403. Compared in constant time.
pub fn authorize(authorization: Option<&str>, api_key: &str) -> Result<(), ApiError> {
    let Some(given) = authorization.and_then(|h| h.trim().strip_prefix("Bearer ")) else {
        return Err(ApiError::unauthorized("send the API key as Authorization: Bearer <key>"));
    };
    if constant_time_eq(given.trim().as_bytes(), api_key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(403, "forbidden", "the API key does not match"))
    }
}

/// A page of a list: `?limit=&offset=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u32,
}

pub const MAX_PAGE: u32 = 1_000;

impl Page {
    /// Reads `limit` (1..=1000, default `default_limit`) and `offset` (>= 0, default 0) from a query
    /// string; other parameters are refused so a typo (`limt`) is not silently ignored.
    pub fn from_query(query: Option<&str>, default_limit: u32) -> Result<Self, ApiError> {
        let mut page = Page { limit: default_limit, offset: 0 };
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let number = value.parse::<u32>();
            match (name.as_ref(), number) {
                ("limit", Ok(n @ 1..=MAX_PAGE)) => page.limit = n,
                ("offset", Ok(n)) => page.offset = n,
                ("limit", _) => return Err(invalid_parameter(format!("limit must be 1 to {MAX_PAGE}, got {value:?}"))),
                ("offset", _) => return Err(invalid_parameter(format!("offset must be 0 or more, got {value:?}"))),
                (other, _) => return Err(invalid_parameter(format!("unknown query parameter {other:?}"))),
            }
        }
        Ok(page)
    }
}

fn invalid_parameter(message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message)
}

/// A batch accepted (or replayed under the same `Idempotency-Key`): 202 with a `Location`.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub location: String,
    pub replayed: bool,
    pub body: Value,
}

/// `create_batch`'s answer as HTTP: created/replayed → 202, conflict → 409, invalid → 400. (An answer
/// of another shape never gets here: reading it failed, a 502.)
pub fn create_answer(rpc: &BatchCreated, public_base_url: &str) -> Result<Accepted, ApiError> {
    match rpc {
        BatchCreated::Created(batch) | BatchCreated::Replayed(batch) => {
            let location = format!("/api/v1/batches/{}", batch.batch_id);
            let body = json!({
                "batchId": batch.batch_id,
                "statusUrl": format!("{public_base_url}{location}"),
                "accepted": batch.accepted,
                "rejected": batch.rejected,
            });
            Ok(Accepted { location, replayed: matches!(rpc, BatchCreated::Replayed(_)), body })
        }
        BatchCreated::Conflict { batch_id } => Err(ApiError::new(
            409,
            "idempotency_conflict",
            format!("this Idempotency-Key was used for batch {batch_id} with a different body"),
        )),
        BatchCreated::Invalid { errors } => Err(validation_error(errors.iter().map(database_item_error).collect())),
    }
}

/// 400 `validation_error` listing every problem.
pub fn validation_error(items: Vec<ItemError>) -> ApiError {
    let message = match items.len() {
        1 => format!("{}: {}", items[0].path, items[0].message),
        n => format!("{n} problems in the request; see items"),
    };
    let items = items.iter().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)).collect();
    ApiError::bad_request("validation_error", message).with_items(items)
}

/// A problem only the database could see, in the same shape as ours.
fn database_item_error(raw: &DatabaseItemError) -> ItemError {
    let field = raw.field.clone().unwrap_or_default();
    let path = match (raw.index, raw.pending_call_id.as_deref()) {
        (Some(i), _) => format!("targets[{i}].{field}"),
        (None, Some(id)) => format!("pendingCallIds ({id})"),
        (None, None) => field,
    };
    let code = match raw.code.as_deref() {
        Some("invalid_timezone") => "invalid_timezone",
        Some("window_outside_policy") => "window_outside_policy",
        Some("nothing_to_call") => "nothing_to_call",
        _ => "invalid",
    };
    let message = raw.message.clone().unwrap_or_default();
    ItemError { path, index: raw.index, code, message, value: raw.value.clone() }
}

/// The database's snake_case keys as the API's camelCase, at every depth but inside `metadata`, which
/// is the caller's own and comes back as it was given.
pub fn api_json(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if k == "metadata" { v } else { api_json(v) };
                    (camel_case(&k), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(api_json).collect()),
        other => other,
    }
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match (c, upper) {
            ('_', _) => upper = !out.is_empty(),
            (c, true) => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

/// How often the event stream reads the batch's progress, and how often it says it is still there.
pub const EVENTS_POLL_MS: u64 = 1_000;
pub const EVENTS_KEEPALIVE_MS: u64 = 15_000;

/// The event stream's decisions (`GET /api/v1/batches/:id/events`): after each read of the batch's
/// progress, what to send. A `progress` event when it changed, a comment when nothing was sent for
/// `EVENTS_KEEPALIVE_MS` (proxies close silent streams), and a last event: `end` with the final progress
/// once every row is terminal, or `error` when the progress cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressFeed {
    last: Option<Value>,
    sent: u64,
    quiet_since_ms: u64,
    done: bool,
}

impl ProgressFeed {
    pub fn new(now_ms: u64) -> Self {
        Self { last: None, sent: 0, quiet_since_ms: now_ms, done: false }
    }

    /// The stream has sent its last event.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What to send after reading `batch_progress_of` (its raw answer, or the read's error): a chunk of
    /// the stream, or `None` when there is nothing new yet (read again after `EVENTS_POLL_MS`).
    pub fn on_read(&mut self, read: Result<Value, ApiError>, now_ms: u64) -> Option<String> {
        let progress = match read {
            Ok(progress) if !progress.is_null() => progress,
            Ok(_) => return Some(self.last_event("error", &ApiError::not_found("the batch is gone").body())),
            Err(e) => return Some(self.last_event("error", &e.body())),
        };
        if progress.get("completed_at").is_some_and(|t| !t.is_null()) {
            return Some(self.last_event("end", &api_json(progress)));
        }
        if self.last.as_ref() != Some(&progress) {
            self.quiet_since_ms = now_ms;
            let chunk = self.event("progress", &api_json(progress.clone()));
            self.last = Some(progress);
            return Some(chunk);
        }
        if now_ms.saturating_sub(self.quiet_since_ms) >= EVENTS_KEEPALIVE_MS {
            self.quiet_since_ms = now_ms;
            return Some(": still following\n\n".to_owned());
        }
        None
    }

    fn last_event(&mut self, name: &str, data: &Value) -> String {
        self.done = true;
        self.event(name, data)
    }

    /// One Server-Sent Event, numbered from 1.
    fn event(&mut self, name: &str, data: &Value) -> String {
        self.sent += 1;
        format!("id: {}\nevent: {name}\ndata: {data}\n\n", self.sent)
    }
}

/// A read or change of one batch as the API answers it: `null` (no such batch) → 404, a cancelled
/// batch's refusal → 409, anything else in camelCase.
pub fn batch_answer(answer: Value, batch: Option<BatchId>) -> Result<Value, ApiError> {
    let which = batch.map_or_else(String::new, |id| format!(" {id}"));
    if answer.is_null() {
        return Err(ApiError::not_found(format!("no batch{which}")));
    }
    if answer.get("error").and_then(Value::as_str) == Some("batch_cancelled") {
        return Err(ApiError::new(409, "batch_cancelled", format!("batch{which} was cancelled")));
    }
    Ok(api_json(answer))
}

/// The `Idempotency-Key` header, when sent: 1 to 255 visible ASCII characters, else 400.
pub fn idempotency_key(header: Option<&str>) -> Result<Option<String>, ApiError> {
    header
        .map(|raw| {
            batch::parse_idempotency_key(raw)
                .map(str::to_owned)
                .map_err(|m| ApiError::bad_request("invalid_idempotency_key", m))
        })
        .transpose()
}

impl From<BatchRequestError> for ApiError {
    fn from(e: BatchRequestError) -> Self {
        match e {
            BatchRequestError::Malformed(message) => ApiError::bad_request("invalid_json", message),
            BatchRequestError::Invalid(items) => validation_error(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn ok(method: &str, path: &str) -> Route {
        route(method, path).expect("an API path").expect("a route")
    }

    #[test]
    fn routes_every_documented_path() {
        let id = BatchId::parse(ID).unwrap();
        assert_eq!(ok("GET", "/api/v1/openapi.json"), Route::OpenApi);
        assert_eq!(ok("POST", "/api/v1/batches"), Route::CreateBatch);
        assert_eq!(ok("GET", "/api/v1/batches/"), Route::ListBatches);
        assert_eq!(ok("GET", &format!("/api/v1/batches/{ID}")), Route::GetBatch(id));
        assert_eq!(ok("GET", &format!("/api/v1/batches/{ID}/transcripts")), Route::Transcripts(id));
        assert_eq!(ok("GET", &format!("/api/v1/batches/{ID}/events")), Route::Events(id));
        assert_eq!(ok("POST", &format!("/api/v1/batches/{ID}/cancel")), Route::Cancel(id));
        assert_eq!(ok("POST", &format!("/api/v1/batches/{ID}/retry-failed")), Route::RetryFailed(id));
    }

    #[test]
    fn refuses_wrong_methods_and_ids_and_ignores_other_paths() {
        let status = |m: &str, p: &str| route(m, p).unwrap().unwrap_err().status;
        assert_eq!(status("DELETE", "/api/v1/batches"), 405);
        assert_eq!(status("GET", &format!("/api/v1/batches/{ID}/cancel")), 405);
        assert_eq!(status("GET", "/api/v1/batches/not-a-uuid"), 400);
        assert_eq!(allow_header("/api/v1/batches").as_deref(), Some("GET, POST"));
        assert_eq!(allow_header(&format!("/api/v1/batches/{ID}/cancel")).as_deref(), Some("POST"));
        assert!(route("GET", "/api/v1/other").is_none());
        assert!(route("GET", &format!("/api/v1/batches/{ID}/calls")).is_none());
        assert!(route("GET", "/health").is_none());
    }

    #[test]
    fn checks_the_api_key() {
        assert!(authorize(Some("Bearer k3y"), "k3y").is_ok());
        assert_eq!(authorize(None, "k3y").unwrap_err().status, 401);
        assert_eq!(authorize(Some("Basic k3y"), "k3y").unwrap_err().status, 401);
        assert_eq!(authorize(Some("Bearer k3Y"), "k3y").unwrap_err().status, 403);
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(Page::from_query(None, 100), Ok(Page { limit: 100, offset: 0 }));
        assert_eq!(Page::from_query(Some("limit=5&offset=10"), 100), Ok(Page { limit: 5, offset: 10 }));
        for bad in ["limit=0", "limit=1001", "offset=-1", "limit=x", "limt=5"] {
            assert_eq!(Page::from_query(Some(bad), 100).unwrap_err().code, "invalid_parameter", "{bad}");
        }
    }

    #[test]
    fn create_answers_map_to_http() {
        let read = |raw: Value| serde_json::from_value::<BatchCreated>(raw).expect("a create_batch answer");
        let created = read(json!({"outcome": "created", "batch_id": ID, "accepted": 3,
                             "rejected": [{"pendingCallId": ID, "code": "not_found", "message": "m"}]}));
        let accepted = create_answer(&created, "https://w.example").unwrap();
        assert_eq!(accepted.location, format!("/api/v1/batches/{ID}"));
        assert_eq!(accepted.body["statusUrl"], format!("https://w.example/api/v1/batches/{ID}"));
        assert_eq!(accepted.body["accepted"], 3);
        assert_eq!(accepted.body["rejected"][0]["code"], "not_found");
        assert!(!accepted.replayed);
        let replayed = read(json!({"outcome": "replayed", "batch_id": ID, "accepted": 3, "rejected": []}));
        assert!(create_answer(&replayed, "https://w.example").unwrap().replayed);
        let conflict = create_answer(&read(json!({"outcome": "conflict", "batch_id": ID})), "x").unwrap_err();
        assert_eq!((conflict.status, conflict.code), (409, "idempotency_conflict"));
        let invalid = read(json!({"outcome": "invalid", "errors": [
            {"index": 2, "field": "clinic_timezone", "code": "invalid_timezone", "message": "unknown zone", "value": "Mars/Base"}]}));
        let error = create_answer(&invalid, "x").unwrap_err();
        assert_eq!((error.status, error.code), (400, "validation_error"));
        assert_eq!(error.body()["error"]["items"][0]["path"], "targets[2].clinic_timezone");
        assert_eq!(error.body()["error"]["items"][0]["index"], 2);
        let copied = read(json!({"outcome": "invalid", "errors": [
            {"index": null, "pending_call_id": ID, "field": "clinic_timezone", "code": "nothing_to_call", "message": "m", "value": null}]}));
        assert_eq!(
            create_answer(&copied, "x").unwrap_err().body()["error"]["items"][0]["path"],
            format!("pendingCallIds ({ID})")
        );
        assert!(serde_json::from_value::<BatchCreated>(json!({})).is_err(), "no outcome: the Worker answers 502");
    }

    #[test]
    fn api_json_is_camel_case_except_the_callers_metadata() {
        let db = json!({"batch_id": 1, "counts": {"in_progress": 2}, "results": [{"pending_call_id": 3}],
                        "metadata": {"my_key": {"inner_key": 1}}});
        assert_eq!(
            api_json(db),
            json!({"batchId": 1, "counts": {"inProgress": 2}, "results": [{"pendingCallId": 3}],
                   "metadata": {"my_key": {"inner_key": 1}}})
        );
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        use std::collections::BTreeSet;
        let document: Value = serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = BTreeSet::new();
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                if !methods.contains(&method.as_str()) {
                    continue;
                }
                let route = (method.to_uppercase(), path.clone());
                let statuses: Vec<&String> = operation["responses"].as_object().expect("responses").keys().collect();
                assert!(statuses.iter().any(|s| s.starts_with('2')), "{route:?} has no 2xx response");
                let public = path == "/api/v1/openapi.json";
                assert_eq!(
                    statuses.iter().any(|s| *s == "401"),
                    !public,
                    "{route:?}: a 401 exactly when a key is needed"
                );
                assert_eq!(operation.get("security") == Some(&json!([])), public, "{route:?}: security");
                documented.insert(route);
            }
        }
        let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(
            documented.difference(&routes).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented, not routed"
        );
        assert_eq!(
            routes.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routed, not documented"
        );
        assert_eq!(document["security"], json!([{"bearerAuth": []}]));
        assert_eq!(document["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    }

    #[test]
    fn the_event_stream_sends_changes_keeps_alive_and_ends_with_the_batch() {
        let progress = |completed: u64, completed_at: Value| json!({"batch_id": ID, "counts": {"in_progress": 2 - completed, "completed": completed}, "completed_at": completed_at});
        let mut feed = ProgressFeed::new(0);
        let first = feed.on_read(Ok(progress(0, Value::Null)), 0).unwrap();
        assert_eq!(
            first,
            format!(
                "id: 1\nevent: progress\ndata: {}\n\n",
                json!({"batchId": ID, "counts": {"inProgress": 2, "completed": 0}, "completedAt": null})
            )
        );
        assert_eq!(feed.on_read(Ok(progress(0, Value::Null)), 1_000), None, "nothing new, nothing sent");
        assert_eq!(
            feed.on_read(Ok(progress(0, Value::Null)), EVENTS_KEEPALIVE_MS),
            Some(": still following\n\n".into())
        );
        assert_eq!(feed.on_read(Ok(progress(0, Value::Null)), EVENTS_KEEPALIVE_MS + 1_000), None);
        assert!(feed
            .on_read(Ok(progress(1, Value::Null)), EVENTS_KEEPALIVE_MS + 2_000)
            .unwrap()
            .starts_with("id: 2\nevent: progress\n"));
        assert!(!feed.is_done());
        let end = feed.on_read(Ok(progress(2, json!("2026-11-21T10:00:00Z"))), EVENTS_KEEPALIVE_MS + 3_000).unwrap();
        assert!(end.starts_with("id: 3\nevent: end\ndata: "), "{end}");
        assert!(end.contains(r#""completed":2"#), "the end carries the final counts: {end}");
        assert!(feed.is_done());

        let mut gone = ProgressFeed::new(0);
        assert!(gone.on_read(Ok(Value::Null), 0).unwrap().contains("event: error"));
        assert!(gone.is_done());
        let mut failing = ProgressFeed::new(0);
        assert!(failing.on_read(Err(ApiError::upstream("db down")), 0).unwrap().contains("upstream_error"));
        assert!(failing.is_done());
    }

    #[test]
    fn batch_answers_map_to_http() {
        let id = BatchId::parse(ID).unwrap();
        assert_eq!(batch_answer(Value::Null, Some(id)).unwrap_err().status, 404);
        let refused = batch_answer(json!({"batch_id": ID, "error": "batch_cancelled"}), Some(id)).unwrap_err();
        assert_eq!((refused.status, refused.code), (409, "batch_cancelled"));
        assert_eq!(
            batch_answer(json!({"batch_id": ID, "requeued": 1}), Some(id)),
            Ok(json!({"batchId": ID, "requeued": 1}))
        );
    }

    #[test]
    fn request_problems_are_400s() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(idempotency_key(Some(" k-1 ")), Ok(Some("k-1".into())));
        assert_eq!(idempotency_key(Some("a b")).unwrap_err().code, "invalid_idempotency_key");
        let malformed: ApiError = BatchRequestError::Malformed("not JSON".into()).into();
        assert_eq!((malformed.status, malformed.code), (400, "invalid_json"));
        let invalid: ApiError = BatchRequestError::Invalid(vec![]).into();
        assert_eq!(invalid.code, "validation_error");
    }
}
