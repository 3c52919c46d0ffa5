//! The targets: every parser of outside input, called as the Worker calls it.

use crate::gen::{mutate, Gen};
use crate::{field, fields, frame, Target, FIELD};
use chrono::DateTime;
use outcall_core::api::{self, Page, MAX_PAGE};
use outcall_core::batch::{self, BatchRequestError, DEFAULT_MAX_TARGETS};
use outcall_core::body::{self, BodyPlan, CappedBody};
use outcall_core::classification::{Classification, IvrAction};
use outcall_core::config::{self, Config, OPTIONAL_VARIABLES, VARIABLES};
use outcall_core::dispatch;
use outcall_core::error::ApiError;
use outcall_core::ids::PendingCallId;
use outcall_core::learning::listener::Listener;
use outcall_core::learning::media;
use outcall_core::learning::stt::{Deepgram, SpeechToText};
use outcall_core::operator;
use outcall_core::phone::PhoneNumber;
use outcall_core::reconcile::{self, CallPage, CallResource};
use outcall_core::retry::{self, Backoff, Reply, Verdict};
use outcall_core::routes::{self, Route};
use outcall_core::rpc::ClassificationAction;
use outcall_core::rpc::{self, ApplyCallReport, ApplyTwilioStatus, CallbackDetails};
use outcall_core::sms::{
    self, keywords,
    request::MAX_BODY_CHARS,
    segments::{self, Encoding, Segments},
    template::{Template, TemplateError},
    wire::{MessageResource, SendOutcome},
};
use outcall_core::suppression;
use outcall_core::twilio::{self, CallStatus, StatusEvent};
use outcall_core::twiml::{self, Step, MAX_INLINE_TWIML};
use outcall_core::user_jwt::{self, Jwks, JwksCache};
use outcall_core::vapi::{parse_message, ServerMessage};
use outcall_core::vapi_auth::{hex, hmac_sha256, VapiCredential};
use outcall_core::webhook::DatabaseWebhook;
use serde_json::{json, Value};
use std::time::Duration;

/// Every target, in the order of the report.
pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "webhook",
            entry: "serde DatabaseWebhook, DatabaseWebhook::action",
            seeds: webhook_seeds,
            generate: webhook_generate,
            check: webhook_check,
        },
        Target {
            name: "twilio_status",
            entry: "form body, StatusEvent::parse, dispatch::session_from_query",
            seeds: twilio_status_seeds,
            generate: twilio_status_generate,
            check: twilio_status_check,
        },
        Target {
            name: "twilio_signature",
            entry: "form body, twilio::signature_is_valid",
            seeds: twilio_signature_seeds,
            generate: twilio_signature_generate,
            check: twilio_signature_check,
        },
        Target {
            name: "vapi_message",
            entry: "vapi::parse_message, ToolCall::pending_call_id, ApplyCallReport",
            seeds: vapi_message_seeds,
            generate: vapi_message_generate,
            check: vapi_message_check,
        },
        Target {
            name: "vapi_auth",
            entry: "VapiCredential::check_headers, check_body (bearer, HMAC)",
            seeds: vapi_auth_seeds,
            generate: vapi_auth_generate,
            check: vapi_auth_check,
        },
        Target {
            name: "batch_request",
            entry: "batch::parse_request, NewBatch::rpc_request, validation_error",
            seeds: batch_seeds,
            generate: batch_generate,
            check: batch_check,
        },
        Target {
            name: "sms_request",
            entry: "sms::request::parse_request, NewSmsBatch::rpc_request, validation_error",
            seeds: sms_request_seeds,
            generate: sms_request_generate,
            check: sms_request_check,
        },
        Target {
            name: "sms_template",
            entry: "sms::template::Template::parse, render",
            seeds: sms_template_seeds,
            generate: sms_template_generate,
            check: sms_template_check,
        },
        Target {
            name: "sms_segments",
            entry: "sms::segments::count",
            seeds: sms_segments_seeds,
            generate: sms_segments_generate,
            check: sms_segments_check,
        },
        Target {
            name: "sms_webhooks",
            entry: "sms::wire::StatusCallback::parse, Inbound::parse, send_outcome, sms::keywords::keyword",
            seeds: sms_webhooks_seeds,
            generate: sms_webhooks_generate,
            check: sms_webhooks_check,
        },
        Target {
            name: "idempotency_key",
            entry: "api::idempotency_key, batch::parse_idempotency_key",
            seeds: idempotency_seeds,
            generate: idempotency_generate,
            check: idempotency_check,
        },
        Target {
            name: "pagination",
            entry: "Page::from_query",
            seeds: pagination_seeds,
            generate: pagination_generate,
            check: pagination_check,
        },
        Target {
            name: "phone",
            entry: "PhoneNumber::parse, serde PhoneNumber",
            seeds: phone_seeds,
            generate: phone_generate,
            check: phone_check,
        },
        Target {
            name: "suppression_request",
            entry: "suppression::parse_add, parse_remove",
            seeds: suppression_seeds,
            generate: suppression_generate,
            check: suppression_check,
        },
        Target {
            name: "ivr_actions",
            entry: "serde Classification/IvrAction, twiml::replay_steps, call_twiml",
            seeds: ivr_seeds,
            generate: ivr_generate,
            check: ivr_check,
        },
        Target {
            name: "route",
            entry: "routes::route, api::allow_header, operator::allow_header, body::route_cap",
            seeds: route_seeds,
            generate: route_generate,
            check: route_check,
        },
        Target {
            name: "body_cap",
            entry: "body::plan (Content-Length), CappedBody::push/finish",
            seeds: body_seeds,
            generate: body_generate,
            check: body_check,
        },
        Target {
            name: "authorization",
            entry: "api::authorize, config::health",
            seeds: authorization_seeds,
            generate: authorization_generate,
            check: authorization_check,
        },
        Target {
            name: "twilio_answers",
            entry: "twilio::dial_outcome, serde CallResource/CallPage, reconcile, retry::parse_retry_after",
            seeds: twilio_answers_seeds,
            generate: twilio_answers_generate,
            check: twilio_answers_check,
        },
        Target {
            name: "media_stream",
            entry: "learning::media::parse, Listener::on_twilio",
            seeds: media_seeds,
            generate: media_generate,
            check: media_check,
        },
        Target {
            name: "stt_message",
            entry: "Deepgram::parse, Listener::on_stt",
            seeds: stt_seeds,
            generate: stt_generate,
            check: stt_check,
        },
        Target {
            name: "user_jwt",
            entry: "user_jwt::bearer, parse, verify_hs256, choose_key, check_claims",
            seeds: user_jwt_seeds,
            generate: user_jwt_generate,
            check: user_jwt_check,
        },
        Target {
            name: "jwks",
            entry: "user_jwt::Jwks::parse, Jwk::webcrypto, JwksCache::should_fetch",
            seeds: jwks_seeds,
            generate: jwks_generate,
            check: jwks_check,
        },
        Target {
            name: "operator_body",
            entry: "operator::call_ids, correction, no_body, sql_refusal",
            seeds: operator_body_seeds,
            generate: operator_body_generate,
            check: operator_body_check,
        },
        Target {
            name: "config",
            entry: "Config::from_lookup, config::check_base_url, Backoff::parse",
            seeds: config_seeds,
            generate: config_generate,
            check: config_check,
        },
    ]
}

const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
const SID: &str = "CA0123456789abcdef0123456789abcdef";
/// A Unix time in milliseconds near today.
const NOW_MS: i64 = 1_795_000_000_000;

/// Uses a parser's result, so the optimizer keeps the call.
fn consume<T>(value: T) {
    std::hint::black_box(value);
}

/// An object through [`Gen::object`]; the fields come first so they may use `g` too.
fn obj(fields: Vec<(&str, Value)>, g: &mut Gen) -> Value {
    g.object(fields)
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// A JSON number from a number's text, or the nearest JSON can hold.
fn json_number(g: &mut Gen) -> Value {
    let raw = g.number();
    serde_json::from_str::<Value>(&raw).unwrap_or(Value::String(raw))
}

fn lines(seeds: &[&str]) -> Vec<Vec<u8>> {
    seeds.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn str_field(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

// ---------------------------------------------------------------- the database webhook

fn webhook_seeds() -> Vec<Vec<u8>> {
    lines(&[
        r#"{"type":"INSERT","table":"pending_calls","schema":"public","record":{"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","phone":"+15550001001"},"old_record":null}"#,
        r#"{"type":"UPDATE","table":"pending_calls","schema":"public","record":{"id":"x"}}"#,
        r#"{"type":"INSERT","table":"pending_calls","schema":"public","record":{"id":"nope"}}"#,
        r#"{"type":"INSERT","table":"call_sessions","schema":"public","record":{}}"#,
    ])
}

fn webhook_generate(g: &mut Gen) -> Vec<u8> {
    let kind = g.or_odd(|g| g.pick(&["INSERT", "UPDATE", "DELETE", "insert", "TRUNCATE"]).to_string());
    let table = g.or_odd(|g| g.pick(&["pending_calls", "call_sessions", "batches", "pending_calls "]).to_string());
    let schema = g.or_odd(|g| g.pick(&["public", "outcall_private", "PUBLIC", "auth"]).to_string());
    let id = g.or_odd(|g| g.uuid());
    let record = obj(
        vec![("id", text(&id)), ("phone", text(&g.phone())), ("status", text("pending")), ("variables", g.json_any(3))],
        g,
    );
    let hook = obj(
        vec![
            ("type", text(&kind)),
            ("table", text(&table)),
            ("schema", text(&schema)),
            ("record", record),
            ("old_record", Value::Null),
        ],
        g,
    );
    g.json_text(&hook).into_bytes()
}

fn webhook_check(input: &[u8]) -> bool {
    match serde_json::from_str::<DatabaseWebhook>(&str_field(input)) {
        Ok(hook) => hook.action().is_ok(),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------- Twilio's status callbacks

const TWILIO_FIELDS: [&str; 18] = [
    "CallSid",
    "CallStatus",
    "SequenceNumber",
    "CallDuration",
    "AnsweredBy",
    "AccountSid",
    "ApiVersion",
    "Called",
    "Caller",
    "Direction",
    "From",
    "To",
    "Duration",
    "Timestamp",
    "CallbackSource",
    "SipResponseCode",
    "MachineDetectionDuration",
    "ParentCallSid",
];

const CALL_STATUSES: [&str; 12] = [
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "Completed",
    "in progress",
    "answered",
];

fn rfc2822(g: &mut Gen) -> String {
    let year = if g.percent(80) { 2020 + g.below(10) } else { g.below(10_000) };
    format!(
        "{}, {:02} {} {year:04} {:02}:{:02}:{:02} {}",
        g.pick(&["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Xyz"]),
        g.below(33),
        g.pick(&["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"]),
        g.below(25),
        g.below(61),
        g.below(62),
        g.pick(&["+0000", "-0500", "+2359", "-2359", "GMT", "UT", "Z", "+9999", "EST"]),
    )
}

fn twilio_value(g: &mut Gen, name: &str) -> String {
    let name = name.to_owned();
    g.or_odd(|g| match name.as_str() {
        "CallSid" | "ParentCallSid" => g.call_sid(),
        "AccountSid" => format!("AC{:016x}{:016x}", g.u64(), g.u64()),
        "CallStatus" if g.strict => g.pick(&CALL_STATUSES[..9]).to_string(),
        "CallStatus" => g.pick(&CALL_STATUSES).to_string(),
        "SequenceNumber" | "CallDuration" | "Duration" | "SipResponseCode" | "MachineDetectionDuration" if g.strict => {
            g.below(100_000).to_string()
        }
        "SequenceNumber" | "CallDuration" | "Duration" | "SipResponseCode" | "MachineDetectionDuration" => g.number(),
        "AnsweredBy" => g.pick(&["human", "machine_start", "machine_end_beep", "fax", "unknown", ""]).to_string(),
        "From" | "To" | "Called" | "Caller" => g.phone(),
        "Timestamp" => rfc2822(g),
        "Direction" => g.pick(&["outbound-api", "inbound", "outbound-dial"]).to_string(),
        "ApiVersion" => "2010-04-01".to_owned(),
        "CallbackSource" => "call-progress-events".to_owned(),
        _ => g.text(),
    })
}

/// A status callback's fields in Twilio's names (CallSid and CallStatus most of the time).
fn twilio_pairs(g: &mut Gen) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for name in ["CallSid", "CallStatus"] {
        if g.strict || g.percent(90) {
            pairs.push((name.to_owned(), twilio_value(g, name)));
        }
    }
    for _ in 0..g.below(12) {
        let name = if g.strict || g.percent(85) { g.pick(&TWILIO_FIELDS).to_string() } else { g.text() };
        let value = twilio_value(g, &name);
        pairs.push((name, value));
    }
    if !pairs.is_empty() && g.one_in(3) {
        let i = g.below(pairs.len());
        pairs.swap(0, i);
    }
    pairs
}

/// A form body: encoded properly mostly, by hand (raw, odd escapes, stray separators) otherwise.
fn form_body(g: &mut Gen, pairs: &[(String, String)]) -> String {
    if g.percent(70) {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            out.append_pair(k, v);
        }
        return out.finish();
    }
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() || g.one_in(10) {
            out.push_str(g.pick_str(&["&", "&", "&", "&&", ";", "&=&"]));
        }
        out.push_str(k);
        if !g.one_in(15) {
            out.push('=');
        }
        for c in v.chars() {
            match g.below(12) {
                0 => out.push_str(&format!("%{:02X}", u32::from(c) & 0xff)),
                1 => out.push_str(g.pick_str(&["%", "%z", "%G0", "+", "%2", "%%"])),
                _ => out.push(c),
            }
        }
    }
    out
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

fn session_query(g: &mut Gen) -> String {
    match g.below(10) {
        0 => String::new(),
        1 => g.text(),
        2 => format!("session={}&session={}", g.uuid(), g.uuid()),
        3 => format!("{}={}", g.word(), g.uuid()),
        _ => format!("session={}", form_urlencoded::byte_serialize(g.uuid().as_bytes()).collect::<String>()),
    }
}

fn twilio_status_seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&[
            format!("CallSid={SID}&CallStatus=completed&SequenceNumber=3&CallDuration=42&AnsweredBy=machine_end_beep"),
            format!("session={ID}"),
        ]),
        frame(&[format!("CallSid={SID}&CallStatus=ringing&SequenceNumber=x"), String::new()]),
        frame(&[format!("CallSid={SID}&CallStatus=exploded"), "session=nope".to_owned()]),
    ]
}

fn twilio_status_generate(g: &mut Gen) -> Vec<u8> {
    let pairs = twilio_pairs(g);
    let body = form_body(g, &pairs);
    if g.one_in(5) {
        return body.into_bytes();
    }
    frame(&[body, session_query(g)])
}

fn twilio_status_check(input: &[u8]) -> bool {
    let f = fields(input);
    let form = parse_form(field(&f, 0));
    consume(dispatch::session_from_query(f.get(1).map(String::as_str)));
    let parsed = StatusEvent::parse(&form);
    let accepted = parsed.is_ok();
    if let Ok(event) = parsed {
        assert_eq!(CallStatus::parse(event.status.as_str()), Some(event.status));
        let request = ApplyTwilioStatus {
            call_sid: event.call_sid.as_str().to_owned(),
            call_status: event.status,
            duration_seconds: event.duration_seconds,
            session_id: None,
            callback: Some(CallbackDetails { sequence_number: event.sequence_number, answered_by: event.answered_by }),
        };
        consume(rpc::arguments(&request));
    }
    accepted
}

// ---------------------------------------------------------------- Twilio's signatures

fn twilio_signature_seeds() -> Vec<Vec<u8>> {
    // Twilio's documented example: token 12345, this URL and these fields sign to 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
    vec![frame(&[
        "12345",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212",
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
    ])]
}

fn twilio_signature_generate(g: &mut Gen) -> Vec<u8> {
    let token = g.or_odd(|g| format!("{:016x}{:016x}", g.u64(), g.u64()));
    let url = g.or_odd(|g| format!("https://w.example/twilio/status?session={}", g.uuid()));
    let pairs = twilio_pairs(g);
    let body = form_body(g, &pairs);
    let correct = twilio::signature(&token, &url, &parse_form(&body));
    let signature = match g.below(10) {
        0..=3 => correct,
        4 | 5 => {
            let mut bytes = correct.into_bytes();
            mutate(g, &mut bytes, b"+/=");
            String::from_utf8_lossy(&bytes).into_owned()
        }
        6 => format!(" {correct} "),
        _ => g.text(),
    };
    frame(&[token, url, body, signature])
}

fn twilio_signature_check(input: &[u8]) -> bool {
    let f = fields(input);
    let form = parse_form(field(&f, 2));
    let valid = twilio::signature_is_valid(field(&f, 0), field(&f, 1), &form, field(&f, 3));
    if valid {
        assert_eq!(twilio::signature(field(&f, 0), field(&f, 1), &form), field(&f, 3));
    }
    valid
}

// ---------------------------------------------------------------- VAPI's server messages

const MESSAGE_TYPES: [&str; 9] = [
    "assistant-request",
    "tool-calls",
    "status-update",
    "end-of-call-report",
    "speech-update",
    "transcript",
    "hang",
    "conversation-update",
    "ASSISTANT-REQUEST",
];

fn tool_call(g: &mut Gen, own: &str) -> Value {
    let id = if g.percent(50) { own.to_owned() } else { g.uuid() };
    let key = g.pick_str(&["pendingcallid", "pending_call_id", "other"]);
    let arguments = obj(vec![(key, text(&id))], g);
    let name = g.or_odd(|g| g.pick(&["fetch_pending_call", "transfer", "endCall"]).to_string());
    match g.below(3) {
        0 => obj(vec![("id", text(&g.text())), ("name", text(&name)), ("arguments", arguments)], g),
        1 => {
            let raw = g.json_text(&arguments);
            let function = obj(vec![("name", text(&name)), ("arguments", text(&raw))], g);
            obj(vec![("id", text(&g.uuid())), ("type", text("function")), ("function", function)], g)
        }
        _ => obj(vec![("id", text("c")), ("name", text(&name)), ("parameters", arguments)], g),
    }
}

fn vapi_message(g: &mut Gen) -> Value {
    let own = g.or_odd(|g| g.uuid());
    let kind = g.or_odd(|g| g.pick(&MESSAGE_TYPES).to_string());
    let header =
        g.or_odd(|g| g.pick(&["X-PendingCallId", "x-pendingcallid", "X-pendingcallid", "X-Other"]).to_string());
    let variables = obj(vec![("pendingcallid", text(&own)), ("employee_name", text(&g.text()))], g);
    let overrides = obj(vec![("variableValues", variables)], g);
    let headers = obj(vec![(header.as_str(), text(&own))], g);
    let sip = obj(vec![("headers", headers)], g);
    let details = obj(vec![("sip", sip)], g);
    let call = obj(
        vec![
            ("id", text(&g.or_odd(|g| g.uuid()))),
            ("assistantOverrides", overrides),
            ("phoneCallProviderDetails", details),
            ("cost", json_number(g)),
        ],
        g,
    );
    let tools: Vec<Value> = (0..g.below(5)).map(|_| tool_call(g, &own)).collect();
    let analysis = obj(
        vec![("summary", text(&g.text())), ("successEvaluation", g.json_scalar()), ("structuredData", g.json_any(3))],
        g,
    );
    let artifact = obj(vec![("transcript", text(&g.text())), ("messages", g.json_any(3))], g);
    let ended = g.or_odd(|g| {
        g.pick(&[
            "customer-ended-call",
            "assistant-ended-call",
            "voicemail",
            "silence-timed-out",
            "exceeded-max-duration",
        ])
        .to_string()
    });
    let message = obj(
        vec![
            ("type", text(&kind)),
            ("call", call),
            ("toolCallList", Value::Array(tools)),
            ("status", text(&g.or_odd(|g| g.pick(&["in-progress", "ended", "ringing"]).to_string()))),
            ("endedReason", text(&ended)),
            ("analysis", analysis),
            ("artifact", artifact),
            ("transcript", text(&g.text())),
            ("durationSeconds", json_number(g)),
            ("cost", json_number(g)),
            ("timestamp", json_number(g)),
        ],
        g,
    );
    obj(vec![("message", message)], g)
}

fn vapi_message_seeds() -> Vec<Vec<u8>> {
    let report = format!(
        r#"{{"message":{{"type":"end-of-call-report","endedReason":"customer-ended-call",
        "call":{{"id":"vapi-1","cost":0.31,"assistantOverrides":{{"variableValues":{{"pendingcallid":"{ID}"}}}}}},
        "artifact":{{"transcript":"AI: hi"}},"analysis":{{"summary":"ok","successEvaluation":true,
        "structuredData":{{"confirmed":true}}}},"durationSeconds":42.5}}}}"#
    );
    let tools = format!(
        r#"{{"message":{{"type":"tool-calls","call":{{}},"toolCallList":[
        {{"id":"a","name":"fetch_pending_call","arguments":{{"pendingcallid":"{ID}"}}}},
        {{"id":"b","type":"function","function":{{"name":"fetch_pending_call","arguments":"{{\"pending_call_id\":\"{ID}\"}}"}}}},
        {{"id":"c","name":"fetch_pending_call","parameters":{{}}}}]}}}}"#
    );
    let request = format!(
        r#"{{"message":{{"type":"assistant-request","call":{{"id":"c1",
        "phoneCallProviderDetails":{{"sip":{{"headers":{{"X-PendingCallId":"{ID}"}}}}}}}}}}}}"#
    );
    let status = r#"{"message":{"type":"status-update","status":"in-progress","call":{"id":"v"}}}"#.to_owned();
    vec![report.into_bytes(), tools.into_bytes(), request.into_bytes(), status.into_bytes()]
}

fn vapi_message_generate(g: &mut Gen) -> Vec<u8> {
    let message = vapi_message(g);
    g.json_text(&message).into_bytes()
}

fn vapi_message_check(input: &[u8]) -> bool {
    let own = PendingCallId::parse(ID).ok();
    let parsed = parse_message(&str_field(input));
    let accepted = parsed.is_ok();
    match parsed {
        Ok(ServerMessage::ToolCalls { pending_call_id, calls, .. }) => {
            for call in &calls {
                consume(call.pending_call_id(pending_call_id));
                consume(call.pending_call_id(own));
            }
        }
        Ok(ServerMessage::EndOfCallReport { pending_call_id, report }) => {
            let id = pending_call_id.or(own).expect("a fixed id");
            consume(rpc::arguments(&ApplyCallReport::new(id, &report)));
        }
        other => {
            consume(other.ok());
        }
    }
    accepted
}

// ---------------------------------------------------------------- VAPI's credentials

/// Standard base64, padded (as VAPI may send a signature).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn vapi_auth_seeds() -> Vec<Vec<u8>> {
    let body = r#"{"message":{"type":"status-update"}}"#;
    let ts = (NOW_MS / 1000).to_string();
    let mac = hmac_sha256("s3cret", &format!("{ts}.{body}"));
    let now = NOW_MS.to_string();
    vec![
        frame(&["bearer", "abc", "x-signature", "x-timestamp", &now, body, "X-Vapi-Secret", "abc"]),
        frame(&["bearer", "abc", "x-signature", "x-timestamp", &now, body, "Authorization", "Bearer abc"]),
        frame(&[
            "hmac",
            "s3cret",
            "x-signature",
            "x-timestamp",
            &now,
            body,
            "x-signature",
            &hex(&mac),
            "x-timestamp",
            &ts,
        ]),
        frame(&[
            "hmac",
            "s3cret",
            "x-signature",
            "x-timestamp",
            &now,
            body,
            "x-signature",
            &base64(&mac),
            "x-timestamp",
            &ts,
        ]),
        frame(&[
            "lenient",
            "s3cret",
            "x-signature",
            "x-timestamp",
            &now,
            body,
            "x-signature",
            &hex(&hmac_sha256("s3cret", body)),
        ]),
    ]
}

fn vapi_auth_generate(g: &mut Gen) -> Vec<u8> {
    let mode = g.pick(&["bearer", "hmac", "lenient"]).to_string();
    let secret = g.or_odd(|g| g.text_of("abcdefghijklmnopqrstuvwxyz0123456789", 8, 40));
    let signature_header =
        g.or_odd(|g| g.pick(&["x-signature", "X-Vapi-Signature", "x-hub-signature-256"]).to_string());
    let timestamp_header = g.or_odd(|g| g.pick(&["x-timestamp", "X-Vapi-Timestamp"]).to_string());
    let now: i64 = match g.below(20) {
        0 => *g.pick(&[0, -1, i64::MIN, i64::MAX, 1, 100_000_000_000]),
        1 => g.u64() as i64,
        _ => NOW_MS + g.range(0, 600_000) as i64 - 300_000,
    };
    let body = if g.percent(70) {
        let message = vapi_message(g);
        g.json_text(&message)
    } else {
        g.text()
    };
    let ts = match g.below(12) {
        0..=4 => Some((now / 1000).saturating_add(g.range(0, 700) as i64 - 350).to_string()),
        5 | 6 => Some(now.saturating_add(g.range(0, 700_000) as i64 - 350_000).to_string()),
        7 => None,
        8 => Some(
            g.pick(&[
                "-9999999999999999",
                "-9223372036854775808",
                "9223372036854775807",
                "99999999999",
                "100000000000",
                "-100000000000",
                "1e12",
                " 1795000000 ",
                "+1795000000",
                "",
            ])
            .to_string(),
        ),
        9 => Some(g.number()),
        _ => Some(g.text()),
    };
    let payload = match &ts {
        Some(ts) => format!("{ts}.{body}"),
        None => body.clone(),
    };
    let mac = hmac_sha256(&secret, &payload);
    let signature = match g.below(10) {
        0..=2 => hex(&mac),
        3 => base64(&mac),
        4 => format!("sha256={}", hex(&mac)),
        5 => hex(&mac).to_uppercase(),
        6 => {
            let mut bytes = hex(&mac).into_bytes();
            mutate(g, &mut bytes, b"sha256=");
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => g.text(),
    };
    let mut headers: Vec<String> = Vec::new();
    match mode.as_str() {
        "bearer" => {
            let given = if g.percent(60) { secret.clone() } else { g.text() };
            match g.below(4) {
                0 => headers.extend(["X-Vapi-Secret".to_owned(), given]),
                1 => headers.extend(["Authorization".to_owned(), format!("Bearer {given}")]),
                2 => headers.extend(["authorization".to_owned(), format!("{} {given}", g.word())]),
                _ => {}
            }
        }
        _ => {
            if g.percent(90) {
                headers.extend([signature_header.clone(), signature]);
            }
            if let Some(ts) = ts {
                headers.extend([timestamp_header.clone(), ts]);
            }
        }
    }
    for _ in 0..g.below(3) {
        headers.extend([g.word().to_owned(), g.text()]);
    }
    let mut parts = vec![mode, secret, signature_header, timestamp_header, now.to_string(), body];
    parts.extend(headers);
    frame(&parts)
}

fn vapi_auth_check(input: &[u8]) -> bool {
    let f = fields(input);
    let secret = field(&f, 1).to_owned();
    let (signature_header, timestamp_header) = (field(&f, 2).to_owned(), field(&f, 3).to_owned());
    let credential = match field(&f, 0) {
        "bearer" => VapiCredential::Bearer { secret },
        mode => {
            VapiCredential::Hmac { secret, signature_header, timestamp_header, allow_no_timestamp: mode == "lenient" }
        }
    };
    let now = field(&f, 4).parse::<i64>().unwrap_or(NOW_MS);
    let body = field(&f, 5);
    let headers: Vec<(&str, &str)> =
        f.get(6..).unwrap_or(&[]).chunks(2).map(|h| (h[0].as_str(), field(h, 1))).collect();
    let lookup = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| (*v).to_owned());
    if let Ok(check) = credential.check_headers(lookup, now) {
        consume(credential.check_body(&check, body));
    }
    consume(credential.needs_body());
    credential.verify(lookup, body, now).is_ok()
}

// ---------------------------------------------------------------- batch requests

/// One target: `clean` has only valid fields; `big` may put a field just over its size limit.
fn batch_target(g: &mut Gen, clean: bool, big: bool) -> Value {
    let phone = if clean { format!("+1555{}", g.digits(7, 7)) } else { g.phone() };
    let dob = if clean || g.percent(50) {
        format!("{:04}-{:02}-{:02}", 1950 + g.below(60), 1 + g.below(12), 1 + g.below(28))
    } else {
        g.or_odd(|g| format!("{}-{}-{}", g.number(), g.below(14), g.below(33)))
    };
    let long = |g: &mut Gen, n: usize| if big && g.one_in(4) { "x".repeat(n + g.below(3)) } else { g.text() };
    let fields: Vec<(&str, Value)> = vec![
        ("phone", text(&phone)),
        ("name", text(&if clean { "Dana Smith".to_owned() } else { long(g, 200) })),
        ("exam_id", text(&g.text())),
        ("employee_dob", text(&dob)),
        ("client_name", text(&long(g, 200))),
        ("clinic_name", text(&g.text())),
        ("clinic_timezone", text(g.pick_str(&["America/New_York", "UTC", "Mars/Olympus", ""]))),
        ("appointment_time", text(&g.rfc3339())),
        ("procedures", Value::Array((0..g.below(4)).map(|_| text(&g.text())).collect())),
        (
            "instructions",
            if big && g.one_in(8) {
                json!({"big": "y".repeat(16_370 + g.below(20))})
            } else {
                json!({"fasting": g.text()})
            },
        ),
        ("variables", if clean { json!({"shift": g.text()}) } else { g.json_any(3) }),
        ("max_attempts", if clean { json!(1 + g.below(20)) } else { json_number(g) }),
        ("prompt", text(&long(g, 10_000))),
        ("first_message", text(&long(g, 1_000))),
    ];
    if clean {
        let mut map = serde_json::Map::new();
        for (k, v) in fields {
            if matches!(k, "phone" | "name") || g.percent(50) {
                map.insert(k.to_owned(), v);
            }
        }
        return Value::Object(map);
    }
    g.object(fields)
}

fn batch_seeds() -> Vec<Vec<u8>> {
    let full = json!({
        "name": "March exams",
        "targets": [
            {"phone": "+1 (555) 000-1001", "name": "Dana", "exam_id": "E1", "employee_dob": "1990-04-01",
             "appointment_time": "2026-12-01T09:30:00-05:00", "procedures": ["blood draw"],
             "instructions": {"fasting": "8h"}, "variables": {"k": "v"}, "max_attempts": 3,
             "prompt": "Be brief.", "first_message": "Hi Dana"},
            {"phone": "+15550001002", "name": "Lee"}
        ],
        "pendingCallIds": [ID],
        "schedule": {"notBefore": "2026-12-01T08:00:00Z", "window": {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}},
        "metadata": {"source": "fuzz"}
    });
    vec![frame(&["10000".to_owned(), full.to_string(), "k-1".to_owned()]), frame(&["1", "{}", ""])]
}

fn batch_generate(g: &mut Gen) -> Vec<u8> {
    let clean = g.strict;
    let n = match g.below(100) {
        0..=83 => g.below(4),
        84..=98 => g.below(30),
        _ => g.below(300),
    };
    // Long lists are valid-looking; a big request has one to three targets, some fields over their limits.
    let big = !clean && n <= 3 && g.one_in(10);
    let targets: Vec<Value> = (0..n).map(|_| batch_target(g, clean || n > 30, big)).collect();
    let mut ids: Vec<Value> =
        (0..g.below(4)).map(|_| text(&if clean { g.uuid() } else { g.or_odd(|g| g.uuid()) })).collect();
    if !clean && !ids.is_empty() && g.one_in(5) {
        ids.push(ids[0].clone());
    }
    let days: Vec<Value> = if clean {
        (0..1 + g.below(7)).map(|_| json!(1 + g.below(7))).collect()
    } else {
        (0..g.below(8)).map(|_| json_number(g)).collect()
    };
    // A clean window starts in the morning and ends in the afternoon.
    let time = |g: &mut Gen, hours: std::ops::Range<usize>| {
        if clean || g.percent(60) {
            format!("{:02}:{:02}", hours.start + g.below(hours.len()), g.below(60))
        } else {
            g.or_odd(|g| format!("{}:{}", g.below(30), g.below(70)))
        }
    };
    let (start, end) = (time(g, 0..12), time(g, 12..24));
    let window = obj(vec![("days", Value::Array(days)), ("start", text(&start)), ("end", text(&end))], g);
    let schedule = obj(vec![("notBefore", text(&g.rfc3339())), ("window", window)], g);
    let metadata = match (big && g.one_in(3), clean) {
        (true, _) => json!({"pad": "z".repeat(16_370 + g.below(20))}),
        (false, true) => json!({"source": g.text()}),
        (false, false) => g.json_any(3),
    };
    let name = if clean { "batch".to_owned() } else { g.or_odd(|g| g.text()) };
    let request = obj(
        vec![
            ("name", text(&name)),
            ("targets", Value::Array(targets)),
            ("pendingCallIds", Value::Array(ids)),
            ("schedule", schedule),
            ("expiresAt", text(&g.rfc3339())),
            ("metadata", metadata),
        ],
        g,
    );
    let max = if clean {
        "10000".to_owned()
    } else {
        g.or_odd(|g| g.pick(&["1", "2", "10", "100", "10000", "100000", "0", "18446744073709551615"]).to_string())
    };
    let key = g.or_odd(|g| g.text_of("abcdef0123456789-", 1, 40));
    frame(&[max, g.json_text(&request), key])
}

fn batch_check(input: &[u8]) -> bool {
    let f = fields(input);
    let max = field(&f, 0).parse::<usize>().unwrap_or(DEFAULT_MAX_TARGETS);
    let body = field(&f, 1);
    match batch::parse_request(body, max) {
        Ok(new_batch) => {
            assert!(new_batch.targets.len() + new_batch.pending_call_ids.len() <= max);
            let key = api::idempotency_key(f.get(2).map(String::as_str)).ok().flatten();
            consume(new_batch.rpc_request(key.as_deref(), &batch::request_hash(body)));
            true
        }
        Err(e) => {
            let error: ApiError = e.into();
            assert_eq!(error.status, 400);
            consume(error.body());
            false
        }
    }
}

// ---------------------------------------------------------------- Idempotency-Key

fn idempotency_seeds() -> Vec<Vec<u8>> {
    lines(&["k-1", " k-1 ", "a b", "", &"x".repeat(255), &"x".repeat(256), "ключ"])
}

fn idempotency_generate(g: &mut Gen) -> Vec<u8> {
    let graphic: String = (0x21u8..0x7f).map(char::from).collect();
    let mut key = g.or_odd(|g| {
        let n = *g.pick(&[1, 8, 36, 64, 254, 255, 256, 300]);
        let min = g.below(n + 1).max(1);
        g.text_of(&graphic, min, n)
    });
    if g.one_in(4) {
        key = format!("{}{key}{}", g.pick(&[" ", "\t", "\u{a0}", ""]), g.pick(&[" ", "\n", "\u{3000}", ""]));
    }
    key.into_bytes()
}

fn idempotency_check(input: &[u8]) -> bool {
    let raw = str_field(input);
    let parsed = batch::parse_idempotency_key(&raw);
    if let Ok(key) = parsed {
        assert!((1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()), "{key:?}");
    }
    assert_eq!(api::idempotency_key(Some(&raw)).is_ok(), parsed.is_ok());
    parsed.is_ok()
}

// ---------------------------------------------------------------- pagination

fn pagination_seeds() -> Vec<Vec<u8>> {
    ["limit=5&offset=10", "limit=0", "limit=1001", "offset=-1", "limit=x", "limt=5", ""]
        .iter()
        .map(|q| frame(&[*q, "100"]))
        .collect()
}

fn pagination_generate(g: &mut Gen) -> Vec<u8> {
    let mut query = String::new();
    for _ in 0..g.below(5) {
        if !query.is_empty() || g.one_in(10) {
            query.push_str(if g.strict { "&" } else { g.pick_str(&["&", "&", "&&", ";"]) });
        }
        let (name, value) = if g.strict {
            match g.below(2) {
                0 => ("limit".to_owned(), (1 + g.below(1000)).to_string()),
                _ => ("offset".to_owned(), g.range(0, u64::from(u32::MAX)).to_string()),
            }
        } else {
            let name = g.or_odd(|g| g.pick(&["limit", "offset", "LIMIT", "limit ", "lim%69t", "offset[]"]).to_string());
            (name, g.or_odd(|g| g.number()))
        };
        let equals = if g.strict { "=" } else { g.pick_str(&["=", "=", "==", ""]) };
        query.push_str(&format!("{name}{equals}{value}"));
    }
    let default = g.or_odd(|g| g.pick(&["50", "100", "1000", "1", "0", "4294967295"]).to_string());
    frame(&[query, default])
}

fn pagination_check(input: &[u8]) -> bool {
    let f = fields(input);
    let default = field(&f, 1).parse::<u32>().unwrap_or(100);
    assert_eq!(Page::from_query(None, default), Ok(Page { limit: default, offset: 0 }));
    match Page::from_query(Some(field(&f, 0)), default) {
        Ok(page) => {
            assert!(page.limit == default || (1..=MAX_PAGE).contains(&page.limit), "{page:?}");
            true
        }
        Err(e) => {
            assert_eq!(e.status, 400);
            false
        }
    }
}

// ---------------------------------------------------------------- E.164 phones

fn phone_seeds() -> Vec<Vec<u8>> {
    lines(&["+15550001001", " +1 (555) 000-1001 ", "+44.20.7946.0958", "5550001001", "+1555abc1001", "+012345678", "+"])
}

fn phone_generate(g: &mut Gen) -> Vec<u8> {
    g.phone().into_bytes()
}

fn phone_check(input: &[u8]) -> bool {
    let raw = str_field(input);
    let parsed = PhoneNumber::parse(&raw);
    if let Ok(phone) = &parsed {
        let s = phone.as_str();
        assert!(s.starts_with('+') && (8..=16).contains(&s.len()) && s[1..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(PhoneNumber::parse(s).as_ref(), Ok(phone));
    }
    let quoted = serde_json::to_string(&raw).expect("a string serialises");
    let accepted = parsed.is_ok();
    assert_eq!(serde_json::from_str::<PhoneNumber>(&quoted).ok(), parsed.ok());
    accepted
}

// ---------------------------------------------------------------- the do-not-call list's requests

fn suppression_seeds() -> Vec<Vec<u8>> {
    lines(&[
        r#"{"phone": "+15550001001"}"#,
        r#"{"phone": " +1 (555) 000-1001 ", "reason": "asked", "source": "clinic"}"#,
        r#"{"phone": "555", "reason": 7, "source": "whim", "extra": null}"#,
        r#"[]"#,
    ])
}

fn suppression_generate(g: &mut Gen) -> Vec<u8> {
    let reason = if g.one_in(10) { "r".repeat(495 + g.below(10)) } else { g.text() };
    let source = g.or_odd(|g| g.pick_str(&["manual", "sms_opt_out", "clinic"]).to_owned());
    let request = obj(vec![("phone", text(&g.phone())), ("reason", text(&reason)), ("source", text(&source))], g);
    g.json_text(&request).into_bytes()
}

fn suppression_check(input: &[u8]) -> bool {
    let body = String::from_utf8_lossy(input);
    if let Err(e) = suppression::parse_remove(&body) {
        assert_eq!(e.status, 400);
    }
    match suppression::parse_add(&body) {
        Ok(new) => {
            assert!(new.reason.as_ref().is_none_or(|r| r.chars().count() <= suppression::MAX_REASON_CHARS));
            assert_eq!(PhoneNumber::parse(new.phone.as_str()).as_ref(), Ok(&new.phone));
            true
        }
        Err(e) => {
            assert_eq!(e.status, 400);
            consume(e.body());
            false
        }
    }
}

// ---------------------------------------------------------------- Twilio Media Streams messages

fn media_seeds() -> Vec<Vec<u8>> {
    lines(&[
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{"session":"6f9619ff-8b86-d011-b42d-00c04fc964ff","token":"t"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
        r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/////w=="}}"#,
        r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
    ])
}

fn media_generate(g: &mut Gen) -> Vec<u8> {
    let event = g.pick_str(&["connected", "start", "media", "stop", "mark", "dtmf", "other"]);
    let payload = base64(&g.random_bytes());
    let media = obj(
        vec![
            ("track", text(g.pick_str(&["inbound", "outbound", "both"]))),
            ("chunk", text(&g.number())),
            ("timestamp", text(&g.number())),
            ("payload", text(&payload)),
        ],
        g,
    );
    let parameters = obj(vec![("session", text(&g.uuid())), ("token", text(&g.text()))], g);
    let start = obj(vec![("streamSid", text("MZ1")), ("callSid", text(SID)), ("customParameters", parameters)], g);
    let message =
        obj(vec![("event", text(event)), ("sequenceNumber", text(&g.number())), ("media", media), ("start", start)], g);
    g.json_text(&message).into_bytes()
}

/// Parsing never panics, and a parsed frame fed to a listener (held, since it is not authenticated) neither.
fn media_check(input: &[u8]) -> bool {
    let Ok(message) = media::parse(&String::from_utf8_lossy(input)) else { return false };
    let mut listener = Listener::new(Deepgram::default());
    consume(listener.on_twilio(message));
    true
}

// ---------------------------------------------------------------- Deepgram's live messages

fn stt_seeds() -> Vec<Vec<u8>> {
    lines(&[
        r#"{"type":"Results","channel_index":[0,1],"start":0.5,"duration":1.2,"is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"for appointments press 1","confidence":0.9,"words":[]}]}}"#,
        r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.7}"#,
        r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.1}"#,
        r#"{"type":"Metadata","request_id":"r","duration":3.0,"channels":1}"#,
    ])
}

fn stt_generate(g: &mut Gen) -> Vec<u8> {
    let kind = g.pick_str(&["Results", "SpeechStarted", "UtteranceEnd", "Metadata", "Error", "Other"]);
    let alternative = obj(vec![("transcript", text(&g.text())), ("confidence", json_number(g))], g);
    let channel = obj(vec![("alternatives", Value::Array(vec![alternative]))], g);
    let message = obj(
        vec![
            ("type", text(kind)),
            ("start", json_number(g)),
            ("duration", json_number(g)),
            ("timestamp", json_number(g)),
            ("last_word_end", json_number(g)),
            ("is_final", Value::Bool(g.percent(70))),
            ("channel", channel),
        ],
        g,
    );
    g.json_text(&message).into_bytes()
}

/// Parsing never panics; every event parsed is one a listening machine takes without panicking.
fn stt_check(input: &[u8]) -> bool {
    let Ok(events) = Deepgram::default().parse(&String::from_utf8_lossy(input)) else { return false };
    let mut listener = Listener::new(Deepgram::default());
    for event in events {
        consume(listener.on_stt(event));
    }
    true
}

// ---------------------------------------------------------------- IVR actions

fn ivr_action(g: &mut Gen) -> Value {
    let kinds: &[&str] =
        if g.strict { &["dtmf", "speech", "wait"] } else { &["dtmf", "speech", "wait", "DTMF", "fax"] };
    let kind = g.or_odd(|g| g.pick(kinds).to_string());
    let value = match kind.as_str() {
        "dtmf" if g.strict => g.text_of("0123456789*#w", 1, 12),
        "dtmf" => g.or_odd(|g| g.text_of("0123456789*#w", 0, 12)),
        "speech" if g.strict => {
            format!("{}{}", g.text_of("abcdefghijklmnopqrstuvwxyz", 1, 10), g.text_of("abc xyz&<>'\"é", 0, 30))
        }
        "speech" => match g.below(50) {
            0 => "x".repeat(g.below(4500)),
            1 => format!("{}{}", g.text(), g.pick(&["\n", "\u{0}", "\u{85}", "\u{7f}", "\t"])),
            2 => g.pick(&["<Say>", "&amp;", "]]>", "\"'<>&", "  "]).to_string(),
            _ => g.text(),
        },
        _ => String::new(),
    };
    let timing = match g.below(if g.strict { 7 } else { 10 }) {
        0..=6 => json!(g.below(20_000)),
        7 => json!(u32::MAX),
        _ => json_number(g),
    };
    obj(vec![("action", text(&kind)), ("value", text(&value)), ("timing_ms", timing)], g)
}

fn ivr_seeds() -> Vec<Vec<u8>> {
    let uri = format!("sip:outcall@sip.vapi.ai?X-pendingcallid={ID}");
    let c = r#"{"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","classification_type":"ivr_then_human",
        "ivr_actions":[{"action":"wait","value":"","timing_ms":1500},{"action":"dtmf","value":"2","timing_ms":2000},
        {"action":"speech","value":"appointments","timing_ms":500}]}"#;
    vec![frame(&[c, &uri])]
}

fn ivr_generate(g: &mut Gen) -> Vec<u8> {
    let n = match g.below(100) {
        _ if g.strict => g.below(12),
        0..=84 => g.below(10),
        85..=98 => g.below(100),
        _ => g.below(2000),
    };
    let actions: Vec<Value> = (0..n).map(|_| ivr_action(g)).collect();
    let kinds: &[&str] = if g.strict {
        &["human", "ivr_only", "ivr_then_human"]
    } else {
        &["human", "ivr_only", "ivr_then_human", "robot"]
    };
    let kind = g.or_odd(|g| g.pick(kinds).to_string());
    let classification = obj(
        vec![("id", text(&g.uuid())), ("classification_type", text(&kind)), ("ivr_actions", Value::Array(actions))],
        g,
    );
    let json = if g.one_in(5) { classification["ivr_actions"].clone() } else { classification };
    let uri = g.or_odd(|g| format!("sip:outcall@sip.vapi.ai?X-pendingcallid={}", g.uuid()));
    frame(&[g.json_text(&json), uri])
}

fn ivr_check(input: &[u8]) -> bool {
    let f = fields(input);
    let (raw, uri) = (field(&f, 0), field(&f, 1));
    let mut accepted = false;
    if let Ok(c) = serde_json::from_str::<Classification>(raw) {
        for action in &c.ivr_actions {
            consume(action.speech_is_clean());
        }
        if let Ok(steps) = twiml::replay_steps(&c.ivr_actions) {
            for step in &steps {
                assert!(!matches!(step, Step::Pause(0)), "a zero pause");
            }
        }
        if let Ok(doc) = twiml::call_twiml(Some(&c), uri, None) {
            assert!(doc.len() <= MAX_INLINE_TWIML);
            accepted = true;
        }
    }
    if let Ok(actions) = serde_json::from_str::<Vec<IvrAction>>(raw) {
        accepted |= twiml::replay_steps(&actions).is_ok();
    }
    accepted
}

// ---------------------------------------------------------------- routes

fn path(g: &mut Gen) -> String {
    let id = g.uuid();
    let mut p = g
        .pick(&[
            "/health".to_owned(),
            "/hooks/pending-calls".to_owned(),
            "/twilio/status".to_owned(),
            "/vapi/events".to_owned(),
            "/api/v1/openapi.json".to_owned(),
            "/api/v1/batches".to_owned(),
            format!("/api/v1/batches/{id}"),
            format!("/api/v1/batches/{id}/transcripts"),
            format!("/api/v1/batches/{id}/events"),
            format!("/api/v1/batches/{id}/cancel"),
            format!("/api/v1/batches/{id}/retry-failed"),
        ])
        .clone();
    match g.below(12) {
        0 => p.push('/'),
        1 => p.push_str("//"),
        2 => p = p.replacen('/', "//", 1),
        3 => p.push_str(&format!("/{}", g.text())),
        4 => p = p.replace("batches", g.pick_str(&["BATCHES", "batches%2F", "batch", ".."])),
        5 => p = format!("/api/v1{p}"),
        6 => {
            let at = g.below(p.len() + 1);
            p.truncate((0..=at).rev().find(|i| p.is_char_boundary(*i)).unwrap_or(0));
        }
        _ => {}
    }
    p
}

fn method(g: &mut Gen) -> String {
    g.or_odd(|g| g.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "post"]).to_string())
}

fn route_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = routes::SERVICE_ROUTES.iter().map(|(m, p, _)| frame(&[*m, *p])).collect();
    seeds.extend(api::ROUTES.iter().map(|(m, p)| frame(&[m.to_string(), p.replace("{batchId}", ID)])));
    seeds.extend(operator::ROUTES.iter().map(|(m, p)| frame(&[m.to_string(), operator_path(p, ID, "cancel")])));
    seeds.push(frame(&["GET", "/api/v1/batches/not-a-uuid"]));
    seeds
}

fn route_generate(g: &mut Gen) -> Vec<u8> {
    if g.strict {
        // A route as documented, with its own method.
        let mut all: Vec<(String, String)> =
            routes::SERVICE_ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
        all.extend(api::ROUTES.iter().map(|(m, p)| (m.to_string(), p.replace("{batchId}", &g.uuid()))));
        for (m, p) in operator::ROUTES {
            let action = g.pick_str(&["cancel", "retry_now", "retry-failed", "invalidate", "correct", "explode"]);
            all.push((m.to_string(), operator_path(p, &g.uuid(), action)));
        }
        let (method, path) = g.pick(&all).clone();
        return frame(&[method, path]);
    }
    frame(&[method(g), path(g)])
}

/// An operator route's template with its id and action filled in.
fn operator_path(template: &str, id: &str, action: &str) -> String {
    template.replace("{batchId}", id).replace("{classificationId}", id).replace("{action}", action)
}

fn route_check(input: &[u8]) -> bool {
    let f = fields(input);
    let (method, path) = (field(&f, 0), field(&f, 1));
    consume(api::allow_header(path));
    consume(operator::allow_header(path));
    match routes::route(method, path) {
        Ok(route) => {
            consume(body::route_cap(method, route, DEFAULT_MAX_TARGETS));
            true
        }
        Err(refused) => {
            assert!([400, 404, 405].contains(&refused.error.status), "{refused:?}");
            assert_eq!(refused.error.status == 405, refused.allow.is_some(), "Allow exactly with a 405: {refused:?}");
            false
        }
    }
}

// ---------------------------------------------------------------- body caps

fn body_seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&["POST", "/twilio/status", "S65536", "1", "16", "hello", "world"]),
        frame(&["POST", "/twilio/status", "S65537", "1", "16", "x"]),
        frame(&["POST", "/vapi/events", "Slots", "1", "0", ""]),
        frame(&["GET", "/health", "S99999999999", "1", "4"]),
        frame(&[&b"POST"[..], b"/api/v1/batches", b"N", b"10", b"4", &[0xc3], &[0xa9]]),
    ]
}

fn body_generate(g: &mut Gen) -> Vec<u8> {
    let method = if g.percent(80) { "POST".to_owned() } else { method(g) };
    let path = if g.percent(70) {
        g.pick(&["/twilio/status", "/hooks/pending-calls", "/vapi/events", "/api/v1/batches"]).to_string()
    } else {
        path(g)
    };
    let length = match g.below(10) {
        0 | 1 => "N".to_owned(),
        2..=5 => format!(
            "S{}",
            g.pick(&["65536", "65537", "262144", "262145", "8388608", "8388609", "33554432", "33554433"])
        ),
        _ => format!("S{}", g.or_odd(|g| g.number())),
    };
    let max = g.or_odd(|g| g.pick(&["1", "10", "10000", "100000", "0", "18446744073709551615"]).to_string());
    let small_cap = g.below(64).to_string();
    let mut parts: Vec<Vec<u8>> = vec![method.into(), path.into(), length.into(), max.into(), small_cap.into()];
    for _ in 0..g.below(6) {
        let mut chunk = if g.one_in(30) { vec![b'a'; 60_000 + g.below(10_000)] } else { g.text().into_bytes() };
        chunk.retain(|b| *b != FIELD);
        parts.push(chunk);
    }
    frame(&parts)
}

/// Receives `chunks` under `cap` as the Worker does: stop at the first refusal.
fn receive(cap: usize, chunks: &[&[u8]]) -> bool {
    let mut received = CappedBody::new(cap);
    let mut total = 0usize;
    for chunk in chunks {
        total += chunk.len();
        match received.push(chunk) {
            Ok(()) => assert!(total <= cap, "{total} bytes kept under a cap of {cap}"),
            Err(e) => {
                assert!(total > cap && e.status == 413, "refused {total} bytes under a cap of {cap}: {e:?}");
                return false;
            }
        }
    }
    match received.finish() {
        Ok(text) => {
            assert_eq!(text.len(), total);
            true
        }
        Err(e) => {
            assert_eq!(e.status, 400);
            false
        }
    }
}

fn body_check(input: &[u8]) -> bool {
    let raw: Vec<&[u8]> = input.split(|b| *b == FIELD).collect();
    let f = fields(input);
    let (method, path) = (field(&f, 0), field(&f, 1));
    let length = f.get(2).and_then(|l| l.strip_prefix('S'));
    let max = field(&f, 3).parse::<usize>().unwrap_or(DEFAULT_MAX_TARGETS);
    let small_cap = field(&f, 4).parse::<usize>().unwrap_or(0) % 100_000;
    let chunks = raw.get(5..).unwrap_or(&[]);
    receive(small_cap, chunks);
    let Ok(route) = routes::route(method, path) else { return false };
    match body::plan(method, route, length, max) {
        Ok(BodyPlan::Read { cap }) => {
            if let Some(declared) = length.and_then(|l| l.trim().parse::<u64>().ok()) {
                assert!(declared <= cap as u64);
            }
            receive(cap, chunks)
        }
        Ok(BodyPlan::Ignore) => {
            assert!(body::route_cap(method, route, max).is_none());
            false
        }
        Err(e) => {
            assert!([400, 413].contains(&e.status), "{e:?}");
            false
        }
    }
}

// ---------------------------------------------------------------- the API key

fn authorization_seeds() -> Vec<Vec<u8>> {
    vec![frame(&["Bearer k3y", "k3y"]), frame(&["Basic k3y", "k3y"]), frame(&["Bearer k3Y", "k3y"])]
}

fn authorization_generate(g: &mut Gen) -> Vec<u8> {
    let key = g.or_odd(|g| g.text_of("abcdefghijklmnopqrstuvwxyz0123456789", 1, 48));
    let given = if g.percent(50) { key.clone() } else { g.text() };
    let scheme = g.or_odd(|g| g.pick(&["Bearer ", "Bearer  ", "bearer ", " Bearer ", "Basic ", "Bearer"]).to_string());
    frame(&[format!("{scheme}{given}"), key])
}

fn authorization_check(input: &[u8]) -> bool {
    let f = fields(input);
    let (header, key) = (field(&f, 0), field(&f, 1));
    let accepted = api::authorize(Some(header), key).is_ok();
    if accepted {
        assert_eq!(header.trim().strip_prefix("Bearer ").map(str::trim), Some(key));
    }
    let problem = ApiError::new(500, "configuration_error", "TWILIO_AUTH_TOKEN is not set");
    let health = config::health(Some(&problem), Some(header), Some(key));
    assert_eq!(health["configured"], false);
    consume(config::health(None, Some(header), Some(key)));
    accepted
}

// ---------------------------------------------------------------- Twilio's answers

fn call_resource(g: &mut Gen) -> Value {
    let duration = match g.below(4) {
        0 => Value::Null,
        1 => text(&g.number()),
        _ => json_number(g),
    };
    obj(
        vec![
            ("sid", text(&g.call_sid())),
            ("status", text(g.pick_str(&CALL_STATUSES))),
            ("date_created", text(&rfc2822(g))),
            ("duration", duration),
        ],
        g,
    )
}

fn twilio_answers_seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&["201", r#"{"sid":"CA0123456789abcdef0123456789abcdef","status":"queued"}"#, "5", "1795000000"]),
        frame(&["400", r#"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"x","status":400}"#, "", ""]),
        frame(&[
            "200",
            r#"{"calls":[{"sid":"CA0123456789abcdef0123456789abcdef","status":"completed","date_created":"Sat, 21 Nov 2026 12:00:00 +0000","duration":"42"}]}"#,
            "Sat, 21 Nov 2026 12:00:05 +0000",
            "1795000000",
        ]),
    ]
}

fn twilio_answers_generate(g: &mut Gen) -> Vec<u8> {
    let status = g.or_odd(|g| g.pick(&["200", "201", "400", "404", "429", "500", "503", "504"]).to_string());
    let body = match g.below(4) {
        0 => obj(vec![("sid", text(&g.call_sid())), ("status", text("queued"))], g),
        1 => obj(vec![("code", json_number(g)), ("message", text(&g.text())), ("status", json_number(g))], g),
        2 => call_resource(g),
        _ => {
            let calls: Vec<Value> = (0..g.below(6)).map(|_| call_resource(g)).collect();
            obj(vec![("calls", Value::Array(calls))], g)
        }
    };
    let retry_after = match g.below(3) {
        0 => g.number(),
        1 => rfc2822(g),
        _ => g.or_odd(|g| g.digits(1, 3)),
    };
    let now = g.or_odd(|g| (1_795_000_000 + g.below(100_000)).to_string());
    frame(&[status, g.json_text(&body), retry_after, now])
}

fn twilio_answers_check(input: &[u8]) -> bool {
    let f = fields(input);
    let status = field(&f, 0).parse::<u16>().unwrap_or(201);
    let body = field(&f, 1);
    let mut accepted = matches!(twilio::dial_outcome(status, body), twilio::DialOutcome::Dialled(_));
    let ours = PhoneNumber::parse("+15005550006").expect("our caller id");
    if let Ok(call) = serde_json::from_str::<CallResource>(body) {
        accepted |= reconcile::looked_up(Some(&call)).is_ok();
        consume(reconcile::candidates(std::slice::from_ref(&call), &ours));
    }
    if let Ok(page) = serde_json::from_str::<CallPage>(body) {
        accepted |= reconcile::candidates(&page.calls, &ours).as_array().is_some_and(|c| !c.is_empty());
    }
    let fallback = DateTime::from_timestamp(1_795_000_000, 0).expect("a time");
    let now = field(&f, 3).parse::<i64>().ok().and_then(|s| DateTime::from_timestamp(s, 0)).unwrap_or(fallback);
    if let Some(wait) = retry::parse_retry_after(field(&f, 2), now) {
        consume(Backoff::default().next_try(Verdict::NotProcessed, 1, Some(wait)));
        consume(Backoff::default().next_try(Verdict::Unknown, 3, Some(wait)));
    }
    accepted
}

// ---------------------------------------------------------------- configuration

/// A valid value of every variable, required then optional.
const VALID_CONFIG: [(&str, &str); 20] = [
    ("SUPABASE_URL", "https://abc.supabase.co"),
    ("SUPABASE_SERVICE_ROLE_KEY", "service-role"),
    ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
    ("TWILIO_AUTH_TOKEN", "token"),
    ("TWILIO_FROM_NUMBER", "+15005550006"),
    ("TWILIO_API_BASE", "https://api.twilio.com"),
    ("VAPI_ASSISTANT_ID", "asst"),
    ("VAPI_SIP_USER", "outcall"),
    ("VAPI_SIP_HOST", "sip.vapi.ai"),
    ("VAPI_SECRET", "s3cret"),
    ("WEBHOOK_SECRET", "hook"),
    ("PUBLIC_BASE_URL", "http://127.0.0.1:8787"),
    ("API_KEY", "k3y"),
    ("VAPI_CREDENTIAL_TYPE", "hmac"),
    ("VAPI_SIGNATURE_HEADER", "x-signature"),
    ("VAPI_TIMESTAMP_HEADER", "x-timestamp"),
    ("VAPI_HMAC_ALLOW_NO_TIMESTAMP", "false"),
    ("PROVIDER_RETRY_DELAYS_MS", "1000,4000,10000"),
    ("TWILIO_TIMEOUT_MS", "10000"),
    ("BATCH_MAX_TARGETS", "10000"),
];

fn config_value(g: &mut Gen, name: &str) -> String {
    let name = name.to_owned();
    g.or_odd(|g| match name.as_str() {
        "SUPABASE_URL" | "TWILIO_API_BASE" | "PUBLIC_BASE_URL" => format!(
            "{}{}{}{}",
            g.pick(&["https://", "http://", "HTTP://", "ftp://", "", "https:/"]),
            g.pick(&[
                "localhost",
                "127.0.0.1",
                "127.1",
                "[::1]",
                "[::1",
                "x.example",
                "user@127.0.0.1",
                "127.0.0.1.evil",
                "256.0.0.1",
                "",
                "[fe80::1]",
                "LOCALHOST"
            ]),
            g.pick(&["", ":8787", ":", ":99999"]),
            g.pick(&["", "/", "/base/", "?q#f", "@evil"]),
        ),
        "TWILIO_FROM_NUMBER" => g.phone(),
        "VAPI_CREDENTIAL_TYPE" => g.pick(&["bearer", "hmac", "HMAC", ""]).to_string(),
        "VAPI_HMAC_ALLOW_NO_TIMESTAMP" => g.pick(&["true", "false", "yes", "1"]).to_string(),
        "PROVIDER_RETRY_DELAYS_MS" => (0..g.below(5)).map(|_| g.number()).collect::<Vec<_>>().join(","),
        "TWILIO_TIMEOUT_MS" | "BATCH_MAX_TARGETS" => g.number(),
        _ => g.text(),
    })
}

fn config_seeds() -> Vec<Vec<u8>> {
    vec![frame(&VALID_CONFIG.map(|(_, v)| v))]
}

fn config_generate(g: &mut Gen) -> Vec<u8> {
    let values: Vec<String> = VALID_CONFIG
        .iter()
        .map(|(name, valid)| match g.below(if g.strict { 40 } else { 10 }) {
            0..=6 => (*valid).to_owned(),
            7 => String::new(),
            8 | 9 => config_value(g, name),
            _ => (*valid).to_owned(),
        })
        .collect();
    frame(&values)
}

fn config_check(input: &[u8]) -> bool {
    let f = fields(input);
    let names: Vec<&str> = VARIABLES.iter().copied().chain(OPTIONAL_VARIABLES.iter().map(|(n, _)| *n)).collect();
    let lookup = |name: &str| names.iter().position(|n| *n == name).and_then(|i| f.get(i)).cloned();
    let config = Config::from_lookup(lookup);
    let accepted = config.is_ok();
    if let Ok(config) = config {
        for url in [&config.supabase_url, &config.twilio_api_base, &config.public_base_url] {
            assert!(config::check_base_url(url).is_ok(), "{url}");
        }
        if let Some(judge) = &config.judge {
            assert!(config::check_base_url(&judge.url).is_ok() && !judge.api_key.is_empty(), "{judge:?}");
        }
        let create = Route::Api(api::Route::CreateBatch);
        assert!(
            body::route_cap("POST", create, config.batch_max_targets).is_some_and(|cap| cap <= body::BATCH_MAX_BYTES)
        );
        consume(config.public_url("/twilio/status"));
    }
    for value in &f {
        consume(config::check_base_url(value).ok());
        consume(Backoff::parse(value).ok());
    }
    accepted
}

// ---------------------------------------------------------------- users' access tokens (the dashboard's API)

const JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";
const ISSUER: &str = "http://127.0.0.1:54321/auth/v1";
const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

fn base64url(bytes: &[u8]) -> String {
    base64(bytes).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// A token: `header.claims.signature`, HS256-signed with the test secret when `alg` says so.
fn jwt(header: &Value, claims: &Value, sign: bool) -> String {
    let input = format!("{}.{}", base64url(header.to_string().as_bytes()), base64url(claims.to_string().as_bytes()));
    let signature = if sign { hmac_sha256(JWT_SECRET, &input).to_vec() } else { vec![7; 64] };
    format!("{input}.{}", base64url(&signature))
}

fn user_claims(g: &mut Gen) -> Value {
    let exp = if g.percent(80) { json!(NOW_MS / 1000 + 3600) } else { json_number(g) };
    let aud = match g.below(8) {
        0 => json!(["authenticated", "other"]),
        1 => text(g.word()),
        _ => text("authenticated"),
    };
    let fields = vec![
        ("iss", text(if g.percent(85) { ISSUER } else { "https://x.supabase.co/auth/v1" })),
        ("aud", aud),
        ("role", text(g.pick_str(&["authenticated", "authenticated", "authenticated", "anon", "service_role"]))),
        ("sub", text(&g.or_odd(|g| g.uuid()))),
        ("exp", exp),
        ("nbf", json_number(g)),
        ("email", text("ada@example.com")),
        ("session_id", text(&g.uuid())),
    ];
    obj(fields, g)
}

fn user_jwt_seeds() -> Vec<Vec<u8>> {
    let claims = json!({"iss": ISSUER, "aud": "authenticated", "role": "authenticated", "sub": ID,
                        "exp": NOW_MS / 1000 + 3600, "email": "ada@example.com"});
    let hs = jwt(&json!({"alg": "HS256", "typ": "JWT"}), &claims, true);
    let es = jwt(&json!({"alg": "ES256", "kid": "ec1", "typ": "JWT"}), &claims, false);
    vec![frame(&[format!("Bearer {hs}"), "secret".into()]), frame(&[format!("Bearer {es}"), String::new()])]
}

fn user_jwt_generate(g: &mut Gen) -> Vec<u8> {
    let alg = g.pick(&["HS256", "HS256", "ES256", "RS256", "none", "ES512"]).to_string();
    let kid = g.or_odd(|g| g.pick(&["ec1", "rsa1", "rotated"]).to_string());
    let header = obj(vec![("alg", text(&alg)), ("kid", text(&kid)), ("typ", text("JWT"))], g);
    let claims = user_claims(g);
    let mut token = jwt(&header, &claims, alg == "HS256" && g.percent(80));
    if g.one_in(5) {
        let mut bytes = token.into_bytes();
        mutate(g, &mut bytes, b".eyJ");
        token = String::from_utf8_lossy(&bytes).into_owned();
    }
    let scheme = g.pick(&["Bearer ", "Bearer ", "bearer ", "Basic ", ""]).to_string();
    frame(&[format!("{scheme}{token}"), g.pick(&["secret", ""]).to_string()])
}

fn user_jwt_check(input: &[u8]) -> bool {
    let f = fields(input);
    let Ok(raw) = user_jwt::bearer(Some(field(&f, 0))) else { return false };
    let Ok(token) = user_jwt::parse(raw) else { return false };
    let jwks = Jwks::parse(&jwks_document(P256_X)).unwrap_or_default();
    let legacy = field(&f, 1) == "secret";
    let key = user_jwt::choose_key(&token.header, &jwks, legacy);
    consume(token.verify_hs256(JWT_SECRET));
    let user = user_jwt::check_claims(token.claims(), ISSUER, NOW_MS / 1000);
    key.is_ok() && user.is_ok()
}

fn jwks_document(x: &str) -> String {
    json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "key_ops": ["verify"], "kid": "ec1",
                     "x": x, "y": P256_Y},
                    {"kty": "RSA", "alg": "RS256", "kid": "rsa1", "n": base64url(&[0xC5; 256]), "e": "AQAB"}]})
    .to_string()
}

fn jwks_seeds() -> Vec<Vec<u8>> {
    vec![jwks_document(P256_X).into_bytes(), br#"{"keys": []}"#.to_vec()]
}

fn jwks_generate(g: &mut Gen) -> Vec<u8> {
    let keys: Vec<Value> = (0..g.below(4))
        .map(|_| {
            let kty = g.pick(&["EC", "EC", "RSA", "oct", "OKP"]).to_string();
            let fields = vec![
                ("kty", text(&kty)),
                ("crv", text(g.pick_str(&["P-256", "P-384", "Ed25519"]))),
                ("alg", text(g.pick_str(&["ES256", "RS256", "HS256", "EdDSA"]))),
                ("use", text(g.pick_str(&["sig", "enc"]))),
                ("key_ops", json!([g.pick(&["verify", "sign"])])),
                ("kid", text(&g.or_odd(|g| g.word().to_owned()))),
                ("x", text(&g.or_odd(|_| P256_X.to_owned()))),
                ("y", text(&g.or_odd(|_| P256_Y.to_owned()))),
                ("n", text(&g.or_odd(|g| base64url(&vec![0xC5; g.range(100, 600) as usize])))),
                ("e", text(&g.or_odd(|_| "AQAB".to_owned()))),
            ];
            obj(fields, g)
        })
        .collect();
    let document = obj(vec![("keys", Value::Array(keys))], g);
    g.json_text(&document).into_bytes()
}

fn jwks_check(input: &[u8]) -> bool {
    let Ok(jwks) = Jwks::parse(&String::from_utf8_lossy(input)) else { return false };
    for key in &jwks.keys {
        consume(key.webcrypto());
    }
    let cache = JwksCache { fetched_at_ms: Some(NOW_MS), attempted_at_ms: Some(NOW_MS) };
    consume(
        cache.should_fetch(i64::from_le_bytes(input.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8])), true),
    );
    !jwks.keys.is_empty()
}

fn operator_body_seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&["calls", &format!(r#"{{"ids": ["{ID}"]}}"#)]),
        frame(&[
            "correct",
            r#"{"classification_type": "ivr_only", "ivr_actions": [{"action": "dtmf", "value": "1", "timing_ms": 0}], "reason": "press 1"}"#,
        ]),
        frame(&["invalidate", r#"{"reason": "moved"}"#]),
        frame(&["refusal", r#"{"code": "42501", "message": "only an operator may act", "details": null}"#]),
    ]
}

fn operator_body_generate(g: &mut Gen) -> Vec<u8> {
    let kind = g.pick(&["calls", "correct", "invalidate", "batch", "refusal"]).to_string();
    let body = match kind.as_str() {
        "calls" => {
            let ids: Vec<Value> =
                (0..g.below(8) + if g.one_in(50) { 500 } else { 0 }).map(|_| text(&g.or_odd(|g| g.uuid()))).collect();
            obj(vec![("ids", Value::Array(ids))], g)
        }
        "correct" => {
            let steps: Vec<Value> = (0..g.below(4))
                .map(|_| {
                    let fields = vec![
                        ("action", text(g.pick_str(&["dtmf", "speech", "wait", "fax"]))),
                        ("value", text(&g.text())),
                        ("timing_ms", json_number(g)),
                    ];
                    obj(fields, g)
                })
                .collect();
            let fields = vec![
                ("classification_type", text(g.pick_str(&["human", "ivr_only", "ivr_then_human", "robot"]))),
                ("ivr_actions", Value::Array(steps)),
                ("reason", text(&g.text())),
            ];
            obj(fields, g)
        }
        "refusal" => {
            let fields = vec![
                ("code", text(g.pick_str(&["42501", "P0002", "22023", "22P02", "PGRST301", "XX000"]))),
                ("message", text(&g.text())),
                ("details", text(&g.text())),
            ];
            obj(fields, g)
        }
        _ => obj(vec![("reason", text(&g.text()))], g),
    };
    frame(&[kind, g.json_text(&body)])
}

fn operator_body_check(input: &[u8]) -> bool {
    let f = fields(input);
    let body = field(&f, 1);
    match field(&f, 0) {
        "calls" => operator::call_ids(body).is_ok(),
        "correct" => operator::correction(ClassificationAction::Correct, body).is_ok(),
        "invalidate" => operator::correction(ClassificationAction::Invalidate, body).is_ok(),
        "batch" => operator::no_body(body).is_ok(),
        _ => {
            let status = u16::from_le_bytes([input.first().copied().unwrap_or(0), input.get(1).copied().unwrap_or(0)]);
            operator::sql_refusal("operator_call_action", status, body).status < 500
        }
    }
}

// ---------------------------------------------------------------- batch SMS requests

const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
/// The names templates use and targets give.
const SMS_NAMES: [&str; 5] = ["name", "when", "clinic", "code", "first-name"];

/// A `bodyTemplate`: text and placeholders; unless `clean`, now and then a filter, a tag, an unclosed or
/// empty placeholder, stray braces, or a template long enough to overflow a message once filled.
fn sms_template_text(g: &mut Gen, clean: bool) -> String {
    let mut out = String::new();
    for _ in 0..1 + g.below(6) {
        match g.below(if clean { 6 } else { 14 }) {
            0 | 1 => out.push_str(g.pick_str(&["Hi ", ", your exam is ", " at ", ". Reply STOP to opt out.", " "])),
            2 => out.push_str(g.pick_str(&["Café ", "“quoted” ", "€5 ", "😀 ", "[ok] ~ ", "ç "])),
            3 | 4 => out.push_str(&format!("{{{{{}}}}}", g.pick_str(&SMS_NAMES))),
            5 => out.push_str(&format!("{{{{ {} }}}}", g.pick_str(&SMS_NAMES))),
            6 => out.push_str(&format!("{{{{ {} | upcase }}}}", g.pick_str(&SMS_NAMES))),
            7 => out.push_str(g.pick_str(&["{% if name %}", "{%", "%}", "{% endif %}"])),
            8 => out.push_str(&format!("{{{{{}", g.pick_str(&SMS_NAMES))),
            9 => out.push_str(g.pick_str(&["{{}}", "{{ }}", "{", "}", "}}", "{{{", "{}", "{{a b}}", "{{é}}"])),
            10 => out.push_str(&"x".repeat(1_590 + g.below(20))),
            11 => out.push_str(&format!("{{{{{}}}}}", g.text())),
            _ => out.push_str(&g.text()),
        }
    }
    out
}

/// A variable's value: text mostly; unless `clean`, numbers, null, objects, braces, blanks, U+0000.
fn sms_value(g: &mut Gen, clean: bool) -> Value {
    if clean {
        return text(g.pick_str(&["Dana", "Tuesday 9:30", "Zoë", "Clinic A", "42", "Ñandú"]));
    }
    match g.below(10) {
        0 => Value::Null,
        1 => json_number(g),
        2 => Value::Bool(g.percent(50)),
        3 => text(g.pick_str(&["{{name}}", "{", "}}", " ", "", "a\0b", "{{"])),
        4 => g.json_any(2),
        5 => text(&"y".repeat(800 + g.below(900))),
        _ => text(&g.text()),
    }
}

fn sms_target(g: &mut Gen, clean: bool, i: usize) -> Value {
    let phone = if clean { format!("+1555{:07}", 1_000 + i) } else { g.phone() };
    let mut variables = serde_json::Map::new();
    for name in SMS_NAMES {
        if clean || g.percent(70) {
            variables.insert(name.to_owned(), sms_value(g, clean));
        }
    }
    if !clean && g.one_in(8) {
        variables.insert(g.text(), sms_value(g, false));
    }
    let name = if clean { text(g.pick_str(&["Dana", "Lee", "Zoë"])) } else { sms_value(g, false) };
    let own_body = if clean {
        text(g.pick_str(&["Your own text", "Café “ok”", "{{name}} as written"]))
    } else {
        sms_value(g, false)
    };
    let mut fields: Vec<(&str, Value)> =
        vec![("phone", text(&phone)), ("name", name), ("variables", Value::Object(variables))];
    if g.one_in(4) {
        fields.push(("body", own_body));
    }
    if clean {
        return Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    }
    if g.one_in(20) {
        return g.json_any(2);
    }
    g.object(fields)
}

fn sms_request_seeds() -> Vec<Vec<u8>> {
    let full = json!({
        "name": "Reminders",
        "from": "+1 (555) 000-1000",
        "bodyTemplate": "Hi {{name}}, your exam is {{ when }}.",
        "targets": [
            {"phone": "+15550001001", "name": "Dana", "variables": {"when": "Tuesday 9:30"}},
            {"phone": "+15550001002", "name": "Zoë", "variables": {"when": "Wed", "name": "ignored"}},
            {"phone": "+15550001003", "body": "Your own text “quoted”"}
        ],
        "schedule": {"notBefore": "2026-12-03T09:00:00-05:00"},
        "metadata": {"source": "fuzz"}
    });
    let service = json!({"messagingServiceSid": SERVICE_SID, "targets": [{"phone": "+15550001001", "body": "hi"}]});
    let broken = json!({
        "from": "+15550001000", "bodyTemplate": "Hi {{name",
        "targets": [{"phone": "12"}, "x", {"phone": "+15550001003", "extra": 1, "variables": [1]}],
        "schedule": {"notBefore": "tomorrow", "window": {}}, "colour": "red"
    });
    vec![
        frame(&["100".to_owned(), full.to_string(), "k-1".to_owned()]),
        frame(&["100".to_owned(), service.to_string(), String::new()]),
        frame(&["100".to_owned(), broken.to_string(), String::new()]),
        frame(&["1", "{}", ""]),
    ]
}

fn sms_request_generate(g: &mut Gen) -> Vec<u8> {
    let clean = g.strict;
    let n = match g.below(100) {
        0..=84 => g.below(5),
        85..=98 => g.below(30),
        _ => g.below(200),
    };
    let targets: Vec<Value> = (0..n).map(|i| sms_target(g, clean || n > 30, i)).collect();
    let mut request = serde_json::Map::new();
    let sender = if clean { g.below(2) } else { g.below(5) };
    if sender == 0 || sender == 2 {
        let from = if clean { format!("+1555{}", g.digits(7, 7)) } else { g.or_odd(|g| g.phone()) };
        request.insert("from".into(), text(&from));
    }
    if sender == 1 || sender == 2 {
        let sid = g.or_odd(|g| format!("MG{:016x}{:016x}", g.u64(), g.u64()));
        request.insert("messagingServiceSid".into(), text(&sid));
    }
    if sender == 4 {
        request.insert(g.pick_str(&["from", "messagingServiceSid"]).into(), g.json_any(2));
    }
    if !clean || g.percent(80) {
        request.insert("bodyTemplate".into(), text(&sms_template_text(g, clean)));
    }
    request.insert("targets".into(), Value::Array(targets));
    if g.percent(30) {
        let mut schedule = serde_json::Map::new();
        schedule.insert("notBefore".into(), text(&g.rfc3339()));
        if !clean && g.one_in(5) {
            schedule.insert(g.pick_str(&["window", "notAfter", ""]).into(), json!({}));
        }
        request.insert("schedule".into(), Value::Object(schedule));
    }
    if g.percent(30) {
        request.insert("metadata".into(), if clean { json!({"source": g.text()}) } else { g.json_any(3) });
    }
    if g.percent(30) {
        request.insert("name".into(), if clean { text("batch") } else { sms_value(g, false) });
    }
    let mut request = Value::Object(request);
    if !clean && g.one_in(5) {
        // Some fields null, mistyped or unknown, as Gen::object does.
        let fields: Vec<(String, Value)> =
            request.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        request = obj(fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(), g);
    }
    let max =
        if clean { "100".to_owned() } else { g.or_odd(|g| g.pick(&["0", "1", "2", "10", "100", "10000"]).to_string()) };
    let key = g.or_odd(|g| g.text_of("abcdef0123456789-", 1, 40));
    frame(&[max, g.json_text(&request), key])
}

/// The fields of an SMS batch request and of its targets, as paths start.
const SMS_REQUEST_FIELDS: [&str; 7] =
    ["name", "from", "messagingServiceSid", "bodyTemplate", "targets", "schedule", "metadata"];
const SMS_TARGET_FIELDS: [&str; 4] = ["phone", "name", "variables", "body"];

/// `targets[i]` at the start of a path: `i`, and the rest.
fn target_path(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("targets[")?;
    let close = rest.find(']')?;
    Some((rest[..close].parse().ok()?, &rest[close + 1..]))
}

fn sms_request_check(input: &[u8]) -> bool {
    let f = fields(input);
    let max = field(&f, 0).parse::<usize>().unwrap_or(100);
    let body = field(&f, 1);
    let request: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match sms::request::parse_request(body, max) {
        Ok(new_batch) => {
            let targets = request["targets"].as_array().expect("accepted: a list of targets");
            assert_eq!(new_batch.messages.len(), targets.len());
            assert!((1..=max).contains(&targets.len()));
            let template =
                new_batch.body_template.as_deref().map(|t| Template::parse(t).expect("accepted: a template"));
            for (message, target) in new_batch.messages.iter().zip(targets) {
                let chars = message.body.chars().count();
                assert!((1..=MAX_BODY_CHARS).contains(&chars), "{chars} characters");
                assert!(!message.body.contains('\0'));
                assert_eq!(message.body.trim(), message.body);
                assert_eq!(segments::count(&message.body), message.segments);
                let phone = target["phone"].as_str().expect("a phone");
                assert_eq!(PhoneNumber::parse(phone.trim()).ok().as_ref(), Some(&message.to));
                match target.get("body").filter(|b| !b.is_null()) {
                    Some(own) => assert_eq!(own.as_str().map(str::trim), Some(message.body.as_str())),
                    None => {
                        // Filled in: no placeholder left, unless a value brought braces of its own.
                        let template = template.as_ref().expect("no own body: a template");
                        let brace = |v: &Value| v.to_string().contains(['{', '}']);
                        let braces = target.get("name").is_some_and(brace)
                            || target
                                .get("variables")
                                .and_then(Value::as_object)
                                .is_some_and(|m| m.values().any(brace));
                        if !braces {
                            assert!(!message.body.contains("{{"), "{:?}", message.body);
                        }
                        let mut values = template.render(&serde_json::Map::new()).err().unwrap_or_default();
                        values.retain(|name| message.body.contains(&format!("{{{{{name}}}}}")));
                        assert!(braces || values.is_empty(), "left unfilled: {values:?}");
                    }
                }
            }
            let key = api::idempotency_key(f.get(2).map(String::as_str)).ok().flatten();
            consume(new_batch.rpc_request(key.as_deref(), &batch::request_hash(body)));
            true
        }
        Err(BatchRequestError::Malformed(message)) => {
            assert!(!request.is_object(), "a JSON object is never malformed: {message}");
            false
        }
        Err(BatchRequestError::Invalid(items)) => {
            assert!(!items.is_empty());
            let object = request.as_object().expect("invalid: a JSON object");
            let targets = object.get("targets").and_then(Value::as_array).map_or(0, Vec::len);
            for item in &items {
                if item.code == "unknown_field" && item.index.is_none() && object.contains_key(&item.path) {
                    // An unknown key at the top, named as given (even "targets[0]" or "").
                    continue;
                }
                let known =
                    SMS_REQUEST_FIELDS.iter().any(|k| item.path == *k || item.path.starts_with(&format!("{k}.")))
                        || (item.code == "unknown_field" && object.contains_key(&item.path));
                match target_path(&item.path) {
                    Some((i, rest)) => {
                        assert_eq!(item.index, Some(i), "{item:?}");
                        assert!(i < targets, "{item:?}");
                        assert!(rest.is_empty() || rest.starts_with('.'), "{item:?}");
                        let field = rest.trim_start_matches('.').split('.').next().unwrap_or("");
                        assert!(
                            rest.is_empty() || SMS_TARGET_FIELDS.contains(&field) || item.code == "unknown_field",
                            "{item:?}"
                        );
                    }
                    None => {
                        assert!(known, "{item:?}");
                        assert_eq!(item.index, None, "{item:?}");
                    }
                }
                assert!(!item.path.is_empty(), "{item:?}");
            }
            let error = api::validation_error(items);
            assert_eq!(error.status, 400);
            consume(error.body());
            false
        }
    }
}

// ---------------------------------------------------------------- SMS templates

fn sms_template_seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&["Hi {{name}}, your exam is at {{ time }} ({{name}}).", r#"{"name":"Dana","time":"9:30"}"#]),
        frame(&["Hi {{name", "{}"]),
        frame(&["é {{ name | upcase }}", "{}"]),
        frame(&["{{a}} {% x %}", r#"{"a":null}"#]),
        frame(&["50% off, {braces} are text", ""]),
    ]
}

fn sms_template_generate(g: &mut Gen) -> Vec<u8> {
    let template = sms_template_text(g, g.strict);
    let mut values = serde_json::Map::new();
    for name in SMS_NAMES {
        if g.percent(70) {
            values.insert(name.to_owned(), sms_value(g, g.strict));
        }
    }
    frame(&[template, Value::Object(values).to_string()])
}

/// The characters of `raw` from character `at`.
fn chars_from(raw: &str, at: usize) -> String {
    raw.chars().skip(at).take(2).collect()
}

fn sms_template_check(input: &[u8]) -> bool {
    let f = fields(input);
    let raw = field(&f, 0);
    let given =
        serde_json::from_str::<Value>(field(&f, 1)).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let template = match Template::parse(raw) {
        Ok(template) => template,
        Err(TemplateError::Unclosed(at)) => {
            assert_eq!(chars_from(raw, at), "{{");
            return false;
        }
        Err(TemplateError::NotAName(at, inner)) => {
            assert_eq!(chars_from(raw, at), "{{");
            assert!(raw.contains(&format!("{{{{{inner}}}}}")), "{inner:?}");
            return false;
        }
        Err(TemplateError::Tag(at)) => {
            assert_eq!(chars_from(raw, at), "{%");
            return false;
        }
    };
    // With nothing given, every name is missing, each once.
    let names = match template.render(&serde_json::Map::new()) {
        Ok(body) => {
            assert!(!body.contains("{{"), "{body:?}");
            assert_eq!(body, raw, "no placeholders: the text as written");
            Vec::new()
        }
        Err(names) => names,
    };
    for (i, name) in names.iter().enumerate() {
        assert!(!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-'), "{name:?}");
        assert!(!names[..i].contains(name), "{name} twice");
    }
    match template.render(&given) {
        Ok(_) => assert!(names.iter().all(|n| given.get(n).is_some_and(|v| !v.is_null()))),
        Err(missing) => {
            assert!(!missing.is_empty());
            assert!(
                missing.iter().all(|n| names.contains(n) && given.get(n).is_none_or(Value::is_null)),
                "{missing:?}"
            );
        }
    }
    // Every name given (text without braces): it renders, with no placeholder left.
    let mut full = given.clone();
    for name in &names {
        if full.get(name).is_none_or(|v| v.is_null() || v.to_string().contains(['{', '}'])) {
            full.insert(name.clone(), text("v"));
        }
    }
    full.retain(|_, v| !v.to_string().contains(['{', '}']));
    let body = template.render(&full).expect("every variable given");
    assert!(!body.contains("{{"), "{body:?}");
    true
}

// ---------------------------------------------------------------- SMS segments

/// GSM 03.38's basic table by code, 0x00 to 0x7F (0x1B, the escape, as U+0000, which is not in it).
const GSM_TABLE: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\0', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];
/// The extension table's characters (form feed, ^ { } \ [ ~ ] | €), each escape + code.
const GSM_EXTENSION: [char; 10] = ['\u{c}', '^', '{', '}', '\\', '[', '~', ']', '|', '€'];
/// Near misses: look like GSM-7 but are not in it.
const NOT_GSM: [char; 12] = ['ç', '’', '“', '—', '😀', '\u{a0}', 'Ã', '`', '\t', 'õ', '\0', '\u{1b}'];

/// Segments as the standard counts them: GSM-7 septets (160, then 153 a part), else UTF-16 units (70, 67).
fn expected_segments(body: &str) -> Segments {
    let septets: Option<usize> = body.chars().try_fold(0, |n, c| {
        if c != '\0' && GSM_TABLE.contains(&c) {
            Some(n + 1)
        } else if GSM_EXTENSION.contains(&c) {
            Some(n + 2)
        } else {
            None
        }
    });
    let (encoding, units, single, part) = match septets {
        Some(septets) => (Encoding::Gsm7, septets, 160, 153),
        None => (Encoding::Ucs2, body.encode_utf16().count(), 70, 67),
    };
    let count = if units <= single { 1 } else { units.div_ceil(part) };
    Segments { encoding, count: count as u32 }
}

fn sms_segments_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<String> = vec![String::new(), "Hi Dana, your exam is at 9:30.".into(), "Café £5 — no".into()];
    for (c, n) in
        [('a', 160), ('a', 161), ('a', 306), ('a', 307), ('{', 80), ('€', 81), ('ç', 134), ('😀', 35), ('😀', 36)]
    {
        seeds.push(c.to_string().repeat(n));
    }
    seeds.into_iter().map(String::into_bytes).collect()
}

fn sms_segments_generate(g: &mut Gen) -> Vec<u8> {
    // Lengths near the edges of one and of several segments.
    let n = match g.below(4) {
        0 => g.size(),
        1 => *g.pick(&[69, 70, 71, 80, 81, 134, 135, 159, 160, 161, 306, 307, 459, 460]) - 2 + g.below(4),
        _ => g.below(1_700),
    };
    let foreign = if g.strict { 0 } else { g.below(4) };
    let mut body = String::with_capacity(n);
    for _ in 0..n {
        let c = match g.below(100) {
            0..=79 => GSM_TABLE[g.below(128)],
            80..=91 => *g.pick(&GSM_EXTENSION),
            _ if foreign > 0 => *g.pick(&NOT_GSM),
            _ => 'a',
        };
        body.push(if c == '\0' { ' ' } else { c });
    }
    for _ in 0..foreign {
        let at = body.char_indices().map(|(i, _)| i).nth(g.below(n + 1)).unwrap_or(body.len());
        body.insert(at, if g.percent(50) { *g.pick(&NOT_GSM) } else { g.char() });
    }
    body.into_bytes()
}

fn sms_segments_check(input: &[u8]) -> bool {
    let body = str_field(input);
    let counted = segments::count(&body);
    assert!(counted.count >= 1);
    assert_eq!(counted, expected_segments(&body), "{body:?}");
    // One character outside the tables makes the whole body UCS-2, never fewer segments.
    let foreign = segments::count(&format!("{body}ç"));
    assert_eq!(foreign.encoding, Encoding::Ucs2);
    assert!(foreign.count >= counted.count);
    // A longer body never takes fewer segments than its beginning.
    let cut = body.char_indices().map(|(i, _)| i).nth(body.chars().count() / 2).unwrap_or(0);
    assert!(segments::count(&body[..cut]).count <= counted.count);
    assert!(segments::count(&format!("{body}a")).count >= counted.count);
    counted.encoding == Encoding::Gsm7
}

// ---------------------------------------------------------------- Twilio Messaging's answers and callbacks

const SMS_SID: &str = "SM0123456789abcdef0123456789abcdef";
const SMS_FIELDS: [&str; 12] = [
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "NumSegments",
    "From",
    "To",
    "Body",
    "OptOutType",
    "AccountSid",
    "MessagingServiceSid",
];

fn message_sid(g: &mut Gen) -> String {
    let hex = format!("{:016x}{:016x}", g.u64(), g.u64());
    match g.below(if g.strict { 2 } else { 8 }) {
        0 => format!("SM{hex}"),
        1 => format!("MM{hex}"),
        2 => format!("SM{}", &hex[..g.below(32)]),
        3 => format!("{}{hex}", g.pick(&["CA", "sm", "SM ", "", "MG"])),
        4 => format!("SM{}é", &hex[..30]),
        5 => format!("SM{hex}{}", g.char()),
        _ => g.text(),
    }
}

fn sms_value_of(g: &mut Gen, name: &str) -> String {
    let name = name.to_owned();
    g.or_odd(|g| match name.as_str() {
        "MessageSid" | "SmsSid" => message_sid(g),
        "MessageStatus" | "SmsStatus" => g
            .pick(&["queued", "sent", "delivered", "undelivered", "failed", "read", "canceled", "lost", "Sent"])
            .to_string(),
        "ErrorCode" | "NumSegments" => g.number(),
        "From" | "To" => g.phone(),
        "Body" => {
            g.pick(&["STOP", " stop\n", "Stop please", "start", "INFO", "unstop", "ARRET", "Yes", ""]).to_string()
        }
        "OptOutType" => g.pick(&["STOP", "START", "HELP", "", " ", "stop", "OTHER"]).to_string(),
        "MessagingServiceSid" => SERVICE_SID.to_owned(),
        _ => format!("AC{:016x}{:016x}", g.u64(), g.u64()),
    })
}

fn sms_form(g: &mut Gen) -> String {
    let mut pairs = Vec::new();
    for name in ["MessageSid", "MessageStatus", "From", "To"] {
        if g.strict || g.percent(85) {
            pairs.push((name.to_owned(), sms_value_of(g, name)));
        }
    }
    for _ in 0..g.below(8) {
        let name = if g.strict || g.percent(85) { g.pick(&SMS_FIELDS).to_string() } else { g.text() };
        let value = sms_value_of(g, &name);
        pairs.push((name, value));
    }
    form_body(g, &pairs)
}

fn sms_webhooks_seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&[
            format!("MessageSid={SMS_SID}&MessageStatus=undelivered&ErrorCode=30003&NumSegments=2"),
            format!("MessageSid={SMS_SID}&From=%2B15550001001&To=%2B15550001000&Body=STOP&OptOutType=STOP"),
            "201".to_owned(),
            format!(r#"{{"sid":"{SMS_SID}","status":"accepted","num_segments":"0"}}"#),
            "2".to_owned(),
        ]),
        frame(&[
            format!("SmsSid={SMS_SID}&SmsStatus=read"),
            format!("MessageSid={SMS_SID}&To=%2B1"),
            "429".to_owned(),
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#.to_owned(),
            String::new(),
        ]),
        frame(&["", "", "none", "", ""]),
    ]
}

fn sms_webhooks_generate(g: &mut Gen) -> Vec<u8> {
    let status = g.or_odd(|g| {
        g.pick(&["200", "201", "202", "204", "301", "400", "401", "404", "429", "500", "502", "503", "504", "none"])
            .to_string()
    });
    let answer = match g.below(3) {
        0 => obj(
            vec![("sid", text(&message_sid(g))), ("status", text("queued")), ("num_segments", text(&g.number()))],
            g,
        ),
        1 => obj(vec![("code", json_number(g)), ("message", text(&g.text())), ("status", json_number(g))], g),
        _ => g.json_any(2),
    };
    let retry_after = g.or_odd(|g| g.digits(1, 4));
    frame(&[sms_form(g), sms_form(g), status, g.json_text(&answer), retry_after])
}

fn sms_webhooks_check(input: &[u8]) -> bool {
    let f = fields(input);
    let mut accepted = false;
    let callback_form = parse_form(field(&f, 0));
    if let Ok(callback) = sms::wire::StatusCallback::parse(&callback_form) {
        assert!(sms::wire::is_message_sid(&callback.message_sid));
        accepted = true;
    }
    let inbound_form = parse_form(field(&f, 1));
    if let Ok(inbound) = sms::wire::Inbound::parse(&inbound_form) {
        assert!(sms::wire::is_message_sid(&inbound.message_sid));
        assert!(!inbound.from.is_empty() && !inbound.to.is_empty());
        if let Some(word) = keywords::keyword(&inbound.body, inbound.opt_out_type.as_deref()) {
            assert_eq!(keywords::keyword(word.as_str(), None), Some(word));
            let said =
                inbound.opt_out_type.as_deref().map(str::trim).filter(|t| !t.is_empty()).unwrap_or(&inbound.body);
            assert!(!said.trim().contains(char::is_whitespace), "one word: {said:?}");
        }
        accepted = true;
    }
    // Any text and any OptOutType.
    if let Some(word) = keywords::keyword(field(&f, 3), f.get(4).map(String::as_str)) {
        assert_eq!(keywords::keyword(word.as_str(), None), Some(word));
    }
    let reply = match field(&f, 2).parse::<u16>() {
        Ok(status) => Reply::Status(status),
        Err(_) => Reply::NoAnswer,
    };
    let body = field(&f, 3);
    let wait = field(&f, 4).parse::<u64>().ok().map(Duration::from_secs);
    let readable = serde_json::from_str::<MessageResource>(body).ok().filter(|m| sms::wire::is_message_sid(&m.sid));
    // Twilio's error code, when it fits (serde also reads a struct from a list: [code, message]).
    let error_code =
        serde_json::from_str::<twilio::ApiError>(body).ok().and_then(|e| e.code).and_then(|c| i32::try_from(c).ok());
    let outcome = sms::wire::send_outcome(reply, body, wait);
    match (reply, &outcome) {
        (Reply::Status(200..=299), SendOutcome::Accepted(message)) => {
            assert_eq!(Some(message), readable.as_ref());
            consume(message.segments());
        }
        (Reply::Status(200..=299), SendOutcome::Unclear(_)) => assert!(readable.is_none()),
        (Reply::Status(429 | 503), SendOutcome::Retry { retry_after, code, .. }) => {
            assert_eq!(*retry_after, wait);
            assert_eq!(*code, error_code);
        }
        (Reply::Status(500..=599) | Reply::NoAnswer, SendOutcome::Unclear(_)) => {}
        (Reply::Status(400..=499), SendOutcome::Rejected { code, .. }) => {
            assert_eq!(*code, error_code);
        }
        // Neither a 2xx, 4xx nor 5xx: refused, never sent again blindly.
        (Reply::Status(0..=199 | 300..=399 | 600..), SendOutcome::Rejected { .. }) => {}
        (reply, outcome) => panic!("{reply:?} answered {outcome:?}"),
    }
    accepted || matches!(outcome, SendOutcome::Accepted(_))
}
