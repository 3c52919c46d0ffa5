//! `GET /twilio/stream`: a call's audio, for its listener. Twilio opens it as a WebSocket and signs the
//! upgrade like any webhook: the stream URL as written in the TwiML, with no parameters. Anything else is
//! refused here, before the listener (a Durable Object per call, `crate::listener`) exists; the
//! single-use token of the stream's `start` message is the listener's own second check.

use crate::http::{self, Answer, Incoming};
use crate::listener::BINDING;
use outcall_core::config;
use outcall_core::dispatch::stream_url;
use outcall_core::error::ApiError;
use outcall_core::twilio::signature_is_valid;
use worker::Env;

pub async fn handle(req: Incoming, env: &Env) -> Answer {
    let signing = http::credential(env, |vars| config::twilio_signing(vars))?;
    let is_upgrade = req.header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return Err(ApiError::new(426, "upgrade_required", "this route takes a WebSocket (Upgrade: websocket)"));
    }
    let signature =
        req.header("X-Twilio-Signature").ok_or_else(|| ApiError::unauthorized("X-Twilio-Signature is missing"))?;
    if !signature_is_valid(&signing.auth_token, &stream_url(&signing.public_base_url), &[], &signature) {
        return Err(ApiError::new(403, "invalid_signature", "X-Twilio-Signature does not match"));
    }
    // The listener needs the whole configuration (the database, the speech-to-text service): a gap in it
    // is refused now, with its name, rather than as a dropped stream later.
    http::config(env)?;
    let unavailable = |e: worker::Error| ApiError::upstream(format!("the listener could not be reached: {e}"));
    let stub = env.durable_object(BINDING).and_then(|ns| ns.unique_id()?.get_stub()).map_err(unavailable)?;
    stub.fetch_with_request(req.into_request()).await.map_err(unavailable)
}
