//! `POST /vapi/events`: VAPI's server messages. Replies keep VAPI's shapes: an unknown call gets
//! `{"error": ...}` for an assistant-request and an error result for a tool.

use crate::db::Db;
use crate::http::{self, Answer};
use crate::time::now_ms;
use outcall_core::config::Config;
use outcall_core::context::CallContext;
use outcall_core::error::ApiError;
use outcall_core::ids::PendingCallId;
use outcall_core::vapi::{self, parse_message, CallReport, ServerMessage, ToolCall, FETCH_TOOL, PENDING_CALL_VARIABLE};
use serde_json::{json, Value};
use worker::{Env, Request};

pub async fn handle(mut req: Request, env: &Env) -> Answer {
    let config = http::config(env)?;
    let body = http::body_text(&mut req).await?;
    config.vapi_credential.verify(|name| http::header(&req, name), &body, now_ms() as i64)?;
    let message = parse_message(&body).map_err(|e| ApiError::bad_request("invalid_message", e.to_string()))?;
    let db = Db::new(&config);
    match message {
        ServerMessage::AssistantRequest { pending_call_id } => assistant_request(&config, &db, pending_call_id).await,
        ServerMessage::ToolCalls { pending_call_id, calls } => tool_calls(&db, pending_call_id, calls).await,
        ServerMessage::StatusUpdate { pending_call_id, status, vapi_call_id } => {
            let id = known(pending_call_id)?;
            let args = json!({"p_pending_call_id": id, "p_status": status, "p_vapi_call_id": vapi_call_id});
            applied(db.rpc("apply_vapi_status", args).await?, id)
        }
        ServerMessage::EndOfCallReport { pending_call_id, report } => {
            let id = known(pending_call_id)?;
            applied(db.rpc("apply_call_report", report_args(id, &report)).await?, id)
        }
        ServerMessage::Other(kind) => http::json(200, &json!({"ignored": kind})),
    }
}

async fn context(db: &Db, id: PendingCallId) -> Result<Option<CallContext>, ApiError> {
    Ok(CallContext::from_rpc(db.rpc("call_context", json!({"p_pending_call_id": id})).await?))
}

/// The call's context as the assistant's variables: one read-only database round trip.
async fn assistant_request(config: &Config, db: &Db, id: Option<PendingCallId>) -> Answer {
    let found = match id {
        Some(id) => context(db, id).await?.map(|ctx| (id, ctx)),
        None => None,
    };
    let Some((id, ctx)) = found else {
        return http::json(200, &vapi::assistant_refusal());
    };
    let mut variables = ctx.variable_values();
    variables.insert(PENDING_CALL_VARIABLE.into(), Value::String(id.to_string()));
    http::json(200, &vapi::assistant_reply(&config.vapi_assistant_id, variables, ctx.first_message()))
}

async fn tool_calls(db: &Db, call_id: Option<PendingCallId>, calls: Vec<ToolCall>) -> Answer {
    let mut results = Vec::with_capacity(calls.len());
    for call in calls {
        let result = if call.name != FETCH_TOOL {
            json!({"error": format!("unknown tool {}", call.name)})
        } else {
            match call.pending_call_id(call_id) {
                Some(id) => match context(db, id).await? {
                    Some(ctx) => ctx.as_json(),
                    None => json!({"error": "no pending call has this id"}),
                },
                None => json!({"error": "no pendingcallid was given"}),
            }
        };
        results.push((call.id, call.name, result.to_string()));
    }
    http::json(200, &vapi::tool_results(results))
}

fn known(id: Option<PendingCallId>) -> Result<PendingCallId, ApiError> {
    id.ok_or_else(|| ApiError::bad_request("missing_pending_call_id", "the call carries no pendingcallid"))
}

fn applied(result: Value, id: PendingCallId) -> Answer {
    if result.is_null() {
        return Err(ApiError::not_found(format!("no call session for pending call {id}")));
    }
    http::json(200, &result)
}

fn report_args(id: PendingCallId, report: &CallReport) -> Value {
    json!({
        "p_pending_call_id": id,
        "p_vapi_call_id": report.vapi_call_id,
        "p_outcome": report.outcome.as_str(),
        "p_ended_reason": report.ended_reason,
        "p_summary": report.summary,
        "p_success_evaluation": report.success_evaluation,
        "p_structured_data": report.structured_data,
        "p_transcript": report.transcript,
        "p_duration_seconds": report.duration_seconds,
        "p_cost": report.cost,
    })
}
