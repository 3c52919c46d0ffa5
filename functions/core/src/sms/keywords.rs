//! Reply keywords: STOP and its family opt a number out, START and its family opt it back in, HELP asks.
//!
//! Twilio's rule on long codes: the whole body, trimmed, case-insensitive ("Stop please" is not a
//! keyword). When the number sits in a Messaging Service with Advanced Opt-Out, Twilio names the keyword
//! itself (`OptOutType`), and its word is final (the service may define its own keywords).

pub use crate::rpc::sms::SmsOptOut as Keyword;

const STOP: [&str; 8] = ["STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL"];
const START: [&str; 3] = ["START", "YES", "UNSTOP"];
const HELP: [&str; 2] = ["HELP", "INFO"];

/// The family a word belongs to, if any.
fn family(word: &str) -> Option<Keyword> {
    let word = word.trim().to_ascii_uppercase();
    [(Keyword::Stop, &STOP[..]), (Keyword::Start, &START[..]), (Keyword::Help, &HELP[..])]
        .into_iter()
        .find(|(_, family)| family.contains(&word.as_str()))
        .map(|(keyword, _)| keyword)
}

/// What an inbound message asks for: Twilio's `OptOutType` when it sent one, else the body's keyword.
pub fn keyword(body: &str, opt_out_type: Option<&str>) -> Option<Keyword> {
    match opt_out_type.map(str::trim).filter(|t| !t.is_empty()) {
        Some(named) => family(named),
        None => family(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_body_is_the_keyword_whatever_its_case() {
        assert_eq!(keyword("STOP", None), Some(Keyword::Stop));
        assert_eq!(keyword("  stop\n", None), Some(Keyword::Stop));
        assert_eq!(keyword("Unsubscribe", None), Some(Keyword::Stop));
        assert_eq!(keyword("cancel", None), Some(Keyword::Stop));
        assert_eq!(keyword("start", None), Some(Keyword::Start));
        assert_eq!(keyword("UNSTOP", None), Some(Keyword::Start));
        assert_eq!(keyword("info", None), Some(Keyword::Help));
        assert_eq!(keyword("Stop please", None), None);
        assert_eq!(keyword("See you at 9", None), None);
    }

    #[test]
    fn twilios_opt_out_type_wins() {
        assert_eq!(keyword("ARRET", Some("STOP")), Some(Keyword::Stop), "a service's own keyword");
        assert_eq!(keyword("STOP", Some("HELP")), Some(Keyword::Help));
        assert_eq!(keyword("STOP", Some("")), Some(Keyword::Stop), "an empty type is no type");
    }
}
