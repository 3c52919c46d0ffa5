//! VAPI sees only the live call: the context of a row goes to the VAPI call of its current, live attempt
//! (the first to ask is bound to the session), never to another VAPI call, never for a finished or
//! never-dialled row, and a tool's arguments cannot reach another row. Refusals keep VAPI's shapes and
//! carry no personal data.

use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack};
use serde_json::{json, Value};

fn call(vapi_call_id: &str, pending_call_id: &str) -> Value {
    json!({"id": vapi_call_id, "assistantOverrides": {"variableValues": {"pendingcallid": pending_call_id}}})
}

async fn assistant_request(stack: &Stack, vapi_call_id: &str, pending_call_id: &str) -> Value {
    let (status, body) =
        stack.vapi_message(json!({"type": "assistant-request", "call": call(vapi_call_id, pending_call_id)})).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The tool's result, parsed (VAPI carries it as a string).
async fn fetch_tool(stack: &Stack, vapi_call_id: &str, pending_call_id: &str, argument: &str) -> Value {
    let (status, body) = stack
        .vapi_message(json!({"type": "tool-calls", "call": call(vapi_call_id, pending_call_id),
            "toolCallList": [{"id": "t1", "name": "fetch_pending_call", "arguments": {"pendingcallid": argument}}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["toolCallId"], "t1");
    serde_json::from_str(body["results"][0]["result"].as_str().unwrap()).unwrap()
}

/// VAPI's refusal: `{"error": "..."}` and nothing of the row in it.
fn assert_refused(body: &Value, name: &str) {
    assert!(body["error"].is_string(), "refused in VAPI's shape: {body}");
    assert!(body.get("assistantId").is_none() && body.get("employee_name").is_none(), "{body}");
    let text = body.to_string();
    assert!(!text.contains(name) && !text.contains("1986-04-12"), "no personal data in a refusal: {body}");
}

#[tokio::test]
async fn a_live_call_gets_its_context_and_no_other_vapi_call_does() {
    let stack = Stack::from_env();
    let (id, session, sid) = stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Lena Fischer")).await;
    let vapi_call = format!("vapi-{}", uuid::Uuid::new_v4().simple());

    let body = assistant_request(&stack, &vapi_call, &id).await;
    assert!(body["assistantId"].is_string(), "{body}");
    assert_eq!(body["assistantOverrides"]["variableValues"]["employee_name"], "Lena Fischer");
    assert_eq!(body["assistantOverrides"]["variableValues"]["employee_dob"], "1986-04-12", "date of birth by default");
    let bound: String = stack
        .db()
        .await
        .query_one("select vapi_call_id from call_sessions where id = $1::text::uuid", &[&session])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound, vapi_call, "the session is bound to the VAPI call that asked first");
    assert_eq!(fetch_tool(&stack, &vapi_call, &id, &id).await["employee_name"], "Lena Fischer", "its tool too");

    // A second VAPI call naming the same row: refused, for the context, the tool and the report.
    let intruder = format!("vapi-{}", uuid::Uuid::new_v4().simple());
    assert_refused(&assistant_request(&stack, &intruder, &id).await, "Lena Fischer");
    assert_refused(&fetch_tool(&stack, &intruder, &id, &id).await, "Lena Fischer");
    let (status, body) = stack
        .vapi_message(json!({"type": "end-of-call-report", "endedReason": "customer-ended-call",
            "analysis": {"summary": "forged"}, "call": call(&intruder, &id)}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], false, "another VAPI call's report changes nothing: {body}");
    let row = stack.pending_call(&id).await;
    assert_eq!((row["call_status"].as_str(), row["summary"].as_str()), (Some("calling"), None), "{row}");
    stack.hang_up(&sid).await;
}

#[tokio::test]
async fn a_tool_cannot_fetch_another_row_than_its_call() {
    let stack = Stack::from_env();
    let (mine, _, my_sid) = stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Omar Haddad")).await;
    let (other, _, other_sid) = stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Ines Duarte")).await;
    let vapi_call = format!("vapi-{}", uuid::Uuid::new_v4().simple());
    assert!(assistant_request(&stack, &vapi_call, &mine).await["assistantId"].is_string());
    let result = fetch_tool(&stack, &vapi_call, &mine, &other).await;
    assert_refused(&result, "Ines Duarte");
    stack.hang_up(&my_sid).await;
    stack.hang_up(&other_sid).await;
}

#[tokio::test]
async fn finished_and_never_dialled_rows_get_vapis_error_shape() {
    let stack = Stack::from_env();
    // Never dialled: parked, no session.
    let parked = stack.insert_parked(&sample_row(&fresh_phone(Scenario::Human), "Yusuf Arslan")).await;
    assert_refused(&assistant_request(&stack, "vapi-parked", &parked).await, "Yusuf Arslan");
    assert_refused(&fetch_tool(&stack, "vapi-parked", &parked, &parked).await, "Yusuf Arslan");
    stack.assert_untouched(&parked).await;

    // Finished: the call ends with its report; its own VAPI call asks again.
    let (id, _, sid) = stack.insert_dialled(&sample_row(&fresh_phone(Scenario::Human), "Greta Holm")).await;
    let vapi_call = format!("vapi-{}", uuid::Uuid::new_v4().simple());
    assert!(assistant_request(&stack, &vapi_call, &id).await["assistantId"].is_string());
    let (status, body) = stack
        .vapi_message(
            json!({"type": "end-of-call-report", "endedReason": "customer-ended-call", "call": call(&vapi_call, &id)}),
        )
        .await;
    assert_eq!((status, body["call_status"].as_str()), (200, Some("completed")), "{body}");
    assert_refused(&assistant_request(&stack, &vapi_call, &id).await, "Greta Holm");
    assert_refused(&fetch_tool(&stack, &vapi_call, &id, &id).await, "Greta Holm");
    stack.hang_up(&sid).await;
}
