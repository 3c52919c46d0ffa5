//! The SIP URI Twilio dials to hand the call to VAPI.

use crate::ids::PendingCallId;

/// Where VAPI listens for SIP: `sip:<user>@<host>` (host `sip.vapi.ai` in production).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTarget {
    pub user: String,
    pub host: String,
}

/// The one custom header the call carries. VAPI exposes it to the assistant as `{{pendingcallid}}`.
pub const PENDING_CALL_HEADER: &str = "X-pendingcallid";

impl SipTarget {
    /// `sip:user@host?X-pendingcallid=<uuid>`: the row id and nothing else, so no personal data ever
    /// travels in signalling. A UUID needs no URL-encoding and contains no `&`.
    pub fn uri_for(&self, id: PendingCallId) -> String {
        format!("sip:{}@{}?{}={}", self.user, self.host, PENDING_CALL_HEADER, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_carries_exactly_the_pending_call_header() {
        let target = SipTarget { user: "outcall".into(), host: "sip.vapi.ai".into() };
        let id = PendingCallId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let uri = target.uri_for(id);
        assert_eq!(uri, "sip:outcall@sip.vapi.ai?X-pendingcallid=6f9619ff-8b86-d011-b42d-00c04fc964ff");
        let (_, headers) = uri.split_once('?').unwrap();
        assert_eq!(headers.split('&').count(), 1);
        assert!(!uri.contains(';'), "URI parameters are not forwarded as headers");
    }
}
