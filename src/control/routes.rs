//! The route table: the one list of routes that both the router ([`super::router`]) and
//! the OpenAPI document ([`super::openapi`]) are built from. Data only: it depends on no
//! other part of the control plane.

/// Every route is below this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Public,
    /// A session bearer token.
    Session,
    /// A session bearer token; acts for the profile in `X-Profile-Id` (default: the first).
    Profile,
    /// The admin bearer token.
    Admin,
}

/// The operation (handler) of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Register,
    Me,
    Login,
    Logout,
    ListProfiles,
    CreateProfile,
    ListTitles,
    SearchTitles,
    GetTitle,
    Playback,
    PutProgress,
    ContinueWatching,
    ListWatchlist,
    AddToWatchlist,
    RemoveFromWatchlist,
    AdminCreateTitle,
    AdminPutTitle,
    AdminDeleteTitle,
    AdminSetTier,
    OpenApi,
}

impl Op {
    /// The OpenAPI `operationId`.
    pub fn id(self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::Me => "getAccount",
            Op::Login => "login",
            Op::Logout => "logout",
            Op::ListProfiles => "listProfiles",
            Op::CreateProfile => "createProfile",
            Op::ListTitles => "listTitles",
            Op::SearchTitles => "searchTitles",
            Op::GetTitle => "getTitle",
            Op::Playback => "startPlayback",
            Op::PutProgress => "putProgress",
            Op::ContinueWatching => "continueWatching",
            Op::ListWatchlist => "listWatchlist",
            Op::AddToWatchlist => "addToWatchlist",
            Op::RemoveFromWatchlist => "removeFromWatchlist",
            Op::AdminCreateTitle => "adminCreateTitle",
            Op::AdminPutTitle => "adminPutTitle",
            Op::AdminDeleteTitle => "adminDeleteTitle",
            Op::AdminSetTier => "adminSetTier",
            Op::OpenApi => "openapi",
        }
    }
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: Method,
    /// Path below [`API_PREFIX`], with `{param}` placeholders (axum and OpenAPI syntax).
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    pub auth: Auth,
    /// Component schema of the JSON request body.
    pub request: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Component schema of the success body (`None`: no body).
    pub response: Option<&'static str>,
    /// Query parameters.
    pub query: &'static [&'static str],
    /// Error codes the route can answer besides `internal`.
    pub errors: &'static [&'static str],
}

const PAGING: &[&str] = &["page", "per_page"];
const SESSION_ERRORS: &[&str] = &["unauthenticated", "session_expired"];
const PROFILE_ERRORS: &[&str] = &[
    "unauthenticated",
    "session_expired",
    "invalid",
    "profile_not_found",
];
/// A route that names one of the account's profiles in its path.
const WATCHLIST_ERRORS: &[&str] = &[
    "unauthenticated",
    "session_expired",
    "invalid",
    "profile_not_found",
];
const ADMIN_BODY_ERRORS: &[&str] = &[
    "unauthenticated",
    "forbidden",
    "invalid",
    "unsupported_media_type",
    "payload_too_large",
];

/// Every route, in documentation order.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Method::Post,
        path: "/users",
        op: Op::Register,
        summary: "Register an account (basic tier) with its first profile",
        auth: Auth::Public,
        request: Some("RegisterRequest"),
        status: 201,
        response: Some("Account"),
        query: &[],
        errors: &[
            "invalid",
            "conflict",
            "rate_limited",
            "unsupported_media_type",
            "payload_too_large",
        ],
    },
    RouteSpec {
        method: Method::Get,
        path: "/users/me",
        op: Op::Me,
        summary: "The logged-in account and its profiles",
        auth: Auth::Session,
        request: None,
        status: 200,
        response: Some("Account"),
        query: &[],
        errors: SESSION_ERRORS,
    },
    RouteSpec {
        method: Method::Post,
        path: "/sessions",
        op: Op::Login,
        summary: "Log in: returns a bearer session token",
        auth: Auth::Public,
        request: Some("LoginRequest"),
        status: 201,
        response: Some("Session"),
        query: &[],
        errors: &[
            "invalid",
            "invalid_credentials",
            "rate_limited",
            "unsupported_media_type",
            "payload_too_large",
        ],
    },
    RouteSpec {
        method: Method::Delete,
        path: "/sessions/current",
        op: Op::Logout,
        summary: "Log out: revoke the presented session token",
        auth: Auth::Session,
        request: None,
        status: 204,
        response: None,
        query: &[],
        errors: SESSION_ERRORS,
    },
    RouteSpec {
        method: Method::Get,
        path: "/profiles",
        op: Op::ListProfiles,
        summary: "The account's profiles, oldest first",
        auth: Auth::Session,
        request: None,
        status: 200,
        response: Some("ProfileList"),
        query: &[],
        errors: SESSION_ERRORS,
    },
    RouteSpec {
        method: Method::Post,
        path: "/profiles",
        op: Op::CreateProfile,
        summary: "Add a profile to the account",
        auth: Auth::Session,
        request: Some("ProfileRequest"),
        status: 201,
        response: Some("Profile"),
        query: &[],
        errors: &[
            "unauthenticated",
            "session_expired",
            "invalid",
            "limit_reached",
            "unsupported_media_type",
            "payload_too_large",
        ],
    },
    RouteSpec {
        method: Method::Get,
        path: "/titles",
        op: Op::ListTitles,
        summary: "The catalog, by name, paginated",
        auth: Auth::Public,
        request: None,
        status: 200,
        response: Some("TitlePage"),
        query: PAGING,
        errors: &["invalid"],
    },
    RouteSpec {
        method: Method::Get,
        path: "/titles/search",
        op: Op::SearchTitles,
        summary: "Full-text search over name, description and tags (every word must match as a prefix), best first",
        auth: Auth::Public,
        request: None,
        status: 200,
        response: Some("TitlePage"),
        query: &["q", "page", "per_page"],
        errors: &["invalid"],
    },
    RouteSpec {
        method: Method::Get,
        path: "/titles/{id}",
        op: Op::GetTitle,
        summary: "One title",
        auth: Auth::Public,
        request: None,
        status: 200,
        response: Some("Title"),
        query: &[],
        errors: &["not_found"],
    },
    RouteSpec {
        method: Method::Post,
        path: "/playback/{title_id}",
        op: Op::Playback,
        summary: "Authorise playback: a signed manifest URL on the best CDN host, with fallbacks",
        auth: Auth::Profile,
        request: None,
        status: 200,
        response: Some("Playback"),
        query: &[],
        errors: &[
            "unauthenticated",
            "session_expired",
            "invalid",
            "profile_not_found",
            "not_found",
            "not_available",
            "country",
            "maturity",
            "tier",
            "unavailable",
        ],
    },
    RouteSpec {
        method: Method::Put,
        path: "/progress/{title_id}",
        op: Op::PutProgress,
        summary: "Record the watch position of the profile on a title (idempotent)",
        auth: Auth::Profile,
        request: Some("ProgressRequest"),
        status: 200,
        response: Some("Progress"),
        query: &[],
        errors: &[
            "unauthenticated",
            "session_expired",
            "invalid",
            "profile_not_found",
            "not_found",
            "unsupported_media_type",
            "payload_too_large",
        ],
    },
    RouteSpec {
        method: Method::Get,
        path: "/continue-watching",
        op: Op::ContinueWatching,
        summary: "The profile's titles in progress, most recently watched first",
        auth: Auth::Profile,
        request: None,
        status: 200,
        response: Some("ContinueWatchingPage"),
        query: PAGING,
        errors: PROFILE_ERRORS,
    },
    RouteSpec {
        method: Method::Get,
        path: "/profiles/{id}/watchlist",
        op: Op::ListWatchlist,
        summary: "The profile's watchlist, most recently added first",
        auth: Auth::Session,
        request: None,
        status: 200,
        response: Some("WatchlistPage"),
        query: PAGING,
        errors: WATCHLIST_ERRORS,
    },
    RouteSpec {
        method: Method::Put,
        path: "/profiles/{id}/watchlist/{title_id}",
        op: Op::AddToWatchlist,
        summary: "Add a title to the profile's watchlist (idempotent: 201 when added, 200 when \
                  listed already, keeping its time and place)",
        auth: Auth::Session,
        request: None,
        status: 201,
        response: Some("WatchlistItem"),
        query: &[],
        errors: &[
            "unauthenticated",
            "session_expired",
            "profile_not_found",
            "not_found",
            "maturity",
        ],
    },
    RouteSpec {
        method: Method::Delete,
        path: "/profiles/{id}/watchlist/{title_id}",
        op: Op::RemoveFromWatchlist,
        summary: "Remove a title from the profile's watchlist (404 when it is not listed)",
        auth: Auth::Session,
        request: None,
        status: 204,
        response: None,
        query: &[],
        errors: &[
            "unauthenticated",
            "session_expired",
            "profile_not_found",
            "not_found",
        ],
    },
    RouteSpec {
        method: Method::Post,
        path: "/admin/titles",
        op: Op::AdminCreateTitle,
        summary: "Create a title",
        auth: Auth::Admin,
        request: Some("TitleInput"),
        status: 201,
        response: Some("AdminTitle"),
        query: &[],
        errors: &[
            "unauthenticated",
            "forbidden",
            "invalid",
            "conflict",
            "unsupported_media_type",
            "payload_too_large",
        ],
    },
    RouteSpec {
        method: Method::Put,
        path: "/admin/titles/{id}",
        op: Op::AdminPutTitle,
        summary: "Create or replace a title (201 when created, 200 when replaced)",
        auth: Auth::Admin,
        request: Some("TitleInput"),
        status: 200,
        response: Some("AdminTitle"),
        query: &[],
        errors: ADMIN_BODY_ERRORS,
    },
    RouteSpec {
        method: Method::Delete,
        path: "/admin/titles/{id}",
        op: Op::AdminDeleteTitle,
        summary: "Delete a title and the watch progress and watchlist entries on it",
        auth: Auth::Admin,
        request: None,
        status: 204,
        response: None,
        query: &[],
        errors: &["unauthenticated", "forbidden", "not_found"],
    },
    RouteSpec {
        method: Method::Put,
        path: "/admin/users/{id}/tier",
        op: Op::AdminSetTier,
        summary: "Set an account's subscription tier",
        auth: Auth::Admin,
        request: Some("TierRequest"),
        status: 200,
        response: Some("User"),
        query: &[],
        errors: &[
            "unauthenticated",
            "forbidden",
            "invalid",
            "not_found",
            "unsupported_media_type",
            "payload_too_large",
        ],
    },
    RouteSpec {
        method: Method::Get,
        path: "/openapi.json",
        op: Op::OpenApi,
        summary: "This OpenAPI 3 document",
        auth: Auth::Public,
        request: None,
        status: 200,
        response: None,
        query: &[],
        errors: &[],
    },
];

impl RouteSpec {
    /// The path with [`API_PREFIX`].
    pub fn full_path(&self) -> String {
        format!("{API_PREFIX}{}", self.path)
    }
}

/// Message of the 404 for paths that match no route.
pub const NO_ROUTE_MESSAGE: &str = "no such API route";
