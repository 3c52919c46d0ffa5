//! One call's stream listener, as a state machine with no I/O (in the style of quinn-proto, like
//! [`crate::dial`]): the Worker's Durable Object feeds it what happens (Twilio messages, the authentication's
//! answer, speech-to-text events, clock ticks) and carries out the [`Action`]s it returns.
//!
//! - Nothing is processed before the stream is authenticated: frames are held (at most [`MAX_HELD_FRAMES`]) and
//!   dropped unseen if it is refused.
//! - The callee's audio (the inbound track) goes to STT in chunk order: late or duplicate chunks are dropped
//!   (and counted), a small window reorders the rest. STT times (audio sent on that connection) are mapped back
//!   to the Twilio timestamps of the frames sent, so a gap in the stream does not shift the timeline.
//! - The outbound track only feeds the DTMF detector: the keys pressed, on the same clock.
//! - An STT failure ends the run as `unknown`; the call itself never depends on the listener.
//! - A learning run the rules leave `unknown` asks the judge, when the run has one ([`Listener::with_judge`]):
//!   [`Action::Judge`], answered by [`Listener::on_judged`] (`None`: no usable answer in [`JUDGE_TIMEOUT_MS`]);
//!   the rules' `unknown` stands without an answer.
//! - A verify run (a replayed classification) compares what it hears with the stored prompts: a change is
//!   reported at once and the run goes on as a learning run; the same prompts through the replay and its tail
//!   end it early, to stop paying for STT.
//!
//! The Worker calls [`Listener::on_tick`] at least once a second (wall-clock ms) for keep-alives and timeouts.

use super::classify::{classify, verify, with_judgement, Check, Evidence, Judged, Learned, Verdict};
use super::dtmf::DtmfDetector;
use super::media::{Media, Message, Track};
use super::stt::{SpeechToText, SttEvent};
use super::timeline::{Timeline, TimelineEvent};
use crate::classification::{ClassificationType, IvrAction, IvrActionKind};
use crate::ids::RunId;
use crate::ids::SessionId;
use crate::rpc;
use std::collections::BTreeMap;

/// Frames held before authentication: 10 s of both tracks (160 KB), as long as opening STT may take too, so a
/// slow database costs no audio.
pub const MAX_HELD_FRAMES: usize = 1000;
/// Audio held while the STT connection opens (10 s at 8 kHz).
const MAX_PENDING_AUDIO: usize = 80_000;
/// Chunks held back waiting for a missing one before it is given up.
const REORDER_WINDOW: usize = 10;
/// A keep-alive after this long without audio (Deepgram closes after 10 s).
pub const KEEPALIVE_MS: u64 = 4000;
/// How long authentication, opening STT, or STT's last results may take.
pub const TIMEOUT_MS: u64 = 5000;
/// How long a verify run listens after the replay's end.
pub const VERIFY_TAIL_MS: u32 = 6000;
/// Audio heard beyond the tail before a verify run judges, for STT's final results to arrive.
pub const VERIFY_GRACE_MS: u32 = 1500;
/// How long the judge may take to answer before the rules' `unknown` is recorded.
pub const JUDGE_TIMEOUT_MS: u64 = 10_000;
/// Silences at least this long are marked on the timeline.
const SILENCE_MS: u32 = 2000;

/// What the run is for, as `begin_listening` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    Learn,
    Verify(Expected),
}

/// The cached classification a verify run checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub classification: ClassificationType,
    pub evidence: Evidence,
    pub ivr_actions: Vec<IvrAction>,
}

impl Expected {
    /// When the replay is over, on the audio clock: the actions' timing plus the keys' own length.
    pub fn replay_end_ms(&self) -> u32 {
        self.ivr_actions.iter().fold(0u32, |end, a| {
            let keys = match a.action {
                IvrActionKind::Dtmf => a.value.chars().map(|c| if c == 'w' { 500 } else { 100 }).sum(),
                _ => 0,
            };
            end.saturating_add(a.timing_ms).saturating_add(keys)
        })
    }
}

/// What the run found, for `record_classification_run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub timeline: Timeline,
    /// Audio sent to STT, in seconds.
    pub stt_seconds: f64,
    pub bytes_received_inbound: u64,
    pub bytes_forwarded: u64,
    /// Media frames received (both tracks), and those dropped as late or duplicate.
    pub frames: u64,
    pub frames_dropped: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Check the `start` message's session and single-use token; answer with `on_authenticated` or `on_refused`.
    Authenticate {
        session: SessionId,
        token: String,
    },
    /// Open the STT connection; answer with `on_stt_open` or `on_stt_failed`.
    OpenStt,
    /// Send these µ-law bytes to STT (a binary frame).
    ForwardAudio(Vec<u8>),
    /// Send this text frame to STT.
    SendStt(String),
    CloseStt,
    /// The cached classification is wrong: deactivate it (`invalidate_classification`); the run goes on learning.
    Invalidate {
        reason: String,
    },
    /// Ask the judge about this timeline (the rules left it `unknown`); answer with `on_judged`.
    Judge(Box<Timeline>),
    /// Record the run.
    Finish(Box<Outcome>),
    /// Close Twilio's socket (the call goes on).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before `start`.
    Waiting,
    Authenticating,
    Listening,
    /// CloseStream sent; waiting for STT's last results.
    Draining,
    /// Waiting for the judge's answer (with the rules' verdict).
    Judging,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stt {
    NotOpen,
    Opening,
    Open,
}

#[derive(Debug, Default)]
struct TrackOrder {
    next: u64,
    held: BTreeMap<u64, Media>,
}

pub struct Listener<S: SpeechToText> {
    stt_protocol: S,
    /// Whether a judge is configured.
    judge: bool,
    /// The rules' verdict while the judge is asked.
    rules: Option<Verdict>,
    phase: Phase,
    stt: Stt,
    purpose: Option<Purpose>,
    /// Verify: still comparing.
    verifying: bool,
    /// Verify: the replay and its tail were heard the same.
    verified: bool,
    stopped: bool,
    held: Vec<Media>,
    inbound: TrackOrder,
    outbound: TrackOrder,
    pending_audio: Vec<u8>,
    /// (byte offset on the STT connection, Twilio timestamp of that byte), where the stream jumps.
    clock: Vec<(u64, u64)>,
    dtmf: DtmfDetector,
    timeline: Timeline,
    heard_until_ms: u64,
    bytes_received_inbound: u64,
    bytes_forwarded: u64,
    frames: u64,
    frames_dropped: u64,
    /// Wall-clock of the phase's (or STT state's) start and of the last audio sent, set at the next tick.
    since_ms: Option<u64>,
    last_audio_ms: Option<u64>,
    audio_since_tick: bool,
}

impl<S: SpeechToText> Listener<S> {
    pub fn new(stt_protocol: S) -> Self {
        Listener {
            stt_protocol,
            judge: false,
            rules: None,
            phase: Phase::Waiting,
            stt: Stt::NotOpen,
            purpose: None,
            verifying: false,
            verified: false,
            stopped: false,
            held: Vec::new(),
            inbound: TrackOrder { next: 1, ..TrackOrder::default() },
            outbound: TrackOrder { next: 1, ..TrackOrder::default() },
            pending_audio: Vec::new(),
            clock: Vec::new(),
            dtmf: DtmfDetector::new(),
            timeline: Timeline::default(),
            heard_until_ms: 0,
            bytes_received_inbound: 0,
            bytes_forwarded: 0,
            frames: 0,
            frames_dropped: 0,
            since_ms: None,
            last_audio_ms: None,
            audio_since_tick: false,
        }
    }

    /// A judge is configured: what the rules leave `unknown` goes to it.
    pub fn with_judge(mut self, judge: bool) -> Self {
        self.judge = judge;
        self
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// A message from Twilio's socket.
    pub fn on_twilio(&mut self, message: Message) -> Vec<Action> {
        match (self.phase, message) {
            (Phase::Waiting, Message::Start(start)) => {
                let session = start.custom_parameters.get("session").and_then(|s| SessionId::parse(s).ok());
                let token = start.custom_parameters.get("token").filter(|t| !t.is_empty() && t.len() <= 256);
                match (session, token) {
                    (Some(session), Some(token)) => {
                        self.enter(Phase::Authenticating);
                        vec![Action::Authenticate { session, token: token.clone() }]
                    }
                    _ => self.refuse(),
                }
            }
            (Phase::Authenticating, Message::Media(media)) => {
                if self.held.len() < MAX_HELD_FRAMES {
                    self.held.push(media);
                }
                Vec::new()
            }
            (Phase::Authenticating, Message::Stop) => {
                self.stopped = true;
                Vec::new()
            }
            (Phase::Listening, Message::Media(media)) => self.on_media(media),
            (Phase::Listening, Message::Stop) => self.end(),
            _ => Vec::new(),
        }
    }

    /// Twilio's socket closed.
    pub fn on_closed(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Waiting | Phase::Authenticating => {
                self.held.clear();
                self.phase = Phase::Done;
                Vec::new()
            }
            Phase::Listening => self.end(),
            Phase::Draining | Phase::Judging | Phase::Done => Vec::new(),
        }
    }

    /// The stream's session and token are good: `purpose` is what `begin_listening` answered.
    pub fn on_authenticated(&mut self, purpose: Purpose) -> Vec<Action> {
        if self.phase != Phase::Authenticating {
            return Vec::new();
        }
        self.verifying = matches!(purpose, Purpose::Verify(_));
        self.purpose = Some(purpose);
        self.enter(Phase::Listening);
        self.stt = Stt::Opening;
        let mut actions = vec![Action::OpenStt];
        for media in std::mem::take(&mut self.held) {
            actions.extend(self.on_media(media));
        }
        if self.stopped {
            actions.extend(self.end());
        }
        actions
    }

    pub fn on_refused(&mut self) -> Vec<Action> {
        if self.phase != Phase::Authenticating {
            return Vec::new();
        }
        self.refuse()
    }

    pub fn on_stt_open(&mut self) -> Vec<Action> {
        if self.stt != Stt::Opening || !matches!(self.phase, Phase::Listening | Phase::Draining) {
            return Vec::new();
        }
        self.stt = Stt::Open;
        self.since_ms = None;
        let mut actions = Vec::new();
        if !self.pending_audio.is_empty() {
            actions.push(Action::ForwardAudio(std::mem::take(&mut self.pending_audio)));
            self.audio_since_tick = true;
        }
        if self.phase == Phase::Draining {
            actions.push(Action::SendStt(self.stt_protocol.close_stream()));
        }
        actions
    }

    pub fn on_stt(&mut self, event: SttEvent) -> Vec<Action> {
        if !matches!(self.phase, Phase::Listening | Phase::Draining) {
            return Vec::new();
        }
        match event {
            SttEvent::Final { start_ms, end_ms, text } => {
                let (start_ms, end_ms) = (self.audio_ms(start_ms), self.audio_ms(end_ms));
                self.timeline.push(TimelineEvent::Speech { start_ms, end_ms, text });
                self.check(false)
            }
            SttEvent::SpeechStarted { at_ms } => {
                let at_ms = self.audio_ms(at_ms);
                self.timeline.push(TimelineEvent::SpeechStarted { at_ms });
                Vec::new()
            }
            SttEvent::UtteranceEnd { .. } => Vec::new(),
            SttEvent::Closed if self.phase == Phase::Draining => self.finish(),
            SttEvent::Closed | SttEvent::Error { .. } => self.on_stt_failed(),
        }
    }

    /// The STT connection failed (or closed unasked): the run ends as `unknown`, unless it was only
    /// finishing.
    pub fn on_stt_failed(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Listening => {
                let verdict = Verdict::unknown("speech-to-text failed");
                let mut actions = vec![Action::CloseStt];
                actions.push(self.outcome(verdict));
                actions.push(Action::Close);
                self.phase = Phase::Done;
                actions
            }
            Phase::Draining => self.finish(),
            _ => Vec::new(),
        }
    }

    /// Wall-clock time, at least once a second.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Action> {
        let since = *self.since_ms.get_or_insert(now_ms);
        let timed_out = now_ms.saturating_sub(since) >= TIMEOUT_MS;
        match self.phase {
            Phase::Authenticating if timed_out => self.refuse(),
            Phase::Listening if self.stt == Stt::Opening && timed_out => self.on_stt_failed(),
            Phase::Draining if timed_out => self.finish(),
            Phase::Judging if now_ms.saturating_sub(since) >= JUDGE_TIMEOUT_MS => self.on_judged(None),
            Phase::Listening if self.stt == Stt::Open => {
                if std::mem::take(&mut self.audio_since_tick) {
                    self.last_audio_ms = Some(now_ms);
                }
                let last = *self.last_audio_ms.get_or_insert(now_ms);
                if now_ms.saturating_sub(last) >= KEEPALIVE_MS {
                    self.last_audio_ms = Some(now_ms);
                    return vec![Action::SendStt(self.stt_protocol.keep_alive())];
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.since_ms = None;
    }

    fn refuse(&mut self) -> Vec<Action> {
        self.held.clear();
        self.phase = Phase::Done;
        vec![Action::Close]
    }

    fn on_media(&mut self, media: Media) -> Vec<Action> {
        self.frames += 1;
        let order = match media.track {
            Track::Inbound => &mut self.inbound,
            Track::Outbound => &mut self.outbound,
        };
        if media.chunk < order.next || order.held.contains_key(&media.chunk) {
            self.frames_dropped += 1;
            return Vec::new();
        }
        order.held.insert(media.chunk, media);
        let mut ready = Vec::new();
        while let Some(first) = order.held.first_key_value().map(|(chunk, _)| *chunk) {
            if first != order.next && order.held.len() <= REORDER_WINDOW {
                break;
            }
            order.next = first.saturating_add(1);
            ready.extend(order.held.remove(&first));
        }
        let mut actions = Vec::new();
        for media in ready {
            actions.extend(self.process(media));
            if self.phase != Phase::Listening {
                break;
            }
        }
        actions
    }

    fn process(&mut self, media: Media) -> Vec<Action> {
        let length_ms = media.payload.len() as u64 / 8;
        if media.track == Track::Outbound {
            if let Some(press) = self.dtmf.push(media.timestamp_ms, &media.payload) {
                let at_ms = u32::try_from(press.at_ms).unwrap_or(u32::MAX);
                self.timeline.push(TimelineEvent::Key { at_ms, digits: press.key.to_string() });
            }
            return Vec::new();
        }
        self.heard_until_ms = self.heard_until_ms.max(media.timestamp_ms.saturating_add(length_ms));
        self.bytes_received_inbound += media.payload.len() as u64;
        let expected_ts = self.clock.last().map(|(offset, ts)| ts.saturating_add((self.bytes_forwarded - offset) / 8));
        if expected_ts != Some(media.timestamp_ms) {
            self.clock.push((self.bytes_forwarded, media.timestamp_ms));
        }
        self.bytes_forwarded += media.payload.len() as u64;
        let mut actions = Vec::new();
        match self.stt {
            Stt::Open => {
                self.audio_since_tick = true;
                actions.push(Action::ForwardAudio(media.payload));
            }
            _ if self.pending_audio.len() + media.payload.len() <= MAX_PENDING_AUDIO => {
                self.pending_audio.extend_from_slice(&media.payload);
            }
            // STT is this late to open: the audio is lost to it (and not counted as sent).
            _ => self.bytes_forwarded -= media.payload.len() as u64,
        }
        if self.verifying {
            actions.extend(self.check(true));
        }
        actions
    }

    /// A verify run's comparison; `by_time`: judge Same once enough was heard.
    fn check(&mut self, by_time: bool) -> Vec<Action> {
        let Some(Purpose::Verify(expected)) = self.purpose.as_ref().filter(|_| self.verifying) else {
            return Vec::new();
        };
        let replay_end = expected.replay_end_ms();
        let judged_at = replay_end.saturating_add(VERIFY_TAIL_MS).saturating_add(VERIFY_GRACE_MS);
        let heard = u32::try_from(self.heard_until_ms).unwrap_or(u32::MAX);
        if by_time && heard < judged_at {
            return Vec::new();
        }
        self.timeline.duration_ms = heard.saturating_sub(VERIFY_GRACE_MS);
        match verify(expected.classification, &expected.evidence, &self.timeline, replay_end, VERIFY_TAIL_MS) {
            Check::Pending => Vec::new(),
            Check::Changed { reason } => {
                self.verifying = false;
                self.purpose = Some(Purpose::Learn);
                vec![Action::Invalidate { reason }]
            }
            Check::Same => {
                self.verifying = false;
                self.verified = true;
                self.end()
            }
        }
    }

    /// The stream ended (or a verify run is satisfied): flush STT, then finish.
    fn end(&mut self) -> Vec<Action> {
        self.enter(Phase::Draining);
        match self.stt {
            Stt::Open => vec![Action::SendStt(self.stt_protocol.close_stream())],
            Stt::Opening => Vec::new(),
            Stt::NotOpen => self.finish(),
        }
    }

    fn finish(&mut self) -> Vec<Action> {
        if matches!(self.phase, Phase::Judging | Phase::Done) {
            return Vec::new();
        }
        self.timeline.duration_ms = u32::try_from(self.heard_until_ms).unwrap_or(u32::MAX);
        self.timeline.mark_silences(SILENCE_MS);
        let verdict = match &self.purpose {
            Some(Purpose::Verify(expected)) if self.verified => Verdict {
                classification: match expected.classification {
                    ClassificationType::Human => Learned::Human,
                    ClassificationType::IvrOnly => Learned::IvrOnly,
                    ClassificationType::IvrThenHuman => Learned::IvrThenHuman,
                },
                confidence: 1.0,
                ivr_actions: expected.ivr_actions.clone(),
                evidence: Evidence {
                    reasons: vec!["the replay heard the same prompts".into()],
                    ..expected.evidence.clone()
                },
            },
            Some(Purpose::Verify(_)) => Verdict::unknown("the call ended before the replay was verified"),
            _ => classify(&self.timeline),
        };
        let heard_words = self.timeline.events.iter().any(|e| matches!(e, TimelineEvent::Speech { .. }));
        let learning = matches!(self.purpose, Some(Purpose::Learn));
        if self.judge && learning && heard_words && verdict.classification == Learned::Unknown {
            self.rules = Some(verdict);
            self.enter(Phase::Judging);
            return vec![Action::CloseStt, Action::Judge(Box::new(self.timeline.clone()))];
        }
        let actions = vec![Action::CloseStt, self.outcome(verdict), Action::Close];
        self.phase = Phase::Done;
        actions
    }

    /// The judge's answer to [`Action::Judge`]; `None` when it failed, timed out or made no sense.
    pub fn on_judged(&mut self, judged: Option<Judged>) -> Vec<Action> {
        let Some(rules) = self.rules.take().filter(|_| self.phase == Phase::Judging) else {
            return Vec::new();
        };
        let verdict = match judged {
            Some(judged) => with_judgement(&self.timeline, rules, judged),
            None => {
                let mut rules = rules;
                rules.evidence.reasons.push("the judge gave no answer".into());
                rules
            }
        };
        let actions = vec![self.outcome(verdict), Action::Close];
        self.phase = Phase::Done;
        actions
    }

    fn outcome(&mut self, verdict: Verdict) -> Action {
        Action::Finish(Box::new(Outcome {
            verdict,
            timeline: std::mem::take(&mut self.timeline),
            stt_seconds: self.bytes_forwarded as f64 / 8000.0,
            bytes_received_inbound: self.bytes_received_inbound,
            bytes_forwarded: self.bytes_forwarded,
            frames: self.frames,
            frames_dropped: self.frames_dropped,
        }))
    }

    /// STT's time (ms of audio sent on the connection) on the audio clock.
    fn audio_ms(&self, stt_ms: u64) -> u32 {
        let byte = stt_ms.saturating_mul(8);
        let index = self.clock.partition_point(|(offset, _)| *offset <= byte);
        let ms = match index.checked_sub(1).map(|i| self.clock[i]) {
            Some((offset, ts)) => ts.saturating_add((byte - offset) / 8),
            None => stt_ms,
        };
        u32::try_from(ms).unwrap_or(u32::MAX)
    }
}

/// `begin_listening`'s accepted answer as the machine's purpose: a verification run compares with what the
/// learning run heard (nothing, for a classification written by hand: then any menu heard is a change only
/// where the kind of system differs).
impl From<rpc::Listening> for Purpose {
    fn from(listening: rpc::Listening) -> Self {
        match (listening.purpose, listening.classification) {
            (rpc::RunPurpose::Verify, Some(expected)) => {
                let heard = expected.evidence.unwrap_or(rpc::MenuEvidence { prompts: Vec::new(), fingerprint: None });
                Purpose::Verify(Expected {
                    classification: expected.classification_type,
                    evidence: Evidence {
                        fingerprint: heard.fingerprint.unwrap_or_default(),
                        prompts: heard.prompts,
                        reasons: Vec::new(),
                    },
                    ivr_actions: expected.ivr_actions,
                })
            }
            _ => Purpose::Learn,
        }
    }
}

impl Outcome {
    /// The run's record, for `record_classification_run`.
    pub fn record(&self, run_id: RunId) -> rpc::RecordClassificationRun {
        rpc::RecordClassificationRun {
            run_id,
            verdict: serde_json::to_value(&self.verdict).unwrap_or_default(),
            timeline: serde_json::to_value(&self.timeline).ok(),
            stt_seconds: Some(self.stt_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dtmf::synth;
    use super::super::media::Start;
    use super::super::stt::Deepgram;
    use super::*;

    const SESSION: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    const KEEPALIVE: &str = r#"{"type":"KeepAlive"}"#;
    const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

    fn start() -> Message {
        let custom_parameters = [("session", SESSION), ("token", "tok")].map(|(k, v)| (k.into(), v.into())).into();
        Message::Start(Start {
            stream_sid: "MZ1".into(),
            call_sid: "CA1".into(),
            tracks: vec!["inbound".into(), "outbound".into()],
            custom_parameters,
            media_format: super::super::media::MediaFormat {
                encoding: "audio/x-mulaw".into(),
                sample_rate: 8000,
                channels: 1,
            },
        })
    }

    /// Inbound chunk `n` (from 1) at `(n - 1) * 20` ms, its bytes all `n` (to tell frames apart).
    fn inbound(n: u64) -> Message {
        inbound_at(n, (n - 1) * 20)
    }

    fn inbound_at(n: u64, timestamp_ms: u64) -> Message {
        Message::Media(Media { track: Track::Inbound, chunk: n, timestamp_ms, payload: vec![n as u8; 160] })
    }

    fn listening(purpose: Purpose) -> Listener<Deepgram> {
        let mut l = Listener::new(Deepgram::default());
        assert_eq!(l.on_twilio(Message::Connected), []);
        let auth = l.on_twilio(start());
        assert_eq!(auth, [Action::Authenticate { session: SessionId::parse(SESSION).unwrap(), token: "tok".into() }]);
        assert_eq!(l.on_authenticated(purpose), [Action::OpenStt]);
        assert_eq!(l.on_stt_open(), []);
        l
    }

    fn forwarded(actions: &[Action]) -> Vec<u8> {
        actions
            .iter()
            .flat_map(|a| match a {
                Action::ForwardAudio(bytes) => bytes.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn outcome(actions: Vec<Action>) -> Outcome {
        let finish = actions.into_iter().find_map(|a| match a {
            Action::Finish(outcome) => Some(*outcome),
            _ => None,
        });
        finish.expect("a Finish")
    }

    #[test]
    fn a_refused_stream_forwards_nothing() {
        let mut l = Listener::new(Deepgram::default());
        l.on_twilio(start());
        for n in 1..=5 {
            assert_eq!(l.on_twilio(inbound(n)), []);
        }
        assert_eq!(l.on_refused(), [Action::Close]);
        assert_eq!(l.on_twilio(inbound(6)), []);
        assert_eq!(l.on_authenticated(Purpose::Learn), []);
        assert_eq!(l.on_stt_open(), []);
        assert!(l.is_done());
        // No session or token: refused without asking.
        let mut l = Listener::new(Deepgram::default());
        let Message::Start(mut bad) = start() else { unreachable!() };
        bad.custom_parameters.remove("token");
        assert_eq!(l.on_twilio(Message::Start(bad)), [Action::Close]);
        assert_eq!(l.on_twilio(inbound(1)), []);
    }

    #[test]
    fn held_frames_go_out_after_authentication_and_stt_opening() {
        let mut l = Listener::new(Deepgram::default());
        l.on_twilio(start());
        for n in 1..=3 {
            l.on_twilio(inbound(n));
        }
        assert_eq!(l.on_authenticated(Purpose::Learn), [Action::OpenStt]);
        let opened = l.on_stt_open();
        assert_eq!(forwarded(&opened), [vec![1u8; 160], vec![2; 160], vec![3; 160]].concat());
        assert_eq!(forwarded(&l.on_twilio(inbound(4))), vec![4u8; 160]);
    }

    #[test]
    fn audio_goes_out_in_chunk_order_and_late_or_duplicate_chunks_are_dropped() {
        let mut l = listening(Purpose::Learn);
        let mut sent = Vec::new();
        for n in [1, 3, 2, 2, 4, 1, 6, 5] {
            sent.extend(forwarded(&l.on_twilio(inbound(n))));
        }
        let order: Vec<u8> = sent.chunks(160).map(|c| c[0]).collect();
        assert_eq!(order, [1, 2, 3, 4, 5, 6]);
        l.on_twilio(Message::Stop);
        let out = outcome(l.on_stt(SttEvent::Closed));
        assert_eq!((out.frames, out.frames_dropped), (8, 2));
        assert_eq!(out.bytes_received_inbound, 6 * 160);
        assert_eq!(out.bytes_forwarded, out.bytes_received_inbound);
    }

    #[test]
    fn a_missing_chunk_is_given_up_after_the_window() {
        let mut l = listening(Purpose::Learn);
        let mut sent = Vec::new();
        for n in (1..=3).chain(5..=16) {
            sent.extend(forwarded(&l.on_twilio(inbound(n))));
        }
        let order: Vec<u8> = sent.chunks(160).map(|c| c[0]).collect();
        assert_eq!(order, [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        // The missing chunk arriving now is late.
        assert_eq!(l.on_twilio(inbound(4)), []);
    }

    #[test]
    fn stt_times_map_back_to_the_audio_clock_across_gaps() {
        let mut l = listening(Purpose::Learn);
        // 5 frames at 0..100 ms, then the stream jumps to 1000 ms.
        for n in 1..=5 {
            l.on_twilio(inbound(n));
        }
        for n in 6..=55 {
            l.on_twilio(inbound_at(n, 1000 + (n - 6) * 20));
        }
        l.on_stt(SttEvent::SpeechStarted { at_ms: 60 });
        l.on_stt(SttEvent::Final { start_ms: 80, end_ms: 600, text: "For billing, press 2.".into() });
        l.on_twilio(Message::Stop);
        let out = outcome(l.on_stt(SttEvent::Closed));
        assert_eq!(out.timeline.duration_ms, 2000);
        assert_eq!(out.timeline.events[0], TimelineEvent::SpeechStarted { at_ms: 60 });
        assert_eq!(
            out.timeline.events[1],
            TimelineEvent::Speech { start_ms: 80, end_ms: 1500, text: "For billing, press 2.".into() }
        );
    }

    #[test]
    fn keys_on_the_outbound_track_land_on_the_timeline() {
        let mut l = listening(Purpose::Learn);
        let mut audio = synth::silence(200);
        audio.extend(synth::key('1', 100));
        audio.extend(synth::silence(200));
        for (i, frame) in audio.chunks(160).enumerate() {
            let media = Media {
                track: Track::Outbound,
                chunk: i as u64 + 1,
                timestamp_ms: 3000 + i as u64 * 20,
                payload: frame.to_vec(),
            };
            assert_eq!(l.on_twilio(Message::Media(media)), []);
        }
        l.on_twilio(Message::Stop);
        let out = outcome(l.on_stt(SttEvent::Closed));
        assert!(out.timeline.events.contains(&TimelineEvent::Key { at_ms: 3200, digits: "1".into() }));
        assert_eq!(out.bytes_forwarded, 0);
    }

    #[test]
    fn keepalives_every_4_s_without_audio_and_a_close_at_the_end() {
        let mut l = listening(Purpose::Learn);
        let mut keepalives = Vec::new();
        for second in 0..=10u64 {
            if second < 3 {
                l.on_twilio(inbound(second + 1));
            }
            for action in l.on_tick(second * 1000) {
                assert_eq!(action, Action::SendStt(KEEPALIVE.into()));
                keepalives.push(second);
            }
        }
        // Audio until 2 s, then a keep-alive 4 s after the last tick that saw audio, and every 4 s after.
        assert_eq!(keepalives, [6, 10]);
        assert_eq!(l.on_twilio(Message::Stop), [Action::SendStt(CLOSE_STREAM.into())]);
        assert_eq!(l.on_tick(11_000), []);
        // STT never confirms: the run finishes anyway.
        let actions = l.on_tick(16_000);
        assert_eq!(actions[0], Action::CloseStt);
        assert!(matches!(actions[1], Action::Finish(_)));
        assert_eq!(actions[2], Action::Close);
    }

    #[test]
    fn an_stt_failure_ends_the_run_as_unknown() {
        let mut l = listening(Purpose::Learn);
        l.on_twilio(inbound(1));
        l.on_stt(SttEvent::Final { start_ms: 0, end_ms: 20, text: "Hello?".into() });
        let actions = l.on_stt(SttEvent::Error { message: "NET-0001".into() });
        assert_eq!(actions.last(), Some(&Action::Close));
        let out = outcome(actions);
        assert_eq!(out.verdict.classification, Learned::Unknown);
        assert_eq!(out.verdict.evidence.reasons, ["speech-to-text failed"]);
        assert_eq!(l.on_twilio(inbound(2)), []);
        assert_eq!(l.on_stt_failed(), []);
        // STT that never opens fails the same way.
        let mut l = Listener::new(Deepgram::default());
        l.on_twilio(start());
        l.on_authenticated(Purpose::Learn);
        assert_eq!(l.on_tick(0), []);
        assert_eq!(outcome(l.on_tick(5000)).verdict.classification, Learned::Unknown);
    }

    /// A learning run that heard only an announcement (the rules' `unknown`), its stream stopped and STT closed.
    fn announcement_only(judge: bool) -> (Listener<Deepgram>, Vec<Action>) {
        let mut l = listening(Purpose::Learn).with_judge(judge);
        feed(&mut l, 1, 300);
        let text = "Thank you for calling Birch Street Medical. Our office is closed. Goodbye.";
        l.on_stt(SttEvent::Final { start_ms: 700, end_ms: 5000, text: text.into() });
        assert_eq!(l.on_twilio(Message::Stop), [Action::SendStt(CLOSE_STREAM.into())]);
        let actions = l.on_stt(SttEvent::Closed);
        (l, actions)
    }

    fn judged(classification: Learned, confidence: f32) -> Judged {
        Judged { classification, confidence, reason: "a recording that hangs up".into() }
    }

    #[test]
    fn what_the_rules_leave_unknown_goes_to_the_judge_and_its_verdict_is_recorded() {
        let (mut l, actions) = announcement_only(true);
        let [Action::CloseStt, Action::Judge(timeline)] = &actions[..] else { panic!("{actions:?}") };
        assert_eq!(timeline.duration_ms, 6000);
        assert_eq!(classify(timeline).classification, Learned::Unknown);
        // Twilio's socket and the clock change nothing while the judge thinks.
        assert_eq!(l.on_twilio(inbound(301)), []);
        assert_eq!(l.on_closed(), []);
        assert_eq!(l.on_tick(0), []);
        assert_eq!(l.on_tick(JUDGE_TIMEOUT_MS - 1), []);
        let actions = l.on_judged(Some(judged(Learned::IvrOnly, 0.95)));
        assert_eq!(actions.last(), Some(&Action::Close));
        let out = outcome(actions);
        assert_eq!(out.verdict.classification, Learned::IvrOnly);
        assert_eq!(out.verdict.confidence, 0.75, "never above the rules' middle ground");
        assert!(out.verdict.evidence.reasons.contains(&"judge: a recording that hangs up".to_owned()));
        assert_eq!(out.timeline, **timeline);
        assert!(l.is_done());
        assert_eq!(l.on_judged(Some(judged(Learned::Human, 1.0))), [], "one answer");
        assert_eq!(l.on_tick(JUDGE_TIMEOUT_MS * 2), []);
    }

    #[test]
    fn a_failing_or_silent_judge_leaves_the_rules_unknown() {
        let (mut l, _) = announcement_only(true);
        let out = outcome(l.on_judged(None));
        assert_eq!(out.verdict.classification, Learned::Unknown);
        assert_eq!(out.verdict.evidence.reasons.last().map(String::as_str), Some("the judge gave no answer"));
        // No answer within the timeout: the same.
        let (mut l, _) = announcement_only(true);
        assert_eq!(l.on_tick(1000), []);
        let actions = l.on_tick(1000 + JUDGE_TIMEOUT_MS);
        assert_eq!(actions.last(), Some(&Action::Close));
        assert_eq!(outcome(actions).verdict.classification, Learned::Unknown);
        assert_eq!(l.on_judged(Some(judged(Learned::IvrOnly, 0.9))), [], "too late");
    }

    #[test]
    fn the_judge_is_asked_only_about_a_learning_run_the_rules_left_unknown_with_words() {
        // No judge configured: the rules' unknown at once.
        let (_, actions) = announcement_only(false);
        assert!(matches!(&actions[..], [Action::CloseStt, Action::Finish(_), Action::Close]), "{actions:?}");
        // A verdict the rules reached.
        let mut l = listening(Purpose::Learn).with_judge(true);
        feed(&mut l, 1, 100);
        l.on_stt(SttEvent::Final { start_ms: 0, end_ms: 1500, text: "Hi, this is Amy, how can I help you?".into() });
        l.on_twilio(Message::Stop);
        assert_eq!(outcome(l.on_stt(SttEvent::Closed)).verdict.classification, Learned::Human);
        // Nothing heard: nothing to judge.
        let mut l = listening(Purpose::Learn).with_judge(true);
        feed(&mut l, 1, 100);
        l.on_twilio(Message::Stop);
        assert_eq!(outcome(l.on_stt(SttEvent::Closed)).verdict.classification, Learned::Unknown);
        // A verify run cut short, and a failed STT: the rules' unknown stands.
        let mut l = listening(Purpose::Verify(expected())).with_judge(true);
        feed(&mut l, 1, 250);
        let prompt = "thank you for calling sunrise dental for appointments press one for billing press two";
        assert_eq!(l.on_stt(SttEvent::Final { start_ms: 300, end_ms: 4800, text: prompt.into() }), []);
        l.on_twilio(Message::Stop);
        assert_eq!(outcome(l.on_stt(SttEvent::Closed)).verdict.classification, Learned::Unknown);
        let mut l = listening(Purpose::Learn).with_judge(true);
        feed(&mut l, 1, 100);
        l.on_stt(SttEvent::Final { start_ms: 0, end_ms: 900, text: "Our office is closed. Goodbye.".into() });
        assert_eq!(outcome(l.on_stt(SttEvent::Error { message: "x".into() })).verdict.classification, Learned::Unknown);
    }

    fn expected() -> Expected {
        Expected {
            classification: ClassificationType::IvrThenHuman,
            evidence: Evidence {
                prompts: vec![
                    "Thank you for calling Sunrise Dental. For appointments, press 1. For billing, press 2.".into()
                ],
                ..Evidence::default()
            },
            ivr_actions: vec![
                IvrAction { action: IvrActionKind::Dtmf, value: "1".into(), timing_ms: 5000 },
                IvrAction { action: IvrActionKind::Wait, value: String::new(), timing_ms: 3000 },
            ],
        }
    }

    /// Feeds inbound frames from chunk `from` through `to` and returns the actions.
    fn feed(l: &mut Listener<Deepgram>, from: u64, to: u64) -> Vec<Action> {
        (from..=to).flat_map(|n| l.on_twilio(inbound(n))).filter(|a| !matches!(a, Action::ForwardAudio(_))).collect()
    }

    #[test]
    fn a_verify_run_that_hears_the_same_menu_stops_early() {
        assert_eq!(expected().replay_end_ms(), 8100);
        let mut l = listening(Purpose::Verify(expected()));
        assert_eq!(feed(&mut l, 1, 250), []);
        let prompt = "thank you for calling sunrise dental for appointments press one for billing press two";
        assert_eq!(l.on_stt(SttEvent::Final { start_ms: 300, end_ms: 4800, text: prompt.into() }), []);
        assert_eq!(
            l.on_stt(SttEvent::Final { start_ms: 8300, end_ms: 9500, text: "Front desk, this is Amy.".into() }),
            []
        );
        // Judged once the replay (8.1 s), the tail (6 s) and the grace (1.5 s) were heard: 15.6 s, frame 781.
        assert_eq!(feed(&mut l, 251, 779), []);
        assert_eq!(feed(&mut l, 780, 780), [Action::SendStt(CLOSE_STREAM.into())]);
        assert_eq!(feed(&mut l, 781, 800), []);
        let out = outcome(l.on_stt(SttEvent::Closed));
        assert_eq!(out.verdict.classification, Learned::IvrThenHuman);
        assert_eq!(out.verdict.ivr_actions, expected().ivr_actions);
        assert_eq!(out.bytes_forwarded, 780 * 160);
    }

    #[test]
    fn a_verify_run_that_hears_a_change_invalidates_and_learns() {
        let mut l = listening(Purpose::Verify(expected()));
        feed(&mut l, 1, 300);
        let changed = l.on_stt(SttEvent::Final {
            start_ms: 300,
            end_ms: 4800,
            text: "Thank you for calling Sunrise Dental. For billing, press 1. For appointments, press 3.".into(),
        });
        assert!(
            matches!(&changed[..], [Action::Invalidate { reason }] if reason.contains("is now key")),
            "{changed:?}"
        );
        // It goes on listening past the verify window, as a learning run.
        assert_eq!(feed(&mut l, 301, 1500), []);
        l.on_stt(SttEvent::Final {
            start_ms: 20_000,
            end_ms: 22_000,
            text: "Hi, this is Amy, how can I help you?".into(),
        });
        assert_eq!(l.on_twilio(Message::Stop), [Action::SendStt(CLOSE_STREAM.into())]);
        let out = outcome(l.on_stt(SttEvent::Closed));
        assert_eq!(out.verdict.classification, Learned::IvrThenHuman);
        assert_eq!(out.verdict.ivr_actions.last().map(|a| a.timing_ms), Some(20_000));
    }

    #[test]
    fn a_verify_run_cut_short_proves_nothing() {
        let mut l = listening(Purpose::Verify(expected()));
        feed(&mut l, 1, 100);
        l.on_twilio(Message::Stop);
        let out = outcome(l.on_stt(SttEvent::Closed));
        assert_eq!(out.verdict.classification, Learned::Unknown);
    }
}
