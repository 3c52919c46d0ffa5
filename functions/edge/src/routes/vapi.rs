//! `POST /vapi/events`: VAPI's server messages. Replies keep VAPI's shapes: a call that may not have the
//! context (an unknown, finished or never-dialled row, or another VAPI call than the one bound to the
//! session) gets `{"error": ...}` for an assistant-request and an error result for a tool, with no personal data.

use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use crate::time::now_ms;
use outcall_core::config::{self, Config};
use outcall_core::context::CallContext;
use outcall_core::error::ApiError;
use outcall_core::ids::PendingCallId;
use outcall_core::routes::Route;
use outcall_core::rpc::{ApplyCallReport, ApplyVapiStatus, ReadCallContext};
use outcall_core::vapi::{self, parse_message, ServerMessage, ToolCall, FETCH_TOOL, PENDING_CALL_VARIABLE};
use serde::Serialize;
use serde_json::{json, Value};
use worker::Env;

pub async fn handle(req: Incoming, env: &Env) -> Answer {
    // Everything the headers can settle first (the bearer credential whole; HMAC's signature and
    // timestamp present and fresh), then the body under the route's cap, then HMAC's check over it; the
    // rest of the configuration only then.
    let credential = http::credential(env, |vars| config::vapi_credential(vars))?;
    let check = credential.check_headers(|name| req.header(name), now_ms() as i64)?;
    let body = http::body(&req, Route::VapiEvents, 0).await?; // (a fixed cap: no batch size involved)
    credential.check_body(&check, &body)?;
    let config = http::config(env)?;
    let message = parse_message(&body).map_err(|e| ApiError::bad_request("invalid_message", e.to_string()))?;
    let db = Db::new(&config);
    match message {
        ServerMessage::AssistantRequest { pending_call_id, vapi_call_id } => {
            assistant_request(&config, &db, pending_call_id, vapi_call_id).await
        }
        ServerMessage::ToolCalls { pending_call_id, vapi_call_id, calls } => {
            tool_calls(&db, pending_call_id, vapi_call_id, calls).await
        }
        ServerMessage::StatusUpdate { pending_call_id, status, vapi_call_id } => {
            let id = known(pending_call_id)?;
            applied(db.call(&ApplyVapiStatus { pending_call_id: id, status, vapi_call_id }).await?, id)
        }
        ServerMessage::EndOfCallReport { pending_call_id, report } => {
            let id = known(pending_call_id)?;
            applied(db.call(&ApplyCallReport::new(id, &report)).await?, id)
        }
        ServerMessage::Other(kind) => http::json(200, &json!({"ignored": kind})),
    }
}

/// The row's context for this VAPI call, if its attempt is live and bound to this call (the first to ask).
async fn context(db: &Db, id: PendingCallId, vapi_call_id: Option<&str>) -> Result<Option<CallContext>, ApiError> {
    let Some(vapi_call_id) = vapi_call_id else { return Ok(None) };
    db.call(&ReadCallContext { pending_call_id: id, vapi_call_id: vapi_call_id.to_owned() }).await
}

/// The call's context as the assistant's variables: one database round trip.
async fn assistant_request(
    config: &Config,
    db: &Db,
    id: Option<PendingCallId>,
    vapi_call_id: Option<String>,
) -> Answer {
    let found = match id {
        Some(id) => context(db, id, vapi_call_id.as_deref()).await?.map(|ctx| (id, ctx)),
        None => None,
    };
    let Some((id, ctx)) = found else {
        return http::json(200, &vapi::assistant_refusal());
    };
    let mut variables = ctx.variable_values();
    variables.insert(PENDING_CALL_VARIABLE.into(), Value::String(id.to_string()));
    http::json(200, &vapi::assistant_reply(&config.vapi_assistant_id, variables, ctx.first_message()))
}

async fn tool_calls(
    db: &Db,
    own_call: Option<PendingCallId>,
    vapi_call_id: Option<String>,
    calls: Vec<ToolCall>,
) -> Answer {
    let mut results = Vec::with_capacity(calls.len());
    // Every fetch a message carries is for the call's own row: read its context once, at the first.
    let mut own_context: Option<Option<CallContext>> = None;
    for call in calls {
        let result = if call.name != FETCH_TOOL {
            json!({"error": format!("unknown tool {}", call.name)})
        } else {
            match call.pending_call_id(own_call) {
                Ok(id) => {
                    if own_context.is_none() {
                        own_context = Some(context(db, id, vapi_call_id.as_deref()).await?);
                    }
                    match own_context.as_ref().and_then(Option::as_ref) {
                        Some(ctx) => ctx.as_json(),
                        None => json!({"error": "this call has no live pending call"}),
                    }
                }
                Err(refusal) => json!({"error": refusal.to_string()}),
            }
        };
        results.push((call.id, call.name, result.to_string()));
    }
    http::json(200, &vapi::tool_results(results))
}

fn known(id: Option<PendingCallId>) -> Result<PendingCallId, ApiError> {
    id.ok_or_else(|| ApiError::bad_request("missing_pending_call_id", "the call carries no pendingcallid"))
}

/// A status or report applied: its answer as the database wrote it; null (no session) is a 404.
fn applied<T: Serialize>(result: Option<T>, id: PendingCallId) -> Answer {
    match result {
        Some(result) => http::json(200, &result),
        None => Err(ApiError::not_found(format!("no call session for pending call {id}"))),
    }
}
