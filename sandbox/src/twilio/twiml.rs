//! TwiML: parsing a `<Response>` into verbs and executing them on nominal time.

use std::future::Future;

use serde_json::{json, Value};

use super::sip::{self, SipUri, MAX_HEADER_PART};
use super::TwilioError;
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
