//! The Worker's configuration, read from Worker vars and secrets by name.

use crate::error::ApiError;
use crate::phone::PhoneNumber;
use crate::sip::SipTarget;

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
    pub vapi_secret: String,
    pub webhook_secret: String,
    /// The base URL Twilio and VAPI use to reach this Worker (what Twilio signs).
    pub public_base_url: String,
}

/// Names of every variable, in the order they are checked (README lists the same).
pub const VARIABLES: [&str; 12] = [
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
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration variable {0} is not set")]
    Missing(&'static str),
    #[error("configuration variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::new(500, "configuration_error", e.to_string())
    }
}

impl Config {
    /// Builds the configuration from a lookup (Worker vars and secrets in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| -> Result<String, ConfigError> {
            lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
        };
        let url = |name: &'static str| -> Result<String, ConfigError> {
            let value = get(name)?;
            if value.starts_with("https://") || value.starts_with("http://") {
                Ok(value.trim_end_matches('/').to_owned())
            } else {
                Err(ConfigError::Invalid { name, reason: "must be an http(s) URL".into() })
            }
        };
        Ok(Self {
            supabase_url: url("SUPABASE_URL")?,
            supabase_service_role_key: get("SUPABASE_SERVICE_ROLE_KEY")?,
            twilio_account_sid: get("TWILIO_ACCOUNT_SID")?,
            twilio_auth_token: get("TWILIO_AUTH_TOKEN")?,
            twilio_from_number: PhoneNumber::parse(&get("TWILIO_FROM_NUMBER")?)
                .map_err(|e| ConfigError::Invalid { name: "TWILIO_FROM_NUMBER", reason: e.to_string() })?,
            twilio_api_base: url("TWILIO_API_BASE")?,
            vapi_assistant_id: get("VAPI_ASSISTANT_ID")?,
            vapi_sip: SipTarget { user: get("VAPI_SIP_USER")?, host: get("VAPI_SIP_HOST")? },
            vapi_secret: get("VAPI_SECRET")?,
            webhook_secret: get("WEBHOOK_SECRET")?,
            public_base_url: url("PUBLIC_BASE_URL")?,
        })
    }

    /// The public URL of one of this Worker's routes, as Twilio will call (and sign) it.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{}", self.public_base_url, path)
    }
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
    }
}
