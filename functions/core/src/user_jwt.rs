//! Supabase users' access tokens (the dashboard's `Authorization: Bearer <JWT>`), checked the way a current
//! Supabase project signs them (`shared` reference: operators.md §1.4, §1.5):
//! - asymmetric keys (ES256 = P-256, RS256) published as the project's JWKS at
//!   `SUPABASE_URL/auth/v1/.well-known/jwks.json`, picked by the token's `kid` and `alg`;
//! - the legacy shared secret (HS256, `SUPABASE_JWT_SECRET`) where a project still signs with it.
//!
//! Everything but the asymmetric signature check is here: reading the token ([`parse`]), the JWKS
//! ([`Jwks::parse`]), which key verifies it ([`choose_key`]), the HS256 MAC ([`UnverifiedToken::verify_hs256`]),
//! the claims a user's token must carry ([`check_claims`]) and when the Worker's cached JWKS is fetched again
//! ([`JwksCache::should_fetch`]). The Worker checks ES256/RS256 signatures with WebCrypto (no crypto crate in
//! the wasm): [`Jwk::webcrypto`] gives it what `crypto.subtle.importKey` and `verify` take.

use crate::error::{constant_time_eq, ApiError};
use crate::vapi_auth::hmac_sha256;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The longest token read: Supabase's are about 1 KB (more with large metadata); anything past this is refused
/// before a byte is decoded.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// How far past `exp` (and before `nbf`) a token is still taken: clocks of the Worker and Auth drift a little.
pub const LEEWAY_SECONDS: i64 = 30;
/// The audience and the Postgres role of a signed-in user's token.
pub const AUTHENTICATED: &str = "authenticated";

/// Why a token is refused: every one is 401 `unauthorized` with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    UnsupportedAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    NotAUser,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "send the user's access token as Authorization: Bearer <token>",
            Refusal::Malformed => "the access token is not a well-formed JWT",
            Refusal::UnsupportedAlgorithm => "the access token's algorithm is not ES256, RS256 or HS256",
            Refusal::UnknownKey => "the access token is signed with a key this project does not publish",
            Refusal::BadSignature => "the access token's signature is invalid",
            Refusal::Expired => "the access token has expired",
            Refusal::NotYetValid => "the access token is not valid yet",
            Refusal::WrongIssuer => "the access token was issued by another project",
            Refusal::WrongAudience => "the access token is not for authenticated users",
            Refusal::NotAUser => "the access token is not a signed-in user's (role or sub)",
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::unauthorized(refusal.reason())
    }
}

/// The signature algorithms a Supabase project signs users' tokens with and the Worker can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    Rs256,
    Hs256,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }
}

/// The JOSE header's part that matters: how the token is signed and by which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// A token read but not yet verified: nothing in it may be trusted before its signature is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedToken {
    pub header: Header,
    /// `base64url(header) "." base64url(claims)`: what the signature covers.
    pub signing_input: String,
    /// The signature's bytes (ES256: `r || s`, 64 bytes, the form WebCrypto verifies).
    pub signature: Vec<u8>,
    claims: Map<String, Value>,
}

/// `Authorization: Bearer <token>` → the token.
pub fn bearer(authorization: Option<&str>) -> Result<&str, Refusal> {
    let value = authorization.map(str::trim).ok_or(Refusal::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(Refusal::Missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Refusal::Missing);
    }
    Ok(token)
}

/// Reads a compact JWS: three base64url parts, a JSON header with a known `alg`, a JSON object of claims.
pub fn parse(token: &str) -> Result<UnverifiedToken, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(claims_part), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let Value::Object(header) = decode_json(header_part)? else { return Err(Refusal::Malformed) };
    // `crit` names extensions the verifier must understand (RFC 7515 §4.1.11); none are, so such a token is refused.
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Refusal::Malformed),
    };
    let alg = match header.get("alg") {
        Some(Value::String(alg)) if !header.contains_key("crit") => alg,
        _ => return Err(Refusal::Malformed),
    };
    let alg = Algorithm::parse(alg).ok_or(Refusal::UnsupportedAlgorithm)?;
    let Value::Object(claims) = decode_json(claims_part)? else { return Err(Refusal::Malformed) };
    Ok(UnverifiedToken {
        header: Header { alg, kid },
        signing_input: format!("{header_part}.{claims_part}"),
        signature: decode(signature)?,
        claims,
    })
}

fn decode(part: &str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Malformed)
}

/// A part that is base64url of JSON text (read as text into a `Value`: the deserializer the Worker has already).
fn decode_json(part: &str) -> Result<Value, Refusal> {
    let text = String::from_utf8(decode(part)?).map_err(|_| Refusal::Malformed)?;
    serde_json::from_str(&text).map_err(|_| Refusal::Malformed)
}

impl UnverifiedToken {
    /// The legacy path: HMAC-SHA256 of the signing input with the project's JWT secret, compared in constant time.
    pub fn verify_hs256(&self, secret: &str) -> Result<(), Refusal> {
        if self.header.alg != Algorithm::Hs256 {
            return Err(Refusal::UnknownKey);
        }
        let expected = hmac_sha256(secret, &self.signing_input);
        if constant_time_eq(&expected, &self.signature) {
            Ok(())
        } else {
            Err(Refusal::BadSignature)
        }
    }

    /// The claims, once the signature held (the caller's word: see [`check_claims`]).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// The signed-in user a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
}

/// The claims a user's access token must carry, checked after its signature: `exp` (and `nbf` when present)
/// within [`LEEWAY_SECONDS`] of `now` (Unix seconds), `iss` = `issuer` (`SUPABASE_URL/auth/v1`), `aud` =
/// `authenticated` (a string, or an array holding it), `role` = `authenticated` (not `anon` or
/// `service_role`: an API key is no user), `sub` a UUID (the `auth.users` id).
pub fn check_claims(claims: &Map<String, Value>, issuer: &str, now: i64) -> Result<User, Refusal> {
    let seconds = |name: &str| -> Result<Option<i64>, Refusal> {
        match claims.get(name) {
            None => Ok(None),
            Some(value) => value.as_f64().map(|s| Some(s.floor() as i64)).ok_or(Refusal::Malformed),
        }
    };
    let exp = seconds("exp")?.ok_or(Refusal::Malformed)?;
    if now.saturating_sub(LEEWAY_SECONDS) >= exp {
        return Err(Refusal::Expired);
    }
    if seconds("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(Refusal::NotYetValid);
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(issuer) {
        return Err(Refusal::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == AUTHENTICATED,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(AUTHENTICATED)),
        _ => false,
    };
    if !audience_ok {
        return Err(Refusal::WrongAudience);
    }
    if text("role") != Some(AUTHENTICATED) {
        return Err(Refusal::NotAUser);
    }
    let id = text("sub").and_then(|s| Uuid::parse_str(s).ok()).ok_or(Refusal::NotAUser)?;
    let email = text("email").filter(|e| !e.is_empty()).map(str::to_owned);
    Ok(User { id, email })
}

/// The issuer of a project's users' tokens: `SUPABASE_URL/auth/v1`.
pub fn issuer(supabase_url: &str) -> String {
    format!("{}/auth/v1", supabase_url.trim_end_matches('/'))
}

/// Where a project publishes its signing keys.
pub fn jwks_url(supabase_url: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer(supabase_url))
}

// ---------------------------------------------------------------------------------------------- JWKS

/// One public signing key of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    pub alg: Algorithm,
    pub key: PublicKey,
}

/// The public key's numbers, base64url as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// P-256: the point's coordinates, 32 bytes each.
    P256 { x: String, y: String },
    /// RSA: modulus (2048 bits or more) and exponent.
    Rsa { n: String, e: String },
}

/// What WebCrypto takes to check a signature with a [`Jwk`]: the key as `importKey("jwk", ...)` reads it, the
/// import algorithm and the `verify` algorithm, each a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct WebCryptoKey {
    pub jwk: Value,
    pub import_algorithm: Value,
    pub verify_algorithm: Value,
}

impl Jwk {
    /// Only the public numbers travel: WebCrypto refuses a JWK whose `key_ops`, `use` or `ext` disagree with the
    /// import, and the published ones need not.
    pub fn webcrypto(&self) -> WebCryptoKey {
        match &self.key {
            PublicKey::P256 { x, y } => WebCryptoKey {
                jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                import_algorithm: json!({"name": "ECDSA", "namedCurve": "P-256"}),
                verify_algorithm: json!({"name": "ECDSA", "hash": "SHA-256"}),
            },
            PublicKey::Rsa { n, e } => WebCryptoKey {
                jwk: json!({"kty": "RSA", "n": n, "e": e}),
                import_algorithm: json!({"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"}),
                verify_algorithm: json!({"name": "RSASSA-PKCS1-v1_5"}),
            },
        }
    }
}

/// The project's published keys that can verify a user's token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Reads `{"keys": [...]}`. A key this Worker cannot use (another curve or type, `use` other than `sig`,
    /// `key_ops` without `verify`, no `kid`, numbers of the wrong size) is left out, not an error: a project may
    /// publish keys for others. A document that is not such an object is an error.
    pub fn parse(text: &str) -> Result<Jwks, String> {
        let document: Value = serde_json::from_str(text).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let keys = document.get("keys").and_then(Value::as_array).ok_or("the JWKS has no \"keys\" array")?;
        Ok(Jwks { keys: keys.iter().filter_map(usable_key).collect() })
    }

    pub fn find(&self, kid: &str, alg: Algorithm) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid && k.alg == alg)
    }
}

fn usable_key(key: &Value) -> Option<Jwk> {
    let text = |name: &str| key.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = key.get("key_ops") {
        ops.as_array()?.iter().find(|op| op.as_str() == Some("verify"))?;
    }
    let kid = text("kid").filter(|k| !k.is_empty())?.to_owned();
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(text(name)?).ok();
    let (alg, public) = match (text("kty")?, text("crv")) {
        ("EC", Some("P-256")) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            (x.len() == 32 && y.len() == 32).then_some(())?;
            (Algorithm::Es256, PublicKey::P256 { x: text("x")?.to_owned(), y: text("y")?.to_owned() })
        }
        ("RSA", _) => {
            let n = bytes("n")?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            (significant >= 256 && !bytes("e")?.is_empty()).then_some(())?;
            (Algorithm::Rs256, PublicKey::Rsa { n: text("n")?.to_owned(), e: text("e")?.to_owned() })
        }
        _ => return None,
    };
    // A key states its algorithm (Supabase's do); one that states another than its type implies is not used.
    if text("alg").is_some_and(|a| Algorithm::parse(a) != Some(alg)) {
        return None;
    }
    Some(Jwk { kid, alg, key: public })
}

/// Which key verifies a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationKey<'a> {
    /// HS256 with the legacy JWT secret.
    LegacySecret,
    /// A published asymmetric key.
    Published(&'a Jwk),
}

/// GoTrue's own rule: an asymmetric token by the published key whose `kid` and `alg` match its header; an HS256
/// token by the legacy secret, when the Worker has it (`SUPABASE_JWT_SECRET`). `Err(UnknownKey)` when no key
/// fits: for an asymmetric token the JWKS may be stale (see [`JwksCache::should_fetch`]).
pub fn choose_key<'a>(header: &Header, jwks: &'a Jwks, legacy_secret: bool) -> Result<VerificationKey<'a>, Refusal> {
    match header.alg {
        Algorithm::Hs256 if legacy_secret => Ok(VerificationKey::LegacySecret),
        Algorithm::Hs256 => Err(Refusal::UnknownKey),
        alg => {
            let kid = header.kid.as_deref().ok_or(Refusal::UnknownKey)?;
            jwks.find(kid, alg).map(VerificationKey::Published).ok_or(Refusal::UnknownKey)
        }
    }
}

/// How long a fetched JWKS is used before it is fetched again (Supabase's edge caches it as long).
pub const JWKS_MAX_AGE_MS: i64 = 10 * 60 * 1000;
/// The least time between two fetches, whatever asks (a token with an unknown `kid`, a failed fetch): tokens
/// naming made-up keys cannot make the Worker fetch more than once a minute.
pub const JWKS_MIN_REFETCH_MS: i64 = 60 * 1000;

/// When the Worker's copy of the JWKS was fetched, and when a fetch was last tried (Unix milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JwksCache {
    pub fetched_at_ms: Option<i64>,
    pub attempted_at_ms: Option<i64>,
}

impl JwksCache {
    /// Whether to fetch the JWKS now: never tried; or at least [`JWKS_MIN_REFETCH_MS`] since the last try, and
    /// no copy, or a copy [`JWKS_MAX_AGE_MS`] old, or `kid_unknown` (a token names a key the copy lacks: a
    /// rotation). A clock that went back counts as no time passed.
    pub fn should_fetch(&self, now_ms: i64, kid_unknown: bool) -> bool {
        let Some(attempted) = self.attempted_at_ms else { return true };
        if now_ms.saturating_sub(attempted) < JWKS_MIN_REFETCH_MS {
            return false;
        }
        match self.fetched_at_ms {
            None => true,
            Some(fetched) => kid_unknown || now_ms.saturating_sub(fetched) >= JWKS_MAX_AGE_MS,
        }
    }

    /// A fetch starts (before it is awaited, so the requests that come meanwhile do not fetch too).
    pub fn attempted(&mut self, now_ms: i64) {
        self.attempted_at_ms = Some(now_ms);
    }

    /// A fetch brought a valid JWKS.
    pub fn fetched(&mut self, now_ms: i64) {
        self.fetched_at_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "http://127.0.0.1:54321/auth/v1";
    const NOW: i64 = 1_800_000_000;
    const USER: &str = "0b3f2c4e-8a1d-4f6b-9c2e-7d5a1b3c9e0f";
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": "authenticated", "role": "authenticated", "sub": USER, "exp": NOW + 3600,
               "iat": NOW, "email": "ada@example.com", "phone": "", "aal": "aal1", "session_id": USER,
               "is_anonymous": false, "app_metadata": {"provider": "email"}, "user_metadata": {}})
    }

    fn token(header: Value, claims: &Value, signature: &[u8]) -> String {
        format!("{}.{}.{}", b64(&header), b64(claims), URL_SAFE_NO_PAD.encode(signature))
    }

    fn hs256(secret: &str, claims: &Value) -> String {
        let input = format!("{}.{}", b64(&json!({"alg": "HS256", "typ": "JWT"})), b64(claims));
        let mac = hmac_sha256(secret, &input);
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    fn check(claims: &Value) -> Result<User, Refusal> {
        check_claims(claims.as_object().unwrap(), ISSUER, NOW)
    }

    fn with(field: &str, value: Value) -> Value {
        let mut c = claims();
        c[field] = value;
        c
    }

    fn without(field: &str) -> Value {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(field);
        c
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header() {
        assert_eq!(bearer(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        for missing in [None, Some(""), Some("Bearer"), Some("Bearer  "), Some("Basic abc"), Some("abc")] {
            assert_eq!(bearer(missing), Err(Refusal::Missing), "{missing:?}");
        }
    }

    #[test]
    fn a_token_is_read_into_its_header_claims_and_signature() {
        let t = token(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), &claims(), &[7; 64]);
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.header, Header { alg: Algorithm::Es256, kid: Some("k1".into()) });
        assert_eq!(parsed.signature, vec![7; 64]);
        assert_eq!(parsed.signing_input, t.rsplit_once('.').unwrap().0);
        assert_eq!(parsed.claims()["sub"], USER);
    }

    #[test]
    fn what_is_not_a_jws_is_malformed_and_an_unknown_algorithm_is_refused() {
        let good = token(json!({"alg": "ES256", "kid": "k"}), &claims(), &[1; 64]);
        let (h, rest) = good.split_once('.').unwrap();
        for bad in [
            "".to_owned(),
            "a.b".to_owned(),
            format!("{good}.extra"),
            format!("{h}.!!!.sig"),
            format!("{h}.{}.sig", b64(&json!([1, 2]))),
            format!("{}.{rest}", b64(&json!("ES256"))),
            format!("{}.{rest}", b64(&json!({"kid": "k"}))),
            format!("{}.{rest}", b64(&json!({"alg": "ES256", "crit": ["exp"]}))),
            format!("{h}.{}", "a".repeat(MAX_TOKEN_BYTES)),
            format!("{}=", good),
        ] {
            assert_eq!(parse(&bad).unwrap_err(), Refusal::Malformed, "{bad:.80}");
        }
        for alg in ["none", "ES512", "HS512", "EdDSA", "es256"] {
            let t = token(json!({"alg": alg}), &claims(), b"");
            assert_eq!(parse(&t).unwrap_err(), Refusal::UnsupportedAlgorithm, "{alg}");
        }
    }

    #[test]
    fn a_users_token_passes_with_its_id_and_email() {
        let user = check(&claims()).unwrap();
        assert_eq!(user, User { id: Uuid::parse_str(USER).unwrap(), email: Some("ada@example.com".into()) });
        assert_eq!(check(&with("aud", json!(["other", "authenticated"]))).unwrap().id, user.id, "aud as an array");
        assert_eq!(check(&with("email", json!(""))).unwrap().email, None);
        assert!(check(&with("exp", json!(NOW as f64 + 0.5))).is_ok(), "a fractional exp");
    }

    #[test]
    fn every_claim_rule_refuses_with_its_reason() {
        let cases = [
            (with("exp", json!(NOW - LEEWAY_SECONDS)), Refusal::Expired),
            (with("exp", json!(NOW - 3600)), Refusal::Expired),
            (without("exp"), Refusal::Malformed),
            (with("exp", json!("soon")), Refusal::Malformed),
            (with("nbf", json!(NOW + LEEWAY_SECONDS + 1)), Refusal::NotYetValid),
            (with("iss", json!("https://other.supabase.co/auth/v1")), Refusal::WrongIssuer),
            (with("iss", json!("http://127.0.0.1:54321/auth/v1/")), Refusal::WrongIssuer),
            (without("iss"), Refusal::WrongIssuer),
            (with("aud", json!("anon")), Refusal::WrongAudience),
            (with("aud", json!(["anon"])), Refusal::WrongAudience),
            (with("aud", json!(7)), Refusal::WrongAudience),
            (without("aud"), Refusal::WrongAudience),
            (with("role", json!("anon")), Refusal::NotAUser),
            (with("role", json!("service_role")), Refusal::NotAUser),
            (without("role"), Refusal::NotAUser),
            (with("sub", json!("not-a-uuid")), Refusal::NotAUser),
            (without("sub"), Refusal::NotAUser),
        ];
        for (claims, refusal) in cases {
            assert_eq!(check(&claims), Err(refusal), "{claims}");
            assert_eq!(ApiError::from(refusal).status, 401);
            assert_eq!(ApiError::from(refusal).code, "unauthorized");
        }
        assert!(check(&with("exp", json!(NOW - LEEWAY_SECONDS + 1))).is_ok(), "within the leeway");
        assert!(check(&with("nbf", json!(NOW + LEEWAY_SECONDS))).is_ok(), "within the leeway");
    }

    #[test]
    fn an_api_key_is_no_user() {
        // The shape of the project's service_role key (sandbox/src/jwt.rs, Supabase's own).
        let key = json!({"iss": "supabase-demo", "role": "service_role", "exp": NOW + 10});
        assert_eq!(check(&key), Err(Refusal::WrongIssuer));
        let mut same_issuer = key.clone();
        same_issuer["iss"] = json!(ISSUER);
        same_issuer["aud"] = json!("authenticated");
        assert_eq!(check(&same_issuer), Err(Refusal::NotAUser));
    }

    #[test]
    fn hs256_is_checked_with_the_legacy_secret() {
        let secret = "super-secret-jwt-token-with-at-least-32-characters";
        let t = parse(&hs256(secret, &claims())).unwrap();
        assert_eq!(t.verify_hs256(secret), Ok(()));
        assert_eq!(t.verify_hs256("another-secret"), Err(Refusal::BadSignature));
        let forged = hs256(secret, &claims()).replacen('.', &format!(".{}.", b64(&with("sub", json!(USER)))), 1);
        assert!(parse(&forged).is_err(), "four parts");
        let (input, sig) =
            hs256(secret, &claims()).rsplit_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
        let tampered = format!("{}.{}.{sig}", input.split('.').next().unwrap(), b64(&with("role", json!("x"))));
        assert_eq!(parse(&tampered).unwrap().verify_hs256(secret), Err(Refusal::BadSignature));
        let es = parse(&token(json!({"alg": "ES256", "kid": "k"}), &claims(), &[0; 64])).unwrap();
        assert_eq!(es.verify_hs256(secret), Err(Refusal::UnknownKey), "not an HS256 token");
    }

    fn jwks_text() -> String {
        json!({"keys": [
            {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "key_ops": ["verify"], "kid": "ec1", "x": X, "y": Y},
            {"kty": "RSA", "alg": "RS256", "kid": "rsa1", "n": URL_SAFE_NO_PAD.encode([0xC5; 256]), "e": "AQAB"},
            {"kty": "oct", "alg": "HS256", "kid": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": X, "y": Y},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": X, "y": Y},
            {"kty": "EC", "crv": "P-256", "kid": "sign-only", "key_ops": ["sign"], "x": X, "y": Y},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y},
            {"kty": "EC", "crv": "P-256", "kid": "short", "x": "AAAA", "y": Y},
            {"kty": "EC", "crv": "P-256", "kid": "mislabelled", "alg": "RS256", "x": X, "y": Y},
            {"kty": "RSA", "kid": "rsa-small", "n": URL_SAFE_NO_PAD.encode([0xC5; 128]), "e": "AQAB"},
            "not an object"
        ]})
        .to_string()
    }

    #[test]
    fn the_jwks_keeps_only_keys_that_can_verify_a_users_token() {
        let jwks = Jwks::parse(&jwks_text()).unwrap();
        let kids: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["ec1", "rsa1"]);
        assert_eq!(jwks.keys[0].key, PublicKey::P256 { x: X.into(), y: Y.into() });
        assert_eq!(Jwks::parse(r#"{"keys": []}"#), Ok(Jwks::default()), "HS256 only: no keys published");
        for bad in ["", "[]", r#"{"keys": {}}"#, r#"{"jwks": []}"#] {
            assert!(Jwks::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn webcrypto_gets_the_public_numbers_and_the_algorithms() {
        let jwks = Jwks::parse(&jwks_text()).unwrap();
        let ec = jwks.keys[0].webcrypto();
        assert_eq!(ec.jwk, json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y}));
        assert_eq!(ec.import_algorithm, json!({"name": "ECDSA", "namedCurve": "P-256"}));
        assert_eq!(ec.verify_algorithm, json!({"name": "ECDSA", "hash": "SHA-256"}));
        let rsa = jwks.keys[1].webcrypto();
        assert_eq!(rsa.jwk["kty"], "RSA");
        assert_eq!(rsa.import_algorithm, json!({"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"}));
    }

    #[test]
    fn the_key_is_chosen_by_kid_and_alg() {
        let jwks = Jwks::parse(&jwks_text()).unwrap();
        let header = |alg, kid: Option<&str>| Header { alg, kid: kid.map(str::to_owned) };
        assert_eq!(
            choose_key(&header(Algorithm::Es256, Some("ec1")), &jwks, false),
            Ok(VerificationKey::Published(&jwks.keys[0]))
        );
        assert_eq!(
            choose_key(&header(Algorithm::Rs256, Some("rsa1")), &jwks, true),
            Ok(VerificationKey::Published(&jwks.keys[1]))
        );
        for (h, secret) in [
            (header(Algorithm::Es256, Some("rsa1")), true), // the kid exists, with another algorithm
            (header(Algorithm::Rs256, Some("ec1")), true),
            (header(Algorithm::Es256, Some("rotated-in")), true),
            (header(Algorithm::Es256, None), true),
            (header(Algorithm::Hs256, None), false), // no legacy secret configured
            (header(Algorithm::Hs256, Some("ec1")), false),
        ] {
            assert_eq!(choose_key(&h, &jwks, secret), Err(Refusal::UnknownKey), "{h:?} secret={secret}");
        }
        assert_eq!(choose_key(&header(Algorithm::Hs256, Some("any")), &jwks, true), Ok(VerificationKey::LegacySecret));
    }

    #[test]
    fn the_jwks_is_fetched_when_missing_old_or_missing_a_kid_but_at_most_once_a_minute() {
        let t0 = 1_000_000;
        let mut cache = JwksCache::default();
        assert!(cache.should_fetch(t0, false), "never fetched");
        cache.attempted(t0);
        assert!(!cache.should_fetch(t0 + 1, false), "a fetch under way or just failed");
        assert!(!cache.should_fetch(t0 + JWKS_MIN_REFETCH_MS - 1, true));
        assert!(cache.should_fetch(t0 + JWKS_MIN_REFETCH_MS, false), "the failed fetch is tried again after a minute");
        cache.fetched(t0);
        assert!(!cache.should_fetch(t0 + JWKS_MIN_REFETCH_MS, false), "fresh");
        assert!(!cache.should_fetch(t0 + 30_000, true), "an unknown kid within a minute of the fetch");
        assert!(cache.should_fetch(t0 + JWKS_MIN_REFETCH_MS, true), "an unknown kid after a minute");
        assert!(!cache.should_fetch(t0 + JWKS_MAX_AGE_MS - 1, false));
        assert!(cache.should_fetch(t0 + JWKS_MAX_AGE_MS, false), "ten minutes old");
        assert!(!cache.should_fetch(t0 - 5 * JWKS_MAX_AGE_MS, true), "a clock that went back");
        assert!(!cache.should_fetch(i64::MIN, true));
        assert!(cache.should_fetch(i64::MAX, false));
    }

    #[test]
    fn the_issuer_and_the_jwks_url_follow_supabase_url() {
        assert_eq!(issuer("https://abc.supabase.co/"), "https://abc.supabase.co/auth/v1");
        assert_eq!(jwks_url("http://127.0.0.1:54321"), "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json");
    }
}
