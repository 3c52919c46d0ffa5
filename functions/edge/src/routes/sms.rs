//! `/api/v1/sms-batches`: batch SMS. Creating a batch writes its messages (rendered, counted) in one SQL
//! call, answers 202, then starts sending them (`crate::sms`) after the answer; the minute sweep goes on
//! from wherever that stops. The reads are one SQL call each; the event stream one per poll.

use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use crate::routes::batches::{accepted_response, follow};
use crate::sms::send_due;
use crate::time::now_ms;
use outcall_core::api::{self, Page, ProgressFeed, Route, SmsRoute};
use outcall_core::batch::request_hash;
use outcall_core::config::Config;
use outcall_core::error::ApiError;
use outcall_core::ids::SmsBatchId;
use outcall_core::rpc::sms::{CancelSmsBatch, CreateSmsBatch, SmsBatchMessages, SmsBatchStatus};
use outcall_core::rpc::BatchDocument;
use outcall_core::sms::request::parse_request;
use outcall_core::sms::sending::{settled, BATCH_SEND_BUDGET_MS};
use serde_json::Value;
use std::rc::Rc;
use worker::{console_log, Context};

/// An SMS batch route, for a caller `batches::handle` has already authorized with the API key.
pub async fn handle(route: SmsRoute, req: Incoming, config: Rc<Config>, db: Db, ctx: &Context) -> Answer {
    let (answer, batch) = match route {
        SmsRoute::Create => return create(req, config, db, ctx).await,
        SmsRoute::Events(id) => {
            return events(db, id, api::last_event_id(req.header("Last-Event-ID").as_deref())).await
        }
        SmsRoute::Get(id) => (db.call(&SmsBatchStatus { batch_id: id }).await?, id),
        SmsRoute::Messages(id) => {
            let page = Page::from_query(req.query(), 100)?;
            (db.call(&SmsBatchMessages { batch_id: id, limit: page.limit, offset: page.offset }).await?, id)
        }
        SmsRoute::Cancel(id) => (db.call(&CancelSmsBatch { batch_id: id }).await?, id),
    };
    http::json(200, &sms_batch_answer(answer, batch)?)
}

/// A read or change of one SMS batch: `null` (no such batch) → 404, anything else in camelCase.
pub(crate) fn sms_batch_answer(answer: Option<BatchDocument>, id: SmsBatchId) -> Result<Value, ApiError> {
    answer.map(|a| api::api_json(Value::Object(a))).ok_or_else(|| ApiError::not_found(format!("no SMS batch {id}")))
}

/// `POST /api/v1/sms-batches`: validated and rendered here, written by `create_sms_batch` in one call.
async fn create(req: Incoming, config: Rc<Config>, db: Db, ctx: &Context) -> Answer {
    let key = api::idempotency_key(req.header("Idempotency-Key").as_deref())?;
    let route = outcall_core::routes::Route::Api(Route::Sms(SmsRoute::Create));
    let body = http::body(&req, route, config.batch_max_targets).await?;
    let new_batch = parse_request(&body, config.batch_max_targets)?;
    let request = new_batch.rpc_request(key.as_deref(), &request_hash(&body));
    drop(new_batch);
    let answer = db.call(&CreateSmsBatch { request }).await?;
    let accepted = api::sms_create_answer(&answer, &config.public_base_url)?;
    console_log!(
        "sms batch {}: {} messages accepted{}",
        accepted.body["smsBatchId"].as_str().unwrap_or("?"),
        accepted.body["accepted"],
        if accepted.replayed { " (replayed)" } else { "" }
    );
    let response = accepted_response(&accepted)?;
    ctx.wait_until(async move {
        send_due(&config, &db, BATCH_SEND_BUDGET_MS).await;
    });
    Ok(response)
}

/// `GET /api/v1/sms-batches/:id/events`: the batch's counts as Server-Sent Events, until it is settled
/// (`outcall_core::sms::sending::settled`).
async fn events(db: Db, id: SmsBatchId, last_event_id: u64) -> Answer {
    let read = SmsBatchStatus { batch_id: id };
    let Some(first) = db.call(&read).await? else {
        return Err(ApiError::not_found(format!("no SMS batch {id}")));
    };
    follow(db, read, first, ProgressFeed::until(settled, now_ms(), last_event_id))
}
