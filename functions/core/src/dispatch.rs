//! Turning a claimed row into Twilio's create-call request.

use crate::classification::Classification;
use crate::config::Config;
use crate::ids::{PendingCallId, SessionId};
use crate::phone::PhoneNumber;
use crate::twilio;
use crate::twiml::{self, StreamFork, TwimlError};
use serde::{Deserialize, Deserializer};

/// Path of the Worker route Twilio posts status callbacks to.
pub const STATUS_CALLBACK_PATH: &str = "/twilio/status";

/// The status-callback URL of one attempt. It names the session because Twilio may call back before
/// its answer to the create request (with the CallSid) has reached us.
pub fn status_callback_url(config: &Config, session: SessionId) -> String {
    config.public_url(&format!("{STATUS_CALLBACK_PATH}?session={session}"))
}

/// Path of the Worker route Twilio opens the call's audio stream on (a WebSocket; `routes::Route::ListenerStream`).
pub const STREAM_PATH: &str = "/twilio/stream";

/// The stream's URL as written in the TwiML, and so as Twilio signs it: the public base with `wss://`
/// for `https://` (`ws://` for a loopback `http://` base, which the configuration allows only locally).
pub fn stream_url(public_base_url: &str) -> String {
    let socket_base = match public_base_url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => format!("ws://{rest}"),
        Some((_, rest)) => format!("wss://{rest}"),
        None => public_base_url.to_owned(),
    };
    format!("{socket_base}{STREAM_PATH}")
}

/// The session named in a status callback's query string, if any.
pub fn session_from_query(query: Option<&str>) -> Result<Option<SessionId>, crate::ids::BadId> {
    let value = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(name, _)| name == "session")
        .map(|(_, value)| value.into_owned());
    value.map(|v| SessionId::parse(&v)).transpose()
}

/// What `claim_pending_call()` returns: everything needed to dial, in one round trip.
#[derive(Debug, Clone, Deserialize)]
pub struct Claim {
    pub session_id: SessionId,
    pub pending_call_id: PendingCallId,
    pub attempt: i32,
    pub phone: PhoneNumber,
    #[serde(default)]
    pub classification: Option<Classification>,
    /// Whether other rows were due when this one was claimed (then the Worker keeps dialling).
    #[serde(default)]
    pub more_due: bool,
    /// A listener for this call (`listen` of the claim): the first call to an unknown phone system
    /// learns it, a replay is verified. Absent when another call of the phone is already listened to.
    #[serde(default)]
    pub listen: Option<crate::rpc::Listen>,
    /// The circuit breaker's transition this claim made: it is the half-open probe (for the log).
    #[serde(default)]
    pub breaker: Option<crate::rpc::BreakerTransition>,
}

/// What `claim_pending_call()` and `claim_next_due()` answered.
#[derive(Debug, Clone)]
pub enum ClaimAnswer {
    Claimed(Box<Claim>),
    /// No such row.
    NotFound,
    /// Nothing to dial now: the row is taken, finished or not due (`not_claimable`), its batch is paused
    /// (`paused`), outside its calling window (`outside_window`), the providers' circuit breaker is open or its probe is out
    /// (`breaker_open`, `retry_after_ms` until the cool-down ends), its batch's own limits are reached
    /// (`batch_at_capacity`; `batch_rate_limited` with `retry_after_ms`; from `claim_next_due`: every batch with
    /// a row due is), every slot is live (`at_capacity`), the calls-per-second slot is ahead (`rate_limited`),
    /// its phone is being dialled (`phone_dialing`), nothing is due (`idle`), or a spend cap would be passed
    /// (`cost_cap`, with `held` in the answer: `sql/schema/25_cost.sql`; no wait is known, a drain stops and the cap
    /// must be raised). Or the row
    /// ended instead of being dialled ([`ClaimAnswer::ends_row`]): `suppressed` (its phone is on the
    /// do-not-call list), `expired` (past its `expiresAt`, or its window opens only after it).
    NotClaimed {
        reason: String,
        /// When a try is worth repeating soon: the rate limit's next slot, a phone's dial finishing.
        retry_after_ms: Option<u64>,
    },
}

impl ClaimAnswer {
    /// A reason that ended the row (no call, ever): other rows may still be due, so a dispatch goes on to them.
    pub fn ends_row(reason: &str) -> bool {
        matches!(reason, "suppressed" | "expired")
    }

    /// `{"claimed": false, "reason": ..., "retry_after_ms"?: n}` or a claim; a bare `null` means not claimable.
    pub fn from_rpc(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        if value.is_null() {
            return Ok(Self::NotClaimed { reason: "not_claimable".into(), retry_after_ms: None });
        }
        if value.get("claimed").and_then(serde_json::Value::as_bool) == Some(false) {
            let reason = value.get("reason").and_then(serde_json::Value::as_str).unwrap_or("not_claimable");
            let retry_after_ms = value.get("retry_after_ms").and_then(serde_json::Value::as_u64);
            return Ok(if reason == "not_found" {
                Self::NotFound
            } else {
                Self::NotClaimed { reason: reason.into(), retry_after_ms }
            });
        }
        serde_json::from_value(value).map(|claim| Self::Claimed(Box::new(claim)))
    }
}

/// The answer of `claim_pending_call` / `claim_next_due` as `outcall_core::rpc` reads it: [`ClaimAnswer::from_rpc`].
impl<'de> Deserialize<'de> for ClaimAnswer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_rpc(serde_json::Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// How long a drain may keep claiming after the event that started it. A webhook or a callback's
/// drain runs after its answer (Workers allow 30 s of `waitUntil`); the minute sweep gets most of its
/// minute.
pub const EVENT_DRAIN_BUDGET_MS: u64 = 20_000;
pub const SWEEP_DRAIN_BUDGET_MS: u64 = 50_000;

/// The next move of a drain (the loop that dials due rows one after another while slots are free).
#[derive(Debug, Clone)]
pub enum DrainStep {
    Dial(Box<Claim>),
    /// Claim again after this many milliseconds.
    Wait(u64),
    /// Done: nothing due, every slot live, or the budget spent. The reason is for logs.
    Stop(String),
}

/// Decides a drain's next move from the last claim answer and the time it has used.
pub fn drain_step(answer: ClaimAnswer, elapsed_ms: u64, budget_ms: u64) -> DrainStep {
    match answer {
        ClaimAnswer::Claimed(claim) if elapsed_ms < budget_ms => DrainStep::Dial(claim),
        ClaimAnswer::Claimed(_) => DrainStep::Stop("budget spent".into()),
        ClaimAnswer::NotClaimed { retry_after_ms: Some(wait), .. } if elapsed_ms + wait < budget_ms => {
            DrainStep::Wait(wait)
        }
        ClaimAnswer::NotClaimed { reason, .. } => DrainStep::Stop(reason),
        ClaimAnswer::NotFound => DrainStep::Stop("not_found".into()),
    }
}

/// The create-call request for a claim: form pairs ready to encode.
pub fn create_call_form(config: &Config, claim: &Claim) -> Result<Vec<(&'static str, String)>, TwimlError> {
    let sip_uri = config.vapi_sip.uri_for(claim.pending_call_id);
    let url = stream_url(&config.public_base_url);
    let session = claim.session_id.to_string();
    let fork = claim.listen.as_ref().map(|listen| StreamFork { url: &url, session: &session, token: &listen.token });
    let twiml = twiml::call_twiml(claim.classification.as_ref(), &sip_uri, fork.as_ref())?;
    Ok(twilio::create_call_form(
        &claim.phone,
        &config.twilio_from_number,
        &twiml,
        &status_callback_url(config, claim.session_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VARIABLES;

    fn config() -> Config {
        Config::from_lookup(|name| {
            Some(match name {
                "SUPABASE_URL" | "TWILIO_API_BASE" => "http://127.0.0.1:1".to_owned(),
                "PUBLIC_BASE_URL" => "https://calls.example.com".to_owned(),
                "TWILIO_FROM_NUMBER" => "+15005550006".to_owned(),
                "VAPI_SIP_HOST" => "sip.vapi.ai".to_owned(),
                "VAPI_SIP_USER" => "outcall".to_owned(),
                other if VARIABLES.contains(&other) => "x".to_owned(),
                _ => return None,
            })
        })
        .unwrap()
    }

    #[test]
    fn suppressed_and_expired_end_the_row_and_nothing_else_does() {
        assert!(ClaimAnswer::ends_row("suppressed") && ClaimAnswer::ends_row("expired"));
        for held in ["outside_window", "at_capacity", "rate_limited", "phone_dialing", "not_claimable", "idle"] {
            assert!(!ClaimAnswer::ends_row(held), "{held}");
        }
    }

    #[test]
    fn claim_becomes_a_create_call_request_with_only_the_id_in_sip() {
        let claim: Claim = serde_json::from_str(
            r#"{"session_id":"11111111-1111-1111-1111-111111111111","pending_call_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "attempt":1,"phone":"+15550002001","classification":{"id":"22222222-2222-2222-2222-222222222222",
                "classification_type":"ivr_only","ivr_actions":[{"action":"dtmf","value":"3","timing_ms":2000}]}}"#,
        )
        .unwrap();
        let form = create_call_form(&config(), &claim).unwrap();
        let get = |k: &str| form.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("To"), Some("+15550002001"));
        assert_eq!(get("From"), Some("+15005550006"));
        assert_eq!(
            get("StatusCallback"),
            Some("https://calls.example.com/twilio/status?session=11111111-1111-1111-1111-111111111111")
        );
        let twiml = get("Twiml").unwrap();
        assert!(twiml.contains(r#"<Pause length="2"/><Play digits="3"/>"#));
        assert!(
            twiml.contains("<Sip>sip:outcall@sip.vapi.ai?X-pendingcallid=6f9619ff-8b86-d011-b42d-00c04fc964ff</Sip>")
        );
    }

    #[test]
    fn a_listened_claim_forks_its_audio_to_the_stream_route_with_session_and_token() {
        let claim: Claim = serde_json::from_str(
            r#"{"session_id":"11111111-1111-1111-1111-111111111111","pending_call_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "attempt":1,"phone":"+15550002001","classification":null,
                "listen":{"run_id":"33333333-3333-3333-3333-333333333333","purpose":"learn","token":"tok"}}"#,
        )
        .unwrap();
        let form = create_call_form(&config(), &claim).unwrap();
        let twiml = &form.iter().find(|(n, _)| *n == "Twiml").unwrap().1;
        assert!(twiml.contains(r#"<Stream url="wss://calls.example.com/twilio/stream""#), "{twiml}");
        assert!(twiml.contains(r#"<Parameter name="session" value="11111111-1111-1111-1111-111111111111"/>"#));
        assert!(twiml.contains(r#"<Parameter name="token" value="tok"/>"#));
    }

    #[test]
    fn the_stream_url_is_the_public_base_as_a_socket_url() {
        assert_eq!(stream_url("https://calls.example.com"), "wss://calls.example.com/twilio/stream");
        assert_eq!(stream_url("http://127.0.0.1:8787"), "ws://127.0.0.1:8787/twilio/stream");
    }

    #[test]
    fn the_session_is_read_back_from_the_callback_query() {
        let id = SessionId::parse("11111111-1111-1111-1111-111111111111").unwrap();
        assert_eq!(session_from_query(Some("session=11111111-1111-1111-1111-111111111111")), Ok(Some(id)));
        assert_eq!(session_from_query(Some("x=1")), Ok(None));
        assert_eq!(session_from_query(None), Ok(None));
        assert!(session_from_query(Some("session=nope")).is_err());
    }

    #[test]
    fn reads_every_claim_answer() {
        use serde_json::json;
        assert!(matches!(
            ClaimAnswer::from_rpc(json!({"claimed": false, "reason": "not_found"})),
            Ok(ClaimAnswer::NotFound)
        ));
        assert!(matches!(
            ClaimAnswer::from_rpc(json!({"claimed": false, "reason": "not_claimable"})),
            Ok(ClaimAnswer::NotClaimed { reason, retry_after_ms: None }) if reason == "not_claimable"
        ));
        assert!(matches!(
            ClaimAnswer::from_rpc(json!({"claimed": false, "reason": "rate_limited", "retry_after_ms": 420})),
            Ok(ClaimAnswer::NotClaimed { reason, retry_after_ms: Some(420) }) if reason == "rate_limited"
        ));
        assert!(matches!(ClaimAnswer::from_rpc(serde_json::Value::Null), Ok(ClaimAnswer::NotClaimed { .. })));
        let claim = json!({"session_id":"11111111-1111-1111-1111-111111111111",
            "pending_call_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","attempt":2,"phone":"+15550001001","classification":null});
        assert!(matches!(ClaimAnswer::from_rpc(claim), Ok(ClaimAnswer::Claimed(c)) if c.attempt == 2));
        assert!(ClaimAnswer::from_rpc(json!({"session_id": 1})).is_err());
    }

    #[test]
    fn a_claim_with_a_bad_phone_is_refused_at_parse() {
        let raw = r#"{"session_id":"11111111-1111-1111-1111-111111111111","pending_call_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "attempt":1,"phone":"555","classification":null}"#;
        assert!(serde_json::from_str::<Claim>(raw).is_err());
    }

    fn not_claimed(reason: &str, retry_after_ms: Option<u64>) -> ClaimAnswer {
        ClaimAnswer::NotClaimed { reason: reason.into(), retry_after_ms }
    }

    #[test]
    fn a_drain_dials_waits_for_the_rate_and_stops_when_slots_are_full_or_nothing_is_due() {
        let claim: Claim =
            serde_json::from_value(serde_json::json!({"session_id":"11111111-1111-1111-1111-111111111111",
            "pending_call_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","attempt":1,"phone":"+15550001001"}))
            .unwrap();
        let claimed = || ClaimAnswer::Claimed(Box::new(claim.clone()));
        assert!(matches!(drain_step(claimed(), 0, 1000), DrainStep::Dial(_)));
        assert!(matches!(drain_step(claimed(), 1000, 1000), DrainStep::Stop(_)));
        assert!(matches!(drain_step(not_claimed("rate_limited", Some(300)), 500, 1000), DrainStep::Wait(300)));
        assert!(
            matches!(drain_step(not_claimed("rate_limited", Some(600)), 500, 1000), DrainStep::Stop(r) if r == "rate_limited")
        );
        assert!(matches!(drain_step(not_claimed("phone_dialing", Some(250)), 0, 1000), DrainStep::Wait(250)));
        assert!(
            matches!(drain_step(not_claimed("at_capacity", None), 0, 1000), DrainStep::Stop(r) if r == "at_capacity")
        );
        assert!(matches!(drain_step(not_claimed("idle", None), 0, 1000), DrainStep::Stop(r) if r == "idle"));
        let held = serde_json::json!({"claimed": false, "reason": "cost_cap",
                                      "held": {"reason": "daily_cost_cap", "spent": 9.5, "cap": 10}});
        let held = ClaimAnswer::from_rpc(held).unwrap();
        assert!(
            matches!(drain_step(held, 0, 1000), DrainStep::Stop(r) if r == "cost_cap"),
            "a cap held: the drain stops"
        );
    }
}
