//! Placing one attempt's call: the Twilio create request, retried as `outcall_core::retry` says, and
//! recorded on the session. Nothing is dialled twice for one attempt: after an answer that may hide a
//! created call (504, timeout, dropped connection) we look for that call at Twilio before sending again,
//! and when we cannot tell, the session stays `dialing` for the sweep to reconcile.

use crate::db::Db;
use crate::time::sleep;
use crate::twilio;
use outcall_core::config::Config;
use outcall_core::dispatch::{create_call_form, Claim};
use outcall_core::error::ApiError;
use outcall_core::reconcile::{calls_to_url, candidates, CallPage};
use outcall_core::retry::{verdict, NextTry, Reply, Verdict};
use outcall_core::twilio::{calls_url, dial_outcome, encode_form, DialOutcome};
use serde_json::{json, Value};
use std::time::Duration;
use worker::{console_log, Method};

/// How an attempt's dial ended.
#[derive(Debug)]
pub enum Dial {
    /// Twilio has the call (created now, or found after an unclear answer).
    Placed(String),
    /// Twilio refused, or every try failed; recorded on the session and the row.
    Failed(String),
    /// We cannot tell whether Twilio has the call; the sweep will ask it later.
    Unknown,
}

pub async fn dial(config: &Config, db: &Db, claim: &Claim) -> Result<Dial, ApiError> {
    let form = match create_call_form(config, claim) {
        Ok(form) => encode_form(&form),
        Err(e) => return record_failure(db, claim, &e.to_string(), None, false).await,
    };
    let url = calls_url(&config.twilio_api_base, &config.twilio_account_sid);
    let mut retry = 0;
    loop {
        let sent = twilio::send(config, Method::Post, &url, Some(&form)).await;
        let failure = match (verdict(sent.reply), sent.reply) {
            (Verdict::Success | Verdict::Permanent, Reply::Status(status)) => {
                return match dial_outcome(status, &sent.body) {
                    DialOutcome::Dialled(sid) => record_sid(db, claim, sid.as_str()).await,
                    DialOutcome::Failed { reason, code } => record_failure(db, claim, &reason, code, false).await,
                };
            }
            (_, Reply::Status(status)) => format!("twilio {status}"),
            (_, Reply::NoAnswer) => "twilio did not answer".to_owned(),
        };
        retry += 1;
        console_log!("dial: session {} try {retry} failed ({failure})", claim.session_id);
        let give_up = || record_failure(db, claim, &failure, error_code(&sent.body), true);
        let next = config.provider_backoff.next_try(verdict(sent.reply), retry, sent.retry_after);
        match next {
            NextTry::Resend(wait) => sleep(wait).await,
            NextTry::GiveUp => return give_up().await,
            NextTry::LookThenResend(wait) | NextTry::LookThenGiveUp(wait) => {
                sleep(wait).await;
                match look_for_call(config, db, claim).await? {
                    Look::Found(sid) => return Ok(Dial::Placed(sid)),
                    Look::Unknown => return Ok(Dial::Unknown),
                    Look::NotThere if matches!(next, NextTry::LookThenGiveUp(_)) => return give_up().await,
                    Look::NotThere => {}
                }
            }
        }
        // The new try takes its own calls-per-second slot; the session may have been settled meanwhile.
        let slot = db.rpc("reserve_dial_slot", json!({"p_session_id": claim.session_id})).await?;
        if slot.get("reserved").and_then(Value::as_bool) != Some(true) {
            return Ok(Dial::Unknown);
        }
        let wait_ms = slot.get("wait_ms").and_then(Value::as_u64).unwrap_or(0);
        if wait_ms > 0 {
            sleep(Duration::from_millis(wait_ms)).await;
        }
    }
}

enum Look {
    /// Twilio has a call for this session; adopted.
    Found(String),
    /// Twilio has no call for it: sending again is safe.
    NotThere,
    /// Twilio could not be asked, or the session was settled meanwhile (by a callback or the sweep).
    Unknown,
}

/// Asks Twilio for its calls to this phone and lets SQL match them to the session.
async fn look_for_call(config: &Config, db: &Db, claim: &Claim) -> Result<Look, ApiError> {
    let url = calls_to_url(&config.twilio_api_base, &config.twilio_account_sid, &claim.phone);
    let page: CallPage = match twilio::get(config, &url).await {
        Ok(page) => page,
        Err(e) => {
            console_log!("dial: session {} left to the sweep ({e})", claim.session_id);
            return Ok(Look::Unknown);
        }
    };
    let answer = db
        .rpc(
            "reconcile_dialing_session",
            json!({"p_session_id": claim.session_id, "p_candidates": candidates(&page.calls), "p_final": false}),
        )
        .await?;
    Ok(match answer.get("outcome").and_then(Value::as_str) {
        Some("adopted") => Look::Found(answer.get("call_sid").and_then(Value::as_str).unwrap_or_default().to_owned()),
        Some("none") => Look::NotThere,
        _ => Look::Unknown,
    })
}

fn error_code(body: &str) -> Option<String> {
    serde_json::from_str::<outcall_core::twilio::ApiError>(body).ok()?.code.map(|c| c.to_string())
}

async fn record_sid(db: &Db, claim: &Claim, sid: &str) -> Result<Dial, ApiError> {
    db.rpc("record_dial_result", json!({"p_session_id": claim.session_id, "p_call_sid": sid})).await?;
    Ok(Dial::Placed(sid.to_owned()))
}

/// Records the attempt's failure. `retryable`: the row gets another attempt by the outcome schedule
/// (a permanent refusal such as an invalid number would only fail again).
async fn record_failure(
    db: &Db,
    claim: &Claim,
    reason: &str,
    code: Option<String>,
    retryable: bool,
) -> Result<Dial, ApiError> {
    let args =
        json!({"p_session_id": claim.session_id, "p_error": reason, "p_error_code": code, "p_retryable": retryable});
    db.rpc("record_dial_result", args).await?;
    Ok(Dial::Failed(reason.to_owned()))
}
