//! `GET /health`: the Worker is up, and whether its configuration is complete. What is wrong with it
//! (naming a variable) only for a caller with the API key: `outcall_core::config::health`.

use crate::http::{self, Answer};
use worker::{Env, Request};

pub fn handle(req: &Request, env: &Env) -> Answer {
    let problem = http::config(env).err();
    let api_key = env.secret("API_KEY").map(|s| s.to_string()).or_else(|_| env.var("API_KEY").map(|v| v.to_string()));
    let authorization = http::header(req, "Authorization");
    http::json(200, &outcall_core::config::health(problem.as_ref(), authorization.as_deref(), api_key.ok().as_deref()))
}
