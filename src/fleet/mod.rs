//! Purge fan-out: a purge accepted by any edge of a fleet reaches every edge through one
//! shared PostgreSQL database (`[purge] fleet`, or `[control] database` when that is
//! PostgreSQL; see [`crate::config::purge`]).
//!
//! - The accepting edge applies the ban locally first (its index and `bans.log`), then writes
//!   a row to `edge_bans` ([`schema`]) and commits before the purge call returns. The answer
//!   says whether the fleet got it ([`Sent`]); when the database cannot be reached the purge
//!   still holds on this edge, the caller is told (`"fleet": "unavailable"`, HTTP 202) and it
//!   is not retried by the edge: retrying the purge is the caller's move (it is idempotent).
//! - Every edge follows the table ([`follower`]): LISTEN/NOTIFY wakes it when a row commits,
//!   and a poll every `[purge] fleet_poll` (1 s) reads `id > last applied` in id order, so an
//!   edge that missed a notification, lost its connection or was down catches up. The last
//!   applied id is kept in `<cache dir>/fleet.json` ([`cursor`]), so a restart resumes there.
//!   Rows older than the cache's keep window are skipped; an edge skips its own rows.
//! - A ban from the fleet is applied at this edge's clock when it arrives: it covers every
//!   object stored here before it, whatever the clocks of the edges say.
//! - Where LISTEN is missing (CockroachDB, YugabyteDB) the follower polls only.
//!
//! Without the `fleet` cargo feature [`Fleet`] has no value, and a purge is this edge's alone.

#[cfg(feature = "fleet")]
pub mod cursor;
#[cfg(feature = "fleet")]
mod follower;
#[cfg(feature = "fleet")]
pub mod link;
#[cfg(feature = "fleet")]
mod member;
#[cfg(feature = "fleet")]
pub mod metrics;
#[cfg(feature = "fleet")]
pub mod schema;

#[cfg(feature = "fleet")]
pub use member::{Fleet, PUBLISH_TIMEOUT};

use crate::cache::bans::Ban;
use crate::cache::purge::Purge;
use crate::cache::Cache;

/// Whether the fleet got a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// This edge is in no fleet.
    Off,
    /// Committed as this row of `edge_bans`.
    Sent(i64),
    /// The database could not be reached (the reason, for the log).
    Unavailable(String),
}

impl Sent {
    /// The answer's `"fleet"` field.
    pub fn label(&self) -> &'static str {
        match self {
            Sent::Off => "off",
            Sent::Sent(_) => "sent",
            Sent::Unavailable(_) => "unavailable",
        }
    }
}

/// Without the `fleet` feature there is no fleet to join.
#[cfg(not(feature = "fleet"))]
pub enum Fleet {}

/// Apply a purge here, then hand it to `fleet` (see the module doc).
pub async fn purge(
    cache: &'static Cache,
    fleet: Option<&'static Fleet>,
    p: Purge,
) -> std::io::Result<(Ban, Sent)> {
    let ban = crate::cache::purge::apply(cache, p).await?;
    let sent = match fleet {
        #[cfg(feature = "fleet")]
        Some(fleet) => fleet.publish(&ban).await,
        #[cfg(not(feature = "fleet"))]
        Some(none) => match *none {},
        None => Sent::Off,
    };
    Ok((ban, sent))
}
