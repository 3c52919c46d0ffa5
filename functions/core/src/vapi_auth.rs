//! Checking that a server message really comes from VAPI, by the credential configured for our
//! server URL: a shared secret (the legacy `X-Vapi-Secret` header or `Authorization: Bearer`), or an
//! HMAC-SHA256 signature over `{timestamp}.{body}`. The timestamp header is required (a signature over
//! the body alone could be replayed forever); the body-only form is accepted only when
//! `VAPI_HMAC_ALLOW_NO_TIMESTAMP=true`.
//!
//! The check has two stages so the Worker reads no body for a caller the headers already refuse:
//! [`VapiCredential::check_headers`] (everything but the MAC: the bearer secret, the presence of the
//! signature and timestamp, the timestamp's age), then [`VapiCredential::check_body`] (the MAC, which
//! needs the body; read under the route's cap).

use crate::error::{constant_time_eq, ApiError};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signed timestamp may be from our clock before the message counts as a replay.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// The credential VAPI sends with every server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VapiCredential {
    /// `X-Vapi-Secret: <secret>` or `Authorization: Bearer <secret>`.
    Bearer { secret: String },
    /// `signature_header: hex or base64 of HMAC-SHA256(secret, "{timestamp}.{body}")`, optionally
    /// prefixed `sha256=`. `allow_no_timestamp` (`VAPI_HMAC_ALLOW_NO_TIMESTAMP`) also accepts a message
    /// without `timestamp_header`, signed over the body alone.
    Hmac { secret: String, signature_header: String, timestamp_header: String, allow_no_timestamp: bool },
}

/// What the headers settled: everything, or a signature still to be checked against the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderCheck {
    /// The bearer credential matched: the body needs no check.
    Verified,
    /// An HMAC signature (and its timestamp, when sent) to check over the body.
    Signed { signature: String, timestamp: Option<String> },
}

impl VapiCredential {
    /// Whether the credential is checked over the body (HMAC), not by a header alone.
    pub fn needs_body(&self) -> bool {
        matches!(self, Self::Hmac { .. })
    }

    /// The checks that need no body. `header` looks a request header up by name; `now_ms` is Unix
    /// milliseconds. A missing credential (or, for HMAC, a missing timestamp) is 401, a wrong or stale
    /// one 403. Messages never echo what was sent.
    pub fn check_headers(&self, header: impl Fn(&str) -> Option<String>, now_ms: i64) -> Result<HeaderCheck, ApiError> {
        match self {
            Self::Bearer { secret } => {
                let given = header("X-Vapi-Secret")
                    .or_else(|| header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned)))
                    .ok_or_else(|| ApiError::unauthorized("the VAPI credential (X-Vapi-Secret) is missing"))?;
                if constant_time_eq(given.trim().as_bytes(), secret.as_bytes()) {
                    Ok(HeaderCheck::Verified)
                } else {
                    Err(forbidden("the VAPI credential does not match"))
                }
            }
            Self::Hmac { signature_header, timestamp_header, allow_no_timestamp, .. } => {
                let signature = header(signature_header)
                    .ok_or_else(|| ApiError::unauthorized(format!("{signature_header} is missing")))?;
                let timestamp = header(timestamp_header);
                match &timestamp {
                    Some(ts) => {
                        let sent_ms =
                            timestamp_ms(ts).ok_or_else(|| forbidden(format!("{timestamp_header} is invalid")))?;
                        if now_ms.abs_diff(sent_ms) > MAX_CLOCK_SKEW_MS.unsigned_abs() {
                            return Err(forbidden(format!("{timestamp_header} is too far from now")));
                        }
                    }
                    None if *allow_no_timestamp => {}
                    None => return Err(ApiError::unauthorized(format!("{timestamp_header} is missing"))),
                }
                Ok(HeaderCheck::Signed { signature, timestamp })
            }
        }
    }

    /// The check over the body, after [`Self::check_headers`]: the HMAC of `{timestamp}.{body}` (or of
    /// the body alone, when no timestamp was sent and that is allowed) must match; 403 otherwise.
    pub fn check_body(&self, check: &HeaderCheck, body: &str) -> Result<(), ApiError> {
        let (Self::Hmac { secret, signature_header, .. }, HeaderCheck::Signed { signature, timestamp }) = (self, check)
        else {
            return Ok(());
        };
        let payload = match timestamp {
            Some(ts) => format!("{ts}.{body}"),
            None => body.to_owned(),
        };
        let expected = hmac_sha256(secret, &payload);
        let given = signature.trim();
        let given = given.strip_prefix("sha256=").unwrap_or(given);
        let hex = hex(&expected);
        let b64 = base64::engine::general_purpose::STANDARD.encode(expected);
        if constant_time_eq(given.to_ascii_lowercase().as_bytes(), hex.as_bytes())
            | constant_time_eq(given.as_bytes(), b64.as_bytes())
        {
            Ok(())
        } else {
            Err(forbidden(format!("{signature_header} does not match")))
        }
    }

    /// Both stages at once (when the body is already at hand).
    pub fn verify(&self, header: impl Fn(&str) -> Option<String>, body: &str, now_ms: i64) -> Result<(), ApiError> {
        let check = self.check_headers(header, now_ms)?;
        self.check_body(&check, body)
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(403, "invalid_signature", message)
}

/// Seconds or milliseconds since the epoch (VAPI's examples use both); told apart by size. `None` for
/// seconds too far from the epoch to be milliseconds in an `i64`.
fn timestamp_ms(raw: &str) -> Option<i64> {
    let n: i64 = raw.trim().parse().ok()?;
    if n < 100_000_000_000 {
        n.checked_mul(1000)
    } else {
        Some(n)
    }
}

pub fn hmac_sha256(secret: &str, payload: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW_MS: i64 = 1_795_000_000_000;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())).collect();
        move |name| map.get(&name.to_ascii_lowercase()).cloned()
    }

    fn hmac_credential() -> VapiCredential {
        VapiCredential::Hmac {
            secret: "s3cret".into(),
            signature_header: "x-signature".into(),
            timestamp_header: "x-timestamp".into(),
            allow_no_timestamp: false,
        }
    }

    #[test]
    fn bearer_accepts_both_header_forms_and_refuses_others() {
        let c = VapiCredential::Bearer { secret: "abc".into() };
        assert!(c.verify(headers(&[("X-Vapi-Secret", "abc")]), "{}", NOW_MS).is_ok());
        assert!(c.verify(headers(&[("Authorization", "Bearer abc")]), "{}", NOW_MS).is_ok());
        assert_eq!(c.verify(headers(&[]), "{}", NOW_MS).unwrap_err().status, 401);
        assert_eq!(c.verify(headers(&[("X-Vapi-Secret", "abd")]), "{}", NOW_MS).unwrap_err().status, 403);
        assert_eq!(c.verify(headers(&[("Authorization", "Basic abc")]), "{}", NOW_MS).unwrap_err().status, 401);
    }

    #[test]
    fn hmac_over_timestamp_and_body() {
        let body = r#"{"message":{"type":"status-update"}}"#;
        let ts = (NOW_MS / 1000).to_string();
        let sig = hex(&hmac_sha256("s3cret", &format!("{ts}.{body}")));
        let c = hmac_credential();
        assert!(c.verify(headers(&[("x-signature", &sig), ("x-timestamp", &ts)]), body, NOW_MS).is_ok());
        let prefixed = format!("sha256={sig}");
        assert!(c.verify(headers(&[("x-signature", &prefixed), ("x-timestamp", &ts)]), body, NOW_MS).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode(hmac_sha256("s3cret", &format!("{ts}.{body}")));
        assert!(c.verify(headers(&[("x-signature", &b64), ("x-timestamp", &ts)]), body, NOW_MS).is_ok());
        // Tampered body, wrong timestamp, stale timestamp, missing signature.
        let tampered = body.replace("status", "state");
        assert_eq!(
            c.verify(headers(&[("x-signature", &sig), ("x-timestamp", &ts)]), &tampered, NOW_MS).unwrap_err().status,
            403
        );
        let other_ts = (NOW_MS / 1000 + 1).to_string();
        assert_eq!(
            c.verify(headers(&[("x-signature", &sig), ("x-timestamp", &other_ts)]), body, NOW_MS).unwrap_err().status,
            403
        );
        let late = NOW_MS + MAX_CLOCK_SKEW_MS + 1000;
        assert_eq!(
            c.verify(headers(&[("x-signature", &sig), ("x-timestamp", &ts)]), body, late).unwrap_err().status,
            403
        );
        assert_eq!(c.verify(headers(&[("x-timestamp", &ts)]), body, NOW_MS).unwrap_err().status, 401);
    }

    #[test]
    fn hmac_without_timestamp_is_refused_unless_allowed() {
        let body = "{}";
        let sig = hex(&hmac_sha256("s3cret", body));
        let refused = hmac_credential().verify(headers(&[("x-signature", &sig)]), body, NOW_MS).unwrap_err();
        assert_eq!((refused.status, refused.code), (401, "unauthorized"));
        assert!(refused.message.contains("x-timestamp"), "{}", refused.message);
        // Refused by the headers alone: no body is needed to say so.
        assert!(hmac_credential().check_headers(headers(&[("x-signature", &sig)]), NOW_MS).is_err());

        let VapiCredential::Hmac { secret, signature_header, timestamp_header, .. } = hmac_credential() else {
            unreachable!()
        };
        let lenient = VapiCredential::Hmac { secret, signature_header, timestamp_header, allow_no_timestamp: true };
        assert!(lenient.verify(headers(&[("x-signature", &sig)]), body, NOW_MS).is_ok());
        assert_eq!(lenient.verify(headers(&[("x-signature", &sig)]), "{ }", NOW_MS).unwrap_err().status, 403);
    }

    #[test]
    fn the_header_stage_settles_everything_but_the_mac() {
        let bearer = VapiCredential::Bearer { secret: "abc".into() };
        assert!(!bearer.needs_body());
        assert_eq!(bearer.check_headers(headers(&[("X-Vapi-Secret", "abc")]), NOW_MS), Ok(HeaderCheck::Verified));
        assert_eq!(bearer.check_body(&HeaderCheck::Verified, "anything"), Ok(()));

        let c = hmac_credential();
        assert!(c.needs_body());
        let ts = (NOW_MS / 1000).to_string();
        let stale = (NOW_MS / 1000 - 3600).to_string();
        let check = c.check_headers(headers(&[("x-signature", "ab"), ("x-timestamp", &ts)]), NOW_MS).unwrap();
        assert_eq!(check, HeaderCheck::Signed { signature: "ab".into(), timestamp: Some(ts.clone()) });
        assert_eq!(c.check_body(&check, "{}").unwrap_err().status, 403);
        let stale = c.check_headers(headers(&[("x-signature", "ab"), ("x-timestamp", &stale)]), NOW_MS);
        assert_eq!(stale.unwrap_err().status, 403);
        assert_eq!(c.check_headers(headers(&[("x-timestamp", &ts)]), NOW_MS).unwrap_err().status, 401);
    }

    #[test]
    fn a_timestamp_out_of_range_is_refused_not_a_panic() {
        // Found by `./dev fuzz`: seconds this negative overflowed on the way to milliseconds (a panic
        // with overflow checks, a wrapped time without).
        let c = hmac_credential();
        for ts in ["-9999999999999999", "-9223372036854775808", "9223372036854775807", "-100000000000"] {
            let refused = c.check_headers(headers(&[("x-signature", "ab"), ("x-timestamp", ts)]), NOW_MS);
            assert_eq!(refused.unwrap_err().status, 403, "{ts}");
        }
        // Nor does a clock at either end of the range overflow the comparison.
        for now in [i64::MIN, i64::MAX] {
            let refused = c.check_headers(headers(&[("x-signature", "ab"), ("x-timestamp", "100000000000")]), now);
            assert_eq!(refused.unwrap_err().status, 403, "{now}");
        }
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex(&hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
