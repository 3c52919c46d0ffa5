//! The contract between the Worker and the database: one type per SQL function the Worker calls
//! (through PostgREST, `POST /rest/v1/rpc/<name>`), with its name, its arguments and its answer.
//!
//! A request type serialises to the function's named arguments (`p_*`); its [`Rpc::Answer`] is what the
//! function's `jsonb` answer deserialises to, an `Option` where SQL answers `null` (an unknown id). An
//! answer of another shape is an error (`ApiError::upstream` in the Worker). Every type is listed in
//! [`contract`], which `e2e/tests/rpc_contract.rs` checks against `pg_proc` of the running database:
//! each function exists, takes exactly the argument names (and JSON kinds) the type sends, and every
//! argument the type leaves out has a default. A type cannot be an [`Rpc`] without being in that list
//! (the `Listed` bound is only implemented by the `contract!` invocation at the end of this file).
//!
//! The batch SMS functions are in [`sms`], the do-not-call list's in [`suppression`].
//!
//! What each function does is written beside it in `sql/schema/`; `docs/architecture.md` and
//! `sql/README.md` describe the behaviour and point here for the exact arguments and answers.

use crate::classification::{ClassificationType, IvrAction};
use crate::dial::DialResult;
use crate::ids::{BatchId, PendingCallId, RunId, SessionId};
use crate::outcome::Outcome;
use crate::retry::ProviderFailure;
use crate::twilio::CallStatus;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use uuid::Uuid;

pub mod sms;
pub mod suppression;

pub use crate::context::CallContext;
pub use crate::dispatch::{Claim, ClaimAnswer};
pub use crate::reconcile::{StaleSession, SweepReport};

mod sealed {
    /// Implemented only by `contract!`: a request type is in [`super::contract`] or it is no [`super::Rpc`].
    pub trait Listed {}
}

/// One SQL function the Worker calls: `Self` is its arguments.
pub trait Rpc: Serialize + sealed::Listed + Sized {
    /// The function's name in schema `public`.
    const NAME: &'static str;
    /// Its `jsonb` answer.
    type Answer: DeserializeOwned;
    /// One request for every set of arguments the Worker sends (an optional argument left out is another
    /// set). The contract test reads the argument names and JSON kinds from them, so give every value
    /// that can be null a non-null example where the kind matters.
    fn examples() -> Vec<Self>;
}

/// Every set of arguments the Worker sends: (function, the arguments as serialised), one entry per
/// example of every [`Rpc`] type.
pub fn contract() -> Vec<(&'static str, Map<String, Value>)> {
    listed()
}

/// The SQL functions the Worker calls, each once.
pub fn functions() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = contract().into_iter().map(|(name, _)| name).collect();
    names.dedup();
    names
}

/// A request's arguments as it sends them: a JSON object keyed by argument name.
pub fn arguments<R: Rpc>(request: &R) -> Map<String, Value> {
    match serde_json::to_value(request) {
        Ok(Value::Object(map)) => map,
        other => panic!("{}: arguments must serialise to an object, got {other:?}", R::NAME),
    }
}

fn entries<R: Rpc>() -> Vec<(&'static str, Map<String, Value>)> {
    let mut shapes: Vec<(&'static str, Map<String, Value>)> = Vec::new();
    for example in R::examples() {
        let args = arguments(&example);
        if !shapes.iter().any(|(_, seen)| seen.keys().eq(args.keys())) {
            shapes.push((R::NAME, args));
        }
    }
    shapes
}

fn session() -> SessionId {
    SessionId::parse("11111111-1111-1111-1111-111111111111").expect("a UUID")
}
fn pending_call() -> PendingCallId {
    PendingCallId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").expect("a UUID")
}
fn batch() -> BatchId {
    BatchId::parse("22222222-2222-2222-2222-222222222222").expect("a UUID")
}
fn run() -> RunId {
    RunId::parse("33333333-3333-3333-3333-333333333333").expect("a UUID")
}
const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";

fn serialize_call_status<S: serde::Serializer>(status: &CallStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

// ------------------------------------------------------------------------------------------ dispatch

/// `claim_pending_call`: claims one row for dialling (the database webhook's row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimPendingCall {
    #[serde(rename = "p_pending_call_id")]
    pub pending_call_id: PendingCallId,
}

impl Rpc for ClaimPendingCall {
    const NAME: &'static str = "claim_pending_call";
    /// A claim, or why not; a bare `null` reads as `not_claimable`.
    type Answer = ClaimAnswer;
    fn examples() -> Vec<Self> {
        vec![Self { pending_call_id: pending_call() }]
    }
}

/// `claim_next_due`: claims the most overdue due row (a drain). No arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimNextDue {}

impl Rpc for ClaimNextDue {
    const NAME: &'static str = "claim_next_due";
    /// As [`ClaimPendingCall`]'s; `idle` when nothing is due.
    type Answer = ClaimAnswer;
    fn examples() -> Vec<Self> {
        vec![Self {}]
    }
}

// -------------------------------------------------------------------------------------------- dialling

/// `release_dial_slot`: Twilio answered the session's create request (or did not in time): its
/// calls-per-second send slot counts from now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseDialSlot {
    #[serde(rename = "p_session_id")]
    pub session_id: SessionId,
    /// What the try told of Twilio: the circuit breaker counts `unavailable`, the quota count `throttled`.
    #[serde(rename = "p_failure")]
    pub failure: Option<ProviderFailure>,
}

/// `release_dial_slot`'s answer; `null` for an unknown session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Released {
    /// False when nothing was in flight for the session.
    pub released: bool,
    /// The circuit breaker's transition this failure caused (for the Worker's log).
    #[serde(default)]
    pub breaker: Option<BreakerTransition>,
}

impl Rpc for ReleaseDialSlot {
    const NAME: &'static str = "release_dial_slot";
    type Answer = Option<Released>;
    fn examples() -> Vec<Self> {
        vec![
            Self { session_id: session(), failure: Some(ProviderFailure::Unavailable) },
            Self { session_id: session(), failure: None },
        ]
    }
}

/// A transition of the providers' circuit breaker (`sql/schema/35_breaker.sql`), as the answer that caused it
/// reports it: `closed` → `open` (reason `failures`), `open` → `half_open` (`cooldown_over`: this claim is the
/// probe), `half_open` → `half_open` (`probe_lost`), `half_open` → `closed` (`probe_succeeded`, `call_created`),
/// `half_open` → `open` (`probe_failed`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BreakerTransition {
    pub from: String,
    pub to: String,
    pub reason: String,
    /// The provider's consecutive failures.
    pub failures: i64,
    /// `twilio` or `vapi`; none for the cool-down and a lost probe.
    #[serde(default)]
    pub provider: Option<String>,
}

impl fmt::Display for BreakerTransition {
    /// One log line, no personal data: `closed -> open (failures; 5 twilio failures)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({}; {} ", self.from, self.to, self.reason, self.failures)?;
        match &self.provider {
            Some(provider) => write!(f, "{provider} failures)"),
            None => write!(f, "failures)"),
        }
    }
}

/// `reserve_dial_slot`: a send slot for re-sending the session's create request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReserveDialSlot {
    #[serde(rename = "p_session_id")]
    pub session_id: SessionId,
}

/// `reserve_dial_slot`'s answer (`null`, an unknown session, is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SlotReservation {
    /// Send now.
    Reserved,
    /// Ask again after this long; `reason` `breaker_open` while the circuit breaker holds dialling.
    Wait {
        retry_after_ms: u64,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The session no longer waits for its dial result: do not send.
    Settled,
}

impl Rpc for ReserveDialSlot {
    const NAME: &'static str = "reserve_dial_slot";
    type Answer = Option<SlotReservation>;
    fn examples() -> Vec<Self> {
        vec![Self { session_id: session() }]
    }
}

/// `record_dial_result`: what came of the attempt's dial, a CallSid or an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordDialResult {
    #[serde(flatten)]
    pub result: DialRecord,
    #[serde(rename = "p_session_id")]
    pub session_id: SessionId,
}

/// The two argument sets of `record_dial_result` (exactly one of CallSid and error).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DialRecord {
    Placed {
        #[serde(rename = "p_call_sid")]
        call_sid: String,
    },
    Failed {
        #[serde(rename = "p_error")]
        error: String,
        #[serde(rename = "p_error_code")]
        error_code: Option<String>,
        #[serde(rename = "p_retryable")]
        retryable: bool,
        /// The last try's failure, when `release_dial_slot` has not reported it.
        #[serde(rename = "p_failure")]
        failure: Option<ProviderFailure>,
    },
}

impl RecordDialResult {
    pub fn new(session_id: SessionId, result: &DialResult) -> Self {
        let result = match result {
            DialResult::Placed { call_sid } => DialRecord::Placed { call_sid: call_sid.clone() },
            DialResult::Failed { reason, code, retryable, failure } => DialRecord::Failed {
                error: reason.clone(),
                error_code: code.clone(),
                retryable: *retryable,
                failure: *failure,
            },
        };
        Self { result, session_id }
    }
}

/// `record_dial_result`'s answer; `null` for an unknown session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DialRecorded {
    pub session_id: SessionId,
    pub pending_call_id: PendingCallId,
    pub call_status: String,
    /// False: the session already had its result (a duplicate).
    pub changed: bool,
    /// The attempt did not count: the circuit breaker held dialling (the row is due when it reopens).
    #[serde(default)]
    pub attempt_given_back: bool,
    /// The circuit breaker's transition this result caused.
    #[serde(default)]
    pub breaker: Option<BreakerTransition>,
}

impl Rpc for RecordDialResult {
    const NAME: &'static str = "record_dial_result";
    type Answer = Option<DialRecorded>;
    fn examples() -> Vec<Self> {
        vec![
            Self::new(session(), &DialResult::Placed { call_sid: CALL_SID.into() }),
            Self::new(
                session(),
                &DialResult::Failed {
                    reason: "busy".into(),
                    code: Some("21211".into()),
                    retryable: false,
                    failure: None,
                },
            ),
            Self::new(
                session(),
                &DialResult::Failed {
                    reason: "twilio 503".into(),
                    code: Some("20503".into()),
                    retryable: true,
                    failure: Some(ProviderFailure::Unavailable),
                },
            ),
        ]
    }
}

/// `reconcile_dialing_session`: matches a session that lost its dial result to Twilio's calls to its phone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileDialingSession {
    /// Twilio's calls as `outcall_core::reconcile::candidates` writes them.
    #[serde(rename = "p_candidates")]
    pub candidates: Value,
    /// The sweep (true: none found means the dial never reached Twilio) or the Worker before a re-send.
    #[serde(rename = "p_final")]
    pub is_final: bool,
    #[serde(rename = "p_session_id")]
    pub session_id: SessionId,
}

/// `reconcile_dialing_session`'s answer; `null` for an unknown session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Reconciled {
    pub session_id: SessionId,
    pub outcome: ReconcileOutcome,
    /// The session's CallSid (the adopted call's), null if none.
    pub call_sid: Option<String>,
    pub call_status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileOutcome {
    /// One of the candidates is the session's call: stored, its status applied.
    Adopted,
    /// None is, and `p_final`: the dial never reached Twilio (row retried).
    NotDialled,
    /// None is, without `p_final`: nothing changed.
    None,
    /// The session was no longer dialling.
    Unchanged,
}

impl Rpc for ReconcileDialingSession {
    const NAME: &'static str = "reconcile_dialing_session";
    type Answer = Option<Reconciled>;
    fn examples() -> Vec<Self> {
        let candidates = json!([{"sid": CALL_SID, "status": "queued", "date_created": "2026-11-21T10:00:00+00:00",
                                 "duration": null}]);
        vec![Self { candidates, is_final: false, session_id: session() }]
    }
}

// ---------------------------------------------------------------------------------------------- Twilio

/// `apply_twilio_status`: a status callback, or a status the sweep looked up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyTwilioStatus {
    #[serde(rename = "p_call_sid")]
    pub call_sid: String,
    #[serde(rename = "p_call_status", serialize_with = "serialize_call_status")]
    pub call_status: CallStatus,
    #[serde(rename = "p_duration_seconds")]
    pub duration_seconds: Option<i32>,
    /// From the StatusCallback URL: finds a callback that beat the dial result.
    #[serde(rename = "p_session_id")]
    pub session_id: Option<SessionId>,
    /// What only a callback carries; the sweep's look-ups send neither argument.
    #[serde(flatten)]
    pub callback: Option<CallbackDetails>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackDetails {
    #[serde(rename = "p_sequence_number")]
    pub sequence_number: Option<i32>,
    #[serde(rename = "p_answered_by")]
    pub answered_by: Option<String>,
}

/// `apply_twilio_status`'s answer (`null`: unknown CallSid), which the callback's answer carries as it
/// is. Fields in alphabetical order: serialised again, it reads exactly as the database's JSON did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwilioStatusApplied {
    pub call_status: Option<String>,
    pub changed: bool,
    pub pending_call_id: Option<PendingCallId>,
    pub session_id: Option<SessionId>,
    pub session_status: Option<String>,
    /// This call moved the session from a live status to an ending: a place under the limit is free.
    pub slot_freed: bool,
}

impl Rpc for ApplyTwilioStatus {
    const NAME: &'static str = "apply_twilio_status";
    type Answer = Option<TwilioStatusApplied>;
    fn examples() -> Vec<Self> {
        let callback = CallbackDetails { sequence_number: Some(3), answered_by: Some("human".into()) };
        let status = |callback| Self {
            call_sid: CALL_SID.into(),
            call_status: CallStatus::Completed,
            duration_seconds: Some(42),
            session_id: Some(session()),
            callback,
        };
        vec![status(Some(callback)), status(None)]
    }
}

// ----------------------------------------------------------------------------------------------- sweep

/// `sweep_stale_sessions`: ends rows whose VAPI report never came, hands out sessions to reconcile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepStaleSessions {
    #[serde(rename = "p_limit")]
    pub limit: u32,
}

impl Rpc for SweepStaleSessions {
    const NAME: &'static str = "sweep_stale_sessions";
    /// Never null.
    type Answer = SweepReport;
    fn examples() -> Vec<Self> {
        vec![Self { limit: 50 }]
    }
}

/// `sessions_lacking_price`: answered calls whose Twilio price the sweep should fetch (`25_cost.sql`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionsLackingPrice {
    #[serde(rename = "p_limit")]
    pub limit: u32,
}

/// One call to price.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceLookup {
    pub session_id: SessionId,
    pub call_sid: String,
}

impl Rpc for SessionsLackingPrice {
    const NAME: &'static str = "sessions_lacking_price";
    /// Never null; oldest end first.
    type Answer = Vec<PriceLookup>;
    fn examples() -> Vec<Self> {
        vec![Self { limit: 10 }]
    }
}

/// `record_twilio_price`: what Twilio charged for a session's call (`crate::cost::charged_amount`), once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordTwilioPrice {
    #[serde(rename = "p_session_id")]
    pub session_id: SessionId,
    /// The amount charged, 0 or more; `None`: Twilio has no price yet (the look is noted).
    #[serde(rename = "p_price")]
    pub price: Option<f64>,
    /// Twilio's `price_unit` (`USD`).
    #[serde(rename = "p_price_unit")]
    pub price_unit: Option<String>,
}

/// `record_twilio_price`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PriceRecorded {
    pub session_id: SessionId,
    pub twilio_price: Option<f64>,
    /// A price was recorded now (false: none yet, or one was already).
    pub changed: bool,
}

impl Rpc for RecordTwilioPrice {
    const NAME: &'static str = "record_twilio_price";
    /// `null`: no such session.
    type Answer = Option<PriceRecorded>;
    fn examples() -> Vec<Self> {
        vec![
            Self { session_id: session(), price: Some(0.014), price_unit: Some("USD".into()) },
            Self { session_id: session(), price: None, price_unit: None },
        ]
    }
}

// ------------------------------------------------------------------------------------------------ VAPI

/// `call_context`: the fields a call needs, for VAPI's call of the row's live attempt only (the first VAPI
/// call to ask is bound to the session; any other is refused).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadCallContext {
    #[serde(rename = "p_pending_call_id")]
    pub pending_call_id: PendingCallId,
    #[serde(rename = "p_vapi_call_id")]
    pub vapi_call_id: String,
}

impl Rpc for ReadCallContext {
    const NAME: &'static str = "call_context";
    /// `null`: no such row, no live call, or another VAPI call's.
    type Answer = Option<CallContext>;
    fn examples() -> Vec<Self> {
        vec![Self { pending_call_id: pending_call(), vapi_call_id: "vapi-call-1".into() }]
    }
}

/// `apply_vapi_status`: VAPI's `status-update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyVapiStatus {
    #[serde(rename = "p_pending_call_id")]
    pub pending_call_id: PendingCallId,
    #[serde(rename = "p_status")]
    pub status: String,
    #[serde(rename = "p_vapi_call_id")]
    pub vapi_call_id: Option<String>,
}

/// `apply_vapi_status`'s answer (`null`: unknown id, or not dialled yet), VAPI's answer as it is. Fields
/// in alphabetical order (see [`TwilioStatusApplied`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VapiStatusApplied {
    pub call_status: Option<String>,
    pub changed: bool,
    pub pending_call_id: Option<PendingCallId>,
    pub session_id: Option<SessionId>,
    pub vapi_status: Option<String>,
}

impl Rpc for ApplyVapiStatus {
    const NAME: &'static str = "apply_vapi_status";
    type Answer = Option<VapiStatusApplied>;
    fn examples() -> Vec<Self> {
        vec![Self { pending_call_id: pending_call(), status: "ringing".into(), vapi_call_id: Some("vapi-1".into()) }]
    }
}

/// `apply_call_report`: VAPI's end-of-call report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyCallReport {
    #[serde(rename = "p_cost")]
    pub cost: Option<f64>,
    #[serde(rename = "p_duration_seconds")]
    pub duration_seconds: Option<f64>,
    #[serde(rename = "p_ended_reason")]
    pub ended_reason: String,
    #[serde(rename = "p_outcome")]
    pub outcome: Outcome,
    #[serde(rename = "p_pending_call_id")]
    pub pending_call_id: PendingCallId,
    #[serde(rename = "p_structured_data")]
    pub structured_data: Option<Value>,
    #[serde(rename = "p_success_evaluation")]
    pub success_evaluation: Option<String>,
    #[serde(rename = "p_summary")]
    pub summary: Option<String>,
    #[serde(rename = "p_transcript")]
    pub transcript: Option<String>,
    #[serde(rename = "p_vapi_call_id")]
    pub vapi_call_id: Option<String>,
}

impl ApplyCallReport {
    pub fn new(pending_call_id: PendingCallId, report: &crate::vapi::CallReport) -> Self {
        Self {
            cost: report.cost,
            duration_seconds: report.duration_seconds,
            ended_reason: report.ended_reason.clone(),
            outcome: report.outcome,
            pending_call_id,
            structured_data: report.structured_data.clone(),
            success_evaluation: report.success_evaluation.clone(),
            summary: report.summary.clone(),
            transcript: report.transcript.clone(),
            vapi_call_id: report.vapi_call_id.clone(),
        }
    }
}

/// `apply_call_report`'s answer (`null`: unknown id, or not dialled yet), VAPI's answer as it is. Fields
/// in alphabetical order (see [`TwilioStatusApplied`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReportApplied {
    pub call_status: Option<String>,
    pub changed: bool,
    pub pending_call_id: Option<PendingCallId>,
    pub session_id: Option<SessionId>,
}

impl Rpc for ApplyCallReport {
    const NAME: &'static str = "apply_call_report";
    type Answer = Option<CallReportApplied>;
    fn examples() -> Vec<Self> {
        vec![Self {
            cost: Some(0.12),
            duration_seconds: Some(61.5),
            ended_reason: "customer-ended-call".into(),
            outcome: Outcome::Completed,
            pending_call_id: pending_call(),
            structured_data: Some(json!({"confirmed": true})),
            success_evaluation: Some("true".into()),
            summary: Some("Confirmed.".into()),
            transcript: Some("AI: Hello".into()),
            vapi_call_id: Some("vapi-1".into()),
        }]
    }
}

// -------------------------------------------------------------------------------------------- learning

/// An answer that is `{"ok": true, ...}` (the `T`) or `{"ok": false, "reason": ...}` (nothing was written).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<T> {
    Done(T),
    /// The reason, as SQL wrote it (for logs).
    Refused(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Decision<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value.get("ok").and_then(Value::as_bool) {
            Some(true) => T::deserialize(value).map(Self::Done).map_err(D::Error::custom),
            Some(false) => match value.get("reason").and_then(Value::as_str) {
                Some(reason) => Ok(Self::Refused(reason.to_owned())),
                None => Err(D::Error::custom("a refusal without a reason")),
            },
            None => Err(D::Error::custom("an answer without ok")),
        }
    }
}

/// What a run listens for: learning the phone system, or checking the replayed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPurpose {
    Learn,
    Verify,
}

/// A claimed call's listener (the claim's `listen`): its run and the stream's single-use token (only its
/// SHA-256 is stored; `Debug` leaves it out).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Listen {
    pub run_id: RunId,
    pub purpose: RunPurpose,
    pub token: String,
}

impl fmt::Debug for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listen").field("run_id", &self.run_id).field("purpose", &self.purpose).finish_non_exhaustive()
    }
}

/// `begin_listening`: a call's stream presents its token (once). No `Debug`: it carries the token.
#[derive(Clone, PartialEq, Serialize)]
pub struct BeginListening {
    #[serde(rename = "p_session_id")]
    pub session_id: SessionId,
    #[serde(rename = "p_token")]
    pub token: String,
}

/// `begin_listening`'s answer when the token is accepted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Listening {
    pub run_id: RunId,
    pub purpose: RunPurpose,
    /// The phone had a classification before (active or not).
    pub phone_known: bool,
    /// For a verification run: what the replay should sound like; `None` for a learning run.
    pub classification: Option<ExpectedClassification>,
}

/// The classification a verification run checks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpectedClassification {
    pub id: Uuid,
    pub classification_type: ClassificationType,
    #[serde(default)]
    pub ivr_actions: Vec<IvrAction>,
    /// What the learning run heard; `None` for a classification written by hand.
    pub evidence: Option<MenuEvidence>,
}

/// The prompts a learning run heard and their fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MenuEvidence {
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl Rpc for BeginListening {
    const NAME: &'static str = "begin_listening";
    /// Refused: `unknown_session`, `bad_token`, `used`, `not_listening`.
    type Answer = Decision<Listening>;
    fn examples() -> Vec<Self> {
        vec![Self { session_id: session(), token: "d2hhdCBhIHRva2VuIGxvb2tzIGxpa2UsIDMyIGJ5dGVz".into() }]
    }
}

/// `record_classification_run`: a run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordClassificationRun {
    #[serde(rename = "p_run_id")]
    pub run_id: RunId,
    /// The listener's verdict, `{classification, confidence, ivr_actions, evidence}` (a bad shape: an error).
    #[serde(rename = "p_verdict")]
    pub verdict: Value,
    /// What it heard, on the audio clock.
    #[serde(rename = "p_timeline")]
    pub timeline: Option<Value>,
    #[serde(rename = "p_stt_seconds")]
    pub stt_seconds: Option<f64>,
}

/// `record_classification_run`'s answer (the same again for a finished run).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunRecorded {
    /// The verdict became the phone's classification.
    pub cached: bool,
    pub classification_id: Option<Uuid>,
}

impl Rpc for RecordClassificationRun {
    const NAME: &'static str = "record_classification_run";
    /// `null`: unknown run; refused: `abandoned`.
    type Answer = Option<Decision<RunRecorded>>;
    fn examples() -> Vec<Self> {
        let verdict = json!({"classification": "ivr_then_human", "confidence": 0.9,
            "ivr_actions": [{"action": "dtmf", "value": "1", "timing_ms": 2000}],
            "evidence": {"prompts": ["for appointments press 1"], "fingerprint": "for appointments press 1", "reasons": []}});
        let timeline = Some(json!({"duration_ms": 9000, "events": []}));
        vec![Self { run_id: run(), verdict, timeline, stt_seconds: Some(9.5) }]
    }
}

/// `invalidate_classification`: a verification run heard another phone system than the cached one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidateClassification {
    #[serde(rename = "p_run_id")]
    pub run_id: RunId,
    #[serde(rename = "p_reason")]
    pub reason: String,
}

/// `invalidate_classification`'s answer (the same again once invalidated).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Invalidated {
    /// `Learn`: the run goes on learning; `Verify`: it finished (another learning run of the phone listens).
    pub purpose: RunPurpose,
    /// The classification invalidated.
    pub classification_id: Option<Uuid>,
}

impl Rpc for InvalidateClassification {
    const NAME: &'static str = "invalidate_classification";
    /// `null`: unknown run; refused: `not_verify`, `not_listening`.
    type Answer = Option<Decision<Invalidated>>;
    fn examples() -> Vec<Self> {
        vec![Self { run_id: run(), reason: "another prompt".into() }]
    }
}

// --------------------------------------------------------------------------------------------- batches

/// `create_batch`: a whole batch in one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateBatch {
    /// `outcall_core::batch::NewBatch::rpc_request`.
    #[serde(rename = "p_request")]
    pub request: Value,
}

/// `create_batch`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchCreated {
    Created(BatchAccepted),
    /// The same `Idempotency-Key` and body as an earlier batch: that batch's answer again.
    Replayed(BatchAccepted),
    /// The same key with another body; nothing written.
    Conflict {
        batch_id: BatchId,
    },
    /// What only the database could see; nothing written.
    Invalid {
        errors: Vec<DatabaseItemError>,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchAccepted {
    pub batch_id: BatchId,
    pub accepted: u64,
    /// `[{pendingCallId, code: not_found, message}]`, passed on as it is.
    pub rejected: Vec<Value>,
    /// `{calls, learning_calls, expected_call_minutes, usd_per_minute: {vapi, twilio, stt}, usd}`
    /// (`outcall_private.batch_cost_estimate`), passed on as it is.
    #[serde(default)]
    pub cost_estimate: Value,
}

/// One problem `create_batch` found.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DatabaseItemError {
    /// The target's index, or absent for a copied `pendingCallIds` entry.
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(default)]
    pub pending_call_id: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
    /// `invalid_timezone`, `window_outside_policy`, `nothing_to_call`, `expires_in_past`.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
}

impl Rpc for CreateBatch {
    const NAME: &'static str = "create_batch";
    type Answer = BatchCreated;
    fn examples() -> Vec<Self> {
        vec![Self { request: json!({"name": "example", "targets": []}) }]
    }
}

/// `estimate_batch_cost`: what `create_batch` would estimate of the same request, nothing written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateBatchCost {
    /// As `CreateBatch`'s (its idempotency key is ignored).
    #[serde(rename = "p_request")]
    pub request: Value,
}

/// `estimate_batch_cost`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchEstimated {
    Estimated(BatchEstimate),
    /// What only the database could see (as `create_batch`'s).
    Invalid {
        errors: Vec<DatabaseItemError>,
    },
}

/// What creating the batch would accept and estimate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchEstimate {
    pub accepted: u64,
    /// As `BatchAccepted::rejected`.
    pub rejected: Vec<Value>,
    /// As `BatchAccepted::cost_estimate`.
    pub cost_estimate: Value,
}

impl Rpc for EstimateBatchCost {
    const NAME: &'static str = "estimate_batch_cost";
    type Answer = BatchEstimated;
    fn examples() -> Vec<Self> {
        vec![Self { request: json!({"name": "example", "targets": [], "cost_cap": 10}) }]
    }
}

/// A batch read or change as SQL wrote it (snake_case): the API passes it on in camelCase
/// (`outcall_core::api::batch_answer`), so it is not read field by field. `None` (SQL null): no such batch.
pub type BatchDocument = Map<String, Value>;

/// `provider_health`: the providers' circuit breaker, its last transitions and the refusals per day
/// (`GET /api/v1/providers`); answered as SQL wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHealth {
    /// The last transitions, 1..200.
    #[serde(rename = "p_transitions")]
    pub transitions: u32,
    /// The refusals of the last UTC days, 1..90.
    #[serde(rename = "p_days")]
    pub days: u32,
}

impl Rpc for ProviderHealth {
    const NAME: &'static str = "provider_health";
    type Answer = Map<String, Value>;
    fn examples() -> Vec<Self> {
        vec![Self { transitions: 20, days: 7 }]
    }
}

/// `list_batches`: a page of batches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListBatches {
    #[serde(rename = "p_limit")]
    pub limit: u32,
    #[serde(rename = "p_offset")]
    pub offset: u32,
}

impl Rpc for ListBatches {
    const NAME: &'static str = "list_batches";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { limit: 50, offset: 0 }]
    }
}

/// `batch_status`: a batch's progress, metadata and a page of its results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchStatus {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
    #[serde(rename = "p_limit")]
    pub limit: u32,
    #[serde(rename = "p_offset")]
    pub offset: u32,
}

impl Rpc for BatchStatus {
    const NAME: &'static str = "batch_status";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch(), limit: 100, offset: 0 }]
    }
}

/// `batch_transcripts`: a page of a batch's transcripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchTranscripts {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
    #[serde(rename = "p_limit")]
    pub limit: u32,
    #[serde(rename = "p_offset")]
    pub offset: u32,
}

impl Rpc for BatchTranscripts {
    const NAME: &'static str = "batch_transcripts";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch(), limit: 100, offset: 0 }]
    }
}

/// `batch_progress_of`: a batch's counts and derived figures (the event stream's read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchProgressOf {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
}

impl Rpc for BatchProgressOf {
    const NAME: &'static str = "batch_progress_of";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch() }]
    }
}

/// `cancel_batch`: `{batch_id, status, cancelled, live}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelBatch {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
}

impl Rpc for CancelBatch {
    const NAME: &'static str = "cancel_batch";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch() }]
    }
}

/// `pause_batch` (the API key's, audited): the batch's progress with `changed` (false: it was paused already), or
/// `{batch_id, status, error: batch_completed | batch_cancelled}`; null for an unknown batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PauseBatch {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
}

impl Rpc for PauseBatch {
    const NAME: &'static str = "pause_batch";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch() }]
    }
}

/// `resume_batch`: as [`PauseBatch`] (`changed` false: it was not paused); the Worker is sent its first row due.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResumeBatch {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
}

impl Rpc for ResumeBatch {
    const NAME: &'static str = "resume_batch";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch() }]
    }
}

/// `retry_failed_batch`: `{batch_id, status, requeued}` or `{batch_id, error: batch_cancelled}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryFailedBatch {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
}

impl Rpc for RetryFailedBatch {
    const NAME: &'static str = "retry_failed_batch";
    type Answer = Option<BatchDocument>;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch() }]
    }
}

// ------------------------------------------------------------------------------------------- operators
// The operators' actions (sql/schema/87_operator_actions.sql). Unlike the functions above, the Worker calls these
// with the operator's own JWT, not the service key: the function checks the caller's role itself (SQLSTATE 42501
// for anyone but an operator: 403), and the audit row records who acted. Arguments it refuses are 22023 (400);
// an unknown batch or classification P0002 (404).

/// What an operator may do to calls (`operator_call_action`'s `p_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallAction {
    /// A `pending`/`retry_pending` row due now (the claim still applies the window and the limits).
    RetryNow,
    /// A `pending`/`retry_pending` row → `cancelled`.
    Cancel,
    /// A `pending`/`retry_pending`/`failed`/`cancelled` row (or `suppressed`, once its phone is off the
    /// do-not-call list) → `pending` with a fresh attempt budget, due now. Refused past the row's expiry.
    Reset,
    /// `archived_at` set (any row not dispatching or calling).
    Archive,
    /// `archived_at` cleared.
    Unarchive,
}

/// At most this many ids in one `operator_call_action` (more: 22023).
pub const MAX_CALL_ACTION_IDS: usize = 500;

/// `operator_call_action`: an operator's action on 1 to [`MAX_CALL_ACTION_IDS`] calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorCallAction {
    #[serde(rename = "p_action")]
    pub action: CallAction,
    #[serde(rename = "p_ids")]
    pub ids: Vec<PendingCallId>,
}

/// `operator_call_action`'s answer: one result per distinct id, in the order sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallActionAnswer {
    pub action: CallAction,
    pub results: Vec<CallActionResult>,
}

/// One call's result: done, or why not (`not_found`, `live`, `terminal`, `completed`, `batch_cancelled`,
/// `expired`, `suppressed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallActionResult {
    pub id: PendingCallId,
    pub ok: bool,
    /// The row's status after the action; `None` for an unknown id.
    pub call_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Rpc for OperatorCallAction {
    const NAME: &'static str = "operator_call_action";
    type Answer = CallActionAnswer;
    fn examples() -> Vec<Self> {
        vec![Self { action: CallAction::RetryNow, ids: vec![pending_call()] }]
    }
}

/// What an operator may do to a batch (`operator_batch_action`'s `p_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchAction {
    /// `cancel_batch`.
    Cancel,
    /// `retry_failed_batch`.
    RetryFailed,
    /// Pause: nothing new of it is dialled (`pause_batch`'s change).
    Pause,
    /// Resume a paused batch (`resume_batch`'s change).
    Resume,
}

/// `operator_batch_action`: `cancel_batch` or `retry_failed_batch` as an operator, audited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorBatchAction {
    #[serde(rename = "p_batch_id")]
    pub batch_id: BatchId,
    #[serde(rename = "p_action")]
    pub action: BatchAction,
}

impl Rpc for OperatorBatchAction {
    const NAME: &'static str = "operator_batch_action";
    /// `cancel_batch`'s or `retry_failed_batch`'s answer with `action` and `ok` (false only for retry_failed
    /// of a cancelled batch: `error: batch_cancelled`). Never null: an unknown batch is P0002.
    type Answer = BatchDocument;
    fn examples() -> Vec<Self> {
        vec![Self { batch_id: batch(), action: BatchAction::Cancel }]
    }
}

/// What an operator may do to a classification (`operator_classification_action`'s `p_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationAction {
    /// Deactivate it (`p_correction`: `{reason}`): the phone is learned again.
    Invalidate,
    /// Replace its type and actions (`p_correction`: `{classification_type, ivr_actions, reason}`).
    Correct,
}

/// `operator_classification_action`: invalidate or correct an active classification, audited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorClassificationAction {
    #[serde(rename = "p_classification_id")]
    pub classification_id: Uuid,
    #[serde(rename = "p_action")]
    pub action: ClassificationAction,
    /// The request's body as it came (SQL checks it: a missing reason or a correction the table refuses is 22023).
    #[serde(rename = "p_correction")]
    pub correction: Value,
}

/// `operator_classification_action`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationActionAnswer {
    pub action: ClassificationAction,
    pub classification_id: Uuid,
    pub ok: bool,
    /// Why nothing changed: `inactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The classification after: `{id, phone_number, classification_type, ivr_actions, confidence, is_active,
    /// classification_expires_at, invalidated_at, invalidated_reason}`, passed on as it is.
    pub classification: Map<String, Value>,
}

impl Rpc for OperatorClassificationAction {
    const NAME: &'static str = "operator_classification_action";
    type Answer = ClassificationActionAnswer;
    fn examples() -> Vec<Self> {
        vec![Self {
            classification_id: Uuid::parse_str("44444444-4444-4444-4444-444444444444").expect("a UUID"),
            action: ClassificationAction::Correct,
            correction: json!({"classification_type": "ivr_only",
                "ivr_actions": [{"action": "dtmf", "value": "1", "timing_ms": 0}], "reason": "press 1, not 2"}),
        }]
    }
}

/// `operator_of`: who a user (the `sub` of a JWT the Worker verified) is to outcall, `{user_id, email, role}`
/// (`GET /api/v1/operator/me`). Called with the service key: no user may ask it about another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorOf {
    #[serde(rename = "p_user_id")]
    pub user_id: Uuid,
}

/// `operator_of`'s answer: `role` is `viewer`, `operator`, or `None` (not on the allow-list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorIdentity {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub role: Option<String>,
}

impl Rpc for OperatorOf {
    const NAME: &'static str = "operator_of";
    type Answer = OperatorIdentity;
    fn examples() -> Vec<Self> {
        vec![Self { user_id: Uuid::nil() }]
    }
}

/// Declares the list: each type listed here is `Listed` (so it may be an [`Rpc`]) and in [`contract`].
macro_rules! contract {
    ($($request:ty),+ $(,)?) => {
        $(impl sealed::Listed for $request {})+
        fn listed() -> Vec<(&'static str, Map<String, Value>)> {
            let mut all = Vec::new();
            $(all.extend(entries::<$request>());)+
            all
        }

        /// Reads `answer` as the answer type of the listed function `function` (a contract test sends each
        /// example to the database and reads what comes back). `None` for a function not in the list.
        pub fn read_answer(function: &str, answer: Value) -> Option<Result<(), serde_json::Error>> {
            $(if function == <$request as Rpc>::NAME {
                return Some(serde_json::from_value::<<$request as Rpc>::Answer>(answer).map(drop));
            })+
            None
        }
    };
}

contract!(
    ClaimPendingCall,
    ClaimNextDue,
    ReleaseDialSlot,
    ReserveDialSlot,
    RecordDialResult,
    ReconcileDialingSession,
    ApplyTwilioStatus,
    SweepStaleSessions,
    SessionsLackingPrice,
    RecordTwilioPrice,
    ReadCallContext,
    ApplyVapiStatus,
    ApplyCallReport,
    BeginListening,
    RecordClassificationRun,
    InvalidateClassification,
    CreateBatch,
    EstimateBatchCost,
    ListBatches,
    BatchStatus,
    BatchTranscripts,
    BatchProgressOf,
    CancelBatch,
    PauseBatch,
    ResumeBatch,
    RetryFailedBatch,
    OperatorCallAction,
    OperatorBatchAction,
    OperatorClassificationAction,
    OperatorOf,
    sms::CreateSmsBatch,
    sms::ClaimSms,
    sms::RecordSmsSend,
    sms::SmsStatusCallback,
    sms::RecordSmsReply,
    sms::SmsBatchStatus,
    sms::SmsBatchMessages,
    sms::CancelSmsBatch,
    sms::SmsToReconcile,
    sms::ReconcileSms,
    suppression::AddSuppression,
    suppression::RemoveSuppression,
    suppression::ListSuppressions,
    suppression::OperatorSuppressionAction,
    ProviderHealth,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vapi::CallReport;

    fn sent<R: Rpc>(request: &R) -> Value {
        Value::Object(arguments(request))
    }

    fn answer<R: Rpc>(raw: Value) -> Result<R::Answer, serde_json::Error> {
        serde_json::from_value(raw)
    }

    #[test]
    fn every_function_is_listed_once_with_p_arguments() {
        let names = functions();
        assert_eq!(names.len(), 45, "{names:?}");
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "one type per SQL function: {names:?}");
        for (name, args) in contract() {
            assert!(args.keys().all(|k| k.starts_with("p_")), "{name}: {:?}", args.keys().collect::<Vec<_>>());
        }
        let shapes = |name| contract().into_iter().filter(|(n, _)| *n == name).count();
        assert_eq!(shapes("record_dial_result"), 2);
        assert_eq!(shapes("apply_twilio_status"), 2);
        assert_eq!(shapes("claim_next_due"), 1);
        assert_eq!(shapes("record_sms_send"), 4, "accepted, retry, rejected, unknown");
        assert_eq!(shapes("reconcile_sms"), 2, "found, not found");
        assert!(matches!(read_answer("call_context", Value::Null), Some(Ok(()))));
        assert!(matches!(read_answer("reserve_dial_slot", json!({"outcome": "maybe"})), Some(Err(_))));
        assert!(read_answer("no_such_function", Value::Null).is_none());
    }

    #[test]
    fn requests_serialise_to_the_p_argument_names() {
        let id = pending_call();
        assert_eq!(sent(&ClaimPendingCall { pending_call_id: id }), json!({"p_pending_call_id": id.to_string()}));
        assert_eq!(sent(&ClaimNextDue {}), json!({}));
        assert_eq!(sent(&SweepStaleSessions { limit: 50 }), json!({"p_limit": 50}));
        let b = batch();
        assert_eq!(
            sent(&BatchStatus { batch_id: b, limit: 5, offset: 10 }),
            json!({"p_batch_id": b.to_string(), "p_limit": 5, "p_offset": 10})
        );
        assert_eq!(
            sent(&ReconcileDialingSession { candidates: json!([]), is_final: true, session_id: session() }),
            json!({"p_session_id": session().to_string(), "p_candidates": [], "p_final": true})
        );
    }

    #[test]
    fn a_dial_result_sends_either_the_call_sid_or_the_error() {
        let placed = RecordDialResult::new(session(), &DialResult::Placed { call_sid: CALL_SID.into() });
        assert_eq!(sent(&placed), json!({"p_session_id": session().to_string(), "p_call_sid": CALL_SID}));
        let failed = RecordDialResult::new(
            session(),
            &DialResult::Failed { reason: "x".into(), code: None, retryable: true, failure: None },
        );
        assert_eq!(
            sent(&failed),
            json!({"p_session_id": session().to_string(), "p_error": "x", "p_error_code": null, "p_retryable": true,
                   "p_failure": null})
        );
    }

    #[test]
    fn a_looked_up_status_leaves_out_what_only_a_callback_has() {
        let mut status = ApplyTwilioStatus {
            call_sid: CALL_SID.into(),
            call_status: CallStatus::InProgress,
            duration_seconds: None,
            session_id: None,
            callback: Some(CallbackDetails { sequence_number: None, answered_by: Some("human".into()) }),
        };
        assert_eq!(
            sent(&status),
            json!({"p_call_sid": CALL_SID, "p_call_status": "in-progress", "p_sequence_number": null,
                   "p_answered_by": "human", "p_duration_seconds": null, "p_session_id": null})
        );
        status.callback = None;
        status.session_id = Some(session());
        assert_eq!(
            sent(&status),
            json!({"p_call_sid": CALL_SID, "p_call_status": "in-progress", "p_duration_seconds": null,
                   "p_session_id": session().to_string()})
        );
    }

    #[test]
    fn a_call_report_sends_every_field() {
        let report = CallReport {
            vapi_call_id: None,
            ended_reason: "voicemail".into(),
            outcome: Outcome::NotReached,
            summary: None,
            success_evaluation: None,
            structured_data: None,
            transcript: Some("t".into()),
            duration_seconds: Some(3.5),
            cost: None,
        };
        assert_eq!(
            sent(&ApplyCallReport::new(pending_call(), &report)),
            json!({"p_pending_call_id": pending_call().to_string(), "p_vapi_call_id": null, "p_outcome": "not_reached",
                   "p_ended_reason": "voicemail", "p_summary": null, "p_success_evaluation": null,
                   "p_structured_data": null, "p_transcript": "t", "p_duration_seconds": 3.5, "p_cost": null})
        );
    }

    #[test]
    fn null_answers_are_none() {
        assert_eq!(answer::<ReserveDialSlot>(Value::Null).unwrap(), None);
        assert_eq!(answer::<ReleaseDialSlot>(Value::Null).unwrap(), None);
        assert_eq!(answer::<RecordDialResult>(Value::Null).unwrap(), None);
        assert_eq!(answer::<ReconcileDialingSession>(Value::Null).unwrap(), None);
        assert_eq!(answer::<ApplyTwilioStatus>(Value::Null).unwrap(), None);
        assert_eq!(answer::<ApplyVapiStatus>(Value::Null).unwrap(), None);
        assert_eq!(answer::<ApplyCallReport>(Value::Null).unwrap(), None);
        assert_eq!(answer::<ReadCallContext>(Value::Null).unwrap(), None);
        assert_eq!(answer::<BatchProgressOf>(Value::Null).unwrap(), None);
        assert_eq!(answer::<RecordClassificationRun>(Value::Null).unwrap(), None);
        assert_eq!(answer::<InvalidateClassification>(Value::Null).unwrap(), None);
        assert!(answer::<BeginListening>(Value::Null).is_err(), "begin_listening always answers ok");
        assert!(matches!(answer::<ClaimNextDue>(Value::Null).unwrap(), ClaimAnswer::NotClaimed { .. }));
        assert!(answer::<SweepStaleSessions>(Value::Null).is_err(), "the sweep always answers");
        assert!(answer::<CreateBatch>(Value::Null).is_err());
    }

    #[test]
    fn reads_the_dial_answers() {
        assert_eq!(answer::<ReserveDialSlot>(json!({"outcome": "reserved"})).unwrap(), Some(SlotReservation::Reserved));
        assert_eq!(
            answer::<ReserveDialSlot>(json!({"outcome": "wait", "retry_after_ms": 420})).unwrap(),
            Some(SlotReservation::Wait { retry_after_ms: 420, reason: None })
        );
        assert_eq!(answer::<ReserveDialSlot>(json!({"outcome": "settled"})).unwrap(), Some(SlotReservation::Settled));
        assert_eq!(
            answer::<ReserveDialSlot>(json!({"outcome": "wait", "retry_after_ms": 30000, "reason": "breaker_open"}))
                .unwrap(),
            Some(SlotReservation::Wait { retry_after_ms: 30_000, reason: Some("breaker_open".into()) })
        );
        let opened = json!({"from": "closed", "to": "open", "reason": "failures", "failures": 5, "provider": "twilio"});
        let released = answer::<ReleaseDialSlot>(json!({"released": true, "breaker": opened})).unwrap().unwrap();
        assert_eq!(released.breaker.unwrap().to_string(), "closed -> open (failures; 5 twilio failures)");
        assert_eq!(answer::<ReleaseDialSlot>(json!({"released": false})).unwrap().unwrap().breaker, None);
        let session_id = session().to_string();
        let recorded =
            answer::<RecordDialResult>(json!({"session_id": session_id, "pending_call_id": pending_call().to_string(),
            "call_status": "retry_pending", "changed": true, "attempt_given_back": true}))
            .unwrap()
            .unwrap();
        assert!(recorded.attempt_given_back && recorded.breaker.is_none());
        assert_eq!(
            sent(&ReleaseDialSlot { session_id: session(), failure: Some(ProviderFailure::Throttled) }),
            json!({"p_session_id": session_id, "p_failure": "throttled"})
        );
        assert!(answer::<ReserveDialSlot>(json!({"reserved": true})).is_err(), "an unknown shape is an error");
        assert_eq!(
            answer::<ReleaseDialSlot>(json!({"released": false})).unwrap(),
            Some(Released { released: false, breaker: None })
        );
        let reconciled = answer::<ReconcileDialingSession>(json!({"session_id": session().to_string(),
            "outcome": "adopted", "call_sid": CALL_SID, "call_status": "calling"}))
        .unwrap()
        .unwrap();
        assert_eq!((reconciled.outcome, reconciled.call_sid.as_deref()), (ReconcileOutcome::Adopted, Some(CALL_SID)));
        let none = answer::<ReconcileDialingSession>(json!({"session_id": session().to_string(),
            "outcome": "none", "call_sid": null, "call_status": "dispatching"}))
        .unwrap()
        .unwrap();
        assert_eq!(none.outcome, ReconcileOutcome::None);
        let recorded = answer::<RecordDialResult>(json!({"session_id": session().to_string(),
            "pending_call_id": pending_call().to_string(), "call_status": "calling", "changed": true}))
        .unwrap()
        .unwrap();
        assert!(recorded.changed);
    }

    #[test]
    fn pass_through_answers_serialise_as_the_database_wrote_them() {
        let raw = json!({"session_id": session().to_string(), "pending_call_id": pending_call().to_string(),
                         "session_status": "completed", "call_status": "calling", "changed": true, "slot_freed": true});
        let applied = answer::<ApplyTwilioStatus>(raw.clone()).unwrap().unwrap();
        assert!(applied.slot_freed);
        assert_eq!(serde_json::to_string(&applied).unwrap(), raw.to_string());
        let raw = json!({"pending_call_id": pending_call().to_string(), "session_id": session().to_string(),
                         "vapi_status": null, "call_status": "calling", "changed": false});
        let vapi = answer::<ApplyVapiStatus>(raw.clone()).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&vapi).unwrap(), raw.to_string());
        let raw = json!({"pending_call_id": pending_call().to_string(), "session_id": session().to_string(),
                         "call_status": "completed", "changed": true});
        let report = answer::<ApplyCallReport>(raw.clone()).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&report).unwrap(), raw.to_string());
        assert!(answer::<ApplyTwilioStatus>(json!({"changed": true})).is_err(), "slot_freed is required");
    }

    #[test]
    fn reads_create_batch_answers() {
        let b = batch().to_string();
        let created =
            answer::<CreateBatch>(json!({"outcome": "created", "batch_id": b, "accepted": 3, "rejected": []}));
        assert!(matches!(created, Ok(BatchCreated::Created(BatchAccepted { accepted: 3, .. }))));
        let replayed =
            answer::<CreateBatch>(json!({"outcome": "replayed", "batch_id": b, "accepted": 3, "rejected": []}));
        assert!(matches!(replayed, Ok(BatchCreated::Replayed(_))));
        assert!(matches!(
            answer::<CreateBatch>(json!({"outcome": "conflict", "batch_id": b})),
            Ok(BatchCreated::Conflict { .. })
        ));
        let invalid =
            answer::<CreateBatch>(json!({"outcome": "invalid", "errors": [{"index": 0, "pending_call_id": null,
            "field": "clinic_timezone", "code": "invalid_timezone", "message": "m", "value": "Mars/Base"}]}))
            .unwrap();
        assert!(matches!(invalid, BatchCreated::Invalid { errors } if errors[0].index == Some(0)));
        assert!(answer::<CreateBatch>(json!({"outcome": "maybe"})).is_err());
        let estimated = answer::<EstimateBatchCost>(
            json!({"outcome": "estimated", "accepted": 2, "rejected": [], "cost_estimate": {"calls": 2, "usd": 0.5}}),
        );
        assert!(matches!(estimated, Ok(BatchEstimated::Estimated(BatchEstimate { accepted: 2, .. }))));
        assert!(matches!(
            answer::<EstimateBatchCost>(json!({"outcome": "invalid", "errors": []})),
            Ok(BatchEstimated::Invalid { .. })
        ));
        assert!(answer::<CreateBatch>(json!({})).is_err());
    }

    #[test]
    fn learning_requests_serialise_to_the_p_argument_names() {
        let begin = BeginListening { session_id: session(), token: "tok".into() };
        assert_eq!(sent(&begin), json!({"p_session_id": session().to_string(), "p_token": "tok"}));
        let record =
            RecordClassificationRun { run_id: run(), verdict: json!({"x": 1}), timeline: None, stt_seconds: Some(2.5) };
        assert_eq!(
            sent(&record),
            json!({"p_run_id": run().to_string(), "p_verdict": {"x": 1}, "p_timeline": null, "p_stt_seconds": 2.5})
        );
        let invalidate = InvalidateClassification { run_id: run(), reason: "changed".into() };
        assert_eq!(sent(&invalidate), json!({"p_run_id": run().to_string(), "p_reason": "changed"}));
    }

    #[test]
    fn a_claim_carries_its_listener_and_debug_hides_the_token() {
        let claim = json!({"session_id": session().to_string(), "pending_call_id": pending_call().to_string(),
            "attempt": 1, "phone": "+15550001001", "classification": null,
            "listen": {"run_id": run().to_string(), "purpose": "learn", "token": "s3cr3t-t0ken"}});
        let ClaimAnswer::Claimed(claim) = answer::<ClaimPendingCall>(claim).unwrap() else { panic!("a claim") };
        let listen = claim.listen.as_ref().unwrap();
        assert_eq!((listen.run_id, listen.purpose, listen.token.as_str()), (run(), RunPurpose::Learn, "s3cr3t-t0ken"));
        assert!(!format!("{claim:?}").contains("s3cr3t"), "the token stays out of logs");
        let none = json!({"session_id": session().to_string(), "pending_call_id": pending_call().to_string(),
            "attempt": 1, "phone": "+15550001001", "listen": null});
        assert!(matches!(answer::<ClaimNextDue>(none).unwrap(), ClaimAnswer::Claimed(c) if c.listen.is_none()));
        let bad = json!({"session_id": session().to_string(), "pending_call_id": pending_call().to_string(),
            "attempt": 1, "phone": "+15550001001", "listen": {"run_id": run().to_string(), "purpose": "guess", "token": "t"}});
        assert!(answer::<ClaimNextDue>(bad).is_err(), "an unknown purpose is an error");
    }

    #[test]
    fn reads_the_learning_answers() {
        let learn = answer::<BeginListening>(json!({"ok": true, "run_id": run().to_string(), "purpose": "learn",
            "phone_known": false, "classification": null}))
        .unwrap();
        assert_eq!(
            learn,
            Decision::Done(Listening {
                run_id: run(),
                purpose: RunPurpose::Learn,
                phone_known: false,
                classification: None
            })
        );
        let verify = answer::<BeginListening>(json!({"ok": true, "run_id": run().to_string(), "purpose": "verify",
            "phone_known": true, "classification": {"id": pending_call().to_string(), "classification_type": "ivr_only",
            "ivr_actions": [{"action": "dtmf", "value": "1", "timing_ms": 2000}],
            "evidence": {"prompts": ["press 1"], "fingerprint": "press 1"}}}))
        .unwrap();
        let Decision::Done(Listening { classification: Some(expected), .. }) = verify else { panic!("{verify:?}") };
        assert_eq!(expected.classification_type, ClassificationType::IvrOnly);
        assert_eq!(expected.evidence.and_then(|e| e.fingerprint).as_deref(), Some("press 1"));
        assert_eq!(
            answer::<BeginListening>(json!({"ok": false, "reason": "used"})).unwrap(),
            Decision::Refused("used".into())
        );
        assert!(answer::<BeginListening>(json!({"ok": true, "purpose": "learn"})).is_err(), "no run_id");
        assert!(answer::<BeginListening>(json!({"ok": false})).is_err(), "no reason");
        assert!(answer::<BeginListening>(json!({"reason": "used"})).is_err(), "no ok");

        let id = Uuid::parse_str("44444444-4444-4444-4444-444444444444").unwrap();
        assert_eq!(
            answer::<RecordClassificationRun>(json!({"ok": true, "cached": true, "classification_id": id})).unwrap(),
            Some(Decision::Done(RunRecorded { cached: true, classification_id: Some(id) }))
        );
        assert_eq!(
            answer::<RecordClassificationRun>(json!({"ok": false, "reason": "abandoned"})).unwrap(),
            Some(Decision::Refused("abandoned".into()))
        );
        assert_eq!(
            answer::<InvalidateClassification>(json!({"ok": true, "purpose": "learn", "classification_id": id}))
                .unwrap(),
            Some(Decision::Done(Invalidated { purpose: RunPurpose::Learn, classification_id: Some(id) }))
        );
        assert_eq!(
            answer::<InvalidateClassification>(json!({"ok": false, "reason": "not_verify"})).unwrap(),
            Some(Decision::Refused("not_verify".into()))
        );
    }

    #[test]
    fn operator_actions_serialise_to_the_p_argument_names() {
        let id = pending_call();
        assert_eq!(
            sent(&OperatorCallAction { action: CallAction::RetryNow, ids: vec![id] }),
            json!({"p_action": "retry_now", "p_ids": [id.to_string()]})
        );
        let actions = [CallAction::Cancel, CallAction::Reset, CallAction::Archive, CallAction::Unarchive];
        let names: Vec<Value> = actions.iter().map(|a| serde_json::to_value(a).unwrap()).collect();
        assert_eq!(names, [json!("cancel"), json!("reset"), json!("archive"), json!("unarchive")]);
        assert_eq!(
            sent(&OperatorBatchAction { batch_id: batch(), action: BatchAction::RetryFailed }),
            json!({"p_batch_id": batch().to_string(), "p_action": "retry_failed"})
        );
        let class = Uuid::parse_str("44444444-4444-4444-4444-444444444444").unwrap();
        assert_eq!(
            sent(&OperatorClassificationAction {
                classification_id: class,
                action: ClassificationAction::Invalidate,
                correction: json!({"reason": "menu changed"})
            }),
            json!({"p_classification_id": class.to_string(), "p_action": "invalidate",
                   "p_correction": {"reason": "menu changed"}})
        );
    }

    #[test]
    fn reads_the_operator_action_answers() {
        let id = pending_call().to_string();
        let raw = json!({"action": "cancel", "results": [
            {"id": id, "ok": true, "call_status": "cancelled"},
            {"id": id, "ok": false, "call_status": null, "reason": "not_found"}]});
        let answer_ = answer::<OperatorCallAction>(raw.clone()).unwrap();
        assert_eq!(answer_.action, CallAction::Cancel);
        assert_eq!((answer_.results[1].ok, answer_.results[1].reason.as_deref()), (false, Some("not_found")));
        assert_eq!(serde_json::to_value(&answer_).unwrap(), raw, "passed on as the database wrote it");
        assert!(answer::<OperatorCallAction>(json!({"action": "explode", "results": []})).is_err());
        let batch_answer = answer::<OperatorBatchAction>(json!({"action": "retry_failed", "ok": false,
            "batch_id": batch().to_string(), "error": "batch_cancelled"}))
        .unwrap();
        assert_eq!(batch_answer["ok"], json!(false));
        assert!(answer::<OperatorBatchAction>(Value::Null).is_err(), "an unknown batch is an error, not null");
        let class = answer::<OperatorClassificationAction>(json!({"action": "invalidate",
            "classification_id": "44444444-4444-4444-4444-444444444444", "ok": false, "reason": "inactive",
            "classification": {"is_active": false}}))
        .unwrap();
        assert_eq!((class.ok, class.reason.as_deref()), (false, Some("inactive")));
    }

    #[test]
    fn reads_a_call_context_and_a_batch_document() {
        let ctx = answer::<ReadCallContext>(json!({"employee_name": "Dana"})).unwrap().unwrap();
        assert_eq!(ctx.variable_values()["employee_name"], "Dana");
        assert!(answer::<ReadCallContext>(json!("text")).is_err());
        let doc = answer::<BatchProgressOf>(json!({"batch_id": batch().to_string(), "completed_at": null})).unwrap();
        assert_eq!(doc.unwrap()["completed_at"], Value::Null);
    }
}
