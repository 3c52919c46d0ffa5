//! `GET /health`: the Worker is up, and whether its configuration is complete. What is wrong with it
//! (naming a variable) only for a caller with the API key: `outcall_core::config::health`.

use crate::http::{self, Answer, Incoming};
use outcall_core::config;
use worker::Env;

pub fn handle(req: &Incoming, env: &Env) -> Answer {
    let problem = http::config(env).err();
    let api_key = http::credential(env, |vars| config::api_key(vars)).ok();
    let authorization = req.header("Authorization");
    http::json(200, &config::health(problem.as_ref(), authorization.as_deref(), api_key.as_deref()))
}
