//! The SQL functions, called through PostgREST (`/rest/v1/rpc/<name>`) with the service role.
//! Every state transition is one call here; nothing reads or writes tables directly.

use outcall_core::config::Config;
use outcall_core::error::ApiError;
use postgrest::Postgrest;
use serde_json::Value;

pub struct Db(Postgrest);

impl Db {
    pub fn new(config: &Config) -> Self {
        let key = &config.supabase_service_role_key;
        Self(
            Postgrest::new(format!("{}/rest/v1", config.supabase_url))
                .insert_header("apikey", key)
                .insert_header("Authorization", format!("Bearer {key}")),
        )
    }

    /// Calls one SQL function and returns its JSON result (`Value::Null` for SQL null).
    pub async fn rpc(&self, function: &str, args: Value) -> Result<Value, ApiError> {
        let response = self
            .0
            .rpc(function, args.to_string())
            .execute()
            .await
            .map_err(|e| ApiError::upstream(format!("database unreachable calling {function}: {e}")))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|_| ApiError::upstream(format!("{function}: unreadable answer")))?;
        if !(200..300).contains(&status) {
            // PostgREST's error body names the constraint or function, never row data.
            return Err(ApiError::upstream(format!("{function} failed ({status}): {body}")));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|_| ApiError::upstream(format!("{function}: answer is not JSON")))
    }
}
