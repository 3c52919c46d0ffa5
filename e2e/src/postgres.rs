//! The stack's Postgres, restarted under load.

use std::path::Path;

/// A fast restart of the stack's Postgres (`./dev restart-postgres`: `pg_ctl restart -m fast`, so open
/// transactions are rolled back and every connection is closed), with the options `./dev up` started it with.
/// Returns once it accepts connections again; what reconnects after it is up to each part of the stack.
pub async fn restart_stack_postgres() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("dev");
    let status =
        tokio::process::Command::new(dev).arg("restart-postgres").status().await.expect("./dev runs (bash on PATH)");
    assert!(status.success(), "./dev restart-postgres failed: {status}");
}
