//! One answered call's line: the clinic's side (its walk through the phone system, given the keys
//! that reached it) and what the call plays into it (key tones, the assistant's voice). Media
//! streams render their 20 ms frames from here; the VAPI stand-in listens and presses keys here;
//! the call record's `clinic` object comes from here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::tree::{is_key, HoldSound, NodeKind, PhoneSystem};
use super::walk::{walk, Key, KeySource, Segment, Sound, Walk};
use crate::state::lock;
use crate::twilio::twiml::digits_ms;
use crate::voice;

/// Samples per ms at 8 kHz.
const SAMPLES_PER_MS: u64 = 8;
/// Every walk computed looks this far past what was asked, so frames rarely walk again.
const LOOKAHEAD_MS: u64 = 60_000;

/// Twilio's names for a call's two directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// What Twilio receives from the callee: the clinic.
    Inbound,
    /// What Twilio plays into the call: `<Play digits>`, and the bridged assistant.
    Outbound,
}

impl Track {
    pub fn name(self) -> &'static str {
        match self {
            Track::Inbound => "inbound",
            Track::Outbound => "outbound",
        }
    }
}

pub struct Line {
    number: String,
    /// `default` or `override` (set through `/_sandbox/phones`).
    source: &'static str,
    system: Arc<PhoneSystem>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: Vec<Key>,
    /// The walk for `keys`, dropped whenever a key is added.
    walk: Option<Arc<Walk>>,
    outbound: Vec<Segment>,
    audio: HashMap<Sound, Arc<Vec<u8>>>,
    vapi_connected_at_ms: Option<u64>,
}

/// What a listener on the line knows at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub node: String,
    pub kind: NodeKind,
    pub visit_at_ms: u64,
    /// The words of this visit that began at or after the moment asked for (what was heard whole).
    pub prompt: Vec<String>,
    pub prompt_end_ms: Option<u64>,
    /// When the clinic moves on if nothing is pressed; `None` once it has settled for good.
    pub next_change_ms: Option<u64>,
}

impl Line {
    pub fn new(number: &str, system: Arc<PhoneSystem>, source: &'static str) -> Line {
        Line { number: number.to_string(), source, system, inner: Mutex::default() }
    }

    fn walk_until(&self, inner: &mut Inner, until_ms: u64) -> Arc<Walk> {
        match &inner.walk {
            Some(w) if w.exact_until_ms > until_ms => w.clone(),
            _ => {
                let w = Arc::new(walk(&self.system, &inner.keys, until_ms.saturating_add(LOOKAHEAD_MS)));
                inner.walk = Some(w.clone());
                w
            }
        }
    }

    /// Plays `digits` into the call from `at_ms` (each key 100 ms, `w` 500 ms, `W` 1 s): the tones go
    /// out on the outbound track and every key reaches the clinic at the start of its tone.
    pub fn press(&self, digits: &str, at_ms: u64, source: KeySource) {
        let mut inner = lock(&self.inner);
        let mut t = at_ms;
        for c in digits.chars() {
            match c {
                'w' => t += 500,
                'W' => t += 1000,
                c if is_key(c) => {
                    inner.keys.push(Key { digit: c, at_ms: t, source });
                    t += 100;
                }
                _ => {}
            }
        }
        inner.keys.sort_by_key(|k| k.at_ms);
        inner.walk = None;
        let end = at_ms + digits_ms(digits).unwrap_or(0);
        inner.outbound.push(Segment { start_ms: at_ms, end_ms: end, sound: Sound::Keys(digits.to_string()) });
    }

    /// The assistant says `text` from `at_ms`, on the outbound track.
    pub fn say(&self, text: &str, at_ms: u64) {
        let end = at_ms + voice::speech_ms(text);
        lock(&self.inner).outbound.push(Segment { start_ms: at_ms, end_ms: end, sound: Sound::Speech(text.into()) });
    }

    /// Whether the walk so far (as far as it is known) passed a node of `kind`.
    pub fn visited(&self, kind: NodeKind) -> bool {
        let mut inner = lock(&self.inner);
        self.walk_until(&mut inner, 0).visits.iter().any(|v| v.kind == kind)
    }

    pub fn vapi_connected(&self, at_ms: u64) {
        lock(&self.inner).vapi_connected_at_ms.get_or_insert(at_ms);
    }

    /// Where the clinic is at `at_ms`; `heard_since` limits the prompt to words begun since then.
    pub fn view(&self, at_ms: u64, heard_since: u64) -> View {
        let mut inner = lock(&self.inner);
        let walk = self.walk_until(&mut inner, at_ms);
        let Some((visit, next)) = walk.visit_at(at_ms) else {
            // The walk always starts at 0 with the start node.
            return View {
                node: self.system.start.clone(),
                kind: NodeKind::Menu,
                visit_at_ms: 0,
                prompt: Vec::new(),
                prompt_end_ms: None,
                next_change_ms: Some(walk.exact_until_ms),
            };
        };
        let until = next.unwrap_or(u64::MAX);
        let prompt = walk
            .prompts
            .iter()
            .filter(|p| p.node == visit.node && p.start_ms >= visit.at_ms.max(heard_since) && p.start_ms < until)
            .map(|p| p.text.clone())
            .collect();
        let next_change_ms = if visit.kind.is_final() { None } else { Some(next.unwrap_or(walk.exact_until_ms)) };
        View {
            node: visit.node.clone(),
            kind: visit.kind,
            visit_at_ms: visit.at_ms,
            prompt,
            prompt_end_ms: visit.prompt_end_ms,
            next_change_ms,
        }
    }

    /// The 20 ms (160 µ-law bytes) of `track` from `from_ms`.
    pub fn frame(&self, track: Track, from_ms: u64) -> Vec<u8> {
        const FRAME_MS: u64 = 20;
        let mut out = vec![voice::SILENCE; (FRAME_MS * SAMPLES_PER_MS) as usize];
        let mut inner = lock(&self.inner);
        let to_ms = from_ms + FRAME_MS;
        let segments: Vec<Segment> = match track {
            Track::Inbound => {
                let walk = self.walk_until(&mut inner, to_ms);
                // In time order and not overlapping: their ends are in order too.
                let first = walk.segments.partition_point(|s| s.end_ms <= from_ms);
                walk.segments[first..].iter().take_while(|s| s.start_ms < to_ms).cloned().collect()
            }
            Track::Outbound => {
                inner.outbound.iter().filter(|s| s.start_ms < to_ms && s.end_ms > from_ms).cloned().collect()
            }
        };
        for segment in segments {
            let audio = inner.audio.entry(segment.sound.clone()).or_insert_with(|| Arc::new(audio(&segment.sound)));
            let start = segment.start_ms * SAMPLES_PER_MS;
            let end = (segment.end_ms * SAMPLES_PER_MS).min(start + audio.len() as u64);
            let from = from_ms * SAMPLES_PER_MS;
            for sample in start.max(from)..end.min(to_ms * SAMPLES_PER_MS) {
                out[(sample - from) as usize] = audio[(sample - start) as usize];
            }
        }
        out
    }

    /// The call record's `clinic` object for a call that ended at `ended_ms` (or is at `ended_ms` now).
    pub fn record(&self, ended_ms: u64) -> Value {
        let mut inner = lock(&self.inner);
        let walk = self.walk_until(&mut inner, ended_ms);
        let visits: Vec<_> = walk.visits.iter().filter(|v| v.at_ms <= ended_ms).collect();
        let prompts: Vec<Value> = walk
            .prompts
            .iter()
            .filter(|p| p.start_ms < ended_ms)
            .map(|p| {
                let mut p = p.clone();
                if p.end_ms > ended_ms {
                    p.end_ms = ended_ms;
                    p.cut = true;
                }
                json!(p)
            })
            .collect();
        let last = visits.last();
        let settled = walk.settled().filter(|v| v.at_ms <= ended_ms);
        let outcome = last.map(|v| {
            let wrong = v.kind.is_final() && self.system.target.as_ref().is_some_and(|t| *t != v.node);
            if wrong {
                "wrong_department"
            } else {
                v.kind.name()
            }
        });
        let department = last.and_then(|v| match self.system.nodes.get(&v.node) {
            Some(super::tree::Node::Person { department, .. }) => department.clone(),
            _ => None,
        });
        let person_at = visits.iter().find(|v| v.kind == NodeKind::Person).map(|v| v.at_ms);
        let connected = inner.vapi_connected_at_ms;
        let connected_visit = connected.and_then(|at| walk.visit_at(at)).map(|(v, _)| v);
        // Time the assistant spent connected before the clinic settled (in menus, announcements, holds).
        let ms_in_menu = connected.map(|at| settled.map_or(ended_ms, |s| s.at_ms).min(ended_ms).saturating_sub(at));
        json!({
            "number": self.number,
            "system": self.system.name,
            "source": self.source,
            "keys": walk.keys.iter().filter(|k| k.at_ms <= ended_ms).collect::<Vec<_>>(),
            "visited": visits,
            "prompts": prompts,
            "ended_at": last.map(|v| json!({"node": v.node, "kind": v.kind, "at_ms": v.at_ms, "department": department})),
            "outcome": outcome,
            "person_at_ms": person_at,
            "vapi_connected_at_ms": connected,
            "vapi_connected_node": connected_visit.map(|v| v.node.clone()),
            "vapi_connected_kind": connected_visit.map(|v| v.kind),
            "vapi_ms_in_menu": ms_in_menu,
        })
    }
}

/// The µ-law samples of a sound.
fn audio(sound: &Sound) -> Vec<u8> {
    match sound {
        Sound::Speech(text) => voice::speak(text),
        Sound::Keys(digits) => voice::dtmf(digits),
        Sound::Hold(HoldSound::Music, ms) => voice::music(*ms),
        Sound::Hold(HoldSound::Ring, ms) => ringback(*ms),
        Sound::Hold(HoldSound::Silence, ms) => voice::silence(*ms),
        // 1050 Hz: a whole odd number of cycles per 60 ms symbol, so no letter of the tone code.
        Sound::Beep => tone(&[1050.0], 0.3, super::walk::BEEP_MS),
    }
}

/// North American ringback: 440 + 480 Hz, 2 s on, 4 s off.
fn ringback(ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((ms * SAMPLES_PER_MS) as usize);
    let mut left = ms;
    while left > 0 {
        let on = left.min(2000);
        out.extend(tone(&[440.0, 480.0], 0.15, on));
        left -= on;
        let off = left.min(4000);
        out.extend(voice::silence(off));
        left -= off;
    }
    out
}

fn tone(freqs: &[f64], amplitude: f64, ms: u64) -> Vec<u8> {
    (0..ms * SAMPLES_PER_MS)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let x: f64 = freqs.iter().map(|f| amplitude * (2.0 * std::f64::consts::PI * f * t).sin()).sum();
            voice::mulaw_encode((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinic::defaults;

    fn line(number: &str) -> Line {
        Line::new(number, Arc::new(defaults::for_number(number)), "default")
    }

    /// The inbound audio from 0 to `ms`, frame by frame.
    fn inbound(line: &Line, ms: u64) -> Vec<u8> {
        (0..ms / 20).flat_map(|i| line.frame(Track::Inbound, i * 20)).collect()
    }

    #[test]
    fn the_audio_says_the_prompts_at_their_times() {
        let line = line("+15550002001");
        let view = line.view(0, 0);
        assert_eq!((view.node.as_str(), view.kind), ("main", NodeKind::Menu));
        let end = view.prompt_end_ms.unwrap();
        let heard = voice::transcribe(&inbound(&line, end + 1000));
        let texts: Vec<&str> = heard.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(texts, ["thank you for calling maple family clinic.", defaults::MAIN_MENU]);
        assert_eq!(heard[1].end_sample, end * 8);
        assert_eq!(view.prompt.len(), 2);
    }

    #[test]
    fn keys_lead_to_the_person_and_are_recorded() {
        let line = line("+15550002001");
        let main_end = line.view(0, 0).prompt_end_ms.unwrap();
        line.vapi_connected(0);
        line.press("1", main_end + 300, KeySource::Vapi);
        let sub = line.view(main_end + 300 + 300, 0);
        assert_eq!(sub.node, "appointments");
        line.press("2", sub.prompt_end_ms.unwrap() + 300, KeySource::Vapi);
        let person = line.view(60_000, 0);
        assert_eq!((person.node.as_str(), person.next_change_ms), ("front_desk", None));
        let record = line.record(60_000);
        assert_eq!(record["outcome"], "person");
        assert_eq!(record["ended_at"]["department"], "front desk");
        assert_eq!(record["keys"][0]["prompt_end_ms"], main_end);
        assert_eq!(record["keys"][1]["source"], "vapi");
        assert_eq!(record["vapi_connected_kind"], "menu");
        assert_eq!(record["vapi_ms_in_menu"], record["person_at_ms"]);
        let nodes: Vec<&str> =
            record["visited"].as_array().unwrap().iter().map(|v| v["node"].as_str().unwrap()).collect();
        assert_eq!(nodes, ["main", "appointments", "connect", "ring", "front_desk"]);
        // The key tones are on the outbound track, at their moment.
        let tone = line.frame(Track::Outbound, main_end + 300);
        assert!(tone.iter().any(|&b| b != voice::SILENCE));
        assert!(line.frame(Track::Outbound, main_end + 400).iter().all(|&b| b == voice::SILENCE));
    }

    #[test]
    fn a_wrong_key_is_a_wrong_department() {
        let line = line("+15550002001");
        line.press("w2", 4000, KeySource::Twiml);
        let record = line.record(30_000);
        assert_eq!(record["outcome"], "wrong_department");
        assert_eq!(record["ended_at"]["node"], "billing");
        assert_eq!(record["keys"][0]["at_ms"], 4500);
        assert!(record["vapi_connected_at_ms"].is_null());
    }

    #[test]
    fn voicemail_beeps_without_words() {
        let line = line("+15550004001");
        let audio = inbound(&line, 20_000);
        let texts: Vec<String> = voice::transcribe(&audio).into_iter().map(|u| u.text).collect();
        assert_eq!(texts.last().unwrap(), "please leave a message after the tone.");
        assert_eq!(texts.len(), 2, "the beep is no word: {texts:?}");
        let record = line.record(20_000);
        assert_eq!(record["outcome"], "voicemail");
    }

    #[test]
    fn ring_and_music_are_no_words() {
        let ring = ringback(6000);
        assert_eq!(ring.len(), 48_000);
        assert!(voice::transcribe(&ring).is_empty());
        assert!(voice::transcribe(&tone(&[1050.0], 0.3, 500)).is_empty());
    }
}
