//! The outcall Worker: parse the request, ask `outcall-core`, call one SQL function, answer.
//!
//! Routes:
//! - `GET  /health`
//! - `POST /hooks/pending-calls`  the database webhook (a new `pending_calls` row)
//! - `POST /twilio/status`        Twilio status callbacks
//! - `POST /vapi/events`          VAPI server messages (assistant-request, tool-calls, reports)
//! - `/api/v1/...`                the batch API (`routes/batches.rs`, described by `/api/v1/openapi.json`)
//!
//! and a cron trigger, every minute: the sweep (`sweep.rs`).

mod db;
mod dial;
mod dispatch;
mod http;
mod routes;
mod sweep;
mod time;
mod twilio;

use outcall_core::error::ApiError;
use worker::{console_log, event, Context, Env, Method, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    if let Some(route) = outcall_core::api::route(req.method().as_ref(), &req.path()) {
        let path = req.path();
        let answer = match route {
            Ok(route) => routes::batches::handle(route, req, &env).await,
            Err(error) => Err(error),
        };
        return answer.or_else(|error| {
            let response = http::error(&error)?;
            if let (405, Some(allow)) = (error.status, outcall_core::api::allow_header(&path)) {
                response.headers().set("Allow", &allow)?;
            }
            Ok(response)
        });
    }
    let answer = match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => routes::health::handle(&env),
        (Method::Post, "/hooks/pending-calls") => routes::webhook::handle(req, &env, &ctx).await,
        (Method::Post, "/twilio/status") => routes::twilio_status::handle(req, &env, &ctx).await,
        (Method::Post, "/vapi/events") => routes::vapi::handle(req, &env).await,
        (method, path @ ("/health" | "/hooks/pending-calls" | "/twilio/status" | "/vapi/events")) => {
            Err(ApiError::new(405, "method_not_allowed", format!("{path} does not take {method}")))
        }
        (_, path) => Err(ApiError::not_found(format!("no route for {path}"))),
    };
    answer.or_else(|error| http::error(&error))
}

/// The cron trigger (every minute, wrangler.toml): the sweep.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let result = match http::config(&env) {
        Ok(config) => sweep::sweep(&config, &db::Db::new(&config)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        console_log!("sweep failed: {}", e.message);
    }
}
