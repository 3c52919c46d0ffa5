//! `GET /health`: the Worker is up, and whether its configuration is complete.

use crate::http::{self, Answer};
use serde_json::json;
use worker::Env;

pub fn handle(env: &Env) -> Answer {
    let body = match http::config(env) {
        Ok(_) => json!({"ok": true, "configured": true}),
        Err(e) => json!({"ok": true, "configured": false, "error": e.body()["error"]}),
    };
    http::json(200, &body)
}
