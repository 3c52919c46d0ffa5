//! `/api/v1/suppressions`: the do-not-call list. Each route is one SQL function call; the phone is parsed
//! from the body (`outcall_core::suppression`), never read from the URL.

use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use outcall_core::api::{self, Page, Route, SuppressionRoute};
use outcall_core::config::Config;
use outcall_core::rpc::suppression::{AddSuppression, ListSuppressions, RemoveSuppression};
use outcall_core::suppression::{self, ADDED_BY_API};
use serde_json::Value;

pub async fn handle(route: SuppressionRoute, req: Incoming, config: &Config, db: &Db) -> Answer {
    let body =
        || http::body(&req, outcall_core::routes::Route::Api(Route::Suppressions(route)), config.batch_max_targets);
    match route {
        SuppressionRoute::Add => {
            let new = suppression::parse_add(&body().await?)?;
            let added_by = Some(ADDED_BY_API.to_owned());
            let answer =
                db.call(&AddSuppression { phone: new.phone, reason: new.reason, source: new.source, added_by }).await?;
            let (status, body) = api::suppression_added(answer);
            http::json(status, &body)
        }
        SuppressionRoute::List => {
            let page = Page::from_query(req.query(), 100)?;
            let answer = db.call(&ListSuppressions { limit: page.limit, offset: page.offset }).await?;
            http::json(200, &api::api_json(Value::Object(answer)))
        }
        SuppressionRoute::Remove => {
            let phone = suppression::parse_remove(&body().await?)?;
            let answer = db.call(&RemoveSuppression { phone }).await?;
            http::json(200, &api::api_json(Value::Object(answer)))
        }
    }
}
