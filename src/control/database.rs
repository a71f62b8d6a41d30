//! Where the control plane keeps its data: a SQLite file (the embedded default) or a
//! PostgreSQL server (`postgres://` / `postgresql://`), chosen by the text of
//! `[control] database`.
//!
//! Anything else that looks like a URL (`mysql://…`, `sqlite://…`) is refused: taken as a
//! path it would quietly become a SQLite file in a folder named after the scheme, and edges
//! meant to share one database would each get their own.

use std::path::{Path, PathBuf};

/// The control plane's database.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file; created (with its parent folder) if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user:password@host:port/db?…`). Its
    /// password is never printed ([`std::fmt::Debug`] and [`Database::describe`] hide it).
    Postgres(String),
}

impl From<PathBuf> for Database {
    fn from(p: PathBuf) -> Self {
        Database::Sqlite(p)
    }
}

impl From<&Path> for Database {
    fn from(p: &Path) -> Self {
        Database::Sqlite(p.to_path_buf())
    }
}

impl From<&str> for Database {
    fn from(p: &str) -> Self {
        Database::Sqlite(PathBuf::from(p))
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Database::Postgres(u) => f.debug_tuple("Postgres").field(&redact(u)).finish(),
        }
    }
}

impl Database {
    /// Reads `[control] database`: a `postgres://` or `postgresql://` URL, or a SQLite path
    /// (relative paths resolved against `base`). The error is the reason, without the key.
    pub fn parse(text: &str, base: &Path) -> Result<Database, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        match scheme(text) {
            None => Ok(Database::Sqlite(base.join(text))),
            Some(s)
                if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") =>
            {
                // Schemes are case-insensitive (RFC 3986 §3.1); the driver wants lowercase.
                let url = format!("{}{}", s.to_ascii_lowercase(), &text[s.len()..]);
                url.parse::<tokio_postgres::Config>().map_err(|e| {
                    // The parser's message quotes no part of the URL; keep it so.
                    format!("{:?} is not a valid PostgreSQL URL: {e}", redact(text))
                })?;
                Ok(Database::Postgres(url))
            }
            Some(s) => Err(format!(
                "{:?}: the {s}:// scheme is not supported; use a SQLite file path or a \
                 postgres:// (postgresql://) URL",
                redact(text)
            )),
        }
    }

    /// For logs and errors: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(u) => redact(u),
        }
    }
}

/// The scheme of `text` when it starts like a URL (`letters+digits+.-://`), per RFC 3986 §3.1.
fn scheme(text: &str) -> Option<&str> {
    let (s, _) = text.split_once("://")?;
    let mut chars = s.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(s)
}

/// `text` with the password of its userinfo (`user:password@`) replaced by `***`.
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The last '@' ends the userinfo (a password may contain '@' only percent-encoded, but be
    // safe with raw ones too).
    let Some(at) = authority.rfind('@') else {
        return text.to_string();
    };
    let (userinfo, host) = authority.split_at(at);
    let user = match userinfo.split_once(':') {
        Some((u, _)) => format!("{u}:***"),
        None => userinfo.to_string(),
    };
    let tail = redact_query_password(tail);
    format!("{scheme}://{user}{host}{tail}")
}

/// Hides a `password=` query parameter (libpq accepts it in URLs too).
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sqlite_relative_to_the_base() {
        let base = Path::new("/etc/edge");
        assert_eq!(
            Database::parse("data/control.db", base),
            Ok(Database::Sqlite(PathBuf::from("/etc/edge/data/control.db")))
        );
        assert_eq!(
            Database::parse("/var/lib/edge/c.db", base),
            Ok(Database::Sqlite(PathBuf::from("/var/lib/edge/c.db")))
        );
        // A colon without "//" is a (strange) file name, not a scheme.
        assert_eq!(
            Database::parse("c:db", base),
            Ok(Database::Sqlite(PathBuf::from("/etc/edge/c:db")))
        );
    }

    #[test]
    fn postgres_urls_are_postgres() {
        for u in [
            "postgres://edge:secret@127.0.0.1:5432/edge",
            "postgresql://edge@db.internal/edge?connect_timeout=5",
        ] {
            assert_eq!(
                Database::parse(u, Path::new("/")),
                Ok(Database::Postgres(u.to_string())),
                "{u}"
            );
        }
        assert_eq!(
            Database::parse("POSTGRES://localhost/edge", Path::new("/")),
            Ok(Database::Postgres("postgres://localhost/edge".into()))
        );
    }

    #[test]
    fn other_schemes_and_bad_urls_are_refused_without_the_password() {
        let e = Database::parse("mysql://u:hunter2@h/db", Path::new("/")).unwrap_err();
        assert!(e.contains("mysql:// scheme is not supported"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = Database::parse("sqlite://x.db", Path::new("/")).unwrap_err();
        assert!(e.contains("sqlite://"), "{e}");
        let e = Database::parse("postgres://u:hunter2@h:notaport/db", Path::new("/")).unwrap_err();
        assert!(e.contains("not a valid PostgreSQL URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(Database::parse("  ", Path::new("/")).is_err());
    }

    #[test]
    fn passwords_are_never_printed() {
        let d = Database::Postgres(
            "postgres://edge:hunter2@h:5432/db?password=x2&sslmode=disable".into(),
        );
        let shown = format!("{d:?} {}", d.describe());
        assert!(
            !shown.contains("hunter2") && !shown.contains("x2"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://edge:***@h:5432/db?password=***&sslmode=disable"),
            "{shown}"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
