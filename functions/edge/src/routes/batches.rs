//! `/api/v1`: the batch API. Each route is one SQL function call (the event stream: one per poll); the
//! batch endpoint writes rows and answers, it never dials: the rows' webhook and the ordinary claims do.

use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use crate::time::{now_ms, sleep};
use outcall_core::api::{self, Page, ProgressFeed, Route};
use outcall_core::batch;
use outcall_core::config::{self, Config};
use outcall_core::error::ApiError;
use outcall_core::ids::BatchId;
use outcall_core::rpc::{
    BatchDocument, BatchProgressOf, BatchStatus, BatchTranscripts, CancelBatch, CreateBatch, ListBatches, PauseBatch,
    ResumeBatch, RetryFailedBatch, Rpc,
};
use serde_json::Value;
use std::time::Duration;
use worker::{console_log, Context, Env, Response};

pub async fn handle(route: Route, req: Incoming, env: &Env, ctx: &Context) -> Answer {
    if route == Route::OpenApi {
        return openapi_document(); // public: it describes the API, it holds no data
    }
    let api_key = http::credential(env, |vars| config::api_key(vars))?;
    api::authorize(req.header("Authorization").as_deref(), &api_key)?;
    let config = http::config(env)?;
    let db = Db::new(&config);
    let query = req.query().map(str::to_owned);
    let page = |default_limit| Page::from_query(query.as_deref(), default_limit);
    let (answer, batch) = match route {
        Route::OpenApi => return openapi_document(),
        Route::Sms(route) => return super::sms::handle(route, req, config, db, ctx).await,
        Route::CreateBatch => return create(req, &config, &db).await,
        Route::Events(id) => return events(db, id, api::last_event_id(req.header("Last-Event-ID").as_deref())).await,
        Route::ListBatches => {
            let page = page(50)?;
            (db.call(&ListBatches { limit: page.limit, offset: page.offset }).await?, None)
        }
        Route::GetBatch(id) => {
            let page = page(100)?;
            (db.call(&BatchStatus { batch_id: id, limit: page.limit, offset: page.offset }).await?, Some(id))
        }
        Route::Transcripts(id) => {
            let page = page(100)?;
            (db.call(&BatchTranscripts { batch_id: id, limit: page.limit, offset: page.offset }).await?, Some(id))
        }
        Route::Cancel(id) => (db.call(&CancelBatch { batch_id: id }).await?, Some(id)),
        Route::RetryFailed(id) => (db.call(&RetryFailedBatch { batch_id: id }).await?, Some(id)),
        Route::Pause(id) => (db.call(&PauseBatch { batch_id: id }).await?, Some(id)),
        Route::Resume(id) => (db.call(&ResumeBatch { batch_id: id }).await?, Some(id)),
    };
    http::json(200, &api::batch_answer(document(answer), batch)?)
}

/// A batch document as `api` reads it: SQL null (no such batch) is JSON null.
pub(crate) fn document(answer: Option<BatchDocument>) -> Value {
    answer.map_or(Value::Null, Value::Object)
}

fn openapi_document() -> Answer {
    Response::ok(api::OPENAPI_DOCUMENT)
        .and_then(|r| {
            r.headers().set("Content-Type", "application/json")?;
            Ok(r)
        })
        .map_err(|_| ApiError::new(500, "internal_error", "the OpenAPI document could not be served"))
}

/// `POST /api/v1/batches`: everything validated here and in `create_batch`, then written in that one call.
async fn create(req: Incoming, config: &Config, db: &Db) -> Answer {
    let key = api::idempotency_key(req.header("Idempotency-Key").as_deref())?;
    let body = http::body(&req, outcall_core::routes::Route::Api(Route::CreateBatch), config.batch_max_targets).await?;
    let new_batch = batch::parse_request(&body, config.batch_max_targets)?;
    let request = new_batch.rpc_request(key.as_deref(), &batch::request_hash(&body));
    drop(new_batch);
    let answer = db.call(&CreateBatch { request }).await?;
    let accepted = api::create_answer(&answer, &config.public_base_url)?;
    console_log!(
        "batch {}: {} rows accepted{}",
        accepted.body["batchId"].as_str().unwrap_or("?"),
        accepted.body["accepted"],
        if accepted.replayed { " (replayed)" } else { "" }
    );
    accepted_response(&accepted)
}

/// 202 for a created (or replayed) batch: its `Location`, and `Idempotent-Replayed` on a replay.
pub(crate) fn accepted_response(accepted: &api::Accepted) -> Answer {
    let response = http::json(202, &accepted.body)?;
    http::set_header(&response, "Location", &accepted.location)?;
    if accepted.replayed {
        http::set_header(&response, "Idempotent-Replayed", "true")?;
    }
    Ok(response)
}

/// `GET /api/v1/batches/:id/events`: Server-Sent Events of the batch's progress, read every
/// `EVENTS_POLL_MS`; what to send is `api::ProgressFeed`'s decision.
async fn events(db: Db, id: BatchId, last_event_id: u64) -> Answer {
    let read = BatchProgressOf { batch_id: id };
    let Some(first) = db.call(&read).await? else {
        return Err(ApiError::not_found(format!("no batch {id}")));
    };
    follow(db, read, first, ProgressFeed::new(now_ms(), last_event_id))
}

/// A progress stream: `first` (the read that decided between 404 and a stream), then `read` every
/// `EVENTS_POLL_MS`, each sent as `feed` decides. Serves the call batches' stream and the SMS batches'.
pub(crate) fn follow<R>(db: Db, read: R, first: BatchDocument, feed: ProgressFeed) -> Answer
where
    R: Rpc<Answer = Option<BatchDocument>> + 'static,
{
    let follow = Follow { db, read, first: Some(Value::Object(first)), feed };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let chunk = follow.next_chunk().await?;
        Some((Ok::<Vec<u8>, worker::Error>(chunk.into_bytes()), follow))
    });
    let response = Response::from_stream(stream)
        .map_err(|_| ApiError::new(500, "internal_error", "the event stream could not be opened"))?;
    for (name, value) in [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")] {
        http::set_header(&response, name, value)?;
    }
    Ok(response)
}

struct Follow<R> {
    db: Db,
    read: R,
    first: Option<Value>,
    feed: ProgressFeed,
}

impl<R: Rpc<Answer = Option<BatchDocument>>> Follow<R> {
    /// The next piece of the stream, or `None` once the last event was sent.
    async fn next_chunk(&mut self) -> Option<String> {
        while !self.feed.is_done() {
            let read = match self.first.take() {
                Some(first) => Ok(first),
                None => {
                    sleep(Duration::from_millis(api::EVENTS_POLL_MS)).await;
                    self.db.call(&self.read).await.map(document)
                }
            };
            if let Some(chunk) = self.feed.on_read(read, now_ms()) {
                return Some(chunk);
            }
        }
        None
    }
}
