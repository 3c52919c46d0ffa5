//! `/api/v1`: the batch API. Each route is one SQL function call (the event stream: one per poll); the
//! batch endpoint writes rows and answers, it never dials: the rows' webhook and the ordinary claims do.

use crate::db::Db;
use crate::http::{self, Answer};
use crate::time::{now_ms, sleep};
use outcall_core::api::{self, Page, Route};
use outcall_core::batch::{self, BatchRequestError};
use outcall_core::config::Config;
use outcall_core::error::ApiError;
use outcall_core::ids::BatchId;
use serde_json::{json, Value};
use std::time::Duration;
use worker::{console_log, Env, Request, Response};

pub async fn handle(route: Route, req: Request, env: &Env) -> Answer {
    if route == Route::OpenApi {
        return openapi_document(); // public: it describes the API, it holds no data
    }
    let config = http::config(env)?;
    api::authorize(http::header(&req, "Authorization").as_deref(), &config.api_key)?;
    let db = Db::new(&config);
    let query = req.url().ok().and_then(|u| u.query().map(str::to_owned));
    let page = |default_limit| Page::from_query(query.as_deref(), default_limit);
    match route {
        Route::OpenApi => openapi_document(),
        Route::CreateBatch => create(req, &config, &db).await,
        Route::ListBatches => {
            let page = page(50)?;
            found(db.rpc("list_batches", json!({"p_limit": page.limit, "p_offset": page.offset})).await?, None)
        }
        Route::GetBatch(id) => {
            let page = page(100)?;
            let args = json!({"p_batch_id": id, "p_limit": page.limit, "p_offset": page.offset});
            found(db.rpc("batch_status", args).await?, Some(id))
        }
        Route::Transcripts(id) => {
            let page = page(100)?;
            let args = json!({"p_batch_id": id, "p_limit": page.limit, "p_offset": page.offset});
            found(db.rpc("batch_transcripts", args).await?, Some(id))
        }
        Route::Cancel(id) => found(db.rpc("cancel_batch", json!({"p_batch_id": id})).await?, Some(id)),
        Route::RetryFailed(id) => {
            let answer = db.rpc("retry_failed_batch", json!({"p_batch_id": id})).await?;
            if answer.get("error").and_then(Value::as_str) == Some("batch_cancelled") {
                return Err(ApiError::new(409, "batch_cancelled", format!("batch {id} was cancelled")));
            }
            found(answer, Some(id))
        }
        Route::Events(id) => events(db, id).await,
    }
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
async fn create(mut req: Request, config: &Config, db: &Db) -> Answer {
    let key = match http::header(&req, "Idempotency-Key") {
        Some(raw) => Some(
            batch::parse_idempotency_key(&raw)
                .map_err(|m| ApiError::bad_request("invalid_idempotency_key", m))?
                .to_owned(),
        ),
        None => None,
    };
    let body = http::body_text(&mut req).await?;
    let new_batch = batch::parse_request(&body, config.batch_max_targets).map_err(|e| match e {
        BatchRequestError::Malformed(message) => ApiError::bad_request("invalid_json", message),
        BatchRequestError::Invalid(items) => api::validation_error(items),
    })?;
    let request = new_batch.rpc_request(key.as_deref(), &batch::request_hash(&body));
    drop(new_batch);
    let answer = db.rpc("create_batch", json!({ "p_request": request })).await?;
    let accepted = api::create_answer(&answer, &config.public_base_url)?;
    console_log!(
        "batch {}: {} rows accepted{}; wasm memory {} KiB",
        accepted.body["batchId"].as_str().unwrap_or("?"),
        accepted.body["accepted"],
        if accepted.replayed { " (replayed)" } else { "" },
        wasm_memory_bytes() / 1024
    );
    let response = http::json(202, &accepted.body)?;
    let headers = response.headers();
    let set = |name: &str, value: &str| {
        headers.set(name, value).map_err(|_| ApiError::new(500, "internal_error", "bad header"))
    };
    set("Location", &accepted.location)?;
    if accepted.replayed {
        set("Idempotent-Replayed", "true")?;
    }
    Ok(response)
}

/// The module's linear memory, which only grows: after a request, the peak so far.
fn wasm_memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    return 0;
}

/// A batch function's answer: null means no such batch.
fn found(answer: Value, id: Option<BatchId>) -> Answer {
    if answer.is_null() {
        let id = id.map_or_else(String::new, |id| format!(" {id}"));
        return Err(ApiError::not_found(format!("no batch{id}")));
    }
    http::json(200, &api::api_json(answer))
}

/// `GET /api/v1/batches/:id/events`: the batch's progress as Server-Sent Events: one `progress` event
/// whenever it changed (read every second), a comment now and then so proxies keep the stream open,
/// and a last `end` event, with the final counts, once every row is terminal.
async fn events(db: Db, id: BatchId) -> Answer {
    let first = db.rpc("batch_progress_of", json!({"p_batch_id": id})).await?;
    if first.is_null() {
        return Err(ApiError::not_found(format!("no batch {id}")));
    }
    let follow = Follow { db, id, pending: Some(first), last: None, sent: 0, quiet_since_ms: now_ms(), done: false };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let chunk = follow.next_chunk().await?;
        Some((Ok::<Vec<u8>, worker::Error>(chunk.into_bytes()), follow))
    });
    let response = Response::from_stream(stream)
        .map_err(|_| ApiError::new(500, "internal_error", "the event stream could not be opened"))?;
    for (name, value) in [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")] {
        response.headers().set(name, value).map_err(|_| ApiError::new(500, "internal_error", "bad header"))?;
    }
    Ok(response)
}

struct Follow {
    db: Db,
    id: BatchId,
    /// Progress read but not yet looked at (the first read, made before the stream opened).
    pending: Option<Value>,
    last: Option<Value>,
    sent: u64,
    quiet_since_ms: u64,
    done: bool,
}

impl Follow {
    /// The next piece of the stream, or `None` when it has ended.
    async fn next_chunk(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        loop {
            let progress = match self.pending.take() {
                Some(progress) => Ok(progress),
                None => {
                    sleep(Duration::from_millis(api::EVENTS_POLL_MS)).await;
                    self.db.rpc("batch_progress_of", json!({"p_batch_id": self.id})).await
                }
            };
            let progress = match progress {
                Ok(progress) if !progress.is_null() => progress,
                Ok(_) => return Some(self.finish("error", &ApiError::not_found("the batch is gone").body())),
                Err(e) => return Some(self.finish("error", &e.body())),
            };
            if api::batch_ended(&progress) {
                return Some(self.finish("end", &api::api_json(progress)));
            }
            if self.last.as_ref() != Some(&progress) {
                self.sent += 1;
                self.quiet_since_ms = now_ms();
                let chunk = api::sse_event("progress", self.sent, &api::api_json(progress.clone()));
                self.last = Some(progress);
                return Some(chunk);
            }
            if now_ms().saturating_sub(self.quiet_since_ms) >= api::EVENTS_KEEPALIVE_MS {
                self.quiet_since_ms = now_ms();
                return Some(": still following\n\n".to_owned());
            }
        }
    }

    fn finish(&mut self, event: &str, data: &Value) -> String {
        self.done = true;
        self.sent += 1;
        api::sse_event(event, self.sent, data)
    }
}
