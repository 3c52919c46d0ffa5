//! What the streamable HTTP transport refuses before a message is read: a foreign `Origin` (403, against DNS
//! rebinding) and a `MCP-Protocol-Version` this server does not speak (400).

use crate::error::ApiError;

/// The newest revision this server speaks; first in [`SUPPORTED_VERSIONS`].
pub const LATEST_VERSION: &str = "2025-11-25";
/// Every revision this server answers in (JSON answers, no sessions: these three read the same here).
pub const SUPPORTED_VERSIONS: [&str; 3] = [LATEST_VERSION, "2025-06-18", "2025-03-26"];

/// The revision to answer `initialize` in: the client's if we speak it, else our newest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    SUPPORTED_VERSIONS.iter().copied().find(|v| Some(*v) == requested).unwrap_or(LATEST_VERSION)
}

/// `Origin` (when sent) must be this Worker's own origin or a loopback one; `MCP-Protocol-Version` (when
/// sent) one we speak. `own_origin` is the request URL's `scheme://host[:port]`.
pub fn check_headers(origin: Option<&str>, protocol_version: Option<&str>, own_origin: &str) -> Result<(), ApiError> {
    if let Some(origin) = origin {
        if origin != own_origin && !is_loopback(origin) {
            return Err(ApiError::new(403, "forbidden_origin", "this Origin may not call the MCP server"));
        }
    }
    if let Some(version) = protocol_version {
        if !SUPPORTED_VERSIONS.contains(&version.trim()) {
            let message = format!("MCP-Protocol-Version must be one of {}", SUPPORTED_VERSIONS.join(", "));
            return Err(ApiError::bad_request("unsupported_protocol_version", message));
        }
    }
    Ok(())
}

fn is_loopback(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h).trim_start_matches('[')
    } else {
        rest.split(':').next().unwrap_or(rest)
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// The `scheme://host[:port]` of a serialized URL.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |i| &url[..after_scheme + i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_revision_is_answered_when_we_speak_it() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), LATEST_VERSION);
        assert_eq!(negotiate(None), LATEST_VERSION);
    }

    #[test]
    fn only_our_own_or_a_loopback_origin_passes() {
        let own = origin_of("https://outcall.example.workers.dev/mcp");
        assert_eq!(own, "https://outcall.example.workers.dev");
        assert!(check_headers(None, None, own).is_ok());
        assert!(check_headers(Some(own), None, own).is_ok());
        for ok in ["http://localhost:6274", "http://127.0.0.1", "http://[::1]:8080"] {
            assert!(check_headers(Some(ok), None, own).is_ok(), "{ok}");
        }
        for bad in ["https://evil.example", "http://localhost.evil.example", "null", "http://127.0.0.1.nip.io"] {
            assert_eq!(check_headers(Some(bad), None, own).unwrap_err().status, 403, "{bad}");
        }
    }

    #[test]
    fn an_unsupported_protocol_version_header_is_400() {
        assert!(check_headers(None, Some("2025-11-25"), "x").is_ok());
        assert!(check_headers(None, Some("2025-03-26"), "x").is_ok());
        assert_eq!(check_headers(None, Some("2099-01-01"), "x").unwrap_err().status, 400);
    }
}
