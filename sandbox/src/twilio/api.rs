//! The Calls resource: `POST/GET .../Calls.json` and `GET .../Calls/{Sid}.json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::api_faults;
use super::call::{self, CallPlan};
use super::callbacks::{CallInfo, CallbackConfig, EventSet, HttpMethod};
use super::scenario::Scenario;
use super::twiml::digits_ms;
use super::{twilio_date, TwilioError};
use crate::faults::TwilioFault;
use crate::jwt::constant_time_eq;
use crate::state::{AppState, CallRecord};

pub const MAX_TWIML_CHARS: usize = 4000;
const MAX_TIMEOUT_SECS: u64 = 600;
/// What the stand-in charges an answered call per started minute (Twilio bills outbound calls per minute,
/// rounded up; unanswered calls are not billed). Deterministic, so tests can check sums.
pub const PRICE_PER_MINUTE_USD: f64 = 0.014;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/2010-04-01/Accounts/{account_sid}/Calls.json", post(create_call).get(list_calls))
        .route("/2010-04-01/Accounts/{account_sid}/Calls/{call_file}", get(get_call))
}

fn bad_param(code: u32, message: impl Into<String>) -> TwilioError {
    TwilioError::new(code, message)
}

pub(crate) fn unauthorized() -> Response {
    TwilioError::new(20003, "Authenticate").api_response(StatusCode::UNAUTHORIZED)
}

/// HTTP Basic `AccountSid:AuthToken`, for the account named in the path.
pub(crate) fn authenticate(state: &AppState, headers: &HeaderMap, path_sid: &str) -> bool {
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    credentials.as_deref().and_then(|c| c.split_once(':')).is_some_and(|(sid, token)| {
        let cfg = &state.config;
        let sid_ok = constant_time_eq(sid.as_bytes(), cfg.twilio_account_sid.as_bytes());
        let token_ok = constant_time_eq(token.as_bytes(), cfg.twilio_auth_token.as_bytes());
        sid_ok & token_ok && sid == path_sid
    })
}

/// Answers an authenticated request on the account's resources: refused by the fault drawn for it, or
/// processed by `process` (given the fault that lets it through) with the answer the fault leaves.
pub(crate) async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    account_sid: &str,
    request: &str,
    process: impl FnOnce(Option<TwilioFault>) -> Response,
) -> Response {
    if !authenticate(state, headers, account_sid) {
        return unauthorized();
    }
    let fault = state.faults.twilio_request();
    if let Some(refused) = api_faults::refusal(fault, request) {
        state.faults.record_refusal(request);
        return refused;
    }
    api_faults::spoil(fault, request, process(fault)).await
}

/// 404/20404 for a resource the account does not have.
pub(crate) fn not_found(uri: &str) -> Response {
    TwilioError::new(20404, format!("The requested resource {uri} was not found")).api_response(StatusCode::NOT_FOUND)
}

/// A decoded form body, keeping repeated keys.
pub(crate) struct Form(pub(crate) Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A non-blank value for `key`.
    pub(crate) fn value(&self, key: &str) -> Option<&str> {
        self.first(key).filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Single keys as strings, repeated keys as arrays of their values.
    fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in &self.0 {
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), json!(v));
                }
                Some(Value::Array(values)) => values.push(json!(v)),
                Some(existing) => *existing = json!([existing.clone(), v]),
            }
        }
        Value::Object(map)
    }
}

/// E.164: `+`, a non-zero digit, at most 15 digits in all.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

pub(crate) fn is_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

fn method_param(form: &Form, key: &str) -> Result<HttpMethod, TwilioError> {
    match form.value(key) {
        None => Ok(HttpMethod::Post),
        Some(m) => HttpMethod::parse(m).ok_or_else(|| bad_param(20001, format!("{key} must be GET or POST"))),
    }
}

/// Validates a create request the way Twilio does; the first problem wins.
fn plan_call(form: &Form, account_sid: &str, sid: &str) -> Result<CallPlan, TwilioError> {
    let to = form.value("To").ok_or_else(|| bad_param(21201, "No 'To' number is specified"))?;
    let from = form.value("From").ok_or_else(|| bad_param(21213, "No 'From' number is specified"))?;
    if !is_e164(to) {
        return Err(bad_param(21211, format!("Invalid 'To' Phone Number: {to}")));
    }
    if !is_e164(from) {
        return Err(bad_param(21212, format!("Invalid 'From' Phone Number: {from}")));
    }
    if form.value("ApplicationSid").is_some() {
        return Err(bad_param(21218, "ApplicationSid is not supported by the sandbox; send Twiml or Url"));
    }
    let twiml = form.value("Twiml");
    let url = form.value("Url");
    match (twiml, url) {
        (None, None) => return Err(bad_param(21205, "Either Url, Twiml or ApplicationSid is required")),
        (Some(_), Some(_)) => return Err(bad_param(21205, "Give only one of Url and Twiml")),
        (Some(doc), None) if doc.chars().count() > MAX_TWIML_CHARS => {
            return Err(bad_param(32018, "Twiml size exceeded maximum allowed value of 4000 characters"));
        }
        (None, Some(u)) if !is_http_url(u) => return Err(bad_param(21205, format!("Url is not a valid URL: {u}"))),
        _ => {}
    }
    let url_method = method_param(form, "Method")?;

    let callbacks = match form.value("StatusCallback") {
        None => None,
        Some(cb) if !is_http_url(cb) => {
            return Err(bad_param(21609, format!("StatusCallback is not a valid URL: {cb}")));
        }
        Some(cb) => Some(CallbackConfig {
            url: cb.to_string(),
            method: method_param(form, "StatusCallbackMethod")?,
            events: EventSet::parse(form.all("StatusCallbackEvent"))
                .map_err(|e| bad_param(20001, format!("Invalid StatusCallbackEvent: {e}")))?,
        }),
    };
    let timeout_secs = match form.value("Timeout") {
        None => 60,
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| bad_param(20001, format!("Timeout must be an integer, got {t:?}")))?
            .clamp(1, MAX_TIMEOUT_SECS),
    };
    let send_digits = form.value("SendDigits").map(str::to_string);
    if let Some(d) = &send_digits {
        if digits_ms(d).is_err() {
            return Err(bad_param(21206, format!("Invalid SendDigits: {d}")));
        }
    }
    let machine_detection = match form.value("MachineDetection") {
        // Twilio ignores machine detection when SendDigits is set.
        _ if send_digits.is_some() => None,
        None => None,
        Some("Enable") => Some(false),
        Some("DetectMessageEnd") => Some(true),
        Some(other) => return Err(bad_param(20001, format!("Invalid MachineDetection: {other}"))),
    };
    Ok(CallPlan {
        info: CallInfo {
            sid: sid.to_string(),
            account_sid: account_sid.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        },
        scenario: Scenario::for_number(to),
        twiml: twiml.map(str::to_string),
        url: url.map(|u| (u.to_string(), url_method)),
        timeout_secs,
        send_digits,
        machine_detection,
        callbacks,
    })
}

fn call_uri(account_sid: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json")
}

/// `price` of a Call resource: null until the call has ended; an answered (completed) call's charge per
/// started minute, at least one, written negative with 5 places as Twilio writes it (`"-0.02800"`); `"0.00000"`
/// for a call that was never answered.
pub fn call_price(r: &CallRecord) -> Value {
    match (r.status.as_str(), r.duration) {
        ("completed", Some(secs)) => {
            json!(format!("-{:.5}", secs.div_ceil(60).max(1) as f64 * PRICE_PER_MINUTE_USD))
        }
        ("busy" | "no-answer" | "failed" | "canceled", _) => json!("0.00000"),
        _ => Value::Null,
    }
}

/// The Call resource as Twilio's API renders it.
pub fn call_resource(r: &CallRecord) -> Value {
    let base = format!("/2010-04-01/Accounts/{}/Calls/{}", r.account_sid, r.sid);
    json!({
        "sid": r.sid,
        "account_sid": r.account_sid,
        "date_created": twilio_date(r.created),
        "date_updated": twilio_date(chrono::Utc::now()),
        "parent_call_sid": null,
        "to": r.to,
        "to_formatted": r.to,
        "from": r.from,
        "from_formatted": r.from,
        "phone_number_sid": null,
        "status": r.status,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "duration": r.duration.map(|d| d.to_string()),
        "price": call_price(r),
        "price_unit": "USD",
        "direction": "outbound-api",
        "answered_by": r.answered_by,
        "api_version": "2010-04-01",
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": call_uri(&r.account_sid, &r.sid),
        "subresource_uris": {
            "notifications": format!("{base}/Notifications.json"),
            "recordings": format!("{base}/Recordings.json"),
            "payments": format!("{base}/Payments.json"),
            "events": format!("{base}/Events.json"),
            "siprec": format!("{base}/Siprec.json"),
            "streams": format!("{base}/Streams.json"),
            "transcriptions": format!("{base}/Transcriptions.json"),
            "user_defined_message_subscriptions": format!("{base}/UserDefinedMessageSubscriptions.json"),
            "user_defined_messages": format!("{base}/UserDefinedMessages.json"),
        },
    })
}

async fn create_call(
    State(state): State<Arc<AppState>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let account = account_sid.clone();
    answer(&state, &headers, &account_sid, "create", |fault| place_call(&state, account, &body, fault)).await
}

/// Validates a create request and, when valid, records the call and starts playing it.
fn place_call(state: &Arc<AppState>, account_sid: String, body: &[u8], fault: Option<TwilioFault>) -> Response {
    let form = Form::parse(body);
    let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let plan = match plan_call(&form, &account_sid, &sid) {
        Ok(plan) => plan,
        Err(rejected) => {
            crate::log!(warn, "twilio", "create call rejected code={}", rejected.code);
            return rejected.api_response(StatusCode::BAD_REQUEST);
        }
    };
    let now = chrono::Utc::now();
    let created = state.uptime();
    let session = plan.callbacks.as_ref().and_then(|cb| session_param(&cb.url));
    let record = CallRecord {
        created: now,
        sid: sid.clone(),
        account_sid,
        received_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        created_ms: created.as_millis() as u64,
        ended_ms: None,
        session: session.clone(),
        // Only a fault that lets the create through reaches here: the call exists, its answer is spoilt.
        faults: fault.map(|f| f.kind().name().to_string()).into_iter().collect(),
        scenario: plan.scenario,
        to: plan.info.to.clone(),
        from: plan.info.from.clone(),
        form: form.to_json(),
        twiml: plan.twiml.clone(),
        executed: Vec::new(),
        errors: Vec::new(),
        sip: None,
        status_callbacks: Vec::new(),
        vapi: None,
        clinic: None,
        streams: Vec::new(),
        status: "queued".to_string(),
        answered_by: None,
        duration: None,
        start_time: None,
        end_time: None,
        final_status: None,
        done: false,
    };
    let resource = call_resource(&record);
    let handle = state.calls.insert(record);
    state.stats.call_created(created, &sid, session.as_deref());
    crate::log!(info, "twilio", "call created sid={sid} scenario={}", plan.scenario.name());
    tokio::spawn(call::play(state.clone(), handle, plan));
    (StatusCode::CREATED, Json(resource)).into_response()
}

/// The `session` query parameter of a StatusCallback URL: the attempt the Worker dialled for.
fn session_param(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "session").map(|(_, v)| v.into_owned())
}

async fn get_call(
    State(state): State<Arc<AppState>>,
    Path((account_sid, call_file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let sid = call_file.strip_suffix(".json").unwrap_or(&call_file);
    answer(&state, &headers, &account_sid, "fetch", |_| {
        match state.calls.get(sid).filter(|r| r.account_sid == account_sid) {
            Some(record) => Json(call_resource(&record)).into_response(),
            None => not_found(&call_uri(&account_sid, sid)),
        }
    })
    .await
}

/// The first page of calls, newest first, filtered by `To`, `From` and `Status`.
async fn list_calls(
    State(state): State<Arc<AppState>>,
    Path(account_sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(&state, &headers, &account_sid, "list", |_| calls_page(&state, &account_sid, query.as_deref())).await
}

fn calls_page(state: &AppState, account_sid: &str, query: Option<&str>) -> Response {
    let filters = Form::parse(query.unwrap_or_default().as_bytes());
    let page_size = filters.value("PageSize").and_then(|p| p.parse::<usize>().ok()).unwrap_or(50).clamp(1, 1000);
    let matches = |field: &str, value: &str| filters.value(field).is_none_or(|f| f == value);
    let mut calls = state.calls.list(|r| {
        r.account_sid == account_sid && matches("To", &r.to) && matches("From", &r.from) && matches("Status", &r.status)
    });
    calls.reverse();
    calls.truncate(page_size);
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Calls.json?PageSize={page_size}&Page=0");
    let end = calls.len().saturating_sub(1);
    Json(json!({
        "calls": calls.iter().map(call_resource).collect::<Vec<_>>(),
        "start": 0,
        "end": end,
        "page": 0,
        "page_size": page_size,
        "first_page_uri": uri,
        "previous_page_uri": null,
        "next_page_uri": null,
        "uri": uri,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        for ok in ["+15550001001", "+442071838750", "+12"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in ["15550001001", "+0123", "+1555-000", "+1234567890123456", "+", "", "+1 555"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn code(result: Result<CallPlan, TwilioError>) -> u32 {
        result.err().map_or(0, |e| e.code)
    }

    #[test]
    fn validation() {
        let base = [("To", "+15550001001"), ("From", "+15550000000"), ("Twiml", "<Response/>")];
        let plan = plan_call(&form(&base), "AC1", "CA1").expect("valid");
        assert_eq!(plan.timeout_secs, 60);
        assert!(plan.callbacks.is_none());

        let rejected = |pairs: &[(&str, &str)]| code(plan_call(&form(pairs), "AC1", "CA1"));
        assert_eq!(rejected(&base[1..]), 21201);
        assert_eq!(rejected(&[base[0], base[2]]), 21213);
        assert_eq!(rejected(&[base[0], base[1]]), 21205);
        assert_eq!(rejected(&[base[0], base[1], base[2], ("Url", "http://x/y")]), 21205);
        let long = "x".repeat(MAX_TWIML_CHARS + 1);
        assert_eq!(rejected(&[base[0], base[1], ("Twiml", &long)]), 32018);
        assert_eq!(rejected(&[("To", "555"), base[1], base[2]]), 21211);
        assert_eq!(rejected(&[base[0], ("From", "+0"), base[2]]), 21212);
        assert_eq!(rejected(&[base[0], base[1], base[2], ("ApplicationSid", "AP1")]), 21218);
        assert_eq!(rejected(&[base[0], base[1], base[2], ("SendDigits", "12x")]), 21206);
        assert_eq!(rejected(&[base[0], base[1], base[2], ("Timeout", "soon")]), 20001);
        let bad_event =
            [base[0], base[1], base[2], ("StatusCallback", "http://w/s"), ("StatusCallbackEvent", "hangup")];
        assert_eq!(rejected(&bad_event), 20001);
        assert_eq!(rejected(&[base[0], base[1], base[2], ("StatusCallback", "ftp://w")]), 21609);
    }

    #[test]
    fn session_from_callback_url() {
        let session = |url: &str| session_param(url);
        assert_eq!(session("http://w/twilio/status?session=abc-1").as_deref(), Some("abc-1"));
        assert_eq!(session("http://w/s?x=1&session=a%2Db#frag").as_deref(), Some("a-b"));
        assert_eq!(session("http://w/s?sessions=1"), None);
        assert_eq!(session("http://w/s"), None);
    }

    #[test]
    fn callbacks_and_repeated_keys() {
        let f = form(&[
            ("To", "+15550001001"),
            ("From", "+15550000000"),
            ("Url", "http://127.0.0.1:8787/twiml"),
            ("StatusCallback", "http://127.0.0.1:8787/twilio/status"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", "9999"),
        ]);
        let plan = plan_call(&f, "AC1", "CA1").expect("valid");
        let cb = plan.callbacks.expect("callback");
        assert!(cb.events.initiated && cb.events.completed && !cb.events.ringing);
        assert_eq!(plan.timeout_secs, 600);
        assert_eq!(f.to_json()["StatusCallbackEvent"], json!(["initiated", "completed"]));
        assert_eq!(f.to_json()["To"], json!("+15550001001"));
    }
}
