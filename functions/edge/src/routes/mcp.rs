//! `POST /mcp`: the MCP server (streamable HTTP, one JSON-RPC message per request, JSON answers, no sessions).
//! The API key is checked first (401 with `WWW-Authenticate: Bearer`, nothing read), then the transport's
//! headers; what a message asks is `outcall_core::mcp`'s decision, and a tool runs the batch API's own rpc
//! call and answer (`outcall_core::api`), so a tool and its REST route answer alike.

use super::batches::document;
use super::sms::sms_batch_answer;
use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use crate::sms::send_due;
use outcall_core::api;
use outcall_core::config::{self, Config};
use outcall_core::error::ApiError;
use outcall_core::mcp::{self, Dispatch, ToolCall};
use outcall_core::routes::Route;
use outcall_core::rpc::sms::{CancelSmsBatch, CreateSmsBatch, SmsBatchMessages, SmsBatchStatus};
use outcall_core::rpc::{
    BatchStatus, BatchTranscripts, CancelBatch, CreateBatch, ListBatches, PauseBatch, ResumeBatch,
};
use outcall_core::sms::sending::BATCH_SEND_BUDGET_MS;
use serde_json::Value;
use std::rc::Rc;
use worker::{Context, Env, Response};

pub async fn handle(req: Incoming, env: &Env, ctx: &Context) -> Answer {
    let api_key = http::credential(env, |vars| config::api_key(vars))?;
    if let Err(refused) = api::authorize(req.header("Authorization").as_deref(), &api_key) {
        // The MCP spec's answer to a missing or wrong token on HTTP: 401 with a Bearer challenge.
        let response = http::json(401, &ApiError::unauthorized(refused.message).body())?;
        http::set_header(&response, "WWW-Authenticate", "Bearer")?;
        return Ok(response);
    }
    mcp::check_headers(
        req.header("Origin").as_deref(),
        req.header("MCP-Protocol-Version").as_deref(),
        mcp::origin_of(req.url()),
    )?;
    let config = http::config(env)?;
    let body = http::body(&req, Route::Mcp, config.batch_max_targets).await?;
    match mcp::dispatch(&body, config.batch_max_targets) {
        Dispatch::Accepted => Response::empty()
            .map(|r| r.with_status(202))
            .map_err(|_| ApiError::new(500, "internal_error", "the answer could not be built")),
        Dispatch::Answer(message) => http::json(200, &message),
        Dispatch::Call { id, call } => {
            let result = match run(call, config, ctx).await {
                Ok(answer) => mcp::tool_result(&answer),
                Err(error) => mcp::tool_error(&error),
            };
            http::json(200, &mcp::result_response(&id, result))
        }
    }
}

/// A tool's answer: the REST route's body, or its error.
async fn run(call: ToolCall, config: Rc<Config>, ctx: &Context) -> Result<Value, ApiError> {
    let db = Db::new(&config);
    let (answer, batch) = match call {
        ToolCall::Trigger { request } => {
            let created = db.call(&CreateBatch { request }).await?;
            return api::create_answer(&created, &config.public_base_url).map(|accepted| accepted.body);
        }
        ToolCall::Status { batch_id, page } => {
            (db.call(&BatchStatus { batch_id, limit: page.limit, offset: page.offset }).await?, Some(batch_id))
        }
        ToolCall::Transcripts { batch_id, page } => {
            (db.call(&BatchTranscripts { batch_id, limit: page.limit, offset: page.offset }).await?, Some(batch_id))
        }
        ToolCall::List { page } => (db.call(&ListBatches { limit: page.limit, offset: page.offset }).await?, None),
        ToolCall::Cancel { batch_id } => (db.call(&CancelBatch { batch_id }).await?, Some(batch_id)),
        ToolCall::Pause { batch_id } => (db.call(&PauseBatch { batch_id }).await?, Some(batch_id)),
        ToolCall::Resume { batch_id } => (db.call(&ResumeBatch { batch_id }).await?, Some(batch_id)),
        ToolCall::TriggerSms { request } => {
            let created = db.call(&CreateSmsBatch { request }).await?;
            let accepted = api::sms_create_answer(&created, &config.public_base_url)?;
            // As the REST route: start sending once the answer is out.
            ctx.wait_until(async move {
                send_due(&config, &db, BATCH_SEND_BUDGET_MS).await;
            });
            return Ok(accepted.body);
        }
        ToolCall::SmsStatus { batch_id } => {
            return sms_batch_answer(db.call(&SmsBatchStatus { batch_id }).await?, batch_id)
        }
        ToolCall::SmsMessages { batch_id, page } => {
            let read = SmsBatchMessages { batch_id, limit: page.limit, offset: page.offset };
            return sms_batch_answer(db.call(&read).await?, batch_id);
        }
        ToolCall::CancelSms { batch_id } => {
            return sms_batch_answer(db.call(&CancelSmsBatch { batch_id }).await?, batch_id)
        }
    };
    api::batch_answer(document(answer), batch)
}
