//! `GET /`: the dashboard's page, `index.html` from the static assets (`ASSETS`, `dashboard/dist`), served with
//! the headers `outcall_core::dashboard` decides (its Content-Security-Policy names this project's Supabase).

use crate::http::{Answer, Incoming};
use outcall_core::config;
use outcall_core::dashboard;
use outcall_core::error::ApiError;
use worker::{Env, Headers, Method, Response};

pub async fn handle(req: &Incoming, env: &Env) -> Answer {
    let settings = crate::http::credential(env, |vars| config::dashboard(vars))?;
    let assets = env.assets("ASSETS").map_err(|_| {
        ApiError::new(500, "configuration_error", "the ASSETS binding is missing ([assets] in wrangler.toml)")
    })?;
    // Through the binding, `/` is `index.html` (html_handling); it never runs this Worker again.
    // A request of our own (`http::outgoing`): `Fetcher::fetch` would link worker's `RequestInit` conversion.
    let unreadable =
        |e: worker::Error| ApiError::new(500, "internal_error", format!("the assets could not be read: {e}"));
    let request = crate::http::outgoing(Method::Get, req.url(), Headers::new(), None).map_err(unreadable)?;
    let mut page = assets.fetch_request(request).await.map_err(unreadable)?;
    if page.status_code() != 200 {
        return Err(ApiError::new(
            503,
            "dashboard_not_built",
            "the dashboard's files are not in dashboard/dist (./dev build builds them)",
        ));
    }
    let html = page.text().await.map_err(|_| ApiError::new(500, "internal_error", "index.html is unreadable"))?;
    let response = Response::from_html(html).map_err(|_| ApiError::new(500, "internal_error", "bad page"))?;
    for (name, value) in dashboard::page_headers(&settings.supabase_url) {
        crate::http::set_header(&response, name, &value)?;
    }
    Ok(response)
}
