//! [`Fleet`]: this edge's membership of a fleet: the writer connection that publishes the
//! purges accepted here, the follower ([`super::follower`]) and the metrics, on a runtime of
//! their own.

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
            // The whole attempt is bounded, waiting for the writer included: purges queued
            // behind one that hangs answer in time too.
            tokio::time::timeout(PUBLISH_TIMEOUT, async {
                let mut writer = self.writer.lock().await;
                // Out of the slot while in use: an attempt that fails or is cut short drops
                // it (its commit may or may not have happened) and the next one connects anew.
                let mut c = match writer.take().filter(|c| !c.is_closed()) {
                    Some(c) => c,
                    None => {
                        let mut c = link::connect(&self.cfg, None).await?;
                        schema::migrate(&mut c).await?;
                        c
                    }
                };
                let id = schema::insert(&mut c, &ban, self.edge).await?;
                *writer = Some(c);
                Ok::<i64, tokio_postgres::Error>(id)
            })
            .await
            .map_err(|_| format!("no answer within {PUBLISH_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())
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
