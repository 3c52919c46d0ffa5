//! Plays one call: progress events on nominal time, the TwiML once answered,
//! and the status callbacks along the way.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::watch;

use super::callbacks::{send_signed, CallInfo, CallbackConfig, CallbackQueue, HttpMethod};
use super::scenario::Scenario;
use super::sip::SipUri;
use super::stream::{self, StreamContext, StreamHandle};
use super::twiml::{self, CallHost, StreamSpec};
use super::{twilio_date, TwilioError};
use crate::clinic::walk::KeySource;
use crate::clinic::Line;
use crate::clock::{self, sleep_nominal, NominalClock};
use crate::state::{lock, AppState, CallHandle};
use crate::vapi;

/// Everything the API validated, ready to play.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub info: CallInfo,
    pub scenario: Scenario,
    pub twiml: Option<String>,
    pub url: Option<(String, HttpMethod)>,
    pub timeout_secs: u64,
    pub send_digits: Option<String>,
    /// `Some(detect_message_end)` when answering machine detection was requested.
    pub machine_detection: Option<bool>,
    pub callbacks: Option<CallbackConfig>,
}

/// Nominal milestones, in ms from the create request.
const RINGING_AT: u64 = 1000;
const BUSY_AT: u64 = 2000;
const FAILED_AT: u64 = 500;
const ANSWERED_AT: u64 = 3000;

pub async fn play(state: Arc<AppState>, call: CallHandle, plan: CallPlan) {
    let mut progress = Progress {
        call: call.clone(),
        info: plan.info.clone(),
        queue: CallbackQueue::start(state.clone(), call.clone(), plan.callbacks.clone()),
        answered_by: None,
    };
    progress.reach("initiated", None);
    let ending = connect(&state, &call, &plan, &mut progress).await;
    progress.end(&state, ending.status, ending.duration_secs).await;
    for report in ending.held_reports {
        report.send().await;
    }
    for stream in ending.streams {
        stream.finished().await;
    }
    lock(&call).done = true;
}

/// How a call ended.
struct Ending {
    status: &'static str,
    /// Whole nominal seconds since the answer.
    duration_secs: u64,
    /// VAPI's end-of-call-reports that go out after Twilio's final callback.
    held_reports: Vec<vapi::EndOfCallReport>,
    /// Media streams still sending their last frames.
    streams: Vec<StreamHandle>,
}

impl Ending {
    fn unanswered(status: &'static str) -> Ending {
        Ending { status, duration_secs: 0, held_reports: Vec::new(), streams: Vec::new() }
    }
}

/// From `initiated` to the end of the call.
async fn connect(state: &Arc<AppState>, call: &CallHandle, plan: &CallPlan, progress: &mut Progress) -> Ending {
    let scale = state.config.time_scale;
    if plan.scenario == Scenario::Failed {
        sleep_nominal(scale, FAILED_AT).await;
        return Ending::unanswered("failed");
    }
    sleep_nominal(scale, RINGING_AT).await;
    progress.reach("ringing", None);
    if plan.scenario == Scenario::Busy {
        sleep_nominal(scale, BUSY_AT - RINGING_AT).await;
        return Ending::unanswered("busy");
    }
    // Nobody picks up, or the Timeout ends the ringing before the callee would answer.
    let ring_ms = plan.timeout_secs * 1000;
    if plan.scenario == Scenario::NoAnswer || ring_ms < ANSWERED_AT - RINGING_AT {
        sleep_nominal(scale, ring_ms).await;
        return Ending::unanswered("no-answer");
    }
    sleep_nominal(scale, ANSWERED_AT - RINGING_AT).await;
    progress.answered_by = plan.machine_detection.map(|end| plan.scenario.answered_by(end).to_string());
    lock(call).start_time = Some(twilio_date(chrono::Utc::now()));
    progress.reach("in-progress", None);
    run_answered(state, call, plan).await
}

/// Executes the call's TwiML from the moment it is answered, while the callee's phone system
/// plays on the same clock.
async fn run_answered(state: &Arc<AppState>, call: &CallHandle, plan: &CallPlan) -> Ending {
    let (mut clock, progress) = NominalClock::tracked(state.config.time_scale);
    let line = Arc::new(state.phones.line(&plan.info.to));
    lock(call).clinic = Some(line.record(0));
    let mut host = LiveCall {
        state: state.clone(),
        call: call.clone(),
        info: plan.info.clone(),
        line: line.clone(),
        progress,
        streams: Vec::new(),
        held_reports: Vec::new(),
    };
    if let Some(digits) = &plan.send_digits {
        host.record_verb(json!({ "verb": "SendDigits", "digits": digits, "at_ms": 0 }));
        line.press(digits, 0, KeySource::Twiml);
        clock.advance(twiml::digits_ms(digits).unwrap_or(0)).await;
    }
    let document = match (&plan.twiml, &plan.url) {
        (Some(doc), _) => Ok(doc.clone()),
        (None, Some((url, method))) => fetch_twiml(state, plan, url, *method).await,
        (None, None) => Err(TwilioError::new(21205, "no TwiML and no Url")),
    };
    let parsed = document.and_then(|doc| {
        lock(call).twiml = Some(doc.clone());
        twiml::parse(&doc)
    });
    match parsed {
        Ok(verbs) => twiml::execute(&verbs, &mut clock, &mut host).await,
        // Twilio says "an application error has occurred" and hangs up.
        Err(e) => host.record_error(e.record(None, Some(clock.elapsed_ms()))),
    }
    clock.end();
    lock(call).clinic = Some(line.record(clock.elapsed_ms()));
    Ending {
        status: "completed",
        duration_secs: clock.elapsed_ms() / 1000,
        held_reports: host.held_reports,
        streams: host.streams,
    }
}

/// Requests the call's TwiML from `Url`, signed like any Twilio webhook.
async fn fetch_twiml(state: &AppState, plan: &CallPlan, url: &str, method: HttpMethod) -> Result<String, TwilioError> {
    let mut params = plan.info.params("in-progress");
    if let Some(by) = plan.machine_detection.map(|end| plan.scenario.answered_by(end)) {
        params.push(("AnsweredBy".into(), by.into()));
    }
    let delivered = send_signed(state, method, url, &params).await;
    match (delivered.status, delivered.body) {
        (Some(status), serde_json::Value::String(doc)) if (200..300).contains(&status) => Ok(doc),
        (Some(status), _) if (200..300).contains(&status) => {
            Err(TwilioError::new(12100, "Document parse failure: the Url did not return TwiML"))
        }
        (Some(status), _) => Err(TwilioError::new(11200, format!("HTTP retrieval failure: status {status}"))),
        (None, _) => {
            Err(TwilioError::new(11200, format!("HTTP retrieval failure: {}", delivered.error.unwrap_or_default())))
        }
    }
}

/// Status changes of one call: the record and the callbacks.
struct Progress {
    call: CallHandle,
    info: CallInfo,
    queue: CallbackQueue,
    answered_by: Option<String>,
}

impl Progress {
    fn reach(&mut self, status: &str, duration_secs: Option<u64>) {
        {
            let mut record = lock(&self.call);
            record.status = status.to_string();
            record.answered_by = self.answered_by.clone();
        }
        crate::log!(info, "twilio", "call sid={} status={status}", self.info.sid);
        let mut params = self.info.params(status);
        if let Some(secs) = duration_secs {
            params.push(("CallDuration".into(), secs.to_string()));
            params.push(("Duration".into(), secs.div_ceil(60).to_string()));
        }
        if let Some(by) = &self.answered_by {
            params.push(("AnsweredBy".into(), by.clone()));
        }
        self.queue.notify(status, params);
    }

    /// The final status is decided (the call stops counting as live);
    /// returns once every callback was answered.
    async fn end(mut self, state: &AppState, status: &str, duration_secs: u64) {
        {
            let mut record = lock(&self.call);
            record.final_status = Some(status.to_string());
            record.duration = Some(duration_secs);
            record.end_time = Some(twilio_date(chrono::Utc::now()));
            record.ended_ms = Some(state.uptime().as_millis() as u64);
        }
        state.stats.call_ended();
        self.reach(status, Some(duration_secs));
        self.queue.finish().await;
    }
}

/// The TwiML executor's view of a live call.
struct LiveCall {
    state: Arc<AppState>,
    call: CallHandle,
    info: CallInfo,
    line: Arc<Line>,
    progress: watch::Receiver<clock::Progress>,
    streams: Vec<StreamHandle>,
    held_reports: Vec<vapi::EndOfCallReport>,
}

impl CallHost for LiveCall {
    fn record_verb(&mut self, entry: serde_json::Value) {
        lock(&self.call).executed.push(entry);
    }

    fn record_error(&mut self, error: serde_json::Value) {
        let sid = {
            let mut record = lock(&self.call);
            record.errors.push(error.clone());
            record.sid.clone()
        };
        crate::log!(warn, "twilio", "call sid={sid} error code={}", error["code"]);
    }

    async fn dial(&mut self, sip: SipUri, clock: &mut NominalClock) {
        lock(&self.call).sip = serde_json::to_value(&sip).ok();
        let held = vapi::converse(&self.state, &self.call, &sip, &self.line, clock).await;
        self.held_reports.extend(held);
    }

    fn play_digits(&mut self, digits: &str, at_ms: u64) {
        self.line.press(digits, at_ms, KeySource::Twiml);
    }

    fn start_stream(&mut self, spec: StreamSpec, at_ms: u64) {
        let ctx = StreamContext {
            state: self.state.clone(),
            call: self.call.clone(),
            info: self.info.clone(),
            line: self.line.clone(),
            progress: self.progress.clone(),
        };
        self.streams.push(stream::start(ctx, spec, at_ms));
    }

    fn stop_stream(&mut self, name: Option<&str>, at_ms: u64) {
        for stream in &self.streams {
            stream.stop(name, at_ms);
        }
    }
}
