//! Domain types of the control plane and the validation of client input.
//!
//! Input structs (`*Input`) have only optional fields so that a missing field is reported as a
//! field error (`{"fields": {"name": "required"}}`) instead of a serde message; `validate`
//! turns them into the domain types or a [`FieldErrors`] map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Field name → what is wrong with it (sorted, so error bodies are stable).
pub type FieldErrors = BTreeMap<String, String>;

fn field(errs: &mut FieldErrors, name: &str, msg: impl Into<String>) {
    errs.entry(name.to_string()).or_insert_with(|| msg.into());
}

/// Subscription tier of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Standard,
    Premium,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Basic, Tier::Standard, Tier::Premium];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Standard => "standard",
            Tier::Premium => "premium",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Maximum rendition height per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierHeights {
    pub basic: u32,
    pub standard: u32,
    pub premium: u32,
}

impl Default for TierHeights {
    fn default() -> Self {
        TierHeights {
            basic: 480,
            standard: 1080,
            premium: u32::MAX,
        }
    }
}

impl TierHeights {
    pub fn max_height(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Basic => self.basic,
            Tier::Standard => self.standard,
            Tier::Premium => self.premium,
        }
    }
}

/// Maturity level of a profile (ordered: `Kids < Teen < Adult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Maturity {
    Kids,
    Teen,
    Adult,
}

impl Maturity {
    pub const ALL: [Maturity; 3] = [Maturity::Kids, Maturity::Teen, Maturity::Adult];

    pub fn as_str(self) -> &'static str {
        match self {
            Maturity::Kids => "KIDS",
            Maturity::Teen => "TEEN",
            Maturity::Adult => "ADULT",
        }
    }

    pub fn parse(s: &str) -> Option<Maturity> {
        Maturity::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Content rating of a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rating {
    #[serde(rename = "G")]
    G,
    #[serde(rename = "PG")]
    Pg,
    #[serde(rename = "PG-13")]
    Pg13,
    #[serde(rename = "R")]
    R,
}

impl Rating {
    pub const ALL: [Rating; 4] = [Rating::G, Rating::Pg, Rating::Pg13, Rating::R];

    pub fn as_str(self) -> &'static str {
        match self {
            Rating::G => "G",
            Rating::Pg => "PG",
            Rating::Pg13 => "PG-13",
            Rating::R => "R",
        }
    }

    pub fn parse(s: &str) -> Option<Rating> {
        Rating::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The lowest profile maturity allowed to watch: G and PG → KIDS, PG-13 → TEEN, R → ADULT.
    pub fn maturity(self) -> Maturity {
        match self {
            Rating::G | Rating::Pg => Maturity::Kids,
            Rating::Pg13 => Maturity::Teen,
            Rating::R => Maturity::Adult,
        }
    }
}

/// One variant stream of a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    pub height: u32,
    pub bandwidth: u64,
}

/// A catalog title (validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Title {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub rating: Rating,
    pub duration_seconds: u32,
    /// Path of the master playlist on the CDN (`/demo/ts/master.m3u8`).
    pub origin_path: String,
    /// The title's folder: the token ACL (a prefix of `origin_path` ending in `/`).
    pub acl_path: String,
    /// Sorted by height, ascending.
    pub renditions: Vec<Rendition>,
    /// ISO 3166 alpha-2, uppercase, sorted; empty = everywhere.
    pub countries: Vec<String>,
    /// Unix seconds; playback refused before.
    pub available_from: Option<i64>,
    /// Unix seconds; playback refused from then on.
    pub available_until: Option<i64>,
}

/// The demo title: the seed for the embedded demo origin's sample.
pub type SeedTitle = Title;

impl Title {
    /// The sample HLS title served by the embedded demo origin (`/demo/ts/master.m3u8`, 20 s,
    /// 240/360/480 p, everywhere, rated G). Its folder `/demo/` also covers `/demo/fmp4/`.
    pub fn demo() -> Title {
        Title {
            id: "demo".into(),
            name: "Demo".into(),
            description: "The sample HLS title of the embedded demo origin.".into(),
            tags: vec!["demo".into(), "sample".into()],
            rating: Rating::G,
            duration_seconds: 20,
            origin_path: "/demo/ts/master.m3u8".into(),
            acl_path: "/demo/".into(),
            renditions: vec![
                Rendition {
                    height: 240,
                    bandwidth: 210_184,
                },
                Rendition {
                    height: 360,
                    bandwidth: 302_680,
                },
                Rendition {
                    height: 480,
                    bandwidth: 405_704,
                },
            ],
            countries: Vec::new(),
            available_from: None,
            available_until: None,
        }
    }

    /// Whether the availability window contains `now` (unix seconds).
    pub fn available_at(&self, now: i64) -> bool {
        self.available_from.is_none_or(|from| now >= from)
            && self.available_until.is_none_or(|until| now < until)
    }

    /// Re-checks the invariants `TitleInput::validate` establishes (for titles built in code,
    /// e.g. the seed).
    pub fn check(&self) -> Result<(), FieldErrors> {
        TitleInput::from(self.clone()).validate(None).map(|_| ())
    }
}

/// Body of `POST /admin/titles` and `PUT /admin/titles/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitleInput {
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub rating: Option<String>,
    pub duration_seconds: Option<u32>,
    pub origin_path: Option<String>,
    pub acl_path: Option<String>,
    pub renditions: Option<Vec<Rendition>>,
    pub countries: Option<Vec<String>>,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
}

impl From<Title> for TitleInput {
    fn from(t: Title) -> Self {
        TitleInput {
            id: Some(t.id),
            name: Some(t.name),
            description: Some(t.description),
            tags: Some(t.tags),
            rating: Some(t.rating.as_str().to_string()),
            duration_seconds: Some(t.duration_seconds),
            origin_path: Some(t.origin_path),
            acl_path: Some(t.acl_path),
            renditions: Some(t.renditions),
            countries: Some(t.countries),
            available_from: t.available_from,
            available_until: t.available_until,
        }
    }
}

/// Title ids: 1–64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_title_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A CDN path: starts with `/`, printable ASCII without `?`, `#`, `\`, spaces or `%`, no empty,
/// `.` or `..` segments (the edge refuses ambiguous paths, so none are accepted here).
fn path_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("must start with '/'");
    }
    if p.len() > 1024 {
        return Some("at most 1024 characters");
    }
    if p.bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || matches!(b, b'?' | b'#' | b'\\' | b'%'))
    {
        return Some("printable ASCII only, without '?', '#', '%', '\\' or spaces");
    }
    let inner = p.trim_start_matches('/');
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty()
        && inner
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("empty, '.' or '..' path segments are not allowed");
    }
    None
}

/// The parent folder of a path, with a trailing `/` (`/a/b/m.m3u8` → `/a/b/`).
pub fn parent_folder(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => path[..=i].to_string(),
        None => "/".to_string(),
    }
}

fn text(
    errs: &mut FieldErrors,
    name: &str,
    v: Option<String>,
    required: bool,
    max_chars: usize,
) -> String {
    match v {
        None if required => {
            field(errs, name, "required");
            String::new()
        }
        None => String::new(),
        Some(s) => {
            let t = s.trim().to_string();
            if required && t.is_empty() {
                field(errs, name, "must not be empty");
            } else if t.chars().count() > max_chars {
                field(errs, name, format!("at most {max_chars} characters"));
            } else if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                field(errs, name, "control characters are not allowed");
            }
            t
        }
    }
}

/// Upper bound on title durations (12 h). The playback token lives for the duration plus the
/// slack, and the edge refuses tokens longer than its `max_ttl` (24 h by default).
pub const MAX_DURATION_SECONDS: u32 = 12 * 3600;

impl TitleInput {
    /// Validates and normalises (trims, sorts renditions, upper-cases and sorts countries,
    /// de-duplicates tags). `path_id` is the id from the URL of a `PUT`, which the body's id
    /// (optional there) must match.
    pub fn validate(self, path_id: Option<&str>) -> Result<Title, FieldErrors> {
        let mut errs = FieldErrors::new();
        let id = match (path_id, self.id) {
            (Some(p), Some(b)) if p != b => {
                field(&mut errs, "id", "does not match the id in the path");
                b
            }
            (Some(p), _) => p.to_string(),
            (None, Some(b)) => b,
            (None, None) => {
                field(&mut errs, "id", "required");
                String::new()
            }
        };
        if !errs.contains_key("id") && !is_valid_title_id(&id) {
            field(&mut errs, "id", "1-64 characters of A-Z a-z 0-9 _ -");
        }
        let name = text(&mut errs, "name", self.name, true, 200);
        let description = text(&mut errs, "description", self.description, false, 5000);
        let mut tags: Vec<String> = Vec::new();
        let raw_tags = self.tags.unwrap_or_default();
        if raw_tags.len() > 32 {
            field(&mut errs, "tags", "at most 32 tags");
        }
        for t in raw_tags {
            let t = t.trim().to_lowercase();
            if t.is_empty() || t.chars().count() > 40 || t.chars().any(char::is_control) {
                field(&mut errs, "tags", "each tag must have 1-40 characters");
            } else if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let rating = match self.rating.as_deref() {
            None => {
                field(&mut errs, "rating", "required");
                Rating::R
            }
            Some(r) => Rating::parse(r).unwrap_or_else(|| {
                field(&mut errs, "rating", "one of G, PG, PG-13, R");
                Rating::R
            }),
        };
        let duration_seconds = match self.duration_seconds {
            None => {
                field(&mut errs, "duration_seconds", "required");
                0
            }
            Some(d) if d == 0 || d > MAX_DURATION_SECONDS => {
                field(
                    &mut errs,
                    "duration_seconds",
                    format!("between 1 and {MAX_DURATION_SECONDS}"),
                );
                d
            }
            Some(d) => d,
        };
        let origin_path = self.origin_path.unwrap_or_default();
        if origin_path.is_empty() {
            field(&mut errs, "origin_path", "required");
        } else if let Some(p) = path_problem(&origin_path) {
            field(&mut errs, "origin_path", p);
        } else if origin_path.ends_with('/') {
            field(
                &mut errs,
                "origin_path",
                "must name the master playlist, not a folder",
            );
        }
        let acl_path = match self.acl_path {
            None => parent_folder(&origin_path),
            Some(a) => {
                if let Some(p) = path_problem(&a) {
                    field(&mut errs, "acl_path", p);
                } else if !a.ends_with('/') {
                    field(&mut errs, "acl_path", "must end with '/'");
                } else if !origin_path.starts_with(&a) {
                    field(
                        &mut errs,
                        "acl_path",
                        "must be a folder containing origin_path",
                    );
                }
                a
            }
        };
        let mut renditions = self.renditions.unwrap_or_default();
        if renditions.is_empty() {
            field(&mut errs, "renditions", "at least one rendition");
        } else if renditions.len() > 32 {
            field(&mut errs, "renditions", "at most 32 renditions");
        } else if renditions
            .iter()
            .any(|r| r.height == 0 || r.height > 8640 || r.bandwidth == 0)
        {
            field(
                &mut errs,
                "renditions",
                "height must be 1-8640 and bandwidth positive",
            );
        }
        renditions.sort_by_key(|r| (r.height, r.bandwidth));
        renditions.dedup();
        let mut countries: Vec<String> = Vec::new();
        for c in self.countries.unwrap_or_default() {
            let c = c.trim().to_ascii_uppercase();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                field(
                    &mut errs,
                    "countries",
                    "ISO 3166 alpha-2 codes (e.g. \"US\")",
                );
            } else {
                countries.push(c);
            }
        }
        countries.sort();
        countries.dedup();
        if let (Some(from), Some(until)) = (self.available_from, self.available_until) {
            if from >= until {
                field(&mut errs, "available_until", "must be after available_from");
            }
        }
        for (name, v) in [
            ("available_from", self.available_from),
            ("available_until", self.available_until),
        ] {
            if v.is_some_and(|v| v < 0) {
                field(&mut errs, name, "unix seconds, not negative");
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Title {
            id,
            name,
            description,
            tags,
            rating,
            duration_seconds,
            origin_path,
            acl_path,
            renditions,
            countries,
            available_from: self.available_from,
            available_until: self.available_until,
        })
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub tier: Tier,
    pub created_at: i64,
}

/// A viewer profile of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub display_name: String,
    pub language: String,
    pub maturity: Maturity,
    pub created_at: i64,
}

/// Validated new profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProfile {
    pub display_name: String,
    pub language: String,
    pub maturity: Maturity,
}

impl User {
    /// A newly registered account as a store answers it (every account starts on the basic
    /// tier).
    pub fn registered(id: i64, email: &str, created_at: i64) -> User {
        User {
            id,
            email: email.to_string(),
            tier: Tier::Basic,
            created_at,
        }
    }
}

impl NewProfile {
    /// This profile as a store answers it once stored under `id`.
    pub fn stored(&self, id: i64, user_id: i64, created_at: i64) -> Profile {
        Profile {
            id,
            user_id,
            display_name: self.display_name.clone(),
            language: self.language.clone(),
            maturity: self.maturity,
            created_at,
        }
    }
}

/// Body of `POST /profiles`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    pub display_name: Option<String>,
    pub language: Option<String>,
    pub maturity: Option<String>,
}

/// BCP 47-ish language tags: 2–35 characters of letters, digits and `-`, starting with a letter.
fn is_valid_language(s: &str) -> bool {
    (2..=35).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl ProfileInput {
    pub fn validate(self) -> Result<NewProfile, FieldErrors> {
        let mut errs = FieldErrors::new();
        let display_name = text(&mut errs, "display_name", self.display_name, true, 50);
        let language = self.language.unwrap_or_else(|| "en".into());
        if !is_valid_language(&language) {
            field(
                &mut errs,
                "language",
                "a language tag such as \"en\" or \"pt-BR\"",
            );
        }
        let maturity = match self.maturity.as_deref() {
            None => Maturity::Adult,
            Some(m) => Maturity::parse(m).unwrap_or_else(|| {
                field(&mut errs, "maturity", "one of KIDS, TEEN, ADULT");
                Maturity::Kids
            }),
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(NewProfile {
            display_name,
            language,
            maturity,
        })
    }
}

/// Passwords: at least this many characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Passwords: at most this many bytes (bounds the hashing work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Body of `POST /users`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    pub email: Option<String>,
    pub password: Option<String>,
    pub display_name: Option<String>,
    pub language: Option<String>,
}

/// Validated registration.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub first_profile: NewProfile,
}

/// A plausible email address (normalised to lower case): one `@`, a non-empty local part, a
/// domain with a dot, no spaces or control characters, at most 254 bytes.
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = e.split_once('@')?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return None;
    }
    Some(e)
}

impl RegisterInput {
    pub fn validate(self) -> Result<Registration, FieldErrors> {
        let mut errs = FieldErrors::new();
        let email = match self.email.as_deref() {
            None => {
                field(&mut errs, "email", "required");
                String::new()
            }
            Some(e) => normalize_email(e).unwrap_or_else(|| {
                field(&mut errs, "email", "not a valid email address");
                String::new()
            }),
        };
        let password = self.password.unwrap_or_default();
        if password.chars().count() < MIN_PASSWORD_CHARS {
            field(
                &mut errs,
                "password",
                format!("at least {MIN_PASSWORD_CHARS} characters"),
            );
        } else if password.len() > MAX_PASSWORD_BYTES {
            field(
                &mut errs,
                "password",
                format!("at most {MAX_PASSWORD_BYTES} bytes"),
            );
        }
        let display_name = self.display_name.or_else(|| {
            email
                .split_once('@')
                .map(|(local, _)| local.chars().take(50).collect())
        });
        let profile = ProfileInput {
            display_name,
            language: self.language,
            maturity: Some("ADULT".into()),
        }
        .validate();
        let first_profile = match profile {
            Ok(p) => Some(p),
            Err(e) => {
                errs.extend(e);
                None
            }
        };
        match (errs.is_empty(), first_profile) {
            (true, Some(first_profile)) => Ok(Registration {
                email,
                password,
                first_profile,
            }),
            _ => Err(errs),
        }
    }
}

/// Body of `POST /sessions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub email: Option<String>,
    pub password: Option<String>,
}

/// Body of `PUT /admin/users/{id}/tier`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierInput {
    pub tier: Option<String>,
}

/// Body of `PUT /progress/{title_id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressInput {
    pub position_seconds: Option<u32>,
}

/// Stored watch progress of a profile on a title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub title_id: String,
    pub position_seconds: u32,
    /// Unix seconds of the last write.
    pub updated_at: i64,
}

/// One row of `GET /continue-watching`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContinueItem {
    pub title_id: String,
    pub name: String,
    pub duration_seconds: u32,
    pub position_seconds: u32,
    pub updated_at: i64,
}

/// A page of results plus the total count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// One entry of a profile's watchlist: the title and when it was added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchlistEntry {
    pub title: Title,
    /// Unix seconds of the add.
    pub added_at: i64,
}

/// What adding a title to a watchlist did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchlistAdd {
    /// Unix seconds of the add (an entry that was listed already keeps its time).
    pub added_at: i64,
    /// Whether this call added it (`false`: it was listed already).
    pub created: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> TitleInput {
        TitleInput {
            id: Some("t1".into()),
            name: Some(" Big Movie ".into()),
            description: Some("d".into()),
            tags: Some(vec!["Action".into(), "action".into(), "drama".into()]),
            rating: Some("PG-13".into()),
            duration_seconds: Some(3600),
            origin_path: Some("/v/t1/hls/master.m3u8".into()),
            acl_path: None,
            renditions: Some(vec![
                Rendition {
                    height: 1080,
                    bandwidth: 5_000_000,
                },
                Rendition {
                    height: 360,
                    bandwidth: 302_680,
                },
            ]),
            countries: Some(vec!["us".into(), "CA".into(), "US".into()]),
            available_from: None,
            available_until: None,
        }
    }

    #[test]
    fn title_normalised() {
        let t = good().validate(None).unwrap();
        assert_eq!(t.name, "Big Movie");
        assert_eq!(t.tags, vec!["action", "drama"]);
        assert_eq!(t.acl_path, "/v/t1/hls/");
        assert_eq!(t.renditions[0].height, 360);
        assert_eq!(t.countries, vec!["CA", "US"]);
        assert_eq!(t.rating.maturity(), Maturity::Teen);
    }

    #[test]
    fn title_field_errors() {
        let errs = TitleInput::default().validate(None).unwrap_err();
        for f in ["id", "name", "rating", "duration_seconds", "origin_path"] {
            assert_eq!(
                errs.get(f).map(String::as_str),
                Some("required"),
                "{f}: {errs:?}"
            );
        }
        assert!(errs.contains_key("renditions"));
        let mut i = good();
        i.origin_path = Some("/v/../x.m3u8".into());
        i.countries = Some(vec!["USA".into()]);
        i.rating = Some("NC-17".into());
        i.available_from = Some(10);
        i.available_until = Some(5);
        let errs = i.validate(None).unwrap_err();
        assert!(errs.contains_key("origin_path"));
        assert!(errs.contains_key("countries"));
        assert!(errs.contains_key("rating"));
        assert!(errs.contains_key("available_until"));
        let mut i = good();
        i.acl_path = Some("/other/".into());
        assert!(i.validate(None).unwrap_err().contains_key("acl_path"));
        let mut i = good();
        i.acl_path = Some("/v/".into());
        assert_eq!(i.validate(None).unwrap().acl_path, "/v/");
        assert!(good()
            .validate(Some("other"))
            .unwrap_err()
            .contains_key("id"));
        let mut i = good();
        i.id = None;
        assert_eq!(i.validate(Some("fromurl")).unwrap().id, "fromurl");
        let mut i = good();
        i.id = Some("bad id!".into());
        assert!(i.validate(None).unwrap_err().contains_key("id"));
    }

    #[test]
    fn paths() {
        assert_eq!(parent_folder("/demo/ts/master.m3u8"), "/demo/ts/");
        assert_eq!(parent_folder("/m.m3u8"), "/");
        for bad in ["x", "/a//b", "/a/./b", "/a b", "/a?b", "/a%2e", "/a\\b"] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
        assert!(path_problem("/a/b/c.m3u8").is_none());
        assert!(Title::demo().check().is_ok());
    }

    #[test]
    fn emails_and_passwords() {
        assert_eq!(
            normalize_email(" A@Example.COM ").as_deref(),
            Some("a@example.com")
        );
        for bad in [
            "", "a", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@.c", "a@c.", "a@b..c",
        ] {
            assert!(normalize_email(bad).is_none(), "{bad}");
        }
        let r = RegisterInput {
            email: Some("x@y.z".into()),
            password: Some("short".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(r.contains_key("password"));
        let r = RegisterInput {
            email: Some("Jo@y.z".into()),
            password: Some("0123456789".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(r.first_profile.display_name, "jo");
        assert_eq!(r.first_profile.maturity, Maturity::Adult);
        assert_eq!(r.first_profile.language, "en");
    }

    #[test]
    fn ratings_and_windows() {
        assert_eq!(Rating::G.maturity(), Maturity::Kids);
        assert_eq!(Rating::Pg.maturity(), Maturity::Kids);
        assert_eq!(Rating::R.maturity(), Maturity::Adult);
        assert!(Maturity::Kids < Maturity::Teen && Maturity::Teen < Maturity::Adult);
        let mut t = Title::demo();
        assert!(t.available_at(0));
        t.available_from = Some(100);
        t.available_until = Some(200);
        assert!(!t.available_at(99));
        assert!(t.available_at(100));
        assert!(!t.available_at(200));
    }
}
