//! `POST /hooks/pending-calls`: Supabase's database webhook for a new `pending_calls` row.

use crate::db::Db;
use crate::dispatch::{dispatch, drain};
use crate::http::{self, Answer, Incoming};
use outcall_core::config;
use outcall_core::dispatch::EVENT_DRAIN_BUDGET_MS;
use outcall_core::error::ApiError;
use outcall_core::routes::Route;
use outcall_core::webhook::{DatabaseWebhook, WebhookAction};
use serde_json::json;
use worker::{Context, Env};

/// The header the database trigger sends the shared secret in.
pub const SECRET_HEADER: &str = "X-Webhook-Secret";

pub async fn handle(req: Incoming, env: &Env, ctx: &Context) -> Answer {
    let secret = http::credential(env, |vars| config::webhook_secret(vars))?;
    http::require_secret(&req, SECRET_HEADER, &secret)?;
    let config = http::config(env)?;
    let body = http::body(&req, Route::PendingCallWebhook, config.batch_max_targets).await?;
    let hook: DatabaseWebhook = serde_json::from_str(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("not a database webhook payload: {e}")))?;
    let id = match hook.action().map_err(|e| ApiError::bad_request("invalid_record", e.to_string()))? {
        WebhookAction::Ignore(reason) => return http::json(200, &json!({"ignored": reason})),
        WebhookAction::Dispatch(id) => id,
    };
    // The dial runs under waitUntil: pg_net gives up on us after two seconds, and a dial that is
    // backing off must not be cancelled with the request. The answer waits for it all the same.
    let (answer, result) = futures_channel::oneshot::channel();
    ctx.wait_until(async move {
        let db = Db::new(&config);
        let dispatched = dispatch(&config, &db, id).await;
        let more_due = matches!(&dispatched, Ok(d) if d.more_due);
        let _ = answer.send(dispatched);
        if more_due {
            drain(&config, &db, EVENT_DRAIN_BUDGET_MS).await;
        }
    });
    let dispatched = result.await.map_err(|_| ApiError::upstream("the dispatch was interrupted"))??;
    http::json(200, &dispatched)
}
