//! The users the Auth stand-in signs in: `auth.users` rows, read from Postgres (the stand-in never creates
//! one: sign-ups are off, `./dev operator add` inserts them), or an in-memory list for tests.
//!
//! Rows are read as `to_jsonb(u)`, so the stand-in works with the local `auth.users` (a few of GoTrue's
//! columns) and with the full table alike: a column that is missing reads as null.

use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub aud: String,
    pub role: String,
    pub email: String,
    pub phone: String,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub app_metadata: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub banned_until: Option<DateTime<Utc>>,
    pub is_anonymous: bool,
}

fn time(row: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    let text = row.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    row.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn object(row: &Map<String, Value>, key: &str) -> Map<String, Value> {
    row.get(key).and_then(Value::as_object).cloned().unwrap_or_default()
}

/// GoTrue's JSON timestamps (Go's `time.Time`: RFC 3339 with as many fraction digits as needed).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl User {
    /// A user from `to_jsonb(auth.users row)`; None without a readable id.
    pub fn from_row(row: &Value) -> Option<User> {
        let row = row.as_object()?;
        Some(User {
            id: text(row, "id")?.parse().ok()?,
            // GoTrue writes both on every row it creates; a hand-made row without them is a normal user.
            aud: text(row, "aud").filter(|a| !a.is_empty()).unwrap_or_else(|| "authenticated".into()),
            role: text(row, "role").filter(|r| !r.is_empty()).unwrap_or_else(|| "authenticated".into()),
            email: text(row, "email").unwrap_or_default(),
            phone: text(row, "phone").unwrap_or_default(),
            email_confirmed_at: time(row, "email_confirmed_at"),
            phone_confirmed_at: time(row, "phone_confirmed_at"),
            last_sign_in_at: time(row, "last_sign_in_at"),
            app_metadata: object(row, "raw_app_meta_data"),
            user_metadata: object(row, "raw_user_meta_data"),
            created_at: time(row, "created_at"),
            updated_at: time(row, "updated_at"),
            banned_until: time(row, "banned_until"),
            is_anonymous: row.get("is_anonymous").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// GoTrue's `IsConfirmed`: the email was confirmed. Only confirmed users get a sign-in code.
    pub fn is_confirmed(&self) -> bool {
        self.email_confirmed_at.is_some()
    }

    pub fn is_banned(&self, now: DateTime<Utc>) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }

    /// `app_metadata` as GoTrue returns it after an email sign-in: `provider`/`providers` from the user's
    /// identities (here always the email identity), the rest of the row's metadata kept.
    pub fn app_metadata(&self) -> Map<String, Value> {
        let mut meta = self.app_metadata.clone();
        meta.insert("provider".into(), json!("email"));
        let mut providers: Vec<Value> = meta.get("providers").and_then(Value::as_array).cloned().unwrap_or_default();
        if !providers.contains(&json!("email")) {
            providers.insert(0, json!("email"));
        }
        meta.insert("providers".into(), Value::Array(providers));
        meta
    }

    /// GoTrue's user JSON (internal/models/user.go `User`): timestamps left out when null, `email`/`phone`
    /// empty strings when unset, one `email` identity.
    pub fn to_json(&self) -> Value {
        let mut user = Map::new();
        user.insert("id".into(), json!(self.id));
        user.insert("aud".into(), json!(self.aud));
        user.insert("role".into(), json!(self.role));
        user.insert("email".into(), json!(self.email));
        let put_time = |user: &mut Map<String, Value>, key: &str, t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                user.insert(key.into(), json!(rfc3339(t)));
            }
        };
        put_time(&mut user, "email_confirmed_at", self.email_confirmed_at);
        user.insert("phone".into(), json!(self.phone));
        put_time(&mut user, "phone_confirmed_at", self.phone_confirmed_at);
        // A generated column in GoTrue's table: the earlier of the two confirmations.
        let confirmed = [self.email_confirmed_at, self.phone_confirmed_at].into_iter().flatten().min();
        put_time(&mut user, "confirmed_at", confirmed);
        put_time(&mut user, "last_sign_in_at", self.last_sign_in_at);
        user.insert("app_metadata".into(), Value::Object(self.app_metadata()));
        user.insert("user_metadata".into(), Value::Object(self.user_metadata.clone()));
        user.insert("identities".into(), json!([self.email_identity()]));
        let created = self.created_at.unwrap_or(DateTime::UNIX_EPOCH);
        user.insert("created_at".into(), json!(rfc3339(created)));
        user.insert("updated_at".into(), json!(rfc3339(self.updated_at.unwrap_or(created))));
        put_time(&mut user, "banned_until", self.banned_until);
        user.insert("is_anonymous".into(), json!(self.is_anonymous));
        Value::Object(user)
    }

    /// The `email` identity GoTrue creates with an email user (`id` = the user's id for this provider); its
    /// `identity_id` is derived from the user's id, so it is stable across calls.
    fn email_identity(&self) -> Value {
        let digest = Sha256::new().chain_update(b"identity\0").chain_update(self.id.as_bytes()).finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        let identity_id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let created = rfc3339(self.created_at.unwrap_or(DateTime::UNIX_EPOCH));
        let mut identity = json!({
            "identity_id": identity_id, "id": self.id, "user_id": self.id,
            "identity_data": {"email": self.email, "email_verified": self.is_confirmed(), "phone_verified": false,
                              "sub": self.id},
            "provider": "email", "created_at": created, "updated_at": created, "email": self.email,
        });
        if let Some(t) = self.last_sign_in_at {
            identity["last_sign_in_at"] = json!(rfc3339(t));
        }
        identity
    }
}

#[derive(Debug)]
pub struct DirectoryError(pub String);

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<tokio_postgres::Error> for DirectoryError {
    fn from(e: tokio_postgres::Error) -> Self {
        DirectoryError(crate::logging::error_chain(&e))
    }
}

/// Where users are read from. An enum rather than a trait object: two implementations, async methods.
pub enum Users {
    Postgres(PgUsers),
    Memory(MemoryUsers),
}

impl Users {
    pub fn postgres(database_url: &str) -> Users {
        Users::Postgres(PgUsers { url: database_url.to_owned(), client: tokio::sync::Mutex::new(None) })
    }

    pub fn memory(users: Vec<User>) -> Users {
        Users::Memory(MemoryUsers { users: Mutex::new(users) })
    }

    /// The live user with this email (case-insensitive), confirmed or not.
    pub async fn by_email(&self, email: &str) -> Result<Option<User>, DirectoryError> {
        match self {
            Users::Postgres(pg) => Ok(pg.one(BY_EMAIL, email).await?),
            Users::Memory(m) => Ok(m.find(|u| u.email.eq_ignore_ascii_case(email))),
        }
    }

    pub async fn by_id(&self, id: Uuid) -> Result<Option<User>, DirectoryError> {
        match self {
            Users::Postgres(pg) => Ok(pg.one(BY_ID, &id.to_string()).await?),
            Users::Memory(m) => Ok(m.find(|u| u.id == id)),
        }
    }

    /// Sets `last_sign_in_at` (when the table has the column) and returns the user as it is now.
    pub async fn record_sign_in(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<User>, DirectoryError> {
        match self {
            Users::Postgres(pg) => match pg.one(RECORD_SIGN_IN, &id.to_string()).await {
                // A users table without the column: nothing to record.
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_COLUMN) => self.by_id(id).await,
                other => Ok(other?),
            },
            Users::Memory(m) => {
                let mut users = crate::state::lock(&m.users);
                let user = users.iter_mut().find(|u| u.id == id);
                Ok(user.map(|u| {
                    u.last_sign_in_at = Some(now);
                    u.clone()
                }))
            }
        }
    }
}

// GoTrue's FindUserByEmailAndAudience: lower-cased email, the default audience, not deleted.
const BY_EMAIL: &str = "select to_jsonb(u)::text from auth.users as u
    where lower(u.email) = lower($1::text)
      and coalesce(to_jsonb(u) ->> 'aud', 'authenticated') in ('authenticated', '')
      and to_jsonb(u) ->> 'deleted_at' is null
    limit 1";
const BY_ID: &str = "select to_jsonb(u)::text from auth.users as u
    where u.id = $1::text::uuid and to_jsonb(u) ->> 'deleted_at' is null";
const RECORD_SIGN_IN: &str = "update auth.users as u set last_sign_in_at = now()
    where u.id = $1::text::uuid returning to_jsonb(u)::text";

pub struct PgUsers {
    url: String,
    /// One connection, opened on first use and again after it closed.
    client: tokio::sync::Mutex<Option<Client>>,
}

impl PgUsers {
    async fn one(&self, sql: &str, arg: &str) -> Result<Option<User>, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    crate::log!(warn, "auth", "database connection closed: {}", crate::logging::error_chain(&e));
                }
            });
            *slot = Some(client);
        }
        let client = slot.as_ref().expect("connected above");
        let row = client.query_opt(sql, &[&arg]).await?;
        let text = row.and_then(|r| r.get::<_, Option<String>>(0));
        Ok(text.and_then(|t| serde_json::from_str::<Value>(&t).ok()).and_then(|v| User::from_row(&v)))
    }
}

/// Users held in memory (tests, and a stack without a database).
pub struct MemoryUsers {
    users: Mutex<Vec<User>>,
}

impl MemoryUsers {
    fn find(&self, pred: impl Fn(&User) -> bool) -> Option<User> {
        crate::state::lock(&self.users).iter().find(|u| pred(u)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Value {
        json!({"id": "00000000-0000-0000-0000-0000000000a1", "aud": "authenticated", "role": "authenticated",
               "email": "op@example.com", "email_confirmed_at": "2026-12-01T10:00:00.5+00:00",
               "raw_app_meta_data": {"provider": "email", "providers": ["email"], "tier": "x"},
               "raw_user_meta_data": {}, "created_at": "2026-12-01T09:00:00+00:00",
               "updated_at": "2026-12-01T09:00:00+00:00", "deleted_at": null})
    }

    #[test]
    fn a_stand_in_row_reads_with_defaults() {
        let user = User::from_row(&row()).unwrap();
        assert!(user.is_confirmed());
        assert_eq!(user.phone, "", "no phone column: empty, as GoTrue's NullString");
        let minimal = User::from_row(&json!({"id": "00000000-0000-0000-0000-0000000000a2", "email": "x@y.z"})).unwrap();
        assert!(!minimal.is_confirmed());
        assert_eq!((minimal.aud.as_str(), minimal.role.as_str()), ("authenticated", "authenticated"));
        assert!(User::from_row(&json!({"email": "x@y.z"})).is_none());
    }

    #[test]
    fn user_json_has_gotrue_keys_and_leaves_out_null_times() {
        let user = User::from_row(&row()).unwrap();
        let j = user.to_json();
        for key in [
            "id",
            "aud",
            "role",
            "email",
            "phone",
            "email_confirmed_at",
            "confirmed_at",
            "app_metadata",
            "user_metadata",
            "identities",
            "created_at",
            "updated_at",
            "is_anonymous",
        ] {
            assert!(j.get(key).is_some(), "missing {key}");
        }
        assert!(j.get("last_sign_in_at").is_none() && j.get("banned_until").is_none());
        assert_eq!(j["email_confirmed_at"], "2026-12-01T10:00:00.500Z");
        assert_eq!(j["app_metadata"], json!({"provider": "email", "providers": ["email"], "tier": "x"}));
        assert_eq!(j["identities"][0]["provider"], "email");
        assert_eq!(j["identities"][0]["id"], j["id"]);
        assert_eq!(j["identities"][0]["identity_id"], user.to_json()["identities"][0]["identity_id"], "stable");
    }
}
