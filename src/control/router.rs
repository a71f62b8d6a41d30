//! The axum router: every route of [`ROUTES`] below [`API_PREFIX`](super::routes::API_PREFIX)
//! bound to its handler, JSON errors for unknown routes, wrong methods and oversized bodies,
//! and `Cache-Control: no-store` on every answer. Every request, routed or not, must carry the
//! edge's secret ([`super::edge_secret`]): without it the answer is 403 and no handler runs.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use bytes::Bytes;

use super::api::{account, catalog, playback, watchlist, AppState};
use super::edge_secret::EDGE_SECRET_HEADER;
use super::error::ApiError;
use super::routes::{Method, Op, MAX_BODY_BYTES, NO_ROUTE_MESSAGE, ROUTES};

fn filter(m: Method) -> MethodFilter {
    match m {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
        Method::Delete => MethodFilter::DELETE,
    }
}

/// The handler of `op`; `openapi` is the document served by [`Op::OpenApi`], built once.
fn handler(op: Op, f: MethodFilter, openapi: &Bytes) -> MethodRouter<AppState> {
    match op {
        Op::Register => on(f, account::register),
        Op::Me => on(f, account::me),
        Op::Login => on(f, account::login),
        Op::Logout => on(f, account::logout),
        Op::ListProfiles => on(f, account::list_profiles),
        Op::CreateProfile => on(f, account::create_profile),
        Op::ListTitles => on(f, catalog::list),
        Op::SearchTitles => on(f, catalog::search),
        Op::GetTitle => on(f, catalog::get),
        Op::Playback => on(f, playback::playback),
        Op::PutProgress => on(f, playback::put_progress),
        Op::ContinueWatching => on(f, playback::continue_watching),
        Op::ListWatchlist => on(f, watchlist::list),
        Op::AddToWatchlist => on(f, watchlist::add),
        Op::RemoveFromWatchlist => on(f, watchlist::remove),
        Op::AdminCreateTitle => on(f, catalog::admin_create),
        Op::AdminPutTitle => on(f, catalog::admin_put),
        Op::AdminDeleteTitle => on(f, catalog::admin_delete),
        Op::AdminSetTier => on(f, catalog::admin_set_tier),
        Op::OpenApi => {
            let doc = openapi.clone();
            on(f, move || openapi_json(doc))
        }
    }
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", NO_ROUTE_MESSAGE)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not support the method",
    )
}

async fn openapi_json(doc: Bytes) -> Response {
    let mut r = doc.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Refuses requests that did not come through the edge, before their `X-Edge-*` headers are
/// read by anything.
async fn require_edge(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st
        .edge_secret()
        .verify(req.headers().get(EDGE_SECRET_HEADER))
    {
        return next.run(req).await;
    }
    st.metrics().refuse("edge_secret");
    ApiError::forbidden("this port only serves the edge; call the API through the edge")
        .into_response()
}

async fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The API router for `state` (every route of [`ROUTES`]; JSON errors for unknown routes,
/// wrong methods and oversized bodies; `Cache-Control: no-store`; 403 without the edge's
/// secret).
pub fn router(state: AppState) -> Router {
    let openapi = super::openapi::document_bytes();
    let mut r: Router<AppState> = Router::new();
    for spec in ROUTES {
        r = r.route(
            &spec.full_path(),
            handler(spec.op, filter(spec.method), &openapi),
        );
    }
    r.fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_edge,
        ))
        .layer(axum::middleware::map_response(harden))
        .with_state(state)
}
