//! The phone system each scenario number has until `PUT /_sandbox/phones/{number}` says otherwise.
//! `ivr_then_human` numbers choose a variant by their hundreds digit (`+15550002` + V + 2 digits).

use serde_json::{json, Value};

use super::tree::PhoneSystem;
use crate::twilio::scenario::Scenario;

/// The default system of `number`.
pub fn for_number(number: &str) -> PhoneSystem {
    let tree = match Scenario::for_number(number) {
        Scenario::IvrThenHuman => ivr_then_human(variant(number)),
        Scenario::IvrOnly => ivr_only(),
        Scenario::Voicemail => voicemail(),
        // Busy, no-answer and failed calls are never answered; a person stands behind them anyway.
        _ => human(),
    };
    serde_json::from_value(tree).expect("default phone systems are valid")
}

/// The hundreds digit of a scenario number's suffix.
fn variant(number: &str) -> u8 {
    number.len().checked_sub(3).and_then(|i| number.as_bytes().get(i)).map_or(0, |b| b.wrapping_sub(b'0'))
}

fn human() -> Value {
    json!({
        "name": "maple clinic (human)",
        "start": "front_desk",
        "target": "front_desk",
        "nodes": {
            "front_desk": {"type": "person", "department": "front desk",
                           "prompt": ["thank you for calling maple clinic, this is sarah, how can i help you?"]}
        }
    })
}

/// The English menus of the `ivr_then_human` clinic; key path to the front desk: 1, 2.
pub const MAIN_MENU: &str = "for appointments, press 1. for billing, press 2. for the pharmacy, press 3.";

fn ivr_then_human(variant: u8) -> Value {
    let mut tree = json!({
        "name": "maple family clinic (ivr_then_human)",
        "start": "main",
        "target": "front_desk",
        "nodes": {
            "main": {"type": "menu",
                     "prompt": ["thank you for calling maple family clinic.", MAIN_MENU],
                     "options": {"1": "appointments", "2": "billing", "3": "pharmacy"}},
            "appointments": {"type": "menu",
                             "prompt": ["to speak with a nurse, press 1. to schedule or change an appointment, press 2. for test results, press 3."],
                             "options": {"1": "nurse", "2": "connect", "3": "results"}},
            "connect": {"type": "say", "prompt": ["please hold while i connect you."], "next": "ring"},
            "ring": {"type": "hold", "sound": "ring", "ms": 4000, "next": "front_desk"},
            "front_desk": {"type": "person", "department": "front desk",
                           "prompt": ["front desk, this is sarah, how can i help you?"]},
            "billing": {"type": "person", "department": "billing",
                        "prompt": ["billing department, this is tom speaking."]},
            "nurse": {"type": "person", "department": "nurse line", "prompt": ["nurse line, this is ana."]},
            "pharmacy": {"type": "automated",
                         "prompt": ["the pharmacy refill line is closed. please call back during business hours."]},
            "results": {"type": "automated", "prompt": ["test results are available on our patient portal. goodbye."]}
        }
    });
    match variant {
        // Spanish first; English callers press 2, then the usual 1, 2.
        1 => {
            tree["name"] = json!("clínica maple (ivr_then_human, spanish first)");
            tree["start"] = json!("idioma");
            let nodes = &mut tree["nodes"];
            nodes["idioma"] = json!({"type": "menu",
                "prompt": ["gracias por llamar a la clínica maple.", "para español, oprima 1. for english, press 2."],
                "options": {"1": "citas", "2": "main"}});
            nodes["citas"] = json!({"type": "menu", "prompt": ["para citas, oprima 1. para facturación, oprima 2."],
                "options": {"1": "espere", "2": "billing"}});
            nodes["espere"] =
                json!({"type": "say", "prompt": ["por favor espere mientras le comunico."], "next": "ring"});
        }
        // Hold music instead of the ring before the person.
        2 => {
            tree["name"] = json!("maple family clinic (ivr_then_human, hold music)");
            tree["nodes"]["ring"] = json!({"type": "hold", "sound": "music", "ms": 8000, "next": "front_desk"});
        }
        // An office greeting that sounds like a person, then the menu.
        3 => {
            tree["name"] = json!("maple family clinic (ivr_then_human, greeting first)");
            tree["nodes"]["main"]["prompt"] =
                json!(["good morning, maple family clinic, how may i direct your call?", MAIN_MENU]);
        }
        _ => {}
    }
    tree
}

/// Menus and recordings, nobody behind them; the scheduling line is 2.
fn ivr_only() -> Value {
    json!({
        "name": "lakeside imaging (ivr_only)",
        "start": "main",
        "target": "scheduling",
        "nodes": {
            "main": {"type": "menu",
                     "prompt": ["thank you for calling lakeside imaging.",
                                "for our hours and location, press 1. to schedule an appointment, press 2. for billing, press 3."],
                     "options": {"1": "hours", "2": "scheduling", "3": "billing"}},
            "hours": {"type": "automated",
                      "prompt": ["we are open monday to friday, eight to five, at 12 lake street. goodbye."]},
            "scheduling": {"type": "automated",
                           "prompt": ["our scheduling office is closed. please book online on our website. goodbye."]},
            "billing": {"type": "automated",
                        "prompt": ["please mail payments to the address on your statement. goodbye."]}
        }
    })
}

fn voicemail() -> Value {
    json!({
        "name": "maple clinic after hours (voicemail)",
        "start": "voicemail",
        "target": "voicemail",
        "nodes": {
            "voicemail": {"type": "voicemail",
                          "prompt": ["you have reached maple clinic. we are unable to take your call right now.",
                                     "please leave a message after the tone."]}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid() {
        for scenario in Scenario::ALL {
            for suffix in [0, 100, 200, 300, 999] {
                let system = for_number(&scenario.number(suffix));
                system.validate().unwrap_or_else(|e| panic!("{}: {e}", system.name));
            }
        }
        assert!(for_number("+15550002100").name.contains("spanish"));
        assert!(for_number("+15550002250").name.contains("music"));
        assert_eq!(for_number("+15550002001").name, "maple family clinic (ivr_then_human)");
        assert_eq!(for_number("+14155550100").name, "maple clinic (human)");
    }
}
