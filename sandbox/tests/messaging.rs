//! Black-box tests of the Programmable Messaging stand-in: the create answer and its errors (operators.md
//! §5.2), each sender's pacing, signed status callbacks, the list, inbound messages with opt-out keywords,
//! and the Calls API's faults on Messages creates.

mod common;

use std::time::{Duration, Instant};

use common::*;
use outcall_core::twilio::signature_is_valid;
use serde_json::{json, Value};

const SENDER: &str = "+15550000000";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

/// A signed form post the stub Worker received: (full URL, params, `X-Twilio-Signature`).
type Post = (String, Vec<(String, String)>, String);

impl Env {
    async fn send_sms(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/2010-04-01/Accounts/{SID}/Messages.json", self.sandbox))
            .basic_auth(SID, Some(TOKEN))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    fn sms_callback(&self, id: &str) -> String {
        format!("{}/twilio/sms-status?message={id}", self.worker)
    }

    /// A message to `to` from `SENDER` with a status callback naming `id`.
    async fn text(&self, to: &str, body: &str, id: &str) -> reqwest::Response {
        let callback = self.sms_callback(id);
        self.send_sms(&[("To", to), ("From", SENDER), ("Body", body), ("StatusCallback", &callback)]).await
    }

    async fn sms(&self) -> Value {
        self.inspect("twilio/sms/messages").await
    }

    /// The observed message `sid` once it has `callbacks` status callbacks answered.
    async fn wait_callbacks(&self, sid: &str, callbacks: usize) -> Value {
        for _ in 0..1000 {
            let all = self.sms().await;
            let found = all["messages"].as_array().unwrap().iter().find(|m| m["sid"] == sid).cloned();
            if let Some(m) = found.filter(|m| m["status_callbacks"].as_array().unwrap().len() >= callbacks) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("message {sid} did not get {callbacks} callbacks");
    }

    /// The form posts the stub Worker received on paths starting with `prefix`.
    fn posts(&self, prefix: &str) -> Vec<Post> {
        let seen = self.seen.lock().unwrap().clone();
        seen.iter()
            .filter(|(path, _, _)| path.starts_with(prefix))
            .map(|(path, headers, body)| {
                let params = form_urlencoded::parse(body).into_owned().collect();
                let signature = headers["x-twilio-signature"].to_str().unwrap().to_string();
                (format!("{}{path}", self.worker), params, signature)
            })
            .collect()
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn keys(value: &Value) -> Vec<&str> {
    value.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn create_answers_with_twilios_message_json() {
    let env = start(good_assistant()).await;
    let response = env.text("+15550001001", "Hello!", "m-1").await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let sid = created["sid"].as_str().unwrap();
    assert!(sid.len() == 34 && sid.starts_with("SM") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
    let mut expected = vec![
        "account_sid",
        "api_version",
        "body",
        "date_created",
        "date_sent",
        "date_updated",
        "direction",
        "error_code",
        "error_message",
        "from",
        "messaging_service_sid",
        "num_media",
        "num_segments",
        "price",
        "price_unit",
        "sid",
        "status",
        "subresource_uris",
        "to",
        "uri",
    ];
    expected.sort();
    assert_eq!(keys(&created), expected);
    assert_eq!(
        (&created["status"], &created["num_segments"], &created["num_media"]),
        (&json!("queued"), &json!("1"), &json!("0")),
        "counts are strings"
    );
    assert_eq!(
        (&created["to"], &created["from"], &created["body"]),
        (&json!("+15550001001"), &json!(SENDER), &json!("Hello!"))
    );
    assert_eq!((&created["direction"], &created["api_version"]), (&json!("outbound-api"), &json!("2010-04-01")));
    assert_eq!(created["account_sid"], SID);
    for null in ["price", "error_code", "error_message", "messaging_service_sid", "date_sent"] {
        assert!(created[null].is_null(), "{null}");
    }
    let date = created["date_created"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc2822(date).is_ok() && date.ends_with(" +0000"), "{date}");
    assert_eq!(created["uri"], format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json"));
    assert_eq!(created["subresource_uris"]["media"], format!("/2010-04-01/Accounts/{SID}/Messages/{sid}/Media.json"));

    // Segments as §5.7 counts them: 161 GSM-7 characters are two; one curly quote makes 71 characters UCS-2, two.
    let long: Value = env.text("+15550001002", &"a".repeat(161), "m-2").await.json().await.unwrap();
    assert_eq!(long["num_segments"], "2");
    let ucs2: Value = env.text("+15550001002", &format!("{}’", "a".repeat(70)), "m-3").await.json().await.unwrap();
    assert_eq!(ucs2["num_segments"], "2");

    // Through a Messaging Service: accepted, no sender and no segments yet.
    let service: Value = env
        .send_sms(&[("To", "+15550001003"), ("MessagingServiceSid", SERVICE), ("Body", "Hi")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((&service["status"], &service["num_segments"]), (&json!("accepted"), &json!("0")));
    assert!(service["from"].is_null());
    assert_eq!(service["messaging_service_sid"], SERVICE);

    // Fetched once delivered: sent, priced, with the counted segments and the pool's number.
    let observed = env.wait_callbacks(service["sid"].as_str().unwrap(), 0).await;
    assert_eq!(observed["num_segments"], 1);
    for _ in 0..500 {
        let fetched: Value =
            env.twilio_get(&format!("Messages/{}.json", service["sid"].as_str().unwrap())).await.json().await.unwrap();
        if fetched["status"] == "delivered" {
            assert_eq!((&fetched["num_segments"], &fetched["from"]), (&json!("1"), &json!("+15005550006")));
            assert_eq!((&fetched["price"], &fetched["price_unit"]), (&json!("-0.00790"), &json!("USD")));
            assert!(chrono::DateTime::parse_from_rfc2822(fetched["date_sent"].as_str().unwrap()).is_ok());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the service's message was not delivered");
}

#[tokio::test]
async fn refused_creates_answer_twilios_error_json() {
    let env = start(good_assistant()).await;
    let unauthorized = env
        .http
        .post(format!("{}/2010-04-01/Accounts/{SID}/Messages.json", env.sandbox))
        .basic_auth(SID, Some("wrong"))
        .form(&[("To", "+15550001001"), ("From", SENDER), ("Body", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(unauthorized.json::<Value>().await.unwrap()["code"], 20003);

    let long = "a".repeat(1601);
    let cases: [(&[(&str, &str)], u32); 7] = [
        (&[("From", SENDER), ("Body", "x")], 21604),
        (&[("To", "+15550001001"), ("Body", "x")], 21603),
        (&[("To", "+15550001001"), ("From", SENDER)], 21602),
        (&[("To", "+15550001001"), ("From", SENDER), ("Body", &long)], 21617),
        (&[("To", "555-0100"), ("From", SENDER), ("Body", "x")], 21211),
        (&[("To", "+15005550009"), ("From", SENDER), ("Body", "x")], 21614),
        (&[("To", "+15005550004"), ("From", SENDER), ("Body", "x")], 21610),
    ];
    for (form, code) in cases {
        let response = env.send_sms(form).await;
        assert_eq!(response.status(), 400, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(keys(&body), ["code", "message", "more_info", "status"]);
        assert_eq!((body["code"].as_u64(), body["status"].as_u64()), (Some(u64::from(code)), Some(400)));
        assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
    }
    let observed = env.sms().await;
    assert!(observed["messages"].as_array().unwrap().is_empty(), "nothing refused was created");
    let refused = &observed["refused"];
    for code in ["21604", "21603", "21602", "21617", "21211", "21614", "21610"] {
        assert_eq!(refused[code], 1, "{code}");
    }
    assert!(observed["attempts"].as_array().unwrap().iter().all(|a| a["created"] == 0));
}

#[tokio::test]
async fn status_callbacks_are_signed_and_in_order() {
    let env = start(good_assistant()).await;
    let mut sids = Vec::new();
    for (to, id) in [("+15550001001", "ok"), ("+15553030003", "undelivered"), ("+15550030007", "failed")] {
        let created: Value = env.text(to, "Your appointment is confirmed", id).await.json().await.unwrap();
        sids.push(created["sid"].as_str().unwrap().to_string());
    }
    let delivered = env.wait_callbacks(&sids[0], 2).await;
    let undelivered = env.wait_callbacks(&sids[1], 2).await;
    let failed = env.wait_callbacks(&sids[2], 1).await;
    assert_eq!((&delivered["status"], &delivered["error_code"]), (&json!("delivered"), &Value::Null));
    assert_eq!((&undelivered["status"], &undelivered["error_code"]), (&json!("undelivered"), &json!(30003)));
    assert_eq!((&failed["status"], &failed["error_code"]), (&json!("failed"), &json!(30007)));
    assert!(failed["sent_at_ms"].as_i64().unwrap() >= failed["created_at_ms"].as_i64().unwrap());

    let statuses = |id: &str| -> Vec<String> {
        env.posts(&format!("/twilio/sms-status?message={id}"))
            .iter()
            .map(|(_, params, _)| param(params, "MessageStatus").unwrap().to_string())
            .collect()
    };
    assert_eq!(statuses("ok"), ["sent", "delivered"], "no callback for queued");
    assert_eq!(statuses("undelivered"), ["sent", "undelivered"]);
    assert_eq!(statuses("failed"), ["failed"], "a failed message never left");

    for (url, params, signature) in env.posts("/twilio/sms-status") {
        // The Worker's own validator accepts every callback over its full URL.
        assert!(signature_is_valid(TOKEN, &url, &params, &signature), "{url} {params:?}");
        assert!(!signature_is_valid("other-token", &url, &params, &signature));
        let status = param(&params, "MessageStatus").unwrap();
        assert_eq!(param(&params, "SmsStatus"), Some(status));
        let sid = param(&params, "MessageSid").unwrap();
        assert!(sids.iter().any(|s| s == sid));
        assert_eq!(param(&params, "SmsSid"), Some(sid));
        assert_eq!((param(&params, "AccountSid"), param(&params, "From")), (Some(SID), Some(SENDER)));
        assert_eq!(param(&params, "ApiVersion"), Some("2010-04-01"));
        assert!(param(&params, "To").is_some());
        let error = param(&params, "ErrorCode");
        match status {
            "sent" | "delivered" => assert_eq!(error, None),
            "undelivered" => assert_eq!(error, Some("30003")),
            _ => assert_eq!(error, Some("30007")),
        }
        let dlr = param(&params, "RawDlrDoneDate");
        if matches!(status, "delivered" | "undelivered") {
            let dlr = dlr.expect("RawDlrDoneDate");
            assert!(dlr.len() == 10 && dlr.bytes().all(|b| b.is_ascii_digit()), "{dlr}");
        } else {
            assert_eq!(dlr, None);
        }
    }
    // What the stand-in recorded matches what the Worker heard.
    let recorded: Vec<&Value> =
        delivered["status_callbacks"].as_array().unwrap().iter().map(|c| &c["params"]["MessageStatus"]).collect();
    assert_eq!(recorded, ["sent", "delivered"]);
    assert_eq!(delivered["status_callbacks"][0]["status"], 200);
}

#[tokio::test]
async fn each_sender_drains_at_its_rate() {
    // 1 segment/s by default; at time scale 0.1 a segment holds its sender's queue 100 ms.
    let env = start_scaled(good_assistant(), 0.1).await;
    let (status, rates) = env.control("twilio/sms/senders", json!({"sender": "+15550000077", "mps": 2})).await;
    assert_eq!((status, &rates["senders"]), (200, &json!({"+15550000077": 2.0})));
    assert_eq!(rates["default_mps"], 1.0);
    let (status, _) = env.control("twilio/sms/senders", json!({"sender": "+1", "mps": 0})).await;
    assert_eq!(status, 400);

    let two_segments = "b".repeat(200);
    let plan =
        [(SENDER, "a"), (SENDER, two_segments.as_str()), (SENDER, "c"), ("+15550000077", "d"), ("+15550000077", "e")];
    for (from, body) in plan {
        let response = env.send_sms(&[("To", "+15550001001"), ("From", from), ("Body", body)]).await;
        assert_eq!(response.status(), 201);
    }
    let mut messages = Vec::new();
    for _ in 0..500 {
        messages = env.sms().await["messages"].as_array().unwrap().clone();
        if messages.iter().all(|m| m["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent: Vec<i64> = messages.iter().map(|m| m["sent_at_ms"].as_i64().expect("sent")).collect();
    let created: Vec<i64> = messages.iter().map(|m| m["created_at_ms"].as_i64().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "arrival order");
    // A queue starts when its first message arrives; a message never leaves before its slot (the lower bounds
    // are the pacing; the upper ones only leave room for a busy machine).
    let after = |i: usize, first: usize| sent[i] - created[first];
    let within = |ms: i64, from: i64| (from - 1..from + 100).contains(&ms);
    // SENDER: "a" at once, the two segments 100 ms later, "c" 200 ms after those.
    assert!(within(after(0, 0), 0) && within(after(1, 0), 100) && within(after(2, 0), 300), "{sent:?} {created:?}");
    // The other sender has its own queue at 2 segments/s: 50 ms apart, not behind SENDER's.
    assert!(within(after(3, 3), 0) && within(after(4, 3), 50), "{sent:?} {created:?}");
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let env = start(good_assistant()).await;
    let mut sids = Vec::new();
    for body in ["one", "two", "three"] {
        let created: Value = env.text("+15550002001", body, body).await.json().await.unwrap();
        sids.push(created["sid"].as_str().unwrap().to_string());
    }
    env.text("+15550002002", "other person", "x").await;

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let page: Value = env
        .twilio_get(&format!("Messages.json?To=%2B15550002001&DateSent%3E={today}&PageSize=2"))
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["sid"].as_str().unwrap()).collect();
    assert_eq!(listed, [sids[2].as_str(), sids[1].as_str()], "newest first, one person only");
    assert_eq!(
        (page["page"].as_u64(), page["page_size"].as_u64(), page["start"].as_u64(), page["end"].as_u64()),
        (Some(0), Some(2), Some(0), Some(1))
    );
    assert!(page["previous_page_uri"].is_null());
    let next = page["next_page_uri"].as_str().expect("a second page");
    assert!(
        next.starts_with(&format!("/2010-04-01/Accounts/{SID}/Messages.json?")) && next.contains("Page=1"),
        "{next}"
    );
    assert!(page["uri"].as_str().unwrap().contains("To=%2B15550002001"));
    let account = format!("/2010-04-01/Accounts/{SID}/");
    let second: Value = env.twilio_get(next.strip_prefix(&account).unwrap()).await.json().await.unwrap();
    assert_eq!(second["messages"].as_array().unwrap().len(), 1);
    assert_eq!(second["messages"][0]["sid"], sids[0].as_str());
    assert!(second["next_page_uri"].is_null());

    let count = |page: &Value| page["messages"].as_array().unwrap().len();
    let by = |query: &str| {
        let env = &env;
        let query = query.to_string();
        async move { env.twilio_get(&format!("Messages.json?{query}")).await.json::<Value>().await.unwrap() }
    };
    assert_eq!(count(&by("").await), 4);
    assert_eq!(count(&by(&format!("From=%2B{}", &SENDER[1..])).await), 4);
    assert_eq!(count(&by("From=%2B15559999999").await), 0);
    assert_eq!(count(&by("DateSent%3C=2000-01-01").await), 0);
    assert_eq!(count(&by(&format!("DateSent={today}&To=%2B15550002002")).await), 1);
    let bad = env.twilio_get("Messages.json?DateSent%3E=soon").await;
    assert_eq!(bad.status(), 400);

    let fetched: Value = env.twilio_get(&format!("Messages/{}.json", sids[0])).await.json().await.unwrap();
    assert_eq!((&fetched["sid"], &fetched["body"]), (&json!(sids[0]), &json!("one")));
    let missing = env.twilio_get("Messages/SM00000000000000000000000000000000.json").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], 20404);
}

#[tokio::test]
async fn inbound_keywords_block_and_unblock_the_pair() {
    let env = start(good_assistant()).await;
    let person = "+15550003001";
    let inbound = |body: &str, service: Option<&str>| {
        let mut message = json!({"from": person, "to": SENDER, "body": body});
        if let Some(s) = service {
            message["messaging_service_sid"] = json!(s);
        }
        env.control("twilio/sms/inbound", message)
    };

    let (status, answer) = inbound("Stop please", None).await;
    assert_eq!((status, answer["status"].as_u64()), (200, Some(200)));
    assert!(answer["params"].get("OptOutType").is_none(), "only a whole-body keyword counts");
    assert_eq!(env.text(person, "still reachable", "a").await.status(), 201);

    let (_, answer) = inbound(" stop ", None).await;
    assert_eq!((&answer["opt_out_type"], &answer["params"]["OptOutType"]), (&json!("STOP"), &json!("STOP")));
    let posted = &answer["params"];
    let sid = posted["MessageSid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34);
    assert_eq!((&posted["SmsSid"], &posted["SmsMessageSid"]), (&json!(sid), &json!(sid)));
    assert_eq!((&posted["From"], &posted["To"], &posted["Body"]), (&json!(person), &json!(SENDER), &json!(" stop ")));
    assert_eq!(
        (&posted["NumMedia"], &posted["NumSegments"], &posted["AccountSid"]),
        (&json!("0"), &json!("1"), &json!(SID))
    );
    assert_eq!(posted["ApiVersion"], "2010-04-01");
    assert_eq!(answer["url"], format!("{}/twilio/sms-inbound", env.worker));

    // The Worker got exactly that, signed as its validator expects.
    let posts = env.posts("/twilio/sms-inbound");
    assert_eq!(posts.len(), 2);
    let (url, params, signature) = &posts[1];
    assert!(signature_is_valid(TOKEN, url, params, signature));
    assert_eq!(param(params, "OptOutType"), Some("STOP"));
    assert_eq!(param(params, "MessageSid"), Some(sid));

    // Blocked for this sender only, until START.
    let refused = env.text(person, "after stop", "b").await;
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], 21610);
    let other_sender = env.send_sms(&[("To", person), ("From", "+15550000099"), ("Body", "other line")]).await;
    assert_eq!(other_sender.status(), 201);
    let (_, answer) = inbound("UNSTOP", None).await;
    assert_eq!(answer["params"]["OptOutType"], "START");
    assert_eq!(env.text(person, "welcome back", "c").await.status(), 201);
    let (_, answer) = inbound("help", None).await;
    assert_eq!(answer["params"]["OptOutType"], "HELP");

    // Through a Messaging Service the block covers the service.
    let (_, answer) = inbound("QUIT", Some(SERVICE)).await;
    assert_eq!(answer["params"]["MessagingServiceSid"], SERVICE);
    let via_service = env.send_sms(&[("To", person), ("MessagingServiceSid", SERVICE), ("Body", "x")]).await;
    assert_eq!(via_service.json::<Value>().await.unwrap()["code"], 21610);
    assert_eq!(env.sms().await["refused"]["21610"], 2);

    for bad in [
        json!({"from": "555", "to": SENDER, "body": "x"}),
        json!({"from": person, "to": SENDER}),
        json!({"from": person, "to": SENDER, "body": "x", "messaging_service_sid": "MG1"}),
    ] {
        let (status, answer) = env.control("twilio/sms/inbound", bad).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!("invalid_inbound")));
    }
    // A reset forgets the blocks.
    env.control("reset", json!({})).await;
    assert_eq!(env.text(person, "after reset", "d").await.status(), 201);
}

#[tokio::test]
async fn faults_refuse_or_lose_the_answer_of_a_created_message() {
    let env = start(good_assistant()).await;
    let set = |faults: Value| env.control("faults", faults);
    for (fault, status, code) in [("twilio_429", 429, 20429), ("twilio_503", 503, 20503)] {
        set(json!({ fault: 1 })).await;
        let refused = env.text("+15550004001", "refused", "r").await;
        assert_eq!(refused.status(), status);
        if status == 429 {
            assert_eq!(refused.headers()["retry-after"], "1");
        }
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], code);
        assert_eq!(env.twilio_get("Messages.json").await.status(), status, "the list too");
    }
    let observed = env.sms().await;
    assert!(observed["messages"].as_array().unwrap().is_empty());
    assert_eq!((&observed["refused"]["20429"], &observed["refused"]["20503"]), (&json!(1), &json!(1)));

    // 504: created, the answer lost; a blind retry sends it twice, which the attempts show.
    set(json!({"twilio_504": 1})).await;
    let lost = env.text("+15550004002", "Reminder", "u").await;
    assert_eq!(lost.status(), 504);
    set(json!({"twilio_timeout": 1, "timeout_hold_ms": 400})).await;
    let impatient = env
        .http
        .post(format!("{}/2010-04-01/Accounts/{SID}/Messages.json", env.sandbox))
        .basic_auth(SID, Some(TOKEN))
        .form(&[("To", "+15550004003"), ("From", SENDER), ("Body", "Reminder")])
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());
    let started = Instant::now();
    assert_eq!(env.text("+15550004003", "Reminder", "t").await.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(400), "the answer was held");
    env.control("faults/reset", json!({})).await;

    // Reconciling: the list finds the message whose answer was lost.
    let page: Value = env.twilio_get("Messages.json?To=%2B15550004002").await.json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    let observed = env.sms().await;
    let messages = observed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["faults"], json!(["twilio_504"]));
    assert_eq!(messages[1]["faults"], json!(["twilio_timeout"]));
    let attempts = |to: &str| observed["attempts"].as_array().unwrap().iter().find(|a| a["to"] == to).cloned().unwrap();
    assert_eq!(attempts("+15550004001"), json!({"to": "+15550004001", "body": "refused", "requests": 2, "created": 0}));
    assert_eq!(attempts("+15550004002")["created"], 1);
    assert_eq!(
        (attempts("+15550004003")["requests"].as_u64(), attempts("+15550004003")["created"].as_u64()),
        (Some(2), Some(2)),
        "sent twice"
    );
    let injected = &env.inspect("faults").await["injected"];
    assert_eq!(
        injected,
        &json!({"twilio_429": 0, "twilio_503": 0, "twilio_504": 0, "twilio_timeout": 0, "drop_webhook": 0,
        "duplicate_status_callback": 0, "reorder_status_callbacks": 0, "duplicate_vapi_report": 0,
        "vapi_report_first": 0, "vapi_report_after": 0}),
        "reset zeroes the counters"
    );
}

#[tokio::test]
async fn callback_faults_duplicate_and_swap() {
    let env = start(good_assistant()).await;
    env.control("faults", json!({"duplicate_status_callback": 1, "reorder_status_callbacks": 1})).await;
    let created: Value = env.text("+15550005001", "dup", "d").await.json().await.unwrap();
    let message = env.wait_callbacks(created["sid"].as_str().unwrap(), 4).await;
    let statuses: Vec<String> = env
        .posts("/twilio/sms-status?message=d")
        .iter()
        .map(|(_, params, _)| param(params, "MessageStatus").unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["delivered", "delivered", "sent", "sent"], "the final status overtook sent");
    let faults = message["faults"].as_array().unwrap();
    assert_eq!(faults.iter().filter(|f| *f == "duplicate_status_callback").count(), 2);
    assert_eq!(faults.iter().filter(|f| *f == "reorder_status_callbacks").count(), 1);
}
