//! Sending batch SMS: claim due messages (SQL paces each sender by segments and skips opted-out numbers),
//! send each at its slot, record Twilio's answer. A message whose answer was lost is looked up at Twilio
//! before it may go again, so nobody gets a text twice. Logs name message ids only, never phones or text.

use crate::db::Db;
use crate::time::{now, now_ms, sleep};
use crate::twilio;
use futures_util::future::join_all;
use outcall_core::config::Config;
use outcall_core::error::ApiError;
use outcall_core::retry::LAST_LOOK_AFTER;
use outcall_core::rpc::sms::{ClaimSms, SmsToReconcile};
use outcall_core::sms::sending::{self, next_step, Outgoing, Step, CLAIM_LIMIT, HORIZON_MS, RECONCILE_AFTER_MS};
use outcall_core::sms::wire::{self, find_sent, MessagePage, SendOutcome};
use outcall_core::twilio::encode_form;
use std::time::Duration;
use worker::{console_log, Method};

/// Messages the sweep looks up at most per minute.
const RECONCILE_PER_SWEEP: u32 = 50;

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
        let claimed_at = now();
        let sends = claim.messages.iter().map(|message| async move {
            match Outgoing::claimed(message, claimed_at) {
                Ok(outgoing) => send_one(config, db, &outgoing, message.send_in_ms).await,
                Err(e) => console_log!("sms {}: not sent: {e}", message.message_id),
            }
        });
        join_all(sends).await;
        sent += claim.messages.len();
        let elapsed = now_ms().saturating_sub(started);
        match next_step(claim.messages.len(), claim.more_due, claim.retry_after_ms, elapsed, budget_ms) {
            Step::Claim => {}
            Step::Wait(ms) => sleep(Duration::from_millis(ms)).await,
            Step::Stop => return sent,
        }
    }
}

/// One message: wait for its slot, send, record (an unclear answer: look it up first).
async fn send_one(config: &Config, db: &Db, message: &Outgoing, send_in_ms: u64) {
    sleep(Duration::from_millis(send_in_ms)).await;
    let callback = wire::status_callback_url(&config.public_base_url, &message.id.to_string());
    let form = encode_form(&wire::create_message_form(&message.to, &message.sender, &message.body, &callback));
    let url = wire::messages_url(&config.twilio_api_base, &config.twilio_account_sid);
    let answer = twilio::send(config, Method::Post, &url, Some(&form)).await;
    let recorded = match wire::send_outcome(answer.reply, &answer.body, answer.retry_after) {
        SendOutcome::Unclear(reason) => {
            console_log!("sms {}: {reason}; looking it up", message.id);
            sleep(LAST_LOOK_AFTER).await;
            look_up(config, db, message).await
        }
        outcome => db.call(&sending::record(message.id, outcome)).await.map(drop),
    };
    if let Err(e) = recorded {
        console_log!("sms {}: not recorded: {}", message.id, e.message);
    }
}

/// Asks Twilio whether a message whose answer was lost exists, and lets SQL settle it: found → accepted,
/// not there → due again. When Twilio cannot tell, it stays `submitting` for the sweep.
async fn look_up(config: &Config, db: &Db, message: &Outgoing) -> Result<(), ApiError> {
    let url = wire::lookup_url(&config.twilio_api_base, &config.twilio_account_sid, &message.to, &message.sender);
    match twilio::get::<MessagePage>(config, &url).await {
        Ok(page) => {
            let found = find_sent(&page.messages, &message.sender, &message.body, message.claimed_at);
            db.call(&sending::reconciled(message.id, found)).await.map(drop)
        }
        // It stays `submitting` (nothing to record): the sweep looks again.
        Err(e) => {
            console_log!("sms {}: the look-up failed ({e}); the sweep tries again", message.id);
            Ok(())
        }
    }
}

/// The sweep's part: messages whose send was never settled (a Worker that died mid-send, a failed
/// look-up), looked up. Returns how many were looked at.
pub async fn reconcile_stale(config: &Config, db: &Db) -> Result<usize, ApiError> {
    let stale = db.call(&SmsToReconcile { older_than_ms: RECONCILE_AFTER_MS, limit: RECONCILE_PER_SWEEP }).await?;
    for message in &stale {
        let settled = match Outgoing::unanswered(message) {
            Ok(outgoing) => look_up(config, db, &outgoing).await.map_err(|e| e.message),
            Err(e) => Err(e),
        };
        if let Err(e) = settled {
            console_log!("sms {}: not reconciled: {e}", message.message_id);
        }
    }
    Ok(stale.len())
}
