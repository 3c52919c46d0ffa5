//! Twilio Messaging's webhooks, each verified by `X-Twilio-Signature`:
//! - `POST /twilio/sms-status?message=<id>`: a message's delivery status;
//! - `POST /twilio/sms-inbound`: a message someone sent us: stored with the batch it answers, and a STOP
//!   (or START) keyword opts the number out (or back in). Answered with empty TwiML: no auto-reply from us
//!   (Twilio sends the opt-out confirmation itself).

use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use crate::routes::twilio_status::verified_form;
use outcall_core::error::ApiError;
use outcall_core::ids::SmsMessageId;
use outcall_core::routes::Route;
use outcall_core::rpc::sms::{RecordSmsReply, SmsStatusCallback};
use outcall_core::sms::keywords::keyword;
use outcall_core::sms::wire::{Inbound, StatusCallback};
use serde_json::json;
use worker::{Env, Response};

pub async fn status(req: Incoming, env: &Env) -> Answer {
    let form = verified_form(&req, env, Route::TwilioSmsStatus).await?;
    let config = http::config(env)?;
    let callback =
        StatusCallback::parse(&form).map_err(|e| ApiError::bad_request("invalid_callback", e.to_string()))?;
    let message_id = message_from_query(req.query())?;
    let Some(status) = callback.status else {
        // A status of Twilio's that no outbound SMS of ours tracks: nothing to record.
        return http::json(200, &json!({"changed": false}));
    };
    let request = SmsStatusCallback {
        message_sid: callback.message_sid.clone(),
        status,
        error_code: callback.error_code,
        message_id,
        segments: callback.segments,
        price: None,
    };
    let Some(applied) = Db::new(&config).call(&request).await? else {
        return Err(ApiError::not_found(format!("no SMS message has MessageSid {}", callback.message_sid)));
    };
    http::json(200, &applied)
}

pub async fn inbound(req: Incoming, env: &Env) -> Answer {
    let form = verified_form(&req, env, Route::TwilioSmsInbound).await?;
    let config = http::config(env)?;
    let message = Inbound::parse(&form).map_err(|e| ApiError::bad_request("invalid_message", e.to_string()))?;
    let opt_out = keyword(&message.body, message.opt_out_type.as_deref());
    let request = RecordSmsReply {
        message_sid: message.message_sid,
        from: message.from,
        to: message.to,
        body: message.body,
        opt_out,
    };
    Db::new(&config).call(&request).await?;
    let response = Response::ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")
        .map_err(|_| ApiError::new(500, "internal_error", "the TwiML answer could not be made"))?;
    http::set_header(&response, "Content-Type", "text/xml")?;
    Ok(response)
}

/// `?message=<id>`: the message our `StatusCallback` URL names (absent on a callback not ours to read).
fn message_from_query(query: Option<&str>) -> Result<Option<SmsMessageId>, ApiError> {
    let raw =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).find(|(k, _)| k == "message").map(|(_, v)| v);
    raw.map(|id| SmsMessageId::parse(&id))
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_message_id", "message must be an SMS message id (a UUID)"))
}
