//! Placing one attempt's call: carries out what `outcall_core::dial::DialMachine` decides (send the
//! create request, release or reserve a send slot, back off, look the call up at Twilio, record) and
//! reports back what came of it.

use crate::db::Db;
use crate::time::{now_ms, sleep};
use crate::twilio;
use outcall_core::config::Config;
use outcall_core::dial::{Action, Dial, DialMachine, DialResult, Event, DIAL_BUDGET};
use outcall_core::dispatch::{create_call_form, Claim};
use outcall_core::error::ApiError;
use outcall_core::reconcile::{calls_to_url, candidates, CallPage};
use outcall_core::retry::{verdict, Verdict};
use outcall_core::twilio::{calls_url, encode_form};
use serde_json::{json, Value};
use std::time::Duration;
use worker::{console_log, Method};

pub async fn dial(config: &Config, db: &Db, claim: &Claim) -> Result<Dial, ApiError> {
    let form = match create_call_form(config, claim) {
        Ok(form) => encode_form(&form),
        Err(e) => {
            let refused = DialResult::Failed { reason: e.to_string(), code: None, retryable: false };
            record(db, claim, &refused).await?;
            return Ok(Dial::Failed(e.to_string()));
        }
    };
    let url = calls_url(&config.twilio_api_base, &config.twilio_account_sid);
    let mut machine = DialMachine::new(config.provider_backoff.clone(), now_ms(), DIAL_BUDGET);
    let mut action = machine.start();
    loop {
        let event = match action {
            Action::Send => {
                let sent = twilio::send(config, Method::Post, &url, Some(&form)).await;
                if !matches!(verdict(sent.reply), Verdict::Success | Verdict::Permanent) {
                    console_log!(
                        "dial: session {} try {} failed ({:?})",
                        claim.session_id,
                        machine.retries() + 1,
                        sent.reply
                    );
                }
                Event::Answered { reply: sent.reply, body: sent.body, retry_after: sent.retry_after }
            }
            Action::Release => {
                db.rpc("release_dial_slot", json!({"p_session_id": claim.session_id})).await?;
                Event::Released
            }
            Action::Sleep(wait) => {
                sleep(wait).await;
                Event::Woke
            }
            Action::LookUp => look_for_call(config, db, claim).await?,
            Action::Reserve => reserve(db, claim).await?,
            Action::Record(result) => {
                record(db, claim, &result).await?;
                Event::Recorded
            }
            Action::Done(Dial::Unknown) => {
                console_log!("dial: session {} left to the sweep", claim.session_id);
                return Ok(Dial::Unknown);
            }
            Action::Done(dial) => return Ok(dial),
        };
        action = machine.on(event, now_ms());
    }
}

/// Asks Twilio for its calls to this phone and lets SQL match them to the session.
async fn look_for_call(config: &Config, db: &Db, claim: &Claim) -> Result<Event, ApiError> {
    let url = calls_to_url(&config.twilio_api_base, &config.twilio_account_sid, &claim.phone);
    let page: CallPage = match twilio::get(config, &url).await {
        Ok(page) => page,
        Err(e) => {
            console_log!("dial: session {}: Twilio's calls could not be read ({e})", claim.session_id);
            return Ok(Event::LookFailed);
        }
    };
    let answer = db
        .rpc(
            "reconcile_dialing_session",
            json!({"p_session_id": claim.session_id, "p_candidates": candidates(&page.calls), "p_final": false}),
        )
        .await?;
    Ok(match answer.get("outcome").and_then(Value::as_str) {
        Some("adopted") => {
            Event::Found { call_sid: answer.get("call_sid").and_then(Value::as_str).unwrap_or_default().to_owned() }
        }
        Some("none") => Event::NotThere,
        _ => Event::LookFailed,
    })
}

/// Asks SQL for a send slot for the next try.
async fn reserve(db: &Db, claim: &Claim) -> Result<Event, ApiError> {
    let answer = db.rpc("reserve_dial_slot", json!({"p_session_id": claim.session_id})).await?;
    Ok(match answer.get("outcome").and_then(Value::as_str) {
        Some("reserved") => Event::Reserved,
        Some("wait") => Event::ReserveLater(Duration::from_millis(
            answer.get("retry_after_ms").and_then(Value::as_u64).unwrap_or(0),
        )),
        _ => Event::Settled,
    })
}

async fn record(db: &Db, claim: &Claim, result: &DialResult) -> Result<(), ApiError> {
    let args = match result {
        DialResult::Placed { call_sid } => json!({"p_session_id": claim.session_id, "p_call_sid": call_sid}),
        DialResult::Failed { reason, code, retryable } => json!({"p_session_id": claim.session_id, "p_error": reason,
                                                                 "p_error_code": code, "p_retryable": retryable}),
    };
    db.rpc("record_dial_result", args).await.map(drop)
}
