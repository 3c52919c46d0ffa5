//! The outcall Worker: parse the request, ask `outcall-core`, call one SQL function, answer.
//!
//! Every route is in one table, `outcall_core::routes` (404 and 405 with `Allow` decided there), and
//! this file is its one dispatch; the cron trigger, every minute, runs the sweep (`sweep.rs`). The
//! listener of a call's audio is a Durable Object (`listener.rs`).

mod db;
mod dial;
mod dispatch;
mod http;
mod judge;
mod listener;
mod routes;
mod sms;
mod sweep;
mod time;
mod twilio;
mod user_auth;

use outcall_core::routes::{route, Refused, Route};
use worker::{console_log, event, web_sys, Context, Env, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<Response> {
    let req = http::Incoming::new(req);
    let answer = match route(&req.method(), req.path()) {
        Ok(Route::Health) => routes::health::handle(&req, &env),
        Ok(Route::PendingCallWebhook) => routes::webhook::handle(req, &env, &ctx).await,
        Ok(Route::TwilioStatus) => routes::twilio_status::handle(req, &env, &ctx).await,
        Ok(Route::TwilioSmsStatus) => routes::twilio_sms::status(req, &env).await,
        Ok(Route::TwilioSmsInbound) => routes::twilio_sms::inbound(req, &env).await,
        Ok(Route::VapiEvents) => routes::vapi::handle(req, &env).await,
        Ok(Route::ListenerStream) => routes::stream::handle(req, &env).await,
        Ok(Route::Api(route)) => routes::batches::handle(route, req, &env, &ctx).await,
        Ok(Route::Mcp) => routes::mcp::handle(req, &env, &ctx).await,
        Ok(Route::Dashboard) => routes::dashboard::handle(&req, &env).await,
        Ok(Route::Operator(route)) => routes::operator::handle(route, req, &env).await,
        Err(Refused { error, allow }) => {
            let response = http::error(&error)?;
            if let Some(allow) = allow {
                response.headers().set("Allow", &allow)?;
            }
            return Ok(response);
        }
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
