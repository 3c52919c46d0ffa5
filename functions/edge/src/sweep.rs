//! The minute sweep (a cron trigger): settle sessions that went quiet by asking Twilio, then dial
//! whatever is due — retries, deferred rows, rows whose webhook never came.

use crate::db::Db;
use crate::dispatch::drain;
use crate::twilio::{self, ReadError};
use outcall_core::config::Config;
use outcall_core::dispatch::SWEEP_DRAIN_BUDGET_MS;
use outcall_core::error::ApiError;
use outcall_core::reconcile::{call_url, calls_to_url, candidates, looked_up, CallPage, CallResource, StaleSession};
use outcall_core::rpc::{ApplyTwilioStatus, ReconcileDialingSession, SweepStaleSessions};
use worker::console_log;

/// Sessions reconciled per sweep; the rest wait for the next minute.
const RECONCILE_PER_SWEEP: u32 = 50;

pub async fn sweep(config: &Config, db: &Db) -> Result<(), ApiError> {
    let report = db.call(&SweepStaleSessions { limit: RECONCILE_PER_SWEEP }).await?;
    let mut unsettled = 0;
    for session in &report.to_reconcile {
        if let Err(reason) = reconcile(config, db, session).await {
            unsettled += 1;
            console_log!("sweep: session {} not reconciled: {reason}", session.session_id);
        }
    }
    let dialled = drain(config, db, SWEEP_DRAIN_BUDGET_MS).await;
    console_log!(
        "sweep: {} reports missing, {} sessions reconciled ({unsettled} not), {dialled} rows dialled",
        report.reports_missing,
        report.to_reconcile.len()
    );
    Ok(())
}

/// Applies what Twilio knows of the session's call. Without a CallSid, the session's create request
/// went unanswered: Twilio's calls to the phone tell whether it made one.
async fn reconcile(config: &Config, db: &Db, session: &StaleSession) -> Result<(), String> {
    let base = (&config.twilio_api_base, &config.twilio_account_sid);
    match &session.call_sid {
        Some(sid) => {
            let call = match twilio::get::<CallResource>(config, &call_url(base.0, base.1, sid)).await {
                Ok(call) => Some(call),
                Err(ReadError::NotFound) => None,
                Err(e) => return Err(e.to_string()),
            };
            let (status, duration) = looked_up(call.as_ref())?;
            let looked_up = ApplyTwilioStatus {
                call_sid: sid.clone(),
                call_status: status,
                duration_seconds: duration,
                session_id: Some(session.session_id),
                callback: None,
            };
            db.call(&looked_up).await.map_err(|e| e.message)?;
        }
        None => {
            let page: CallPage =
                twilio::get(config, &calls_to_url(base.0, base.1, &session.phone)).await.map_err(|e| e.to_string())?;
            let request = ReconcileDialingSession {
                candidates: candidates(&page.calls),
                is_final: true,
                session_id: session.session_id,
            };
            db.call(&request).await.map_err(|e| e.message)?;
        }
    }
    Ok(())
}
