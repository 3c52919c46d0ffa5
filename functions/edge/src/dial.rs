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
use outcall_core::rpc::{
    BreakerTransition, ReconcileDialingSession, RecordDialResult, ReleaseDialSlot, ReserveDialSlot,
};
use outcall_core::twilio::{calls_url, encode_form};
use worker::{console_log, Method};

pub async fn dial(config: &Config, db: &Db, claim: &Claim) -> Result<Dial, ApiError> {
    log_breaker(claim, claim.breaker.as_ref()); // the claim is the breaker's half-open probe
    let form = match create_call_form(config, claim) {
        Ok(form) => encode_form(&form),
        Err(e) => {
            let refused = DialResult::Failed { reason: e.to_string(), code: None, retryable: false, failure: None };
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
            Action::Release(failure) => {
                let released = db.call(&ReleaseDialSlot { session_id: claim.session_id, failure }).await?;
                log_breaker(claim, released.and_then(|r| r.breaker).as_ref());
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
    let from = &config.twilio_from_number;
    let url = calls_to_url(&config.twilio_api_base, &config.twilio_account_sid, &claim.phone, from);
    let page: CallPage = match twilio::get(config, &url).await {
        Ok(page) => page,
        Err(e) => {
            console_log!("dial: session {}: Twilio's calls could not be read ({e})", claim.session_id);
            return Ok(Event::LookFailed);
        }
    };
    let request = ReconcileDialingSession {
        candidates: candidates(&page.calls, from),
        is_final: false,
        session_id: claim.session_id,
    };
    Ok(Event::looked_up(db.call(&request).await?))
}

/// Asks SQL for a send slot for the next try.
async fn reserve(db: &Db, claim: &Claim) -> Result<Event, ApiError> {
    let event = Event::reservation(db.call(&ReserveDialSlot { session_id: claim.session_id }).await?);
    if event == Event::BreakerOpen {
        console_log!(
            "dial: session {}: the circuit breaker holds dialling; the attempt is given back",
            claim.session_id
        );
    }
    Ok(event)
}

async fn record(db: &Db, claim: &Claim, result: &DialResult) -> Result<(), ApiError> {
    let recorded = db.call(&RecordDialResult::new(claim.session_id, result)).await?;
    log_breaker(claim, recorded.and_then(|r| r.breaker).as_ref());
    Ok(())
}

/// Logs a transition of the circuit breaker an answer reported (no personal data: the session only).
fn log_breaker(claim: &Claim, transition: Option<&BreakerTransition>) {
    if let Some(transition) = transition {
        console_log!("breaker: {transition}, by session {}", claim.session_id);
    }
}
