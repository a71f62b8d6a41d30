//! Persistence behind a typed, backend-neutral trait, with two implementations:
//! [`sqlite::SqliteStore`] (embedded, the default) and [`postgres::PgStore`] (a PostgreSQL
//! server shared by several edges). [`search`] folds text the way SQLite's FTS5 tokenizer does, for PostgreSQL's index.
//!
//! Times are unix seconds. Methods never leak backend errors to clients: the HTTP layer maps
//! [`StoreError::Backend`] to a generic 500 and logs the detail.

pub mod postgres;
pub mod search;
pub mod sqlite;

use async_trait::async_trait;

use super::model::{
    ContinueItem, NewProfile, Page, Profile, Progress, Registration, Tier, Title, User,
    WatchlistAdd, WatchlistEntry,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (`what` names it: `email`, `title`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A referenced row does not exist (`what` names it).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A per-account limit is reached (`what` names it: `profiles`).
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// Anything else (I/O, corruption, a bug). Logged, never shown to clients.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The database server cannot be reached (connection refused, lost or timed out). Clients
    /// get 503 with `Retry-After`; the store reconnects by itself.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// Stored credentials of an account, for login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    /// PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
}

/// What a session token hash resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLookup {
    Valid(User),
    Expired,
    Unknown,
}

/// How [`Store::put_title`] treats an existing title with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with `Conflict("title")`.
    Create,
    /// Replace it.
    Upsert,
    /// Keep it (seeding).
    IfAbsent,
}

/// What [`Store::put_title`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Replaced,
    Kept,
}

/// The control plane's persistence.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account with `password_hash` and its first profile, atomically.
    /// `Conflict("email")` when the email is taken.
    async fn create_user(
        &self,
        reg: &Registration,
        password_hash: String,
        now: i64,
    ) -> Result<(User, Profile), StoreError>;
    async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError>;
    async fn user(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// `None` when the user does not exist.
    async fn set_tier(&self, user_id: i64, tier: Tier) -> Result<Option<User>, StoreError>;

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        user_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Valid when `expires_at > now`.
    async fn session(&self, token_hash: [u8; 32], now: i64) -> Result<SessionLookup, StoreError>;
    /// Whether a session was deleted.
    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError>;
    /// Deletes sessions with `expires_at <= now`; returns how many.
    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError>;

    /// `LimitReached("profiles")` when the account already has `max` profiles.
    async fn create_profile(
        &self,
        user_id: i64,
        p: &NewProfile,
        max: u32,
        now: i64,
    ) -> Result<Profile, StoreError>;
    /// Profiles of an account, oldest first.
    async fn profiles(&self, user_id: i64) -> Result<Vec<Profile>, StoreError>;
    /// The account's profile `id`, or its first profile when `id` is `None`.
    async fn profile(&self, user_id: i64, id: Option<i64>) -> Result<Option<Profile>, StoreError>;

    async fn put_title(&self, t: &Title, mode: PutMode, now: i64)
        -> Result<PutOutcome, StoreError>;
    /// Whether a title was deleted (its watch progress and watchlist entries go with it).
    async fn delete_title(&self, id: &str) -> Result<bool, StoreError>;
    async fn title(&self, id: &str) -> Result<Option<Title>, StoreError>;
    /// Titles ordered by name then id.
    async fn list_titles(&self, offset: u64, limit: u64) -> Result<Page<Title>, StoreError>;
    /// Full-text search over name, description and tags; every term must match (as a word
    /// prefix); best matches first. `terms` are plain words (letters and digits only).
    async fn search_titles(
        &self,
        terms: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Page<Title>, StoreError>;

    /// Upserts the position of `profile_id` on `title_id` and makes it the newest entry.
    /// `NotFound("title")` when the title does not exist.
    async fn put_progress(
        &self,
        profile_id: i64,
        title_id: &str,
        position_seconds: u32,
        now: i64,
    ) -> Result<Progress, StoreError>;
    /// Progress of a profile, most recently written first.
    async fn continue_watching(
        &self,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<ContinueItem>, StoreError>;

    /// Adds `title_id` to the watchlist of `profile_id` as its newest entry; a title already
    /// listed keeps its time and place (`created` is false). `NotFound("title")` when the
    /// title does not exist.
    async fn add_to_watchlist(
        &self,
        profile_id: i64,
        title_id: &str,
        now: i64,
    ) -> Result<WatchlistAdd, StoreError>;
    /// Whether the title was on the profile's watchlist (and is no longer).
    async fn remove_from_watchlist(
        &self,
        profile_id: i64,
        title_id: &str,
    ) -> Result<bool, StoreError>;
    /// The profile's watchlist, most recently added first.
    async fn watchlist(
        &self,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WatchlistEntry>, StoreError>;
}
