//! Inbound messages on request: `POST /_sandbox/twilio/sms/inbound` makes the stand-in post Twilio's signed
//! incoming-message webhook (§5.4) to `SANDBOX_SMS_INBOUND_URL`, and keeps the opt-out block a STOP creates.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::is_service_sid;
use super::segments;
use crate::inspect::api_error;
use crate::state::AppState;
use crate::twilio::api::is_e164;
use crate::twilio::callbacks::{send_signed, HttpMethod};

/// Twilio's default keywords on long codes (§5.4), matched against the whole trimmed body, any case.
const OPT_OUT: &[&str] = &["STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL"];
const OPT_IN: &[&str] = &["START", "YES", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

/// `OptOutType` for a body that is exactly one keyword: `STOP`, `START` or `HELP`.
pub fn opt_out_type(body: &str) -> Option<&'static str> {
    let word = body.trim().to_ascii_uppercase();
    let is = |list: &[&str]| list.contains(&word.as_str());
    if is(OPT_OUT) {
        Some("STOP")
    } else if is(OPT_IN) {
        Some("START")
    } else if is(HELP) {
        Some("HELP")
    } else {
        None
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inbound {
    /// The person.
    from: String,
    /// Our number.
    to: String,
    body: String,
    messaging_service_sid: Option<String>,
}

/// Answers `{url, params, status, body, error, elapsed_ms, opt_out_type}`: what was posted and how the
/// webhook answered (`status` null when it could not be reached).
pub async fn inbound(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let message: Inbound = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_inbound", e.to_string()),
    };
    if !is_e164(&message.from) || !is_e164(&message.to) {
        return api_error(StatusCode::BAD_REQUEST, "invalid_inbound", "from and to must be E.164 numbers");
    }
    if message.messaging_service_sid.as_deref().is_some_and(|s| !is_service_sid(s)) {
        return api_error(StatusCode::BAD_REQUEST, "invalid_inbound", "messaging_service_sid must be MG + 32 hex");
    }
    let Some(url) = state.config.sms_inbound_url.clone() else {
        return api_error(StatusCode::CONFLICT, "no_inbound_url", "SANDBOX_SMS_INBOUND_URL is not set");
    };
    let opt_out = opt_out_type(&message.body);
    // Like Twilio: the block is kept before the message is forwarded, and covers the service when there is one.
    let senders = [Some(message.to.as_str()), message.messaging_service_sid.as_deref()];
    for sender in senders.into_iter().flatten() {
        match opt_out {
            Some("STOP") => state.sms.block(&message.from, sender),
            Some("START") => state.sms.unblock(&message.from, sender),
            _ => {}
        }
    }
    let params = webhook_params(&state.config.twilio_account_sid, &message, opt_out);
    let delivered = send_signed(&state, HttpMethod::Post, &url, &params).await;
    crate::log!(
        info,
        "twilio",
        "inbound message sid={} opt_out={} -> {}",
        params[0].1,
        opt_out.unwrap_or("none"),
        delivered.status.map_or_else(|| delivered.error.clone().unwrap_or_default(), |s| s.to_string())
    );
    let posted: Map<String, Value> = params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Json(json!({
        "url": url,
        "params": posted,
        "status": delivered.status,
        "body": delivered.body,
        "error": delivered.error,
        "elapsed_ms": delivered.elapsed_ms,
        "opt_out_type": opt_out,
    }))
    .into_response()
}

/// The incoming-message webhook's parameters (§5.4).
fn webhook_params(account_sid: &str, message: &Inbound, opt_out: Option<&str>) -> Vec<(String, String)> {
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let (_, num_segments) = segments::count(&message.body);
    let mut params: Vec<(String, String)> = [
        ("MessageSid", sid.as_str()),
        ("SmsSid", &sid),
        ("SmsMessageSid", &sid),
        ("AccountSid", account_sid),
        ("From", &message.from),
        ("To", &message.to),
        ("Body", &message.body),
        ("NumMedia", "0"),
        ("NumSegments", &num_segments.to_string()),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(service) = &message.messaging_service_sid {
        params.push(("MessagingServiceSid".into(), service.clone()));
    }
    if let Some(kind) = opt_out {
        params.push(("OptOutType".into(), kind.into()));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_body_keywords_any_case() {
        assert_eq!(opt_out_type("STOP"), Some("STOP"));
        assert_eq!(opt_out_type("  unsubscribe\n"), Some("STOP"));
        assert_eq!(opt_out_type("Cancel"), Some("STOP"));
        assert_eq!(opt_out_type("unstop"), Some("START"));
        assert_eq!(opt_out_type("yes"), Some("START"));
        assert_eq!(opt_out_type("Info"), Some("HELP"));
        assert_eq!(opt_out_type("Stop please"), None);
        assert_eq!(opt_out_type("STOP."), None);
        assert_eq!(opt_out_type(""), None);
    }
}
