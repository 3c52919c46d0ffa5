//! The dashboard's API (`outcall_core::operator`): its configuration, who the user is, and the operators'
//! actions. Every route but the configuration verifies the user's access token first (`user_auth`), before any
//! body is read; each action is one SQL function called with that token, which checks the role and audits.

use crate::db::Db;
use crate::http::{self, Answer, Incoming};
use crate::user_auth::{self, SignedIn};
use outcall_core::config;
use outcall_core::operator::{self, Route};
use outcall_core::rpc::{OperatorBatchAction, OperatorCallAction, OperatorClassificationAction, OperatorOf};
use outcall_core::{dashboard, routes};
use worker::Env;

pub async fn handle(route: Route, req: Incoming, env: &Env) -> Answer {
    if route == Route::DashboardConfig {
        // Public: the page needs it to sign in; it holds the anon key, which is public by design.
        let settings = http::credential(env, |vars| config::dashboard(vars))?;
        return http::json(200, &dashboard::config_answer(&settings));
    }
    let auth = http::credential(env, |vars| config::user_auth(vars))?;
    let SignedIn { user, token } = user_auth::authenticate(&req, &auth).await?;
    let db = Db::at(&auth.supabase_url, &auth.api_key);
    let body = || http::body(&req, routes::Route::Operator(route), 0);
    match route {
        Route::DashboardConfig => unreachable!("answered above"),
        Route::Me => http::json(200, &operator::me_answer(&db.call(&OperatorOf { user_id: user.id }).await?)),
        Route::Calls(action) => {
            let ids = operator::call_ids(&body().await?)?;
            http::json(200, &db.as_user(&token).call(&OperatorCallAction { action, ids }).await?)
        }
        Route::Batch(batch_id, action) => {
            operator::no_body(&body().await?)?;
            http::json(200, &db.as_user(&token).call(&OperatorBatchAction { batch_id, action }).await?)
        }
        Route::Classification(classification_id, action) => {
            let correction = operator::correction(action, &body().await?)?;
            let request = OperatorClassificationAction { classification_id, action, correction };
            http::json(200, &db.as_user(&token).call(&request).await?)
        }
        Route::Suppressions(action) => {
            let request = operator::suppression_request(action, &body().await?)?;
            http::json(200, &db.as_user(&token).call(&request).await?)
        }
    }
}
