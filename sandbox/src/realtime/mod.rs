//! Supabase Realtime's `postgres_changes`, as supabase-js (realtime-js) speaks it: Phoenix channels over a
//! WebSocket at `/realtime/v1/websocket` (`socket`, `frame`, `join`), fed like Realtime by a logical
//! replication slot read with wal2json (`feed`, `change`, `values`), filtered per binding (`filter`) and per
//! subscriber by the table's row level security, checked as the subscriber's role and claims (`rls`).
//! Broadcast and presence are not served. Reference: shared operators.md §2.

pub mod catalog;
pub mod change;
pub mod feed;
pub mod filter;
pub mod frame;
pub mod hub;
pub mod join;
pub mod rls;
pub mod socket;
pub mod values;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::config::Config;
use crate::jwt::AuthKeys;
use crate::state::AppState;

pub struct Realtime {
    /// Verifies the socket's apikey and each channel's access token (ES256 users' tokens, HS256 API keys).
    pub keys: AuthKeys,
    pub hub: hub::Hub,
    /// The logical replication slot the feed reads (one per sandbox port, so two sandboxes on one database
    /// do not take each other's changes).
    pub slot: String,
    stop: watch::Sender<bool>,
}

impl Realtime {
    pub fn new(config: &Config) -> Realtime {
        Realtime {
            keys: AuthKeys::derive(&config.jwt_secret),
            hub: hub::Hub::default(),
            slot: format!("outcall_sandbox_realtime_{}", config.addr.port()),
            stop: watch::channel(false).0,
        }
    }

    /// Asks the feed to drop its slot and end (the sandbox is shutting down).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/realtime/v1/websocket", get(socket::websocket))
}
