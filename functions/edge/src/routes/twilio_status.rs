//! `POST /twilio/status`: Twilio's status callbacks, verified by `X-Twilio-Signature`.

use crate::db::Db;
use crate::dispatch::drain;
use crate::http::{self, Answer, Incoming};
use outcall_core::config;
use outcall_core::dispatch::{session_from_query, EVENT_DRAIN_BUDGET_MS};
use outcall_core::error::ApiError;
use outcall_core::routes::Route;
use outcall_core::rpc::{ApplyTwilioStatus, CallbackDetails};
use outcall_core::twilio::{signature_is_valid, StatusEvent};
use worker::{Context, Env};

pub async fn handle(req: Incoming, env: &Env, ctx: &Context) -> Answer {
    let form = verified_form(&req, env, Route::TwilioStatus).await?;
    let config = http::config(env)?;

    let event = StatusEvent::parse(&form).map_err(|e| ApiError::bad_request("invalid_callback", e.to_string()))?;
    let session = session_from_query(req.query())
        .map_err(|e| ApiError::bad_request("invalid_session", format!("session: {e}")))?;
    let db = Db::new(&config);
    let request = ApplyTwilioStatus {
        call_sid: event.call_sid.as_str().to_owned(),
        call_status: event.status,
        duration_seconds: event.duration_seconds,
        session_id: session,
        callback: Some(CallbackDetails { sequence_number: event.sequence_number, answered_by: event.answered_by }),
    };
    let Some(applied) = db.call(&request).await? else {
        return Err(ApiError::not_found(format!("no call session has CallSid {}", event.call_sid.as_str())));
    };
    // The call that ended freed a slot: dial the next due row now, not at the next sweep.
    if applied.slot_freed {
        ctx.wait_until(async move {
            drain(&config, &db, EVENT_DRAIN_BUDGET_MS).await;
        });
    }
    http::json(200, &applied)
}

/// A Twilio webhook's form fields, once its `X-Twilio-Signature` is checked (the voice and the messaging
/// callbacks are signed alike). A missing signature is refused without reading the body; a present one
/// is checked over the body, which is read under the route's cap first.
pub(crate) async fn verified_form(req: &Incoming, env: &Env, route: Route) -> Result<Vec<(String, String)>, ApiError> {
    let signing = http::credential(env, |vars| config::twilio_signing(vars))?;
    let signature =
        req.header("X-Twilio-Signature").ok_or_else(|| ApiError::unauthorized("X-Twilio-Signature is missing"))?;
    let body = http::body(req, route, 0).await?; // (a fixed cap: no batch size involved)
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    // Twilio signs the public URL it called, which behind a proxy differs from the one we see.
    let query = req.query().map(|q| format!("?{q}")).unwrap_or_default();
    let signed_url = signing.public_url(&format!("{}{}", req.path(), query));
    if !signature_is_valid(&signing.auth_token, &signed_url, &form, &signature) {
        return Err(ApiError::new(403, "invalid_signature", "X-Twilio-Signature does not match"));
    }
    Ok(form)
}
