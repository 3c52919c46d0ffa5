//! outcall-sandbox: local stand-ins for Twilio, VAPI, Deepgram's live STT, an
//! OpenAI-compatible judge, pg_net delivery, Supabase's `/rest/v1` gateway, Auth (`/auth/v1`) and Realtime's
//! `postgres_changes`, in one process, with an inspection API.

pub mod auth;
pub mod clinic;
pub mod clock;
pub mod config;
pub mod faults;
pub mod gateway;
pub mod inspect;
pub mod judge;
pub mod jwt;
pub mod logging;
pub mod pgnet;
pub mod realtime;
pub mod state;
pub mod stats;
pub mod stt;
pub mod twilio;
pub mod vapi;
pub mod voice;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::Router;

pub use config::Config;
pub use state::AppState;

/// Every route of the sandbox. Unknown paths get a JSON 404.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(gateway::routes())
        .merge(auth::routes())
        .merge(twilio::api::routes())
        .merge(twilio::messaging::routes())
        .merge(inspect::routes())
        .merge(faults::api::routes())
        .merge(stt::routes())
        .merge(judge::routes())
        .merge(clinic::api::routes())
        .merge(realtime::routes())
        .fallback(|uri: Uri| async move {
            inspect::api_error(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
        })
        .layer(DefaultBodyLimit::max(gateway::BODY_LIMIT))
        .with_state(state)
}

/// Serves until SIGINT/SIGTERM, with the pg_net delivery loop alongside.
pub async fn serve(config: Config) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let state = AppState::new(config);
    log!(info, "sandbox", "listening on http://{} (time scale {})", listener.local_addr()?, state.config.time_scale);
    tokio::spawn(pgnet::run(state.clone()));
    let feed = tokio::spawn(realtime::feed::run(state.clone()));
    let served = axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown_signal()).await;
    // The feed drops its replication slot on the way out, so the slot does not keep WAL for nobody.
    state.realtime.stop();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), feed).await;
    served
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    log!(info, "sandbox", "shutting down");
}
