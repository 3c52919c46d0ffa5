//! The outcall Worker: parse the request, ask `outcall-core`, call one SQL function, answer.
//!
//! Routes:
//! - `GET  /health`
//! - `POST /hooks/pending-calls`  the database webhook (a new `pending_calls` row)
//! - `POST /twilio/status`        Twilio status callbacks
//! - `POST /vapi/events`          VAPI server messages (assistant-request, tool-calls, reports)

mod db;
mod dispatch;
mod http;
mod routes;
mod twilio;

use outcall_core::error::ApiError;
use worker::{event, Context, Env, Method, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let answer = match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => routes::health::handle(&env),
        (Method::Post, "/hooks/pending-calls") => routes::webhook::handle(req, &env).await,
        (Method::Post, "/twilio/status") => routes::twilio_status::handle(req, &env).await,
        (Method::Post, "/vapi/events") => routes::vapi::handle(req, &env).await,
        (method, path @ ("/health" | "/hooks/pending-calls" | "/twilio/status" | "/vapi/events")) => {
            Err(ApiError::new(405, "method_not_allowed", format!("{path} does not take {method}")))
        }
        (_, path) => Err(ApiError::not_found(format!("no route for {path}"))),
    };
    answer.or_else(|error| http::error(&error))
}
