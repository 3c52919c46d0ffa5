//! Minimal structured logging to stderr: `ts level target key=value ...`.
//!
//! Callers pass identifiers only (call sids, request ids, status codes); never
//! names, dates of birth, transcripts or request bodies.

/// Logs one line to stderr. Usage: `log!(info, "twilio", "call created sid={}", sid)`.
#[macro_export]
macro_rules! log {
    ($level:ident, $target:expr, $($arg:tt)+) => {
        eprintln!(
            "{} {:<5} {} {}",
            ::chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            stringify!($level),
            $target,
            format_args!($($arg)+)
        )
    };
}

/// An error with its causes, `outer: inner: root`, since the outer message of
/// HTTP and database client errors alone ("db error") rarely says what failed.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    #[derive(Debug)]
    struct Outer(std::num::ParseIntError);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("db error")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_includes_causes() {
        let cause = "x".parse::<u8>().unwrap_err();
        assert_eq!(super::error_chain(&Outer(cause)), "db error: invalid digit found in string");
    }
}
