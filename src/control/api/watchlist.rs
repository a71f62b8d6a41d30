//! A profile's watchlist: titles saved to watch later, under `/profiles/{id}/watchlist`.
//!
//! - The profile is named in the path; a profile of another account (or none) gets the
//!   refusal `X-Profile-Id` gets elsewhere: 404 `profile_not_found`.
//! - Adding is idempotent: a listed title keeps its time and place (201 when added, 200 when
//!   it was listed already). Adding a title the profile's maturity does not allow is refused
//!   (403 `maturity`, as playback refuses it); availability and country are not checked, so
//!   a title can be saved before its window opens.
//! - Removing a title that is not listed is 404 `not_found`, as deleting a missing title is.
//! - The list is newest first, paged like the catalog (`page`, `per_page`), each entry with
//!   the title as the catalog shows it. It is not filtered by maturity (the catalog is not
//!   either); a title re-rated after it was added stays listed and playback refuses it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::catalog::{load_title, TitleView};
use super::playback::check_maturity;
use super::{profile_not_found, ApiPath, ApiQuery, AppState, PageBody, PageParams, Session};
use crate::control::error::{ApiError, ApiResult};
use crate::control::model::{is_valid_title_id, Profile, Title, WatchlistEntry};

/// One entry of a watchlist as clients see it.
#[derive(Debug, Serialize)]
pub struct WatchlistItem {
    pub title_id: String,
    /// Unix seconds of the add.
    pub added_at: i64,
    pub title: TitleView,
}

impl WatchlistItem {
    fn new(title: Title, added_at: i64) -> Self {
        WatchlistItem {
            title_id: title.id.clone(),
            added_at,
            title: title.into(),
        }
    }
}

impl From<WatchlistEntry> for WatchlistItem {
    fn from(e: WatchlistEntry) -> Self {
        WatchlistItem::new(e.title, e.added_at)
    }
}

/// The account's profile with the path's `id`, or `profile_not_found`.
async fn own_profile(st: &AppState, s: &Session, id: &str) -> ApiResult<Profile> {
    let Some(id) = id.parse::<i64>().ok().filter(|&n| n > 0) else {
        return Err(profile_not_found());
    };
    st.0.store
        .profile(s.user.id, Some(id))
        .await?
        .ok_or_else(profile_not_found)
}

/// `GET /profiles/{id}/watchlist`
pub async fn list(
    State(st): State<AppState>,
    s: Session,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<PageBody<WatchlistItem>>> {
    let profile = own_profile(&st, &s, &id).await?;
    let paging = q.paging()?;
    let p =
        st.0.store
            .watchlist(profile.id, paging.offset(), paging.per_page)
            .await?;
    Ok(Json(PageBody {
        items: p.items.into_iter().map(WatchlistItem::from).collect(),
        page: paging.page,
        per_page: paging.per_page,
        total: p.total,
    }))
}

/// `PUT /profiles/{id}/watchlist/{title_id}`: 201 when added, 200 when listed already.
pub async fn add(
    State(st): State<AppState>,
    s: Session,
    ApiPath((id, title_id)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<WatchlistItem>)> {
    let profile = own_profile(&st, &s, &id).await?;
    let title = load_title(&st, &title_id).await?;
    check_maturity(&title, &profile)?;
    let added =
        st.0.store
            .add_to_watchlist(profile.id, &title.id, st.now())
            .await?;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(WatchlistItem::new(title, added.added_at))))
}

/// `DELETE /profiles/{id}/watchlist/{title_id}`
pub async fn remove(
    State(st): State<AppState>,
    s: Session,
    ApiPath((id, title_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let profile = own_profile(&st, &s, &id).await?;
    if is_valid_title_id(&title_id)
        && st
            .0
            .store
            .remove_from_watchlist(profile.id, &title_id)
            .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("watchlist entry"))
    }
}
