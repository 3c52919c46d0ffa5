//! Finding out what became of a call we lost track of. The sweep asks Twilio, never redials blindly:
//! a session with a CallSid is looked up by it; a session whose create request went unanswered is
//! matched against Twilio's calls to its phone (the claim allows one unanswered dial per phone at a
//! time, so an unknown call to that phone made since the session began is that session's).

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

/// `GET` URL of the latest calls to one phone.
pub fn calls_to_url(api_base: &str, account_sid: &str, to: &PhoneNumber) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("To", to.as_str())
        .append_pair("PageSize", "50")
        .finish();
    format!("{}?{query}", crate::twilio::calls_url(api_base, account_sid))
}

/// Twilio's calls as `reconcile_dialing_session()` takes them. Calls with an unknown status or an
/// unreadable creation time cannot be matched and are left out.
pub fn candidates(calls: &[CallResource]) -> Value {
    Value::Array(
        calls
            .iter()
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

    #[test]
    fn candidates_keep_only_calls_that_can_be_matched() {
        let page: CallPage = serde_json::from_value(json!({"calls": [
            {"sid": "CA1", "status": "ringing", "date_created": "Sat, 21 Nov 2026 12:00:01 +0000", "duration": null},
            {"sid": "CA2", "status": "teleporting", "date_created": "Sat, 21 Nov 2026 12:00:02 +0000"},
            {"sid": "CA3", "status": "busy", "date_created": "yesterday"}]}))
        .unwrap();
        assert_eq!(
            candidates(&page.calls),
            json!([{"sid": "CA1", "status": "ringing", "date_created": "2026-11-21T12:00:01+00:00", "duration": null}])
        );
    }

    #[test]
    fn urls_name_the_call_or_the_phone() {
        let phone = PhoneNumber::parse("+15550001001").unwrap();
        assert_eq!(
            calls_to_url("http://127.0.0.1:54321/", "AC1", &phone),
            "http://127.0.0.1:54321/2010-04-01/Accounts/AC1/Calls.json?To=%2B15550001001&PageSize=50"
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
}
