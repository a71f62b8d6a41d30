//! HTTP handlers, shared state and extractors.
//!
//! Extractors turn every rejection into an [`ApiError`] so that no plain-text error of the
//! framework reaches a client.

pub mod account;
pub mod catalog;
pub mod playback;
pub mod watchlist;

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use ring::rand::SystemRandom;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use super::auth::{self, Clock, PasswordHashing};
use super::database::Database;
use super::edge_secret::EdgeSecret;
use super::error::{ApiError, ApiResult};
use super::limits::Limiter;
use super::metrics::ControlMetrics;
use super::model::{Profile, TierHeights, User};
use super::settings::{is_origin_url, CdnHealth, CdnHost, ControlConfig, ControlError};
use super::store::postgres::PgStore;
use super::store::sqlite::SqliteStore;
use super::store::{PutMode, SessionLookup, Store};
use crate::token::{Claims, Keyring};

/// Header set by the edge: the client's address.
pub const CLIENT_IP_HEADER: &str = "x-edge-client-ip";
/// Header set by the edge: the client's country (ISO 3166 alpha-2), absent when unknown.
pub const COUNTRY_HEADER: &str = "x-edge-country";
/// Header selecting the profile of the account (default: the account's first profile).
pub const PROFILE_HEADER: &str = "x-profile-id";

/// Longest accepted bearer token (session tokens are 43 characters).
const MAX_BEARER_LEN: usize = 512;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cdn_hosts: Vec<CdnHost>,
    pub(crate) tiers: TierHeights,
    pub(crate) playback_slack: i64,
    pub(crate) session_ttl: i64,
    pub(crate) keyring: Arc<Keyring>,
    admin_token: Option<auth::AdminToken>,
    pub(crate) health: Arc<dyn CdnHealth>,
    /// Login and registration limits, reserved before any password hashing.
    pub(crate) limits: Limiter,
    pub(crate) metrics: ControlMetrics,
    /// Proof that a request came through the edge (checked by the router on every request).
    pub(crate) edge_secret: EdgeSecret,
    pub(crate) clock: Clock,
    pub(crate) rng: SystemRandom,
    pub(crate) hashing: PasswordHashing,
    /// Bounds concurrent argon2 computations (each holds `memory_kib` of memory).
    pub(crate) hash_slots: Semaphore,
    /// A hash to verify against when the email is unknown (same cost as a real login).
    pub(crate) dummy_hash: OnceCell<String>,
    pub(crate) max_profiles: u32,
    /// The edge's token cookie name (playback's `Set-Cookie`).
    pub(crate) playback_cookie: String,
}

/// The state shared by all handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("cdn_hosts", &self.0.cdn_hosts)
            .finish_non_exhaustive()
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn check_config(cfg: &ControlConfig, keyring: &Keyring) -> Result<(), ControlError> {
    let bad = |m: String| Err(ControlError::Config(m));
    for (i, h) in cfg.cdn_hosts.iter().enumerate() {
        if h.name.is_empty() {
            return bad(format!("cdn host #{i} has an empty name"));
        }
        if cfg.cdn_hosts[..i].iter().any(|o| o.name == h.name) {
            return bad(format!("cdn host name {:?} is used twice", h.name));
        }
        if !is_origin_url(&h.base_url) {
            return bad(format!(
                "cdn host {:?}: base_url {:?} must be an http(s) origin like \"https://cdn.example.com\" \
                 (no path: the token and the title's path follow the host)",
                h.name, h.base_url
            ));
        }
    }
    cfg.password_hashing
        .validate()
        .map_err(ControlError::Config)?;
    let longest = std::time::Duration::from_secs(u64::from(super::model::MAX_DURATION_SECONDS));
    if cfg.playback_slack + longest > std::time::Duration::from_secs(24 * 3600) {
        tracing::warn!(
            slack = ?cfg.playback_slack,
            "control: playback tokens of long titles may outlive the edge's default token max_ttl (24 h)"
        );
    }
    if cfg.session_ttl.is_zero() {
        return bad("session_ttl must be positive".into());
    }
    if cfg.max_profiles == 0 {
        return bad("max_profiles must be at least 1".into());
    }
    if cfg.login_limits.per_account == 0 || cfg.login_limits.per_ip == 0 {
        return bad("login limits must be at least 1".into());
    }
    if cfg.register_limits.per_ip == 0 {
        return bad("the registration limit must be at least 1".into());
    }
    if cfg.login_limits.window.is_zero() || cfg.register_limits.window.is_zero() {
        return bad("limit windows must be positive".into());
    }
    if crate::token::sign(keyring, &Claims::new("/", 1)).is_err() {
        return bad("the keyring cannot sign tokens".into());
    }
    if let Some(seed) = &cfg.seed {
        if let Err(fields) = seed.check() {
            return bad(format!("seed title is invalid: {fields:?}"));
        }
    }
    Ok(())
}

/// Opens and migrates the configured database: a SQLite file (creating its folder, 0700 when
/// new; the database files are 0600) or a PostgreSQL server.
pub async fn open_store(database: &Database) -> Result<Arc<dyn Store>, ControlError> {
    let fail = |e: super::store::StoreError| {
        ControlError::Database(format!("{}: {e}", database.describe()))
    };
    match database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // The folder holds the password hashes: private when this creates it.
                let mut builder = tokio::fs::DirBuilder::new();
                builder.recursive(true).mode(0o700);
                builder.create(dir).await.map_err(|e| {
                    ControlError::Database(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let store = SqliteStore::open_async(path.clone()).await.map_err(fail)?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = PgStore::open(url).await.map_err(fail)?;
            Ok(Arc::new(store))
        }
    }
}

impl AppState {
    /// Checks the configuration, opens and migrates the database ([`open_store`]), and inserts
    /// the seed title if absent.
    /// Makes a new [`EdgeSecret`] ([`AppState::edge_secret`]).
    /// `keyring` signs playback tokens (the edge verifies them with the same keyring).
    pub async fn open(
        cfg: ControlConfig,
        keyring: Arc<Keyring>,
        health: Arc<dyn CdnHealth>,
    ) -> Result<AppState, ControlError> {
        check_config(&cfg, &keyring)?;
        let store = open_store(&cfg.database).await?;
        AppState::with_store(cfg, keyring, health, store).await
    }

    /// Like [`AppState::open`] with another store (`cfg.database` is not used).
    pub async fn with_store(
        cfg: ControlConfig,
        keyring: Arc<Keyring>,
        health: Arc<dyn CdnHealth>,
        store: Arc<dyn Store>,
    ) -> Result<AppState, ControlError> {
        check_config(&cfg, &keyring)?;
        let clock = Clock::default();
        if let Some(seed) = &cfg.seed {
            let outcome = store
                .put_title(seed, PutMode::IfAbsent, clock.now())
                .await
                .map_err(|e| ControlError::Database(format!("seeding {:?}: {e}", seed.id)))?;
            tracing::debug!(id = %seed.id, ?outcome, "control: seed title");
        }
        let rng = SystemRandom::new();
        let admin_token = if cfg.admin_token.is_empty() {
            None
        } else {
            Some(auth::AdminToken::new(&cfg.admin_token, &rng).map_err(ControlError::Config)?)
        };
        let edge_secret = EdgeSecret::generate(&rng).map_err(ControlError::Config)?;
        let metrics =
            ControlMetrics::new().map_err(|e| ControlError::Config(format!("metrics: {e}")))?;
        let slots = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(AppState(Arc::new(Shared {
            store,
            cdn_hosts: cfg.cdn_hosts,
            tiers: cfg.tier_max_height,
            playback_slack: secs(cfg.playback_slack),
            session_ttl: secs(cfg.session_ttl),
            keyring,
            admin_token,
            health,
            limits: Limiter::new(cfg.login_limits, cfg.register_limits),
            metrics,
            edge_secret,
            clock,
            rng,
            hashing: cfg.password_hashing,
            hash_slots: Semaphore::new(slots),
            dummy_hash: OnceCell::new(),
            max_profiles: cfg.max_profiles,
            playback_cookie: cfg.playback_cookie,
        })))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// Unix seconds on the state's clock.
    pub fn now(&self) -> i64 {
        self.0.clock.now()
    }

    /// The secret the edge must send in [`super::edge_secret::EDGE_SECRET_HEADER`] on every
    /// request (new for each state).
    pub fn edge_secret(&self) -> &EdgeSecret {
        &self.0.edge_secret
    }

    /// The control plane's counters (register them on a registry to export them).
    pub fn metrics(&self) -> &ControlMetrics {
        &self.0.metrics
    }

    #[cfg(test)]
    pub(crate) fn clock(&self) -> &Clock {
        &self.0.clock
    }

    /// Runs a password hash/verify (`op`: `hash` or `verify`, counted) on the blocking pool, at
    /// most one per CPU at a time.
    pub(crate) async fn hashing_task<T, F>(&self, op: &'static str, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _permit = self
            .0
            .hash_slots
            .acquire()
            .await
            .map_err(|e| ApiError::internal(format_args!("hash slots: {e}")))?;
        self.0.metrics.work(op);
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::internal(format_args!("hash task: {e}")))
    }
}

/// A JSON body, deserialised with the path of the offending field in errors.
/// Requires `Content-Type: application/json` (or `…+json`).
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn body_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else {
        ApiError::bad_request("the request body could not be read")
    }
}

/// Deserialises JSON, naming the offending field on type errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                // Strip serde_json's " at line N column M" suffix.
                let msg = inner.to_string();
                let msg = msg
                    .split(" at line ")
                    .next()
                    .unwrap_or("invalid value")
                    .to_string();
                let name = if path == "." || path.is_empty() {
                    "body".to_string()
                } else {
                    path
                };
                Err(ApiError::invalid_field(&name, msg))
            } else if inner.is_eof() {
                Err(ApiError::bad_request(
                    "the request body is not valid JSON (truncated or empty)",
                ))
            } else {
                Err(ApiError::bad_request(format!(
                    "the request body is not valid JSON (line {}, column {})",
                    inner.line(),
                    inner.column()
                )))
            }
        }
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Query parameters with rejections mapped to `invalid`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

/// Path parameters with rejections (e.g. bad percent-encoding) mapped to `not_found`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(_) => Err(ApiError::not_found("resource")),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
}

/// `page` (1-based, default 1) and `per_page` (1–100, default 20).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageParams {
    pub page: Option<String>,
    pub per_page: Option<String>,
    /// Search text (only `/titles/search`).
    pub q: Option<String>,
}

pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1_000_000;

/// Validated paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u64,
    pub per_page: u64,
}

impl Paging {
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

impl PageParams {
    pub fn paging(&self) -> ApiResult<Paging> {
        let mut errs = super::model::FieldErrors::new();
        let mut num = |name: &str, v: &Option<String>, default: u64, max: u64| -> u64 {
            match v.as_deref() {
                None => default,
                Some(s) => match s.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => n,
                    _ => {
                        errs.insert(name.to_string(), format!("an integer from 1 to {max}"));
                        default
                    }
                },
            }
        };
        let page = num("page", &self.page, 1, MAX_PAGE);
        let per_page = num("per_page", &self.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE);
        if errs.is_empty() {
            Ok(Paging { page, per_page })
        } else {
            Err(ApiError::invalid(errs))
        }
    }
}

/// A page of results as sent to clients.
#[derive(Debug, Serialize)]
pub struct PageBody<T: Serialize> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// What the edge tells about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMeta {
    /// `X-Edge-Client-IP`, if present and printable.
    pub ip: Option<String>,
    /// `X-Edge-Country` if it is a plausible ISO alpha-2 code (upper-cased).
    pub country: Option<String>,
}

impl ClientMeta {
    pub fn from_headers(h: &HeaderMap) -> ClientMeta {
        let ip = h
            .get(CLIENT_IP_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string);
        let country = h
            .get(COUNTRY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()));
        ClientMeta { ip, country }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientMeta::from_headers(&parts.headers))
    }
}

/// The bearer token of `Authorization: Bearer <token>`.
fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && token.len() <= MAX_BEARER_LEN).then_some(token)
}

/// A logged-in account (valid session).
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub token_hash: [u8; 32],
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let hash = auth::token_hash(token);
        match state.0.store.session(hash, state.now()).await? {
            SessionLookup::Valid(user) => Ok(Session {
                user,
                token_hash: hash,
            }),
            SessionLookup::Expired => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session_expired",
                "the session has expired; log in again",
            )),
            SessionLookup::Unknown => Err(ApiError::unauthenticated()),
        }
    }
}

/// The refusal of a profile id that is not one of the account's profiles (another account's
/// or none), whether it comes from `X-Profile-Id` or from the path.
pub(crate) fn profile_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "profile_not_found",
        "no such profile on this account",
    )
}

/// A logged-in account and the profile picked by `X-Profile-Id` (default: the first).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub profile: Profile,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        let id = match parts.headers.get(PROFILE_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| ApiError::invalid_field("X-Profile-Id", "a profile id"))?,
            ),
        };
        let profile = state
            .0
            .store
            .profile(session.user.id, id)
            .await?
            .ok_or_else(profile_not_found)?;
        Ok(Viewer {
            user: session.user,
            profile,
        })
    }
}

/// A caller holding the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        match &state.0.admin_token {
            Some(admin) if admin.verify(token) => Ok(Admin),
            Some(_) => Err(ApiError::forbidden("the admin token is required")),
            None => Err(ApiError::forbidden("the admin API is disabled")),
        }
    }
}
