//! The minute sweep (a cron trigger): settle sessions that went quiet by asking Twilio, then dial
//! whatever is due — retries, deferred rows, rows whose webhook never came.

use crate::db::Db;
use crate::dispatch::drain;
use crate::twilio::{self, ReadError};
use outcall_core::config::Config;
use outcall_core::dispatch::SWEEP_DRAIN_BUDGET_MS;
use outcall_core::error::ApiError;
use outcall_core::reconcile::{
    call_url, calls_to_url, candidates, looked_up, CallPage, CallResource, StaleSession, SweepReport,
};
use serde_json::json;
use worker::console_log;

/// Sessions reconciled per sweep; the rest wait for the next minute.
const RECONCILE_PER_SWEEP: u32 = 50;

pub async fn sweep(config: &Config, db: &Db) -> Result<(), ApiError> {
    let report: SweepReport =
        serde_json::from_value(db.rpc("sweep_stale_sessions", json!({"p_limit": RECONCILE_PER_SWEEP})).await?)
            .map_err(|e| ApiError::upstream(format!("sweep_stale_sessions answered an unexpected shape: {e}")))?;
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
            let args = json!({"p_call_sid": sid, "p_call_status": status.as_str(),
                              "p_duration_seconds": duration, "p_session_id": session.session_id});
            db.rpc("apply_twilio_status", args).await.map_err(|e| e.message)?;
        }
        None => {
            let page: CallPage =
                twilio::get(config, &calls_to_url(base.0, base.1, &session.phone)).await.map_err(|e| e.to_string())?;
            let args =
                json!({"p_session_id": session.session_id, "p_candidates": candidates(&page.calls), "p_final": true});
            db.rpc("reconcile_dialing_session", args).await.map_err(|e| e.message)?;
        }
    }
    Ok(())
}
