//! What a learning call heard, judged: `human`, `ivr_only`, `ivr_then_human`, `voicemail` or `unknown`, the
//! keys that reach a person with their timing for the replay, and the prompts as the menu's fingerprint.
//!
//! Rules, not phrase lists alone: each transcript segment is scored for menu, voicemail, transfer/hold,
//! announcement and live-person phrasing, then the call is read as a whole. Talk that runs straight into a
//! menu or a voicemail greeting (gaps under [`MONOLOGUE_GAP_MS`], no key between) is one recording, however
//! human it sounds; a person is someone who speaks after the last recording. "Not available" alone is no
//! voicemail (a receptionist says it); an invitation to record is. A transfer or hold that reaches no one
//! proves nothing (`unknown`). Hold music then a person is `ivr_then_human` with one wait up to the person's
//! first word, so that VAPI is connected when someone can hear it (a hold shorter than [`HOLD_MIN_MS`] is just
//! `human`). What the rules leave `unknown` may go to an optional [`Judge`].

use super::timeline::{Timeline, TimelineEvent};
use crate::classification::{ClassificationType, IvrAction, IvrActionKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// At or above this a verdict is worth caching.
pub const CONFIDENT: f32 = 0.7;
/// Segments closer than this (with no key between) are one speaker's continuous talk.
pub const MONOLOGUE_GAP_MS: u32 = 1500;
/// A weak human-sounding opening this close to a menu or voicemail greeting is part of it.
pub const OPENING_GAP_MS: u32 = 4000;
/// A person who speaks first after at least this long on hold is reached by waiting (`ivr_then_human`).
pub const HOLD_MIN_MS: u32 = 5000;
/// A replayed key is pressed this long after the end of the prompt that offered it (if it was that late).
pub const KEY_AFTER_PROMPT_MS: u32 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learned {
    Human,
    IvrOnly,
    IvrThenHuman,
    Voicemail,
    Unknown,
}

impl Learned {
    /// The classification to cache, if this is one (voicemail and unknown never are).
    pub fn cached(self) -> Option<ClassificationType> {
        match self {
            Learned::Human => Some(ClassificationType::Human),
            Learned::IvrOnly => Some(ClassificationType::IvrOnly),
            Learned::IvrThenHuman => Some(ClassificationType::IvrThenHuman),
            Learned::Voicemail | Learned::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The recorded prompts heard before a person (or to the end), as transcribed.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// The prompts normalized, joined by " | ".
    #[serde(default)]
    pub fingerprint: String,
    #[serde(default)]
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub classification: Learned,
    pub confidence: f32,
    pub ivr_actions: Vec<IvrAction>,
    pub evidence: Evidence,
}

impl Verdict {
    pub fn unknown(reason: &str) -> Self {
        Verdict {
            classification: Learned::Unknown,
            confidence: 0.0,
            ivr_actions: Vec::new(),
            evidence: Evidence { reasons: vec![reason.to_owned()], ..Evidence::default() },
        }
    }
}

// ------------------------------------------------------------------------------------------------ text

/// Lowercase letters and digits, apostrophes dropped (`he's` → `hes`), everything else a single space.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !matches!(c, '\'' | '’') && !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// The key a word names, if any (`3`, `three`, `tres`, `pound`…).
fn key_of(word: &str) -> Option<char> {
    const NAMES: [(&str, char); 23] = [
        ("zero", '0'),
        ("one", '1'),
        ("two", '2'),
        ("three", '3'),
        ("four", '4'),
        ("five", '5'),
        ("six", '6'),
        ("seven", '7'),
        ("eight", '8'),
        ("nine", '9'),
        ("cero", '0'),
        ("uno", '1'),
        ("dos", '2'),
        ("tres", '3'),
        ("cuatro", '4'),
        ("cinco", '5'),
        ("seis", '6'),
        ("siete", '7'),
        ("ocho", '8'),
        ("nueve", '9'),
        ("pound", '#'),
        ("hash", '#'),
        ("star", '*'),
    ];
    let mut chars = word.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() => Some(c),
        _ => NAMES.iter().find(|(name, _)| *name == word).map(|(_, k)| *k),
    }
}

const PRESS: [&str; 8] = ["press", "oprima", "marque", "presione", "pulse", "dial", "enter", "push"];

/// The key after a press verb at `i` (skipping Spanish articles and "number": `oprima el dos`).
fn pressed_key(words: &[&str], i: usize) -> Option<(char, usize)> {
    if !PRESS.contains(&words[i]) {
        return None;
    }
    let mut j = i + 1;
    while j < words.len() && matches!(words[j], "el" | "la" | "number") {
        j += 1;
    }
    key_of(words.get(j)?).map(|k| (k, j))
}

/// Occurrences of `phrase` (space-separated words) in `words`.
fn count(words: &[&str], phrase: &str) -> u32 {
    let phrase: Vec<&str> = phrase.split(' ').collect();
    words.windows(phrase.len()).filter(|w| *w == phrase.as_slice()).count() as u32
}

fn score(words: &[&str], table: &[(&str, u32)]) -> u32 {
    table.iter().map(|(phrase, weight)| count(words, phrase) * weight).sum()
}

const MENU: &[(&str, u32)] = &[
    ("say or press", 3),
    ("para espanol", 3),
    ("para español", 3),
    ("en español", 2),
    ("en espanol", 2),
    ("for english", 3),
    ("for spanish", 2),
    ("main menu", 2),
    ("menu options", 3),
    ("options have changed", 3),
    ("listen carefully", 2),
    ("dial by name", 2),
    ("directory", 1),
    ("extension", 1),
    ("at any time", 1),
    ("to repeat", 2),
    ("please select", 2),
    ("not a valid", 3),
    ("invalid", 2),
    ("didnt understand", 2),
    ("followed by the pound", 3),
    ("opción", 2),
    ("opcion", 2),
];
const VOICEMAIL_STRONG: &[(&str, u32)] = &[
    ("after the tone", 3),
    ("after the beep", 3),
    ("at the tone", 3),
    ("at the beep", 3),
    ("record your message", 3),
    ("leave your message", 3),
    ("leave a detailed message", 3),
    ("leave your name", 3),
    ("finished recording", 3),
    ("deje su mensaje", 3),
    ("deje un mensaje", 3),
    ("despues del tono", 3),
    ("después del tono", 3),
    ("voicemail", 2),
    ("voice mail", 2),
    ("mailbox", 2),
    ("away from my desk", 2),
    ("leave a message", 2),
    ("leave us a message", 2),
];
const VOICEMAIL_WEAK: &[(&str, u32)] = &[
    ("take your call", 1),
    ("come to the phone", 1),
    ("get to the phone", 1),
    ("not available", 1),
    ("unavailable", 1),
    ("return your call", 1),
    ("get back to you", 1),
    ("call you back", 1),
    ("as soon as possible", 1),
    ("no disponible", 1),
    ("out of the office", 1),
];
const TRANSFER: &[(&str, u32)] = &[
    ("please hold", 2),
    ("hold while", 2),
    ("connect you", 2),
    ("connecting you", 2),
    ("transfer", 2),
    ("transferring", 2),
    ("transferred", 2),
    ("please wait while", 2),
    ("stay on the line", 2),
    ("next available", 2),
    ("your call is important", 2),
    ("currently assisting other", 2),
    ("estimated wait time", 2),
    ("in the order", 2),
    ("por favor espere", 2),
    ("transfiriendo", 2),
    ("one moment", 1),
    ("please wait", 1),
    ("espere", 1),
    ("thank you for holding", 1),
    ("thank you for waiting", 1),
];
const ANNOUNCEMENT: &[(&str, u32)] = &[
    ("if this is a medical emergency", 3),
    ("if this is an emergency", 3),
    ("hang up and dial", 3),
    ("please hang up", 3),
    ("monitored or recorded", 3),
    ("may be recorded", 3),
    ("quality assurance", 3),
    ("training purposes", 3),
    ("es una emergencia", 3),
    ("cuelgue", 2),
    ("office hours", 2),
    ("our hours are", 2),
    ("business hours", 2),
    ("monday through friday", 2),
    ("visit our website", 2),
    ("www", 2),
    ("com", 1),
    ("located at", 2),
    ("our office is closed", 3),
    ("office is currently closed", 3),
    ("we are closed", 2),
    ("our offices are closed", 3),
    ("thank you for calling", 1),
    ("thank you for choosing", 2),
    ("welcome to", 2),
    ("gracias por llamar", 1),
    ("bienvenido", 2),
    ("for more information", 1),
    ("not in service", 3),
    ("number you have dialed", 3),
    ("you have reached", 1),
    ("youve reached", 1),
    ("were sorry", 2),
    ("goodbye", 1),
    ("no one is available", 2),
];
const HUMAN: &[(&str, u32)] = &[
    ("how can i help", 3),
    ("how may i help", 3),
    ("how can i assist", 3),
    ("how may i assist", 3),
    ("what can i do for you", 3),
    ("whos calling", 3),
    ("who is calling", 3),
    ("whos this", 3),
    ("may i ask who", 3),
    ("can i ask who", 3),
    ("what is this regarding", 3),
    ("whats this regarding", 3),
    ("what is this about", 3),
    ("whats this about", 3),
    ("en que le puedo ayudar", 3),
    ("en que puedo ayudarle", 3),
    ("can i take a message", 3),
    ("take a message", 2),
    ("speaking", 2),
    ("let me", 2),
    ("one sec", 2),
    ("one second", 2),
    ("can you hold", 2),
    ("wrong number", 2),
    ("at lunch", 2),
    ("with a patient", 2),
    ("stepped out", 2),
    ("would you like", 2),
    ("do you want", 2),
    ("bueno", 2),
    ("digame", 2),
    ("dígame", 2),
    ("hold on", 1),
    ("give me a", 1),
    ("sorry", 1),
    ("hes", 1),
    ("shes", 1),
    ("he is", 1),
    ("she is", 1),
    ("uh", 1),
    ("um", 1),
    ("yeah", 1),
    ("yep", 1),
    ("okay", 1),
    ("ok", 1),
    ("sure", 1),
    ("can you", 1),
    ("could you", 1),
    ("are you", 1),
    ("this is", 1),
    ("habla", 1),
    ("hello", 1),
    ("i can", 1),
    ("ill", 1),
    ("i think", 1),
    ("actually", 1),
];

/// What a segment sounds like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Menu,
    Voicemail,
    Transfer,
    Announcement,
    Human,
    Neutral,
}

impl Label {
    fn recorded(self) -> bool {
        matches!(self, Label::Menu | Label::Voicemail | Label::Announcement | Label::Transfer)
    }
}

/// A segment's label and how strongly its words say so.
fn label(text: &str) -> (Label, u32) {
    let norm = normalize(text);
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    let presses = (0..words.len()).filter(|i| pressed_key(&words, *i).is_some()).count() as u32;
    let menu = score(&words, MENU) + 3 * presses;
    let vm_strong = score(&words, VOICEMAIL_STRONG);
    let voicemail = vm_strong + score(&words, VOICEMAIL_WEAK);
    let transfer = score(&words, TRANSFER);
    let mut announcement = score(&words, ANNOUNCEMENT);
    let mut human = score(&words, HUMAN);
    if words.first().is_some_and(|w| matches!(*w, "hello" | "hi" | "hey" | "yes" | "yeah" | "hola" | "bueno")) {
        human += 1;
    }
    if text.contains('?') {
        human += 1;
    }
    let recorded = menu + voicemail + transfer + announcement;
    if !words.is_empty() && words.len() <= 4 && recorded == 0 {
        human += 1;
    }
    // Long talk with no cue at all is more likely read out than said.
    if words.len() >= 15 && human < 2 && menu + voicemail + transfer == 0 {
        announcement += 1;
    }
    // A voicemail needs an invitation to record, or several hints: "not available" alone is a reply.
    let voicemail = if vm_strong == 0 && voicemail < 2 { 0 } else { voicemail };
    // Ties go to the first: a menu is a menu, whoever seems to speak it.
    let candidates = [
        (Label::Menu, menu),
        (Label::Voicemail, voicemail),
        (Label::Human, human),
        (Label::Transfer, transfer),
        (Label::Announcement, announcement),
    ];
    let (label, best) = candidates.iter().fold((Label::Neutral, 0), |a, b| if b.1 > a.1 { *b } else { a });
    (label, best)
}

// ------------------------------------------------------------------------------------------------ segments

#[derive(Debug, Clone)]
struct Segment<'a> {
    start: u32,
    end: u32,
    text: &'a str,
    label: Label,
    strength: u32,
}

/// The speech segments, labelled and read in blocks of continuous talk (see the module doc).
fn segments(t: &Timeline) -> Vec<Segment<'_>> {
    let mut segs: Vec<Segment> = t
        .events
        .iter()
        .filter_map(|e| match e {
            TimelineEvent::Speech { start_ms, end_ms, text } => {
                let (label, strength) = label(text);
                Some(Segment { start: *start_ms, end: (*end_ms).max(*start_ms), text, label, strength })
            }
            _ => None,
        })
        .collect();
    let keys: Vec<u32> = key_presses(t).iter().map(|(at, _)| *at).collect();
    let mut from = 0;
    while from < segs.len() {
        let mut to = from + 1;
        while to < segs.len()
            && segs[to].start <= segs[to - 1].end.saturating_add(MONOLOGUE_GAP_MS)
            && !keys.iter().any(|k| (segs[to - 1].end..segs[to].start).contains(k))
        {
            to += 1;
        }
        let block = &mut segs[from..to];
        let recording = block.iter().any(|s| {
            matches!(s.label, Label::Menu | Label::Voicemail) || (s.label == Label::Announcement && s.strength >= 3)
        });
        let person = block.iter().any(|s| s.label == Label::Human && s.strength >= 2);
        for s in block.iter_mut() {
            if recording && matches!(s.label, Label::Human | Label::Neutral) {
                s.label = Label::Announcement;
            } else if !recording
                && person
                && matches!(s.label, Label::Announcement | Label::Transfer)
                && s.strength <= 1
            {
                s.label = Label::Human;
            }
        }
        from = to;
    }
    // A weak human-sounding opening ("Hello, and thank you for calling…") followed, with nothing pressed, by a
    // menu or a voicemail greeting was the recording's: a person does not hand over to a recording unasked.
    for i in (0..segs.len()).rev() {
        if segs[i].label != Label::Human || segs[i].strength > 2 {
            continue;
        }
        let Some(next) = segs[i + 1..].iter().find(|s| s.label != Label::Neutral) else { continue };
        let quiet = next.start <= segs[i].end.saturating_add(OPENING_GAP_MS);
        let pressed = keys.iter().any(|k| (segs[i].end..next.start).contains(k));
        if matches!(next.label, Label::Menu | Label::Voicemail) && quiet && !pressed {
            segs[i].label = Label::Announcement;
        }
    }
    segs
}

fn key_presses(t: &Timeline) -> Vec<(u32, &str)> {
    t.events
        .iter()
        .filter_map(|e| match e {
            TimelineEvent::Key { at_ms, digits } if !digits.is_empty() => Some((*at_ms, digits.as_str())),
            _ => None,
        })
        .collect()
}

/// Voice-like sound (music on hold) the STT heard before `until`, away from any words.
fn sound_without_words(t: &Timeline, segs: &[Segment], until: u32) -> bool {
    t.events.iter().any(|e| match e {
        TimelineEvent::SpeechStarted { at_ms } => {
            at_ms.saturating_add(1000) < until
                && !segs.iter().any(|s| at_ms.saturating_add(1000) >= s.start && *at_ms <= s.end)
        }
        _ => false,
    })
}

// ------------------------------------------------------------------------------------------------ classify

/// Classifies one learning call.
pub fn classify(t: &Timeline) -> Verdict {
    let segs = segments(t);
    let keys = key_presses(t);
    let Some(first) = segs.iter().find(|s| s.label != Label::Neutral) else {
        let reason = if segs.is_empty() { "no words were heard" } else { "nothing intelligible was heard" };
        return Verdict::unknown(reason);
    };
    let mut reasons = Vec::new();
    let humans = segs.iter().filter(|s| s.label == Label::Human).count();
    let after_first = segs.iter().skip_while(|s| s.start <= first.start).find(|s| s.label != Label::Neutral);
    if let Some(greeting) = after_first
        .filter(|s| first.label == Label::Human && humans == 1 && s.label == Label::Voicemail && s.strength >= 3)
    {
        // "Hello?" then a voicemail greeting and no one: the hello was the greeting's.
        reasons.push(format!("a voicemail greeting after a lone hello: \"{}\"", excerpt(greeting.text)));
        return verdict(Learned::Voicemail, 0.75, Vec::new(), &segs, u32::MAX, reasons);
    }
    if first.label == Label::Human {
        let held = first.start >= HOLD_MIN_MS && sound_without_words(t, &segs, first.start);
        reasons.push(format!("a person spoke first, at {}: \"{}\"", seconds(first.start), excerpt(first.text)));
        if held {
            reasons.push("after a hold (sound without words)".into());
            let actions = actions(&segs, &keys, Some(first.start));
            return verdict(Learned::IvrThenHuman, 0.8, actions, &segs, first.start, reasons);
        }
        let strength: u32 = segs.iter().filter(|s| s.label == Label::Human).map(|s| s.strength).sum();
        let confidence = if strength >= 3 { 0.9 } else { 0.75 };
        return verdict(Learned::Human, confidence, Vec::new(), &segs, 0, reasons);
    }
    let last_recording =
        segs.iter().rposition(|s| matches!(s.label, Label::Menu | Label::Voicemail | Label::Announcement));
    let person =
        segs.iter().enumerate().find(|(i, s)| s.label == Label::Human && last_recording.is_none_or(|l| *i > l));
    // "Sunrise Dental, please hold": a few words, then hold, then a person, and no recording at all: that
    // was the person (a replayed wait would not fit the next hold).
    if let (None, Some((_, person))) = (last_recording, person) {
        if first.label == Label::Transfer && first.text.split_whitespace().count() <= 5 {
            reasons.push(format!("a person put the call on hold: \"{}\"", excerpt(first.text)));
            reasons.push(format!("and came back at {}", seconds(person.start)));
            return verdict(Learned::Human, 0.75, Vec::new(), &segs, 0, reasons);
        }
    }
    let has_menu = segs.iter().any(|s| s.label == Label::Menu);
    if let Some(menu) = segs.iter().find(|s| s.label == Label::Menu) {
        reasons.push(format!("a menu: \"{}\"", excerpt(menu.text)));
    }
    if let Some((_, person)) = person {
        reasons.push(format!("then a person, at {}: \"{}\"", seconds(person.start), excerpt(person.text)));
        let confidence = if person.strength >= 2 { 0.9 } else { 0.75 };
        let actions = actions(&segs, &keys, Some(person.start));
        return verdict(Learned::IvrThenHuman, confidence, actions, &segs, person.start, reasons);
    }
    if let Some(greeting) = segs.iter().find(|s| s.label == Label::Voicemail) {
        reasons.push(format!("a voicemail greeting: \"{}\"", excerpt(greeting.text)));
        let confidence = if greeting.strength >= 3 { 0.9 } else { 0.75 };
        return verdict(Learned::Voicemail, confidence, Vec::new(), &segs, u32::MAX, reasons);
    }
    let last = segs.iter().rev().find(|s| s.label != Label::Neutral).map_or(Label::Neutral, |s| s.label);
    if last == Label::Transfer {
        reasons.push("a transfer or hold that reached no one".into());
        return verdict(Learned::Unknown, 0.0, Vec::new(), &segs, u32::MAX, reasons);
    }
    if has_menu || !keys.is_empty() {
        reasons.push("no person after the menu".into());
        let confidence = if has_menu && !keys.is_empty() { 0.85 } else { 0.7 };
        // The assistant is connected once the system has answered the last key (its next recording begins).
        let answered = effective_keys(&segs, &keys).last().and_then(|(at, _)| segs.iter().find(|s| s.start > *at));
        let actions = actions(&segs, &keys, answered.map(|s| s.start));
        return verdict(Learned::IvrOnly, confidence, actions, &segs, u32::MAX, reasons);
    }
    reasons.push("announcements only, no menu and no person".into());
    verdict(Learned::Unknown, 0.0, Vec::new(), &segs, u32::MAX, reasons)
}

fn verdict(
    classification: Learned,
    confidence: f32,
    ivr_actions: Vec<IvrAction>,
    segs: &[Segment],
    prompts_until: u32,
    reasons: Vec<String>,
) -> Verdict {
    // Each prompt once (a menu repeated after a refused key is the same menu), refusals left out.
    let mut prompts: Vec<String> = Vec::new();
    let mut heard: Vec<String> = Vec::new();
    if classification != Learned::Human {
        for s in segs.iter().filter(|s| s.label.recorded() && s.start < prompts_until) {
            let said = normalize(s.text);
            if !heard.contains(&said) && !KEY_REFUSED.iter().any(|cue| said.contains(cue)) {
                prompts.push(s.text.trim().to_owned());
                heard.push(said);
            }
        }
    }
    let fingerprint = heard.join(" | ");
    Verdict { classification, confidence, ivr_actions, evidence: Evidence { prompts, fingerprint, reasons } }
}

/// How soon after a key the system's answer to it begins (an error, the same menu again, or the next step).
const KEY_ANSWER_MS: u32 = 4000;

/// What a system says to a key it does not take.
const KEY_REFUSED: &[&str] = &[
    "not a valid",
    "invalid",
    "not understand",
    "didnt understand",
    "try again",
    "no es valida",
    "no es una opcion valida",
];

/// The keys that moved the system: a key answered by an error ("that is not a valid option") or by the same
/// prompt again changed nothing (a replay of a menu that has since changed, a slip) and is not on the path.
fn effective_keys<'a>(segs: &[Segment], keys: &[(u32, &'a str)]) -> Vec<(u32, &'a str)> {
    keys.iter()
        .copied()
        .filter(|(at, _)| {
            let offered = segs.iter().rfind(|s| s.end <= *at && s.label.recorded());
            let Some(answer) = segs.iter().find(|s| s.start > *at && s.start <= at.saturating_add(KEY_ANSWER_MS))
            else {
                return true;
            };
            let said = normalize(answer.text);
            let refused = KEY_REFUSED.iter().any(|cue| said.contains(cue));
            let repeated = offered.is_some_and(|o| normalize(o.text) == said);
            !(refused || repeated)
        })
        .collect()
}

/// One `dtmf` per key that moved the system (before `connect`), then a `wait` up to `connect`: the person,
/// or the recording that answered an automated system's last key. Each key is
/// timed from the previous key's press (the first from the stream's start) to just after the end of the
/// prompt that offered it, as first heard since that press (a menu repeated after a refused key counts from
/// its first hearing), never later than it was pressed: on a replay, each prompt starts that long after the
/// replayed key before it, so the key lands just after the prompt.
fn actions(segs: &[Segment], keys: &[(u32, &str)], connect: Option<u32>) -> Vec<IvrAction> {
    let mut out = Vec::new();
    let mut pressed = 0u32; // the previous key's press, as heard
    for (at, digits) in effective_keys(segs, keys).into_iter().filter(|(at, _)| connect.is_none_or(|c| *at < c)) {
        let since = |s: &&Segment| s.start >= pressed && s.label != Label::Human;
        let offering = segs.iter().filter(since).rfind(|s| s.end <= at);
        let first_hearing = offering
            .and_then(|o| segs.iter().filter(since).find(|s| normalize(s.text) == normalize(o.text)))
            .map(|s| s.end);
        // A key with no prompt since the previous one (the rest of an extension) keeps its distance to it.
        let when = first_hearing.map_or(at, |end| at.min(end.saturating_add(KEY_AFTER_PROMPT_MS)));
        out.push(IvrAction {
            action: IvrActionKind::Dtmf,
            value: digits.to_owned(),
            timing_ms: when.saturating_sub(pressed),
        });
        pressed = at;
    }
    if let Some(connect) = connect {
        out.push(IvrAction {
            action: IvrActionKind::Wait,
            value: String::new(),
            timing_ms: connect.saturating_sub(pressed),
        });
    }
    out
}

fn seconds(ms: u32) -> String {
    format!("{}.{} s", ms / 1000, ms % 1000 / 100)
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

// ------------------------------------------------------------------------------------------------ verify

/// What a replay's listener concludes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Nothing wrong yet, and not everything heard yet.
    Pending,
    /// Everything through the replay and its tail matched.
    Same,
    /// The phone system no longer answers as cached.
    Changed { reason: String },
}

/// Part of the gap a replay may leave before its person speaks: a person speaking earlier than
/// `replay_end_ms` by more than this answered before the menu was done.
pub const PERSON_SLACK_MS: u32 = 2000;
/// Below this share of its words found in a stored prompt, a heard prompt is a new one.
const MIN_SIMILARITY_PERCENT: usize = 50;

/// During the replay of a cached classification of `kind`: compares what `heard` holds (up to its
/// `duration_ms`) with the stored `expected` prompts, through `replay_end_ms + tail_ms`. Word overlap, tolerant
/// to STT noise; a key that moved to another option ("appointments" now 3, was 1) is a change.
pub fn verify(
    kind: ClassificationType,
    expected: &Evidence,
    heard: &Timeline,
    replay_end_ms: u32,
    tail_ms: u32,
) -> Check {
    let limit = replay_end_ms.saturating_add(tail_ms);
    let known_options = expected.prompts.iter().flat_map(|p| options(p)).fold(
        BTreeMap::<String, BTreeSet<char>>::new(),
        |mut map, (label, key)| {
            map.entry(label).or_default().insert(key);
            map
        },
    );
    // A recording that sounds like a person ("good morning, how may I direct your call?") is known by its
    // words: heard before the menu that follows it, it is still no person.
    let known = |text: &str| is_known_prompt(text, &expected.prompts);
    for s in segments(heard).iter().filter(|s| s.start < limit) {
        let changed = |reason: String| Check::Changed { reason };
        match (kind, s.label) {
            (ClassificationType::IvrOnly | ClassificationType::IvrThenHuman, Label::Human) if known(s.text) => {}
            (ClassificationType::IvrOnly, Label::Human) => {
                return changed(format!("a person answered where only a menu was known: \"{}\"", excerpt(s.text)))
            }
            (ClassificationType::IvrThenHuman, Label::Human)
                if s.start.saturating_add(PERSON_SLACK_MS) < replay_end_ms =>
            {
                return changed(format!("a person answered before the replay was done: \"{}\"", excerpt(s.text)))
            }
            (ClassificationType::Human, Label::Menu | Label::Voicemail) => {
                return changed(format!("a recording where a person was expected: \"{}\"", excerpt(s.text)))
            }
            (ClassificationType::IvrThenHuman, Label::Menu) if s.start >= replay_end_ms.saturating_add(1000) => {
                return changed(format!("a menu where a person was expected: \"{}\"", excerpt(s.text)))
            }
            (ClassificationType::IvrOnly | ClassificationType::IvrThenHuman, label) if label != Label::Human => {
                if kind == ClassificationType::IvrThenHuman && s.start >= replay_end_ms {
                    continue;
                }
                if let Some(reason) = new_prompt(s.text, &expected.prompts, &known_options) {
                    return changed(reason);
                }
            }
            _ => {}
        }
    }
    if heard.duration_ms >= limit {
        Check::Same
    } else {
        Check::Pending
    }
}

/// Why `text` is not one of the `prompts`, if it is not.
fn new_prompt(text: &str, prompts: &[String], known: &BTreeMap<String, BTreeSet<char>>) -> Option<String> {
    for (label, key) in options(text) {
        if let Some(keys) = known.get(&label).filter(|keys| !keys.contains(&key)) {
            let was: String = keys.iter().collect();
            return Some(format!("\"{label}\" is now key {key} (was {was})"));
        }
    }
    let words = comparable_words(text);
    if words.len() < 3 {
        return None;
    }
    (!resembles(&words, prompts)).then(|| format!("a prompt not heard before: \"{}\"", excerpt(text)))
}

/// Whether `text` is one of the `prompts` (as heard through STT's noise): at least three words, most of them in one.
fn is_known_prompt(text: &str, prompts: &[String]) -> bool {
    let words = comparable_words(text);
    words.len() >= 3 && resembles(&words, prompts)
}

fn resembles(words: &[String], prompts: &[String]) -> bool {
    let best = prompts
        .iter()
        .map(|p| {
            let known: BTreeSet<String> = comparable_words(p).into_iter().collect();
            words.iter().filter(|w| known.contains(*w)).count()
        })
        .max()
        .unwrap_or(0);
    best * 100 >= words.len() * MIN_SIMILARITY_PERCENT
}

/// Normalized words, number words as digits.
fn comparable_words(text: &str) -> Vec<String> {
    normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| key_of(w).map_or_else(|| w.to_owned(), String::from))
        .collect()
}

const FILLER: [&str; 16] = [
    "a", "an", "the", "to", "for", "with", "our", "your", "speak", "talk", "reach", "please", "now", "or", "para", "el",
];

/// The menu's options as (what, key): `for appointments press 1` and `press 1 for appointments` both give
/// ("appointments", '1').
fn options(text: &str) -> Vec<(String, char)> {
    let norm = normalize(text);
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    let presses: Vec<(usize, char, usize)> =
        (0..words.len()).filter_map(|i| pressed_key(&words, i).map(|(key, at)| (i, key, at))).collect();
    // One style per prompt, told by its last option: "... press 9 for X" names options after their key.
    let named_after = presses
        .last()
        .is_some_and(|(_, _, at)| words.get(at + 1).is_some_and(|w| matches!(*w, "for" | "to" | "para" | "if")));
    let mut out = Vec::new();
    for (i, key, at) in presses {
        let label = if named_after {
            words[at + 1..]
                .iter()
                .take_while(|w| !PRESS.contains(w))
                .find(|w| !FILLER.contains(w) && key_of(w).is_none())
        } else {
            words[..i].iter().rev().take_while(|w| key_of(w).is_none()).find(|w| !FILLER.contains(w))
        };
        if let Some(label) = label {
            out.push(((*label).to_owned(), key));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------ judge

/// What a judge made of a timeline the rules left `unknown`.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub classification: Learned,
    pub confidence: f32,
    pub reason: String,
}

/// An optional second opinion (a language model), as pure request building and answer parsing: the Worker
/// sends the request (off unless configured).
pub trait Judge {
    /// The request body.
    fn request(&self, timeline: &Timeline) -> Value;
    /// The answer, if it makes sense.
    fn parse(&self, body: &str) -> Option<Judged>;
}

/// An OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatJudge {
    pub model: String,
}

const JUDGE_PROMPT: &str = "You classify how a medical office's phone line answered an outbound call, from the \
transcript of the office's side (the caller's side is not transcribed). Answer only a JSON object \
{\"classification\": one of \"human\", \"ivr_only\", \"ivr_then_human\", \"voicemail\", \"unknown\", \
\"confidence\": 0 to 1, \"reason\": short}. human: a live person answered first. ivr_then_human: a recorded \
menu or hold, then a live person. ivr_only: recorded menus, no person. voicemail: a greeting inviting a \
recorded message. unknown: nothing proves any of these (e.g. hold that ended with no one).";

impl Judge for ChatJudge {
    fn request(&self, timeline: &Timeline) -> Value {
        let transcript: Vec<String> = timeline
            .events
            .iter()
            .filter_map(|e| match e {
                TimelineEvent::Speech { start_ms, text, .. } => {
                    Some(format!("[{}] office: {}", seconds(*start_ms), text))
                }
                TimelineEvent::Key { at_ms, digits } => {
                    Some(format!("[{}] caller pressed {}", seconds(*at_ms), digits))
                }
                TimelineEvent::Silence { start_ms, end_ms } => {
                    Some(format!("[{}] silence for {}", seconds(*start_ms), seconds(end_ms.saturating_sub(*start_ms))))
                }
                TimelineEvent::SpeechStarted { .. } => None,
            })
            .collect();
        json!({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": JUDGE_PROMPT},
                {"role": "user", "content": transcript.join("\n")},
            ],
        })
    }

    fn parse(&self, body: &str) -> Option<Judged> {
        let response: Value = serde_json::from_str(body).ok()?;
        let content: Value = serde_json::from_str(response.pointer("/choices/0/message/content")?.as_str()?).ok()?;
        let classification = serde_json::from_value(content.get("classification")?.clone()).ok()?;
        let confidence = content.get("confidence").and_then(Value::as_f64).filter(|c| c.is_finite())?.clamp(0.0, 1.0);
        let reason = content.get("reason").and_then(Value::as_str).unwrap_or_default().chars().take(200).collect();
        Some(Judged { classification, confidence: confidence as f32, reason })
    }
}

/// Below the rules: a judge's classification of a timeline the rules left `unknown` (any other verdict stands),
/// with the keys as the rules would replay them, and never more confident than the rules' own middle ground.
pub fn with_judgement(t: &Timeline, rules: Verdict, judged: Judged) -> Verdict {
    if rules.classification != Learned::Unknown {
        return rules;
    }
    let segs = segments(t);
    let keys = key_presses(t);
    let last_key = keys.last().map_or(0, |(at, _)| *at);
    let person = segs.iter().find(|s| s.start > last_key && s.label != Label::Neutral).map(|s| s.start);
    let actions = match judged.classification {
        Learned::IvrOnly => actions(&segs, &keys, None),
        Learned::IvrThenHuman if person.is_some() => actions(&segs, &keys, person),
        Learned::IvrThenHuman => return rules,
        _ => Vec::new(),
    };
    let mut reasons = rules.evidence.reasons;
    reasons.push(format!("judge: {}", judged.reason));
    let until = if judged.classification == Learned::IvrThenHuman { person.unwrap_or(u32::MAX) } else { u32::MAX };
    verdict(judged.classification, judged.confidence.min(0.75), actions, &segs, until, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any timeline (outside input, via STT) is classified and verified without a panic.
        #[test]
        fn never_panics(events in proptest::collection::vec((0u32..4, any::<u32>(), any::<u32>(), "\\PC{0,40}"), 0..12)) {
            let events = events.into_iter().map(|(kind, a, b, text)| match kind {
                0 => TimelineEvent::Speech { start_ms: a, end_ms: b, text },
                1 => TimelineEvent::SpeechStarted { at_ms: a },
                2 => TimelineEvent::Key { at_ms: a, digits: text.chars().take(3).collect() },
                _ => TimelineEvent::Silence { start_ms: a, end_ms: b },
            }).collect();
            let t = timeline(u32::MAX, events);
            let v = classify(&t);
            prop_assert!((0.0..=1.0).contains(&v.confidence));
            let _ = verify(ClassificationType::IvrThenHuman, &v.evidence, &t, u32::MAX, u32::MAX);
        }
    }

    fn speech(start_ms: u32, end_ms: u32, text: &str) -> TimelineEvent {
        TimelineEvent::Speech { start_ms, end_ms, text: text.into() }
    }

    fn key(at_ms: u32, digits: &str) -> TimelineEvent {
        TimelineEvent::Key { at_ms, digits: digits.into() }
    }

    fn timeline(duration_ms: u32, events: Vec<TimelineEvent>) -> Timeline {
        Timeline { duration_ms, events }
    }

    fn act(action: IvrActionKind, value: &str, timing_ms: u32) -> IvrAction {
        IvrAction { action, value: value.into(), timing_ms }
    }

    #[test]
    fn normalizes_for_fingerprints() {
        assert_eq!(
            normalize("  For Appointments, press 1!  He's  here… ¿Español? "),
            "for appointments press 1 hes here español"
        );
        assert_eq!(normalize("?!"), "");
        assert_eq!(
            options("For appointments, press 1. For billing, press two. Para español, oprima el tres."),
            [("appointments".to_owned(), '1'), ("billing".to_owned(), '2'), ("español".to_owned(), '3')]
        );
    }

    #[test]
    fn keys_a_changed_menu_refused_are_not_learned_and_the_right_one_counts_from_the_menus_first_hearing() {
        let menu = "For billing, press 4. For appointments, press 5.";
        let t = timeline(
            40_000,
            vec![
                speech(3900, 8400, menu),
                key(8600, "1"), // the old replay's keys, refused by the new menu
                speech(9200, 11_000, "Sorry, that is not a valid option."),
                speech(11_700, 16_200, menu),
                key(16_400, "2"),
                speech(17_000, 18_800, "Sorry, that is not a valid option."),
                speech(19_500, 24_000, menu),
                key(24_300, "5"), // the assistant's
                speech(24_900, 27_000, "Please hold while I connect you."),
                speech(31_000, 33_000, "Front desk, this is Maria, how can I help you?"),
            ],
        );
        let v = classify(&t);
        assert_eq!(v.classification, Learned::IvrThenHuman);
        // Key 5 just after the menu's first hearing (8.4 s); the person 6.7 s after the key.
        assert_eq!(v.ivr_actions, [act(IvrActionKind::Dtmf, "5", 8600), act(IvrActionKind::Wait, "", 6700)]);
        assert_eq!(v.evidence.prompts, [menu, "Please hold while I connect you."], "each prompt once, no refusals");
    }

    #[test]
    fn a_menu_then_a_person_replays_the_key_after_its_prompt_then_waits_for_the_person() {
        let t = timeline(
            30_000,
            vec![
                speech(500, 3000, "Thank you for calling Sunrise Dental."),
                speech(3400, 8000, "For appointments, press 1. For billing, press 2."),
                key(9700, "1"),
                TimelineEvent::SpeechStarted { at_ms: 15_800 },
                speech(16_000, 18_000, "Front desk, this is Maria, how can I help you?"),
            ],
        );
        let v = classify(&t);
        assert_eq!(v.classification, Learned::IvrThenHuman);
        assert!(v.confidence >= CONFIDENT);
        // The key lands just after the prompt ended (8.0 s), not when the assistant got to it (9.7 s); the
        // person came 6.3 s after the key, so the replay waits that long after its own key.
        assert_eq!(v.ivr_actions, [act(IvrActionKind::Dtmf, "1", 8200), act(IvrActionKind::Wait, "", 6300)]);
        assert_eq!(v.evidence.prompts.len(), 2);
        assert_eq!(
            v.evidence.fingerprint,
            "thank you for calling sunrise dental | for appointments press 1 for billing press 2"
        );
    }

    #[test]
    fn an_automated_system_is_replayed_up_to_its_answer_to_the_last_key() {
        let t = timeline(
            20_000,
            vec![
                speech(3700, 9400, "For our hours, press 1. To schedule an appointment, press 2."),
                key(9700, "2"),
                speech(10_500, 15_000, "Our scheduling office is closed. Please book online. Goodbye."),
            ],
        );
        let v = classify(&t);
        assert_eq!(v.classification, Learned::IvrOnly);
        // The key just after its prompt; the assistant connected when the recording answering it starts.
        assert_eq!(v.ivr_actions, [act(IvrActionKind::Dtmf, "2", 9600), act(IvrActionKind::Wait, "", 800)]);
    }

    #[test]
    fn keys_pressed_during_a_prompt_keep_their_time() {
        let t = timeline(
            20_000,
            vec![
                speech(0, 6000, "For appointments press 1, for billing press 2, for the pharmacy press 3."),
                key(2500, "1"),
                speech(4000, 6000, "Please enter your extension followed by the pound sign."),
                key(6500, "2"),
                key(6700, "3"),
            ],
        );
        let v = classify(&t);
        assert_eq!(v.classification, Learned::IvrOnly);
        assert_eq!(
            v.ivr_actions,
            [
                act(IvrActionKind::Dtmf, "1", 2500),
                act(IvrActionKind::Dtmf, "2", 3700),
                act(IvrActionKind::Dtmf, "3", 200),
            ]
        );
    }

    #[test]
    fn the_traps() {
        let person_not_available = timeline(
            20_000,
            vec![
                speech(300, 2200, "Good morning, Westside Pediatrics, this is Dana."),
                speech(6000, 8500, "Oh, he's not available at the moment. Can I take a message?"),
            ],
        );
        assert_eq!(classify(&person_not_available).classification, Learned::Human);

        let greeting_then_menu = timeline(
            20_000,
            vec![
                speech(300, 2500, "Hi! Thanks for calling Lakeside Family Medicine, we're happy you called."),
                speech(3200, 9000, "If you are a new patient, press 1. For prescription refills, press 2."),
            ],
        );
        assert_eq!(classify(&greeting_then_menu).classification, Learned::IvrOnly);

        let voicemail_with_a_key = timeline(
            25_000,
            vec![
                speech(200, 5000, "You've reached Doctor Patel's office. We can't take your call right now."),
                speech(5300, 9000, "Please leave a message after the tone, or press 1 to leave a callback number."),
            ],
        );
        assert_eq!(classify(&voicemail_with_a_key).classification, Learned::Voicemail);

        let hold_then_person = timeline(
            40_000,
            vec![
                TimelineEvent::SpeechStarted { at_ms: 400 },
                TimelineEvent::SpeechStarted { at_ms: 9000 },
                speech(21_000, 23_000, "Hi, thanks for holding, this is Kevin. How can I help?"),
            ],
        );
        let v = classify(&hold_then_person);
        assert_eq!(v.classification, Learned::IvrThenHuman);
        assert_eq!(v.ivr_actions, [act(IvrActionKind::Wait, "", 21_000)]);

        let spanish_first = timeline(
            20_000,
            vec![
                speech(300, 4000, "Para español, oprima el dos."),
                speech(4300, 9000, "Thank you for calling Valley Clinic. For appointments, press 1."),
            ],
        );
        assert_eq!(classify(&spanish_first).classification, Learned::IvrOnly);

        let ring_out = timeline(
            60_000,
            vec![
                speech(300, 4000, "Thank you for calling Oak Street Dental. For scheduling press 1."),
                key(4500, "1"),
                speech(5000, 7000, "Please hold while I connect you."),
                TimelineEvent::Silence { start_ms: 7000, end_ms: 60_000 },
            ],
        );
        let v = classify(&ring_out);
        assert_eq!(v.classification, Learned::Unknown);
        assert!(v.ivr_actions.is_empty());
    }

    #[test]
    fn nothing_heard_is_unknown() {
        assert_eq!(classify(&Timeline::default()).classification, Learned::Unknown);
        assert_eq!(classify(&timeline(5000, vec![speech(0, 100, "...")])).classification, Learned::Unknown);
        assert_eq!(Learned::Voicemail.cached(), None);
        assert_eq!(Learned::IvrOnly.cached(), Some(ClassificationType::IvrOnly));
    }

    fn expected() -> Evidence {
        Evidence {
            prompts: vec![
                "Thank you for calling Sunrise Dental.".into(),
                "For appointments, press 1. For billing, press 2.".into(),
            ],
            ..Evidence::default()
        }
    }

    #[test]
    fn verify_accepts_the_same_menu_through_stt_noise() {
        let kind = ClassificationType::IvrThenHuman;
        let heard = |duration_ms| {
            timeline(
                duration_ms,
                vec![
                    speech(500, 3000, "thank you for calling sunrise dental"),
                    speech(3400, 8000, "for appointment press one for billings press two"),
                    key(8200, "1"),
                    speech(16_000, 18_000, "Front desk, this is Maria."),
                ],
            )
        };
        assert_eq!(verify(kind, &expected(), &heard(12_000), 16_000, 4000), Check::Pending);
        assert_eq!(verify(kind, &expected(), &heard(20_000), 16_000, 4000), Check::Same);
    }

    #[test]
    fn verify_knows_a_recording_that_sounds_like_a_person_before_its_menu_is_heard() {
        let greeting = "Good morning, Maple Family Clinic, how may I direct your call?";
        let menu = "For appointments, press 1. For billing, press 2.";
        let expected = Evidence { prompts: vec![greeting.into(), menu.into()], ..Evidence::default() };
        // So far only the greeting: it is the known recording, not a person answering early.
        let early = timeline(4000, vec![speech(700, 3800, greeting)]);
        assert_eq!(verify(ClassificationType::IvrThenHuman, &expected, &early, 16_000, 6000), Check::Pending);
        // A person's own words before the replay's end are a change.
        let person = timeline(4000, vec![speech(700, 2000, "Hello? Who is this?")]);
        assert!(matches!(
            verify(ClassificationType::IvrThenHuman, &expected, &person, 16_000, 6000),
            Check::Changed { .. }
        ));
    }

    #[test]
    fn verify_hears_a_change() {
        let kind = ClassificationType::IvrThenHuman;
        let changed =
            |events| matches!(verify(kind, &expected(), &timeline(5000, events), 16_000, 4000), Check::Changed { .. });
        // The key moved.
        assert!(changed(vec![speech(3400, 8000, "For billing, press 1. For appointments, press 2.")]));
        // Another prompt.
        assert!(changed(vec![speech(500, 4000, "Our office has moved. Please call our new number.")]));
        // A person where the menu was.
        assert!(changed(vec![speech(500, 2000, "Sunrise Dental, this is Amy, how can I help you?")]));
        // A menu where the person was.
        let later = timeline(20_000, vec![speech(17_500, 19_000, "For refills press 3. For records press 4.")]);
        assert!(matches!(verify(kind, &expected(), &later, 16_000, 4000), Check::Changed { .. }));
        // A person where only a menu was known.
        let person = timeline(20_000, vec![speech(17_000, 18_000, "Hello? Who is calling?")]);
        assert!(matches!(
            verify(ClassificationType::IvrOnly, &expected(), &person, 16_000, 4000),
            Check::Changed { .. }
        ));
    }

    #[test]
    fn the_judge_builds_a_request_and_reads_its_answer() {
        let judge = ChatJudge { model: "gpt-4o-mini".into() };
        let t = timeline(9000, vec![TimelineEvent::SpeechStarted { at_ms: 0 }, key(3000, "1")]);
        let body = judge.request(&t);
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["messages"][1]["content"], "[3.0 s] caller pressed 1");
        let answer =
            |content: &str| json!({"choices": [{"message": {"role": "assistant", "content": content}}]}).to_string();
        let judged =
            judge.parse(&answer(r#"{"classification":"ivr_only","confidence":0.9,"reason":"a menu"}"#)).unwrap();
        assert_eq!(judged.classification, Learned::IvrOnly);
        assert!(judge.parse(&answer(r#"{"classification":"robot","confidence":0.9}"#)).is_none());
        assert!(judge.parse(&answer("not json")).is_none());
        assert!(judge.parse("{}").is_none());
        let v = with_judgement(&t, classify(&t), judged);
        assert_eq!(v.classification, Learned::IvrOnly);
        assert_eq!(v.confidence, 0.75);
        assert_eq!(v.ivr_actions, [act(IvrActionKind::Dtmf, "1", 3000)]);
        // A verdict of the rules stands.
        let human = timeline(3000, vec![speech(0, 1000, "Hello?")]);
        let judged = Judged { classification: Learned::Voicemail, confidence: 1.0, reason: String::new() };
        assert_eq!(with_judgement(&human, classify(&human), judged).classification, Learned::Human);
    }
}
