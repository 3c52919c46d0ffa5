//! Configuration from environment variables. Missing or malformed values are
//! reported all at once so a misconfigured stack fails with one clear message.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// PostgREST base URL without a trailing slash.
    pub postgrest_url: String,
    pub database_url: String,
    pub jwt_secret: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub vapi_server_url: String,
    pub vapi_secret: String,
    /// The only key the STT stand-in accepts (`SANDBOX_STT_KEY`).
    pub stt_key: String,
    /// The only key the judge stand-in accepts (`SANDBOX_JUDGE_KEY`).
    pub judge_key: String,
    /// Real sleep = nominal duration × scale. Recorded timings stay nominal.
    pub time_scale: f64,
    /// The sandbox's base URL as its clients reach it (`SANDBOX_PUBLIC_URL`, default `http://{SANDBOX_ADDR}`):
    /// the Auth stand-in's issuer is this + `/auth/v1`, and its email links point here.
    pub public_url: String,
    /// Lifetime of users' access tokens in seconds (`SANDBOX_AUTH_JWT_EXPIRY`, GoTrue's `jwt_expiry`).
    pub auth_jwt_expiry: i64,
    /// Where an email link redirects when it names no `redirect_to` (`SANDBOX_AUTH_SITE_URL`, GoTrue's
    /// `SITE_URL`; default the public URL).
    pub auth_site_url: String,
    /// Segments per second a Messaging sender's queue drains at unless set per sender (`SANDBOX_SMS_MPS`,
    /// default 1: a US long code).
    pub sms_segments_per_second: f64,
    /// Where inbound messages are posted (`SANDBOX_SMS_INBOUND_URL`; unset: `/_sandbox/twilio/sms/inbound`
    /// answers 409).
    pub sms_inbound_url: Option<String>,
}

/// Everything wrong with the environment, one entry per variable.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:54321";
/// The STT key when `SANDBOX_STT_KEY` is not set: the sandbox has no secret to protect.
pub const DEFAULT_STT_KEY: &str = "sandbox-stt-key";
/// The judge's key when `SANDBOX_JUDGE_KEY` is not set.
pub const DEFAULT_JUDGE_KEY: &str = "sandbox-judge-key";
/// GoTrue's default `jwt_expiry`.
pub const DEFAULT_AUTH_JWT_EXPIRY: i64 = 3600;
/// A US long code sends one segment a second (operators.md §5.6).
pub const DEFAULT_SMS_MPS: f64 = 1.0;

impl Config {
    /// Reads the configuration through `get` (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str, what: &str| -> String {
            match get(name).filter(|v| !v.trim().is_empty()) {
                Some(v) => v.trim().to_string(),
                None => {
                    problems.push(format!("{name} is not set ({what})"));
                    String::new()
                }
            }
        };
        let postgrest_url = required("POSTGREST_URL", "PostgREST base URL, e.g. http://127.0.0.1:54331");
        let database_url = required("DATABASE_URL", "Postgres URL for the pg_net delivery loop");
        let jwt_secret = required("SUPABASE_JWT_SECRET", "the secret PostgREST verifies JWTs with");
        let twilio_account_sid = required("TWILIO_ACCOUNT_SID", "the account sid the Worker uses");
        let twilio_auth_token = required("TWILIO_AUTH_TOKEN", "signs status callbacks");
        let vapi_server_url = required("VAPI_SERVER_URL", "the Worker's VAPI endpoint");
        let vapi_secret = required("VAPI_SECRET", "sent as X-Vapi-Secret");

        let key = |name: &str, default: &str| {
            get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
        };
        let stt_key = key("SANDBOX_STT_KEY", DEFAULT_STT_KEY);
        let judge_key = key("SANDBOX_JUDGE_KEY", DEFAULT_JUDGE_KEY);
        let addr_text = get("SANDBOX_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr = match addr_text.trim().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                problems.push(format!("SANDBOX_ADDR={addr_text:?} is not an ip:port address"));
                SocketAddr::from(([127, 0, 0, 1], 54321))
            }
        };
        let time_scale = match get("SANDBOX_TIME_SCALE") {
            None => 1.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => s,
                _ => {
                    problems.push(format!("SANDBOX_TIME_SCALE={v:?} is not a non-negative number"));
                    1.0
                }
            },
        };
        let auth_jwt_expiry = match get("SANDBOX_AUTH_JWT_EXPIRY") {
            None => DEFAULT_AUTH_JWT_EXPIRY,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(s) if s > 0 => s,
                _ => {
                    problems.push(format!("SANDBOX_AUTH_JWT_EXPIRY={v:?} is not a positive number of seconds"));
                    DEFAULT_AUTH_JWT_EXPIRY
                }
            },
        };
        let sms_segments_per_second = match get("SANDBOX_SMS_MPS") {
            None => DEFAULT_SMS_MPS,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 => s,
                _ => {
                    problems.push(format!("SANDBOX_SMS_MPS={v:?} is not a positive number of segments per second"));
                    DEFAULT_SMS_MPS
                }
            },
        };
        let optional =
            |name: &str| get(name).map(|v| v.trim().trim_end_matches('/').to_string()).filter(|v| !v.is_empty());
        let sms_inbound_url = get("SANDBOX_SMS_INBOUND_URL").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let public_url = optional("SANDBOX_PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
        let auth_site_url = optional("SANDBOX_AUTH_SITE_URL").unwrap_or_else(|| public_url.clone());
        for (name, url) in [
            ("POSTGREST_URL", &postgrest_url),
            ("VAPI_SERVER_URL", &vapi_server_url),
            ("SANDBOX_PUBLIC_URL", &public_url),
            ("SANDBOX_AUTH_SITE_URL", &auth_site_url),
            ("SANDBOX_SMS_INBOUND_URL", sms_inbound_url.as_ref().unwrap_or(&String::new())),
        ] {
            if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
                problems.push(format!("{name}={url:?} must start with http:// or https://"));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            addr,
            postgrest_url: postgrest_url.trim_end_matches('/').to_string(),
            database_url,
            jwt_secret,
            twilio_account_sid,
            twilio_auth_token,
            vapi_server_url,
            vapi_secret,
            stt_key,
            judge_key,
            time_scale,
            public_url,
            auth_jwt_expiry,
            auth_site_url,
            sms_segments_per_second,
            sms_inbound_url,
        })
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("POSTGREST_URL", "http://127.0.0.1:54331/"),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:54329/postgres"),
            ("SUPABASE_JWT_SECRET", "super-secret-jwt-token-with-at-least-32-characters"),
            ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
            ("TWILIO_AUTH_TOKEN", "token"),
            ("VAPI_SERVER_URL", "http://127.0.0.1:8787/vapi/events"),
            ("VAPI_SECRET", "vsecret"),
        ])
    }

    #[test]
    fn defaults_and_trailing_slash() {
        let env = full();
        let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.postgrest_url, "http://127.0.0.1:54331");
        assert_eq!(c.time_scale, 1.0);
        assert_eq!(c.stt_key, DEFAULT_STT_KEY);
        assert_eq!(c.judge_key, DEFAULT_JUDGE_KEY);
        assert_eq!(c.public_url, "http://127.0.0.1:54321");
        assert_eq!(c.auth_site_url, c.public_url);
        assert_eq!(c.auth_jwt_expiry, DEFAULT_AUTH_JWT_EXPIRY);
        assert_eq!((c.sms_segments_per_second, c.sms_inbound_url.as_deref()), (DEFAULT_SMS_MPS, None));
    }

    #[test]
    fn sms_settings() {
        let mut env = full();
        env.insert("SANDBOX_SMS_MPS", "2.5");
        env.insert("SANDBOX_SMS_INBOUND_URL", "http://127.0.0.1:8787/twilio/sms-inbound");
        let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        assert_eq!(c.sms_segments_per_second, 2.5);
        assert_eq!(c.sms_inbound_url.as_deref(), Some("http://127.0.0.1:8787/twilio/sms-inbound"));
        for bad in [("SANDBOX_SMS_MPS", "0"), ("SANDBOX_SMS_MPS", "fast"), ("SANDBOX_SMS_INBOUND_URL", "ftp://x")] {
            let mut env = full();
            env.insert(bad.0, bad.1);
            assert!(Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn auth_settings() {
        let mut env = full();
        env.insert("SANDBOX_PUBLIC_URL", "http://localhost:9000/");
        env.insert("SANDBOX_AUTH_JWT_EXPIRY", "5");
        env.insert("SANDBOX_AUTH_SITE_URL", "http://127.0.0.1:8787/");
        let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        assert_eq!((c.public_url.as_str(), c.auth_jwt_expiry), ("http://localhost:9000", 5));
        assert_eq!(c.auth_site_url, "http://127.0.0.1:8787");
        env.insert("SANDBOX_AUTH_JWT_EXPIRY", "0");
        assert!(Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).is_err());
    }

    #[test]
    fn reports_every_missing_variable() {
        let mut env = full();
        env.remove("VAPI_SECRET");
        env.remove("DATABASE_URL");
        env.insert("SANDBOX_TIME_SCALE", "fast");
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }
}
