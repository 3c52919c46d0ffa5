//! Supabase-style API keys: HS256 JWTs signed with the project's JWT secret.
//! PostgREST verifies them with the same secret, and the gateway compares
//! `apikey` against them, exactly like a hosted project's anon/service keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Far-future expiry (2032-11-12), the value Supabase's local demo keys use.
pub const KEY_EXPIRY: i64 = 1_983_812_996;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeys {
    pub anon: String,
    pub service_role: String,
}

impl ApiKeys {
    pub fn derive(secret: &str) -> ApiKeys {
        ApiKeys { anon: role_key(secret, "anon"), service_role: role_key(secret, "service_role") }
    }

    /// Whether `candidate` is one of the two keys, compared in constant time.
    pub fn accepts(&self, candidate: &str) -> bool {
        // Evaluate both so the time taken does not reveal which one matched.
        let anon = constant_time_eq(candidate.as_bytes(), self.anon.as_bytes());
        let service = constant_time_eq(candidate.as_bytes(), self.service_role.as_bytes());
        anon | service
    }
}

/// A deterministic key for `role`: the same secret always yields the same key.
pub fn role_key(secret: &str, role: &str) -> String {
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    // Claims in the order Supabase's own keys use; `role` is one of our constants.
    let claims = format!(r#"{{"iss":"supabase-demo","role":"{role}","exp":{KEY_EXPIRY}}}"#);
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_json(part: &str) -> serde_json::Value {
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url without padding");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn key_shape_and_signature() {
        let secret = "super-secret-jwt-token-with-at-least-32-characters";
        let key = role_key(secret, "service_role");
        let parts: Vec<&str> = key.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!key.contains('='), "no padding");
        assert_eq!(decode_json(parts[0]), serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(
            decode_json(parts[1]),
            serde_json::json!({"iss": "supabase-demo", "role": "service_role", "exp": KEY_EXPIRY})
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).expect("valid HS256 signature");
    }

    #[test]
    fn keys_are_deterministic_and_distinct() {
        let a = ApiKeys::derive("s3cret");
        assert_eq!(a, ApiKeys::derive("s3cret"));
        assert_ne!(a.anon, a.service_role);
        assert_ne!(a.anon, ApiKeys::derive("other").anon);
        assert!(a.accepts(&a.anon) && a.accepts(&a.service_role));
        assert!(!a.accepts("nope") && !a.accepts(""));
    }
}
