//! Checking that a server message really comes from VAPI, by the credential configured for our
//! server URL: a shared secret (the legacy `X-Vapi-Secret` header or `Authorization: Bearer`), or an
//! HMAC-SHA256 signature over `{timestamp}.{body}` (over the body alone when no timestamp is sent).

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
    /// `signature_header: hex or base64 of HMAC-SHA256(secret, payload)`, optionally prefixed `sha256=`.
    Hmac { secret: String, signature_header: String, timestamp_header: String },
}

impl VapiCredential {
    /// Verifies one request. `header` looks a request header up by name; `now_ms` is Unix milliseconds.
    /// A missing credential is 401, a wrong or stale one 403. Messages never echo what was sent.
    pub fn verify(&self, header: impl Fn(&str) -> Option<String>, body: &str, now_ms: i64) -> Result<(), ApiError> {
        match self {
            Self::Bearer { secret } => {
                let given = header("X-Vapi-Secret")
                    .or_else(|| header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned)))
                    .ok_or_else(|| ApiError::unauthorized("the VAPI credential (X-Vapi-Secret) is missing"))?;
                if constant_time_eq(given.trim().as_bytes(), secret.as_bytes()) {
                    Ok(())
                } else {
                    Err(forbidden("the VAPI credential does not match"))
                }
            }
            Self::Hmac { secret, signature_header, timestamp_header } => {
                let given = header(signature_header)
                    .ok_or_else(|| ApiError::unauthorized(format!("{signature_header} is missing")))?;
                let timestamp = header(timestamp_header);
                if let Some(ts) = &timestamp {
                    let sent_ms =
                        timestamp_ms(ts).ok_or_else(|| forbidden(format!("{timestamp_header} is invalid")))?;
                    if (now_ms - sent_ms).abs() > MAX_CLOCK_SKEW_MS {
                        return Err(forbidden(format!("{timestamp_header} is too far from now")));
                    }
                }
                let payload = match &timestamp {
                    Some(ts) => format!("{ts}.{body}"),
                    None => body.to_owned(),
                };
                let expected = hmac_sha256(secret, &payload);
                let given = given.trim();
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
        }
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(403, "invalid_signature", message)
}

/// Seconds or milliseconds since the epoch (VAPI's examples use both); told apart by size.
fn timestamp_ms(raw: &str) -> Option<i64> {
    let n: i64 = raw.trim().parse().ok()?;
    Some(if n < 100_000_000_000 { n * 1000 } else { n })
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
    fn hmac_without_timestamp_signs_the_body_alone() {
        let body = "{}";
        let sig = hex(&hmac_sha256("s3cret", body));
        assert!(hmac_credential().verify(headers(&[("x-signature", &sig)]), body, NOW_MS).is_ok());
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
