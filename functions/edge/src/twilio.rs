//! The one request the Worker makes to Twilio: create a call.

use base64::Engine;
use outcall_core::config::Config;
use outcall_core::twilio::{calls_url, dial_outcome, encode_form, DialOutcome};
use worker::{wasm_bindgen::JsValue, Fetch, Headers, Method, Request, RequestInit};

pub async fn create_call(config: &Config, form: &[(&str, String)]) -> DialOutcome {
    match send(config, form).await {
        Ok((status, body)) => dial_outcome(status, &body),
        Err(e) => DialOutcome::Failed { reason: format!("twilio unreachable: {e}"), code: None },
    }
}

async fn send(config: &Config, form: &[(&str, String)]) -> worker::Result<(u16, String)> {
    let credentials = format!("{}:{}", config.twilio_account_sid, config.twilio_auth_token);
    let headers = Headers::new();
    headers
        .set("Authorization", &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials)))?;
    headers.set("Content-Type", "application/x-www-form-urlencoded")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(JsValue::from_str(&encode_form(form))));
    let request = Request::new_with_init(&calls_url(&config.twilio_api_base, &config.twilio_account_sid), &init)?;
    let mut response = Fetch::Request(request).send().await?;
    let status = response.status_code();
    Ok((status, response.text().await.unwrap_or_default()))
}
