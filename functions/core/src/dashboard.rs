//! The dashboard's page (`GET /`) and its configuration (`GET /api/v1/dashboard/config`).
//!
//! The page's files are Workers static assets (`[assets]` in `wrangler.toml`, built into `dashboard/dist`); only `/`
//! runs the Worker first, so the HTML document carries a Content-Security-Policy that names this deployment's
//! Supabase project, the one origin besides its own the page may talk to (supabase-js: Auth and PostgREST over
//! HTTPS, Realtime over a WebSocket).

use crate::config::DashboardSettings;
use serde_json::{json, Value};

/// The page's HTML, as the assets binding serves it.
pub const INDEX_PATH: &str = "/index.html";

/// The origin (`scheme://host[:port]`) of a base URL `config::check_base_url` accepted.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find(['/', '?', '#']).map_or(url, |i| &url[..after_scheme + i])
}

/// The Content-Security-Policy of the page: its own scripts, styles and images (and `data:` images: charts and
/// icons), network only to itself and to `supabase_url` (HTTPS and its WebSocket form), no plugins, no base or
/// form targets, never framed.
pub fn content_security_policy(supabase_url: &str) -> String {
    let origin = origin(supabase_url);
    let socket = match origin.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => origin.to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {origin} {socket}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// Every header the page is served with besides its type: the policy, no `Referer` leaving it (a call's id in
/// the URL fragment stays in the page anyway), no sniffing, no caching (a new deployment's page at once).
pub fn page_headers(supabase_url: &str) -> [(&'static str, String); 4] {
    [
        ("Content-Security-Policy", content_security_policy(supabase_url)),
        ("Referrer-Policy", "no-referrer".to_owned()),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("Cache-Control", "no-store".to_owned()),
    ]
}

/// `GET /api/v1/dashboard/config`'s answer: what supabase-js is created with.
pub fn config_answer(settings: &DashboardSettings) -> Value {
    json!({"supabaseUrl": settings.supabase_url, "supabaseAnonKey": settings.supabase_anon_key})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_supabase_origin_and_its_websocket() {
        let hosted = content_security_policy("https://abcd.supabase.co");
        assert_eq!(
            hosted,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' https://abcd.supabase.co wss://abcd.supabase.co; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'"
        );
        let local = content_security_policy("http://127.0.0.1:54321");
        assert!(local.contains("connect-src 'self' http://127.0.0.1:54321 ws://127.0.0.1:54321;"), "{local}");
        let with_path = content_security_policy("https://proxy.example.com/supabase");
        assert!(with_path.contains("https://proxy.example.com wss://proxy.example.com;"), "origin only: {with_path}");
        assert!(!hosted.contains("unsafe"), "no inline script or style, no eval");
    }

    #[test]
    fn the_page_is_never_cached_sniffed_or_referred_from() {
        let headers = page_headers("https://abcd.supabase.co");
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options", "Cache-Control"]);
        assert_eq!(headers[1].1, "no-referrer");
        assert_eq!(headers[2].1, "nosniff");
        assert_eq!(headers[3].1, "no-store");
    }

    #[test]
    fn the_config_is_what_supabase_js_is_created_with() {
        let settings =
            DashboardSettings { supabase_url: "https://a.supabase.co".into(), supabase_anon_key: "k".into() };
        assert_eq!(config_answer(&settings), json!({"supabaseUrl": "https://a.supabase.co", "supabaseAnonKey": "k"}));
    }
}
