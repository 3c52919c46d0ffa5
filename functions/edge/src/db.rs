//! The SQL functions, called through PostgREST (`/rest/v1/rpc/<name>`) with the service role (the operators'
//! actions: with the operator's own access token, [`Db::as_user`]).
//! Every state transition is one call here; nothing reads or writes tables directly. Which functions,
//! with which arguments and answers, is `outcall_core::rpc` (one type per function).

use crate::http::outgoing;
use outcall_core::config::Config;
use outcall_core::error::ApiError;
use outcall_core::operator;
use outcall_core::rpc::Rpc;
use serde_json::Value;
use worker::{Fetch, Headers, Method, Request};

/// Where the SQL functions are (`{SUPABASE_URL}/rest/v1/rpc/`), the service role's key, and whose token the
/// calls carry (the service role's, or a signed-in user's).
pub struct Db {
    rpc_url: String,
    key: String,
    user_token: Option<String>,
}

impl Db {
    pub fn new(config: &Config) -> Self {
        Self::at(&config.supabase_url, &config.supabase_service_role_key)
    }

    pub fn at(supabase_url: &str, service_role_key: &str) -> Self {
        Self { rpc_url: format!("{supabase_url}/rest/v1/rpc/"), key: service_role_key.to_owned(), user_token: None }
    }

    /// The same database, called as the user whose access token this is (`Authorization: Bearer <token>`; the
    /// `apikey` stays the service role's, which the gateway wants): `auth.uid()` is theirs, their role decides,
    /// and a refusal is answered as the SQL function raised it (`operator::sql_refusal`: 403, 404, 400).
    pub fn as_user(&self, token: &str) -> Self {
        Self { rpc_url: self.rpc_url.clone(), key: self.key.clone(), user_token: Some(token.to_owned()) }
    }

    /// Calls the SQL function `R::NAME` with `request`'s arguments and reads its answer. An answer of
    /// another shape than `R::Answer` is an upstream error, like an unreachable database.
    pub async fn call<R: Rpc>(&self, request: &R) -> Result<R::Answer, ApiError> {
        let function = R::NAME;
        let args = serde_json::to_string(request)
            .map_err(|e| ApiError::upstream(format!("{function}: arguments not serialisable: {e}")))?;
        let answer = self.post(function, args).await?;
        serde_json::from_value(answer)
            .map_err(|e| ApiError::upstream(format!("{function} answered an unexpected shape: {e}")))
    }

    /// Calls one SQL function and returns its JSON result (`Value::Null` for SQL null): one `POST` of the
    /// arguments as JSON to PostgREST.
    async fn post(&self, function: &str, args: String) -> Result<Value, ApiError> {
        let unreachable =
            |e: worker::Error| ApiError::upstream(format!("database unreachable calling {function}: {e}"));
        let request = self.request(function, &args).map_err(unreachable)?;
        let mut response = Fetch::Request(request).send().await.map_err(unreachable)?;
        let status = response.status_code();
        let body = response.text().await.map_err(|_| ApiError::upstream(format!("{function}: unreadable answer")))?;
        if !(200..300).contains(&status) {
            if self.user_token.is_some() {
                return Err(operator::sql_refusal(function, status, &body));
            }
            return Err(ApiError::upstream(format!("{function} failed ({status}): {}", postgrest_error(&body))));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|_| ApiError::upstream(format!("{function}: answer is not JSON")))
    }

    fn request(&self, function: &str, args: &str) -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("apikey", &self.key)?;
        headers.set("Authorization", &format!("Bearer {}", self.user_token.as_deref().unwrap_or(&self.key)))?;
        headers.set("Accept", "application/json")?;
        headers.set("Content-Type", "application/json")?;
        outgoing(Method::Post, &format!("{}{function}", self.rpc_url), headers, Some(args))
    }
}

/// PostgREST's error code and message. Its `details` can quote the row (names, dates of birth), so
/// they never travel further.
fn postgrest_error(body: &str) -> String {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let field = |name: &str| parsed.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
    match (field("code"), field("message")) {
        (code, message) if !code.is_empty() || !message.is_empty() => format!("{code} {message}").trim().to_owned(),
        _ => "no error details".to_owned(),
    }
}
