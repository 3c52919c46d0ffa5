//! Realtime `postgres_changes` on the running stack, as the dashboard subscribes: an operator's channel sees a
//! row inserted through PostgREST and every status it moves through as it is dialled; a signed-in user who
//! is not an operator sees none of it (RLS, checked per change as the subscriber; like Realtime, a DELETE is
//! not checked and carries only the key); a filter delivers only the rows it names; an expired token is
//! refused at the join.

use std::time::Duration;

use outcall_e2e::realtime::RealtimeClient;
use outcall_e2e::users;
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::{json, Value};

fn every_call() -> Value {
    json!([{"event": "*", "schema": "public", "table": "pending_calls"}])
}

async fn subscribe(stack: &Stack, channel: &str, bindings: Value, token: &str) -> (RealtimeClient, Vec<u64>) {
    let mut client = RealtimeClient::connect(stack).await;
    let reply = client.join(channel, bindings, token).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let ids =
        reply["response"]["postgres_changes"].as_array().unwrap().iter().map(|b| b["id"].as_u64().unwrap()).collect();
    client.subscribed().await;
    (client, ids)
}

fn record_id(change: &Value) -> Option<&str> {
    change["data"]["record"]["id"].as_str().or(change["data"]["old_record"]["id"].as_str())
}

#[tokio::test]
async fn an_operator_watches_a_call_move_and_an_outsider_sees_nothing() {
    let stack = Stack::from_env();
    let operator = users::operator(&stack, "operator").await;
    let outsider = users::stranger(&stack).await;
    let (mut watching, ids) = subscribe(&stack, "calls", every_call(), &users::access_token(&stack, &operator)).await;
    let (mut outside, _) = subscribe(&stack, "calls", every_call(), &users::access_token(&stack, &outsider)).await;

    let row = stack.insert_pending_call(sample_row(&fresh_phone(Scenario::Human), "Grace Kim")).await;
    let id = row["id"].as_str().unwrap();

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut first = None;
    while seen.last().is_none_or(|(_, status)| status != "completed") {
        let change =
            watching.change(Duration::from_secs(60)).await.unwrap_or_else(|| panic!("no change after {seen:?}"));
        if record_id(&change) != Some(id) {
            continue;
        }
        assert_eq!(change["ids"], json!(ids));
        let data = &change["data"];
        seen.push((data["type"].as_str().unwrap().into(), data["record"]["call_status"].as_str().unwrap().into()));
        first.get_or_insert_with(|| change.clone());
    }
    assert_eq!(seen[0], ("INSERT".into(), "pending".into()), "{seen:?}");
    assert!(seen[1..].iter().all(|(kind, _)| kind == "UPDATE"), "{seen:?}");
    assert!(seen.iter().any(|(_, status)| status == "calling"), "the call's progress is seen: {seen:?}");

    // The INSERT as Realtime sends it: every column with its type, values as JSON, no old_record.
    let data = &first.unwrap()["data"];
    assert_eq!(
        (data["schema"].clone(), data["table"].clone(), data["errors"].clone()),
        (json!("public"), json!("pending_calls"), Value::Null)
    );
    let stamp = data["commit_timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z') && stamp.len() == 24,
        "{stamp}"
    );
    let columns = data["columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!({"name": "id", "type": "uuid"}))
            && columns.contains(&json!({"name": "created_at", "type": "timestamptz"}))
    );
    assert_eq!(columns.len(), data["record"].as_object().unwrap().len());
    assert_eq!(data["record"]["procedures"], row["procedures"], "arrays as arrays");
    assert_eq!(data["record"]["instructions"], row["instructions"], "jsonb as objects");
    assert!(data["record"]["attempts"].is_number());
    assert!(data.get("old_record").is_none());

    // RLS hides every row from a non-operator. Only DELETEs (which Realtime cannot check: the row is gone) may
    // reach them, with the key alone: a parallel test deletes a row.
    while let Some(change) = outside.change(Duration::from_millis(500)).await {
        assert_eq!(change["data"]["type"], "DELETE", "a non-operator received {change}");
        assert_eq!(change["data"]["old_record"].as_object().unwrap().len(), 1, "{change}");
        assert_ne!(record_id(&change), Some(id));
    }
}

#[tokio::test]
async fn a_filter_delivers_only_the_rows_it_names_and_a_delete_only_the_key() {
    let stack = Stack::from_env();
    let operator = users::operator(&stack, "viewer").await;
    let bindings = json!([{"event": "UPDATE", "schema": "public", "table": "pending_calls", "filter": "call_status=eq.cancelled"},
                          {"event": "DELETE", "schema": "public", "table": "pending_calls"}]);
    let (mut client, ids) = subscribe(&stack, "cancelled", bindings, &users::access_token(&stack, &operator)).await;

    let cancelled = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Busy), "Omar Haddad")).await;
    let other = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Busy), "Mei Tanaka")).await;
    let db = stack.db().await;
    db.execute("update pending_calls set max_attempts = 5 where id = $1::text::uuid", &[&other]).await.unwrap();
    db.execute("update pending_calls set call_status = 'cancelled' where id = $1::text::uuid", &[&cancelled])
        .await
        .unwrap();
    db.execute("delete from pending_calls where id = $1::text::uuid", &[&other]).await.unwrap();

    let update = client.change(Duration::from_secs(10)).await.expect("the cancelled row's UPDATE");
    assert_eq!((update["ids"].clone(), update["data"]["type"].clone()), (json!([ids[0]]), json!("UPDATE")));
    assert_eq!(record_id(&update), Some(cancelled.as_str()), "not the other row's update, nor the inserts");
    assert_eq!(
        (update["data"]["record"]["call_status"].clone(), update["data"]["old_record"]["call_status"].clone()),
        (json!("cancelled"), json!("pending"))
    );

    let delete = client.change(Duration::from_secs(10)).await.expect("the DELETE");
    assert_eq!((delete["ids"].clone(), delete["data"]["type"].clone()), (json!([ids[1]]), json!("DELETE")));
    assert_eq!(delete["data"]["old_record"], json!({"id": other}), "under RLS a DELETE carries the key only");
    assert!(delete["data"].get("record").is_none());
    assert_eq!(client.change(Duration::from_millis(500)).await, None);
}

#[tokio::test]
async fn an_expired_token_is_refused_at_the_join() {
    let stack = Stack::from_env();
    let operator = users::operator(&stack, "operator").await;
    let mut client = RealtimeClient::connect(&stack).await;
    let reply = client
        .join("calls", every_call(), &users::es256(&stack, &users::claims_expiring_in(&stack, &operator, -30)))
        .await;
    assert_eq!(reply["status"], "error");
    let reason = reply["response"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("InvalidJWTExpiration: Token has expired"), "{reason}");
}
