//! The VAPI stand-in in a phone menu: it listens to the prompts (read from the clinic's line, as a
//! stand-in may) and, once a prompt offering appointments, scheduling, the front desk, reception or
//! an operator has ended, presses that key with its DTMF tool; otherwise it waits in silence. It
//! stops navigating where the call settles (a person, a voicemail, a recording).

use crate::clinic::tree::NodeKind;
use crate::clinic::walk::KeySource;
use crate::clinic::Line;
use crate::clock::NominalClock;

/// The options the assistant looks for, best first (an English-speaking assistant takes English
/// when a menu starts in another language).
const WANTED: &[&[&str]] = &[&["appointment", "schedul"], &["front desk", "reception"], &["operator"], &["english"]];
/// The assistant presses this long after the prompt that offered the key ended.
pub const PRESS_AFTER_MS: u64 = 300;
/// A menu that never settles: the assistant stops navigating after this long.
pub const GIVE_UP_MS: u64 = 60_000;

/// The words that announce a key ("press 1", "oprima 1", …).
const PRESS_WORDS: &[&str] = &["press", "oprima", "pulse", "marque", "presione"];

/// The (key, what it is for) pairs a prompt offers, in either order: "for billing, press 2" or
/// "press 0 for the operator".
pub fn options(prompt: &str) -> Vec<(char, String)> {
    let mut found = Vec::new();
    for sentence in prompt.to_lowercase().split(['.', ';', '!', '?']) {
        let words: Vec<&str> =
            sentence.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).collect();
        // Positions of "press <key>".
        let presses: Vec<(usize, char)> = words
            .windows(2)
            .enumerate()
            .filter(|(_, w)| PRESS_WORDS.contains(&w[0]))
            .filter_map(|(i, w)| Some((i, single_key(w[1])?)))
            .collect();
        let leads = presses.first().is_some_and(|(i, _)| *i == 0);
        for (n, &(i, key)) in presses.iter().enumerate() {
            let what = if leads {
                // "press 1 for x press 2 for y": what follows, up to the next press.
                let end = presses.get(n + 1).map_or(words.len(), |p| p.0);
                words[i + 2..end].join(" ")
            } else {
                // "for x press 1 for y press 2": what precedes, back to the previous press.
                let start = if n == 0 { 0 } else { presses[n - 1].0 + 2 };
                words[start..i].join(" ")
            };
            found.push((key, what));
        }
    }
    found
}

fn single_key(word: &str) -> Option<char> {
    let mut chars = word.chars();
    let key = chars.next()?;
    (chars.next().is_none() && crate::clinic::tree::is_key(key)).then_some(key)
}

/// The key the assistant chooses among what `prompt` offered, if any is what it wants.
pub fn choose(prompt: &[String]) -> Option<char> {
    let offered: Vec<(char, String)> = prompt.iter().flat_map(|p| options(p)).collect();
    WANTED
        .iter()
        .find_map(|words| offered.iter().find(|(_, what)| words.iter().any(|w| what.contains(w))).map(|(k, _)| *k))
}

/// A DTMF tool call: `keys` sent at `at_ms` (nominal, on the call's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    pub keys: String,
    pub at_ms: u64,
}

/// How the navigation ended.
#[derive(Debug)]
pub struct Navigation {
    pub presses: Vec<Press>,
    /// Where the call settled; None when the assistant gave up in the menus.
    pub settled: Option<NodeKind>,
}

/// Navigates from now (when VAPI is connected) until the clinic settles, advancing `clock`.
pub async fn navigate(line: &Line, clock: &mut NominalClock) -> Navigation {
    let connected = clock.elapsed_ms();
    line.vapi_connected(connected);
    let mut presses = Vec::new();
    let mut pressed_in: Option<u64> = None;
    loop {
        let now = clock.elapsed_ms();
        let view = line.view(now, connected);
        if view.kind.is_final() {
            return Navigation { presses, settled: Some(view.kind) };
        }
        if now >= connected + GIVE_UP_MS {
            return Navigation { presses, settled: None };
        }
        if view.kind == NodeKind::Menu && pressed_in != Some(view.visit_at_ms) {
            if let (Some(key), Some(end)) = (choose(&view.prompt), view.prompt_end_ms) {
                let at = (end + PRESS_AFTER_MS).max(now);
                line.press(&key.to_string(), at, KeySource::Vapi);
                presses.push(Press { keys: key.to_string(), at_ms: at });
                pressed_in = Some(view.visit_at_ms);
                clock.advance(at - now).await;
                continue;
            }
        }
        let next = view.next_change_ms.unwrap_or(u64::MAX).min(connected + GIVE_UP_MS).max(now + 1);
        clock.advance(next - now).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinic::defaults;
    use std::sync::Arc;

    #[test]
    fn options_either_way_round() {
        assert_eq!(
            options("For appointments, press 1. For billing, press 2, for the pharmacy press 3."),
            [('1', "for appointments".into()), ('2', "for billing".into()), ('3', "for the pharmacy".into())]
        );
        assert_eq!(
            options("press 0 for the operator. press 9 to hear these options again"),
            [('0', "for the operator".into()), ('9', "to hear these options again".into())]
        );
        assert_eq!(
            options("para español, oprima 1. for english, press 2."),
            [('1', "para español".into()), ('2', "for english".into())]
        );
        assert!(options("thank you for calling. we are open 9 to 5.").is_empty());
    }

    #[test]
    fn the_assistant_wants_appointments_first() {
        let p = |s: &str| vec![s.to_string()];
        assert_eq!(
            choose(&p("for billing press 1. to schedule an appointment press 2. press 0 for the operator")),
            Some('2')
        );
        assert_eq!(choose(&p("for billing press 1. press 0 for the operator")), Some('0'));
        assert_eq!(choose(&p("para español, oprima 1. for english, press 2.")), Some('2'));
        assert_eq!(choose(&p("for billing press 1.")), None);
    }

    #[tokio::test]
    async fn navigates_the_default_menus_to_the_front_desk() {
        for (number, path) in [("+15550002001", "12"), ("+15550002100", "212"), ("+15550003001", "2")] {
            let line = Line::new(number, Arc::new(defaults::for_number(number)), "default");
            let mut clock = NominalClock::new(0.0);
            let nav = navigate(&line, &mut clock).await;
            let keys: String = nav.presses.iter().map(|p| p.keys.as_str()).collect();
            assert_eq!(keys, path, "{number}");
            let record = line.record(clock.elapsed_ms());
            let expected = if number == "+15550003001" { NodeKind::Automated } else { NodeKind::Person };
            assert_eq!(nav.settled, Some(expected), "{number}");
            assert_eq!(record["outcome"], expected.name(), "{record}");
            // Each key lands just after the prompt that offered it.
            for key in record["keys"].as_array().unwrap() {
                let end = key["prompt_end_ms"].as_u64().unwrap();
                assert_eq!(key["at_ms"].as_u64().unwrap(), end + PRESS_AFTER_MS, "{key}");
            }
            assert_eq!(record["vapi_ms_in_menu"].as_u64(), Some(clock.elapsed_ms()));
        }
    }

    #[tokio::test]
    async fn waits_without_an_option_it_wants_and_gives_up() {
        let tree = serde_json::from_value(serde_json::json!({
            "name": "t", "start": "m",
            "nodes": {"m": {"type": "menu", "prompt": ["for billing press 1."], "options": {"1": "b"}},
                      "b": {"type": "automated", "prompt": ["bye."]}}
        }))
        .unwrap();
        let line = Line::new("+1", Arc::new(tree), "override");
        let mut clock = NominalClock::new(0.0);
        let nav = navigate(&line, &mut clock).await;
        assert!(nav.presses.is_empty());
        assert_eq!(nav.settled, None);
        assert_eq!(clock.elapsed_ms(), GIVE_UP_MS);
    }

    #[tokio::test]
    async fn connected_at_a_person_presses_nothing() {
        let line = Line::new("+15550001001", Arc::new(defaults::for_number("+15550001001")), "default");
        let mut clock = NominalClock::new(0.0);
        let nav = navigate(&line, &mut clock).await;
        assert!(nav.presses.is_empty());
        assert_eq!((nav.settled, clock.elapsed_ms()), (Some(NodeKind::Person), 0));
    }
}
