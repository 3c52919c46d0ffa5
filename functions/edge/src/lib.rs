//! The outcall Worker: parse the request, ask `outcall-core`, call one SQL function, answer.
//!
//! Routes:
//! - `GET  /health`
//! - `POST /hooks/pending-calls`  the database webhook (a new `pending_calls` row)
//! - `POST /twilio/status`        Twilio status callbacks
//! - `POST /vapi/events`          VAPI server messages (assistant-request, tool-calls, reports)
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
