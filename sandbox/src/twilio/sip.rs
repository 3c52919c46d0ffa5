//! SIP URIs as Twilio's `<Dial><Sip>` reads them:
//! `sip:user@host[;uri-param=value...][?X-Header=value&X-Other=value]`.
//! URI parameters stay with the URI; only the `?` part becomes SIP headers.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::TwilioError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SipUri {
    pub uri: String,
    pub user: String,
    pub host: String,
    /// Custom headers, values URL-decoded.
    pub headers: BTreeMap<String, String>,
    /// URI parameters (`;name=value`); a bare `;flag` maps to "".
    pub params: BTreeMap<String, String>,
    /// Length of the raw header part (Twilio warns from 1,024 characters).
    #[serde(skip)]
    pub header_part_len: usize,
}

/// Twilio warns (21227) when the header part reaches this length.
pub const MAX_HEADER_PART: usize = 1024;

pub fn parse(raw: &str) -> Result<SipUri, TwilioError> {
    let uri = raw.trim();
    let lower = uri.to_ascii_lowercase();
    let rest = if lower.starts_with("sip:") {
        &uri[4..]
    } else if lower.starts_with("sips:") {
        &uri[5..]
    } else {
        return Err(TwilioError::new(12200, "Dial->Sip: the SIP URI must start with sip: or sips:"));
    };
    let (address, header_part) = match rest.split_once('?') {
        Some((a, h)) => (a, Some(h)),
        None => (rest, None),
    };
    let mut address_parts = address.split(';');
    let user_host = address_parts.next().unwrap_or_default();
    let (user, host) = match user_host.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", user_host),
    };
    if host.is_empty() {
        return Err(TwilioError::new(12200, "Dial->Sip: the SIP URI has no host"));
    }
    let params = address_parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), decode(v)),
            None => (p.to_string(), String::new()),
        })
        .collect();

    let mut headers = BTreeMap::new();
    for pair in header_part.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        check_header_name(name)?;
        headers.insert(name.to_string(), decode(value));
    }
    Ok(SipUri {
        uri: uri.to_string(),
        user: decode(user),
        host: host.to_string(),
        headers,
        params,
        header_part_len: header_part.map_or(0, str::len),
    })
}

fn check_header_name(name: &str) -> Result<(), TwilioError> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("x-twilio") {
        return Err(TwilioError::new(32113, format!("Dial->Sip: header {name} uses the reserved X-Twilio prefix")));
    }
    if !lower.starts_with("x-") || lower.len() == 2 {
        return Err(TwilioError::new(13252, format!("Dial->Sip: custom header {name:?} must start with X-")));
    }
    Ok(())
}

/// Percent-decoding only: `+` is a literal plus in a SIP URI.
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_host_headers_and_params() {
        let sip = parse(" sip:outcall@sip.vapi.ai;transport=tls;lr?X-pendingcallid=abc%2D1&X-Note=a%20b%2Bc+d ")
            .expect("valid");
        assert_eq!(sip.user, "outcall");
        assert_eq!(sip.host, "sip.vapi.ai");
        assert_eq!(sip.uri, "sip:outcall@sip.vapi.ai;transport=tls;lr?X-pendingcallid=abc%2D1&X-Note=a%20b%2Bc+d");
        assert_eq!(sip.headers.get("X-pendingcallid").map(String::as_str), Some("abc-1"));
        assert_eq!(sip.headers.get("X-Note").map(String::as_str), Some("a b+c+d"));
        assert_eq!(sip.params.get("transport").map(String::as_str), Some("tls"));
        assert_eq!(sip.params.get("lr").map(String::as_str), Some(""));
        assert_eq!(sip.headers.len(), 2, "URI params are not headers");
    }

    #[test]
    fn params_after_headers_are_not_split_off() {
        // Everything after `?` is the header part, even a `;`.
        let sip = parse("sip:u@h?X-a=1;x=y").unwrap();
        assert_eq!(sip.headers.get("X-a").map(String::as_str), Some("1;x=y"));
        assert!(sip.params.is_empty());
    }

    #[test]
    fn no_user_no_headers() {
        let sip = parse("sips:sip.vapi.ai:5061").unwrap();
        assert_eq!((sip.user.as_str(), sip.host.as_str()), ("", "sip.vapi.ai:5061"));
        assert!(sip.headers.is_empty());
        assert_eq!(sip.header_part_len, 0);
    }

    #[test]
    fn header_name_rules() {
        assert_eq!(parse("sip:u@h?pendingcallid=1").unwrap_err().code, 13252);
        assert_eq!(parse("sip:u@h?X-a=1&Foo=2").unwrap_err().code, 13252);
        assert_eq!(parse("sip:u@h?X-Twilio-Foo=1").unwrap_err().code, 32113);
        assert_eq!(parse("sip:u@h?x-twiliosomething=1").unwrap_err().code, 32113);
        assert!(parse("sip:u@h?x-lower=1").is_ok());
    }

    #[test]
    fn malformed_uris() {
        assert_eq!(parse("tel:+15550001001").unwrap_err().code, 12200);
        assert_eq!(parse("sip:user@").unwrap_err().code, 12200);
    }
}
