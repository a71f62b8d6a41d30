//! `[purge]`: who may send the `PURGE` method to the player listener, and the fleet a purge
//! is fanned out to ([`crate::fleet`]).
//!
//! `fleet`: a `postgres://` (`postgresql://`) URL every edge of the fleet shares, or `"off"`.
//! Unset, an edge whose `[control] database` is a PostgreSQL URL joins the fleet of that
//! database ([`join_control_database`]); a SQLite control database means no fan-out. Needs
//! the `fleet` cargo feature (part of `control` and of the default build).

use std::time::Duration;

use super::error::ConfigError;
use super::file::PurgeSection;
use super::value::{duration, nets};

/// `fleet_poll` bounds: a poll is one indexed query per edge.
const POLL_MIN: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct PurgeConfig {
    /// Networks allowed to send the `PURGE` method to the player listener.
    pub allow: Vec<crate::net::IpNet>,
    /// The fleet's database (a validated PostgreSQL URL); `None` = this edge alone.
    pub fleet: Fleet,
    /// How often the bans table is read when no notification comes (the catch-up bound).
    pub fleet_poll: Duration,
}

/// `[purge] fleet`.
#[derive(Clone, PartialEq, Eq)]
pub enum Fleet {
    /// Not set: follow `[control] database` when it is PostgreSQL.
    Unset,
    /// `"off"`: no fan-out, whatever the control plane uses.
    Off,
    /// A PostgreSQL URL (never printed: it may hold a password).
    Postgres(String),
}

impl Fleet {
    /// The URL to join, if any.
    pub fn url(&self) -> Option<&str> {
        match self {
            Fleet::Postgres(u) => Some(u),
            Fleet::Unset | Fleet::Off => None,
        }
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fleet::Unset => f.write_str("Unset"),
            Fleet::Off => f.write_str("Off"),
            // Compared by reload through Debug: a changed URL must differ, unprinted.
            Fleet::Postgres(u) => write!(f, "Postgres(#{:016x})", fingerprint(u)),
        }
    }
}

fn fingerprint(text: &str) -> u64 {
    twox_hash::XxHash64::oneshot(0, text.as_bytes())
}

/// Reads `[purge] fleet`: `"off"`, or a PostgreSQL URL. The error is the reason.
pub fn parse_fleet(text: &str) -> Result<Fleet, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Fleet::Off);
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("expected a postgres:// (postgresql://) URL or \"off\"".into());
    };
    if !(scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")) {
        return Err(format!(
            "the {scheme}:// scheme is not supported; the fleet shares a PostgreSQL database \
             (postgres:// or postgresql://)"
        ));
    }
    let url = format!("{}://{rest}", scheme.to_ascii_lowercase());
    validate(&url)?;
    Ok(Fleet::Postgres(url))
}

#[cfg(feature = "fleet")]
fn validate(url: &str) -> Result<(), String> {
    // The driver's message quotes no part of the URL (it may hold a password); keep it so.
    url.parse::<tokio_postgres::Config>()
        .map(drop)
        .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))
}

#[cfg(not(feature = "fleet"))]
fn validate(_: &str) -> Result<(), String> {
    Ok(())
}

impl TryFrom<PurgeSection> for PurgeConfig {
    type Error = ConfigError;

    fn try_from(p: PurgeSection) -> Result<Self, ConfigError> {
        let allow = p
            .allow
            .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()]);
        let fleet = match p.fleet.as_deref() {
            None => Fleet::Unset,
            Some(text) => parse_fleet(text).map_err(|e| ConfigError::new("purge.fleet", e))?,
        };
        super::features::require(
            "purge.fleet",
            "fleet",
            matches!(fleet, Fleet::Postgres(_)),
            cfg!(feature = "fleet"),
        )?;
        let fleet_poll = duration("purge.fleet_poll", p.fleet_poll.as_deref(), "1s")?;
        if !(POLL_MIN..=POLL_MAX).contains(&fleet_poll) {
            return Err(ConfigError::new(
                "purge.fleet_poll",
                format!(
                    "must be from {} to {}",
                    humantime::format_duration(POLL_MIN),
                    humantime::format_duration(POLL_MAX)
                ),
            ));
        }
        Ok(PurgeConfig {
            allow: nets("purge.allow", &allow)?,
            fleet,
            fleet_poll,
        })
    }
}

/// An unset `fleet` follows `[control] database` when that is a PostgreSQL URL: edges that
/// share a control plane share their purges.
#[cfg(feature = "control")]
pub fn join_control_database(
    mut purge: PurgeConfig,
    database: Option<&crate::control::Database>,
) -> PurgeConfig {
    if let (Fleet::Unset, Some(crate::control::Database::Postgres(url))) = (&purge.fleet, database)
    {
        purge.fleet = Fleet::Postgres(url.clone());
    }
    purge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_urls_off_and_refusals() {
        assert_eq!(parse_fleet("off"), Ok(Fleet::Off));
        assert_eq!(
            parse_fleet("PostgreSQL://edge@db/edge"),
            Ok(Fleet::Postgres("postgresql://edge@db/edge".into()))
        );
        let e = parse_fleet("mysql://u:hunter2@h/db").unwrap_err();
        assert!(e.contains("mysql:// scheme is not supported"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse_fleet("db.internal").unwrap_err().contains("\"off\""));
        #[cfg(feature = "fleet")]
        {
            let e = parse_fleet("postgres://u:hunter2@h:notaport/db").unwrap_err();
            assert!(e.contains("not a valid PostgreSQL URL"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_url_is_never_printed_but_changes_show() {
        let a = format!("{:?}", Fleet::Postgres("postgres://u:hunter2@h/a".into()));
        let b = format!("{:?}", Fleet::Postgres("postgres://u:hunter2@h/b".into()));
        assert!(!a.contains("hunter2"), "{a}");
        assert_ne!(a, b);
    }
}
