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
//! Without the `fleet` cargo feature only [`purge`] and [`Sent`] exist, and a purge is this
//! edge's alone.

#[cfg(feature = "fleet")]
pub mod cursor;
#[cfg(feature = "fleet")]
mod follower;
#[cfg(feature = "fleet")]
pub mod link;
#[cfg(feature = "fleet")]
pub mod metrics;
#[cfg(feature = "fleet")]
pub mod schema;

use crate::cache::bans::Ban;
use crate::cache::purge::Purge;
use crate::state::EdgeState;

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

/// Apply a purge here, then hand it to the fleet (see the module doc).
pub async fn purge(state: &EdgeState, p: Purge) -> std::io::Result<(Ban, Sent)> {
    let ban = crate::cache::purge::apply(state.cache, p).await?;
    #[cfg(feature = "fleet")]
    if let Some(fleet) = state.fleet {
        let sent = fleet.publish(&ban).await;
        return Ok((ban, sent));
    }
    Ok((ban, Sent::Off))
}

#[cfg(feature = "fleet")]
pub use fleet::Fleet;

#[cfg(feature = "fleet")]
mod fleet {
    use std::path::PathBuf;
    use std::time::Duration;

    use tokio::sync::Mutex;
    use tokio_postgres::Client;

    use super::cursor::Cursor;
    use super::metrics::FleetMetrics;
    use super::{link, schema, Sent};
    use crate::cache::bans::Ban;
    use crate::cache::Cache;

    /// How long a purge waits for its row to commit before answering "unavailable".
    pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

    /// This edge's membership of a fleet: the writer connection, the follower, the metrics.
    pub struct Fleet {
        pub(super) cfg: tokio_postgres::Config,
        pub(super) rt: tokio::runtime::Runtime,
        pub(super) cache: &'static Cache,
        pub(super) dir: PathBuf,
        pub(super) poll: Duration,
        pub(super) metrics: FleetMetrics,
        /// This edge's identity in `edge_bans.edge` (from its cursor).
        pub(super) edge: i64,
        pub(super) cursor: std::sync::Mutex<Cursor>,
        writer: Mutex<Option<Client>>,
    }

    fn seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        twox_hash::XxHash64::oneshot(u64::from(std::process::id()), &nanos.to_le_bytes())
    }

    impl Fleet {
        /// Join the fleet of `url`: metrics registered, the follower started. The database
        /// need not be up: the follower keeps trying, and purges say it is unavailable.
        pub fn start(
            url: &str,
            poll: Duration,
            cache: &'static Cache,
            dir: PathBuf,
            registry: &prometheus::Registry,
        ) -> Result<&'static Fleet, String> {
            let cfg = link::config(url)?;
            let metrics = FleetMetrics::new(registry).map_err(|e| format!("metrics: {e}"))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("edge-fleet")
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            let cursor = Cursor::load(&dir, seed());
            let fleet: &'static Fleet = Box::leak(Box::new(Fleet {
                cfg,
                rt,
                cache,
                dir,
                poll,
                metrics,
                edge: cursor.edge,
                cursor: std::sync::Mutex::new(cursor),
                writer: Mutex::new(None),
            }));
            fleet.rt.spawn(fleet.follow());
            Ok(fleet)
        }

        /// Write `ban` (applied here already) for the rest of the fleet; on the fleet's
        /// runtime, bounded by [`PUBLISH_TIMEOUT`].
        pub async fn publish(&'static self, ban: &Ban) -> Sent {
            let ban = ban.clone();
            let job = self.rt.spawn(async move {
                let mut writer = self.writer.lock().await;
                let attempt = tokio::time::timeout(PUBLISH_TIMEOUT, async {
                    if writer.as_ref().is_none_or(Client::is_closed) {
                        let mut c = link::connect(&self.cfg, None).await?;
                        schema::migrate(&mut c).await?;
                        *writer = Some(c);
                    }
                    match writer.as_mut() {
                        Some(c) => schema::insert(c, &ban, self.edge).await.map(Some),
                        None => Ok(None),
                    }
                })
                .await;
                match attempt {
                    Ok(Ok(Some(id))) => Ok(id),
                    Ok(Ok(None)) => Err("no connection".to_string()),
                    Ok(Err(e)) => {
                        *writer = None;
                        Err(e.to_string())
                    }
                    Err(_) => {
                        // The commit may or may not have happened: start on a new connection.
                        *writer = None;
                        Err(format!("no answer within {PUBLISH_TIMEOUT:?}"))
                    }
                }
            });
            match job.await {
                Ok(Ok(id)) => Sent::Sent(id),
                Ok(Err(e)) => {
                    self.metrics.publish_failures.inc();
                    tracing::warn!(error = %e, "fleet: purge applied here only: the fleet database is unavailable");
                    Sent::Unavailable(e)
                }
                Err(e) => {
                    self.metrics.publish_failures.inc();
                    Sent::Unavailable(e.to_string())
                }
            }
        }
    }
}
