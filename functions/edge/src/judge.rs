//! The optional judge: one chat-completions request about a timeline the rules left `unknown`
//! (`outcall_core::learning::classify::ChatJudge` builds it and reads the answer). Only the outcome is
//! logged: never the transcript sent or the answer's text.

use crate::http::{outgoing, within};
use outcall_core::config::JudgeSettings;
use outcall_core::ids::RunId;
use outcall_core::learning::classify::{ChatJudge, Judge, Judged};
use outcall_core::learning::listener::JUDGE_TIMEOUT_MS;
use outcall_core::learning::timeline::Timeline;
use std::time::Duration;
use worker::{console_log, Fetch, Headers, Method, Request};

/// The judge's verdict, or `None` when it failed, took longer than `JUDGE_TIMEOUT_MS` or made no sense.
pub async fn ask(settings: &JudgeSettings, timeline: &Timeline, run_id: Option<RunId>) -> Option<Judged> {
    let run = run_id.map(|id| id.to_string()).unwrap_or_default();
    let judge = ChatJudge { model: settings.model.clone() };
    let Ok(request) = build(settings, &judge.request(timeline).to_string(), &run) else {
        console_log!("listener: run {run}: the judge's request could not be built");
        return None;
    };
    // The answer's status and body, both within the timeout.
    let answer = within(Duration::from_millis(JUDGE_TIMEOUT_MS), |signal| async move {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await.ok()?;
        let status = response.status_code();
        let body = if status == 200 { response.text().await.unwrap_or_default() } else { String::new() };
        Some((status, body))
    })
    .await;
    let Some((status, body)) = answer else {
        console_log!("listener: run {run}: the judge did not answer");
        return None;
    };
    let judged = judge.parse(&body);
    match &judged {
        Some(judged) => console_log!("listener: run {run}: the judge said {:?}", judged.classification),
        None if status == 200 => console_log!("listener: run {run}: the judge's answer made no sense"),
        None => console_log!("listener: run {run}: the judge answered {status}"),
    }
    judged
}

fn build(settings: &JudgeSettings, body: &str, run: &str) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {}", settings.api_key))?;
    headers.set("Content-Type", "application/json")?;
    // The run's id, to find this request in the provider's logs (and the sandbox's).
    if !run.is_empty() {
        headers.set("X-Client-Request-Id", run)?;
    }
    outgoing(Method::Post, &settings.url, headers, Some(body))
}
