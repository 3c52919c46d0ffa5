//! Twilio's REST API: one request with a timeout, and reads retried by the backoff policy.
//! Creating a call is not retried here: a create that may have been processed needs a look first
//! (see `dial`).

use crate::http::{outgoing, within};
use crate::time::{now, sleep};
use base64::Engine;
use outcall_core::config::Config;
use outcall_core::retry::{parse_retry_after, verdict, Reply, Verdict};
use serde::de::DeserializeOwned;
use std::time::Duration;
use worker::{AbortSignal, Fetch, Headers, Method, Request};

/// One try's answer.
pub struct Sent {
    pub reply: Reply,
    pub body: String,
    pub retry_after: Option<Duration>,
}

/// Sends one request; no answer within `TWILIO_TIMEOUT_MS` (or a failed connection) is `NoAnswer`.
pub async fn send(config: &Config, method: Method, url: &str, form: Option<&str>) -> Sent {
    let no_answer = Sent { reply: Reply::NoAnswer, body: String::new(), retry_after: None };
    let Ok(request) = build(config, method, url, form) else { return no_answer };
    let fetch = |signal: AbortSignal| async move { Fetch::Request(request).send_with_signal(&signal).await.ok() };
    let answer = within(config.twilio_timeout, fetch).await;
    let Some(mut response) = answer else { return no_answer };
    let retry_after = response.headers().get("Retry-After").ok().flatten().and_then(|v| parse_retry_after(&v, now()));
    Sent { reply: Reply::Status(response.status_code()), body: response.text().await.unwrap_or_default(), retry_after }
}

fn build(config: &Config, method: Method, url: &str, form: Option<&str>) -> worker::Result<Request> {
    let credentials = format!("{}:{}", config.twilio_account_sid, config.twilio_auth_token);
    let headers = Headers::new();
    headers
        .set("Authorization", &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials)))?;
    if form.is_some() {
        headers.set("Content-Type", "application/x-www-form-urlencoded")?;
    }
    outgoing(method, url, headers, form)
}

/// Why a read failed.
#[derive(Debug)]
pub enum ReadError {
    /// Twilio has no such resource (404).
    NotFound,
    /// Anything else, after the retries: what the last try got.
    Failed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("twilio 404: no such resource"),
            Self::Failed(reason) => f.write_str(reason),
        }
    }
}

/// A read (`GET`), retried on 429, 503, 504 and silence by the backoff policy (reads change nothing, so
/// every retryable failure may simply be tried again).
pub async fn get<T: DeserializeOwned>(config: &Config, url: &str) -> Result<T, ReadError> {
    let mut retry = 0;
    loop {
        let sent = send(config, Method::Get, url, None).await;
        let failure = match (verdict(sent.reply), sent.reply) {
            (Verdict::Success, _) => {
                return serde_json::from_str(&sent.body)
                    .map_err(|e| ReadError::Failed(format!("twilio answered unreadable JSON: {e}")))
            }
            (Verdict::Permanent, Reply::Status(404)) => return Err(ReadError::NotFound),
            (Verdict::Permanent, Reply::Status(status)) => return Err(ReadError::Failed(format!("twilio {status}"))),
            (_, Reply::Status(status)) => format!("twilio {status}"),
            (_, Reply::NoAnswer) => "twilio did not answer".to_owned(),
        };
        retry += 1;
        match config.provider_backoff.delay(retry, sent.retry_after) {
            Some(wait) => sleep(wait).await,
            None => return Err(ReadError::Failed(failure)),
        }
    }
}
