//! pg_net's background worker, outside the database: take committed requests
//! from `net.http_request_queue`, send them, write `net._http_response`.
//! Rows of a rolled-back transaction are never visible here, which is the
//! property the webhook relies on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use crate::state::{json_or_text, AppState, Delivery};

const POLL_EVERY: Duration = Duration::from_millis(100);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const BATCH: i64 = 20;
/// pg_net's default when a request has no timeout.
const DEFAULT_TIMEOUT_MS: i32 = 2000;

const TAKE_BATCH: &str = "delete from net.http_request_queue
    where id in (select id from net.http_request_queue order by id limit $1 for update skip locked)
    returning id::bigint, method::text, url::text, coalesce(headers::text, '{}'), body,
              coalesce(timeout_milliseconds, 0)::int";

const STORE_RESPONSE: &str = "insert into net._http_response
    (id, status_code, content_type, headers, content, timed_out, error_msg)
    values ($1::bigint, $2::int, $3::text, $4::text::jsonb, $5::text, $6::bool, $7::text)";

struct Request {
    id: i64,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Vec<u8>,
    timeout_ms: i32,
}

struct Outcome {
    /// Never sent: the `drop_webhook` fault.
    dropped: bool,
    status: Option<u16>,
    content_type: Option<String>,
    headers: Map<String, Value>,
    body: Vec<u8>,
    timed_out: bool,
    error: Option<String>,
    elapsed_ms: u64,
}

/// Runs forever: reconnects after any connection failure, never panics.
pub async fn run(state: Arc<AppState>) {
    let mut failing = false;
    let mut missing_schema_logged = false;
    loop {
        let client = match tokio_postgres::connect(&state.config.database_url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        crate::log!(warn, "pgnet", "database connection closed: {}", crate::logging::error_chain(&e));
                    }
                });
                if failing {
                    crate::log!(info, "pgnet", "database reachable again");
                    failing = false;
                }
                client
            }
            Err(e) => {
                if !failing {
                    crate::log!(
                        warn,
                        "pgnet",
                        "cannot connect to DATABASE_URL, retrying every second: {}",
                        crate::logging::error_chain(&e)
                    );
                }
                failing = true;
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
        };
        while !client.is_closed() {
            match poll_once(&state, &client).await {
                Ok(_) => missing_schema_logged = false,
                Err(e) if is_missing_schema(&e) => {
                    if !missing_schema_logged {
                        crate::log!(info, "pgnet", "net.http_request_queue does not exist yet; still polling");
                        missing_schema_logged = true;
                    }
                }
                Err(e) => crate::log!(warn, "pgnet", "poll failed: {}", crate::logging::error_chain(&e)),
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        crate::log!(warn, "pgnet", "database connection lost; reconnecting");
    }
}

fn is_missing_schema(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME)
}

/// Takes one batch, sends it concurrently and stores the responses.
async fn poll_once(state: &Arc<AppState>, client: &Client) -> Result<usize, tokio_postgres::Error> {
    let rows = client.query(TAKE_BATCH, &[&BATCH]).await?;
    let count = rows.len();
    let mut sending = JoinSet::new();
    for row in rows {
        let request = decode(&row);
        let state = state.clone();
        // Drawn here, in id order, so a seed drops the same requests of the same queue.
        let drop = state.faults.drop_webhook();
        sending.spawn(async move {
            let outcome = if drop { Outcome::dropped(&request) } else { send(&state, &request).await };
            (request, outcome)
        });
    }
    while let Some(joined) = sending.join_next().await {
        let Ok((request, outcome)) = joined else {
            continue;
        };
        record(state, &request, &outcome);
        let content = String::from_utf8_lossy(&outcome.body).into_owned();
        let status = outcome.status.map(i32::from);
        let headers = Value::Object(outcome.headers.clone()).to_string();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&request.id, &status, &outcome.content_type, &headers, &content, &outcome.timed_out, &outcome.error];
        // One bad response row must not lose the rest of the batch.
        if let Err(e) = client.execute(STORE_RESPONSE, &params).await {
            crate::log!(
                warn,
                "pgnet",
                "storing response id={} failed: {}",
                request.id,
                crate::logging::error_chain(&e)
            );
        }
    }
    Ok(count)
}

impl Outcome {
    fn failed(error: String, timed_out: bool, started: Instant) -> Outcome {
        Outcome {
            dropped: false,
            status: None,
            content_type: None,
            headers: Map::new(),
            body: Vec::new(),
            timed_out,
            error: Some(error),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// A request lost on the way: stored at once as the timeout pg_net would
    /// have reported (waiting out the timeout would stall the whole batch).
    fn dropped(request: &Request) -> Outcome {
        let error = format!("Timeout of {} ms reached (dropped by the drop_webhook fault)", request.timeout_ms);
        Outcome { dropped: true, ..Outcome::failed(error, true, Instant::now()) }
    }
}

fn decode(row: &Row) -> Request {
    // pg_net stores bodies as bytea; accept text too in case a stand-in schema differs.
    let body = row
        .try_get::<_, Option<Vec<u8>>>(4)
        .or_else(|_| row.try_get::<_, Option<String>>(4).map(|s| s.map(String::into_bytes)))
        .ok()
        .flatten()
        .unwrap_or_default();
    let headers_text: String = row.try_get(3).unwrap_or_default();
    let headers =
        serde_json::from_str::<Value>(&headers_text).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let timeout_ms = row.try_get::<_, i32>(5).unwrap_or(0);
    Request {
        id: row.try_get(0).unwrap_or_default(),
        method: row.try_get::<_, String>(1).unwrap_or_else(|_| "POST".into()).to_ascii_uppercase(),
        url: row.try_get(2).unwrap_or_default(),
        headers,
        body,
        timeout_ms: if timeout_ms > 0 { timeout_ms } else { DEFAULT_TIMEOUT_MS },
    }
}

async fn send(state: &AppState, request: &Request) -> Outcome {
    let started = Instant::now();
    let failed = |error: String, timed_out: bool| Outcome::failed(error, timed_out, started);
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return failed(format!("unsupported method {}", request.method), false);
    };
    let mut builder =
        state.http.request(method.clone(), &request.url).timeout(Duration::from_millis(request.timeout_ms as u64));
    for (name, value) in &request.headers {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        builder = builder.header(name.as_str(), value);
    }
    if method != reqwest::Method::GET {
        builder = builder.body(request.body.clone());
    }
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return failed(format!("Timeout of {} ms reached", request.timeout_ms), true),
        Err(e) => return failed(crate::logging::error_chain(&e), false),
    };
    let status = response.status().as_u16();
    let headers: Map<String, Value> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())))
        .collect();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    match response.bytes().await {
        Ok(body) => Outcome {
            dropped: false,
            status: Some(status),
            content_type,
            headers,
            body: body.to_vec(),
            timed_out: false,
            error: None,
            elapsed_ms: started.elapsed().as_millis() as u64,
        },
        Err(e) if e.is_timeout() => failed(format!("Timeout of {} ms reached", request.timeout_ms), true),
        Err(e) => failed(crate::logging::error_chain(&e), false),
    }
}

/// The delivery's `status` in `/_sandbox/webhooks`.
fn delivery_status(outcome: &Outcome) -> &'static str {
    match (outcome.dropped, &outcome.error, outcome.timed_out) {
        (true, _, _) => "dropped",
        (false, _, true) => "timed_out",
        (false, Some(_), false) => "error",
        (false, None, false) => "delivered",
    }
}

fn record(state: &AppState, request: &Request, outcome: &Outcome) {
    let status = delivery_status(outcome);
    crate::log!(
        info,
        "pgnet",
        "request id={} -> {} in {} ms",
        request.id,
        outcome.status.map_or_else(|| status.to_string(), |s| s.to_string()),
        outcome.elapsed_ms
    );
    state.webhooks.push(Delivery {
        id: request.id,
        method: request.method.clone(),
        url: request.url.clone(),
        status: status.to_string(),
        request_headers: Value::Object(request.headers.clone()),
        request_body: json_or_text(&request.body),
        response_status: outcome.status,
        response_body: outcome.status.map(|_| json_or_text(&outcome.body)),
        error: outcome.error.clone(),
        elapsed_ms: outcome.elapsed_ms,
        delivered_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            id: 7,
            method: "POST".into(),
            url: "http://127.0.0.1:1/hook".into(),
            headers: Map::new(),
            body: Vec::new(),
            timeout_ms: 5000,
        }
    }

    #[test]
    fn a_dropped_request_reads_as_a_timeout() {
        let outcome = Outcome::dropped(&request());
        assert_eq!(delivery_status(&outcome), "dropped");
        assert!(outcome.timed_out && outcome.status.is_none());
        assert!(outcome.error.unwrap().starts_with("Timeout of 5000 ms reached"));
    }

    #[test]
    fn delivery_statuses() {
        let started = Instant::now();
        assert_eq!(delivery_status(&Outcome::failed("x".into(), true, started)), "timed_out");
        assert_eq!(delivery_status(&Outcome::failed("refused".into(), false, started)), "error");
    }
}
