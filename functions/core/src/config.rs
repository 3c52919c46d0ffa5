//! The Worker's configuration, read from Worker vars and secrets by name.

use crate::error::ApiError;
use crate::phone::PhoneNumber;
use crate::retry::Backoff;
use crate::sip::SipTarget;
use crate::vapi_auth::VapiCredential;
use std::time::Duration;

/// Every setting the Worker needs, with the Worker-variable name it is read from.
#[derive(Debug, Clone)]
pub struct Config {
    pub supabase_url: String,
    pub supabase_service_role_key: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub twilio_from_number: PhoneNumber,
    pub twilio_api_base: String,
    pub vapi_assistant_id: String,
    pub vapi_sip: SipTarget,
    /// How VAPI's server messages are authenticated (`VAPI_SECRET`, `VAPI_CREDENTIAL_TYPE`).
    pub vapi_credential: VapiCredential,
    pub webhook_secret: String,
    /// The base URL Twilio and VAPI use to reach this Worker (what Twilio signs).
    pub public_base_url: String,
    /// Waits between tries of a Twilio request (`PROVIDER_RETRY_DELAYS_MS`).
    pub provider_backoff: Backoff,
    /// How long one Twilio request may take before it counts as unanswered (`TWILIO_TIMEOUT_MS`).
    pub twilio_timeout: Duration,
    /// The batch API's bearer key (`API_KEY`).
    pub api_key: String,
    /// Targets plus pendingCallIds one batch request may carry (`BATCH_MAX_TARGETS`).
    pub batch_max_targets: usize,
    /// The streaming speech-to-text service the listener forwards a call's audio to: its live endpoint as
    /// an `https://` URL (`STT_URL`, given as `wss://`; fetched with `Upgrade: websocket`) and its key
    /// (`STT_API_KEY`, a secret).
    pub stt_url: String,
    pub stt_api_key: String,
    /// The optional judge of what the listener's rules leave `unknown`; `None` (off) unless `JUDGE_URL` is set.
    pub judge: Option<JudgeSettings>,
}

/// An OpenAI-compatible chat completions endpoint (`JUDGE_URL`, `https://`), its key (`JUDGE_API_KEY`, a
/// secret, sent as `Authorization: Bearer`) and the model asked (`JUDGE_MODEL`).
#[derive(Clone, PartialEq, Eq)]
pub struct JudgeSettings {
    pub url: String,
    pub api_key: String,
    pub model: String,
}

// By hand: the key is a secret and `Config` is `Debug`.
impl std::fmt::Debug for JudgeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeSettings").field("url", &self.url).field("model", &self.model).finish_non_exhaustive()
    }
}

/// Names of every variable, in the order they are checked (README lists the same).
pub const VARIABLES: [&str; 14] = [
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_API_BASE",
    "VAPI_ASSISTANT_ID",
    "VAPI_SIP_USER",
    "VAPI_SIP_HOST",
    "VAPI_SECRET",
    "WEBHOOK_SECRET",
    "PUBLIC_BASE_URL",
    "API_KEY",
    "STT_API_KEY",
];

/// Optional variables, with their defaults (README lists the same).
pub const OPTIONAL_VARIABLES: [(&str, &str); 13] = [
    ("VAPI_CREDENTIAL_TYPE", "bearer"),
    ("VAPI_SIGNATURE_HEADER", "x-signature"),
    ("VAPI_TIMESTAMP_HEADER", "x-timestamp"),
    ("VAPI_HMAC_ALLOW_NO_TIMESTAMP", "false"),
    ("PROVIDER_RETRY_DELAYS_MS", "1000,4000,10000"),
    ("TWILIO_TIMEOUT_MS", "10000"),
    ("BATCH_MAX_TARGETS", "10000"),
    ("STT_URL", "wss://api.deepgram.com/v1/listen"),
    ("JUDGE_URL", ""),
    ("JUDGE_API_KEY", ""),
    ("JUDGE_MODEL", "gpt-4o-mini"),
    ("SUPABASE_ANON_KEY", ""),
    ("SUPABASE_JWT_SECRET", ""),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration variable {0} is not set")]
    Missing(&'static str),
    #[error("configuration variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("configuration variable {name} is not set, and {by} needs it")]
    NeededBy { name: &'static str, by: &'static str },
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::new(500, "configuration_error", e.to_string())
    }
}

/// Reads variables by name from a lookup (Worker vars and secrets, or a map in tests).
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &'static str) -> Result<String, ConfigError> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
    }

    fn optional(&self, name: &'static str) -> String {
        let default = OPTIONAL_VARIABLES.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d);
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
    }

    fn url(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.get(name)?;
        check_base_url(&value).map_err(|reason| invalid(name, reason))?;
        Ok(value.trim_end_matches('/').to_owned())
    }

    /// An optional WebSocket endpoint (`wss://`, or `ws://` to a loopback host), as the `https://`
    /// (`http://`) URL a Worker fetches it by with `Upgrade: websocket`.
    fn socket_url(&self, name: &'static str) -> Result<String, ConfigError> {
        const RULE: &str = "must be a wss:// URL (ws:// only to a loopback host), without credentials";
        let value = self.optional(name);
        let fetched = match value.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => format!("https://{rest}"),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => format!("http://{rest}"),
            _ => return Err(invalid(name, RULE.into())),
        };
        check_base_url(&fetched).map_err(|_| invalid(name, RULE.into()))?;
        Ok(fetched.trim_end_matches('/').to_owned())
    }
}

/// The judge's settings, or `None` when `JUDGE_URL` is empty (the judge is off).
fn judge<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Option<JudgeSettings>, ConfigError> {
    let url = vars.optional("JUDGE_URL");
    if url.is_empty() {
        return Ok(None);
    }
    check_base_url(&url).map_err(|reason| invalid("JUDGE_URL", reason))?;
    let api_key = vars.optional("JUDGE_API_KEY");
    if api_key.is_empty() {
        return Err(ConfigError::NeededBy { name: "JUDGE_API_KEY", by: "JUDGE_URL" });
    }
    Ok(Some(JudgeSettings { url, api_key, model: vars.optional("JUDGE_MODEL") }))
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

// What each route checks its caller with, read on its own before the whole configuration: a broken
// variable the check does not use cannot stand between a caller and its 401/403, and a caller without a
// credential learns nothing of the configuration.

/// The database webhook's `X-Webhook-Secret` (`WEBHOOK_SECRET`).
pub fn webhook_secret(lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    Vars(lookup).get("WEBHOOK_SECRET")
}

/// The batch API's bearer key (`API_KEY`).
pub fn api_key(lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    Vars(lookup).get("API_KEY")
}

/// What the dashboard's API checks users' access tokens with, and calls the database with.
#[derive(Clone)]
pub struct UserAuth {
    /// `SUPABASE_URL`: the issuer is `{it}/auth/v1`, the JWKS `{it}/auth/v1/.well-known/jwks.json`.
    pub supabase_url: String,
    /// `SUPABASE_SERVICE_ROLE_KEY`: the `apikey` of every request to the project (Supabase's gateway wants one).
    pub api_key: String,
    /// `SUPABASE_JWT_SECRET` (optional, a secret): the legacy HS256 secret, for a project that still signs users'
    /// tokens with it. Without it, only tokens signed by a key of the JWKS are taken.
    pub legacy_jwt_secret: Option<String>,
}

// By hand: the keys are secrets.
impl std::fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAuth").field("supabase_url", &self.supabase_url).finish_non_exhaustive()
    }
}

pub fn user_auth(lookup: impl Fn(&str) -> Option<String>) -> Result<UserAuth, ConfigError> {
    let vars = Vars(lookup);
    let secret = vars.optional("SUPABASE_JWT_SECRET");
    Ok(UserAuth {
        supabase_url: vars.url("SUPABASE_URL")?,
        api_key: vars.get("SUPABASE_SERVICE_ROLE_KEY")?,
        legacy_jwt_secret: (!secret.is_empty()).then_some(secret),
    })
}

/// What the dashboard's page needs to reach Supabase (`GET /api/v1/dashboard/config`): the project's URL and its
/// anon key (public by design: it is in every page that uses supabase-js; RLS guards the data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSettings {
    pub supabase_url: String,
    pub supabase_anon_key: String,
}

pub fn dashboard(lookup: impl Fn(&str) -> Option<String>) -> Result<DashboardSettings, ConfigError> {
    let vars = Vars(lookup);
    let supabase_url = vars.url("SUPABASE_URL")?;
    let supabase_anon_key = vars.optional("SUPABASE_ANON_KEY");
    if supabase_anon_key.is_empty() {
        return Err(ConfigError::NeededBy { name: "SUPABASE_ANON_KEY", by: "the dashboard" });
    }
    Ok(DashboardSettings { supabase_url, supabase_anon_key })
}

/// What `X-Twilio-Signature` is checked with: the auth token and the public URL Twilio signs.
#[derive(Debug, Clone)]
pub struct TwilioSigning {
    pub auth_token: String,
    pub public_base_url: String,
}

impl TwilioSigning {
    /// The public URL of one of this Worker's routes, as Twilio calls (and signs) it.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{}", self.public_base_url, path)
    }
}

pub fn twilio_signing(lookup: impl Fn(&str) -> Option<String>) -> Result<TwilioSigning, ConfigError> {
    let vars = Vars(lookup);
    Ok(TwilioSigning { auth_token: vars.get("TWILIO_AUTH_TOKEN")?, public_base_url: vars.url("PUBLIC_BASE_URL")? })
}

/// How VAPI's server messages are authenticated (`VAPI_SECRET`, `VAPI_CREDENTIAL_TYPE` and the HMAC options).
pub fn vapi_credential(lookup: impl Fn(&str) -> Option<String>) -> Result<VapiCredential, ConfigError> {
    let vars = Vars(lookup);
    Ok(match vars.optional("VAPI_CREDENTIAL_TYPE").as_str() {
        "bearer" => VapiCredential::Bearer { secret: vars.get("VAPI_SECRET")? },
        "hmac" => VapiCredential::Hmac {
            secret: vars.get("VAPI_SECRET")?,
            signature_header: vars.optional("VAPI_SIGNATURE_HEADER"),
            timestamp_header: vars.optional("VAPI_TIMESTAMP_HEADER"),
            allow_no_timestamp: match vars.optional("VAPI_HMAC_ALLOW_NO_TIMESTAMP").as_str() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(invalid("VAPI_HMAC_ALLOW_NO_TIMESTAMP", format!("{other:?} is not true or false")))
                }
            },
        },
        other => return Err(invalid("VAPI_CREDENTIAL_TYPE", format!("{other:?} is not bearer or hmac"))),
    })
}

impl Config {
    /// Builds the configuration from a lookup (Worker vars and secrets in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Field by field in the order of `VARIABLES`, so the first problem named is the first in that list.
        let vars = Vars(&lookup);
        Ok(Self {
            supabase_url: vars.url("SUPABASE_URL")?,
            supabase_service_role_key: vars.get("SUPABASE_SERVICE_ROLE_KEY")?,
            twilio_account_sid: vars.get("TWILIO_ACCOUNT_SID")?,
            twilio_auth_token: vars.get("TWILIO_AUTH_TOKEN")?,
            twilio_from_number: PhoneNumber::parse(&vars.get("TWILIO_FROM_NUMBER")?)
                .map_err(|e| invalid("TWILIO_FROM_NUMBER", e.to_string()))?,
            twilio_api_base: vars.url("TWILIO_API_BASE")?,
            vapi_assistant_id: vars.get("VAPI_ASSISTANT_ID")?,
            vapi_sip: SipTarget { user: vars.get("VAPI_SIP_USER")?, host: vars.get("VAPI_SIP_HOST")? },
            vapi_credential: vapi_credential(&lookup)?,
            webhook_secret: webhook_secret(&lookup)?,
            public_base_url: vars.url("PUBLIC_BASE_URL")?,
            provider_backoff: Backoff::parse(&vars.optional("PROVIDER_RETRY_DELAYS_MS"))
                .map_err(|reason| invalid("PROVIDER_RETRY_DELAYS_MS", reason))?,
            twilio_timeout: match vars.optional("TWILIO_TIMEOUT_MS").parse::<u64>() {
                Ok(ms @ 100..=60_000) => Duration::from_millis(ms),
                _ => return Err(invalid("TWILIO_TIMEOUT_MS", "must be milliseconds between 100 and 60000".into())),
            },
            api_key: api_key(&lookup)?,
            batch_max_targets: match vars.optional("BATCH_MAX_TARGETS").parse::<usize>() {
                Ok(n @ 1..=100_000) => n,
                _ => return Err(invalid("BATCH_MAX_TARGETS", "must be a whole number from 1 to 100000".into())),
            },
            stt_api_key: vars.get("STT_API_KEY")?,
            stt_url: vars.socket_url("STT_URL")?,
            judge: judge(&vars)?,
        })
    }

    /// The public URL of one of this Worker's routes, as Twilio will call (and sign) it.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{}", self.public_base_url, path)
    }
}

/// `GET /health`'s answer. Anyone learns whether the configuration is complete, `{"configured": bool}`,
/// and nothing else; a caller with the API key (`Authorization: Bearer <API_KEY>`, compared in constant
/// time) also gets the configuration error, which names the variable. `problem` is the configuration's
/// error, if any; `api_key` the `API_KEY` variable as set (it may be set while another is missing).
pub fn health(problem: Option<&ApiError>, authorization: Option<&str>, api_key: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({"configured": problem.is_none()});
    let authorized = match (authorization, api_key.map(str::trim).filter(|k| !k.is_empty())) {
        (Some(given), Some(key)) => crate::api::authorize(Some(given), key).is_ok(),
        _ => false,
    };
    if let (Some(problem), true) = (problem, authorized) {
        body["error"] = problem.body()["error"].clone();
    }
    body
}

/// An outbound base URL: `https://`, or `http://` to a loopback host only (127.0.0.0/8, `localhost`,
/// `[::1]`: the local stack), so no secret (the service role key, Twilio's Basic auth) or personal data
/// ever leaves the machine in clear text. The reason when it is not.
pub fn check_base_url(value: &str) -> Result<(), String> {
    const RULE: &str = "must be an https:// URL (http:// only to a loopback host: 127.0.0.0/8, localhost, [::1])";
    let lower = value.to_ascii_lowercase();
    let (scheme_https, rest) = match (lower.strip_prefix("https://"), lower.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(RULE.into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not carry credentials (user@host)".into());
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((host, _port)) => host,
            None => return Err(RULE.into()),
        }
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("{RULE}; it has no host"));
    }
    if scheme_https || is_loopback(host) {
        Ok(())
    } else {
        Err(RULE.into())
    }
}

/// `localhost`, an IPv4 address in 127.0.0.0/8 (written in full), or `::1`.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        VARIABLES
            .iter()
            .map(|name| {
                let value = match *name {
                    "SUPABASE_URL" | "TWILIO_API_BASE" | "PUBLIC_BASE_URL" => "http://127.0.0.1:1/".to_owned(),
                    "TWILIO_FROM_NUMBER" => "+15005550006".to_owned(),
                    other => format!("value-of-{other}"),
                };
                (*name, value)
            })
            .collect()
    }

    #[test]
    fn reads_every_variable() {
        let vars = full();
        let config = Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
        assert_eq!(config.supabase_url, "http://127.0.0.1:1");
        assert_eq!(config.vapi_sip.host, "value-of-VAPI_SIP_HOST");
        assert_eq!(config.public_url("/twilio/status"), "http://127.0.0.1:1/twilio/status");
        assert_eq!(config.stt_url, "https://api.deepgram.com/v1/listen", "the default, as fetched");
    }

    #[test]
    fn the_stt_url_is_a_secure_socket_unless_on_loopback() {
        let read = |value: &str| {
            let mut vars = full();
            vars.insert("STT_URL", value.into());
            Config::from_lookup(|n| vars.get(n).cloned()).map(|c| c.stt_url)
        };
        assert_eq!(read("wss://stt.example/v1/listen/"), Ok("https://stt.example/v1/listen".into()));
        assert_eq!(read("ws://127.0.0.1:9/v1/listen"), Ok("http://127.0.0.1:9/v1/listen".into()));
        for refused in ["ws://stt.example/v1/listen", "https://stt.example", "stt.example"] {
            assert!(matches!(read(refused), Err(ConfigError::Invalid { name: "STT_URL", .. })), "{refused}");
        }
    }

    #[test]
    fn the_judge_is_off_unless_its_url_is_set_and_then_needs_its_key() {
        let read = |pairs: &[(&'static str, &str)]| {
            let mut vars = full();
            vars.extend(pairs.iter().map(|(k, v)| (*k, v.to_string())));
            Config::from_lookup(|n| vars.get(n).cloned()).map(|c| c.judge)
        };
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[("JUDGE_URL", " "), ("JUDGE_API_KEY", "k")]), Ok(None), "blank is off");
        let url = "https://api.openai.com/v1/chat/completions";
        let on = read(&[("JUDGE_URL", url), ("JUDGE_API_KEY", " sk-1 ")]).unwrap().unwrap();
        assert_eq!((on.url.as_str(), on.api_key.as_str(), on.model.as_str()), (url, "sk-1", "gpt-4o-mini"));
        assert!(!format!("{on:?}").contains("sk-1"), "the key is never printed");
        let local = read(&[("JUDGE_URL", "http://127.0.0.1:9/v1/chat/completions"), ("JUDGE_API_KEY", "k")]);
        assert_eq!(local.unwrap().unwrap().url, "http://127.0.0.1:9/v1/chat/completions");
        let model = read(&[("JUDGE_URL", url), ("JUDGE_API_KEY", "k"), ("JUDGE_MODEL", "llama-3.1-8b")]);
        assert_eq!(model.unwrap().unwrap().model, "llama-3.1-8b");
        let no_key = read(&[("JUDGE_URL", url)]).unwrap_err();
        assert_eq!(no_key, ConfigError::NeededBy { name: "JUDGE_API_KEY", by: "JUDGE_URL" });
        let api: ApiError = no_key.into();
        assert!(api.message.contains("JUDGE_API_KEY") && api.message.contains("JUDGE_URL"), "{}", api.message);
        for refused in ["http://judge.example/v1/chat/completions", "judge.example", "https://user:pw@judge.example"] {
            let err = read(&[("JUDGE_URL", refused), ("JUDGE_API_KEY", "k")]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: "JUDGE_URL", .. }), "{refused}: {err}");
        }
    }

    #[test]
    fn each_route_checks_its_callers_with_its_own_variables_only() {
        // Everything but the credentials missing: each route can still tell a caller 401 from 403.
        let only = |names: &[&str]| -> HashMap<&'static str, String> {
            full().into_iter().filter(|(n, _)| names.contains(n)).collect()
        };
        let vars = only(&["WEBHOOK_SECRET"]);
        assert_eq!(webhook_secret(|n| vars.get(n).cloned()).unwrap(), "value-of-WEBHOOK_SECRET");
        let vars = only(&["API_KEY"]);
        assert_eq!(api_key(|n| vars.get(n).cloned()).unwrap(), "value-of-API_KEY");
        let vars = only(&["TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"]);
        let signing = twilio_signing(|n| vars.get(n).cloned()).unwrap();
        assert_eq!(signing.public_url("/twilio/status"), "http://127.0.0.1:1/twilio/status");
        let vars = only(&["VAPI_SECRET"]);
        assert!(matches!(vapi_credential(|n| vars.get(n).cloned()), Ok(VapiCredential::Bearer { .. })));
        // and each names its own missing variable
        let none = HashMap::<&str, String>::new();
        assert_eq!(webhook_secret(|n| none.get(n).cloned()), Err(ConfigError::Missing("WEBHOOK_SECRET")));
        assert_eq!(twilio_signing(|n| none.get(n).cloned()).unwrap_err(), ConfigError::Missing("TWILIO_AUTH_TOKEN"));
    }

    #[test]
    fn names_the_first_missing_or_blank_variable() {
        for name in VARIABLES {
            let mut vars = full();
            vars.insert(name, "  ".into());
            let err = Config::from_lookup(|n| vars.get(n).cloned()).unwrap_err();
            assert_eq!(err, ConfigError::Missing(name));
            let api: ApiError = err.into();
            assert_eq!((api.status, api.code), (500, "configuration_error"));
            assert!(api.message.contains(name));
        }
    }

    #[test]
    fn rejects_invalid_values() {
        let mut vars = full();
        vars.insert("TWILIO_FROM_NUMBER", "5550000".into());
        assert!(matches!(
            Config::from_lookup(|n| vars.get(n).cloned()),
            Err(ConfigError::Invalid { name: "TWILIO_FROM_NUMBER", .. })
        ));
        let mut vars = full();
        vars.insert("SUPABASE_URL", "db.example".into());
        assert!(matches!(
            Config::from_lookup(|n| vars.get(n).cloned()),
            Err(ConfigError::Invalid { name: "SUPABASE_URL", .. })
        ));
        for (name, value) in [
            ("VAPI_CREDENTIAL_TYPE", "oauth"),
            ("PROVIDER_RETRY_DELAYS_MS", "1s"),
            ("TWILIO_TIMEOUT_MS", "0"),
            ("TWILIO_TIMEOUT_MS", "soon"),
            ("BATCH_MAX_TARGETS", "0"),
            ("BATCH_MAX_TARGETS", "many"),
        ] {
            let mut vars = full();
            vars.insert(name, value.into());
            assert!(
                matches!(Config::from_lookup(|n| vars.get(n).cloned()), Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn health_tells_only_the_key_holder_what_is_missing() {
        let missing: ApiError = ConfigError::Missing("TWILIO_AUTH_TOKEN").into();
        assert_eq!(health(None, None, Some("k")), serde_json::json!({"configured": true}));
        assert_eq!(health(Some(&missing), None, Some("k")), serde_json::json!({"configured": false}));
        assert_eq!(health(Some(&missing), Some("Bearer wrong"), Some("k")), serde_json::json!({"configured": false}));
        assert_eq!(health(Some(&missing), Some("Bearer k"), None), serde_json::json!({"configured": false}));
        assert_eq!(health(Some(&missing), Some("Bearer "), Some(" ")), serde_json::json!({"configured": false}));
        let told = health(Some(&missing), Some("Bearer k"), Some("k"));
        assert_eq!(told["configured"], false);
        assert_eq!(told["error"]["code"], "configuration_error");
        assert!(told["error"]["message"].as_str().unwrap().contains("TWILIO_AUTH_TOKEN"));
        assert_eq!(health(None, Some("Bearer k"), Some("k")), serde_json::json!({"configured": true}));
    }

    #[test]
    fn outbound_urls_are_https_except_to_loopback() {
        for ok in [
            "https://abc.supabase.co",
            "https://api.twilio.com/",
            "HTTPS://calls.example.com:8443/base",
            "http://127.0.0.1:54321",
            "http://127.8.9.10",
            "http://localhost:8787/",
            "http://[::1]:8787",
            "https://[2001:db8::1]",
        ] {
            assert_eq!(check_base_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://abc.supabase.co",
            "http://api.twilio.com",
            "http://10.0.0.1",
            "http://128.0.0.1",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://[::2]:80",
            "http://user@127.0.0.1",
            "https://user:pw@abc.supabase.co",
            "ftp://127.0.0.1",
            "127.0.0.1:54321",
            "https://",
            "http://[::1",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
        for name in ["SUPABASE_URL", "TWILIO_API_BASE", "PUBLIC_BASE_URL"] {
            let mut vars = full();
            vars.insert(name, "http://outcall.example.com".into());
            let err = Config::from_lookup(|n| vars.get(n).cloned()).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: n, .. } if n == name), "{name}: {err}");
            let api: ApiError = err.into();
            assert_eq!((api.status, api.code), (500, "configuration_error"));
            assert!(api.message.contains(name) && api.message.contains("https://"), "{}", api.message);
        }
    }

    #[test]
    fn the_dashboard_and_user_auth_read_only_their_variables() {
        let mut vars: HashMap<&str, String> = HashMap::new();
        vars.insert("SUPABASE_URL", "https://abc.supabase.co/".into());
        let missing = dashboard(|n| vars.get(n).cloned()).unwrap_err();
        let api: ApiError = missing.into();
        assert_eq!((api.status, api.code), (500, "configuration_error"));
        assert!(api.message.contains("SUPABASE_ANON_KEY"), "{}", api.message);
        vars.insert("SUPABASE_ANON_KEY", " anon ".into());
        assert_eq!(
            dashboard(|n| vars.get(n).cloned()),
            Ok(DashboardSettings { supabase_url: "https://abc.supabase.co".into(), supabase_anon_key: "anon".into() })
        );

        assert!(matches!(user_auth(|n| vars.get(n).cloned()), Err(ConfigError::Missing("SUPABASE_SERVICE_ROLE_KEY"))));
        vars.insert("SUPABASE_SERVICE_ROLE_KEY", "service".into());
        let auth = user_auth(|n| vars.get(n).cloned()).unwrap();
        assert_eq!((auth.supabase_url.as_str(), auth.legacy_jwt_secret.as_deref()), ("https://abc.supabase.co", None));
        vars.insert("SUPABASE_JWT_SECRET", "legacy".into());
        assert_eq!(user_auth(|n| vars.get(n).cloned()).unwrap().legacy_jwt_secret.as_deref(), Some("legacy"));
        assert!(!format!("{auth:?}").contains("service"), "no secret in Debug");
        vars.insert("SUPABASE_URL", "http://abc.supabase.co".into());
        assert!(matches!(dashboard(|n| vars.get(n).cloned()), Err(ConfigError::Invalid { name: "SUPABASE_URL", .. })));
    }

    #[test]
    fn optional_variables_have_the_documented_defaults() {
        let vars = full();
        let config = Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
        assert_eq!(config.vapi_credential, VapiCredential::Bearer { secret: "value-of-VAPI_SECRET".into() });
        assert_eq!(config.provider_backoff, Backoff::default());
        assert_eq!(config.twilio_timeout, Duration::from_secs(10));
        assert_eq!(config.batch_max_targets, crate::batch::DEFAULT_MAX_TARGETS);

        let mut vars = full();
        vars.insert("VAPI_CREDENTIAL_TYPE", "hmac".into());
        vars.insert("PROVIDER_RETRY_DELAYS_MS", "50,200".into());
        let config = Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
        assert!(matches!(
            config.vapi_credential,
            VapiCredential::Hmac { ref signature_header, allow_no_timestamp: false, .. } if signature_header == "x-signature"
        ));
        vars.insert("VAPI_HMAC_ALLOW_NO_TIMESTAMP", "true".into());
        let config = Config::from_lookup(|n| vars.get(n).cloned()).unwrap();
        assert!(matches!(config.vapi_credential, VapiCredential::Hmac { allow_no_timestamp: true, .. }));
        vars.insert("VAPI_HMAC_ALLOW_NO_TIMESTAMP", "yes".into());
        assert!(matches!(
            Config::from_lookup(|n| vars.get(n).cloned()),
            Err(ConfigError::Invalid { name: "VAPI_HMAC_ALLOW_NO_TIMESTAMP", .. })
        ));
        assert_eq!(config.provider_backoff.retries(), 2);
    }
}
