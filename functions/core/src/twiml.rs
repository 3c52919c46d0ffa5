//! The TwiML that plays a call: replay what we know of the phone menu, then hand over to VAPI.
//!
//! The document is sent inline with the create-call request (`Twiml`), not served from a URL: the
//! call's script is fixed when it is dialled, Twilio needs no second round trip to us before the
//! callee hears anything, and there is no extra public endpoint to authenticate. The price is
//! Twilio's 4,000-character limit, which bounds a replay to roughly 80 menu steps; a longer one
//! is refused here, before anything is dialled.

use crate::classification::{Classification, ClassificationType, IvrAction, IvrActionKind};
use crate::xml::escape;

/// Twilio's limit for an inline `Twiml` parameter.
pub const MAX_INLINE_TWIML: usize = 4000;

/// How long one key's tone of `<Play digits>` lasts. Twilio documents no figure; 100 ms is a usual DTMF
/// tone and the sandbox's. The replay counts it, so the keys after the first do not drift late.
pub const KEY_TONE_MS: u64 = 100;

/// One TwiML verb of the replay, in the units Twilio takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `<Pause length="N">`: N is always at least 1 (Twilio rejects 0 with error 13910).
    Pause(u32),
    /// `<Play digits="...">`: each `w` waits half a second.
    Digits(String),
    /// `<Say>`.
    Say(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    #[error("IVR step {index}: DTMF may contain only 0-9, *, # and w, and not be empty")]
    BadDigits { index: usize },
    #[error("IVR step {index}: speech needs text")]
    EmptySpeech { index: usize },
    #[error("IVR step {index}: speech may not contain control characters")]
    ControlInSpeech { index: usize },
    #[error("the call's TwiML is {length} characters; Twilio accepts at most {MAX_INLINE_TWIML} inline")]
    TooLong { length: usize },
}

/// The steps replaying `actions`, each preceded by the wait its `timing_ms` asks for.
///
/// Waits are scheduled against the recording's absolute timeline, so rounding never accumulates:
/// before a key press the gap is cut into whole-second `<Pause>`s plus a leading `w` (half a
/// second), landing the press within 250 ms of its recorded moment; speech and plain waits round
/// to the nearest second. Adjacent pauses are merged.
pub fn replay_steps(actions: &[IvrAction]) -> Result<Vec<Step>, TwimlError> {
    let mut steps: Vec<Step> = Vec::with_capacity(actions.len() * 2);
    let (mut recorded_ms, mut emitted_ms) = (0u64, 0u64);
    for (index, action) in actions.iter().enumerate() {
        recorded_ms += u64::from(action.timing_ms);
        let gap_ms = recorded_ms.saturating_sub(emitted_ms);
        match action.action {
            IvrActionKind::Dtmf => {
                let valid = !action.value.is_empty()
                    && action.value.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'w'));
                if !valid {
                    return Err(TwimlError::BadDigits { index });
                }
                let halves = (gap_ms + 250) / 500;
                push_pause(&mut steps, halves / 2);
                let lead = if halves % 2 == 1 { "w" } else { "" };
                steps.push(Step::Digits(format!("{lead}{}", action.value)));
                let tones = action.value.bytes().filter(|b| *b != b'w').count() as u64 * KEY_TONE_MS;
                let waits = action.value.bytes().filter(|b| *b == b'w').count() as u64 * 500;
                emitted_ms += halves * 500 + tones + waits;
            }
            IvrActionKind::Speech => {
                if action.value.trim().is_empty() {
                    return Err(TwimlError::EmptySpeech { index });
                }
                if !action.speech_is_clean() {
                    return Err(TwimlError::ControlInSpeech { index });
                }
                emitted_ms += push_pause(&mut steps, (gap_ms + 500) / 1000) * 1000;
                steps.push(Step::Say(action.value.clone()));
            }
            IvrActionKind::Wait => emitted_ms += push_pause(&mut steps, (gap_ms + 500) / 1000) * 1000,
        }
    }
    Ok(steps)
}

/// Appends a pause of `seconds` (merged into a preceding one; nothing for zero) and returns it.
fn push_pause(steps: &mut Vec<Step>, seconds: u64) -> u64 {
    if seconds == 0 {
        return 0;
    }
    let whole = u32::try_from(seconds).unwrap_or(u32::MAX);
    match steps.last_mut() {
        Some(Step::Pause(previous)) => *previous = previous.saturating_add(whole),
        _ => steps.push(Step::Pause(whole)),
    }
    seconds
}

/// A fork of the call's audio to our listener (`<Start><Stream>`): both tracks, the callee's to be
/// transcribed and ours for the keys pressed. A stream URL takes no query string, so the session and its
/// single-use token travel as `<Parameter>`s, which Twilio hands over only in the stream's `start` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFork<'a> {
    pub url: &'a str,
    pub session: &'a str,
    pub token: &'a str,
}

/// The whole document for one call. `human` and unknown phone systems are dialled at once; menus
/// are replayed first. With a `fork`, the audio is streamed to the listener from the first moment
/// (a learning call hears the whole menu; a replay is checked against what was learned).
pub fn call_twiml(
    classification: Option<&Classification>,
    sip_uri: &str,
    fork: Option<&StreamFork>,
) -> Result<String, TwimlError> {
    let steps = match classification {
        Some(c) if c.classification_type != ClassificationType::Human => replay_steps(&c.ivr_actions)?,
        _ => Vec::new(),
    };
    let mut doc = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
    if let Some(fork) = fork {
        doc.push_str(&format!(
            concat!(
                r#"<Start><Stream url="{}" name="listener" track="both_tracks">"#,
                r#"<Parameter name="session" value="{}"/><Parameter name="token" value="{}"/></Stream></Start>"#
            ),
            escape(fork.url),
            escape(fork.session),
            escape(fork.token)
        ));
    }
    for step in &steps {
        match step {
            Step::Pause(seconds) => doc.push_str(&format!(r#"<Pause length="{seconds}"/>"#)),
            Step::Digits(digits) => doc.push_str(&format!(r#"<Play digits="{}"/>"#, escape(digits))),
            Step::Say(text) => doc.push_str(&format!("<Say>{}</Say>", escape(text))),
        }
    }
    doc.push_str(&format!("<Dial><Sip>{}</Sip></Dial></Response>", escape(sip_uri)));
    if doc.len() > MAX_INLINE_TWIML {
        return Err(TwimlError::TooLong { length: doc.len() });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn act(action: IvrActionKind, value: &str, timing_ms: u32) -> IvrAction {
        IvrAction { action, value: value.into(), timing_ms }
    }

    fn classified(kind: ClassificationType, actions: Vec<IvrAction>) -> Classification {
        Classification { id: Uuid::nil(), classification_type: kind, ivr_actions: actions }
    }

    const URI: &str = "sip:outcall@sip.vapi.ai?X-pendingcallid=6f9619ff-8b86-d011-b42d-00c04fc964ff";

    #[test]
    fn unknown_and_human_systems_dial_at_once() {
        let expected =
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Sip>{URI}</Sip></Dial></Response>"#);
        assert_eq!(call_twiml(None, URI, None).unwrap(), expected);
        // A human classification never replays, even if actions were stored.
        let human = classified(ClassificationType::Human, vec![act(IvrActionKind::Dtmf, "1", 1000)]);
        assert_eq!(call_twiml(Some(&human), URI, None).unwrap(), expected);
    }

    #[test]
    fn menus_are_replayed_at_their_timing_then_dialled() {
        let ivr = classified(
            ClassificationType::IvrThenHuman,
            vec![
                act(IvrActionKind::Wait, "", 1200),
                act(IvrActionKind::Dtmf, "2", 2500),
                act(IvrActionKind::Speech, "appointments & scheduling", 1000),
                act(IvrActionKind::Dtmf, "1#", 300),
            ],
        );
        let twiml = call_twiml(Some(&ivr), URI, None).unwrap();
        assert_eq!(
            twiml,
            format!(
                concat!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
                    r#"<Pause length="3"/><Play digits="w2"/>"#,
                    r#"<Pause length="1"/><Say>appointments &amp; scheduling</Say>"#,
                    r#"<Play digits="w1#"/>"#,
                    "<Dial><Sip>{}</Sip></Dial></Response>"
                ),
                URI
            )
        );
    }

    #[test]
    fn a_fork_streams_both_tracks_from_the_start_with_the_session_as_parameters() {
        let fork = StreamFork { url: "wss://calls.example.com/twilio/stream", session: "s-1", token: "t&k" };
        let twiml = call_twiml(None, URI, Some(&fork)).unwrap();
        assert_eq!(
            twiml,
            format!(
                concat!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
                    r#"<Start><Stream url="wss://calls.example.com/twilio/stream" name="listener" track="both_tracks">"#,
                    r#"<Parameter name="session" value="s-1"/><Parameter name="token" value="t&amp;k"/></Stream></Start>"#,
                    "<Dial><Sip>{}</Sip></Dial></Response>"
                ),
                URI
            )
        );
        // A replay is forked too, before its first pause, so the listener hears the menu it navigates.
        let ivr = classified(ClassificationType::IvrOnly, vec![act(IvrActionKind::Dtmf, "1", 3000)]);
        let replay = call_twiml(Some(&ivr), URI, Some(&fork)).unwrap();
        let (start, pause) = (replay.find("<Start>").unwrap(), replay.find("<Pause").unwrap());
        assert!(start < pause, "{replay}");
    }

    #[test]
    fn never_emits_a_zero_pause() {
        let steps = replay_steps(&[
            act(IvrActionKind::Wait, "", 0),
            act(IvrActionKind::Wait, "", 499),
            act(IvrActionKind::Dtmf, "1", 200),
            act(IvrActionKind::Speech, "hi", 0),
        ])
        .unwrap();
        // 699 ms in all before the key: half a second of `w` is the nearest, and no Pause at all.
        assert_eq!(steps, vec![Step::Digits("w1".into()), Step::Say("hi".into())]);
    }

    #[test]
    fn dtmf_half_seconds_round_up_to_a_whole_pause() {
        let steps = replay_steps(&[act(IvrActionKind::Dtmf, "9", 1800)]).unwrap();
        assert_eq!(steps, vec![Step::Pause(2), Step::Digits("9".into())]);
    }

    #[test]
    fn rejects_bad_steps_with_their_index() {
        assert_eq!(
            replay_steps(&[act(IvrActionKind::Wait, "", 1), act(IvrActionKind::Dtmf, "1a", 0)]),
            Err(TwimlError::BadDigits { index: 1 })
        );
        assert_eq!(replay_steps(&[act(IvrActionKind::Dtmf, "", 0)]), Err(TwimlError::BadDigits { index: 0 }));
        assert_eq!(replay_steps(&[act(IvrActionKind::Speech, "  ", 0)]), Err(TwimlError::EmptySpeech { index: 0 }));
        for control in ["press\u{0}1", "line\nbreak", "tab\there", "bell\u{7}", "del\u{7f}", "c1\u{85}x"] {
            assert_eq!(
                replay_steps(&[act(IvrActionKind::Wait, "", 1), act(IvrActionKind::Speech, control, 0)]),
                Err(TwimlError::ControlInSpeech { index: 1 }),
                "{control:?}"
            );
        }
        // Other text, accents and all, is spoken as given (escaped for XML).
        assert!(replay_steps(&[act(IvrActionKind::Speech, "rendez-vous, s'il vous plaît <3", 0)]).is_ok());
    }

    #[test]
    fn refuses_a_document_over_twilios_inline_limit() {
        let long = classified(ClassificationType::IvrOnly, vec![act(IvrActionKind::Speech, &"x".repeat(4000), 0)]);
        assert!(matches!(call_twiml(Some(&long), URI, None), Err(TwimlError::TooLong { .. })));
    }

    proptest! {
        /// The replay lands every key press within 250 ms of when the recording says it happened.
        #[test]
        /// (Presses are at least a tone apart, as any two keys heard are.)
        fn dtmf_replay_keeps_recorded_timing(timings in proptest::collection::vec(KEY_TONE_MS as u32..20_000, 1..12)) {
            let actions: Vec<IvrAction> = timings.iter().map(|t| act(IvrActionKind::Dtmf, "1", *t)).collect();
            let steps = replay_steps(&actions).unwrap();
            let mut elapsed: i64 = 0;
            let mut recorded: i64 = 0;
            let mut presses = 0;
            for step in &steps {
                match step {
                    Step::Pause(s) => { prop_assert!(*s > 0); elapsed += i64::from(*s) * 1000; }
                    Step::Digits(d) => {
                        elapsed += d.bytes().filter(|b| *b == b'w').count() as i64 * 500;
                        recorded += i64::from(timings[presses]);
                        presses += 1;
                        prop_assert!((elapsed - recorded).abs() <= 250, "press {} at {} vs {}", presses, elapsed, recorded);
                        // (the key's own tone is heard before the next step)
                        elapsed += d.bytes().filter(|b| *b != b'w').count() as i64 * KEY_TONE_MS as i64;
                    }
                    Step::Say(_) => unreachable!(),
                }
            }
            prop_assert_eq!(presses, timings.len());
        }
    }
}
