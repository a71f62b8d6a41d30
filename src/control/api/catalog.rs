//! The catalog: public listing, lookup and search; admin writes.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{Admin, ApiJson, ApiPath, ApiQuery, AppState, PageBody, PageParams};
use crate::control::error::{ApiError, ApiResult};
use crate::control::model::{
    is_valid_title_id, Maturity, Page, Rating, Rendition, Tier, TierInput, Title, TitleInput,
};
use crate::control::store::{PutMode, PutOutcome, StoreError};

/// A title as the public sees it (without CDN paths).
#[derive(Debug, Serialize)]
pub struct TitleView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub rating: Rating,
    /// The lowest profile maturity that may watch it.
    pub maturity: Maturity,
    pub duration_seconds: u32,
    pub renditions: Vec<Rendition>,
    pub countries: Vec<String>,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
}

impl From<Title> for TitleView {
    fn from(t: Title) -> Self {
        TitleView {
            maturity: t.rating.maturity(),
            id: t.id,
            name: t.name,
            description: t.description,
            tags: t.tags,
            rating: t.rating,
            duration_seconds: t.duration_seconds,
            renditions: t.renditions,
            countries: t.countries,
            available_from: t.available_from,
            available_until: t.available_until,
        }
    }
}

/// A title as admins see it (everything).
#[derive(Debug, Serialize)]
pub struct AdminTitleView {
    #[serde(flatten)]
    pub title: Title,
    pub maturity: Maturity,
}

impl From<Title> for AdminTitleView {
    fn from(t: Title) -> Self {
        AdminTitleView {
            maturity: t.rating.maturity(),
            title: t,
        }
    }
}

fn page_body(p: Page<Title>, page: u64, per_page: u64) -> PageBody<TitleView> {
    PageBody {
        items: p.items.into_iter().map(TitleView::from).collect(),
        page,
        per_page,
        total: p.total,
    }
}

/// `GET /titles`
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<PageBody<TitleView>>> {
    let paging = q.paging()?;
    let p =
        st.0.store
            .list_titles(paging.offset(), paging.per_page)
            .await?;
    Ok(Json(page_body(p, paging.page, paging.per_page)))
}

/// Longest accepted search text and most terms used.
const MAX_QUERY_CHARS: usize = 200;
const MAX_TERMS: usize = 8;

/// Splits search text into lower-cased words of letters and digits.
pub fn search_terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(MAX_TERMS)
        .collect()
}

/// `GET /titles/search?q=`
pub async fn search(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<PageBody<TitleView>>> {
    let paging = q.paging()?;
    let text = q.q.as_deref().unwrap_or("").trim();
    if text.is_empty() {
        return Err(ApiError::invalid_field("q", "required"));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid_field(
            "q",
            format!("at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let terms = search_terms(text);
    if terms.is_empty() {
        return Err(ApiError::invalid_field(
            "q",
            "must contain a letter or digit",
        ));
    }
    let p =
        st.0.store
            .search_titles(&terms, paging.offset(), paging.per_page)
            .await?;
    Ok(Json(page_body(p, paging.page, paging.per_page)))
}

/// Loads a title or answers 404 (without asking the store for malformed ids).
pub async fn load_title(st: &AppState, id: &str) -> ApiResult<Title> {
    if !is_valid_title_id(id) {
        return Err(ApiError::not_found("title"));
    }
    st.0.store
        .title(id)
        .await?
        .ok_or_else(|| ApiError::not_found("title"))
}

/// `GET /titles/{id}`
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TitleView>> {
    Ok(Json(load_title(&st, &id).await?.into()))
}

fn title_response(status: StatusCode, t: Title) -> Response {
    let location = format!("/api/v1/titles/{}", t.id);
    let mut r = (status, Json(AdminTitleView::from(t))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn title_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::conflict("a title with this id already exists"),
        e => e.into(),
    }
}

/// `POST /admin/titles`
pub async fn admin_create(
    State(st): State<AppState>,
    _: Admin,
    ApiJson(input): ApiJson<TitleInput>,
) -> ApiResult<Response> {
    let t = input.validate(None).map_err(ApiError::invalid)?;
    st.0.store
        .put_title(&t, PutMode::Create, st.now())
        .await
        .map_err(title_conflict)?;
    Ok(title_response(StatusCode::CREATED, t))
}

/// `PUT /admin/titles/{id}`: create or replace.
pub async fn admin_put(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<TitleInput>,
) -> ApiResult<Response> {
    let t = input.validate(Some(&id)).map_err(ApiError::invalid)?;
    let outcome =
        st.0.store
            .put_title(&t, PutMode::Upsert, st.now())
            .await
            .map_err(title_conflict)?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Replaced | PutOutcome::Kept => StatusCode::OK,
    };
    Ok(title_response(status, t))
}

/// `DELETE /admin/titles/{id}`
pub async fn admin_delete(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if is_valid_title_id(&id) && st.0.store.delete_title(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("title"))
    }
}

/// `PUT /admin/users/{id}/tier`
pub async fn admin_set_tier(
    State(st): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<TierInput>,
) -> ApiResult<Json<crate::control::model::User>> {
    let Some(user_id) = id.parse::<i64>().ok().filter(|&n| n > 0) else {
        return Err(ApiError::not_found("user"));
    };
    let tier = match input.tier.as_deref() {
        None => return Err(ApiError::invalid_field("tier", "required")),
        Some(t) => Tier::parse(t)
            .ok_or_else(|| ApiError::invalid_field("tier", "one of basic, standard, premium"))?,
    };
    st.0.store
        .set_tier(user_id, tier)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

#[cfg(test)]
mod tests {
    use super::search_terms;

    #[test]
    fn terms() {
        assert_eq!(
            search_terms("Big-Buck  \"bunny\" OR *"),
            vec!["big", "buck", "bunny", "or"]
        );
        assert!(search_terms("\"*:^()").is_empty());
        assert_eq!(search_terms("Élan vital").len(), 2);
        assert_eq!(search_terms("a b c d e f g h i j").len(), 8);
    }
}
