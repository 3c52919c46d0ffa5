//! Where a call goes in a phone system: the walk through its tree on the call's nominal clock
//! (ms since the answer), given the keys pressed so far. Pure: the same tree and keys give the
//! same walk, so the audio, the VAPI stand-in and the call record all agree on it.

use serde::Serialize;

use super::tree::{HoldSound, Node, NodeKind, PhoneSystem};
use crate::voice;

/// Silence before each utterance (a node's first words too) and before the voicemail beep: longer
/// than the 600 ms the STT stand-in needs to end an utterance.
pub const GAP_MS: u64 = 700;
/// A key ends a menu; what follows starts this much later.
pub const REACTION_MS: u64 = 300;
pub const BEEP_MS: u64 = 500;
pub const INVALID_PROMPT: &str = "sorry, that is not a valid option.";

/// Something the clinic plays (or, on the outbound track, what the call plays into it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sound {
    Speech(String),
    Hold(HoldSound, u64),
    Beep,
    /// DTMF tones as `<Play digits>` plays them (`w` = 500 ms of silence).
    Keys(String),
}

/// A sound from `start_ms`, cut at `end_ms` (a key may interrupt a prompt).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub sound: Sound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// A `<Play digits>` (or `SendDigits`) of the call's TwiML.
    Twiml,
    /// The VAPI stand-in's DTMF tool.
    Vapi,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub digit: char,
    pub at_ms: u64,
    pub source: KeySource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Chose a menu option.
    Selected,
    /// A key the menu does not offer: "not a valid option", then the menu again.
    Invalid,
    /// Pressed outside a menu (or while it was reacting to a key).
    Ignored,
}

/// A key and what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyOutcome {
    pub digit: char,
    pub at_ms: u64,
    pub source: KeySource,
    /// The node that heard it.
    pub node: String,
    pub effect: Effect,
    /// The natural end of the menu prompt playing (or just played) when the key came.
    pub prompt_end_ms: Option<u64>,
}

/// Arriving at a node (a menu played again is visited again).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    pub node: String,
    pub kind: NodeKind,
    pub at_ms: u64,
    /// When its words end if nothing interrupts them (menus, announcements, greetings).
    pub prompt_end_ms: Option<u64>,
}

/// One utterance as played.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompt {
    pub node: String,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// A key stopped it before its end.
    pub cut: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Walk {
    pub segments: Vec<Segment>,
    pub visits: Vec<Visit>,
    pub prompts: Vec<Prompt>,
    /// Outcomes of the keys up to `exact_until_ms`, in order.
    pub keys: Vec<KeyOutcome>,
    /// The walk is what happens before this time (`u64::MAX` once the call settled at a final node).
    pub exact_until_ms: u64,
}

impl Walk {
    /// The visit under way at `at_ms`, and the time of the next one if the walk knows it.
    pub fn visit_at(&self, at_ms: u64) -> Option<(&Visit, Option<u64>)> {
        let i = self.visits.iter().rposition(|v| v.at_ms <= at_ms)?;
        Some((&self.visits[i], self.visits.get(i + 1).map(|v| v.at_ms)))
    }

    /// The first final node (person, voicemail, automated) the walk reached.
    pub fn settled(&self) -> Option<&Visit> {
        self.visits.iter().find(|v| v.kind.is_final())
    }
}

enum Step {
    Go(String),
    /// At a final node, or the walk reached `until`.
    Stop,
}

struct Walker<'a> {
    keys: &'a [Key],
    next_key: usize,
    t: u64,
    until: u64,
    out: Walk,
}

/// Walks `system` with `keys` (sorted by time) until at least `until_ms` and the last key.
pub fn walk(system: &PhoneSystem, keys: &[Key], until_ms: u64) -> Walk {
    let until = keys.iter().map(|k| k.at_ms + 1).fold(until_ms.max(1), u64::max);
    let mut w = Walker { keys, next_key: 0, t: 0, until, out: Walk::default() };
    let mut id = system.start.clone();
    w.out.exact_until_ms = u64::MAX;
    while let Some(node) = system.nodes.get(&id) {
        if w.t >= w.until {
            w.out.exact_until_ms = w.t;
            break;
        }
        match w.node(&id, node) {
            Step::Go(next) => id = next,
            Step::Stop => break,
        }
    }
    w.out
}

impl Walker<'_> {
    fn visit(&mut self, node: &str, kind: NodeKind) -> usize {
        self.out.visits.push(Visit { node: node.to_string(), kind, at_ms: self.t, prompt_end_ms: None });
        self.out.visits.len() - 1
    }

    /// Each utterance after a gap of silence; `t` ends at the last one's end.
    fn speak(&mut self, node: &str, utterances: &[String]) {
        for text in utterances {
            self.t += GAP_MS;
            let end = self.t + voice::speech_ms(text);
            self.out.segments.push(Segment { start_ms: self.t, end_ms: end, sound: Sound::Speech(text.clone()) });
            self.out.prompts.push(Prompt {
                node: node.to_string(),
                text: text.clone(),
                start_ms: self.t,
                end_ms: end,
                cut: false,
            });
            self.t = end;
        }
    }

    /// Keys before `before` that no menu took.
    fn ignore_keys(&mut self, node: &str, before: u64) {
        while let Some(key) = self.keys.get(self.next_key).filter(|k| k.at_ms < before) {
            self.out.keys.push(outcome(key, node, Effect::Ignored, None));
            self.next_key += 1;
        }
    }

    fn node(&mut self, id: &str, node: &Node) -> Step {
        let visit = self.visit(id, node.kind());
        match node {
            Node::Menu { prompt, options, timeout_ms, repeats, otherwise } => {
                let mut timeouts = 0;
                let mut visit = visit;
                loop {
                    self.speak(id, prompt);
                    let prompt_end = self.t;
                    self.out.visits[visit].prompt_end_ms = Some(prompt_end);
                    let window_end = prompt_end + timeout_ms;
                    let key = self.keys.get(self.next_key).filter(|k| k.at_ms < window_end).cloned();
                    match key {
                        Some(key) => {
                            self.next_key += 1;
                            self.cut(key.at_ms);
                            self.t = key.at_ms + REACTION_MS;
                            let chosen = options.get(&key.digit);
                            let effect = if chosen.is_some() { Effect::Selected } else { Effect::Invalid };
                            self.out.keys.push(outcome(&key, id, effect, Some(prompt_end)));
                            if let Some(next) = chosen {
                                self.ignore_keys(id, self.t);
                                return Step::Go(next.clone());
                            }
                            self.speak(id, &[INVALID_PROMPT.to_string()]);
                            self.ignore_keys(id, self.t);
                        }
                        None => {
                            self.t = window_end;
                            timeouts += 1;
                            if timeouts >= *repeats {
                                if let Some(next) = otherwise {
                                    return Step::Go(next.clone());
                                }
                            }
                        }
                    }
                    if self.t >= self.until {
                        self.out.exact_until_ms = self.t;
                        return Step::Stop;
                    }
                    visit = self.visit(id, NodeKind::Menu);
                }
            }
            Node::Say { prompt, next } => {
                self.speak(id, prompt);
                self.out.visits[visit].prompt_end_ms = Some(self.t);
                self.ignore_keys(id, self.t);
                Step::Go(next.clone())
            }
            Node::Hold { ms, sound, next } => {
                let end = self.t + ms;
                self.out.segments.push(Segment { start_ms: self.t, end_ms: end, sound: Sound::Hold(*sound, *ms) });
                self.t = end;
                self.ignore_keys(id, self.t);
                Step::Go(next.clone())
            }
            Node::Person { prompt, .. } | Node::Automated { prompt } | Node::Voicemail { prompt } => {
                self.speak(id, prompt);
                self.out.visits[visit].prompt_end_ms = Some(self.t);
                if matches!(node, Node::Voicemail { .. }) {
                    let start = self.t + GAP_MS;
                    self.out.segments.push(Segment { start_ms: start, end_ms: start + BEEP_MS, sound: Sound::Beep });
                    self.t = start + BEEP_MS;
                }
                // The call stays here: every later key is ignored.
                self.ignore_keys(id, u64::MAX);
                Step::Stop
            }
        }
    }

    /// A key at `at` stops whatever the menu was saying; what had not started yet is never heard.
    fn cut(&mut self, at: u64) {
        self.out.segments.retain(|s| s.start_ms < at);
        if let Some(last) = self.out.segments.last_mut() {
            last.end_ms = last.end_ms.min(at);
        }
        self.out.prompts.retain(|p| p.start_ms < at);
        if let Some(last) = self.out.prompts.last_mut() {
            if last.end_ms > at {
                last.end_ms = at;
                last.cut = true;
            }
        }
    }
}

fn outcome(key: &Key, node: &str, effect: Effect, prompt_end_ms: Option<u64>) -> KeyOutcome {
    KeyOutcome { digit: key.digit, at_ms: key.at_ms, source: key.source, node: node.to_string(), effect, prompt_end_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn system() -> PhoneSystem {
        serde_json::from_value(json!({
            "name": "t", "start": "main", "target": "desk",
            "nodes": {
                "main": {"type": "menu", "prompt": ["hello.", "for appointments press 1."],
                         "options": {"1": "wait", "2": "billing"}, "timeout_ms": 2000, "repeats": 2,
                         "otherwise": "billing"},
                "wait": {"type": "hold", "ms": 1000, "sound": "ring", "next": "desk"},
                "desk": {"type": "person", "prompt": ["desk."]},
                "billing": {"type": "person", "prompt": ["billing."]}
            }
        }))
        .unwrap()
    }

    fn key(digit: char, at_ms: u64) -> Key {
        Key { digit, at_ms, source: KeySource::Twiml }
    }

    fn nodes(walk: &Walk) -> Vec<(&str, u64)> {
        walk.visits.iter().map(|v| (v.node.as_str(), v.at_ms)).collect()
    }

    const HELLO_END: u64 = GAP_MS + 6 * 60;
    const MENU_END: u64 = HELLO_END + GAP_MS + 25 * 60;

    #[test]
    fn a_key_after_the_prompt_leads_on() {
        let walk = walk(&system(), &[key('1', MENU_END + 300)], 60_000);
        let wait_at = MENU_END + 300 + REACTION_MS;
        assert_eq!(nodes(&walk), [("main", 0), ("wait", wait_at), ("desk", wait_at + 1000)]);
        assert_eq!(walk.visits[0].prompt_end_ms, Some(MENU_END));
        assert_eq!(walk.keys[0].effect, Effect::Selected);
        assert_eq!(walk.keys[0].prompt_end_ms, Some(MENU_END));
        assert_eq!(walk.exact_until_ms, u64::MAX, "settled at a person");
        let greeting = walk.prompts.last().unwrap();
        assert_eq!((greeting.text.as_str(), greeting.start_ms), ("desk.", wait_at + 1000 + GAP_MS));
        assert!(walk.prompts.iter().all(|p| !p.cut));
    }

    #[test]
    fn a_key_during_the_prompt_cuts_it() {
        let at = HELLO_END + GAP_MS + 100;
        let walk = walk(&system(), &[key('2', at), key('1', at + 50)], 60_000);
        assert_eq!(nodes(&walk)[1], ("billing", at + REACTION_MS));
        let menu = &walk.prompts[1];
        assert_eq!((menu.end_ms, menu.cut), (at, true));
        assert_eq!(walk.segments[1].end_ms, at);
        assert_eq!(walk.keys[1].effect, Effect::Ignored, "the second key came while the menu was reacting");
    }

    #[test]
    fn no_key_repeats_then_otherwise() {
        let walk = walk(&system(), &[], 60_000);
        let second = MENU_END + 2000;
        assert_eq!(nodes(&walk), [("main", 0), ("main", second), ("billing", second + MENU_END + 2000)]);
    }

    #[test]
    fn an_unknown_key_is_invalid_and_the_menu_plays_again() {
        let at = MENU_END + 100;
        let again = at + REACTION_MS + GAP_MS + voice::speech_ms(INVALID_PROMPT);
        let walk = walk(&system(), &[key('9', at), key('1', again + 1000)], 60_000);
        assert_eq!(walk.keys[0].effect, Effect::Invalid);
        let sorry = walk.prompts.iter().find(|p| p.text == INVALID_PROMPT).unwrap();
        assert_eq!((sorry.start_ms, sorry.end_ms), (at + REACTION_MS + GAP_MS, again));
        assert_eq!(nodes(&walk)[1], ("main", again));
        assert_eq!(walk.keys[1].effect, Effect::Selected);
    }

    #[test]
    fn an_endless_menu_stops_at_until() {
        let mut tree = system();
        if let Some(Node::Menu { otherwise, .. }) = tree.nodes.get_mut("main") {
            *otherwise = None;
        }
        let walk = walk(&tree, &[], 30_000);
        assert!(walk.exact_until_ms >= 30_000 && walk.exact_until_ms < u64::MAX);
        assert!(walk.visits.iter().all(|v| v.node == "main"));
        let (visit, next) = walk.visit_at(MENU_END + 2500).unwrap();
        assert_eq!((visit.at_ms, next), (MENU_END + 2000, Some(2 * (MENU_END + 2000))));
    }
}
