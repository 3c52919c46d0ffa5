//! The Realtime stand-in's change feed outlives a Postgres restart (`./dev restart-postgres`): it reconnects
//! to its replication slot, which kept what was committed meanwhile. Alone in its binary: the restart would
//! disturb other tests.

use std::time::Duration;

use outcall_e2e::postgres::restart_stack_postgres;
use outcall_e2e::realtime::RealtimeClient;
use outcall_e2e::users;
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::json;

#[tokio::test]
async fn changes_keep_coming_after_a_postgres_restart() {
    let stack = Stack::from_env();
    let operator = users::operator(&stack, "viewer").await;
    let mut client = RealtimeClient::connect(&stack).await;
    let bindings = json!([{"event": "INSERT", "schema": "public", "table": "pending_calls"}]);
    assert_eq!(client.join("restart", bindings, &users::access_token(&stack, &operator)).await["status"], "ok");
    client.subscribed().await;

    restart_stack_postgres().await;
    // Committed at once, most likely before the feed has reconnected: the slot keeps it.
    let id = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Busy), "Kofi Mensah")).await;
    loop {
        let change = client.change(Duration::from_secs(15)).await.expect("the INSERT after the restart");
        if change["data"]["record"]["id"] == id.as_str() {
            break;
        }
    }
}
