//! The Message resource: `POST/GET .../Messages.json` and `GET .../Messages/{Sid}.json` (operators.md §5.1–5.2).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::delivery::{self, price};
use super::scenario::{self, Delivery};
use super::segments;
use super::store::MessageRecord;
use crate::faults::TwilioFault;
use crate::state::{lock, AppState};
use crate::twilio::api::{answer, authenticate, is_e164, is_http_url, not_found, unauthorized, Form};
use crate::twilio::{api_faults, twilio_date, TwilioError};

/// Twilio's limit on `Body`, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/2010-04-01/Accounts/{account_sid}/Messages.json", post(create_message).get(list_messages))
        .route("/2010-04-01/Accounts/{account_sid}/Messages/{message_file}", get(fetch_message))
}

/// `MG` + 32 hex digits.
pub fn is_service_sid(sid: &str) -> bool {
    sid.strip_prefix("MG").is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A `From` Twilio accepts: an E.164 number, a short code (5–6 digits) or an alphanumeric sender ID
/// (1–11 letters, digits and spaces, at least one letter).
fn is_sender(from: &str) -> bool {
    let short_code = (5..=6).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    is_e164(from) || short_code || alphanumeric
}

/// A create request that passed validation.
#[derive(Debug)]
struct Plan {
    to: String,
    from: Option<String>,
    service: Option<String>,
    body: String,
    num_media: u32,
    status_callback: Option<String>,
}

/// Validates a create request as Twilio does; the first problem wins. Fields the stand-in does not act on
/// (`ValidityPeriod`, `SendAt`, `ShortenUrls`, `SmartEncoded`, `Attempt`, `ContentVariables`, …) are accepted.
fn plan_message(form: &Form) -> Result<Plan, TwilioError> {
    let to = form.value("To").ok_or_else(|| TwilioError::new(21604, "A 'To' phone number is required."))?;
    let from = form.value("From");
    let service = form.value("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return Err(TwilioError::new(21603, "A 'From' phone number is required."));
    }
    let body = form.first("Body").unwrap_or_default();
    let num_media = form.all("MediaUrl").count() as u32;
    if body.trim().is_empty() && num_media == 0 && form.value("ContentSid").is_none() {
        return Err(TwilioError::new(21602, "Message body is required."));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(TwilioError::new(21617, "The concatenated message body exceeds the 1600 character limit."));
    }
    if !is_e164(to) {
        return Err(TwilioError::new(21211, format!("The 'To' number {to} is not a valid phone number.")));
    }
    if let Some(from) = from.filter(|f| !is_sender(f)) {
        return Err(TwilioError::new(
            21212,
            format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
        ));
    }
    if let Some(service) = service.filter(|s| !is_service_sid(s)) {
        return Err(TwilioError::new(21701, format!("The Messaging Service Sid {service} is invalid.")));
    }
    let status_callback = match form.value("StatusCallback") {
        Some(url) if !is_http_url(url) => {
            return Err(TwilioError::new(21609, format!("The StatusCallback URL {url} is not a valid URL.")));
        }
        url => url.map(str::to_string),
    };
    Ok(Plan {
        to: to.to_string(),
        from: from.map(str::to_string),
        service: service.map(str::to_string),
        body: body.to_string(),
        num_media,
        status_callback,
    })
}

fn message_uri(account_sid: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json")
}

/// The Message resource as Twilio's API renders it (§5.2): counts and prices as strings, RFC 2822 dates.
pub fn message_resource(r: &MessageRecord) -> Value {
    // A Messaging Service's message has no segments counted until its sender is chosen.
    let num_segments = if r.from.is_none() { 0 } else { r.num_segments };
    let priced = r.sent.is_some();
    json!({
        "account_sid": r.account_sid,
        "api_version": "2010-04-01",
        "body": r.body,
        "date_created": twilio_date(r.created),
        "date_sent": r.sent.map(twilio_date),
        "date_updated": twilio_date(r.updated),
        "direction": "outbound-api",
        "error_code": r.error_code,
        "error_message": r.error_message,
        "from": r.from,
        "messaging_service_sid": r.messaging_service_sid,
        "num_media": r.num_media.to_string(),
        "num_segments": num_segments.to_string(),
        "price": priced.then(|| price(r.num_segments)),
        "price_unit": priced.then_some("USD"),
        "sid": r.sid,
        "status": r.status,
        "subresource_uris": {
            "media": format!("/2010-04-01/Accounts/{}/Messages/{}/Media.json", r.account_sid, r.sid),
        },
        "to": r.to,
        "uri": message_uri(&r.account_sid, &r.sid),
    })
}

async fn create_message(
    State(state): State<Arc<AppState>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authenticate(&state, &headers, &account_sid) {
        return unauthorized();
    }
    let form = Form::parse(&body);
    state.sms.attempted(form.first("To").unwrap_or_default(), form.first("Body").unwrap_or_default());
    let fault = state.faults.twilio_request();
    if let Some(refused) = api_faults::refusal(fault, "message create") {
        if let Some((_, error)) = fault.and_then(api_faults::refusal_error) {
            state.sms.refused(error.code);
        }
        state.faults.record_refusal("message create");
        return refused;
    }
    let processed = accept_message(&state, account_sid, &form, fault);
    api_faults::spoil(fault, "message create", processed).await
}

/// Validates a create request and, when valid, records the message and queues it on its sender.
fn accept_message(state: &Arc<AppState>, account_sid: String, form: &Form, fault: Option<TwilioFault>) -> Response {
    let refuse = |error: TwilioError| {
        crate::log!(warn, "twilio", "create message rejected code={}", error.code);
        state.sms.refused(error.code);
        error.api_response(StatusCode::BAD_REQUEST)
    };
    let plan = match plan_message(form) {
        Ok(plan) => plan,
        Err(error) => return refuse(error),
    };
    if let Some(error) = scenario::refused_number(&plan.to) {
        return refuse(error);
    }
    let senders = [plan.from.as_deref(), plan.service.as_deref()];
    if senders.into_iter().flatten().any(|sender| state.sms.is_blocked(&plan.to, sender)) {
        return refuse(scenario::opted_out());
    }
    let (encoding, num_segments) = segments::count(&plan.body);
    let now = Utc::now();
    let media = plan.num_media > 0;
    let sid = format!("{}{}", if media { "MM" } else { "SM" }, uuid::Uuid::new_v4().simple());
    let record = MessageRecord {
        sid: sid.clone(),
        account_sid,
        to: plan.to.clone(),
        // Through a Messaging Service the sender is chosen when the message leaves the queue.
        from: if plan.service.is_some() { None } else { plan.from.clone() },
        messaging_service_sid: plan.service.clone(),
        body: plan.body.clone(),
        encoding: encoding.name(),
        num_segments,
        num_media: plan.num_media,
        status: if plan.service.is_some() { "accepted" } else { "queued" }.to_string(),
        error_code: None,
        error_message: None,
        created: now,
        sent: None,
        released: None,
        updated: now,
        status_callback: plan.status_callback.clone(),
        status_callbacks: Vec::new(),
        // Only a fault that lets the create through reaches here: the message exists, its answer is spoilt.
        faults: fault.map(|f| f.kind().name().to_string()).into_iter().collect(),
    };
    let resource = message_resource(&record);
    let handle = state.sms.insert(record);
    state.sms.created(&plan.to, &plan.body);
    crate::log!(info, "twilio", "message created sid={sid} segments={num_segments}");
    delivery::start(state.clone(), handle, Delivery::for_number(&plan.to));
    (StatusCode::CREATED, Json(resource)).into_response()
}

async fn fetch_message(
    State(state): State<Arc<AppState>>,
    Path((account_sid, message_file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let sid = message_file.strip_suffix(".json").unwrap_or(&message_file);
    let lookup = || match state.sms.get(sid).filter(|r| r.account_sid == account_sid) {
        Some(record) => Json(message_resource(&record)).into_response(),
        None => not_found(&message_uri(&account_sid, sid)),
    };
    answer(&state, &headers, &account_sid, "message fetch", |_| lookup()).await
}

/// The `DateSent` filters: `DateSent=`, `DateSent>=` and `DateSent<=` (inclusive), each a `YYYY-MM-DD` day
/// (UTC) or an RFC 3339 instant.
#[derive(Debug, Default)]
struct DateSentFilter {
    not_before: Option<DateTime<Utc>>,
    /// Exclusive.
    before: Option<DateTime<Utc>>,
}

impl DateSentFilter {
    fn parse(filters: &Form) -> Result<DateSentFilter, TwilioError> {
        let mut filter = DateSentFilter::default();
        let invalid = |key: &str, v: &str| TwilioError::new(20001, format!("Invalid {key}: {v}"));
        let day = |v: &str| NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok();
        let instant = |v: &str| DateTime::parse_from_rfc3339(v.trim()).ok().map(|at| at.with_timezone(&Utc));
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
        let next_midnight = |d: NaiveDate| d.succ_opt().and_then(midnight);
        let (on, after, until) = ("DateSent", "DateSent>", "DateSent<");
        if let Some(v) = filters.value(on) {
            let d = day(v).or_else(|| instant(v).map(|at| at.date_naive())).ok_or_else(|| invalid(on, v))?;
            (filter.not_before, filter.before) = (midnight(d), next_midnight(d));
        }
        if let Some(v) = filters.value(after) {
            let at = day(v).and_then(midnight).or_else(|| instant(v)).ok_or_else(|| invalid(after, v))?;
            filter.not_before = filter.not_before.max(Some(at));
        }
        if let Some(v) = filters.value(until) {
            let at = match day(v) {
                Some(d) => next_midnight(d),
                None => instant(v).map(|at| at + chrono::Duration::milliseconds(1)),
            }
            .ok_or_else(|| invalid(until, v))?;
            filter.before = Some(filter.before.map_or(at, |b| b.min(at)));
        }
        Ok(filter)
    }

    fn admits(&self, at: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|nb| at >= nb) && self.before.is_none_or(|b| at < b)
    }
}

/// Messages newest first, filtered by `To`, `From` and `DateSent`, a page at a time (`PageSize`, default 50,
/// at most 1,000; `Page` from 0). A message not sent yet is dated by its creation: the stand-in lists a
/// queued message under the day it was created (whether Twilio lists unsent messages under a `DateSent`
/// filter is unverified).
async fn list_messages(
    State(state): State<Arc<AppState>>,
    Path(account_sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let filters = Form::parse(query.unwrap_or_default().as_bytes());
    let page = || match DateSentFilter::parse(&filters) {
        Ok(dates) => Json(list_page(&state, &account_sid, &filters, &dates)).into_response(),
        Err(error) => error.api_response(StatusCode::BAD_REQUEST),
    };
    answer(&state, &headers, &account_sid, "message list", |_| page()).await
}

fn list_page(state: &AppState, account_sid: &str, filters: &Form, dates: &DateSentFilter) -> Value {
    let number = |key: &str| filters.value(key).and_then(|v| v.parse::<usize>().ok());
    let page_size = number("PageSize").unwrap_or(50).clamp(1, 1000);
    let page = number("Page").unwrap_or(0);
    let from = filters.value("From");
    // Only the matching messages of the page are copied; the `To` index keeps a person's lookup small.
    let handles = state.sms.handles(filters.value("To"));
    let mut matching = handles.iter().rev().filter(|h| {
        let r = lock(h);
        r.account_sid == account_sid
            && from.is_none_or(|f| r.from.as_deref() == Some(f))
            && dates.admits(r.sent.unwrap_or(r.created))
    });
    let mut messages: Vec<Value> =
        matching.by_ref().skip(page * page_size).take(page_size + 1).map(|h| message_resource(&lock(h))).collect();
    let more = messages.len() > page_size;
    messages.truncate(page_size);

    let kept: Vec<(&str, &str)> = filters
        .0
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "Page" | "PageSize" | "PageToken"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page_uri = |n: usize| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(&kept);
        query.append_pair("PageSize", &page_size.to_string()).append_pair("Page", &n.to_string());
        format!("/2010-04-01/Accounts/{account_sid}/Messages.json?{}", query.finish())
    };
    let start = page * page_size;
    json!({
        "messages": messages,
        "start": start,
        "end": (start + messages.len()).saturating_sub(1),
        "page": page,
        "page_size": page_size,
        "first_page_uri": page_uri(0),
        "previous_page_uri": (page > 0).then(|| page_uri(page - 1)),
        "next_page_uri": more.then(|| page_uri(page + 1)),
        "uri": page_uri(page),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn code(pairs: &[(&str, &str)]) -> u32 {
        plan_message(&form(pairs)).err().map_or(0, |e| e.code)
    }

    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

    #[test]
    fn validation() {
        let base = [("To", "+15550001001"), ("From", "+15550000000"), ("Body", "Hello")];
        assert!(plan_message(&form(&base)).is_ok());
        assert_eq!(code(&base[1..]), 21604);
        assert_eq!(code(&[base[0], base[2]]), 21603);
        assert_eq!(code(&[base[0], base[1]]), 21602);
        assert_eq!(code(&[base[0], base[1], ("Body", "  ")]), 21602);
        assert_eq!(code(&[base[0], base[1], ("MediaUrl", "https://x/y.png")]), 0, "media without a body");
        let long = "a".repeat(MAX_BODY_CHARS + 1);
        assert_eq!(code(&[base[0], base[1], ("Body", &long)]), 21617);
        let longest = "é".repeat(MAX_BODY_CHARS);
        assert_eq!(code(&[base[0], base[1], ("Body", &longest)]), 0, "characters, not bytes");
        assert_eq!(code(&[("To", "5550001001"), base[1], base[2]]), 21211);
        assert_eq!(code(&[base[0], ("From", "+0"), base[2]]), 21212);
        assert_eq!(code(&[base[0], ("From", "Outcall"), base[2]]), 0, "alphanumeric sender");
        assert_eq!(code(&[base[0], ("From", "12345"), base[2]]), 0, "short code");
        assert_eq!(code(&[base[0], ("MessagingServiceSid", SERVICE), base[2]]), 0);
        assert_eq!(code(&[base[0], ("MessagingServiceSid", "MG123"), base[2]]), 21701);
        assert_eq!(code(&[base[0], base[1], base[2], ("StatusCallback", "ftp://x")]), 21609);
        let ignored = [base[0], base[1], base[2], ("ValidityPeriod", "60"), ("SmartEncoded", "true")];
        assert_eq!(code(&ignored), 0);
    }

    #[test]
    fn date_sent_filters() {
        let parse = |pairs: &[(&str, &str)]| DateSentFilter::parse(&form(pairs));
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let on = parse(&[("DateSent", "2025-07-01")]).unwrap();
        assert!(on.admits(at("2025-07-01T00:00:00Z")) && on.admits(at("2025-07-01T23:59:59Z")));
        assert!(!on.admits(at("2025-07-02T00:00:00Z")) && !on.admits(at("2025-06-30T23:59:59Z")));
        let since = parse(&[("DateSent>", "2025-07-01")]).unwrap();
        assert!(since.admits(at("2030-01-01T00:00:00Z")) && !since.admits(at("2025-06-30T23:59:59Z")));
        let until = parse(&[("DateSent<", "2025-07-01")]).unwrap();
        assert!(until.admits(at("2025-07-01T23:59:59Z")) && !until.admits(at("2025-07-02T00:00:00Z")));
        let instant = parse(&[("DateSent>", "2025-07-01T10:00:00Z")]).unwrap();
        assert!(!instant.admits(at("2025-07-01T09:59:59Z")) && instant.admits(at("2025-07-01T10:00:00Z")));
        assert_eq!(parse(&[("DateSent>", "yesterday")]).unwrap_err().code, 20001);
    }
}
