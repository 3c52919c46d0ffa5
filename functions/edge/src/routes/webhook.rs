//! `POST /hooks/pending-calls`: Supabase's database webhook for a new `pending_calls` row.

use crate::db::Db;
use crate::dispatch::dispatch;
use crate::http::{self, Answer};
use outcall_core::error::ApiError;
use outcall_core::webhook::{DatabaseWebhook, WebhookAction};
use serde_json::json;
use worker::{Env, Request};

/// The header the database trigger sends the shared secret in.
pub const SECRET_HEADER: &str = "X-Webhook-Secret";

pub async fn handle(mut req: Request, env: &Env) -> Answer {
    let config = http::config(env)?;
    http::require_secret(&req, SECRET_HEADER, &config.webhook_secret)?;
    let body = http::body_text(&mut req).await?;
    let hook: DatabaseWebhook = serde_json::from_str(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("not a database webhook payload: {e}")))?;
    let id = match hook.action().map_err(|e| ApiError::bad_request("invalid_record", e.to_string()))? {
        WebhookAction::Ignore(reason) => return http::json(200, &json!({"ignored": reason})),
        WebhookAction::Dispatch(id) => id,
    };
    let result = dispatch(&config, &Db::new(&config), id).await?;
    http::json(200, &result)
}
