//! `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, url + sorted name+value pairs)).
//!
//! Written apart from outcall-core's verifier on purpose: the Worker is checked against an independent
//! signer, so one shared mistake cannot pass unnoticed. Both are held to Twilio's documented vector.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Signs a request the way Twilio does. `params` are the decoded form fields of
/// a POST body (empty for GET, whose parameters are already in `url`).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Sorted by name; a repeated name keeps its values sorted too, as Twilio's helpers do.
    sorted.sort();
    let mut data = String::from(url);
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn twilio_documented_vector() {
        // Deliberately unsorted: signing must sort.
        let params = pairs(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("From", "+12349013030"),
            ("Digits", "1234"),
            ("Caller", "+12349013030"),
        ]);
        assert_eq!(
            sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn url_and_token_matter() {
        let params = pairs(&[("CallSid", "CA1")]);
        let base = sign("t", "http://a/x", &params);
        assert_ne!(base, sign("t", "http://a/y", &params));
        assert_ne!(base, sign("u", "http://a/x", &params));
        assert_eq!(base, sign("t", "http://a/x", &params));
    }
}
