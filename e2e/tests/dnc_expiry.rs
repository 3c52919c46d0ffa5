//! Do-not-call and expiry, end to end: a batch whose targets include a phone put on the list through the API
//! and one that texted STOP (the sandbox's signed inbound message), under a rate so low that its `expiresAt`
//! passes before every row can be dialled. From what the sandbox's Twilio saw: no suppressed phone is ever
//! dialled, every call created belongs to an attempt started before its row's expiry (and arrived within its
//! dial's delay), and the batch's `suppressed` / `expired` counts are
//! the database's. Also the suppression API's answers (201, 200, 400 with the path and nothing written, list,
//! removal by body) and `expiresAt`'s refusals. (Alone in its binary: it narrows the global policy.)

use chrono::{DateTime, Duration as Span, Utc};
use outcall_e2e::sms::sender;
use outcall_e2e::{fresh_phone, Scenario, Stack};
use reqwest::Method;
use serde_json::{json, Value};

const TARGETS: usize = 10;

async fn listed(stack: &Stack) -> Vec<Value> {
    let (status, _, body) = stack.api(Method::GET, "suppressions?limit=1000", &[], None).await;
    assert_eq!(status, 200, "{body}");
    body["suppressions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn suppressed_phones_are_never_dialled_and_nothing_is_dialled_after_its_expiry() {
    let stack = Stack::from_env();

    // The list, through the API -------------------------------------------------------------------------------
    let manual = fresh_phone(Scenario::Human);
    let add = json!({"phone": manual, "reason": "asked not to be called"}).to_string();
    let (status, _, body) = stack.api(Method::POST, "suppressions", &[], Some(add.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["suppression"]["source"], "manual");
    assert_eq!(body["suppression"]["addedBy"], "api");
    let (status, _, body) = stack.api(Method::POST, "suppressions", &[], Some(add)).await;
    assert_eq!((status, &body["created"]), (200, &json!(false)), "adding again: the entry as it was");
    let before = stack.scalar("select count(*) from public.suppression_list").await;
    let (status, _, body) = stack
        .api(Method::POST, "suppressions", &[], Some(json!({"phone": "555-0100", "source": "whim"}).to_string()))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("validation_error")), "{body}");
    let paths: Vec<&str> =
        body["error"]["items"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["phone", "source"]);
    assert_eq!(stack.scalar("select count(*) from public.suppression_list").await, before, "nothing written");

    // A STOP texted to one of our numbers lists the phone too.
    let texted_stop = fresh_phone(Scenario::Human);
    let posted = stack.sms_reply(&texted_stop, &sender(), "STOP").await;
    assert_eq!(posted["status"], 200, "{posted}");
    let entry = listed(&stack).await.into_iter().find(|e| e["phone"] == texted_stop.as_str());
    assert_eq!(entry.as_ref().map(|e| e["source"].clone()), Some(json!("sms_opt_out")), "{entry:?}");

    // expiresAt's refusals ----------------------------------------------------------------------------------
    let one = |phone: &str| json!([{"phone": phone, "name": "Refused"}]);
    let past = (Utc::now() - Span::minutes(1)).to_rfc3339();
    let (status, _, body) = stack
        .api(Method::POST, "batches", &[], Some(json!({"targets": one(&manual), "expiresAt": past}).to_string()))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["error"]["items"][0]["path"].as_str(), body["error"]["items"][0]["code"].as_str()),
        (Some("expiresAt"), Some("expires_in_past"))
    );
    let request = json!({"targets": one(&manual), "expiresAt": "2099-01-01T00:00:00Z",
                         "schedule": {"notBefore": "2099-01-02T00:00:00Z"}});
    let (status, _, body) = stack.api(Method::POST, "batches", &[], Some(request.to_string())).await;
    assert_eq!((status, body["error"]["items"][0]["code"].as_str()), (400, Some("expires_before_start")), "{body}");

    // The batch: 2 suppressed targets and 8 others, one call every 2 s, expiring in 7 s --------------------
    let saved = stack.set_policy("calls_per_second = 0.5, max_concurrent_calls = 100").await;
    let callable: Vec<String> = (0..TARGETS - 2).map(|_| fresh_phone(Scenario::Human)).collect();
    let mut targets: Vec<Value> =
        callable.iter().enumerate().map(|(i, p)| json!({"phone": p, "name": format!("Expiring {i}")})).collect();
    targets.insert(1, json!({"phone": manual, "name": "Listed by hand"}));
    targets.insert(4, json!({"phone": texted_stop, "name": "Texted STOP"}));
    let expires_at = Utc::now() + Span::seconds(7);
    let accepted = stack
        .create_batch(&json!({"name": "Do not call, expiring", "targets": targets,
                                             "expiresAt": expires_at.to_rfc3339()}))
        .await;
    let batch_id = accepted["batchId"].as_str().unwrap().to_owned();
    let batch = stack.wait_batch_ended(&batch_id).await;
    stack.restore_policy(&saved).await;

    // What Twilio saw.
    let calls = stack.sandbox_calls().await;
    let to = |phone: &str| calls.iter().filter(|c| c["to"] == phone).count();
    assert_eq!((to(&manual), to(&texted_stop)), (0, 0), "a suppressed phone is never dialled");
    let dialled: Vec<&Value> = calls.iter().filter(|c| callable.iter().any(|p| c["to"] == p.as_str())).collect();
    // Each create Twilio saw is an attempt started (claimed: its session created) before the expiry, and it arrived
    // within its dial's own delay after that claim: none was dialled late.
    let sessions: Vec<Value> = stack
        .select(
            "call_sessions",
            &format!("select=id,created_at,pending_calls!inner(batch_id)&pending_calls.batch_id=eq.{batch_id}"),
        )
        .await;
    let instant = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    for call in &dialled {
        let session = sessions.iter().find(|s| s["id"] == call["session"]).unwrap_or_else(|| panic!("{call}"));
        let (claimed, created) = (instant(&session["created_at"]), instant(&call["received_at"]));
        assert!(claimed < expires_at, "{} claimed at {claimed}, its row expired at {expires_at}", call["to"]);
        assert!(created < claimed + Span::seconds(2), "{} claimed at {claimed}, created at {created}", call["to"]);
    }
    assert_eq!(sessions.len(), dialled.len(), "one session per call Twilio saw, none without a call");

    // What the database and the batch say.
    let results = batch["results"].as_array().unwrap();
    let status_of = |phone: &str| results.iter().find(|r| r["phone"] == phone).unwrap()["status"].clone();
    assert_eq!((status_of(&manual), status_of(&texted_stop)), (json!("suppressed"), json!("suppressed")));
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count() as u64;
    let db_count = |status: &str| {
        format!("select count(*) from public.pending_calls where batch_id = '{batch_id}' and call_status = '{status}'")
    };
    for status in ["suppressed", "expired", "completed"] {
        assert_eq!(batch["counts"][status], count(status), "{status}: {}", batch["counts"]);
        assert_eq!(batch["counts"][status].as_i64().unwrap(), stack.scalar(&db_count(status)).await, "{status}");
    }
    assert_eq!(count("suppressed"), 2);
    assert!(count("expired") >= 1, "the expiry passed before every row was dialled: {}", batch["counts"]);
    assert!(count("completed") >= 1, "rows were dialled before it: {}", batch["counts"]);
    assert_eq!(count("completed") + count("expired") + 2, TARGETS as u64, "{}", batch["counts"]);
    assert_eq!(dialled.len() as u64, count("completed"), "one call per completed row, none for the others");
    let sessionless = format!(
        "select count(*) from public.pending_calls p where batch_id = '{batch_id}'
            and call_status in ('suppressed', 'expired')
            and exists (select 1 from public.call_sessions s where s.pending_call_id = p.id)"
    );
    assert_eq!(stack.scalar(&sessionless).await, 0, "no attempt was started for a row that ended without a call");
    assert_eq!(batch["status"], "completed");
    println!(
        "{} targets, expiring after 7 s at 0.5 calls/s: {} completed, {} expired, {} suppressed",
        TARGETS, batch["counts"]["completed"], batch["counts"]["expired"], batch["counts"]["suppressed"]
    );

    // Removal, by body: the phone is never in the URL.
    let remove = json!({"phone": manual}).to_string();
    let (status, _, body) = stack.api(Method::POST, "suppressions/remove", &[], Some(remove.clone())).await;
    assert_eq!((status, &body["removed"]), (200, &json!(true)), "{body}");
    let (_, _, body) = stack.api(Method::POST, "suppressions/remove", &[], Some(remove)).await;
    assert_eq!(body, json!({"removed": false, "suppression": null}));
    assert!(listed(&stack).await.iter().all(|e| e["phone"] != manual.as_str()));
}
