//! TwiML: parsing a `<Response>` into verbs and executing them on nominal time.

use std::future::Future;

use serde_json::{json, Value};

use super::sip::{self, SipUri, MAX_HEADER_PART};
use super::TwilioError;
use crate::clinic::Track;
use crate::clock::NominalClock;

/// Nominal speaking rate of `<Say>`.
pub const SAY_MS_PER_CHAR: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `length` as written; validated when executed, like Twilio.
    Pause {
        length: Option<String>,
    },
    Play {
        digits: Option<String>,
        url: Option<String>,
    },
    Say {
        text: String,
    },
    /// The first `<Sip>` noun (Twilio rings several at once; the sandbox dials one).
    Dial {
        sip: Option<String>,
        number: Option<String>,
    },
    /// `<Start><Stream>`: forks the call's audio to a WebSocket while the next verbs run.
    Start {
        stream: StreamSpec,
    },
    /// `<Stop><Stream name>`: ends the named stream (every stream when unnamed).
    StopStream {
        name: Option<String>,
    },
    Hangup,
    Reject,
    /// Valid TwiML the sandbox records but does not simulate (Gather, Record, Start...).
    NotSimulated {
        name: String,
    },
    Unknown {
        name: String,
    },
}

/// A `<Stream>` noun as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamSpec {
    pub url: String,
    pub name: Option<String>,
    /// `inbound_track` (the default), `outbound_track` or `both_tracks`.
    pub track: String,
    /// The `<Parameter name value>`s, for the `start` message's `customParameters`.
    pub parameters: std::collections::BTreeMap<String, String>,
}

impl StreamSpec {
    /// The media tracks the stream carries, or None for a `track` Twilio refuses.
    pub fn tracks(&self) -> Option<&'static [Track]> {
        match self.track.as_str() {
            "inbound_track" => Some(&[Track::Inbound]),
            "outbound_track" => Some(&[Track::Outbound]),
            "both_tracks" => Some(&[Track::Inbound, Track::Outbound]),
            _ => None,
        }
    }
}

/// The first child element named `name`.
fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn stream_spec(stream: roxmltree::Node) -> StreamSpec {
    let parameters = stream
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Parameter")
        .filter_map(|p| Some((p.attribute("name")?.to_string(), p.attribute("value").unwrap_or_default().to_string())))
        .collect();
    StreamSpec {
        url: stream.attribute("url").unwrap_or_default().trim().to_string(),
        name: stream.attribute("name").map(str::to_string),
        track: stream.attribute("track").unwrap_or("inbound_track").to_string(),
        parameters,
    }
}

const NOT_SIMULATED: &[&str] = &[
    "Gather", "Record", "Redirect", "Start", "Stop", "Connect", "Enqueue", "Leave", "Refer", "Pay", "Prompt", "Echo",
    "Sms",
];

/// Parses a TwiML document. A document Twilio could not read is error 12100.
pub fn parse(doc: &str) -> Result<Vec<Verb>, TwilioError> {
    let xml =
        roxmltree::Document::parse(doc).map_err(|e| TwilioError::new(12100, format!("Document parse failure: {e}")))?;
    let root = xml.root_element();
    if root.tag_name().name() != "Response" {
        return Err(TwilioError::new(12100, "Document parse failure: the root element must be <Response>"));
    }
    Ok(root.children().filter(|n| n.is_element()).map(verb).collect())
}

fn verb(node: roxmltree::Node) -> Verb {
    let text = || node.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect::<String>();
    match node.tag_name().name() {
        "Pause" => Verb::Pause { length: node.attribute("length").map(str::to_string) },
        "Play" => Verb::Play {
            digits: node.attribute("digits").map(str::to_string),
            url: Some(text().trim().to_string()).filter(|u| !u.is_empty()),
        },
        "Say" => Verb::Say { text: text().trim().to_string() },
        "Dial" => {
            let child_text = |name: &str| {
                node.children()
                    .find(|c| c.is_element() && c.tag_name().name() == name)
                    .map(|c| c.text().unwrap_or_default().trim().to_string())
            };
            let bare = node.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect::<String>();
            let number = child_text("Number").or(Some(bare.trim().to_string()).filter(|n| !n.is_empty()));
            Verb::Dial { sip: child_text("Sip"), number }
        }
        "Start" if child(node, "Stream").is_some() => {
            Verb::Start { stream: stream_spec(child(node, "Stream").expect("checked")) }
        }
        "Stop" if child(node, "Stream").is_some() => {
            Verb::StopStream { name: child(node, "Stream").and_then(|s| s.attribute("name")).map(str::to_string) }
        }
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject,
        name if NOT_SIMULATED.contains(&name) => Verb::NotSimulated { name: name.to_string() },
        name => Verb::Unknown { name: name.to_string() },
    }
}

/// Nominal duration of DTMF digits, or the first character Twilio rejects.
pub fn digits_ms(digits: &str) -> Result<u64, char> {
    digits.chars().try_fold(0, |total, c| match c {
        'w' => Ok(total + 500),
        'W' => Ok(total + 1000),
        '0'..='9' | '*' | '#' | 'A'..='D' => Ok(total + 100),
        other => Err(other),
    })
}

/// What the executor needs from the call it runs in.
pub trait CallHost {
    fn record_verb(&mut self, entry: Value);
    fn record_error(&mut self, error: Value);
    /// Bridges the call to `sip` and returns when that conversation ended,
    /// having advanced `clock` by its nominal length.
    fn dial(&mut self, sip: SipUri, clock: &mut NominalClock) -> impl Future<Output = ()> + Send;
    /// `<Play digits>` starts playing `digits` into the call at `at_ms`.
    fn play_digits(&mut self, digits: &str, at_ms: u64);
    /// `<Start><Stream>` at `at_ms`: the stream runs beside the rest of the call.
    fn start_stream(&mut self, stream: StreamSpec, at_ms: u64);
    /// `<Stop><Stream>` at `at_ms`.
    fn stop_stream(&mut self, name: Option<&str>, at_ms: u64);
}

/// Runs `verbs` in order until the document ends or a verb hangs up.
pub async fn execute<H: CallHost + Send>(verbs: &[Verb], clock: &mut NominalClock, host: &mut H) {
    for verb in verbs {
        let at = clock.elapsed_ms();
        let error = |host: &mut H, name: &str, e: TwilioError| host.record_error(e.record(Some(name), Some(at)));
        match verb {
            Verb::Pause { length } => {
                let raw = length.as_deref().unwrap_or("1");
                match raw.trim().parse::<u64>() {
                    Ok(secs) if secs > 0 => {
                        host.record_verb(json!({ "verb": "Pause", "length": secs, "at_ms": at }));
                        clock.advance(secs * 1000).await;
                    }
                    _ => error(
                        host,
                        "Pause",
                        TwilioError::new(13910, format!("Pause: invalid length {raw:?}, must be a positive integer")),
                    ),
                }
            }
            Verb::Play { digits: Some(digits), .. } => match digits_ms(digits) {
                Ok(ms) => {
                    host.record_verb(json!({ "verb": "Play", "digits": digits, "at_ms": at }));
                    host.play_digits(digits, at);
                    clock.advance(ms).await;
                }
                Err(c) => error(host, "Play", TwilioError::new(13430, format!("Play: invalid DTMF character {c:?}"))),
            },
            Verb::Play { digits: None, url } => {
                host.record_verb(json!({ "verb": "Play", "url": url, "simulated": false, "at_ms": at }));
            }
            Verb::Say { text } => {
                host.record_verb(json!({ "verb": "Say", "text": text, "at_ms": at }));
                clock.advance(text.chars().count() as u64 * SAY_MS_PER_CHAR).await;
            }
            Verb::Dial { sip: Some(raw), .. } => match sip::parse(raw) {
                Ok(sip) => {
                    if sip.header_part_len >= MAX_HEADER_PART {
                        let w = TwilioError::new(21227, "Dial->Sip: the SIP header part is 1,024 characters or more");
                        error(host, "Dial", w);
                    }
                    host.record_verb(json!({ "verb": "Dial", "sip": sip, "at_ms": at }));
                    host.dial(sip, clock).await;
                }
                Err(e) => error(host, "Dial", e),
            },
            Verb::Dial { sip: None, number } => {
                host.record_verb(json!({ "verb": "Dial", "number": number, "simulated": false, "at_ms": at }));
            }
            Verb::Start { stream } => {
                if !stream.url.starts_with("ws://") && !stream.url.starts_with("wss://") {
                    let e = TwilioError::new(
                        31920,
                        format!("Stream: url must be an absolute ws(s) URL, got {:?}", stream.url),
                    );
                    error(host, "Start", e);
                } else if stream.tracks().is_none() {
                    let e = TwilioError::new(31941, format!("Stream: invalid track {:?}", stream.track));
                    error(host, "Start", e);
                } else {
                    host.record_verb(json!({ "verb": "Start", "stream": stream, "at_ms": at }));
                    host.start_stream(stream.clone(), at);
                }
            }
            Verb::StopStream { name } => {
                host.record_verb(json!({ "verb": "Stop", "stream": name, "at_ms": at }));
                host.stop_stream(name.as_deref(), at);
            }
            Verb::Hangup | Verb::Reject => {
                let name = if *verb == Verb::Hangup { "Hangup" } else { "Reject" };
                host.record_verb(json!({ "verb": name, "at_ms": at }));
                return;
            }
            Verb::NotSimulated { name } => {
                host.record_verb(json!({ "verb": name, "simulated": false, "at_ms": at }));
            }
            Verb::Unknown { name } => {
                error(host, name, TwilioError::new(12200, format!("Schema validation warning: unknown verb <{name}>")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records everything; a dial "talks" for 20 nominal seconds.
    #[derive(Default)]
    struct TestHost {
        verbs: Vec<Value>,
        errors: Vec<Value>,
        dialed: Vec<SipUri>,
        digits: Vec<(String, u64)>,
        streams: Vec<(StreamSpec, u64)>,
        stopped: Vec<(Option<String>, u64)>,
    }

    impl CallHost for TestHost {
        fn record_verb(&mut self, entry: Value) {
            self.verbs.push(entry);
        }
        fn record_error(&mut self, error: Value) {
            self.errors.push(error);
        }
        async fn dial(&mut self, sip: SipUri, clock: &mut NominalClock) {
            self.dialed.push(sip);
            clock.advance(20_000).await;
        }
        fn play_digits(&mut self, digits: &str, at_ms: u64) {
            self.digits.push((digits.to_string(), at_ms));
        }
        fn start_stream(&mut self, stream: StreamSpec, at_ms: u64) {
            self.streams.push((stream, at_ms));
        }
        fn stop_stream(&mut self, name: Option<&str>, at_ms: u64) {
            self.stopped.push((name.map(str::to_string), at_ms));
        }
    }

    async fn run(doc: &str) -> (TestHost, u64) {
        let verbs = parse(doc).expect("valid TwiML");
        let mut clock = NominalClock::new(0.0);
        let mut host = TestHost::default();
        execute(&verbs, &mut clock, &mut host).await;
        (host, clock.elapsed_ms())
    }

    fn at(v: &Value) -> u64 {
        v["at_ms"].as_u64().expect("at_ms")
    }

    #[tokio::test]
    async fn pause_then_digits_timing() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="2"/><Play digits="ww1"/><Say>Hi</Say><Dial><Sip>sip:a@sip.vapi.ai?X-pendingcallid=p1&amp;X-b=2</Sip></Dial></Response>"#;
        let (host, end) = run(doc).await;
        let names: Vec<&str> = host.verbs.iter().map(|v| v["verb"].as_str().unwrap()).collect();
        assert_eq!(names, ["Pause", "Play", "Say", "Dial"]);
        assert_eq!(host.verbs.iter().map(at).collect::<Vec<_>>(), [0, 2000, 3100, 3220]);
        assert_eq!(host.verbs[0]["length"], 2);
        assert_eq!(host.verbs[1]["digits"], "ww1");
        assert_eq!(host.verbs[3]["sip"]["headers"]["X-pendingcallid"], "p1");
        assert_eq!(host.dialed[0].headers.len(), 2);
        assert_eq!(end, 23_220);
        assert!(host.errors.is_empty());
    }

    #[tokio::test]
    async fn streams_start_and_stop_beside_the_call() {
        let doc = r#"<Response><Start><Stream url="ws://127.0.0.1:9/twilio/stream" name="learn" track="both_tracks"><Parameter name="session" value="s-1"/><Parameter name="token" value="t&amp;1"/></Stream></Start><Play digits="w1"/><Dial><Sip>sip:a@h?X-pendingcallid=p</Sip></Dial><Stop><Stream name="learn"/></Stop></Response>"#;
        let (host, end) = run(doc).await;
        let (stream, at) = &host.streams[0];
        assert_eq!(*at, 0);
        assert_eq!(stream.url, "ws://127.0.0.1:9/twilio/stream");
        assert_eq!(stream.name.as_deref(), Some("learn"));
        assert_eq!(stream.tracks(), Some(&[Track::Inbound, Track::Outbound][..]));
        assert_eq!(stream.parameters.get("token").map(String::as_str), Some("t&1"));
        assert_eq!(host.verbs[0]["stream"]["parameters"], json!({"session": "s-1", "token": "t&1"}));
        assert_eq!(host.digits, [("w1".to_string(), 0)]);
        assert_eq!(host.stopped, [(Some("learn".to_string()), 600 + 20_000)]);
        assert_eq!(end, 20_600);
        assert!(host.errors.is_empty());

        let (host, _) = run(r#"<Response><Start><Stream url="/relative"/></Start><Start><Stream url="ws://h/s" track="sideways"/></Start><Start><Siprec/></Start></Response>"#).await;
        let codes: Vec<&Value> = host.errors.iter().map(|e| &e["code"]).collect();
        assert_eq!(codes, [31920, 31941]);
        assert!(host.streams.is_empty());
        assert_eq!(host.verbs[0], json!({"verb": "Start", "simulated": false, "at_ms": 0}));
        let default = parse(r#"<Response><Start><Stream url="ws://h/s"/></Start></Response>"#).unwrap();
        let Verb::Start { stream } = &default[0] else { panic!("{default:?}") };
        assert_eq!(stream.tracks(), Some(&[Track::Inbound][..]));
    }

    #[test]
    fn digit_durations() {
        assert_eq!(digits_ms("ww1"), Ok(1100));
        assert_eq!(digits_ms("1W#*"), Ok(1300));
        assert_eq!(digits_ms(""), Ok(0));
        assert_eq!(digits_ms("12x"), Err('x'));
    }

    #[tokio::test]
    async fn invalid_pause_is_recorded_and_skipped() {
        let (host, end) =
            run(r#"<Response><Pause length="0"/><Pause length="1.5"/><Pause/><Say>ok</Say></Response>"#).await;
        assert_eq!(host.errors.len(), 2);
        assert!(host.errors.iter().all(|e| e["code"] == 13910));
        assert_eq!(host.verbs[0], json!({"verb": "Pause", "length": 1, "at_ms": 0}), "default length is 1");
        assert_eq!(at(&host.verbs[1]), 1000);
        assert_eq!(end, 1120);
    }

    #[tokio::test]
    async fn bad_sip_headers_are_not_dialled() {
        let (host, _) = run(r#"<Response><Dial><Sip>sip:a@h?pendingcallid=1</Sip></Dial><Dial><Sip>sip:a@h?X-Twilio-x=1</Sip></Dial></Response>"#).await;
        assert!(host.dialed.is_empty());
        let codes: Vec<&Value> = host.errors.iter().map(|e| &e["code"]).collect();
        assert_eq!(codes, [13252, 32113]);
    }

    #[tokio::test]
    async fn hangup_stops_and_unknown_verbs_are_errors() {
        let (host, _) = run("<Response><Bogus/><Gather/><Hangup/><Say>never</Say></Response>").await;
        assert_eq!(host.errors[0]["code"], 12200);
        let names: Vec<&str> = host.verbs.iter().map(|v| v["verb"].as_str().unwrap()).collect();
        assert_eq!(names, ["Gather", "Hangup"]);
    }

    #[tokio::test]
    async fn long_header_part_warns_but_dials() {
        let doc = format!("<Response><Dial><Sip>sip:a@h?X-a={}</Sip></Dial></Response>", "v".repeat(1100));
        let (host, _) = run(&doc).await;
        assert_eq!(host.dialed.len(), 1);
        assert_eq!(host.errors[0]["code"], 21227);
        assert_eq!(host.errors[0]["level"], "warning");
    }

    #[test]
    fn documents_twilio_cannot_read() {
        assert_eq!(parse("<Response><Pause>").unwrap_err().code, 12100);
        assert_eq!(parse("<Foo/>").unwrap_err().code, 12100);
        assert_eq!(parse("<Response/>").unwrap(), vec![]);
    }
}
