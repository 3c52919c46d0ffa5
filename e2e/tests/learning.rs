//! Learning each phone system once, on the real stack: the first call to an unknown number forks its audio
//! to the listener (a Durable Object), which streams the callee's track to speech-to-text (the sandbox's
//! Deepgram, which transcribes only what it receives), hears the keys the assistant presses, classifies the
//! call and records it; the next call to that number replays the keys before `<Dial><Sip>`, so VAPI is
//! connected only once a person (or the system's recording) is on the line. A changed menu is noticed on
//! the replay that meets it, invalidated and learned again in that same call.

use outcall_e2e::{fresh_phone, merge, sample_row, Scenario, Stack};
use serde_json::{json, Value};

/// Inserts a row (one attempt: a voicemail is not retried here) and waits for its call and its run.
async fn call(stack: &Stack, phone: &str, exam: &str) -> (Value, Value) {
    let (id, _, session) = stack.one_attempt(phone, exam).await;
    // (the sandbox's record once the call is done: the clinic's walk and the streams are final then)
    let call = stack.sandbox_call_for(&id).await;
    (call, stack.finished_run(&session).await)
}

async fn active_classification(stack: &Stack, phone: &str) -> Option<Value> {
    let query = format!("phone_number=eq.{}&is_active=is.true", phone.replace('+', "%2B"));
    stack.select("call_classifications", &query).await.into_iter().next()
}

/// The keys that moved the clinic (in the sandbox's record of the call), as (digit, prompt end).
fn selected_keys(call: &Value) -> Vec<(String, i64)> {
    let keys = call["clinic"]["keys"].as_array().cloned().unwrap_or_default();
    keys.iter()
        .filter(|k| k["effect"] == "selected")
        .map(|k| (k["digit"].as_str().unwrap().to_owned(), k["prompt_end_ms"].as_i64().unwrap()))
        .collect()
}

/// Each learned key at its moment on the call's clock (the actions' timings are relative to the previous one).
fn learned_keys(classification: &Value) -> Vec<(String, i64)> {
    let mut at = 0;
    let mut keys = Vec::new();
    for action in classification["ivr_actions"].as_array().unwrap() {
        at += action["timing_ms"].as_i64().unwrap();
        if action["action"] == "dtmf" {
            keys.push((action["value"].as_str().unwrap().to_owned(), at));
        }
    }
    keys
}

/// The learned keys are the path the assistant took, each within 500 ms of the end of the prompt offering it.
fn assert_keys_follow_their_prompts(learned: &Value, first_call: &Value) {
    let path = selected_keys(first_call);
    let keys = learned_keys(learned);
    assert!(!path.is_empty(), "the assistant navigated the menu: {}", first_call["clinic"]);
    assert_eq!(keys.iter().map(|k| &k.0).collect::<Vec<_>>(), path.iter().map(|k| &k.0).collect::<Vec<_>>());
    for ((digit, at), (_, prompt_end)) in keys.iter().zip(&path) {
        assert!((at - prompt_end).abs() <= 500, "key {digit} learned at {at} ms, its prompt ended at {prompt_end} ms");
    }
}

/// The replay's TwiML: its keys in order, each before the dial.
fn replayed_digits(twiml: &str) -> Vec<String> {
    let dial = twiml.find("<Dial>").expect("a dial");
    twiml[..dial]
        .split(r#"<Play digits=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().trim_start_matches('w').to_owned())
        .collect()
}

/// A fresh number playing the sandbox's menu-then-person clinic in `variant` (the hundreds digit its default
/// numbers choose it by): 0 the plain clinic, 1 Spanish first, 2 hold music before the person, 3 a greeting that
/// sounds like a person. The variant's tree is put on the fresh number (`PUT /_sandbox/phones`), so no numbers
/// are drawn and thrown away looking for one.
async fn fresh_clinic(stack: &Stack, variant: u16) -> String {
    let phone = fresh_phone(Scenario::IvrThenHuman);
    let phones = |number: &str| format!("{}/_sandbox/phones/{}", stack.sandbox_url, number.replace('+', "%2B"));
    let template = phones(&Scenario::IvrThenHuman.number(variant * 100));
    let tree = stack.http.get(template).send().await.unwrap().json::<Value>().await.unwrap()["system"].clone();
    let put = stack.http.put(phones(&phone)).json(&tree).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    phone
}

/// Every variant of the clinic: the plain one, Spanish first, hold music, a greeting that sounds like a person.
#[tokio::test]
async fn each_ivr_then_human_clinic_is_learned_on_its_first_call_and_replayed_to_the_person_on_the_next() {
    let stack = Stack::from_env();
    for variant in 0..4 {
        learn_and_replay(&stack, fresh_clinic(&stack, variant).await).await;
    }
}

async fn learn_and_replay(stack: &Stack, phone: String) {
    let (first, run) = call(stack, &phone, "learn-1").await;

    // The first call went as today: VAPI handled it (and navigated the menu), the row completed.
    assert_eq!(first["clinic"]["outcome"], "person", "{}", first["clinic"]);
    assert!(first["twiml"].as_str().unwrap().contains("<Start><Stream"), "a learning call forks its audio");
    assert_eq!((run["purpose"].as_str(), run["result"].as_str()), (Some("learn"), Some("ivr_then_human")), "{run}");
    // Every byte of the callee's audio reached speech-to-text, and nothing else.
    let stream = &first["streams"][0];
    let stt = stack.stt_connections(run["id"].as_str().unwrap()).await.pop().expect("the run's STT connection");
    assert_eq!(stt["audio_bytes"], stream["bytes_sent"]["inbound"], "forwarded / received = 1.0");

    let learned = active_classification(stack, &phone).await.expect("cached");
    assert_eq!(learned["classification_type"], "ivr_then_human");
    assert_eq!(learned["id"], run["classification_id"]);
    assert_keys_follow_their_prompts(&learned, &first);

    // The second call replays the path and reaches VAPI only at the person.
    let (second, verify) = call(stack, &phone, "learn-2").await;
    let twiml = second["twiml"].as_str().unwrap();
    assert_eq!(replayed_digits(twiml), selected_keys(&first).into_iter().map(|k| k.0).collect::<Vec<_>>(), "{twiml}");
    assert_eq!(second["clinic"]["vapi_connected_kind"], "person", "{}", second["clinic"]);
    assert_eq!(second["clinic"]["vapi_ms_in_menu"], 0);
    assert!(selected_keys(&second).len() == selected_keys(&first).len(), "only the replay pressed keys");
    assert_eq!((verify["purpose"].as_str(), verify["status"].as_str()), (Some("verify"), Some("finished")), "{verify}");
    assert!(verify["invalidated_reason"].is_null(), "the same menu: {verify}");
    assert_eq!(active_classification(stack, &phone).await.unwrap()["id"], learned["id"], "still cached");
}

#[tokio::test]
async fn an_ivr_only_system_is_learned_and_replayed_to_its_recording() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::IvrOnly);
    let (first, run) = call(&stack, &phone, "only-1").await;
    assert_eq!(run["result"], "ivr_only", "{run}");
    let learned = active_classification(&stack, &phone).await.expect("cached");
    assert_eq!(learned["classification_type"], "ivr_only");
    assert_keys_follow_their_prompts(&learned, &first);

    let (second, _) = call(&stack, &phone, "only-2").await;
    assert_eq!(replayed_digits(second["twiml"].as_str().unwrap()).len(), selected_keys(&first).len());
    assert_eq!(second["clinic"]["vapi_connected_kind"], "automated", "{}", second["clinic"]);
    assert_eq!(second["clinic"]["vapi_ms_in_menu"], 0);
}

#[tokio::test]
async fn a_person_is_learned_as_human_and_then_dialled_at_once_without_a_listener() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Human);
    let (_, run) = call(&stack, &phone, "human-1").await;
    assert_eq!(run["result"], "human", "{run}");
    let learned = active_classification(&stack, &phone).await.expect("cached");
    assert_eq!(
        (learned["classification_type"].as_str(), learned["ivr_actions"].as_array().map(Vec::len)),
        (Some("human"), Some(0))
    );

    let (second, none) = call(&stack, &phone, "human-2").await;
    assert!(none.is_null(), "a known person needs no listener");
    let twiml = second["twiml"].as_str().unwrap();
    assert!(!twiml.contains("<Start>") && !twiml.contains("<Play"), "{twiml}");
    assert_eq!(second["clinic"]["vapi_connected_kind"], "person");
}

#[tokio::test]
async fn a_voicemail_is_recorded_but_never_cached_so_the_next_call_learns_again() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::Voicemail);
    let (_, run) = call(&stack, &phone, "vm-1").await;
    assert_eq!((run["purpose"].as_str(), run["result"].as_str()), (Some("learn"), Some("voicemail")), "{run}");
    assert!(active_classification(&stack, &phone).await.is_none(), "voicemail is never cached");
    let (_, again) = call(&stack, &phone, "vm-2").await;
    assert_eq!(again["purpose"], "learn", "the next call learns again: {again}");
}

#[tokio::test]
async fn a_changed_menu_is_invalidated_and_relearned_in_the_call_that_meets_it() {
    let stack = Stack::from_env();
    let phone = fresh_clinic(&stack, 0).await;
    let (_, _) = call(&stack, &phone, "heal-1").await;
    let old = active_classification(&stack, &phone).await.expect("learned");

    // The clinic renumbers its options (keys the old path does not use).
    let http = reqwest::Client::new();
    let url = format!("{}/_sandbox/phones/{}", stack.sandbox_url, phone.replace('+', "%2B"));
    let tree = http.get(&url).send().await.unwrap().json::<Value>().await.unwrap()["system"].clone();
    let renumbered = renumber(tree);
    let put = http.put(&url).json(&renumbered).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());

    let (healing, run) = call(&stack, &phone, "heal-2").await;
    assert!(!run["invalidated_reason"].is_null(), "the replay heard another menu: {run}");
    assert_eq!((run["purpose"].as_str(), run["result"].as_str()), (Some("learn"), Some("ivr_then_human")), "{run}");
    assert_eq!(healing["clinic"]["outcome"], "person", "the call itself went on: {}", healing["clinic"]);
    let stale = stack.select("call_classifications", &format!("id=eq.{}", old["id"].as_str().unwrap())).await;
    assert_eq!(stale[0]["is_active"], false);
    let relearned = active_classification(&stack, &phone).await.expect("relearned");
    assert_ne!(relearned["id"], old["id"]);

    let (after, _) = call(&stack, &phone, "heal-3").await;
    let new_path: Vec<String> =
        selected_keys(&healing).into_iter().map(|k| k.0).filter(|d| d != "1" && d != "2").collect();
    assert_eq!(replayed_digits(after["twiml"].as_str().unwrap()), new_path);
    assert_eq!(after["clinic"]["vapi_connected_kind"], "person", "{}", after["clinic"]);
    assert_eq!(after["clinic"]["vapi_ms_in_menu"], 0);
    http.delete(&url).send().await.unwrap();
}

#[tokio::test]
async fn five_rows_to_one_unknown_number_at_once_make_exactly_one_learning_run() {
    let stack = Stack::from_env();
    let phone = fresh_phone(Scenario::IvrThenHuman);
    let rows: Vec<Value> =
        (0..5).map(|i| merge(sample_row(&phone, "Rosa Linde"), json!({"exam_id": format!("five-{i}")}))).collect();
    let inserted = stack.insert("pending_calls", Value::Array(rows)).await;
    let ids: Vec<String> =
        inserted.json::<Vec<Value>>().await.unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    for id in &ids {
        stack.wait_terminal(id).await;
    }
    let query = format!("phone=eq.{}&purpose=eq.learn", phone.replace('+', "%2B"));
    let learning = stack.select("classification_runs", &query).await;
    assert_eq!(learning.len(), 1, "one learning run for the phone: {learning:?}");
}

/// The same tree with every option key moved up by 3 (1 → 4, 2 → 5, ...), menus' prompts to match.
fn renumber(mut tree: Value) -> Value {
    let shift =
        |digit: &str| digit.parse::<u8>().map(|d| ((d + 3) % 10).to_string()).unwrap_or_else(|_| digit.to_owned());
    for node in tree["nodes"].as_object_mut().unwrap().values_mut() {
        if let Some(options) = node.get("options").and_then(Value::as_object).cloned() {
            node["options"] = options.into_iter().map(|(k, v)| (shift(&k), v)).collect();
            for line in node["prompt"].as_array_mut().into_iter().flatten() {
                let text = line.as_str().unwrap_or_default();
                let renumbered = text.split("press ").enumerate().map(|(i, part)| {
                    if i == 0 {
                        part.to_owned()
                    } else {
                        format!("{}{}", shift(&part[..1]), &part[1..])
                    }
                });
                *line = Value::String(renumbered.collect::<Vec<_>>().join("press "));
            }
        }
    }
    tree
}
