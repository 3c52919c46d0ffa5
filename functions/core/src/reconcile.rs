//! Finding out what became of a call we lost track of. The sweep asks Twilio, never redials blindly:
//! a session with a CallSid is looked up by it; a session whose create request went unanswered is
//! matched against Twilio's calls from our number to its phone (the claim allows one unanswered dial per
//! phone at a time, so an unknown call from us to that phone made since the session began is that
//! session's; a call to the same number from anyone else on the account is not).

use crate::ids::{PendingCallId, SessionId};
use crate::phone::PhoneNumber;
use crate::twilio::CallStatus;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

/// What `sweep_stale_sessions()` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct SweepReport {
    /// Rows failed because VAPI's report never came after Twilio's `completed`.
    pub reports_missing: u32,
    pub to_reconcile: Vec<StaleSession>,
}

/// A live session with no news for too long.
#[derive(Debug, Clone, Deserialize)]
pub struct StaleSession {
    pub session_id: SessionId,
    pub pending_call_id: PendingCallId,
    pub phone: PhoneNumber,
    #[serde(default)]
    pub call_sid: Option<String>,
}

/// A Call resource as Twilio returns it (only what reconciliation reads).
#[derive(Debug, Clone, Deserialize)]
pub struct CallResource {
    pub sid: String,
    pub status: String,
    /// RFC 2822, e.g. `Sat, 21 Nov 2026 12:00:00 +0000`.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Seconds, as a string (Twilio's encoding) or a number; null until the call ends.
    #[serde(default)]
    pub duration: Option<Value>,
    /// The caller id the call was placed from.
    #[serde(default)]
    pub from: Option<String>,
    /// What the call cost, a decimal string, negative for a charge (`"-0.01400"`); null until Twilio has
    /// priced it (`crate::cost::charged_amount`).
    #[serde(default)]
    pub price: Option<String>,
    /// The currency of `price` (`USD`).
    #[serde(default)]
    pub price_unit: Option<String>,
}

/// One page of `GET .../Calls.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CallPage {
    pub calls: Vec<CallResource>,
}

impl CallResource {
    pub fn call_status(&self) -> Option<CallStatus> {
        CallStatus::parse(&self.status)
    }

    pub fn duration_seconds(&self) -> Option<i32> {
        match self.duration.as_ref()? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        }
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc2822(self.date_created.as_deref()?).ok().map(|t| t.with_timezone(&Utc))
    }
}

/// What Twilio's answer to `GET Calls/{sid}.json` says of a session's call: its status and duration.
/// `None` is Twilio's 404: a call it does not know is no live call, so the session ended `canceled`
/// (never began) and holds no slot.
pub fn looked_up(call: Option<&CallResource>) -> Result<(CallStatus, Option<i32>), String> {
    match call {
        None => Ok((CallStatus::Canceled, None)),
        Some(call) => {
            let status = call.call_status().ok_or_else(|| format!("unknown Twilio status {}", call.status))?;
            Ok((status, call.duration_seconds()))
        }
    }
}

/// `GET` URL of one call.
pub fn call_url(api_base: &str, account_sid: &str, call_sid: &str) -> String {
    format!("{}/2010-04-01/Accounts/{}/Calls/{}.json", api_base.trim_end_matches('/'), account_sid, call_sid)
}

/// `GET` URL of the latest calls from our number to one phone.
pub fn calls_to_url(api_base: &str, account_sid: &str, to: &PhoneNumber, from: &PhoneNumber) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("To", to.as_str())
        .append_pair("From", from.as_str())
        .append_pair("PageSize", "50")
        .finish();
    format!("{}?{query}", crate::twilio::calls_url(api_base, account_sid))
}

/// Twilio's calls as `reconcile_dialing_session()` takes them: only those placed from `from` (whatever
/// filter the listing applied). Calls with an unknown status or an unreadable creation time cannot be
/// matched and are left out.
pub fn candidates(calls: &[CallResource], from: &PhoneNumber) -> Value {
    Value::Array(
        calls
            .iter()
            .filter(|call| call.from.as_deref() == Some(from.as_str()))
            .filter_map(|call| {
                let status = call.call_status()?;
                let created = call.created_at()?;
                Some(json!({
                    "sid": call.sid,
                    "status": status.as_str(),
                    "date_created": created.to_rfc3339(),
                    "duration": call.duration_seconds(),
                }))
            })
            .collect(),
    )
}

/// What the sweep asks Twilio about a stale session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `GET Calls/{sid}.json`: the session knows its call.
    Call { call_sid: String },
    /// `GET Calls.json?To=&From=`: the session's create request went unanswered.
    CallsTo { phone: PhoneNumber, from: PhoneNumber },
}

/// The sweep's next step for one stale session.
#[derive(Debug, Clone, PartialEq)]
pub enum ReconcileAction {
    /// Ask Twilio; report [`ReconcileEvent::Call`], [`ReconcileEvent::Calls`] or [`ReconcileEvent::LookFailed`].
    Look(Lookup),
    /// `apply_twilio_status` with what Twilio says of the call; report [`ReconcileEvent::Recorded`].
    ApplyStatus { call_sid: String, status: CallStatus, duration_seconds: Option<i32> },
    /// `reconcile_dialing_session` (final) with Twilio's calls to the phone; report [`ReconcileEvent::Recorded`].
    MatchCalls { candidates: Value },
    /// Finished: settled, or why not (the next sweep tries again).
    Done(Result<(), String>),
}

/// What came of a [`ReconcileAction`].
#[derive(Debug, Clone)]
pub enum ReconcileEvent {
    /// Twilio's answer about one call; `None` is its 404.
    Call(Option<CallResource>),
    /// Twilio's calls to the phone.
    Calls(CallPage),
    /// Twilio could not be asked, or answered something unreadable.
    LookFailed(String),
    /// SQL took what Twilio said.
    Recorded,
}

/// Reconciling one stale session, with no I/O: the sweep carries out each action and reports back.
#[derive(Debug, Clone)]
pub struct Reconciliation {
    call_sid: Option<String>,
    /// Our caller id: only calls placed from it can be the session's.
    from: PhoneNumber,
    recording: bool,
}

impl Reconciliation {
    /// The first step for `session`: look its call up by CallSid, or list the calls from `from` to its phone.
    pub fn start(session: &StaleSession, from: &PhoneNumber) -> (Self, ReconcileAction) {
        let lookup = match &session.call_sid {
            Some(call_sid) => Lookup::Call { call_sid: call_sid.clone() },
            None => Lookup::CallsTo { phone: session.phone.clone(), from: from.clone() },
        };
        let machine = Self { call_sid: session.call_sid.clone(), from: from.clone(), recording: false };
        (machine, ReconcileAction::Look(lookup))
    }

    pub fn on(&mut self, event: ReconcileEvent) -> ReconcileAction {
        match (event, self.call_sid.clone(), self.recording) {
            (ReconcileEvent::Recorded, _, true) => ReconcileAction::Done(Ok(())),
            (ReconcileEvent::LookFailed(reason), _, false) => ReconcileAction::Done(Err(reason)),
            (ReconcileEvent::Call(call), Some(call_sid), false) => match looked_up(call.as_ref()) {
                Ok((status, duration_seconds)) => {
                    self.recording = true;
                    ReconcileAction::ApplyStatus { call_sid, status, duration_seconds }
                }
                Err(reason) => ReconcileAction::Done(Err(reason)),
            },
            (ReconcileEvent::Calls(page), None, false) => {
                self.recording = true;
                ReconcileAction::MatchCalls { candidates: candidates(&page.calls, &self.from) }
            }
            (event, _, _) => ReconcileAction::Done(Err(format!("unexpected {event:?} while reconciling"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_call_resource_in_twilios_encoding() {
        let call: CallResource = serde_json::from_value(json!({
            "sid": "CA0123456789abcdef0123456789abcdef", "status": "completed",
            "date_created": "Sat, 21 Nov 2026 12:00:00 +0000", "duration": "42", "to": "+15550001001"}))
        .unwrap();
        assert_eq!(call.call_status(), Some(CallStatus::Completed));
        assert_eq!(call.duration_seconds(), Some(42));
        assert_eq!(call.created_at().unwrap().to_rfc3339(), "2026-11-21T12:00:00+00:00");
        let live: CallResource =
            serde_json::from_value(json!({"sid": "CA1", "status": "in-progress", "duration": null})).unwrap();
        assert_eq!(live.duration_seconds(), None);
        assert_eq!(live.created_at(), None);
    }

    #[test]
    fn a_looked_up_call_gives_its_status_and_an_unknown_one_is_canceled() {
        let call: CallResource =
            serde_json::from_value(json!({"sid": "CA1", "status": "busy", "duration": "0"})).unwrap();
        assert_eq!(looked_up(Some(&call)), Ok((CallStatus::Busy, Some(0))));
        assert_eq!(looked_up(None), Ok((CallStatus::Canceled, None)));
        let odd: CallResource = serde_json::from_value(json!({"sid": "CA1", "status": "teleporting"})).unwrap();
        assert!(looked_up(Some(&odd)).is_err());
    }

    fn ours() -> PhoneNumber {
        PhoneNumber::parse("+15005550006").unwrap()
    }

    #[test]
    fn candidates_keep_only_our_calls_that_can_be_matched() {
        let page: CallPage = serde_json::from_value(json!({"calls": [
            {"sid": "CA1", "status": "ringing", "date_created": "Sat, 21 Nov 2026 12:00:01 +0000", "duration": null,
             "from": "+15005550006"},
            {"sid": "CA2", "status": "teleporting", "date_created": "Sat, 21 Nov 2026 12:00:02 +0000", "from": "+15005550006"},
            {"sid": "CA3", "status": "busy", "date_created": "yesterday", "from": "+15005550006"},
            {"sid": "CA4", "status": "ringing", "date_created": "Sat, 21 Nov 2026 12:00:03 +0000", "from": "+14155550100"},
            {"sid": "CA5", "status": "ringing", "date_created": "Sat, 21 Nov 2026 12:00:04 +0000"}]}))
        .unwrap();
        assert_eq!(
            candidates(&page.calls, &ours()),
            json!([{"sid": "CA1", "status": "ringing", "date_created": "2026-11-21T12:00:01+00:00", "duration": null}]),
            "another caller id's call (CA4) or one without (CA5) is never the session's"
        );
    }

    #[test]
    fn urls_name_the_call_or_the_phone() {
        let phone = PhoneNumber::parse("+15550001001").unwrap();
        assert_eq!(
            calls_to_url("http://127.0.0.1:54321/", "AC1", &phone, &ours()),
            "http://127.0.0.1:54321/2010-04-01/Accounts/AC1/Calls.json?To=%2B15550001001&From=%2B15005550006&PageSize=50"
        );
        assert_eq!(
            call_url("https://api.twilio.com", "AC1", "CA9"),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA9.json"
        );
    }

    #[test]
    fn reads_the_sweep_report() {
        let report: SweepReport = serde_json::from_value(json!({"reports_missing": 2, "to_reconcile": [
            {"session_id": "11111111-1111-1111-1111-111111111111", "pending_call_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
             "attempt": 1, "phone": "+15550001001", "call_sid": null, "status": "dialing", "created_at": "2026-11-21T12:00:00Z"}]}))
        .unwrap();
        assert_eq!(report.reports_missing, 2);
        assert!(report.to_reconcile[0].call_sid.is_none());
    }

    fn stale(call_sid: Option<&str>) -> StaleSession {
        serde_json::from_value(json!({"session_id": "11111111-1111-1111-1111-111111111111",
            "pending_call_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "phone": "+15550001001", "call_sid": call_sid}))
        .unwrap()
    }

    #[test]
    fn a_session_with_a_call_sid_is_looked_up_by_it_and_its_status_applied() {
        let (mut r, first) = Reconciliation::start(&stale(Some("CA9")), &ours());
        assert_eq!(first, ReconcileAction::Look(Lookup::Call { call_sid: "CA9".into() }));
        let call = serde_json::from_value(json!({"sid": "CA9", "status": "no-answer", "duration": "0"})).unwrap();
        assert_eq!(
            r.on(ReconcileEvent::Call(Some(call))),
            ReconcileAction::ApplyStatus {
                call_sid: "CA9".into(),
                status: CallStatus::NoAnswer,
                duration_seconds: Some(0)
            }
        );
        assert_eq!(r.on(ReconcileEvent::Recorded), ReconcileAction::Done(Ok(())));
    }

    #[test]
    fn a_call_twilio_does_not_know_ends_canceled() {
        let (mut r, _) = Reconciliation::start(&stale(Some("CA9")), &ours());
        assert_eq!(
            r.on(ReconcileEvent::Call(None)),
            ReconcileAction::ApplyStatus {
                call_sid: "CA9".into(),
                status: CallStatus::Canceled,
                duration_seconds: None
            }
        );
    }

    #[test]
    fn a_session_without_a_call_sid_is_matched_against_the_calls_to_its_phone() {
        let (mut r, first) = Reconciliation::start(&stale(None), &ours());
        let phone = PhoneNumber::parse("+15550001001").unwrap();
        assert_eq!(first, ReconcileAction::Look(Lookup::CallsTo { phone, from: ours() }));
        let page: CallPage = serde_json::from_value(json!({"calls": [
            {"sid": "CA1", "status": "ringing", "date_created": "Sat, 21 Nov 2026 12:00:01 +0000", "duration": null,
             "from": "+15005550006"}]}))
        .unwrap();
        assert_eq!(
            r.on(ReconcileEvent::Calls(page.clone())),
            ReconcileAction::MatchCalls { candidates: candidates(&page.calls, &ours()) }
        );
        assert_eq!(r.on(ReconcileEvent::Recorded), ReconcileAction::Done(Ok(())));
    }

    #[test]
    fn what_cannot_be_learned_is_left_for_the_next_sweep() {
        let (mut r, _) = Reconciliation::start(&stale(Some("CA9")), &ours());
        assert_eq!(
            r.on(ReconcileEvent::LookFailed("twilio 503".into())),
            ReconcileAction::Done(Err("twilio 503".into()))
        );
        let (mut r, _) = Reconciliation::start(&stale(Some("CA9")), &ours());
        let odd = serde_json::from_value(json!({"sid": "CA9", "status": "teleporting"})).unwrap();
        assert!(matches!(r.on(ReconcileEvent::Call(Some(odd))), ReconcileAction::Done(Err(_))));
        let (mut r, _) = Reconciliation::start(&stale(None), &ours());
        assert!(
            matches!(r.on(ReconcileEvent::Call(None)), ReconcileAction::Done(Err(_))),
            "a lookup it did not ask for"
        );
    }
}
