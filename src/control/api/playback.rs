//! Playback authorisation (signed manifest URLs) and watch progress.
//!
//! Playback answers with the signed manifest URL and also sets the same token as the edge's
//! token cookie ([`playback_cookie`]), scoped to the title's folder, for players that cannot
//! carry a token in the URL (native Safari/AVPlayer given an unsigned manifest URL).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Json;
use serde::Serialize;

use super::catalog::load_title;
use super::{ApiJson, ApiPath, ApiQuery, AppState, ClientMeta, PageBody, PageParams, Viewer};
use crate::control::error::{ApiError, ApiResult};
use crate::control::model::{ContinueItem, Profile, Progress, ProgressInput, Rendition, Title};
use crate::control::{CdnHealth, CdnHost};
use crate::token::url::{signed_url, Style};
use crate::token::Claims;

/// The hosts ordered for a player: healthy before unhealthy, then by ascending `priority`,
/// then by name (configuration order breaks remaining ties).
pub fn rank_hosts<'a>(hosts: &'a [CdnHost], health: &dyn CdnHealth) -> Vec<&'a CdnHost> {
    let mut v: Vec<(bool, &CdnHost)> = hosts.iter().map(|h| (health.healthy(h), h)).collect();
    v.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.priority.cmp(&b.1.priority))
            .then(a.1.name.cmp(&b.1.name))
    });
    v.into_iter().map(|(_, h)| h).collect()
}

/// Answer of `POST /playback/{title_id}`.
#[derive(Debug, Serialize)]
pub struct PlaybackBody {
    pub title_id: String,
    /// Signed master playlist URL on the chosen CDN host (token in the path).
    pub url: String,
    /// Name of the chosen CDN host.
    pub cdn: String,
    /// The same manifest on the other hosts, best first.
    pub fallbacks: Vec<String>,
    /// The renditions the viewer's tier allows.
    pub renditions: Vec<Rendition>,
    /// Maximum rendition height (the token's `mh`); `null` when unlimited.
    pub max_height: Option<u32>,
    /// Token expiry, unix seconds.
    pub expires_at: i64,
}

fn refuse(status: StatusCode, code: &'static str, msg: &str) -> ApiError {
    ApiError::new(status, code, msg)
}

/// Refuses (403 `maturity`) a title rated above what the profile may watch.
pub fn check_maturity(title: &Title, profile: &Profile) -> ApiResult<()> {
    if profile.maturity < title.rating.maturity() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "maturity",
            "the profile's maturity level does not allow this title",
        ));
    }
    Ok(())
}

/// Checks availability, country, maturity and tier; returns the allowed renditions and the
/// height limit (`None` = unlimited).
pub fn authorize(
    title: &Title,
    viewer: &Viewer,
    country: Option<&str>,
    tiers: &crate::control::TierHeights,
    now: i64,
) -> ApiResult<(Vec<Rendition>, Option<u32>)> {
    if !title.available_at(now) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "not_available",
            "the title is not available at this time",
        ));
    }
    if !title.countries.is_empty()
        && !country.is_some_and(|c| title.countries.iter().any(|t| t == c))
    {
        return Err(refuse(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "country",
            "the title is not available in your country",
        ));
    }
    check_maturity(title, &viewer.profile)?;
    let max = tiers.max_height(viewer.user.tier);
    let allowed: Vec<Rendition> = title
        .renditions
        .iter()
        .copied()
        .filter(|r| r.height <= max)
        .collect();
    if allowed.is_empty() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "tier",
            "the subscription tier does not include this title's quality",
        ));
    }
    Ok((allowed, (max < u32::MAX).then_some(max)))
}

/// The `Set-Cookie` value that carries a playback token: the edge's token cookie `name`,
/// `Path` the title's folder (the token's ACL, so the browser sends it for the title's
/// playlists and segments only), gone when the token expires (`Max-Age`), `Secure`,
/// `HttpOnly` (no script reads it) and `SameSite=Lax` (sent by same-site players and on a
/// top-level navigation to the manifest, never on other sites' subrequests).
pub fn playback_cookie(name: &str, token: &str, folder: &str, max_age: i64) -> String {
    format!(
        "{name}={token}; Path={folder}; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        max_age.max(0)
    )
}

/// `POST /playback/{title_id}`
pub async fn playback(
    State(st): State<AppState>,
    viewer: Viewer,
    meta: ClientMeta,
    ApiPath(title_id): ApiPath<String>,
) -> ApiResult<([(header::HeaderName, HeaderValue); 1], Json<PlaybackBody>)> {
    let title = load_title(&st, &title_id).await?;
    let now = st.now();
    let (renditions, max_height) =
        authorize(&title, &viewer, meta.country.as_deref(), &st.0.tiers, now)?;
    let ranked = rank_hosts(&st.0.cdn_hosts, st.0.health.as_ref());
    let Some(first) = ranked.first() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no CDN host is configured",
        ));
    };
    let exp = now
        .saturating_add(i64::from(title.duration_seconds))
        .saturating_add(st.0.playback_slack);
    let mut claims = Claims::new(title.acl_path.clone(), u64::try_from(exp).unwrap_or(0));
    claims.cc = (!title.countries.is_empty()).then(|| title.countries.clone());
    claims.mh = max_height;
    let token = crate::token::sign(&st.0.keyring, &claims)
        .map_err(|e| ApiError::internal(format_args!("signing: {e}")))?;
    let url_for = |h: &CdnHost| -> ApiResult<String> {
        let manifest = format!("{}{}", h.base_url.trim_end_matches('/'), title.origin_path);
        signed_url(&manifest, &token, Style::Path, "token")
            .ok_or_else(|| ApiError::internal(format_args!("bad CDN base URL for {:?}", h.name)))
    };
    let url = url_for(first)?;
    let fallbacks = ranked[1..]
        .iter()
        .map(|h| url_for(h))
        .collect::<ApiResult<Vec<_>>>()?;
    tracing::debug!(title = %title.id, user = viewer.user.id, profile = viewer.profile.id, cdn = %first.name, "control: playback");
    let cookie = playback_cookie(
        &st.0.playback_cookie,
        &token,
        &title.acl_path,
        exp.saturating_sub(now),
    );
    let cookie = HeaderValue::try_from(cookie)
        .map_err(|e| ApiError::internal(format_args!("playback cookie: {e}")))?;
    let body = Json(PlaybackBody {
        title_id: title.id,
        url,
        cdn: first.name.clone(),
        fallbacks,
        renditions,
        max_height,
        expires_at: exp,
    });
    Ok(([(header::SET_COOKIE, cookie)], body))
}

/// `PUT /progress/{title_id}`
pub async fn put_progress(
    State(st): State<AppState>,
    viewer: Viewer,
    ApiPath(title_id): ApiPath<String>,
    ApiJson(input): ApiJson<ProgressInput>,
) -> ApiResult<Json<Progress>> {
    let Some(pos) = input.position_seconds else {
        return Err(ApiError::invalid_field("position_seconds", "required"));
    };
    let title = load_title(&st, &title_id).await?;
    if pos > title.duration_seconds {
        return Err(ApiError::invalid_field(
            "position_seconds",
            format!(
                "at most the title's duration ({} s)",
                title.duration_seconds
            ),
        ));
    }
    let p =
        st.0.store
            .put_progress(viewer.profile.id, &title.id, pos, st.now())
            .await?;
    Ok(Json(p))
}

/// `GET /continue-watching`
pub async fn continue_watching(
    State(st): State<AppState>,
    viewer: Viewer,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<PageBody<ContinueItem>>> {
    let paging = q.paging()?;
    let p =
        st.0.store
            .continue_watching(viewer.profile.id, paging.offset(), paging.per_page)
            .await?;
    Ok(Json(PageBody {
        items: p.items,
        page: paging.page,
        per_page: paging.per_page,
        total: p.total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct Down(HashSet<&'static str>);
    impl CdnHealth for Down {
        fn healthy(&self, h: &CdnHost) -> bool {
            !self.0.contains(h.name.as_str())
        }
    }

    fn host(name: &str, priority: u32) -> CdnHost {
        CdnHost {
            name: name.into(),
            base_url: format!("http://{name}"),
            priority,
        }
    }

    #[test]
    fn ranking() {
        let hosts = vec![host("c", 2), host("a", 1), host("b", 1), host("d", 0)];
        let names = |h: Vec<&CdnHost>| h.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(rank_hosts(&hosts, &Down(HashSet::new()))),
            ["d", "a", "b", "c"]
        );
        assert_eq!(
            names(rank_hosts(&hosts, &Down(["d", "a"].into()))),
            ["b", "c", "d", "a"]
        );
        assert_eq!(
            names(rank_hosts(&hosts, &Down(["a", "b", "c", "d"].into()))),
            ["d", "a", "b", "c"]
        );
        assert!(rank_hosts(&[], &Down(HashSet::new())).is_empty());
    }
}
