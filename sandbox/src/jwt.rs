//! The project's JWT keys, as a hosted Supabase project has them:
//! - the legacy shared secret (HS256): it signs the anon and service_role API keys, which the gateway compares
//!   `apikey` against;
//! - an asymmetric signing key (ES256, P-256, with a `kid`): it signs users' access tokens (the Auth stand-in),
//!   and its public half is served as the JWKS (`/auth/v1/.well-known/jwks.json`).
//!
//! Both are derived from `SUPABASE_JWT_SECRET`, so every process of the local stack (PostgREST, the sandbox,
//! tests) agrees on them without sharing a key file. PostgREST is started with [`AuthKeys::postgrest_jwks`]
//! (both keys) and so accepts API keys and users' tokens alike, as the hosted Data API does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

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

/// The signing keys of the project: the legacy HS256 secret and the ES256 key users' tokens are signed with.
#[derive(Clone)]
pub struct AuthKeys {
    secret: String,
    signing: SigningKey,
    kid: String,
}

/// Why a token was refused (the Realtime and Auth stand-ins answer 401/403 with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnknownKey,
    BadSignature,
    Expired,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "the token is not a JWT",
            TokenError::UnknownKey => "the token is signed with an unknown key or algorithm",
            TokenError::BadSignature => "the token's signature is invalid",
            TokenError::Expired => "the token has expired",
        })
    }
}

impl AuthKeys {
    pub fn derive(secret: &str) -> AuthKeys {
        // A scalar from the secret; the loop only matters in the ~2^-32 case of a hash outside the curve order.
        let signing = (0u8..)
            .find_map(|counter| {
                let digest = Sha256::new()
                    .chain_update(b"outcall-sandbox ES256 signing key\0")
                    .chain_update(secret.as_bytes())
                    .chain_update([counter])
                    .finalize();
                SigningKey::from_bytes(&digest).ok()
            })
            .expect("some counter yields a valid P-256 scalar");
        let point = signing.verifying_key().to_encoded_point(false);
        let kid = hex(&Sha256::digest(point.as_bytes())[..8]);
        AuthKeys { secret: secret.to_owned(), signing, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "key_ops": ["verify"], "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point")),
        })
    }

    /// What `/auth/v1/.well-known/jwks.json` serves: the public asymmetric keys only (never the shared secret).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// PostgREST's `jwt-secret`: the ES256 public key and the legacy secret as an `oct` key.
    pub fn postgrest_jwks(&self) -> Value {
        let oct = json!({ "kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(self.secret.as_bytes()) });
        json!({ "keys": [self.public_jwk(), oct] })
    }

    /// A compact JWS over `claims`, ES256 with this key's `kid`.
    pub fn sign_es256(&self, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "kid": self.kid, "typ": "JWT" });
        let signing_input = format!("{}.{}", b64_json(&header), b64_json(claims));
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The claims of a token signed by either key, if its signature holds and it has not expired at `now`
    /// (Unix seconds). Checks no audience or issuer: callers decide what they require of the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Map<String, Value>, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, claims) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if claims.contains('.') {
            return Err(TokenError::Malformed);
        }
        let header: Value = decode_b64_json(header).ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        match (header.get("alg").and_then(Value::as_str), header.get("kid").and_then(Value::as_str)) {
            (Some("ES256"), Some(kid)) if kid == self.kid => {
                let signature = Signature::from_slice(&signature).map_err(|_| TokenError::BadSignature)?;
                let key: &VerifyingKey = self.signing.verifying_key();
                key.verify(signing_input.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
            }
            (Some("HS256"), _) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("any key length");
                mac.update(signing_input.as_bytes());
                mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
            }
            _ => return Err(TokenError::UnknownKey),
        }
        let claims: Value = decode_b64_json(claims).ok_or(TokenError::Malformed)?;
        let Value::Object(claims) = claims else { return Err(TokenError::Malformed) };
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > now => Ok(claims),
            Some(_) => Err(TokenError::Expired),
            None => Err(TokenError::Malformed),
        }
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("a Value serializes"))
}

fn decode_b64_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Lowercase hex, as key ids and GoTrue's token hashes are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn es256_tokens_verify_and_carry_their_kid() {
        let keys = AuthKeys::derive("s3cret-s3cret-s3cret-s3cret-s3cret");
        assert_eq!(keys.kid(), AuthKeys::derive("s3cret-s3cret-s3cret-s3cret-s3cret").kid(), "deterministic");
        let token = keys.sign_es256(&json!({"sub": "u1", "role": "authenticated", "exp": 2_000}));
        let header = decode_json(token.split('.').next().unwrap());
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], keys.kid());
        assert_eq!(keys.verify(&token, 1_999).unwrap()["sub"], "u1");
        assert_eq!(keys.verify(&token, 2_000), Err(TokenError::Expired));
        let other = AuthKeys::derive("another-secret-another-secret-xx");
        assert_eq!(other.verify(&token, 0), Err(TokenError::UnknownKey), "another project's kid");
        let mut tampered = token.clone();
        tampered.insert_str(token.find('.').unwrap() + 1, "e30");
        assert!(keys.verify(&tampered, 0).is_err());
    }

    #[test]
    fn legacy_hs256_keys_verify_with_the_secret() {
        let secret = "super-secret-jwt-token-with-at-least-32-characters";
        let keys = AuthKeys::derive(secret);
        let claims = keys.verify(&role_key(secret, "service_role"), 0).unwrap();
        assert_eq!(claims["role"], "service_role");
        assert_eq!(keys.verify(&role_key("wrong", "anon"), 0), Err(TokenError::BadSignature));
        assert_eq!(keys.verify("a.b", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn jwks_lists_only_the_public_key_and_postgrest_gets_both() {
        let keys = AuthKeys::derive("s3cret");
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert!(jwks["keys"][0].get("d").is_none(), "no private part");
        let both = keys.postgrest_jwks();
        assert_eq!(both["keys"][1]["kty"], "oct");
        assert_eq!(URL_SAFE_NO_PAD.decode(both["keys"][1]["k"].as_str().unwrap()).unwrap(), b"s3cret");
    }
}
