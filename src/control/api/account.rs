//! Accounts, sessions and profiles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{ApiJson, AppState, ClientMeta, Session};
use crate::control::auth::{new_session_token, verify_password};
use crate::control::error::{ApiError, ApiResult};
use crate::control::limits::Refusal;
use crate::control::model::{
    normalize_email, LoginInput, Maturity, Profile, ProfileInput, RegisterInput, Tier, User,
    MAX_PASSWORD_BYTES,
};

/// A profile as sent to clients (with the account's tier).
#[derive(Debug, Serialize)]
pub struct ProfileView {
    pub id: i64,
    pub display_name: String,
    pub language: String,
    pub maturity: Maturity,
    pub tier: Tier,
    pub created_at: i64,
}

impl ProfileView {
    pub fn new(p: Profile, tier: Tier) -> Self {
        ProfileView {
            id: p.id,
            display_name: p.display_name,
            language: p.language,
            maturity: p.maturity,
            tier,
            created_at: p.created_at,
        }
    }
}

/// An account with its profiles.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub id: i64,
    pub email: String,
    pub tier: Tier,
    pub created_at: i64,
    pub profiles: Vec<ProfileView>,
}

impl AccountView {
    fn new(u: User, profiles: Vec<Profile>) -> Self {
        let tier = u.tier;
        AccountView {
            id: u.id,
            email: u.email,
            tier,
            created_at: u.created_at,
            profiles: profiles
                .into_iter()
                .map(|p| ProfileView::new(p, tier))
                .collect(),
        }
    }
}

/// The 429 for a refused attempt, counted by reason.
fn refused(st: &AppState, r: Refusal) -> ApiError {
    st.0.metrics.refuse(r.reason);
    let message = if r.reason == "register" {
        "too many registrations from this address; try again later"
    } else {
        "too many login attempts; try again later"
    };
    ApiError::rate_limited(r.retry_after, message)
}

/// The client's address, as the limits key it (the edge always sends it).
fn address(meta: &ClientMeta) -> &str {
    meta.ip.as_deref().unwrap_or("unknown")
}

/// `POST /users`
pub async fn register(
    State(st): State<AppState>,
    meta: ClientMeta,
    ApiJson(input): ApiJson<RegisterInput>,
) -> ApiResult<Response> {
    let reg = input.validate().map_err(ApiError::invalid)?;
    // Counted before the hash: the hash is what a flood would cost.
    st.0.limits
        .register(address(&meta), st.now())
        .map_err(|r| refused(&st, r))?;
    let hashing = st.0.hashing;
    let password = reg.password.clone();
    let st2 = st.clone();
    let hash = st
        .hashing_task("hash", move || hashing.hash(&password, &st2.0.rng))
        .await?
        .map_err(ApiError::internal)?;
    let (user, profile) =
        st.0.store
            .create_user(&reg, hash, st.now())
            .await
            .map_err(|e| match e {
                crate::control::store::StoreError::Conflict(_) => {
                    ApiError::conflict("an account with this email already exists")
                }
                e => e.into(),
            })?;
    Ok((
        StatusCode::CREATED,
        Json(AccountView::new(user, vec![profile])),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct SessionBody {
    token: String,
    token_type: &'static str,
    expires_at: i64,
    user: User,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong email or password",
    )
}

/// `POST /sessions`
pub async fn login(
    State(st): State<AppState>,
    meta: ClientMeta,
    ApiJson(input): ApiJson<LoginInput>,
) -> ApiResult<Response> {
    let mut errs = crate::control::model::FieldErrors::new();
    if input.email.as_deref().is_none_or(str::is_empty) {
        errs.insert("email".into(), "required".into());
    }
    if input.password.as_deref().is_none_or(str::is_empty) {
        errs.insert("password".into(), "required".into());
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(errs));
    }
    let raw_email = input.email.unwrap_or_default();
    let password = input.password.unwrap_or_default();
    // Unparseable emails are limited under their raw (lower-cased) form.
    let email = normalize_email(&raw_email).unwrap_or_else(|| raw_email.trim().to_lowercase());
    // A place under every limit is taken before any hashing; it is settled below (dropped on
    // an early return, it counts as a failure).
    let attempt =
        st.0.limits
            .login(&email, address(&meta), st.now())
            .map_err(|r| refused(&st, r))?;

    let creds = if password.len() > MAX_PASSWORD_BYTES {
        None
    } else {
        st.0.store.credentials(&email).await?
    };
    let ok = match creds {
        Some(c) => {
            let pw = password.clone();
            let hash = c.password_hash.clone();
            st.hashing_task("verify", move || verify_password(&hash, &pw))
                .await?
                .then_some(c.user)
        }
        None => {
            // Spend the same work as for a real account, so timing does not tell which
            // emails exist.
            let st2 = st.clone();
            let dummy =
                st.0.dummy_hash
                    .get_or_try_init(|| async move {
                        let hashing = st2.0.hashing;
                        let st3 = st2.clone();
                        st2.hashing_task("hash", move || hashing.hash("dummy password", &st3.0.rng))
                            .await?
                            .map_err(ApiError::internal)
                    })
                    .await?
                    .clone();
            let pw = password.clone();
            let _ = st
                .hashing_task("verify", move || verify_password(&dummy, &pw))
                .await?;
            None
        }
    };
    let Some(user) = ok else {
        attempt.failed(st.now());
        tracing::info!(ip = ?meta.ip, "control: failed login");
        return Err(invalid_credentials());
    };
    attempt.succeeded(st.now());
    let (token, hash) = new_session_token(&st.0.rng).map_err(ApiError::internal)?;
    let now = st.now();
    let expires_at = now.saturating_add(st.0.session_ttl);
    st.0.store
        .create_session(hash, user.id, now, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionBody {
            token,
            token_type: "Bearer",
            expires_at,
            user,
        }),
    )
        .into_response())
}

/// `DELETE /sessions/current`
pub async fn logout(State(st): State<AppState>, s: Session) -> ApiResult<StatusCode> {
    st.0.store.delete_session(s.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/me`
pub async fn me(State(st): State<AppState>, s: Session) -> ApiResult<Json<AccountView>> {
    let profiles = st.0.store.profiles(s.user.id).await?;
    Ok(Json(AccountView::new(s.user, profiles)))
}

#[derive(Debug, Serialize)]
pub struct ProfileList {
    pub items: Vec<ProfileView>,
}

/// `GET /profiles`
pub async fn list_profiles(State(st): State<AppState>, s: Session) -> ApiResult<Json<ProfileList>> {
    let tier = s.user.tier;
    let items =
        st.0.store
            .profiles(s.user.id)
            .await?
            .into_iter()
            .map(|p| ProfileView::new(p, tier))
            .collect();
    Ok(Json(ProfileList { items }))
}

/// `POST /profiles`
pub async fn create_profile(
    State(st): State<AppState>,
    s: Session,
    ApiJson(input): ApiJson<ProfileInput>,
) -> ApiResult<Response> {
    let p = input.validate().map_err(ApiError::invalid)?;
    let profile =
        st.0.store
            .create_profile(s.user.id, &p, st.0.max_profiles, st.now())
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(ProfileView::new(profile, s.user.tier)),
    )
        .into_response())
}
