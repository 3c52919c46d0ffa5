//! A Worker missing a configuration variable answers 500 `configuration_error` naming it, on every
//! route that would act (the webhook, VAPI's messages, the batch API), and writes nothing; `/health` says
//! only `{"configured": false}`, and names the variable to the API key's holder alone. Each route checks
//! its caller with its own variables first: one whose check does not use the missing variable still
//! answers a wrong credential 401/403, telling nothing of the configuration. Runs a second Worker (wasm in
//! workerd via wrangler dev) with one variable left out, and stops it by its process group.

use outcall_e2e::worker::SpareWorker;
use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::json;

const LEFT_OUT: &str = "TWILIO_AUTH_TOKEN";

#[tokio::test]
async fn a_missing_variable_is_a_configuration_error_that_writes_nothing() {
    let stack = Stack::from_env();
    let worker = SpareWorker::start("without-twilio-auth-token", &[(LEFT_OUT, None)]).await;
    let id = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Vera Lund")).await;

    // /health tells anyone whether the Worker is configured, and only the API key's holder what is missing.
    let health: serde_json::Value = reqwest::get(format!("{}/health", worker.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"configured": false}), "no variable named to anyone");
    let health: serde_json::Value = stack
        .http
        .get(format!("{}/health", worker.url))
        .bearer_auth(&stack.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["configured"], false);
    assert!(health["error"]["message"].as_str().unwrap().contains(LEFT_OUT), "{health}");

    let webhook = json!({"type": "INSERT", "table": "pending_calls", "schema": "public", "record": {"id": id}});
    // Wrong credentials: refused as on a configured Worker (the checks do not use TWILIO_AUTH_TOKEN) ...
    let refusals = [
        ("/hooks/pending-calls", ("X-Webhook-Secret", "wrong"), 401),
        ("/vapi/events", ("X-Vapi-Secret", "wrong"), 403),
        ("/api/v1/batches", ("Authorization", "Bearer wrong"), 403),
    ];
    for (path, header, expected) in refusals {
        let (status, body) = stack.post_to(&worker.url, path, &[header], "{}").await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(!body.to_string().contains(LEFT_OUT), "{path} names nothing of the configuration: {body}");
    }
    // ... except where the missing variable is the check's own: Twilio's signature needs the auth token.
    let (status, body) =
        stack.post_to(&worker.url, "/twilio/status", &[("X-Twilio-Signature", "forged")], "CallSid=CA1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("configuration_error")), "{body}");

    let secret = stack.webhook_secret.clone();
    let (status, body) =
        stack.post_to(&worker.url, "/hooks/pending-calls", &[("X-Webhook-Secret", &secret)], webhook.to_string()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "configuration_error");
    assert!(body["error"]["message"].as_str().unwrap().contains(LEFT_OUT), "{body}");

    let vapi_secret = stack.vapi_secret.clone();
    let message = json!({"message": {"type": "assistant-request",
        "call": {"assistantOverrides": {"variableValues": {"pendingcallid": id}}}}});
    let (status, body) =
        stack.post_to(&worker.url, "/vapi/events", &[("X-Vapi-Secret", &vapi_secret)], message.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("configuration_error")));

    // The batch API: 500 as well, and no batch written.
    let name = format!("unconfigured {id}");
    let batch = json!({"name": name, "targets": [{"phone": fresh_phone(Scenario::Human), "name": "Vera Lund"}]});
    let api_key = format!("Bearer {}", stack.api_key);
    let (status, body) =
        stack.post_to(&worker.url, "/api/v1/batches", &[("Authorization", &api_key)], batch.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("configuration_error")), "{body}");
    assert_eq!(stack.scalar(&format!("select count(*) from batches where name = '{name}'")).await, 0);

    stack.assert_untouched(&id).await;
    drop(worker);
}
