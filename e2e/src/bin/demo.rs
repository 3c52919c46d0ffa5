//! `./dev demo`: an outside system inserts ~20 pending calls covering every sandbox scenario; we
//! follow them live and print each call's outcome (each phone is unknown: its first call is a learning
//! call). Then one clinic called twice shows learning and replay side by side, and an operator sends a
//! batch through the batch API and follows its event stream to the end.

use outcall_e2e::{fresh_phone, sample_row, Scenario, Stack, DEMO_NAMES};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let stack = Stack::from_env();
    let mut rows = Vec::new();
    for (i, name) in DEMO_NAMES.iter().enumerate() {
        let scenario = Scenario::ALL[i % Scenario::ALL.len()];
        rows.push((scenario, fresh_phone(scenario), name.to_string()));
    }
    let batch: Vec<Value> = rows.iter().map(|(_, phone, name)| sample_row(phone, name)).collect();
    let response = stack.insert("pending_calls", Value::Array(batch)).await;
    assert_eq!(response.status(), 201, "insert refused");
    let inserted: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<String> = inserted.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    println!("inserted {} rows through PostgREST; the database webhook dials each one", ids.len());
    println!("(busy, unanswered, failed and voicemail lines are retried on the schedule, scaled to seconds here)");

    let started = Instant::now();
    let id_list = ids.join(",");
    let finals = loop {
        let current = stack.select("pending_calls", &format!("id=in.({id_list})")).await;
        let count = |s: &str| current.iter().filter(|r| r["call_status"] == s).count();
        let done = count("completed") + count("failed") + count("cancelled");
        print!(
            "\r  {:>5.1}s  {done:>2}/{} done · pending {} · dispatching {} · calling {} · retry_pending {} · completed {} · failed {}   ",
            started.elapsed().as_secs_f32(),
            ids.len(),
            count("pending"),
            count("dispatching"),
            count("calling"),
            count("retry_pending"),
            count("completed"),
            count("failed"),
        );
        std::io::stdout().flush().ok();
        if done == ids.len() {
            break current;
        }
        if started.elapsed() > Duration::from_secs(180) {
            println!();
            eprintln!("demo: not every call finished within 180 s");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("\n");
    // Let the last Twilio callbacks land so the sandbox's records are complete.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = stack.sandbox_calls().await;

    println!(
        "{:<16} {:<15} {:<18} {:<10} {:>8} {:<24} {:>6} {:>8}  {:<30} SIP headers",
        "phone",
        "scenario",
        "employee",
        "status",
        "attempts",
        "ended / error",
        "secs",
        "cost",
        "replayed before the dial"
    );
    let mut bad_sip = 0;
    for (scenario, phone, name) in &rows {
        let row = finals.iter().find(|r| r["phone"] == phone.as_str()).unwrap();
        let id = row["id"].as_str().unwrap();
        let call = calls.iter().find(|c| c["to"] == phone.as_str());
        // The TwiML verbs Twilio executed before handing the call to VAPI: the IVR replay.
        let replay: Vec<String> = call
            .and_then(|c| c["executed"].as_array())
            .map(|verbs| {
                verbs
                    .iter()
                    .take_while(|v| v["verb"] != "Dial")
                    .map(|v| match v["verb"].as_str().unwrap_or("?") {
                        "Pause" => format!("{}s", v["length"]),
                        "Play" => format!("#{}", v["digits"].as_str().unwrap_or("")),
                        "Say" => format!("\"{}\"", v["text"].as_str().unwrap_or("")),
                        other => other.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let replay = if replay.is_empty() { "-".to_owned() } else { replay.join(" ") };
        let headers = call.and_then(|c| c["sip"]["headers"].as_object());
        let sip = match headers {
            None => "not dialled".to_owned(),
            Some(h) if h.len() == 1 && h.get("X-pendingcallid").and_then(Value::as_str) == Some(id) => {
                "X-pendingcallid only".to_owned()
            }
            Some(h) => {
                bad_sip += 1;
                format!("UNEXPECTED {h:?}")
            }
        };
        let outcome = row["ended_reason"].as_str().or(row["last_error"].as_str()).unwrap_or("-");
        println!(
            "{:<16} {:<15} {:<18} {:<10} {:>8} {:<24} {:>6} {:>8}  {:<30} {}",
            phone,
            scenario.name(),
            name,
            row["call_status"].as_str().unwrap_or("?"),
            row["attempts"],
            outcome,
            row["duration_seconds"].as_f64().map(|d| format!("{d:.0}")).unwrap_or_else(|| "-".into()),
            row["cost"].as_f64().map(|c| format!("${c:.4}")).unwrap_or_else(|| "-".into()),
            replay,
            sip,
        );
    }
    println!("\nall {} calls reached a terminal state in {:.1} s", ids.len(), started.elapsed().as_secs_f32());
    if bad_sip > 0 {
        eprintln!("demo: {bad_sip} calls carried unexpected SIP headers");
        std::process::exit(1);
    }
    learning_and_replay(&stack).await;
    storm_warning_batch(&stack).await;
}

/// One unknown clinic (a menu, then a person) called twice: the first call learns it, the second replays it.
async fn learning_and_replay(stack: &Stack) {
    let phone = fresh_phone(Scenario::IvrThenHuman);
    println!(
        "
one clinic, {phone}, called twice:"
    );
    println!(
        "  {:<9} {:<34} {:<24} {:<16} {:>14}",
        "call", "TwiML before the dial", "keys (by whom, at)", "VAPI connected", "VAPI in menu"
    );
    for (label, exam) in [("learning", "demo-learn"), ("replay", "demo-replay")] {
        let row = stack
            .insert_pending_call(json!({"employee_name": "Mei Tanaka", "phone": phone,
            "clinic_timezone": "America/Chicago", "exam_id": exam}))
            .await;
        let id = row["id"].as_str().unwrap();
        stack.wait_terminal(id).await;
        let call = stack.sandbox_call_for(id).await;
        let clinic = &call["clinic"];
        let twiml = call["twiml"].as_str().unwrap_or_default();
        let before_dial = twiml.split("<Dial>").next().unwrap_or_default();
        let shown = if before_dial.contains("<Play") {
            before_dial
                .split("<Play digits=\"")
                .skip(1)
                .map(|d| format!("#{}", d.split('"').next().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            "-".to_owned()
        };
        let shown = if before_dial.contains("<Stream") { format!("stream → listener; {shown}") } else { shown };
        let keys: Vec<String> = clinic["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| {
                format!(
                    "{} {} {:.1}s",
                    k["digit"].as_str().unwrap_or("?"),
                    k["source"].as_str().unwrap_or("?"),
                    k["at_ms"].as_f64().unwrap_or(0.0) / 1000.0
                )
            })
            .collect();
        println!(
            "  {:<9} {:<34} {:<24} {:<16} {:>11} ms",
            label,
            shown,
            keys.join(", "),
            format!(
                "at {} {:.1}s",
                clinic["vapi_connected_kind"].as_str().unwrap_or("?"),
                clinic["vapi_connected_at_ms"].as_f64().unwrap_or(0.0) / 1000.0
            ),
            clinic["vapi_ms_in_menu"]
        );
        if label == "learning" {
            let runs = stack
                .select("classification_runs", &format!("phone=eq.{}&order=created_at", phone.replace('+', "%2B")))
                .await;
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut run = runs.last().cloned().unwrap_or_default();
            while run["status"] == "listening" && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                run = stack
                    .select("classification_runs", &format!("id=eq.{}", run["id"].as_str().unwrap_or_default()))
                    .await
                    .pop()
                    .unwrap_or_default();
            }
            println!(
                "            learned: {} (confidence {}), actions {}",
                run["result"], run["confidence"], run["ivr_actions"]
            );
        }
    }
}

/// A batch of drivers to warn about a storm, each with their own route as a variable: POST, then the
/// event stream (`/events`) until the batch ends, then its summary.
async fn storm_warning_batch(stack: &Stack) {
    let drivers = ["Ana Souza", "Ben Carter", "Chloe Martin", "Dev Patel", "Eli Novak", "Farah Aziz"];
    let scenarios =
        [Scenario::Human, Scenario::Human, Scenario::IvrThenHuman, Scenario::Busy, Scenario::Human, Scenario::NoAnswer];
    let targets: Vec<Value> = drivers
        .iter()
        .zip(scenarios)
        .enumerate()
        .map(|(i, (name, scenario))| {
            json!({"phone": fresh_phone(scenario), "name": name, "max_attempts": 2,
                   "variables": {"route": format!("I-{}", 80 + 10 * i)},
                   "first_message": format!("Hi {}, this is dispatch about tonight's storm.", name.split(' ').next().unwrap_or(name))})
        })
        .collect();
    let request = json!({"name": "storm warning", "targets": targets, "metadata": {"source": "demo"}});
    let accepted = stack.create_batch(&request).await;
    println!("\nPOST /api/v1/batches with {} drivers → 202 {}", drivers.len(), accepted);
    let url = format!("{}/events", accepted["statusUrl"].as_str().unwrap());
    let mut stream =
        stack.http.get(url).bearer_auth(&stack.api_key).timeout(Duration::from_secs(180)).send().await.unwrap();
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = stream.chunk().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let name = event.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("");
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            let progress: Value = serde_json::from_str(data).unwrap_or_default();
            let c = &progress["counts"];
            println!(
                "  event {name:<8} {:<11} queued {} · dialling {} · in progress {} · retrying {} · completed {} · failed {}",
                progress["status"].as_str().unwrap_or("?"),
                c["queued"], c["dialling"], c["inProgress"], c["retrying"], c["completed"], c["failed"]
            );
        }
    }
    let batch = stack.batch(accepted["batchId"].as_str().unwrap()).await;
    println!(
        "batch {}: success rate {}, average call {} s, total cost ${}",
        batch["status"].as_str().unwrap_or("?"),
        batch["successRate"],
        batch["averageDurationSeconds"],
        batch["totalCost"]
    );
    if batch["completedAt"].is_null() {
        eprintln!("demo: the batch's event stream ended before the batch");
        std::process::exit(1);
    }
}
