//! A batch request, parsed and validated whole before anything is written.
//!
//! `POST /api/v1/batches` takes `{"name", "targets": [...], "pendingCallIds": [...], "schedule":
//! {"notBefore", "window"}, "expiresAt", "metadata", "maxConcurrency", "callsPerSecond", "costCap"}`, all optional but at least one target or id; without a `name`,
//! `create_batch` names the batch after its creation time ("Batch 2026-12-02 14:05 UTC"). Every problem is collected (not just the first), each with the
//! path of the offending item and its value, so a caller can fix a 10,000-target list in one go. What
//! only the database knows (time-zone names, which ids exist) is checked by `create_batch` in SQL.

use crate::ids::PendingCallId;
use crate::phone::PhoneNumber;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Targets plus `pendingCallIds` one request may carry, unless `BATCH_MAX_TARGETS` says otherwise.
pub const DEFAULT_MAX_TARGETS: usize = 10_000;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_PROMPT_CHARS: usize = 10_000;
pub const MAX_FIRST_MESSAGE_CHARS: usize = 1_000;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// The most an object a caller sends (`metadata`, a target's `instructions`, `variables`, and its
/// `procedures` list) may take, serialized as JSON: ample for the context of one call (each key becomes
/// one of the assistant's variables), and it keeps one row, and the database webhook carrying it, small.
pub const MAX_OBJECT_BYTES: usize = 16 * 1024;

/// The keys a request may have; anything else is a mistake worth reporting, not ignoring.
const REQUEST_KEYS: [&str; 9] = [
    "name",
    "targets",
    "pendingCallIds",
    "schedule",
    "expiresAt",
    "metadata",
    "maxConcurrency",
    "callsPerSecond",
    "costCap",
];

/// The most a batch's own limits may say: beyond them they would hold nothing the global ones do not.
pub const MAX_BATCH_CONCURRENCY: u64 = 1_000;
pub const MAX_BATCH_CALLS_PER_SECOND: f64 = 1_000.0;
/// One call every 1,000 s at the slowest: a pace's spacing (1 / callsPerSecond) must stay a sane interval.
pub const MIN_BATCH_CALLS_PER_SECOND: f64 = 0.001;

/// One problem with one part of the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    /// Where: `targets[3].phone`, `pendingCallIds[0]`, `schedule.window.start`, `name`.
    pub path: String,
    /// The target's (or id's) position, when the problem is in a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub code: &'static str,
    pub message: String,
    /// The offending value as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl ItemError {
    pub(crate) fn new(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self { path: path.into(), index: None, code, message: message.into(), value: None }
    }
    pub(crate) fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
    pub(crate) fn with_value(mut self, value: &Value) -> Self {
        self.value = Some(value.clone());
        self
    }
}

/// Why a request was refused before it reached the database.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchRequestError {
    /// The body is not a JSON object.
    Malformed(String),
    /// The body is JSON, but these parts of it are wrong.
    Invalid(Vec<ItemError>),
}

/// A calling window of the batch's own: ISO days (1 = Monday) and local start/end times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: Vec<u8>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A batch's own dispatch limits, held by the claims on top of the global ones (`None`: none of its own).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    /// Its live calls at most.
    pub max_concurrency: Option<u64>,
    /// Its Twilio create requests per second at most (fractions allowed: 0.5 is one every 2 s).
    pub calls_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    pub not_before: Option<DateTime<Utc>>,
    pub window: Option<Window>,
}

/// A valid batch request, ready for `create_batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    /// Trimmed; `None` when the request has none, and `create_batch` names the batch after its creation time.
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
    /// One `pending_calls` row per target, keyed by column name, phones in E.164.
    pub targets: Vec<Map<String, Value>>,
    pub pending_call_ids: Vec<PendingCallId>,
    pub schedule: Schedule,
    /// `expiresAt`: no row of the batch is dialled from then on (a target's own `expires_at` may be earlier).
    pub expires_at: Option<DateTime<Utc>>,
    pub limits: Limits,
    /// The batch's spend cap in USD (`crate::cost`); `None`: only the daily cap, if any.
    pub cost_cap: Option<f64>,
}

impl NewBatch {
    /// `create_batch`'s argument: the batch, its rows, and the idempotency key with the request's hash.
    pub fn rpc_request(&self, idempotency_key: Option<&str>, request_hash: &str) -> Value {
        let window = self.schedule.window.as_ref().map(|w| {
            json!({"days": w.days, "start": w.start.format("%H:%M").to_string(), "end": w.end.format("%H:%M").to_string()})
        });
        json!({
            "name": self.name,
            "metadata": self.metadata,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "not_before": self.schedule.not_before.map(|t| t.to_rfc3339()),
            "expires_at": self.expires_at.map(|t| t.to_rfc3339()),
            "window": window,
            "max_concurrency": self.limits.max_concurrency,
            "calls_per_second": self.limits.calls_per_second,
            "targets": self.targets,
            "pending_call_ids": self.pending_call_ids,
            "cost_cap": self.cost_cap,
        })
    }
}

/// The fingerprint an `Idempotency-Key` is bound to: SHA-256 of the body exactly as sent.
pub fn request_hash(body: &str) -> String {
    Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// An `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn parse_idempotency_key(raw: &str) -> Result<&str, String> {
    let key = raw.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"));
    }
    Ok(key)
}

/// Parses and validates a whole request. `max_targets` bounds targets plus `pendingCallIds`.
pub fn parse_request(body: &str, max_targets: usize) -> Result<NewBatch, BatchRequestError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| BatchRequestError::Malformed(format!("not JSON: {e}")))?;
    let Value::Object(request) = value else {
        return Err(BatchRequestError::Malformed("the body must be a JSON object".into()));
    };
    let mut errors = Vec::new();
    for key in request.keys().filter(|k| !REQUEST_KEYS.contains(&k.as_str())) {
        errors.push(ItemError::new(key.clone(), "unknown_field", format!("{key} is not a batch field")));
    }
    let name = match request.get("name") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_str().map(|s| text_error(s, true, MAX_NAME_CHARS)) {
            Some(None) => value.as_str().map(|s| s.trim().to_owned()),
            _ => {
                let message =
                    format!("name must be text of 1 to {MAX_NAME_CHARS} characters, not blank, without U+0000");
                errors.push(ItemError::new("name", "invalid_name", message).with_value(value));
                None
            }
        },
    };
    let metadata = parse_metadata(&request, &mut errors);
    let targets = list(&request, "targets", &mut errors);
    let ids = list(&request, "pendingCallIds", &mut errors);
    let count = targets.len() + ids.len();
    if count == 0 && errors.is_empty() {
        errors.push(ItemError::new("targets", "empty", "a batch needs at least one target or pendingCallId"));
    }
    if count > max_targets {
        let message = format!("{count} targets and pendingCallIds; at most {max_targets} per batch");
        errors.push(ItemError::new("targets", "too_many", message));
        // Validating a list we refuse anyway would only bury the one error that matters.
        return Err(BatchRequestError::Invalid(errors));
    }
    let rows: Vec<Map<String, Value>> =
        targets.iter().enumerate().filter_map(|(i, t)| parse_target(i, t, &mut errors)).collect();
    if rows.len() == targets.len() {
        report_duplicate_targets(&rows, &mut errors);
    }
    let pending_call_ids = parse_ids(ids, &mut errors);
    let schedule = parse_schedule(request.get("schedule"), &mut errors);
    let expires_at = parse_expiry(&request, &rows, schedule.not_before, &mut errors);
    let limits = parse_limits(&request, &mut errors);
    let cost_cap = crate::cost::parse_cost_cap(request.get("costCap")).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if !errors.is_empty() {
        return Err(BatchRequestError::Invalid(errors));
    }
    Ok(NewBatch { name, metadata, targets: rows, pending_call_ids, schedule, expires_at, limits, cost_cap })
}

/// `metadata`: the caller's own object, returned as given (at most [`MAX_OBJECT_BYTES`]).
pub(crate) fn parse_metadata(request: &Map<String, Value>, errors: &mut Vec<ItemError>) -> Map<String, Value> {
    match request.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(value @ Value::Object(m)) => match object_error(value) {
            None => m.clone(),
            Some((code, message)) => {
                errors.push(ItemError::new("metadata", code, message));
                Map::new()
            }
        },
        Some(other) => {
            errors.push(ItemError::new("metadata", "invalid_type", "metadata must be an object").with_value(other));
            Map::new()
        }
    }
}

pub(crate) fn list<'a>(request: &'a Map<String, Value>, key: &str, errors: &mut Vec<ItemError>) -> &'a [Value] {
    match request.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(other) => {
            errors.push(ItemError::new(key, "invalid_type", format!("{key} must be a list")).with_value(other));
            &[]
        }
    }
}

/// How a target's keys become `pending_calls` columns, and what each must hold.
#[derive(Clone, Copy)]
enum Kind {
    Phone,
    RequiredText(usize),
    Text(usize),
    Date,
    Instant,
    TextList,
    Object,
    Attempts,
}

const TARGET_FIELDS: [(&str, &str, Kind); 15] = [
    ("phone", "phone", Kind::Phone),
    ("name", "employee_name", Kind::RequiredText(MAX_NAME_CHARS)),
    ("exam_id", "exam_id", Kind::Text(200)),
    ("employee_dob", "employee_dob", Kind::Date),
    ("client_name", "client_name", Kind::Text(MAX_NAME_CHARS)),
    ("clinic_name", "clinic_name", Kind::Text(MAX_NAME_CHARS)),
    ("clinic_timezone", "clinic_timezone", Kind::Text(64)),
    ("appointment_time", "appointment_time", Kind::Instant),
    ("procedures", "procedures", Kind::TextList),
    ("instructions", "instructions", Kind::Object),
    ("variables", "variables", Kind::Object),
    ("max_attempts", "max_attempts", Kind::Attempts),
    ("prompt", "prompt", Kind::Text(MAX_PROMPT_CHARS)),
    ("first_message", "first_message", Kind::Text(MAX_FIRST_MESSAGE_CHARS)),
    ("expires_at", "expires_at", Kind::Instant),
];

/// One target as a row, or `None` after recording what is wrong with it.
fn parse_target(index: usize, target: &Value, errors: &mut Vec<ItemError>) -> Option<Map<String, Value>> {
    let before = errors.len();
    let Value::Object(fields) = target else {
        errors
            .push(ItemError::new(format!("targets[{index}]"), "invalid_type", "a target must be an object").at(index));
        return None;
    };
    let mut row = Map::new();
    for key in fields.keys().filter(|k| !TARGET_FIELDS.iter().any(|(name, _, _)| name == k)) {
        let path = format!("targets[{index}].{key}");
        errors.push(ItemError::new(path, "unknown_field", format!("{key} is not a target field")).at(index));
    }
    for (key, column, kind) in TARGET_FIELDS {
        let path = format!("targets[{index}].{key}");
        let value = fields.get(key).filter(|v| !v.is_null());
        let required = matches!(kind, Kind::Phone | Kind::RequiredText(_));
        let Some(value) = value else {
            if required {
                errors.push(ItemError::new(path, "required", format!("{key} is required")).at(index));
            }
            continue;
        };
        match field_value(kind, value) {
            Ok(parsed) => {
                row.insert(column.to_owned(), parsed);
            }
            // Too large to be worth echoing: the path and the size say what is wrong.
            Err((code @ "too_large", message)) => errors.push(ItemError::new(path, code, message).at(index)),
            Err((code, message)) => errors.push(ItemError::new(path, code, message).at(index).with_value(value)),
        }
    }
    (errors.len() == before).then_some(row)
}

fn field_value(kind: Kind, value: &Value) -> Result<Value, (&'static str, String)> {
    let text = || value.as_str().map(str::trim).ok_or(("invalid_type", "must be text".to_owned()));
    match kind {
        Kind::Phone => {
            let raw = text()?;
            PhoneNumber::parse(raw).map(|p| Value::String(p.to_string())).map_err(|e| ("invalid_phone", e.to_string()))
        }
        Kind::RequiredText(max) | Kind::Text(max) => {
            let raw = value.as_str().ok_or(("invalid_type", "must be text".to_owned()))?;
            let required = matches!(kind, Kind::RequiredText(_));
            match text_error(raw, required, max) {
                None => Ok(Value::String(raw.trim().to_owned())),
                Some(message) => Err(("invalid_text", message)),
            }
        }
        Kind::Date => NaiveDate::parse_from_str(text()?, "%Y-%m-%d")
            .map(|d| Value::String(d.to_string()))
            .map_err(|_| ("invalid_date", "must be a date, YYYY-MM-DD".to_owned())),
        // As the instant in UTC: Postgres takes offsets up to ±15:59 only, RFC 3339 up to ±23:59 (and a
        // timestamptz keeps no offset anyway).
        Kind::Instant => DateTime::parse_from_rfc3339(text()?)
            .map(|t| Value::String(t.with_timezone(&Utc).to_rfc3339()))
            .map_err(|_| {
                ("invalid_time", "must be an RFC 3339 time with an offset, e.g. 2026-12-01T09:30:00-05:00".to_owned())
            }),
        Kind::TextList => match value.as_array() {
            Some(items) if items.iter().all(Value::is_string) => match object_error(value) {
                None => Ok(value.clone()),
                Some(error) => Err(error),
            },
            _ => Err(("invalid_type", "must be a list of text".to_owned())),
        },
        Kind::Object => match value {
            Value::Object(_) => match object_error(value) {
                None => Ok(value.clone()),
                Some(error) => Err(error),
            },
            _ => Err(("invalid_type", "must be an object".to_owned())),
        },
        Kind::Attempts => match whole_number(value) {
            Some(n @ 1..=20) => Ok(json!(n)),
            _ => Err(("out_of_range", "must be a whole number from 1 to 20".to_owned())),
        },
    }
}

/// A JSON number that is a whole number 0 or more, as JSON Schema's `integer` counts them (`16.0` too).
fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f)).map(|f| f as u64)
    })
}

/// What is wrong with a text field as given, if anything: more than `max` characters (counted before
/// trimming, as the OpenAPI document's `maxLength` counts them), blank when `required`, or a U+0000 (which
/// Postgres text cannot hold). The value kept is the trimmed text.
pub(crate) fn text_error(raw: &str, required: bool, max: usize) -> Option<String> {
    if raw.chars().count() > max || (required && raw.trim().is_empty()) {
        let least = if required { "1 (not blank)" } else { "0" };
        return Some(format!("must be text of {least} to {max} characters"));
    }
    raw.contains('\0').then(|| "must not contain U+0000".to_owned())
}

/// What is wrong with an object (or list) a caller sends, if anything: over [`MAX_OBJECT_BYTES`]
/// serialized (`too_large`), or a U+0000 in one of its strings or keys (`invalid_text`: Postgres `jsonb`
/// cannot hold it).
pub(crate) fn object_error(value: &Value) -> Option<(&'static str, String)> {
    let size = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
    if size > MAX_OBJECT_BYTES {
        return Some(("too_large", format!("is {size} bytes as JSON; at most {MAX_OBJECT_BYTES} bytes are allowed")));
    }
    has_nul(value).then(|| ("invalid_text", "no string or key in it may contain U+0000".to_owned()))
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The same person at the same number about the same thing, twice. (Many employees share a clinic's
/// number, so the phone alone is not a duplicate.)
fn report_duplicate_targets(rows: &[Map<String, Value>], errors: &mut Vec<ItemError>) {
    let mut first_seen: HashMap<[String; 4], usize> = HashMap::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let field = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
        let key = [field("phone"), field("employee_name").to_lowercase(), field("exam_id"), field("appointment_time")];
        if let Some(first) = first_seen.get(&key) {
            let message = format!("the same phone, name, exam_id and appointment_time as targets[{first}]");
            let value = row.get("phone").cloned().unwrap_or(Value::Null);
            errors.push(ItemError::new(format!("targets[{index}]"), "duplicate", message).at(index).with_value(&value));
        } else {
            first_seen.insert(key, index);
        }
    }
}

fn parse_ids(ids: &[Value], errors: &mut Vec<ItemError>) -> Vec<PendingCallId> {
    let mut seen: HashMap<PendingCallId, usize> = HashMap::with_capacity(ids.len());
    let mut parsed = Vec::with_capacity(ids.len());
    for (index, raw) in ids.iter().enumerate() {
        let path = format!("pendingCallIds[{index}]");
        match raw.as_str().map(PendingCallId::parse) {
            Some(Ok(id)) => match seen.get(&id) {
                Some(first) => {
                    let message = format!("the same id as pendingCallIds[{first}]");
                    errors.push(ItemError::new(path, "duplicate", message).at(index).with_value(raw));
                }
                None => {
                    seen.insert(id, index);
                    parsed.push(id);
                }
            },
            _ => errors.push(
                ItemError::new(path, "invalid_id", "must be a pending call id (a UUID)").at(index).with_value(raw),
            ),
        }
    }
    parsed
}

/// `maxConcurrency` (a whole number, 1 to [`MAX_BATCH_CONCURRENCY`]) and `callsPerSecond` (a number from
/// [`MIN_BATCH_CALLS_PER_SECOND`] to [`MAX_BATCH_CALLS_PER_SECOND`]); absent or null: none.
fn parse_limits(request: &Map<String, Value>, errors: &mut Vec<ItemError>) -> Limits {
    let given = |key: &str| request.get(key).filter(|v| !v.is_null());
    let max_concurrency = given("maxConcurrency").and_then(|raw| match whole_number(raw) {
        Some(n @ 1..=MAX_BATCH_CONCURRENCY) => Some(n),
        _ => {
            let message = format!("maxConcurrency must be a whole number from 1 to {MAX_BATCH_CONCURRENCY}");
            errors.push(ItemError::new("maxConcurrency", "out_of_range", message).with_value(raw));
            None
        }
    });
    let calls_per_second = given("callsPerSecond").and_then(|raw| match raw.as_f64() {
        Some(cps) if (MIN_BATCH_CALLS_PER_SECOND..=MAX_BATCH_CALLS_PER_SECOND).contains(&cps) => Some(cps),
        _ => {
            let message = format!(
                "callsPerSecond must be a number from {MIN_BATCH_CALLS_PER_SECOND} to {MAX_BATCH_CALLS_PER_SECOND}"
            );
            errors.push(ItemError::new("callsPerSecond", "out_of_range", message).with_value(raw));
            None
        }
    });
    Limits { max_concurrency, calls_per_second }
}

fn parse_schedule(schedule: Option<&Value>, errors: &mut Vec<ItemError>) -> Schedule {
    let fields = match schedule {
        None | Some(Value::Null) => return Schedule::default(),
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            errors.push(ItemError::new("schedule", "invalid_type", "schedule must be an object").with_value(other));
            return Schedule::default();
        }
    };
    for key in fields.keys().filter(|k| !["notBefore", "window"].contains(&k.as_str())) {
        errors.push(ItemError::new(
            format!("schedule.{key}"),
            "unknown_field",
            format!("{key} is not a schedule field"),
        ));
    }
    let not_before = parse_not_before(fields, errors);
    let window = fields.get("window").filter(|v| !v.is_null()).and_then(|w| parse_window(w, errors));
    Schedule { not_before, window }
}

/// `schedule.notBefore`: an RFC 3339 time with an offset, as the instant in UTC.
pub(crate) fn parse_not_before(schedule: &Map<String, Value>, errors: &mut Vec<ItemError>) -> Option<DateTime<Utc>> {
    let raw = schedule.get("notBefore").filter(|v| !v.is_null())?;
    match raw.as_str().map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        _ => {
            let message = "notBefore must be an RFC 3339 time with an offset";
            errors.push(ItemError::new("schedule.notBefore", "invalid_time", message).with_value(raw));
            None
        }
    }
}

/// `expiresAt` (RFC 3339 with an offset, as the instant in UTC), and the rule it and each target's `expires_at`
/// keep: after `schedule.notBefore` (else no row could ever be dialled). One already past is `create_batch`'s to
/// refuse (`expires_in_past`): the database's clock is the one the claims read.
fn parse_expiry(
    request: &Map<String, Value>,
    rows: &[Map<String, Value>],
    not_before: Option<DateTime<Utc>>,
    errors: &mut Vec<ItemError>,
) -> Option<DateTime<Utc>> {
    let raw = request.get("expiresAt").filter(|v| !v.is_null());
    let expires_at = match raw.map(|v| (v, v.as_str().map(DateTime::parse_from_rfc3339))) {
        None => None,
        Some((_, Some(Ok(t)))) => Some(t.with_timezone(&Utc)),
        Some((value, _)) => {
            let message = "expiresAt must be an RFC 3339 time with an offset";
            errors.push(ItemError::new("expiresAt", "invalid_time", message).with_value(value));
            None
        }
    };
    let Some(not_before) = not_before else { return expires_at };
    let too_early = |t: DateTime<Utc>| t <= not_before;
    let message = "must be after schedule.notBefore: no row could be dialled";
    if let (Some(_), Some(value)) = (expires_at.filter(|t| too_early(*t)), raw) {
        errors.push(ItemError::new("expiresAt", "expires_before_start", message).with_value(value));
    }
    for (index, row) in rows.iter().enumerate() {
        let own = row.get("expires_at").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if own.is_some_and(|t| too_early(t.with_timezone(&Utc))) {
            let path = format!("targets[{index}].expires_at");
            errors.push(ItemError::new(path, "expires_before_start", message).at(index).with_value(&row["expires_at"]));
        }
    }
    expires_at
}

/// `{"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}`, times on each callee's clock.
fn parse_window(raw: &Value, errors: &mut Vec<ItemError>) -> Option<Window> {
    let invalid =
        |path: &str, message: &str| ItemError::new(format!("schedule.window{path}"), "invalid_window", message);
    let Value::Object(fields) = raw else {
        errors.push(invalid("", "window must be {\"days\", \"start\", \"end\"}").with_value(raw));
        return None;
    };
    let before = errors.len();
    let days: Vec<u8> = match fields.get("days").and_then(Value::as_array) {
        Some(days) if !days.is_empty() && days.iter().all(|d| matches!(whole_number(d), Some(1..=7))) => {
            let mut days: Vec<u8> = days.iter().filter_map(whole_number).map(|d| d as u8).collect();
            days.sort_unstable();
            days.dedup();
            days
        }
        _ => {
            let value = fields.get("days").unwrap_or(&Value::Null);
            errors.push(
                invalid(".days", "days must be a non-empty list of ISO weekdays, 1 (Monday) to 7").with_value(value),
            );
            Vec::new()
        }
    };
    let time = |key: &str, errors: &mut Vec<ItemError>| {
        let raw = fields.get(key).unwrap_or(&Value::Null);
        // Exactly `HH:MM`, as the document's pattern says (chrono alone would take `9:00`).
        let exact = |s: &&str| s.len() == 5 && s.bytes().enumerate().all(|(i, b)| (i == 2) == (b == b':'));
        let parsed = raw.as_str().filter(exact).and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok());
        if parsed.is_none() {
            errors.push(invalid(&format!(".{key}"), &format!("{key} must be a local time, HH:MM")).with_value(raw));
        }
        parsed
    };
    let (start, end) = (time("start", errors), time("end", errors));
    if let (Some(start), Some(end)) = (start, end) {
        if start >= end {
            errors.push(invalid("", "start must be before end (a window does not span midnight)").with_value(raw));
        }
    }
    (errors.len() == before).then(|| Window { days, start: start.unwrap_or_default(), end: end.unwrap_or_default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_A: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    const ID_B: &str = "7f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn parse(body: Value) -> Result<NewBatch, BatchRequestError> {
        parse_request(&body.to_string(), DEFAULT_MAX_TARGETS)
    }

    fn errors(body: Value) -> Vec<ItemError> {
        match parse(body) {
            Err(BatchRequestError::Invalid(errors)) => errors,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_becomes_rows_in_column_names() {
        let batch = parse(json!({
            "name": " Storm warning ",
            "metadata": {"source": "fleet"},
            "targets": [{"phone": "+1 (555) 000-1001", "name": "Dana", "variables": {"route": 7},
                         "prompt": "Mention the storm.", "first_message": "Hi Dana", "max_attempts": 2,
                         "appointment_time": "2026-12-01T09:30:00-05:00", "employee_dob": "1990-02-03"}],
            "pendingCallIds": [ID_A],
            "schedule": {"notBefore": "2026-12-01T08:00:00Z", "window": {"days": [5, 1, 1], "start": "08:00", "end": "12:30"}},
            "costCap": 12.5
        }))
        .unwrap();
        assert_eq!(batch.name.as_deref(), Some("Storm warning"));
        let row = &batch.targets[0];
        assert_eq!(row["phone"], "+15550001001");
        assert_eq!(row["employee_name"], "Dana");
        assert_eq!(row["variables"], json!({"route": 7}));
        assert_eq!(row["first_message"], "Hi Dana");
        assert_eq!(row["max_attempts"], 2);
        assert_eq!(row["appointment_time"], "2026-12-01T14:30:00+00:00", "the instant, in UTC");
        assert!(!row.contains_key("exam_id"), "absent fields take the column defaults");
        assert_eq!(batch.pending_call_ids, vec![PendingCallId::parse(ID_A).unwrap()]);
        let window = batch.schedule.window.clone().unwrap();
        assert_eq!(window.days, vec![1, 5]);
        let rpc = batch.rpc_request(Some("key-1"), "abc");
        assert_eq!(rpc["window"], json!({"days": [1, 5], "start": "08:00", "end": "12:30"}));
        assert_eq!(rpc["not_before"], "2026-12-01T08:00:00+00:00");
        assert_eq!(rpc["pending_call_ids"], json!([ID_A]));
        assert_eq!(rpc["cost_cap"], json!(12.5), "the cap, in USD");
        assert_eq!(
            errors(json!({"targets": [{"phone": "+15550001001", "name": "a"}], "costCap": 0}))[0].code,
            "invalid_cost_cap"
        );
        assert_eq!(rpc["idempotency_key"], "key-1");
        assert_eq!(rpc["name"], "Storm warning");
    }

    #[test]
    fn the_name_is_optional_and_create_batch_makes_one() {
        // Seed 000's shape: ids and metadata only.
        let batch = parse(json!({"pendingCallIds": [ID_A], "metadata": {"callType": "batch_safety_check"}})).unwrap();
        assert_eq!(batch.name, None);
        assert_eq!(batch.rpc_request(None, "h")["name"], Value::Null, "create_batch names it");
        assert_eq!(parse(json!({"name": null, "pendingCallIds": [ID_A]})).unwrap().name, None);
        // At most 200 characters as given (the document's maxLength), kept trimmed; never blank.
        let name = format!("{} ", "n".repeat(MAX_NAME_CHARS - 1));
        assert_eq!(parse(json!({"name": name, "pendingCallIds": [ID_A]})).unwrap().name, Some("n".repeat(199)));
        for bad in
            [json!(""), json!(" \t\u{3000}"), json!("n".repeat(MAX_NAME_CHARS) + " "), json!("a\u{0}b"), json!(7)]
        {
            let found = errors(json!({"name": bad, "pendingCallIds": [ID_A]}));
            assert_eq!((found[0].path.as_str(), found[0].code), ("name", "invalid_name"), "{bad}");
        }
    }

    #[test]
    fn text_postgres_cannot_hold_is_refused() {
        let found = errors(json!({"metadata": {"k": ["a\u{0}"]}, "targets": [
            {"phone": "+15550001001", "name": "a", "exam_id": "x\u{0}", "variables": {"k\u{0}": 1}},
            {"phone": "+15550001002", "name": "b", "procedures": ["\u{0}"]}]}));
        let summary: Vec<(String, &str)> = found.iter().map(|e| (e.path.clone(), e.code)).collect();
        assert_eq!(
            summary,
            vec![
                ("metadata".into(), "invalid_text"),
                ("targets[0].exam_id".into(), "invalid_text"),
                ("targets[0].variables".into(), "invalid_text"),
                ("targets[1].procedures".into(), "invalid_text"),
            ]
        );
        // Lengths count the text as given, before trimming.
        let long = format!(" {}", "x".repeat(200));
        let found = errors(json!({"targets": [{"phone": "+15550001001", "name": "a", "exam_id": long}]}));
        assert_eq!((found[0].path.as_str(), found[0].code), ("targets[0].exam_id", "invalid_text"));
    }

    #[test]
    fn every_bad_target_is_reported_with_its_index_and_value() {
        let found = errors(json!({"name": "n", "targets": [
            {"phone": "+15550001001", "name": "ok"},
            {"phone": "555-0100", "name": "no plus"},
            {"phone": "+15550001002"},
            {"phone": "+15550001003", "name": "x", "max_attempts": 0, "colour": "red"},
        ]}));
        let summary: Vec<(String, Option<usize>, &str)> =
            found.iter().map(|e| (e.path.clone(), e.index, e.code)).collect();
        assert_eq!(
            summary,
            vec![
                ("targets[1].phone".into(), Some(1), "invalid_phone"),
                ("targets[2].name".into(), Some(2), "required"),
                ("targets[3].colour".into(), Some(3), "unknown_field"),
                ("targets[3].max_attempts".into(), Some(3), "out_of_range"),
            ]
        );
        assert_eq!(found[0].value, Some(json!("555-0100")));
    }

    #[test]
    fn instants_go_to_the_database_in_utc_whatever_their_offset() {
        let batch = parse(json!({"targets": [
            {"phone": "+15550001001", "name": "a", "appointment_time": "0287-10-20T01:20:34+16:48"},
            {"phone": "+15550001002", "name": "b", "appointment_time": "2026-12-01T23:30:00-23:59"}],
            "schedule": {"notBefore": "2026-12-01T00:00:00+23:00"}}))
        .unwrap();
        assert_eq!(batch.targets[0]["appointment_time"], "0287-10-19T08:32:34+00:00");
        assert_eq!(batch.targets[1]["appointment_time"], "2026-12-02T23:29:00+00:00");
        assert_eq!(batch.rpc_request(None, "h")["not_before"], "2026-11-30T01:00:00+00:00");
    }

    #[test]
    fn duplicates_are_the_same_person_at_the_same_number() {
        let found = errors(json!({"name": "n", "targets": [
            {"phone": "+15550001001", "name": "Dana"},
            {"phone": "+15550001001", "name": "Sam"},
            {"phone": "+1 555 000 1001", "name": "dana"},
        ], "pendingCallIds": [ID_A, ID_B, ID_A]}));
        let summary: Vec<(String, &str)> = found.iter().map(|e| (e.path.clone(), e.code)).collect();
        assert_eq!(summary, vec![("targets[2]".into(), "duplicate"), ("pendingCallIds[2]".into(), "duplicate")]);
        assert!(found[0].message.contains("targets[0]"));
    }

    #[test]
    fn empty_and_oversized_batches_are_refused() {
        assert_eq!(errors(json!({"name": "n", "targets": []}))[0].code, "empty");
        assert_eq!(errors(json!({"name": "n"}))[0].code, "empty");
        let targets: Vec<Value> = (0..4).map(|i| json!({"phone": format!("+1555000100{i}"), "name": "x"})).collect();
        let body = json!({"name": "n", "targets": targets, "pendingCallIds": [ID_A]}).to_string();
        match parse_request(&body, 4) {
            Err(BatchRequestError::Invalid(e)) => assert_eq!((e.len(), e[0].code), (1, "too_many")),
            other => panic!("{other:?}"),
        }
        assert!(parse_request(&body, 5).is_ok());
    }

    #[test]
    fn the_request_itself_must_be_well_formed() {
        assert!(matches!(parse_request("{", 10), Err(BatchRequestError::Malformed(_))));
        assert!(matches!(parse_request("[]", 10), Err(BatchRequestError::Malformed(_))));
        let found = errors(json!({"targets": [{"phone": "+15550001001", "name": "x"}], "extra": 1, "metadata": []}));
        let codes: Vec<&str> = found.iter().map(|e| e.code).collect();
        assert_eq!(codes, vec!["unknown_field", "invalid_type"]);
    }

    #[test]
    fn objects_over_their_cap_are_reported_by_path_without_their_value() {
        let big = |n: usize| json!({"notes": "x".repeat(n)});
        // {"notes":"..."} is 12 bytes around the text.
        let at_cap = big(MAX_OBJECT_BYTES - 12);
        assert_eq!(serde_json::to_string(&at_cap).unwrap().len(), MAX_OBJECT_BYTES);
        let over = big(MAX_OBJECT_BYTES - 11);
        let list_over = json!(["y".repeat(MAX_OBJECT_BYTES)]);
        let ok = parse(json!({"name": "n", "metadata": at_cap, "targets": [
            {"phone": "+15550001001", "name": "a", "instructions": at_cap, "variables": at_cap}]}));
        assert!(ok.is_ok(), "{ok:?}");
        let found = errors(json!({"name": "n", "metadata": over, "targets": [
            {"phone": "+15550001001", "name": "a", "instructions": over},
            {"phone": "+15550001002", "name": "b", "variables": over, "procedures": list_over},
        ]}));
        let summary: Vec<(String, Option<usize>, &str)> =
            found.iter().map(|e| (e.path.clone(), e.index, e.code)).collect();
        assert_eq!(
            summary,
            vec![
                ("metadata".into(), None, "too_large"),
                ("targets[0].instructions".into(), Some(0), "too_large"),
                ("targets[1].procedures".into(), Some(1), "too_large"),
                ("targets[1].variables".into(), Some(1), "too_large"),
            ]
        );
        assert!(found.iter().all(|e| e.value.is_none()), "an oversized value is not echoed");
        assert!(found[0].message.contains(&MAX_OBJECT_BYTES.to_string()), "{}", found[0].message);
        // The prompt and first message keep their character limits.
        let long_prompt = errors(json!({"name": "n", "targets": [
            {"phone": "+15550001001", "name": "a", "prompt": "p".repeat(MAX_PROMPT_CHARS + 1),
             "first_message": "f".repeat(MAX_FIRST_MESSAGE_CHARS + 1)}]}));
        let paths: Vec<&str> = long_prompt.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["targets[0].prompt", "targets[0].first_message"]);
    }

    #[test]
    fn schedules_are_checked() {
        let base = |schedule: Value| json!({"name": "n", "targets": [{"phone": "+15550001001", "name": "x"}], "schedule": schedule});
        let codes =
            |schedule: Value| errors(base(schedule)).iter().map(|e| (e.path.clone(), e.code)).collect::<Vec<_>>();
        assert_eq!(codes(json!({"notBefore": "tomorrow"})), vec![("schedule.notBefore".into(), "invalid_time")]);
        assert_eq!(
            codes(json!({"window": {"days": [0], "start": "09:00", "end": "25:00"}})),
            vec![("schedule.window.days".into(), "invalid_window"), ("schedule.window.end".into(), "invalid_window")]
        );
        assert_eq!(
            codes(json!({"window": {"days": [1], "start": "17:00", "end": "09:00"}})),
            vec![("schedule.window".into(), "invalid_window")]
        );
        assert_eq!(
            codes(json!({"window": {"days": [1], "start": "9:00", "end": "1700"}})),
            vec![("schedule.window.start".into(), "invalid_window"), ("schedule.window.end".into(), "invalid_window")]
        );
        assert!(parse(base(json!({"notBefore": null, "window": null}))).is_ok());
        // JSON Schema's integers include 5.0.
        let batch = parse(base(json!({"window": {"days": [5.0, 1], "start": "08:00", "end": "09:00"}}))).unwrap();
        assert_eq!(batch.schedule.window.unwrap().days, vec![1, 5]);
        let whole = parse(json!({"targets": [{"phone": "+15550001001", "name": "x", "max_attempts": 16.0}]})).unwrap();
        assert_eq!(whole.targets[0]["max_attempts"], json!(16));
        assert_eq!(codes(json!({"window": {"days": [1.5], "start": "08:00", "end": "09:00"}}))[0].1, "invalid_window");
    }

    #[test]
    fn expiry_is_an_instant_after_not_before() {
        let request = |expires: Value, target_expires: Value, not_before: Value| {
            json!({"targets": [{"phone": "+15550001001", "name": "x", "expires_at": target_expires}],
                   "expiresAt": expires, "schedule": {"notBefore": not_before}})
        };
        let batch =
            parse(request(json!("2026-12-01T10:00:00-05:00"), json!("2026-12-01T14:00:00Z"), json!(null))).unwrap();
        assert_eq!(batch.expires_at.map(|t| t.to_rfc3339()), Some("2026-12-01T15:00:00+00:00".into()));
        assert_eq!(batch.targets[0]["expires_at"], "2026-12-01T14:00:00+00:00");
        let sent = batch.rpc_request(None, "h");
        assert_eq!(
            (sent["expires_at"].as_str(), sent["targets"][0]["expires_at"].as_str()),
            (Some("2026-12-01T15:00:00+00:00"), Some("2026-12-01T14:00:00+00:00"))
        );
        assert_eq!(parse(request(json!(null), json!(null), json!(null))).unwrap().expires_at, None);
        let codes = |body: Value| errors(body).iter().map(|e| (e.path.clone(), e.code)).collect::<Vec<_>>();
        assert_eq!(codes(request(json!("soon"), json!(null), json!(null))), vec![("expiresAt".into(), "invalid_time")]);
        assert_eq!(
            codes(request(json!("2026-12-01T09:00:00Z"), json!("2026-12-01T08:00:00Z"), json!("2026-12-01T09:00:00Z"))),
            vec![
                ("expiresAt".into(), "expires_before_start"),
                ("targets[0].expires_at".into(), "expires_before_start")
            ]
        );
        assert!(parse(request(json!("2026-12-01T09:00:01Z"), json!(null), json!("2026-12-01T09:00:00Z"))).is_ok());
    }

    #[test]
    fn a_batchs_own_limits_are_checked_and_passed_on() {
        let target = json!([{"phone": "+15550001001", "name": "A"}]);
        let batch = parse(json!({"targets": target, "maxConcurrency": 3, "callsPerSecond": 0.5})).unwrap();
        assert_eq!(batch.limits, Limits { max_concurrency: Some(3), calls_per_second: Some(0.5) });
        let rpc = batch.rpc_request(None, "h");
        assert_eq!((rpc["max_concurrency"].clone(), rpc["calls_per_second"].clone()), (json!(3), json!(0.5)));
        let none = parse(json!({"targets": target, "maxConcurrency": null})).unwrap().rpc_request(None, "h");
        assert_eq!((none["max_concurrency"].clone(), none["calls_per_second"].clone()), (Value::Null, Value::Null));
        assert_eq!(parse(json!({"targets": target, "maxConcurrency": 2.0})).unwrap().limits.max_concurrency, Some(2));
        for (key, bad) in [
            ("maxConcurrency", json!(0)),
            ("maxConcurrency", json!(1.5)),
            ("maxConcurrency", json!(1001)),
            ("maxConcurrency", json!("2")),
            ("callsPerSecond", json!(0)),
            ("callsPerSecond", json!(-1)),
            ("callsPerSecond", json!(5e-324)),
            ("callsPerSecond", json!(0.0009)),
            ("callsPerSecond", json!(1000.5)),
            ("callsPerSecond", json!("1")),
        ] {
            let found = errors(json!({"targets": target, key: bad.clone()}));
            assert_eq!(found.len(), 1, "{key}: {bad}");
            assert_eq!((found[0].path.as_str(), found[0].code), (key, "out_of_range"), "{key}: {bad}");
            assert_eq!(found[0].value, Some(bad));
        }
    }

    #[test]
    fn idempotency_keys_and_hashes() {
        assert_eq!(parse_idempotency_key(" abc-123 "), Ok("abc-123"));
        assert!(parse_idempotency_key("").is_err());
        assert!(parse_idempotency_key("has space").is_err());
        assert!(parse_idempotency_key(&"k".repeat(256)).is_err());
        assert_eq!(request_hash("a"), request_hash("a"));
        assert_ne!(request_hash("a"), request_hash("a "));
        assert_eq!(request_hash("").len(), 64);
    }
}
