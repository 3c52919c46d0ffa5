//! The OpenAPI document (`functions/core/openapi.json`) kept true against the running Worker: the
//! Worker serves it as written; every documented path is routed; every documented (route, status) is
//! produced here, except those listed in `NOT_EXERCISED`, and every answer's body (and required
//! headers) match the document's schema for that route and status.
//!
//! 500 and 502 come from two spare Workers (as `configuration.rs` starts one): one without `API_KEY` and
//! `SUPABASE_ANON_KEY` (500 `configuration_error` on every route that takes the API key, and the dashboard's
//! configuration), one whose `SUPABASE_URL` is a closed loopback port (502 `upstream_error` on every route that
//! reads or writes, and on the dashboard's routes, whose signing keys cannot be fetched either).
//!
//! The dashboard's routes (tag `dashboard`) take a user's access token (`userJwt`), not the API key: the API key
//! is no JWT (401 there, not 403), and their 200, 403 and 404 come from users made here (`outcall_e2e::users`).
//!
//! The schemas are checked by `schema::validate`, a validator of the JSON Schema subset the document
//! uses; a keyword it does not know is an error, not ignored, so the document cannot say more than is
//! checked (its own test proves it refuses wrong bodies).

use outcall_core::api::OPENAPI_DOCUMENT;
use outcall_e2e::users::{self, access_token};
use outcall_e2e::worker::SpareWorker;
use outcall_e2e::{fresh_phone, sample_row, sms, Scenario, Stack};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Documented (method, path, status) this test does not produce, with why. Keep it short: the test
/// fails if a documented answer is neither produced nor listed here, or if a listed one is produced.
///
/// Every status is produced today. Not produced, within a produced status: 500 `internal_error` (an
/// answer the Worker cannot encode), 400 `invalid_body` (a body workerd cannot read), and the event
/// stream's `error` event (the database failing mid-stream).
const NOT_EXERCISED: &[(&str, &str, u16, &str)] = &[];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const OPENAPI_PATH: &str = "/api/v1/openapi.json";
const ESTIMATE_PATH: &str = "/api/v1/batches/estimate";

/// Which `Authorization` a request carries.
#[derive(Clone, Copy)]
enum Key {
    Right,
    Wrong,
    Missing,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Client {
    stack: Stack,
    /// Without the stack client's 30 s limit on a whole answer: an event stream may take longer.
    http: reqwest::Client,
}

impl Client {
    async fn send(
        &self,
        base: &str,
        method: &str,
        path: &str,
        key: Key,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{base}{path}"));
        match key {
            Key::Right => request = request.header("Authorization", format!("Bearer {}", self.stack.api_key)),
            Key::Wrong => request = request.header("Authorization", "Bearer not-the-api-key"),
            Key::Missing => {}
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_owned());
        }
        let answer = async {
            let response = request.send().await.unwrap_or_else(|e| panic!("{base}{path} unreachable: {e}"));
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            Answer { status, headers, text: response.text().await.unwrap_or_default() }
        };
        tokio::time::timeout(Duration::from_secs(90), answer)
            .await
            .unwrap_or_else(|_| panic!("{path}: the answer did not end within 90 s"))
    }

    async fn main(&self, method: &str, path: &str, key: Key) -> Answer {
        self.send(&self.stack.worker_url, method, path, key, &[], None).await
    }

    async fn estimate(&self, body: &str) -> Answer {
        self.send(&self.stack.worker_url, "POST", ESTIMATE_PATH, Key::Right, &[], Some(body)).await
    }

    async fn create(&self, headers: &[(&str, &str)], body: &str) -> Answer {
        self.send(&self.stack.worker_url, "POST", "/api/v1/batches", Key::Right, headers, Some(body)).await
    }

    async fn create_sms(&self, headers: &[(&str, &str)], body: &str) -> Answer {
        self.send(&self.stack.worker_url, "POST", "/api/v1/sms-batches", Key::Right, headers, Some(body)).await
    }
}

/// The document and what this run has seen of it.
struct Contract {
    doc: Value,
    seen: BTreeSet<(String, String, u16)>,
    drift: Vec<String>,
}

impl Contract {
    fn new() -> Self {
        Self {
            doc: serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is JSON"),
            seen: BTreeSet::new(),
            drift: Vec::new(),
        }
    }

    /// Every documented (METHOD, path, status).
    fn documented(&self) -> BTreeSet<(String, String, u16)> {
        let mut all = BTreeSet::new();
        for (path, method, operation) in operations(&self.doc) {
            for status in operation["responses"].as_object().unwrap().keys() {
                all.insert((method.clone(), path.clone(), status.parse().expect("numeric statuses only")));
            }
        }
        all
    }

    /// The documented response of (method, path) with this status, `$ref` resolved.
    fn response(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let response = self.doc["paths"][path].get(method.to_lowercase())?.get("responses")?.get(status.to_string())?;
        Some(schema::resolve(&self.doc, response))
    }

    /// Checks an answer of (method, path) against the document and returns its body (JSON, or the
    /// text of a non-JSON media type). What does not match is recorded, and reported all at once by
    /// `assert_kept` (one run shows every drift, not just the first).
    fn check(&mut self, method: &str, path: &str, answer: &Answer) -> Value {
        let what = format!("{method} {path} → {}: {}", answer.status, answer.text);
        let (body, problems) = self.check_against(method, path, answer);
        self.drift.extend(problems.into_iter().map(|p| format!("{what}\n    {p}")));
        self.seen.insert((method.to_owned(), path.to_owned(), answer.status));
        body
    }

    fn check_against(&self, method: &str, path: &str, answer: &Answer) -> (Value, Vec<String>) {
        let mut problems = Vec::new();
        let json_body = || serde_json::from_str(&answer.text).unwrap_or_else(|_| Value::String(answer.text.clone()));
        let Some(response) = self.response(method, path, answer.status) else {
            return (json_body(), vec![format!("{} is not a documented answer of {method} {path}", answer.status)]);
        };
        let content = response["content"].as_object().expect("every documented answer has a body");
        assert_eq!(content.len(), 1, "one media type per answer");
        let (media, media_object) = content.iter().next().unwrap();
        let content_type = answer.header("content-type").unwrap_or_default();
        if !content_type.starts_with(media.as_str()) {
            problems.push(format!("Content-Type {content_type:?}, documented {media}"));
        }
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = schema::resolve(&self.doc, header);
            match answer.header(name) {
                None if header["required"] == true => problems.push(format!("the documented header {name} is missing")),
                None => {}
                Some(value) => {
                    let errors = schema::validate(&self.doc, &header["schema"], &json!(value));
                    problems.extend(errors.into_iter().map(|e| format!("header {name}: {e}")));
                }
            }
        }
        let body = if media == "application/json" {
            match serde_json::from_str(&answer.text) {
                Ok(body) => body,
                Err(e) => {
                    problems.push(format!("not JSON: {e}"));
                    return (Value::String(answer.text.clone()), problems);
                }
            }
        } else {
            Value::String(answer.text.clone())
        };
        if media == "text/event-stream" {
            // The stream is described by its events (`itemSchema`): each as {id, event, data}.
            for event in sse_event_objects(&answer.text) {
                let errors = schema::validate(&self.doc, &media_object["itemSchema"], &event);
                problems.extend(errors.into_iter().map(|e| format!("event {event}: {e}")));
            }
        } else {
            problems.extend(schema::validate(&self.doc, &media_object["schema"], &body));
        }
        (body, problems)
    }

    /// A value that must match a component schema (an event's data), recorded like `check`'s.
    fn check_schema(&mut self, name: &str, value: &Value, what: &str) {
        let errors = schema::validate(&self.doc, &json!({"$ref": format!("#/components/schemas/{name}")}), value);
        self.drift.extend(errors.into_iter().map(|e| format!("{what} as {name}: {value}\n    {e}")));
    }

    /// Every answer matched the document; every documented answer was produced, or is listed in
    /// `NOT_EXERCISED` (and only then).
    fn assert_kept(&self) {
        assert!(self.drift.is_empty(), "answers that differ from the document:\n  {}", self.drift.join("\n  "));
        let documented = self.documented();
        let unexercised: BTreeSet<(String, String, u16)> = documented.difference(&self.seen).cloned().collect();
        let listed: BTreeSet<(String, String, u16)> =
            NOT_EXERCISED.iter().map(|(m, p, s, _)| (m.to_string(), p.to_string(), *s)).collect();
        assert_eq!(unexercised, listed, "documented answers not produced (left) vs listed in NOT_EXERCISED (right)");
    }

    /// A request with a method the path does not take: 405, as documented on each of its operations.
    fn check_wrong_method(&mut self, path: &str, answer: &Answer) {
        let methods: Vec<String> = operations(&self.doc).filter(|(p, _, _)| p == path).map(|(_, m, _)| m).collect();
        assert!(!methods.is_empty(), "{path} is not documented");
        for method in methods {
            let body = self.check(&method, path, answer);
            assert_eq!(body["error"]["code"], "method_not_allowed");
        }
    }
}

/// (path, METHOD, operation) of every documented operation.
fn operations(doc: &Value) -> impl Iterator<Item = (String, String, &Value)> {
    doc["paths"].as_object().unwrap().iter().flat_map(|(path, item)| {
        item.as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| METHODS.contains(&m.as_str()))
            .map(move |(m, op)| (path.clone(), m.to_uppercase(), op))
    })
}

/// A documented path with its id (`{batchId}`, `{smsBatchId}`, `{classificationId}`) filled in, and its `{action}` with one it takes.
fn concrete(path: &str, id: &str) -> String {
    let action = if path.contains("/classifications/") {
        "invalidate"
    } else if path.contains("/operator/suppressions/") {
        "add"
    } else {
        "cancel"
    };
    path.replace("{batchId}", id)
        .replace("{smsBatchId}", id)
        .replace("{classificationId}", id)
        .replace("{action}", action)
}

/// Whether an operation takes a user's access token (the dashboard's), not the API key.
fn takes_user_token(operation: &Value) -> bool {
    operation["security"] == json!([{"userJwt": []}])
}

fn is_generic_404(answer: &Answer) -> bool {
    answer.status == 404 && answer.text.contains("no route for")
}

fn in_a_year() -> String {
    (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339()
}

/// A valid batch request: people to call a year from now (so nothing is dialled), human numbers.
fn batch_request(name: &str, extra_ids: &[&str]) -> Value {
    json!({
        "name": name,
        "targets": [
            {"phone": fresh_phone(Scenario::Human), "name": "Ada Brandt", "clinic_timezone": "America/Chicago",
             "appointment_time": "2027-01-12T09:30:00-06:00", "procedures": ["Hearing test"], "max_attempts": 2},
            {"phone": fresh_phone(Scenario::Human), "name": "Ben Castillo", "employee_dob": "1979-08-30",
             "variables": {"language": "es"}}
        ],
        "pendingCallIds": extra_ids,
        "schedule": {"notBefore": in_a_year(), "window": {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}},
        "metadata": {"source_system": "openapi-test", "nested_key": {"keep_me": 1}}
    })
}

/// Cancels the batch if the test fails before it does (it would wait a year, but need not linger).
struct CancelOnFailure {
    url: String,
    api_key: String,
}

impl Drop for CancelOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (url, key) = (self.url.clone(), self.api_key.clone());
        let cancel = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async { reqwest::Client::new().post(url).bearer_auth(key).send().await.map(|_| ()) })
        });
        if !matches!(cancel.join(), Ok(Ok(()))) {
            eprintln!("the test's batch could not be cancelled: {}", self.url);
        }
    }
}

/// Server-Sent Events as (event name, data): comments and ids skipped.
/// The stream's events as objects of their fields (`id`, `event`, `data`; comments left out, and the
/// reconnection hint, a block of `retry: <ms>` alone, which the SSE format dispatches as no event).
fn sse_event_objects(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = serde_json::Map::new();
            for line in block.lines().filter(|l| !l.starts_with(':')) {
                if let Some((field, value)) = line.split_once(": ") {
                    let joined = match event.get(field).and_then(Value::as_str) {
                        Some(before) => format!("{before}\n{value}"),
                        None => value.to_owned(),
                    };
                    event.insert(field.to_owned(), Value::String(joined));
                }
            }
            if event.len() == 1
                && event.get("retry").and_then(Value::as_str).is_some_and(|ms| ms.parse::<u32>().is_ok())
            {
                return None;
            }
            (!event.is_empty()).then_some(Value::Object(event))
        })
        .collect()
}

fn sse_events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            event.map(|e| (e, data.join("\n")))
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_document_is_what_the_worker_does() {
    let stack = Stack::from_env();
    // The spare Workers take a while to start: they start now and are awaited at the end.
    // (One after the other: two wrangler dev starting at once can collide.)
    let spares = tokio::spawn(async {
        let without_key =
            SpareWorker::start("openapi-without-api-key", &[("API_KEY", None), ("SUPABASE_ANON_KEY", None)]).await;
        // A loopback port nothing listens on: every database call fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let without_db = SpareWorker::start("openapi-unreachable-database", &[("SUPABASE_URL", Some(&url))]).await;
        [(without_key, "configuration_error"), (without_db, "upstream_error")]
    });

    let client = Client { stack: stack.clone(), http: reqwest::Client::new() };
    let mut contract = Contract::new();
    let unknown = uuid::Uuid::new_v4().to_string();

    // The Worker serves the document as written (a stale Worker: `./dev up` rebuilds it).
    let answer = client.main("GET", OPENAPI_PATH, Key::Missing).await;
    let served = contract.check("GET", OPENAPI_PATH, &answer);
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/core/openapi.json")).unwrap();
    assert_eq!(answer.text, on_disk, "the Worker serves another document than functions/core/openapi.json");
    assert_eq!(served, contract.doc);

    // Every documented path is routed (the generic 404 would mean it is not); an undocumented one is not.
    for (path, method, _) in operations(&contract.doc.clone()).collect::<Vec<_>>() {
        let answer = client.main(&method, &concrete(&path, &unknown), Key::Right).await;
        assert!(!is_generic_404(&answer), "{method} {path} is documented but not routed: {}", answer.text);
        contract.check(&method, &path, &answer);
    }
    assert!(is_generic_404(&client.main("GET", &format!("/api/v1/batches/{unknown}/calls"), Key::Right).await));

    // 401 without a key, 403 with a wrong one, on every route that takes one; 405 on every path.
    for (path, method, operation) in operations(&contract.doc.clone()).collect::<Vec<_>>() {
        if operation["security"] == json!([]) {
            continue;
        }
        let answer = client.main(&method, &concrete(&path, &unknown), Key::Missing).await;
        assert_eq!(
            (answer.status, contract.check(&method, &path, &answer)["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
        let answer = client.main(&method, &concrete(&path, &unknown), Key::Wrong).await;
        let expected = if takes_user_token(operation) { (401, Some("unauthorized")) } else { (403, Some("forbidden")) };
        assert_eq!((answer.status, contract.check(&method, &path, &answer)["error"]["code"].as_str()), expected);
    }
    for path in contract.doc["paths"].as_object().unwrap().keys().cloned().collect::<Vec<_>>() {
        let item = &contract.doc["paths"][&path];
        let wrong = ["get", "post", "delete"].into_iter().find(|m| item.get(*m).is_none()).unwrap().to_uppercase();
        let answer = client.main(&wrong, &concrete(&path, &unknown), Key::Right).await;
        assert_eq!(answer.status, 405, "{wrong} {path}: {}", answer.text);
        contract.check_wrong_method(&path, &answer);
        // A method worker-rs has no name for (it reads them as GET) is refused too.
        let answer = client.main("QUERY", &concrete(&path, &unknown), Key::Right).await;
        assert_eq!(answer.status, 405, "QUERY {path}: {}", answer.text);
        contract.check_wrong_method(&path, &answer);
    }

    // 400: ids, query parameters.
    for (path, method, _) in operations(&contract.doc.clone())
        .filter(|(p, _, _)| ["{batchId}", "{smsBatchId}", "{classificationId}"].iter().any(|id| p.contains(id)))
        .collect::<Vec<_>>()
    {
        let answer = client.main(&method, &concrete(&path, "not-a-uuid"), Key::Right).await;
        assert_eq!(contract.check(&method, &path, &answer)["error"]["code"], "invalid_id", "{method} {path}");
    }
    for (path, query) in [
        ("/api/v1/batches", "limit=0"),
        ("/api/v1/batches", "limt=5"),
        ("/api/v1/batches/{batchId}", "limit=1001"),
        ("/api/v1/batches/{batchId}/transcripts", "offset=-1"),
        ("/api/v1/sms-batches/{smsBatchId}/messages", "limit=0"),
    ] {
        let answer = client.main("GET", &format!("{}?{query}", concrete(path, &unknown)), Key::Right).await;
        assert_eq!(contract.check("GET", path, &answer)["error"]["code"], "invalid_parameter", "{path}?{query}");
    }

    // 400 on POST /api/v1/batches: not JSON, invalid (here and in the database), a bad Idempotency-Key.
    let answer = client.create(&[], "{\"name\": ").await;
    assert_eq!(contract.check("POST", "/api/v1/batches", &answer)["error"]["code"], "invalid_json");
    let invalid = json!({"name": "", "targets": [{"phone": "555-0100", "name": "No Plus"}, {"name": "No Phone", "colour": "red"}],
                         "schedule": {"window": {"days": [8], "start": "09:00", "end": "17:00"}}});
    let request_schema = json!({"$ref": "#/components/schemas/CreateBatchRequest"});
    assert!(
        !schema::validate(&contract.doc, &request_schema, &invalid).is_empty(),
        "the document calls this invalid too"
    );
    let answer = client.create(&[], &invalid.to_string()).await;
    let body = contract.check("POST", "/api/v1/batches", &answer);
    assert_eq!(body["error"]["code"], "validation_error");
    let paths: BTreeSet<&str> =
        body["error"]["items"].as_array().unwrap().iter().filter_map(|i| i["path"].as_str()).collect();
    let expected = ["name", "targets[0].phone", "targets[1].phone", "targets[1].colour", "schedule.window.days"];
    assert_eq!(paths, expected.into_iter().collect(), "{body}");
    let mut zone = batch_request("openapi: bad zone", &[]);
    zone["targets"][0]["clinic_timezone"] = json!("Mars/Olympus_Mons");
    let answer = client.create(&[], &zone.to_string()).await;
    let body = contract.check("POST", "/api/v1/batches", &answer);
    assert_eq!(body["error"]["code"], "validation_error", "{body}");
    assert_eq!(body["error"]["items"][0]["path"], "targets[0].clinic_timezone", "{body}");
    let answer =
        client.create(&[("Idempotency-Key", "has space")], &batch_request("openapi: bad key", &[]).to_string()).await;
    assert_eq!(contract.check("POST", "/api/v1/batches", &answer)["error"]["code"], "invalid_idempotency_key");
    // 413: a body over the route's cap (over the ceiling of any BATCH_MAX_TARGETS), refused before it is read.
    let padding = "x".repeat(outcall_core::body::BATCH_MAX_BYTES);
    let oversized = json!({"name": "openapi: too large", "metadata": {"padding": padding}}).to_string();
    let answer = client.create(&[], &oversized).await;
    assert_eq!(contract.check("POST", "/api/v1/batches", &answer)["error"]["code"], "payload_too_large");

    // POST /api/v1/batches/estimate: the same checks, then the estimate (200); nothing written.
    let answer = client.estimate(&invalid.to_string()).await;
    assert_eq!(contract.check("POST", ESTIMATE_PATH, &answer)["error"]["code"], "validation_error");
    let answer = client.estimate(&oversized).await;
    assert_eq!(contract.check("POST", ESTIMATE_PATH, &answer)["error"]["code"], "payload_too_large");
    let estimated_request = batch_request("openapi: estimated", &[]);
    let answer = client.estimate(&estimated_request.to_string()).await;
    let estimated = contract.check("POST", ESTIMATE_PATH, &answer);
    assert_eq!((answer.status, &estimated["accepted"]), (200, &json!(2)), "{estimated}");
    assert_eq!(stack.scalar("select count(*) from public.batches where name = 'openapi: estimated'").await, 0);

    // 202: a batch of two new targets, one existing pending call and one id the database does not know.
    let existing = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Cleo Duval")).await;
    let not_a_row = uuid::Uuid::new_v4().to_string();
    let request = batch_request("openapi: the contract", &[&existing, &not_a_row]);
    assert_eq!(
        schema::validate(&contract.doc, &request_schema, &request),
        Vec::<String>::new(),
        "a valid request, per the document"
    );
    let request_text = request.to_string();
    let key = format!("openapi-{}", uuid::Uuid::new_v4());
    let key_header = [("Idempotency-Key", key.as_str())];
    let answer = client.create(&key_header, &request_text).await;
    let accepted = contract.check("POST", "/api/v1/batches", &answer);
    assert_eq!(answer.status, 202, "{accepted}");
    let batch = accepted["batchId"].as_str().unwrap().to_owned();
    let location = format!("/api/v1/batches/{batch}");
    let _cancel =
        CancelOnFailure { url: format!("{}{location}/cancel", stack.worker_url), api_key: stack.api_key.clone() };
    assert_eq!(answer.header("location"), Some(location.as_str()));
    assert_eq!(answer.header("idempotent-replayed"), None);
    assert_eq!(accepted["statusUrl"], format!("{}{location}", stack.worker_url));
    assert_eq!(accepted["accepted"], 3, "{accepted}");
    let message = &accepted["rejected"][0]["message"];
    let rejected = json!([{"pendingCallId": not_a_row, "code": "not_found", "message": message}]);
    assert_eq!(accepted["rejected"], rejected, "{accepted}");

    // The same key: the same body replays, another body conflicts.
    let answer = client.create(&key_header, &request_text).await;
    assert_eq!(contract.check("POST", "/api/v1/batches", &answer), accepted);
    assert_eq!((answer.status, answer.header("idempotent-replayed")), (202, Some("true")));
    let answer = client.create(&key_header, &request_text.replace("the contract", "another contract")).await;
    assert_eq!(contract.check("POST", "/api/v1/batches", &answer)["error"]["code"], "idempotency_conflict");

    // 200: read it, page through it, list it.
    let answer = client.main("GET", &location, Key::Right).await;
    let status = contract.check("GET", "/api/v1/batches/{batchId}", &answer);
    assert_eq!((answer.status, &status["batchId"], &status["total"]), (200, &json!(batch), &json!(3)), "{status}");
    assert_eq!(status["metadata"], request["metadata"], "metadata comes back as given");
    assert_eq!(status["status"], "queued", "{status}");
    assert_eq!(status["results"].as_array().unwrap().len(), 3);
    assert_eq!(status["page"], json!({"limit": 100, "offset": 0, "total": 3}));
    let answer = client.main("GET", &format!("{location}?limit=1&offset=2"), Key::Right).await;
    let page = contract.check("GET", "/api/v1/batches/{batchId}", &answer);
    assert_eq!(
        (page["results"].as_array().unwrap().len(), &page["page"]),
        (1, &json!({"limit": 1, "offset": 2, "total": 3}))
    );
    let answer = client.main("GET", &format!("{location}/transcripts"), Key::Right).await;
    let transcripts = contract.check("GET", "/api/v1/batches/{batchId}/transcripts", &answer);
    assert_eq!((answer.status, &transcripts["batchId"]), (200, &json!(batch)));
    assert_eq!(
        (&transcripts["transcripts"], &transcripts["page"]["total"]),
        (&json!([]), &json!(0)),
        "nobody was called"
    );
    let answer = client.main("GET", "/api/v1/batches?limit=200", Key::Right).await;
    let list = contract.check("GET", "/api/v1/batches", &answer);
    assert_eq!(answer.status, 200);
    assert!(list["batches"].as_array().unwrap().iter().any(|b| b["batchId"] == json!(batch)), "{list}");

    // Pausing is 200 (again: changed false), resuming too.
    for (action, changed, paused) in [("pause", true, true), ("pause", false, true), ("resume", true, false)] {
        let answer = client.main("POST", &format!("{location}/{action}"), Key::Right).await;
        let body = contract.check("POST", &format!("/api/v1/batches/{{batchId}}/{action}"), &answer);
        assert_eq!(
            (answer.status, &body["changed"], &body["paused"]),
            (200, &json!(changed), &json!(paused)),
            "{body}"
        );
    }

    // Retrying a live batch's failures (none) is 200; cancelling is 200; then retrying is 409.
    let answer = client.main("POST", &format!("{location}/retry-failed"), Key::Right).await;
    let retried = contract.check("POST", "/api/v1/batches/{batchId}/retry-failed", &answer);
    assert_eq!((answer.status, &retried["requeued"]), (200, &json!(0)), "{retried}");
    let answer = client.main("POST", &format!("{location}/cancel"), Key::Right).await;
    let cancelled = contract.check("POST", "/api/v1/batches/{batchId}/cancel", &answer);
    assert_eq!(answer.status, 200, "{cancelled}");
    assert_eq!(
        (&cancelled["status"], &cancelled["cancelled"], &cancelled["live"]),
        (&json!("cancelled"), &json!(3), &json!(0))
    );
    let answer = client.main("POST", &format!("{location}/retry-failed"), Key::Right).await;
    assert_eq!(
        contract.check("POST", "/api/v1/batches/{batchId}/retry-failed", &answer)["error"]["code"],
        "batch_cancelled"
    );
    for action in ["pause", "resume"] {
        let answer = client.main("POST", &format!("{location}/{action}"), Key::Right).await;
        let body = contract.check("POST", &format!("/api/v1/batches/{{batchId}}/{action}"), &answer);
        assert_eq!((answer.status, &body["error"]["code"]), (409, &json!("batch_cancelled")), "{action}: {body}");
    }
    let answer = client.main("GET", &location, Key::Right).await;
    let status = contract.check("GET", "/api/v1/batches/{batchId}", &answer);
    assert_eq!((&status["status"], &status["counts"]["cancelled"]), (&json!("cancelled"), &json!(3)), "{status}");
    assert!(status["results"].as_array().unwrap().iter().all(|r| r["status"] == "cancelled"), "{status}");

    // The events of a batch whose rows are all cancelled: one `end` event with the final progress.
    let answer = client.main("GET", &format!("{location}/events"), Key::Right).await;
    let stream = contract.check("GET", "/api/v1/batches/{batchId}/events", &answer);
    let events = sse_events(stream.as_str().unwrap());
    assert_eq!(events.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(), ["end"], "{stream}");
    let progress: Value = serde_json::from_str(&events[0].1).unwrap();
    contract.check_schema("BatchProgress", &progress, "the end event's data");
    assert_eq!((&progress["batchId"], &progress["status"]), (&json!(batch), &json!("cancelled")));

    // A batch dialled now: one person who answers, one number that fails (one attempt). Its events follow
    // it to the end; then its results and transcripts carry a call's data.
    let dialled = json!({"name": "openapi: dialled", "targets": [
        {"phone": fresh_phone(Scenario::Human), "name": "Dora Eklund", "clinic_timezone": "America/Chicago"},
        {"phone": fresh_phone(Scenario::Failed), "name": "Emil Varga", "max_attempts": 1}
    ]});
    let answer = client.create(&[], &dialled.to_string()).await;
    let accepted = contract.check("POST", "/api/v1/batches", &answer);
    assert_eq!((answer.status, &accepted["accepted"]), (202, &json!(2)), "{accepted}");
    let dialled = format!("/api/v1/batches/{}", accepted["batchId"].as_str().unwrap());
    let _cancel_dialled =
        CancelOnFailure { url: format!("{}{dialled}/cancel", stack.worker_url), api_key: stack.api_key.clone() };
    let answer = client.main("GET", &format!("{dialled}/events"), Key::Right).await;
    let stream = contract.check("GET", "/api/v1/batches/{batchId}/events", &answer);
    let events = sse_events(stream.as_str().unwrap());
    let ((last, end), progress) = events.split_last().unwrap_or_else(|| panic!("no events: {stream}"));
    assert_eq!(last, "end", "{stream}");
    assert!(!progress.is_empty() && progress.iter().all(|(name, _)| name == "progress"), "{stream}");
    for (_, data) in progress {
        contract.check_schema("BatchProgress", &serde_json::from_str(data).unwrap(), "a progress event's data");
    }
    let end: Value = serde_json::from_str(end).unwrap();
    contract.check_schema("BatchProgress", &end, "the end event's data");
    let counts = (&end["status"], &end["counts"]["completed"], &end["counts"]["failed"]);
    assert_eq!(counts, (&json!("completed"), &json!(1), &json!(1)), "{end}");
    let answer = client.main("GET", &dialled, Key::Right).await;
    let status = contract.check("GET", "/api/v1/batches/{batchId}", &answer);
    assert_eq!((answer.status, status["results"].as_array().map(Vec::len)), (200, Some(2)), "{status}");
    // The transcript comes with the end-of-call report, which may follow the row's last status.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client.main("GET", &format!("{dialled}/transcripts"), Key::Right).await;
        let transcripts = contract.check("GET", "/api/v1/batches/{batchId}/transcripts", &answer);
        if transcripts["transcripts"].as_array().is_some_and(|t| !t.is_empty()) {
            assert_eq!(transcripts["page"]["total"], 1, "{transcripts}");
            break;
        }
        assert!(Instant::now() < deadline, "no transcript in time: {transcripts}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Its failed row is requeued; then the batch is cancelled, so the retry does not linger either.
    let answer = client.main("POST", &format!("{dialled}/retry-failed"), Key::Right).await;
    let retried = contract.check("POST", "/api/v1/batches/{batchId}/retry-failed", &answer);
    assert_eq!((answer.status, &retried["requeued"]), (200, &json!(1)), "{retried}");
    let answer = client.main("POST", &format!("{dialled}/cancel"), Key::Right).await;
    let cancelled = contract.check("POST", "/api/v1/batches/{batchId}/cancel", &answer);
    assert_eq!((answer.status, &cancelled["status"]), (200, &json!("cancelled")), "{cancelled}");

    sms_routes(&client, &mut contract).await;
    suppression_routes(&client, &mut contract).await;

    // 200: the providers' circuit breaker (tests/breaker.rs moves it).
    let answer = client.main("GET", "/api/v1/providers", Key::Right).await;
    let health = contract.check("GET", "/api/v1/providers", &answer);
    assert_eq!(answer.status, 200, "{health}");
    assert!(health["breaker"]["failuresToOpen"].as_i64() >= Some(1), "{health}");

    // 404: an unknown batch, on every route of the batch API with an id.
    for (path, method, _) in operations(&contract.doc.clone())
        .filter(|(p, _, op)| (p.contains("{batchId}") || p.contains("{smsBatchId}")) && !takes_user_token(op))
        .collect::<Vec<_>>()
    {
        let answer = client.main(&method, &concrete(&path, &unknown), Key::Right).await;
        assert_eq!(contract.check(&method, &path, &answer)["error"]["code"], "not_found", "{method} {path}");
    }

    dashboard_routes(&client, &mut contract).await;

    // 500 and 502, from the spare Workers, on every route that takes the API key; the dashboard's: its
    // configuration without SUPABASE_ANON_KEY (500), and a user's token where the keys and the database are
    // out of reach (502).
    let valid = batch_request("openapi: never written", &[]).to_string();
    let valid_sms = sms_request("openapi: never written").to_string();
    let valid_phone = json!({"phone": fresh_phone(Scenario::Human)}).to_string();
    let token = access_token(&stack, &users::operator(&stack, "operator").await);
    for (worker, expected) in spares.await.expect("the spare Workers started") {
        for (path, method, operation) in operations(&contract.doc.clone()).collect::<Vec<_>>() {
            let body = match (method.as_str(), path.as_str()) {
                ("POST", "/api/v1/batches" | ESTIMATE_PATH) => Some(valid.as_str()),
                ("POST", "/api/v1/sms-batches") => Some(valid_sms.as_str()),
                ("POST", "/api/v1/suppressions" | "/api/v1/suppressions/remove") => Some(valid_phone.as_str()),
                _ => None,
            };
            let url = &worker.url;
            let answer = match (operation["security"] == json!([]), takes_user_token(operation)) {
                (true, _) if path == "/api/v1/dashboard/config" && expected == "configuration_error" => {
                    client.send(url, &method, &path, Key::Missing, &[], None).await
                }
                (true, _) => continue,
                (false, true) if expected == "upstream_error" => {
                    let bearer = [("Authorization", format!("Bearer {token}"))];
                    let headers: Vec<(&str, &str)> = bearer.iter().map(|(n, v)| (*n, v.as_str())).collect();
                    let body = path.contains("/calls/").then(|| json!({"ids": [unknown]}).to_string());
                    client.send(url, &method, &concrete(&path, &unknown), Key::Missing, &headers, body.as_deref()).await
                }
                (false, true) => continue,
                (false, false) => client.send(url, &method, &concrete(&path, &unknown), Key::Right, &[], body).await,
            };
            assert_eq!(contract.check(&method, &path, &answer)["error"]["code"], expected, "{method} {path}");
        }
    }

    contract.assert_kept();
}

/// A valid SMS batch request: two messages due a day from now (so nothing is sent).
fn sms_request(name: &str) -> Value {
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    json!({"name": name, "from": sms::sender(), "bodyTemplate": "Hi {{name}}, bring {{item}}.",
           "targets": [{"phone": sms::mobile(), "name": "Ada", "variables": {"item": "your ID"}},
                       {"phone": sms::mobile(), "body": "Your own text"}],
           "schedule": {"notBefore": tomorrow}, "metadata": {"source_system": "openapi-test"}})
}

/// The SMS batches' routes: 400s, 413, 202 and its replay, 409, 200 on each read, its events, cancel.
async fn sms_routes(client: &Client, contract: &mut Contract) {
    const CREATE: &str = "/api/v1/sms-batches";
    let stack = &client.stack;
    let answer = client.create_sms(&[], "[1, 2]").await;
    assert_eq!(contract.check("POST", CREATE, &answer)["error"]["code"], "invalid_json");
    let invalid = json!({"from": "+15550100000", "bodyTemplate": "Hi {{name}}",
                         "targets": [{"phone": "555-0100", "name": "A"}, {"phone": sms::mobile()}]});
    let request_schema = json!({"$ref": "#/components/schemas/CreateSmsBatchRequest"});
    assert!(
        !schema::validate(&contract.doc, &request_schema, &invalid).is_empty(),
        "the document calls it invalid too"
    );
    let answer = client.create_sms(&[], &invalid.to_string()).await;
    let body = contract.check("POST", CREATE, &answer);
    let paths: Vec<&str> =
        body["error"]["items"].as_array().unwrap().iter().filter_map(|i| i["path"].as_str()).collect();
    assert_eq!(paths, ["targets[0].phone", "targets[1].variables.name"], "{body}");
    let both = json!({"from": "+15550100000", "messagingServiceSid": "MG0123456789abcdef0123456789abcdef",
                      "targets": [{"phone": sms::mobile(), "body": "x"}]});
    assert!(!schema::validate(&contract.doc, &request_schema, &both).is_empty(), "two senders: the document refuses");
    let answer = client.create_sms(&[], &both.to_string()).await;
    assert_eq!(contract.check("POST", CREATE, &answer)["error"]["items"][0]["code"], "conflict");
    let request = sms_request("openapi: sms contract");
    assert_eq!(schema::validate(&contract.doc, &request_schema, &request), Vec::<String>::new(), "a valid request");
    let answer = client.create_sms(&[("Idempotency-Key", "has space")], &request.to_string()).await;
    assert_eq!(contract.check("POST", CREATE, &answer)["error"]["code"], "invalid_idempotency_key");
    let padding = "x".repeat(outcall_core::body::BATCH_MAX_BYTES);
    let answer = client.create_sms(&[], &json!({"metadata": {"padding": padding}}).to_string()).await;
    assert_eq!(contract.check("POST", CREATE, &answer)["error"]["code"], "payload_too_large");

    // 202, its replay and a conflict under the same key.
    let key = format!("openapi-sms-{}", uuid::Uuid::new_v4());
    let key_header = [("Idempotency-Key", key.as_str())];
    let answer = client.create_sms(&key_header, &request.to_string()).await;
    let accepted = contract.check("POST", CREATE, &answer);
    assert_eq!(
        (answer.status, &accepted["accepted"], &accepted["optedOut"]),
        (202, &json!(2), &json!([])),
        "{accepted}"
    );
    let location = format!("{CREATE}/{}", accepted["smsBatchId"].as_str().unwrap());
    assert_eq!(answer.header("location"), Some(location.as_str()));
    let answer = client.create_sms(&key_header, &request.to_string()).await;
    assert_eq!(contract.check("POST", CREATE, &answer), accepted);
    assert_eq!((answer.status, answer.header("idempotent-replayed")), (202, Some("true")));
    let other = request.to_string().replace("sms contract", "another");
    let answer = client.create_sms(&key_header, &other).await;
    assert_eq!(contract.check("POST", CREATE, &answer)["error"]["code"], "idempotency_conflict");

    // 200: its counts and a page of its messages.
    let answer = client.main("GET", &location, Key::Right).await;
    let status = contract.check("GET", "/api/v1/sms-batches/{smsBatchId}", &answer);
    assert_eq!(
        (answer.status, &status["counts"]["pending"], &status["metadata"]),
        (200, &json!(2), &request["metadata"])
    );
    let answer = client.main("GET", &format!("{location}/messages?limit=1&offset=1"), Key::Right).await;
    let page = contract.check("GET", "/api/v1/sms-batches/{smsBatchId}/messages", &answer);
    assert_eq!((&page["messages"][0]["body"], &page["page"]["total"]), (&json!("Your own text"), &json!(2)), "{page}");

    // Cancelled, its events are one `end`.
    let answer = client.main("POST", &format!("{location}/cancel"), Key::Right).await;
    let cancelled = contract.check("POST", "/api/v1/sms-batches/{smsBatchId}/cancel", &answer);
    assert_eq!(
        (answer.status, &cancelled["cancelled"], &cancelled["live"]),
        (200, &json!(2), &json!(0)),
        "{cancelled}"
    );
    let answer = client.main("GET", &format!("{location}/events"), Key::Right).await;
    let stream = contract.check("GET", "/api/v1/sms-batches/{smsBatchId}/events", &answer);
    let events = sse_events(stream.as_str().unwrap());
    assert_eq!(events.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(), ["end"], "{stream}");
    contract.check_schema("SmsBatchStatus", &serde_json::from_str(&events[0].1).unwrap(), "the end event's data");

    // One sent now: its events follow it to its delivery.
    let from = sms::sender();
    stack.set_sms_rate(&from, None).await;
    let now = json!({"from": from, "targets": [{"phone": sms::mobile(), "body": "Now"}]});
    let accepted = contract.check("POST", CREATE, &client.create_sms(&[], &now.to_string()).await);
    let location = format!("{CREATE}/{}", accepted["smsBatchId"].as_str().unwrap());
    let answer = client.main("GET", &format!("{location}/events"), Key::Right).await;
    let stream = contract.check("GET", "/api/v1/sms-batches/{smsBatchId}/events", &answer);
    let events = sse_events(stream.as_str().unwrap());
    let ((last, end), _) = events.split_last().unwrap_or_else(|| panic!("no events: {stream}"));
    assert_eq!(last, "end", "{stream}");
    let end: Value = serde_json::from_str(end).unwrap();
    assert_eq!(end["counts"]["delivered"], 1, "{end}");
}

/// The do-not-call list's routes: 201 then 200 for the same phone, 400 with the path and nothing written, 413, the
/// list (200, and 400 for a bad page), removal by body (200, removed or not).
async fn suppression_routes(client: &Client, contract: &mut Contract) {
    const ADD: &str = "/api/v1/suppressions";
    const REMOVE: &str = "/api/v1/suppressions/remove";
    let stack = &client.stack;
    let post = |path: &'static str, body: String| async move {
        client.send(&stack.worker_url, "POST", path, Key::Right, &[], Some(&body)).await
    };
    let phone = fresh_phone(Scenario::Human);
    let request = json!({"phone": phone, "reason": "openapi: asked", "source": "clinic"});
    let request_schema = json!({"$ref": "#/components/schemas/SuppressionRequest"});
    assert_eq!(schema::validate(&contract.doc, &request_schema, &request), Vec::<String>::new(), "a valid request");
    let answer = post(ADD, request.to_string()).await;
    let added = contract.check("POST", ADD, &answer);
    assert_eq!((answer.status, &added["suppression"]["source"]), (201, &json!("clinic")), "{added}");
    let answer = post(ADD, request.to_string()).await;
    assert_eq!((answer.status, &contract.check("POST", ADD, &answer)["created"]), (200, &json!(false)));

    let before = stack.scalar("select count(*) from public.suppression_list").await;
    let invalid = json!({"phone": "555-0100", "reason": 7, "colour": "red"});
    assert!(!schema::validate(&contract.doc, &request_schema, &invalid).is_empty(), "the document refuses it too");
    let body = contract.check("POST", ADD, &post(ADD, invalid.to_string()).await);
    let paths: BTreeSet<&str> =
        body["error"]["items"].as_array().unwrap().iter().filter_map(|i| i["path"].as_str()).collect();
    assert_eq!(paths, ["colour", "phone", "reason"].into_iter().collect(), "{body}");
    assert_eq!(contract.check("POST", REMOVE, &post(REMOVE, "[]".into()).await)["error"]["code"], "invalid_json");
    let padding = json!({"phone": phone, "reason": "x".repeat(outcall_core::suppression::SUPPRESSION_MAX_BYTES)});
    assert_eq!(
        contract.check("POST", ADD, &post(ADD, padding.to_string()).await)["error"]["code"],
        "payload_too_large"
    );
    assert_eq!(
        contract.check("POST", REMOVE, &post(REMOVE, padding.to_string()).await)["error"]["code"],
        "payload_too_large"
    );
    assert_eq!(stack.scalar("select count(*) from public.suppression_list").await, before, "nothing written");

    let answer = client.main("GET", &format!("{ADD}?limit=1"), Key::Right).await;
    let page = contract.check("GET", ADD, &answer);
    assert_eq!((answer.status, page["suppressions"].as_array().map(Vec::len)), (200, Some(1)), "{page}");
    let answer = client.main("GET", &format!("{ADD}?limit=1001"), Key::Right).await;
    assert_eq!(contract.check("GET", ADD, &answer)["error"]["code"], "invalid_parameter");

    let removal = json!({"phone": phone}).to_string();
    let removed = contract.check("POST", REMOVE, &post(REMOVE, removal.clone()).await);
    assert_eq!((&removed["removed"], &removed["suppression"]["phone"]), (&json!(true), &json!(phone)), "{removed}");
    let again = contract.check("POST", REMOVE, &post(REMOVE, removal).await);
    assert_eq!(again, json!({"removed": false, "suppression": null}));
}

/// The dashboard's routes as its users call them: 200 for an operator (and a viewer's `me`), 403 for a viewer, 404
/// for unknown ids, 400 for what the routes refuse, 413 over the cap.
async fn dashboard_routes(client: &Client, contract: &mut Contract) {
    let stack = &client.stack;
    let config = "/api/v1/dashboard/config";
    let answer = client.main("GET", config, Key::Missing).await;
    assert_eq!(contract.check("GET", config, &answer)["supabaseUrl"], json!(stack.supabase_url));

    let operator = access_token(stack, &users::operator(stack, "operator").await);
    let viewer = access_token(stack, &users::operator(stack, "viewer").await);
    let send = |path: String, token: &str, body: Option<String>| {
        let bearer = format!("Bearer {token}");
        async move {
            let method = if path.ends_with("/me") { "GET" } else { "POST" };
            let answer = client
                .send(&stack.worker_url, method, &path, Key::Missing, &[("Authorization", &bearer)], body.as_deref())
                .await;
            (method, answer)
        }
    };
    let me = "/api/v1/operator/me";
    let (method, answer) = send(me.into(), &viewer, None).await;
    assert_eq!(contract.check(method, me, &answer)["role"], "viewer");

    let calls = "/api/v1/operator/calls/{action}";
    let batches = "/api/v1/operator/batches/{batchId}/{action}";
    let classifications = "/api/v1/operator/classifications/{classificationId}/{action}";
    let row = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Fay Ortiz")).await;
    let ids = json!({"ids": [row]}).to_string();
    let (method, answer) = send(concrete(calls, ""), &viewer, Some(ids.clone())).await;
    assert_eq!(contract.check(method, calls, &answer)["error"]["code"], "forbidden");
    let (method, answer) = send(concrete(calls, ""), &operator, Some(ids)).await;
    assert_eq!(contract.check(method, calls, &answer)["results"][0]["call_status"], "cancelled");
    let (method, answer) = send(concrete(calls, ""), &operator, Some(json!({"ids": []}).to_string())).await;
    assert_eq!(contract.check(method, calls, &answer)["error"]["code"], "invalid_body");

    let accepted = client.create(&[], &batch_request("openapi: the dashboard's", &[]).to_string()).await;
    let batch = contract.check("POST", "/api/v1/batches", &accepted)["batchId"].as_str().unwrap().to_owned();
    let (method, answer) = send(concrete(batches, &batch), &viewer, None).await;
    assert_eq!(contract.check(method, batches, &answer)["error"]["code"], "forbidden");
    let (method, answer) = send(concrete(batches, &batch), &operator, None).await;
    assert_eq!(contract.check(method, batches, &answer)["ok"], true);
    let unknown = uuid::Uuid::new_v4().to_string();
    let (method, answer) = send(concrete(batches, &unknown), &operator, None).await;
    assert_eq!(contract.check(method, batches, &answer)["error"]["code"], "not_found");

    let class: String = stack
        .db()
        .await
        .query_one(
            "insert into call_classifications (phone_number, classification_type) values ($1, 'human') returning id::text",
            &[&fresh_phone(Scenario::Human)],
        )
        .await
        .unwrap()
        .get(0);
    let reason = json!({"reason": "the clinic moved"}).to_string();
    let (method, answer) = send(concrete(classifications, &class), &viewer, Some(reason.clone())).await;
    assert_eq!(contract.check(method, classifications, &answer)["error"]["code"], "forbidden");
    let (method, answer) = send(concrete(classifications, &class), &operator, Some(reason.clone())).await;
    assert_eq!(contract.check(method, classifications, &answer)["ok"], true);
    let (method, answer) = send(concrete(classifications, &unknown), &operator, Some(reason)).await;
    assert_eq!(contract.check(method, classifications, &answer)["error"]["code"], "not_found");

    // The do-not-call list: a viewer refused, a bad phone refused with its path, an operator adds and removes.
    let suppressions = "/api/v1/operator/suppressions/{action}";
    let phone = fresh_phone(Scenario::Human);
    let add = json!({"phone": phone, "reason": "asked", "source": "clinic"}).to_string();
    let (method, answer) = send(concrete(suppressions, ""), &viewer, Some(add.clone())).await;
    assert_eq!(contract.check(method, suppressions, &answer)["error"]["code"], "forbidden");
    let (method, answer) = send(concrete(suppressions, ""), &operator, Some(json!({"phone": "555"}).to_string())).await;
    assert_eq!(contract.check(method, suppressions, &answer)["error"]["items"][0]["path"], "phone");
    let (method, answer) = send(concrete(suppressions, ""), &operator, Some(add)).await;
    assert_eq!(contract.check(method, suppressions, &answer)["created"], true);
    let remove = suppressions.replace("{action}", "remove");
    let (method, answer) = send(remove, &operator, Some(json!({"phone": phone}).to_string())).await;
    assert_eq!(contract.check(method, suppressions, &answer)["removed"], true);

    // 413 on every action route: the body over 64 KiB, refused unread.
    let oversized = json!({"padding": "x".repeat(outcall_core::operator::ACTION_MAX_BYTES)}).to_string();
    for template in [calls, batches, classifications, suppressions] {
        let (method, answer) = send(concrete(template, &unknown), &operator, Some(oversized.clone())).await;
        assert_eq!(contract.check(method, template, &answer)["error"]["code"], "payload_too_large", "{template}");
    }
}

#[test]
fn the_validator_refuses_bodies_the_document_does_not_allow() {
    let doc: Value = serde_json::from_str(OPENAPI_DOCUMENT).unwrap();
    let progress_schema = json!({"$ref": "#/components/schemas/BatchProgress"});
    let progress = json!({
        "batchId": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "name": "n", "status": "in_progress", "total": 2,
        "counts": {"queued": 1, "dialling": 0, "inProgress": 1, "completed": 0, "retrying": 0, "failed": 0, "cancelled": 0,
                   "suppressed": 0, "expired": 0},
        "successRate": null, "averageDurationSeconds": 12.5, "totalCost": null,
        "createdAt": "2026-11-21T10:00:00.123456+00:00", "startedAt": "2026-11-21T10:00:01Z", "completedAt": null,
        "cancelledAt": null, "expiresAt": null, "updatedAt": "2026-11-21T10:00:02+00:00",
        "costEstimate": {"calls": 2, "learningCalls": 1, "expectedCallMinutes": 2,
                         "usdPerMinute": {"vapi": 0.1, "twilio": 0.014, "stt": 0.0077}, "usd": 0.4714},
        "paused": false, "pausedAt": null, "maxConcurrency": 2, "callsPerSecond": 0.5,
        "costCap": 1.5, "held": {"reason": "batch_cost_cap", "spent": 1.2, "cap": 1.5}
    });
    assert_eq!(schema::validate(&doc, &progress_schema, &progress), Vec::<String>::new());
    let wrong = |pointer: &str, value: Option<Value>| {
        let mut body = progress.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let object = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
        body
    };
    for (pointer, value) in [
        ("/total", None),                         // required
        ("/counts/inProgress", None),             // required, in a $ref'd schema
        ("/batch_id", Some(json!("x"))),          // additionalProperties: false
        ("/counts/in_progress", Some(json!(1))),  // the same, one level down
        ("/total", Some(json!("2"))),             // type
        ("/total", Some(json!(1.5))),             // integer
        ("/total", Some(json!(-1))),              // minimum
        ("/successRate", Some(json!(1.5))),       // maximum
        ("/name", Some(Value::Null)),             // null where not allowed
        ("/status", Some(json!("running"))),      // enum
        ("/batchId", Some(json!("batch-1"))),     // format uuid
        ("/createdAt", Some(json!("yesterday"))), // format date-time
    ] {
        let body = wrong(pointer, value.clone());
        assert!(!schema::validate(&doc, &progress_schema, &body).is_empty(), "{pointer} = {value:?} passed");
    }
    let list = json!({"$ref": "#/components/schemas/BatchList"});
    let page = json!({"limit": 1, "offset": 0, "total": 1});
    assert!(schema::validate(&doc, &list, &json!({"batches": [progress], "page": page})).is_empty());
    assert!(!schema::validate(&doc, &list, &json!({"batches": [{"batchId": 1}], "page": page})).is_empty(), "items");
    // An error body with another code than the response documents; items of the wrong shape.
    let unauthorized = schema::resolve(&doc, &doc["components"]["responses"]["Unauthorized"]);
    let schema_401 = &unauthorized["content"]["application/json"]["schema"];
    assert!(schema::validate(&doc, schema_401, &json!({"error": {"code": "unauthorized", "message": "m"}})).is_empty());
    assert!(!schema::validate(&doc, schema_401, &json!({"error": {"code": "forbidden", "message": "m"}})).is_empty());
    let error = json!({"$ref": "#/components/schemas/Error"});
    let item = |item: Value| json!({"error": {"code": "validation_error", "message": "m", "items": [item]}});
    assert!(
        schema::validate(&doc, &error, &item(json!({"path": "name", "code": "required", "message": "m"}))).is_empty()
    );
    assert!(!schema::validate(&doc, &error, &item(json!({"path": "name", "code": "required"}))).is_empty());
    assert!(!schema::validate(&doc, &error, &item(json!({"path": "name", "code": "c", "message": "m", "index": -1})))
        .is_empty());
    // Keywords the validator does not know are refused, not ignored, and the document uses none.
    assert!(!schema::validate(&doc, &json!({"multipleOf": 2}), &json!(4)).is_empty());
    assert!(!schema::validate(&doc, &json!({"format": "email"}), &json!("a@b.example")).is_empty());
    assert!(!schema::unknown_keywords(&json!({"schema": {"oneOf": []}})).is_empty());
    assert!(!schema::unknown_keywords(
        &json!({"components": {"schemas": {"A": {"anyOf": [{"items": {"oneOf": []}}]}}}})
    )
    .is_empty());
    assert_eq!(schema::unknown_keywords(&doc), Vec::<String>::new());
}

/// The request schema says what the Worker's validation enforces: a request the schema allows is not
/// refused for its shape, and one it refuses is refused (the parts only the database knows aside).
#[test]
fn the_request_schema_is_what_the_worker_enforces() {
    use outcall_core::batch::{parse_request, DEFAULT_MAX_TARGETS};
    use outcall_core::phone::PhoneNumber;
    let doc: Value = serde_json::from_str(OPENAPI_DOCUMENT).unwrap();
    let request = json!({"$ref": "#/components/schemas/CreateBatchRequest"});
    let id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    let target = |phone: &str, name: &str| json!({"phone": phone, "name": name});
    let mut bodies = vec![
        json!({"pendingCallIds": [id], "metadata": {"callType": "batch_safety_check"}}),
        json!({"targets": [target("+15550001001", "Dana")], "name": null}),
        json!({"targets": [], "pendingCallIds": [id]}),
        json!({"pendingCallIds": [id, id]}),
        json!({"targets": [{"phone": "+15550001001", "name": "a", "max_attempts": 16.0}]}),
        json!({"targets": [{"phone": "+15550001001", "name": "a", "max_attempts": 16.5}]}),
        json!({"targets": [target("+15550001001", "Dana"), target("+15550001001", "Dana")]}),
        json!({"targets": [], "pendingCallIds": []}),
        json!({"targets": null}),
        json!({"metadata": {}}),
        json!({}),
        json!({"pendingCallIds": [id], "name": " \u{3000}\t"}),
        json!({"pendingCallIds": [id], "name": format!("{} ", "n".repeat(199))}),
        json!({"pendingCallIds": [id], "name": format!("{} ", "n".repeat(200))}),
        json!({"pendingCallIds": [id], "name": "a\u{0}"}),
        json!({"pendingCallIds": [id], "metadata": {"k": {"deep": ["\u{0}"]}}}),
        json!({"pendingCallIds": [id], "metadata": {"k\u{0}": 1}}),
        json!({"targets": [{"phone": "+15550001001", "name": "a", "variables": {"v": "\u{0}"}}]}),
        json!({"targets": [{"phone": "+15550001001", "name": "a", "exam_id": "\u{0}"}]}),
        json!({"targets": [{"phone": "+15550001001", "name": "a", "procedures": ["x", "\u{0}"]}]}),
        json!({"targets": [{"phone": "+15550001001", "name": "a", "exam_id": format!(" {}", "x".repeat(200))}]}),
        json!({"pendingCallIds": [id], "costCap": 0.0001}),
        json!({"pendingCallIds": [id], "costCap": 0}),
        json!({"pendingCallIds": [id], "costCap": 1e10}),
        json!({"pendingCallIds": [id], "costCap": "5"}),
        json!({"pendingCallIds": [id], "costCap": null}),
    ];
    for (start, end) in
        [("09:00", "17:00"), ("9:00", "17:00"), ("09:00", "24:00"), ("0900 ", "17:00"), ("23:00", "23:59")]
    {
        bodies.push(json!({"pendingCallIds": [id], "schedule": {"window": {"days": [1], "start": start, "end": end}}}));
    }
    for phone in [
        "+15550001001",
        " +1 (555) 000-1001 ",
        "+44.20.7946.0958",
        "\u{3000}+1555000100\u{a0}",
        "+1234567",
        "+123456",
        "+1234567890123456",
        "+012345678",
        "5550001001",
        "+1555abc1001",
        "+",
        "+1555 0001001\t)",
        "+1-2-3-4-5-6-7",
        "++15550001001",
        "+15550001001\n",
    ] {
        bodies.push(json!({"targets": [target(phone, "x")]}));
        let by_schema =
            schema::validate(&doc, &doc["components"]["schemas"]["Target"]["properties"]["phone"], &json!(phone));
        assert_eq!(by_schema.is_empty(), PhoneNumber::parse(phone).is_ok(), "{phone:?}: {by_schema:?}");
    }
    for body in bodies {
        let by_schema = schema::validate(&doc, &request, &body);
        let by_worker = parse_request(&body.to_string(), DEFAULT_MAX_TARGETS);
        assert_eq!(by_schema.is_empty(), by_worker.is_ok(), "{body}: schema {by_schema:?}, Worker {by_worker:?}");
    }
}

/// The JSON Schema subset the document uses: `$ref` (with sibling keywords, as in 2020-12), `type`
/// (a name or a list), `enum`, `const`, `required`, `properties`, `additionalProperties`, `items`,
/// `propertyNames`, `anyOf`, `minItems`, `maxItems`, `minimum`, `maximum`, `minLength`, `maxLength`,
/// `pattern` (searched for, as JSON Schema says), `format` (uuid, date-time, date, uri)
/// and annotations. Any other keyword (or format) is an error, so a schema using it never passes; and
/// `unknown_keywords` finds such keywords anywhere in the document.
mod schema {
    use serde_json::Value;

    const ANNOTATIONS: [&str; 6] = ["description", "title", "examples", "example", "default", "contentMediaType"];
    const KEYWORDS: [&str; 20] = [
        "$ref",
        "uniqueItems",
        "anyOf",
        "pattern",
        "propertyNames",
        "maxItems",
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "format",
        "examples",
    ];

    /// Keywords `validate` does not check, in any schema of `document` (under a `schema` key or in
    /// `components/schemas`), each with where it is.
    pub fn unknown_keywords(document: &Value) -> Vec<String> {
        fn schema(s: &Value, at: &str, found: &mut Vec<String>) {
            let Some(keywords) = s.as_object() else {
                return found.push(format!("{at}: a schema must be an object"));
            };
            for (keyword, argument) in keywords {
                if !KEYWORDS.contains(&keyword.as_str()) && !ANNOTATIONS.contains(&keyword.as_str()) {
                    found.push(format!("{at}: {keyword}"));
                }
                match keyword.as_str() {
                    "properties" => {
                        let properties = argument.as_object().into_iter().flatten();
                        properties.for_each(|(n, p)| schema(p, &format!("{at}/properties/{n}"), found));
                    }
                    "items" | "propertyNames" => schema(argument, &format!("{at}/{keyword}"), found),
                    "anyOf" => argument
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .for_each(|(i, s)| schema(s, &format!("{at}/anyOf/{i}"), found)),
                    "additionalProperties" if argument.is_object() => {
                        schema(argument, &format!("{at}/additionalProperties"), found)
                    }
                    _ => {}
                }
            }
        }
        fn walk(value: &Value, at: &str, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, v) in map {
                        let here = format!("{at}/{key}");
                        if key == "schema" || key == "itemSchema" || at == "/components/schemas" {
                            schema(v, &here, found);
                        } else {
                            walk(v, &here, found);
                        }
                    }
                }
                Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{at}/{i}"), found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(document, "", &mut found);
        found
    }

    /// A `{"$ref": "#/..."}` object as what it points to (anything else as itself).
    pub fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => resolve(doc, pointer(doc, reference)),
            None => value,
        }
    }

    fn pointer<'a>(doc: &'a Value, reference: &str) -> &'a Value {
        let target = reference.strip_prefix('#').and_then(|p| doc.pointer(p));
        target.unwrap_or_else(|| panic!("$ref {reference} points nowhere"))
    }

    /// Every way `value` breaks `schema`, each with the JSON pointer of the offending part.
    pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(doc, schema, value, "", &mut errors);
        errors
    }

    fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(keywords) = schema.as_object() else {
            panic!("a schema must be an object, found {schema}");
        };
        let fail = |errors: &mut Vec<String>, message: String| {
            errors.push(format!("{}: {message}", if at.is_empty() { "/" } else { at }));
        };
        for (keyword, argument) in keywords {
            match keyword.as_str() {
                "$ref" => check(doc, pointer(doc, argument.as_str().unwrap()), value, at, errors),
                "type" => {
                    let names: Vec<&str> = match argument {
                        Value::String(name) => vec![name.as_str()],
                        Value::Array(names) => names.iter().map(|n| n.as_str().unwrap()).collect(),
                        _ => panic!("type {argument}"),
                    };
                    if !names.iter().any(|name| has_type(value, name)) {
                        fail(errors, format!("{value} is not of type {argument}"));
                    }
                }
                "enum" => {
                    if !argument.as_array().unwrap().contains(value) {
                        fail(errors, format!("{value} is not one of {argument}"));
                    }
                }
                "const" => {
                    if argument != value {
                        fail(errors, format!("{value} is not {argument}"));
                    }
                }
                "required" => {
                    if let Some(object) = value.as_object() {
                        for name in argument.as_array().unwrap().iter().map(|n| n.as_str().unwrap()) {
                            if !object.contains_key(name) {
                                fail(errors, format!("{name} is missing"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(object) = value.as_object() {
                        for (name, property) in argument.as_object().unwrap() {
                            if let Some(v) = object.get(name) {
                                check(doc, property, v, &format!("{at}/{name}"), errors);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(object) = value.as_object() {
                        let known = keywords.get("properties").and_then(Value::as_object);
                        for (name, v) in object.iter().filter(|(n, _)| !known.is_some_and(|k| k.contains_key(*n))) {
                            match argument {
                                Value::Bool(false) => errors.push(format!("{at}/{name}: not a documented property")),
                                Value::Bool(true) => {}
                                schema => check(doc, schema, v, &format!("{at}/{name}"), errors),
                            }
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            check(doc, argument, item, &format!("{at}/{i}"), errors);
                        }
                    }
                }
                "minItems" => {
                    if value.as_array().is_some_and(|a| (a.len() as u64) < argument.as_u64().unwrap()) {
                        fail(errors, format!("fewer than {argument} items"));
                    }
                }
                "maxItems" => {
                    if value.as_array().is_some_and(|a| (a.len() as u64) > argument.as_u64().unwrap()) {
                        fail(errors, format!("more than {argument} items"));
                    }
                }
                "uniqueItems" => {
                    if let Some(items) = value.as_array().filter(|_| argument == true) {
                        if items.iter().enumerate().any(|(i, item)| items[..i].contains(item)) {
                            fail(errors, "an item repeated".to_owned());
                        }
                    }
                }
                "anyOf" => {
                    let options = argument.as_array().unwrap();
                    if !options.iter().any(|option| validate(doc, option, value).is_empty()) {
                        fail(errors, format!("{value} matches none of anyOf {argument}"));
                    }
                }
                "pattern" => {
                    if let Some(s) = value.as_str() {
                        // JSON Schema patterns are searched for, not anchored (the document anchors its own).
                        let pattern =
                            regex::Regex::new(argument.as_str().unwrap()).expect("a pattern the regex crate reads");
                        if !pattern.is_match(s) {
                            fail(errors, format!("{s:?} does not match the pattern {argument}"));
                        }
                    }
                }
                "propertyNames" => {
                    if let Some(object) = value.as_object() {
                        for name in object.keys() {
                            check(doc, argument, &Value::String(name.clone()), &format!("{at}/{name} (key)"), errors);
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let Some(n) = value.as_f64() {
                        let bound = argument.as_f64().unwrap();
                        if (keyword == "minimum" && n < bound) || (keyword == "maximum" && n > bound) {
                            fail(errors, format!("{n} is beyond the {keyword} {bound}"));
                        }
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(s) = value.as_str() {
                        let (n, bound) = (s.chars().count() as u64, argument.as_u64().unwrap());
                        if (keyword == "minLength" && n < bound) || (keyword == "maxLength" && n > bound) {
                            fail(errors, format!("{s:?} is beyond the {keyword} {bound}"));
                        }
                    }
                }
                "format" => {
                    if let Some(s) = value.as_str() {
                        let ok = match argument.as_str().unwrap() {
                            "uuid" => uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s),
                            "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                            "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                            "uri" => s.starts_with("http://") || s.starts_with("https://"),
                            other => {
                                fail(errors, format!("the validator does not know the format {other}"));
                                continue;
                            }
                        };
                        if !ok {
                            fail(errors, format!("{s:?} is not a {argument}"));
                        }
                    }
                }
                annotation if ANNOTATIONS.contains(&annotation) => {}
                other => fail(errors, format!("the validator does not know the keyword {other}")),
            }
        }
    }

    fn has_type(value: &Value, name: &str) -> bool {
        match name {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
            other => panic!("unknown type {other}"),
        }
    }
}
