//! Dialling one pending call: claim → create the Twilio call → record the result.
//! Two database round trips and one Twilio request per dispatched call.

use crate::db::Db;
use crate::twilio;
use outcall_core::config::Config;
use outcall_core::dispatch::{create_call_form, ClaimAnswer};
use outcall_core::error::ApiError;
use outcall_core::ids::PendingCallId;
use outcall_core::twilio::DialOutcome;
use serde::Serialize;
use serde_json::json;

/// What the dispatch did, as the webhook answers it.
#[derive(Debug, Serialize)]
pub struct Dispatched {
    pub pending_call_id: PendingCallId,
    pub dispatched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<String>,
    /// Why nothing was dialled: the row was not claimable, or the dial failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub async fn dispatch(config: &Config, db: &Db, id: PendingCallId) -> Result<Dispatched, ApiError> {
    let answer = db.rpc("claim_pending_call", json!({"p_pending_call_id": id})).await?;
    let claim = match ClaimAnswer::from_rpc(answer)
        .map_err(|e| ApiError::upstream(format!("claim_pending_call answered an unexpected shape: {e}")))?
    {
        ClaimAnswer::Claimed(claim) => claim,
        ClaimAnswer::NotFound => return Err(ApiError::not_found(format!("no pending call has id {id}"))),
        // Already claimed, not due or finished: nothing to dial, and that is not an error.
        ClaimAnswer::NotClaimable { reason } => {
            return Ok(Dispatched { pending_call_id: id, dispatched: false, call_sid: None, reason: Some(reason) })
        }
    };
    let outcome = match create_call_form(config, &claim) {
        Ok(form) => twilio::create_call(config, &form).await,
        Err(e) => DialOutcome::Failed { reason: e.to_string(), code: None },
    };
    let (call_sid, error, error_code) = match &outcome {
        DialOutcome::Dialled(sid) => (Some(sid.as_str().to_owned()), None, None),
        DialOutcome::Failed { reason, code } => (None, Some(reason.clone()), code.clone()),
    };
    db.rpc(
        "record_dial_result",
        json!({"p_session_id": claim.session_id, "p_call_sid": call_sid, "p_error": error, "p_error_code": error_code}),
    )
    .await?;
    Ok(Dispatched { pending_call_id: id, dispatched: call_sid.is_some(), call_sid, reason: error })
}
