//! The minute sweep (a cron trigger): settle sessions that went quiet by asking Twilio, fetch Twilio's
//! price of calls that ended without one (the spend caps count it), then dial whatever is due — retries, deferred rows, rows whose webhook never came; then the same for text
//! messages (settle sends whose answer was lost, send what is due).

use crate::db::Db;
use crate::dispatch::drain;
use crate::sms;
use crate::twilio::{self, ReadError};
use outcall_core::config::Config;
use outcall_core::cost::charged_amount;
use outcall_core::dispatch::SWEEP_DRAIN_BUDGET_MS;
use outcall_core::error::ApiError;
use outcall_core::reconcile::{
    call_url, calls_to_url, CallPage, CallResource, Lookup, ReconcileAction, ReconcileEvent, Reconciliation,
    StaleSession,
};
use outcall_core::rpc::{
    ApplyTwilioStatus, PriceLookup, ReconcileDialingSession, RecordTwilioPrice, SessionsLackingPrice,
    SweepStaleSessions,
};
use outcall_core::sms::sending::SWEEP_SEND_BUDGET_MS;
use worker::console_log;

/// Sessions reconciled per sweep; the rest wait for the next minute.
const RECONCILE_PER_SWEEP: u32 = 50;
/// Calls priced per sweep (one Twilio read each); the rest wait for the next minute.
const PRICES_PER_SWEEP: u32 = 10;

pub async fn sweep(config: &Config, db: &Db) -> Result<(), ApiError> {
    let report = db.call(&SweepStaleSessions { limit: RECONCILE_PER_SWEEP }).await?;
    let mut unsettled = 0;
    for session in &report.to_reconcile {
        if let Err(reason) = reconcile(config, db, session).await {
            unsettled += 1;
            console_log!("sweep: session {} not reconciled: {reason}", session.session_id);
        }
    }
    let mut priced = 0;
    for lookup in db.call(&SessionsLackingPrice { limit: PRICES_PER_SWEEP }).await? {
        match price(config, db, &lookup).await {
            Ok(recorded) => priced += usize::from(recorded),
            Err(PriceError::NotFound) => {
                // Twilio has no such call (another account, a test double restarted): the look is noted and the
                // others go on; it is listed after the calls not yet looked at.
                console_log!("sweep: session {} not priced: twilio has no such call", lookup.session_id);
                note_look(db, &lookup).await?;
            }
            Err(PriceError::Failed(reason)) => {
                // Twilio (or the database) is unwell: the rest wait for the next minute, the dials do not.
                console_log!("sweep: session {} not priced: {reason}", lookup.session_id);
                break;
            }
        }
    }
    let dialled = drain(config, db, SWEEP_DRAIN_BUDGET_MS).await;
    console_log!(
        "sweep: {} reports missing, {} sessions reconciled ({unsettled} not), {priced} calls priced, {dialled} rows dialled",
        report.reports_missing,
        report.to_reconcile.len()
    );
    let settled = sms::reconcile_stale(config, db).await?;
    let texted = sms::send_due(config, db, SWEEP_SEND_BUDGET_MS).await;
    console_log!("sweep: {settled} text messages looked up, {texted} sent");
    Ok(())
}

/// Fetches one call's price from Twilio and records it; `true` when a price was recorded (Twilio may have
/// none yet: the look is noted and the call listed again a minute later).
async fn price(config: &Config, db: &Db, lookup: &PriceLookup) -> Result<bool, PriceError> {
    let url = call_url(&config.twilio_api_base, &config.twilio_account_sid, &lookup.call_sid);
    let call = match twilio::get::<CallResource>(config, &url).await {
        Ok(call) => call,
        Err(ReadError::NotFound) => return Err(PriceError::NotFound),
        Err(e) => return Err(PriceError::Failed(e.to_string())),
    };
    let price = charged_amount(call.price.as_deref()).unwrap_or_else(|reason| {
        console_log!("sweep: session {}: {reason}", lookup.session_id);
        None
    });
    let record = RecordTwilioPrice { session_id: lookup.session_id, price, price_unit: call.price_unit };
    let recorded = db.call(&record).await.map_err(|e| PriceError::Failed(e.message))?;
    Ok(recorded.is_some_and(|r| r.changed))
}

/// Why a call was not priced: Twilio does not have it, or Twilio or the database failed (the rest then wait).
enum PriceError {
    NotFound,
    Failed(String),
}

/// Stamps the session as looked at without a price (`record_twilio_price` with none).
async fn note_look(db: &Db, lookup: &PriceLookup) -> Result<(), ApiError> {
    db.call(&RecordTwilioPrice { session_id: lookup.session_id, price: None, price_unit: None }).await.map(drop)
}

/// Settles one stale session by asking Twilio: carries out `outcall_core::reconcile::Reconciliation`.
async fn reconcile(config: &Config, db: &Db, session: &StaleSession) -> Result<(), String> {
    let (api_base, account_sid) = (&config.twilio_api_base, &config.twilio_account_sid);
    let (mut reconciliation, mut action) = Reconciliation::start(session, &config.twilio_from_number);
    loop {
        let event = match action {
            ReconcileAction::Look(Lookup::Call { call_sid }) => {
                match twilio::get::<CallResource>(config, &call_url(api_base, account_sid, &call_sid)).await {
                    Ok(call) => ReconcileEvent::Call(Some(call)),
                    Err(ReadError::NotFound) => ReconcileEvent::Call(None),
                    Err(e) => ReconcileEvent::LookFailed(e.to_string()),
                }
            }
            ReconcileAction::Look(Lookup::CallsTo { phone, from }) => {
                match twilio::get::<CallPage>(config, &calls_to_url(api_base, account_sid, &phone, &from)).await {
                    Ok(page) => ReconcileEvent::Calls(page),
                    Err(e) => ReconcileEvent::LookFailed(e.to_string()),
                }
            }
            ReconcileAction::ApplyStatus { call_sid, status, duration_seconds } => {
                let looked_up = ApplyTwilioStatus {
                    call_sid,
                    call_status: status,
                    duration_seconds,
                    session_id: Some(session.session_id),
                    callback: None,
                };
                db.call(&looked_up).await.map_err(|e| e.message)?;
                ReconcileEvent::Recorded
            }
            ReconcileAction::MatchCalls { candidates } => {
                let request = ReconcileDialingSession { candidates, is_final: true, session_id: session.session_id };
                db.call(&request).await.map_err(|e| e.message)?;
                ReconcileEvent::Recorded
            }
            ReconcileAction::Done(result) => return result,
        };
        action = reconciliation.on(event);
    }
}
