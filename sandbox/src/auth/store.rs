//! What the Auth stand-in keeps in memory: the one live sign-in code per user, the "emails" sent (for the
//! inspection API), sessions and their refresh tokens. Pure state changes; callers pass the time.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha224};
use uuid::Uuid;

use crate::state::lock;

/// GoTrue's default `otp_exp` (GOTRUE_MAILER_OTP_EXP): a code or link is good for an hour.
pub const OTP_EXPIRY: Duration = Duration::seconds(3600);

/// GoTrue's `crypto.GenerateTokenHash`: hex SHA-224 of the email and the code. It is both what an email link
/// carries (`token_hash`) and how a typed code is matched.
pub fn token_hash(email: &str, code: &str) -> String {
    crate::jwt::hex(&Sha224::new().chain_update(email.as_bytes()).chain_update(code.as_bytes()).finalize())
}

/// 64 random bits from the OS generator (through uuid's v4, the sandbox's source of randomness).
fn random_u64() -> u64 {
    let bytes = Uuid::new_v4().into_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// A 6-digit code, leading zeros kept, as GoTrue's `GenerateOtp(6)`.
pub fn new_code() -> String {
    format!("{:06}", random_u64() % 1_000_000)
}

/// An opaque refresh token (GoTrue's are random strings too; clients never read them).
fn new_refresh_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bits = [random_u64(), random_u64()];
    (0..20)
        .map(|i| {
            let word = &mut bits[i / 10];
            let c = ALPHABET[(*word % ALPHABET.len() as u64) as usize];
            *word /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// One "email" the stand-in sent: what `GET /_sandbox/auth/messages` lists.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub email: String,
    /// `magiclink`: a confirmed user's sign-in (the only kind while sign-ups are off).
    pub kind: &'static str,
    pub code: String,
    pub token_hash: String,
    /// The email's link: `GET /auth/v1/verify?token=<token_hash>&type=magiclink&redirect_to=...`.
    pub link: String,
    pub sent_at: String,
}

#[derive(Debug, Clone)]
struct Pending {
    user_id: Uuid,
    token_hash: String,
    sent_at: DateTime<Utc>,
}

/// How the user signed in, as the `amr` claim lists it (GoTrue's `AMREntry`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AmrEntry {
    pub method: &'static str,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub amr: Vec<AmrEntry>,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    session_id: Uuid,
    revoked: bool,
    /// The token it was swapped for, once used.
    child: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// Unknown, or its session was logged out.
    NotFound,
    /// Used before and not the parent of the session's current token: the session is revoked.
    AlreadyUsed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    Global,
    Local,
    Others,
}

#[derive(Default)]
struct Inner {
    /// The one live code per user: a new one replaces it.
    pending: HashMap<Uuid, Pending>,
    messages: Vec<Message>,
    sessions: HashMap<Uuid, Session>,
    refresh: HashMap<String, RefreshToken>,
    /// Each session's current (unrevoked) refresh token.
    current: HashMap<Uuid, String>,
}

#[derive(Default)]
pub struct AuthStore {
    inner: Mutex<Inner>,
}

impl AuthStore {
    /// Records a new code for `user_id` (replacing any earlier one) and the message that carries it.
    pub fn send_code(&self, user_id: Uuid, email: &str, code: &str, link: String, now: DateTime<Utc>) -> Message {
        let hash = token_hash(email, code);
        let message = Message {
            email: email.to_owned(),
            kind: "magiclink",
            code: code.to_owned(),
            token_hash: hash.clone(),
            link,
            sent_at: super::users::rfc3339(now),
        };
        let mut inner = lock(&self.inner);
        inner.pending.insert(user_id, Pending { user_id, token_hash: hash, sent_at: now });
        inner.messages.push(message.clone());
        message
    }

    /// The user whose live, unexpired code has this hash; the code is used up. None for a wrong, replaced,
    /// used or expired code (GoTrue answers all of them alike).
    pub fn take_code(&self, hash: &str, now: DateTime<Utc>) -> Option<Uuid> {
        let mut inner = lock(&self.inner);
        let user_id = inner.pending.values().find(|p| p.token_hash == hash)?.user_id;
        let pending = inner.pending.remove(&user_id)?;
        (now <= pending.sent_at + OTP_EXPIRY).then_some(user_id)
    }

    /// Messages sent to `email` (case-insensitive), oldest first.
    pub fn messages(&self, email: &str) -> Vec<Message> {
        lock(&self.inner).messages.iter().filter(|m| m.email.eq_ignore_ascii_case(email)).cloned().collect()
    }

    /// Forgets messages and live codes (`POST /_sandbox/reset`); sessions stay signed in.
    pub fn clear_messages(&self) -> usize {
        let mut inner = lock(&self.inner);
        inner.pending.clear();
        std::mem::take(&mut inner.messages).len()
    }

    /// A new session for a user who just proved it, and its first refresh token.
    pub fn start_session(&self, user_id: Uuid, method: &'static str, now: DateTime<Utc>) -> (Session, String) {
        let session =
            Session { id: Uuid::new_v4(), user_id, amr: vec![AmrEntry { method, timestamp: now.timestamp() }] };
        let token = new_refresh_token();
        let mut inner = lock(&self.inner);
        inner.sessions.insert(session.id, session.clone());
        inner.refresh.insert(token.clone(), RefreshToken { session_id: session.id, revoked: false, child: None });
        inner.current.insert(session.id, token.clone());
        (session, token)
    }

    /// GoTrue's refresh-token rotation: a live token is swapped for a new one; the parent of the session's
    /// current token is answered with that token (a client that lost the answer of its last refresh); any
    /// other used token revokes the whole session's tokens.
    pub fn refresh(&self, token: &str) -> Result<(Session, String), RefreshError> {
        let mut inner = lock(&self.inner);
        let old = inner.refresh.get(token).cloned().ok_or(RefreshError::NotFound)?;
        let session = inner.sessions.get(&old.session_id).cloned().ok_or(RefreshError::NotFound)?;
        let current = inner.current.get(&session.id).cloned();
        if old.revoked {
            return match (&old.child, current) {
                (Some(child), Some(current)) if *child == current => Ok((session, current)),
                _ => {
                    for t in inner.refresh.values_mut().filter(|t| t.session_id == session.id) {
                        t.revoked = true;
                    }
                    inner.current.remove(&session.id);
                    Err(RefreshError::AlreadyUsed)
                }
            };
        }
        let new = new_refresh_token();
        inner.refresh.insert(new.clone(), RefreshToken { session_id: session.id, revoked: false, child: None });
        let used = inner.refresh.get_mut(token).expect("found above");
        used.revoked = true;
        used.child = Some(new.clone());
        inner.current.insert(session.id, new.clone());
        Ok((session, new))
    }

    pub fn session(&self, id: Uuid) -> Option<Session> {
        lock(&self.inner).sessions.get(&id).cloned()
    }

    /// Ends sessions and drops their refresh tokens: this one (`Local`), the user's others, or all of the
    /// user's (`Global`). Returns how many ended.
    pub fn logout(&self, user_id: Uuid, session_id: Option<Uuid>, scope: LogoutScope) -> usize {
        let mut inner = lock(&self.inner);
        let ending: Vec<Uuid> = inner
            .sessions
            .values()
            .filter(|s| s.user_id == user_id)
            .filter(|s| match (scope, session_id) {
                (LogoutScope::Local, Some(id)) => s.id == id,
                (LogoutScope::Others, Some(id)) => s.id != id,
                _ => true,
            })
            .map(|s| s.id)
            .collect();
        for id in &ending {
            inner.sessions.remove(id);
            inner.current.remove(id);
        }
        inner.refresh.retain(|_, t| !ending.contains(&t.session_id));
        ending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn token_hash_is_gotrues() {
        // hex(sha224("op@example.com" + "123456")), as GoTrue's crypto.GenerateTokenHash computes it
        // (python3 -c "import hashlib; print(hashlib.sha224(b'op@example.com123456').hexdigest())").
        assert_eq!(token_hash("op@example.com", "123456"), "c25dbcca881bb933ad88b9b3554ef27415f93709ee2f069e3f63e312");
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..20).map(|_| new_code()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.iter().any(|c| c != &codes[0]));
        assert_ne!(new_refresh_token(), new_refresh_token());
    }

    #[test]
    fn a_code_is_single_use_replaced_by_the_next_and_expires() {
        let store = AuthStore::default();
        let user = Uuid::new_v4();
        let first = store.send_code(user, "op@example.com", "111111", "l".into(), at(0));
        let second = store.send_code(user, "op@example.com", "222222", "l".into(), at(1));
        assert_eq!(store.take_code(&first.token_hash, at(2)), None, "replaced by the second");
        assert_eq!(store.take_code(&second.token_hash, at(2)), Some(user));
        assert_eq!(store.take_code(&second.token_hash, at(3)), None, "used");
        let third = store.send_code(user, "op@example.com", "333333", "l".into(), at(10));
        assert_eq!(store.take_code(&third.token_hash, at(10 + 3601)), None, "expired after otp_exp");
        let fourth = store.send_code(user, "op@example.com", "444444", "l".into(), at(20));
        assert_eq!(store.take_code(&fourth.token_hash, at(20 + 3600)), Some(user), "good to the last second");
        assert_eq!(store.messages("OP@example.com").len(), 4);
        assert_eq!(store.clear_messages(), 4);
        assert!(store.messages("op@example.com").is_empty());
    }

    #[test]
    fn refresh_rotates_tolerates_a_lost_answer_and_revokes_on_reuse() {
        let store = AuthStore::default();
        let (session, a) = store.start_session(Uuid::new_v4(), "otp", at(0));
        let (s, b) = store.refresh(&a).unwrap();
        assert_eq!(s, session);
        assert_ne!(a, b);
        assert_eq!(store.refresh(&a).unwrap().1, b, "the parent of the current token gets the current token");
        let (_, c) = store.refresh(&b).unwrap();
        assert_eq!(store.refresh(&a), Err(RefreshError::AlreadyUsed));
        assert_eq!(store.refresh(&c), Err(RefreshError::AlreadyUsed), "the whole family is revoked");
        assert_eq!(store.refresh("nope"), Err(RefreshError::NotFound));
    }

    #[test]
    fn logout_scopes() {
        let store = AuthStore::default();
        let user = Uuid::new_v4();
        let (one, t1) = store.start_session(user, "otp", at(0));
        let (two, t2) = store.start_session(user, "otp", at(0));
        let (other, t3) = store.start_session(Uuid::new_v4(), "otp", at(0));
        assert_eq!(store.logout(user, Some(one.id), LogoutScope::Others), 1);
        assert!(store.session(two.id).is_none() && store.session(one.id).is_some());
        assert_eq!(store.refresh(&t2), Err(RefreshError::NotFound));
        assert_eq!(store.logout(user, Some(one.id), LogoutScope::Local), 1);
        assert_eq!(store.refresh(&t1), Err(RefreshError::NotFound));
        assert!(store.refresh(&t3).is_ok(), "another user's session is untouched");
        assert_eq!(store.logout(other.user_id, None, LogoutScope::Global), 1);
    }
}
