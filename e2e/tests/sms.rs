//! Batch SMS end to end: a templated batch sent through the Worker at its sender's rate, as the sandbox's
//! Messaging stand-in saw the creates arrive; every message to a delivery status from Twilio's signed
//! callbacks; opted-out numbers never texted; a STOP reply opting a number out and START back in; what
//! the API refuses, with nothing written.

use outcall_e2e::sms::{mobile, sender};
use outcall_e2e::Stack;
use reqwest::Method;
use serde_json::{json, Value};

fn unique(label: &str) -> String {
    format!("{label} {}", uuid::Uuid::new_v4().simple())
}

async fn messages_in_db(stack: &Stack, batch_id: &str) -> Vec<Value> {
    stack.select("sms_messages", &format!("batch_id=eq.{batch_id}&order=position")).await
}

#[tokio::test]
async fn a_templated_batch_goes_out_at_the_senders_rate_and_every_message_gets_a_delivery_status() {
    let stack = Stack::from_env();
    let from = sender();
    let rate = 4.0;
    stack.set_sms_rate(&from, Some(rate)).await;
    let mut targets: Vec<Value> = (0..20)
        .map(|i| json!({"phone": mobile(), "name": format!("Driver {i}"), "variables": {"when": format!("{}:30", 8 + i % 4)}}))
        .collect();
    // Two handsets the carrier cannot reach (the stand-in's 30003 numbers), and one body that needs UCS-2.
    for (i, tail) in [(3, "30003"), (11, "30003")] {
        targets[i]["phone"] = json!(format!("+1555{:01}{:01}{tail}", i % 10, 7));
    }
    targets[5]["variables"]["when"] = json!("9:30 ☀");
    let name = unique("reminders");
    let request = json!({"name": name, "from": from, "bodyTemplate": "Hi {{name}}, your exam is at {{when}}. Reply STOP to opt out.",
                         "targets": targets, "metadata": {"source": "e2e"}});
    let (status, headers, accepted) = stack.api(Method::POST, "sms-batches", &[], Some(request.to_string())).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["smsBatchId"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/api/v1/sms-batches/{id}").as_str());
    assert_eq!(accepted["statusUrl"], format!("{}/api/v1/sms-batches/{id}", stack.worker_url));
    assert_eq!((accepted["accepted"].as_i64(), accepted["optedOut"].clone()), (Some(20), json!([])));

    let batch = stack.wait_sms_settled(&id).await;
    assert_eq!(batch["status"], "completed", "{batch}");
    assert_eq!(batch["name"], name.as_str());
    assert_eq!(batch["metadata"], json!({"source": "e2e"}));
    let counts = &batch["counts"];
    assert_eq!((counts["delivered"].as_i64(), counts["undelivered"].as_i64()), (Some(18), Some(2)), "{batch}");

    // The sandbox saw each message once, filled in, and the creates arrive at most `rate` a second.
    let seen = stack.sandbox_sms_from(&from).await;
    assert_eq!(seen.len(), 20, "one create per message");
    let mut expected: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "Hi {}, your exam is at {}. Reply STOP to opt out.",
                t["name"].as_str().unwrap(),
                t["variables"]["when"].as_str().unwrap()
            )
        })
        .collect();
    let mut bodies: Vec<String> = seen.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    expected.sort();
    bodies.sort();
    assert_eq!(bodies, expected);
    let arrivals: Vec<i64> = seen.iter().map(|m| m["created_at_ms"].as_i64().unwrap()).collect();
    // Each create is sent no sooner than its slot (250 ms apart); the network can only make one later. So the
    // 20 span at least 19 slots (less what the first was delayed), and no second holds more than 4 (+1 at its edge).
    let slot_ms = (1000.0 / rate) as i64;
    assert!(arrivals[19] - arrivals[0] >= 19 * slot_ms - 250, "20 messages at {rate}/s take 4.75 s: {arrivals:?}");
    let busiest = arrivals.iter().map(|a| arrivals.iter().filter(|b| (*a..*a + 1000).contains(*b)).count()).max();
    assert!(busiest <= Some(rate as usize + 1), "{busiest:?} creates within one second: {arrivals:?}");
    let ucs2 = seen.iter().find(|m| m["body"].as_str().unwrap().contains('☀')).unwrap();
    assert_eq!(ucs2["encoding"], "UCS-2");

    // The database holds the same: each message's SID, status, segments and attempts.
    let rows = messages_in_db(&stack, &id).await;
    assert_eq!(rows.len(), 20);
    for row in &rows {
        let sandbox = seen.iter().find(|m| m["sid"] == row["message_sid"]).unwrap_or_else(|| panic!("{row}"));
        assert_eq!(row["body"], sandbox["body"]);
        assert_eq!(row["status"], sandbox["status"], "{row}");
        assert_eq!(row["attempts"], 1);
        assert_eq!(row["segments"], sandbox["num_segments"]);
    }
    let undelivered: Vec<&Value> = rows.iter().filter(|r| r["status"] == "undelivered").collect();
    assert_eq!(undelivered.iter().map(|r| r["position"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 11]);
    assert!(undelivered.iter().all(|r| r["error_code"] == 30003));
    assert_eq!(rows[5]["encoding"], "UCS-2");

    // The API's page of messages is the database's.
    let listed = stack.sms_messages(&id).await;
    assert_eq!(listed.len(), 20);
    for (api, row) in listed.iter().zip(&rows) {
        assert_eq!(
            (&api["messageId"], &api["status"], &api["messageSid"]),
            (&row["id"], &row["status"], &row["message_sid"])
        );
    }
    assert_eq!(batch["segmentsTotal"].as_i64(), Some(rows.iter().map(|r| r["segments"].as_i64().unwrap()).sum()));

    // Its event stream, followed now, ends at once with the final counts.
    let response = stack
        .http
        .get(format!("{}/api/v1/sms-batches/{id}/events", stack.worker_url))
        .bearer_auth(&stack.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.contains("event: end\n"), "{text}");
    assert!(text.contains(r#""delivered":18"#), "{text}");
}

#[tokio::test]
async fn opted_out_numbers_are_never_texted_and_stop_and_start_replies_change_that() {
    let stack = Stack::from_env();
    let from = sender();
    stack.set_sms_rate(&from, None).await;
    let (already_out, reader) = (mobile(), mobile());
    stack
        .db()
        .await
        .execute("insert into public.sms_opt_outs (phone, source) values ($1, 'manual')", &[&already_out])
        .await
        .unwrap();
    let template = "Your results are ready, {{name}}.";
    let request = |phones: &[&str]| {
        json!({"from": from, "bodyTemplate": template,
               "targets": phones.iter().map(|p| json!({"phone": p, "name": "Sam"})).collect::<Vec<_>>()})
    };
    let first = stack.create_sms_batch(&request(&[&already_out, &reader])).await;
    assert_eq!(first["optedOut"], json!([0]), "{first}");
    let id = first["smsBatchId"].as_str().unwrap().to_owned();
    let batch = stack.wait_sms_settled(&id).await;
    assert_eq!((batch["counts"]["optedOut"].as_i64(), batch["counts"]["delivered"].as_i64()), (Some(1), Some(1)));
    let messages = stack.sms_messages(&id).await;
    assert_eq!(messages[0]["status"], "opted_out");
    assert!(messages[0]["messageSid"].is_null());
    let seen = stack.sandbox_sms_from(&from).await;
    assert_eq!(
        seen.iter().map(|m| m["to"].as_str().unwrap()).collect::<Vec<_>>(),
        [reader.as_str()],
        "only the reader"
    );

    // The reader answers STOP (in their own case): Twilio's signed webhook opts them out, and the reply is
    // stored with the batch it answers.
    let posted = stack.sms_reply(&reader, &from, "stop").await;
    assert_eq!(posted["status"], 200, "{posted}");
    let opt_outs = stack.select("sms_opt_outs", &format!("phone=eq.{}", reader.replace('+', "%2B"))).await;
    assert_eq!(opt_outs.len(), 1);
    assert_eq!(opt_outs[0]["source"], "keyword");
    let replies = stack.select("sms_replies", &format!("from_phone=eq.{}", reader.replace('+', "%2B"))).await;
    assert_eq!((replies.len(), replies[0]["batch_id"].as_str()), (1, Some(id.as_str())));
    let messages = stack.sms_messages(&id).await;
    assert_eq!(messages[1]["replies"][0]["optOutType"], "STOP", "{}", messages[1]);
    assert_eq!(stack.sms_batch(&id).await["replies"], 1);
    // Twilio retries a webhook it thinks failed: the same one again (same MessageSid, signed) is stored once.
    let params: Vec<(String, String)> = posted["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let url = posted["url"].as_str().unwrap();
    let signature = outcall_core::twilio::signature(&stack.twilio_auth_token, url, &params);
    let again = stack.http.post(url).header("X-Twilio-Signature", signature).form(&params).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let replies = stack.select("sms_replies", &format!("from_phone=eq.{}", reader.replace('+', "%2B"))).await;
    assert_eq!(replies.len(), 1, "a retried webhook is one reply: {replies:?}");

    let second = stack.create_sms_batch(&request(&[&reader])).await;
    assert_eq!(second["optedOut"], json!([0]));
    stack.wait_sms_settled(second["smsBatchId"].as_str().unwrap()).await;
    assert_eq!(stack.sandbox_sms_from(&from).await.len(), 1, "nothing more was sent to the reader");

    // START opts them back in.
    assert_eq!(stack.sms_reply(&reader, &from, "START").await["status"], 200);
    assert!(stack.select("sms_opt_outs", &format!("phone=eq.{}", reader.replace('+', "%2B"))).await.is_empty());
    let third = stack.create_sms_batch(&request(&[&reader])).await;
    assert_eq!(third["optedOut"], json!([]));
    stack.wait_sms_settled(third["smsBatchId"].as_str().unwrap()).await;
    assert_eq!(stack.sandbox_sms_from(&from).await.len(), 2);
}

#[tokio::test]
async fn twilios_own_opted_out_error_is_recorded_as_an_opt_out() {
    let stack = Stack::from_env();
    let from = sender();
    stack.set_sms_rate(&from, None).await;
    // Twilio's test number that answers 21610 (opted out at Twilio, unknown to us until now).
    let blocked = "+15005550004";
    stack.db().await.execute("delete from public.sms_opt_outs where phone = $1", &[&blocked]).await.unwrap();
    let accepted =
        stack.create_sms_batch(&json!({"from": from, "targets": [{"phone": blocked, "body": "Hello"}]})).await;
    let id = accepted["smsBatchId"].as_str().unwrap();
    let batch = stack.wait_sms_settled(id).await;
    assert_eq!(batch["counts"]["optedOut"], 1, "{batch}");
    let message = &stack.sms_messages(id).await[0];
    assert_eq!((message["status"].as_str(), message["errorCode"].as_i64()), (Some("opted_out"), Some(21610)));
    let opt_outs = stack.select("sms_opt_outs", "phone=eq.%2B15005550004").await;
    assert_eq!(opt_outs[0]["source"], "twilio_21610");
}

#[tokio::test]
async fn a_bad_request_is_refused_whole_with_each_path_and_writes_nothing() {
    let stack = Stack::from_env();
    let name = unique("refused");
    let request = json!({"name": name, "from": sender(), "bodyTemplate": "Hi {{name}}, at {{when}}",
                         "targets": [{"phone": mobile(), "name": "A", "variables": {"when": "9"}},
                                     {"phone": mobile(), "name": "B"},
                                     {"phone": "555", "name": "C", "variables": {"when": "10"}}]});
    let (status, _, body) = stack.api(Method::POST, "sms-batches", &[], Some(request.to_string())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_error");
    let paths: Vec<&str> =
        body["error"]["items"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["targets[1].variables.when", "targets[2].phone"]);
    assert!(stack.select("sms_batches", &format!("name=eq.{}", name.replace(' ', "%20"))).await.is_empty());

    let no_key = stack
        .http
        .post(format!("{}/api/v1/sms-batches", stack.worker_url))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let (status, _, body) = stack.api(Method::GET, &format!("sms-batches/{}", uuid::Uuid::new_v4()), &[], None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn a_scheduled_batch_waits_and_cancelling_it_sends_nothing() {
    let stack = Stack::from_env();
    let from = sender();
    let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let accepted = stack
        .create_sms_batch(&json!({"from": from, "schedule": {"notBefore": later},
                                  "targets": [{"phone": mobile(), "body": "Tomorrow"}, {"phone": mobile(), "body": "Tomorrow"}]}))
        .await;
    let id = accepted["smsBatchId"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(stack.sms_batch(id).await["counts"]["pending"], 2, "nothing before notBefore");
    let (status, _, cancelled) = stack.api(Method::POST, &format!("sms-batches/{id}/cancel"), &[], None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!((cancelled["status"].as_str(), cancelled["cancelled"].as_i64()), (Some("cancelled"), Some(2)));
    let (_, _, again) = stack.api(Method::POST, &format!("sms-batches/{id}/cancel"), &[], None).await;
    assert_eq!(again["cancelled"], 0, "cancelling twice changes nothing");
    assert_eq!(stack.sms_batch(id).await["counts"]["cancelled"], 2);
    assert!(stack.sandbox_sms_from(&from).await.is_empty());
}
