//! Sending batch SMS: claim due messages (SQL paces each sender by segments and skips opted-out numbers),
//! send each at its slot, record Twilio's answer. A message whose answer was lost is looked up at Twilio
//! before it may go again, so nobody gets a text twice. Logs name message ids only, never phones or text.

use crate::db::Db;
use crate::time::{now_ms, sleep};
use crate::twilio::{self, ReadError};
use futures_util::future::join_all;
use outcall_core::config::Config;
use outcall_core::error::ApiError;
use outcall_core::retry::LAST_LOOK_AFTER;
use outcall_core::rpc::{ClaimSms, ClaimedSms, ReconcileSms, RecordSmsSend, SmsToReconcile};
use outcall_core::sms::sending::{next_step, Step, CLAIM_LIMIT, HORIZON_MS};
use outcall_core::sms::wire::{self, find_sent, MessagePage, SendOutcome};
use outcall_core::twilio::encode_form;
use std::time::Duration;
use worker::{console_log, Method};

/// Sends due messages until nothing is due within `budget_ms`. Returns how many were handed to Twilio
/// (or refused by it). An error ends the loop; the sweep picks up from there.
pub async fn send_due(config: &Config, db: &Db, budget_ms: u64) -> usize {
    let started = now_ms();
    let mut sent = 0;
    loop {
        let claim = match db.call(&ClaimSms { limit: CLAIM_LIMIT, horizon_ms: HORIZON_MS }).await {
            Ok(claim) => claim,
            Err(e) => {
                console_log!("sms: stopped after {sent} messages: {}", e.message);
                return sent;
            }
        };
        let claimed = claim.messages.len();
        join_all(claim.messages.iter().map(|message| send_one(config, db, message))).await;
        sent += claimed;
        match next_step(claimed, claim.more_due, claim.retry_after_ms, now_ms().saturating_sub(started), budget_ms) {
            Step::Claim => {}
            Step::Wait(ms) => sleep(Duration::from_millis(ms)).await,
            Step::Stop => return sent,
        }
    }
}

/// One message: wait for its slot, send, record.
async fn send_one(config: &Config, db: &Db, message: &ClaimedSms) {
    sleep(Duration::from_millis(message.send_in_ms)).await;
    let form = encode_form(&wire::create_message_form(
        &message.to,
        &message.sender,
        &message.body,
        &wire::status_callback_url(&config.public_base_url, &message.message_id.to_string()),
    ));
    let url = wire::messages_url(&config.twilio_api_base, &config.twilio_account_sid);
    let answer = twilio::send(config, Method::Post, &url, Some(&form)).await;
    let outcome = wire::send_outcome(answer.reply, &answer.body, answer.retry_after);
    let recorded = match outcome {
        SendOutcome::Unclear(reason) => {
            console_log!("sms {}: {reason}; looking it up", message.message_id);
            sleep(LAST_LOOK_AFTER).await;
            look_up(config, db, message.message_id, &message.lookup()).await
        }
        outcome => db.call(&RecordSmsSend::of(message.message_id, outcome)).await.map(drop),
    };
    if let Err(e) = recorded {
        console_log!("sms {}: not recorded: {}", message.message_id, e.message);
    }
}

/// Asks Twilio whether a message whose answer was lost exists, and lets SQL settle it: found → accepted,
/// not there → due again. When Twilio cannot tell, it stays `submitting` for the sweep.
async fn look_up(
    config: &Config,
    db: &Db,
    message_id: outcall_core::ids::SmsMessageId,
    lookup: &outcall_core::rpc::SmsLookup,
) -> Result<(), ApiError> {
    let url = wire::lookup_url(&config.twilio_api_base, &config.twilio_account_sid, &lookup.to, &lookup.sender);
    match twilio::get::<MessagePage>(config, &url).await {
        Ok(page) => {
            let found = find_sent(&page.messages, &lookup.sender, &lookup.body, lookup.submitted_at);
            db.call(&ReconcileSms::of(message_id, found)).await.map(drop)
        }
        Err(e @ (ReadError::NotFound | ReadError::Failed(_))) => {
            let unknown = SendOutcome::Unclear(format!("lost answer, and the look-up failed: {e}"));
            db.call(&RecordSmsSend::of(message_id, unknown)).await.map(drop)
        }
    }
}

/// The sweep's part: messages whose send was never settled (a Worker that died mid-send), looked up.
pub async fn reconcile_stale(config: &Config, db: &Db) -> Result<usize, ApiError> {
    let stale = db.call(&SmsToReconcile { older_than_ms: 120_000, limit: 50 }).await?;
    for message in &stale {
        if let Err(e) = look_up(config, db, message.message_id, &message.lookup()).await {
            console_log!("sms {}: not reconciled: {}", message.message_id, e.message);
        }
    }
    Ok(stale.len())
}
