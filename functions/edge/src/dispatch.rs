//! Dispatching: claim a due row (SQL checks the window and the global limits), dial it, record it.
//! `dispatch` serves one row (the database webhook); `drain` keeps dialling due rows while slots are
//! free (after a dial, when a call ends, and in the minute sweep).

use crate::db::Db;
use crate::dial::dial;
use crate::time::{now_ms, sleep};
use outcall_core::config::Config;
use outcall_core::dial::Dial;
use outcall_core::dispatch::{drain_step, ClaimAnswer, DrainStep};
use outcall_core::error::ApiError;
use outcall_core::ids::PendingCallId;
use outcall_core::rpc::{ClaimNextDue, ClaimPendingCall};
use serde::Serialize;
use std::time::Duration;
use worker::console_log;

/// What the dispatch did, as the webhook answers it.
#[derive(Debug, Serialize)]
pub struct Dispatched {
    pub pending_call_id: PendingCallId,
    pub dispatched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<String>,
    /// Why nothing was dialled: not claimable now (and why), the dial failed, or its fate is unknown yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether other rows were due when this one was claimed (the caller then drains).
    #[serde(skip)]
    pub more_due: bool,
}

pub async fn dispatch(config: &Config, db: &Db, id: PendingCallId) -> Result<Dispatched, ApiError> {
    let claim = match db.call(&ClaimPendingCall { pending_call_id: id }).await? {
        ClaimAnswer::Claimed(claim) => claim,
        ClaimAnswer::NotFound => return Err(ApiError::not_found(format!("no pending call has id {id}"))),
        // Taken, not due, outside its window or no free slot: not an error, and the row stays due. A row that
        // ended (suppressed, expired) leaves the others of its batch to the drain.
        ClaimAnswer::NotClaimed { reason, .. } => {
            let more_due = ClaimAnswer::ends_row(&reason);
            return Ok(Dispatched {
                pending_call_id: id,
                dispatched: false,
                call_sid: None,
                reason: Some(reason),
                more_due,
            });
        }
    };
    let (call_sid, reason) = match dial(config, db, &claim).await? {
        Dial::Placed(sid) => (Some(sid), None),
        Dial::Failed(reason) => (None, Some(reason)),
        Dial::Unknown => (None, Some("unknown: the sweep will ask Twilio".to_owned())),
    };
    Ok(Dispatched { pending_call_id: id, dispatched: call_sid.is_some(), call_sid, reason, more_due: claim.more_due })
}

/// Dials due rows one after another until nothing is due, every slot is live, or `budget_ms` is spent.
/// Returns how many rows it dialled. Errors end the drain; the sweep picks up from there.
pub async fn drain(config: &Config, db: &Db, budget_ms: u64) -> u32 {
    let started = now_ms();
    let mut dialled = 0;
    loop {
        let answer = match db.call(&ClaimNextDue {}).await {
            Ok(answer) => answer,
            Err(e) => {
                console_log!("drain: stopped after {dialled} dials: {}", e.message);
                return dialled;
            }
        };
        match drain_step(answer, now_ms().saturating_sub(started), budget_ms) {
            DrainStep::Dial(claim) => match dial(config, db, &claim).await {
                Ok(_) if claim.more_due => dialled += 1,
                Ok(_) => return dialled + 1,
                Err(e) => {
                    console_log!("drain: session {} not recorded: {}", claim.session_id, e.message);
                    return dialled;
                }
            },
            DrainStep::Wait(ms) => sleep(Duration::from_millis(ms)).await,
            DrainStep::Stop(_) => return dialled,
        }
    }
}
