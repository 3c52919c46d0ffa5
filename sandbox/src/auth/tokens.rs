//! The session GoTrue answers a sign-in or refresh with (internal/tokens/service.go `AccessTokenResponse`) and
//! the claims of its access token (`AccessTokenClaims`). Pure: the caller signs and supplies the time.

use serde_json::{json, Value};

use super::store::Session;
use super::users::User;

/// What an access token is issued for.
pub struct Grant<'a> {
    pub user: &'a User,
    pub session: &'a Session,
    /// `iss`: the sandbox's public URL + `/auth/v1`.
    pub issuer: &'a str,
    pub issued_at: i64,
    /// Lifetime in seconds (`jwt_expiry`).
    pub expiry: i64,
}

impl Grant<'_> {
    pub fn expires_at(&self) -> i64 {
        self.issued_at + self.expiry
    }

    /// §1.4's claims. `aud` is a string, not an array (GoTrue signs with `MarshalSingleStringAsArray = false`).
    pub fn claims(&self) -> Value {
        let user = self.user;
        json!({
            "iss": self.issuer,
            "sub": user.id,
            "aud": user.aud,
            "exp": self.expires_at(),
            "iat": self.issued_at,
            "email": user.email,
            "phone": user.phone,
            "app_metadata": user.app_metadata(),
            "user_metadata": user.user_metadata,
            "role": user.role,
            "aal": "aal1",
            "amr": self.session.amr,
            "session_id": self.session.id,
            "is_anonymous": user.is_anonymous,
        })
    }

    /// The session JSON: `token_type` the lowercase literal `bearer`, `expires_at` Unix seconds.
    pub fn response(&self, access_token: &str, refresh_token: &str) -> Value {
        json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": self.expiry,
            "expires_at": self.expires_at(),
            "refresh_token": refresh_token,
            "user": self.user.to_json(),
        })
    }
}

/// GoTrue's `AsRedirectURL` (implicit flow): the session in the URL fragment, form-encoded with its keys
/// sorted (Go's `url.Values.Encode`), plus `type` and the empty `sb` marker.
pub fn redirect_with_session(redirect_to: &str, session: &Value, verification_type: &str) -> String {
    let text = |key: &str| match &session[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let fragment = form_urlencoded::Serializer::new(String::new())
        .append_pair("access_token", &text("access_token"))
        .append_pair("expires_at", &text("expires_at"))
        .append_pair("expires_in", &text("expires_in"))
        .append_pair("refresh_token", &text("refresh_token"))
        .append_pair("sb", "")
        .append_pair("token_type", &text("token_type"))
        .append_pair("type", verification_type)
        .finish();
    format!("{redirect_to}#{fragment}")
}

/// GoTrue's `prepErrorRedirectURL` for the implicit flow: the error in the fragment, the query untouched.
pub fn redirect_with_error(redirect_to: &str, oauth_error: &str, code: &str, description: &str) -> String {
    let base = redirect_to.split('#').next().unwrap_or(redirect_to);
    let fragment = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", oauth_error)
        .append_pair("error_code", code)
        .append_pair("error_description", description)
        .append_pair("sb", "")
        .finish();
    format!("{base}#{fragment}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::store::AmrEntry;

    fn user() -> User {
        User::from_row(&json!({"id": "00000000-0000-0000-0000-0000000000a1", "email": "op@example.com",
                               "email_confirmed_at": "2026-12-01T10:00:00+00:00",
                               "raw_user_meta_data": {"name": "x"}}))
        .unwrap()
    }

    #[test]
    fn claims_follow_the_reference() {
        let user = user();
        let session =
            Session { id: uuid::Uuid::nil(), user_id: user.id, amr: vec![AmrEntry { method: "otp", timestamp: 7 }] };
        let grant = Grant { user: &user, session: &session, issuer: "http://h/auth/v1", issued_at: 100, expiry: 60 };
        let c = grant.claims();
        assert_eq!(c["aud"], "authenticated", "a string");
        assert_eq!((c["iat"].as_i64(), c["exp"].as_i64()), (Some(100), Some(160)));
        assert_eq!(c["amr"], json!([{"method": "otp", "timestamp": 7}]));
        assert_eq!(c["user_metadata"], json!({"name": "x"}));
        assert_eq!(c["app_metadata"]["provider"], "email");
        assert_eq!((c["phone"].as_str(), c["is_anonymous"].as_bool()), (Some(""), Some(false)));
        let r = grant.response("a.b.c", "r1");
        assert_eq!((r["token_type"].as_str(), r["expires_at"].as_i64()), (Some("bearer"), Some(160)));
    }

    #[test]
    fn redirects_put_everything_in_the_fragment() {
        let session = json!({"access_token": "a.b.c", "token_type": "bearer", "expires_in": 3600,
                             "expires_at": 1_800_000_000, "refresh_token": "r1"});
        assert_eq!(
            redirect_with_session("http://127.0.0.1:8787/?x=1", &session, "magiclink"),
            "http://127.0.0.1:8787/?x=1#access_token=a.b.c&expires_at=1800000000&expires_in=3600&refresh_token=r1&sb=&token_type=bearer&type=magiclink"
        );
        assert_eq!(
            redirect_with_error("http://h/#old", "access_denied", "otp_expired", "Email link is invalid or has expired"),
            "http://h/#error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired&sb="
        );
    }
}
