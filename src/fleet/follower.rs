//! The follower: applies the fleet's bans on this edge in id order.
//!
//! One loop on the fleet's runtime: (re)connect (migrating, `LISTEN`), read the rows after
//! the cursor in batches, apply each, save the cursor, then wait for a notification or
//! `[purge] fleet_poll`, whichever comes first. Any database error or lost connection drops
//! the connection, counts a poll error and reconnects (after one poll interval on errors). Once an hour it also deletes the
//! rows older than the keep window (any edge may; the delete is idempotent).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_postgres::Client;

use super::cursor::Cursor;
use super::{link, schema, Fleet};
use crate::cache::purge::Purge;

/// Rows read per query.
const BATCH: i64 = 500;
/// A read that takes longer counts as a lost connection.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often expired rows are deleted.
const FORGET_EVERY: Duration = Duration::from_secs(3600);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What to do with one row.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Apply,
    Own,
    Expired,
}

/// Pure: a row written by `edge` was applied when accepted; one older than `horizon_ms` can
/// match no object this edge may still serve.
pub(super) fn step(row: &schema::Row, edge: i64, horizon_ms: i64) -> Step {
    if row.edge == edge {
        Step::Own
    } else if row.at_ms < horizon_ms {
        Step::Expired
    } else {
        Step::Apply
    }
}

impl Fleet {
    fn cursor(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connect, migrate, listen (poll only where LISTEN is refused), adopt the fleet id.
    async fn open(&self, wake: &Arc<Notify>) -> Result<Client, tokio_postgres::Error> {
        let mut c = link::connect(&self.cfg, Some(wake.clone())).await?;
        let fleet = schema::migrate(&mut c).await?;
        if self.cursor().join(&fleet) {
            tracing::info!(
                "fleet: joined a fleet database this edge has not followed yet: applying its bans from the start"
            );
        }
        match c
            .batch_execute(&format!("LISTEN {}", schema::CHANNEL))
            .await
        {
            Ok(()) => self.metrics.listening.set(1),
            Err(e) if e.code().is_some() => {
                // CockroachDB and YugabyteDB have no LISTEN: the poll is the only way.
                self.metrics.listening.set(0);
                tracing::info!(error = %e, "fleet: the database refuses LISTEN: polling only");
            }
            Err(e) => return Err(e),
        }
        // Whatever was notified before LISTEN is read by the first poll.
        wake.notify_one();
        Ok(c)
    }

    /// Read and apply one batch; `true` when it was full (read again at once).
    async fn poll(&self, c: &Client) -> Result<bool, tokio_postgres::Error> {
        let last = self.cursor().last;
        let rows = schema::after(c, last, BATCH).await?;
        let read_at = Instant::now();
        self.metrics.newest_id.set(schema::newest(c).await?);
        let Some(end) = rows.last().map(|r| r.id) else {
            return Ok(false);
        };
        let horizon = now_ms().saturating_sub(
            i64::try_from(self.cache.bans.keep_for().as_millis()).unwrap_or(i64::MAX),
        );
        for row in &rows {
            match step(row, self.edge, horizon) {
                Step::Own => self.metrics.skipped.with_label_values(&["own"]).inc(),
                Step::Expired => self.metrics.skipped.with_label_values(&["expired"]).inc(),
                Step::Apply => {
                    let purge = Purge {
                        host: row.host.clone(),
                        path: row.path.clone(),
                        query: None,
                        exact: row.exact,
                        soft: row.soft,
                    };
                    if let Err(e) = crate::cache::purge::apply(self.cache, purge).await {
                        // Not recorded here (the disk refused bans.log): try again next poll.
                        tracing::error!(error = %e, id = row.id, "fleet: a ban could not be recorded");
                        self.save_cursor();
                        return Ok(false);
                    }
                    self.metrics.applied.inc();
                    let age = Duration::from_millis(u64::try_from(row.age_ms).unwrap_or(0));
                    self.metrics
                        .propagation
                        .observe((age + read_at.elapsed()).as_secs_f64());
                }
            }
            self.cursor().last = row.id;
        }
        self.metrics.last_applied_id.set(end);
        self.save_cursor();
        Ok(rows.len() as i64 == BATCH)
    }

    fn save_cursor(&self) {
        let cursor = self.cursor().clone();
        if let Err(e) = cursor.save(&self.dir) {
            tracing::warn!(error = %e, "fleet: saving the cursor failed; a restart applies some bans again");
        }
    }

    async fn forget(&self, c: &Client) -> Result<(), tokio_postgres::Error> {
        let keep = i64::try_from(self.cache.bans.keep_for().as_millis()).unwrap_or(i64::MAX);
        let n = schema::forget_before(c, now_ms().saturating_sub(keep)).await?;
        if n > 0 {
            tracing::info!(rows = n, "fleet: deleted bans past the keep window");
        }
        Ok(())
    }

    /// The follower's loop; runs as long as the process.
    pub(super) async fn follow(&'static self) {
        let wake = Arc::new(Notify::new());
        let mut client: Option<Client> = None;
        let mut forgot: Option<Instant> = None;
        loop {
            let lost = client.as_ref().is_some_and(Client::is_closed);
            if lost {
                // The server closed it (a restart, a failover): counted, then reconnected.
                self.metrics.poll_errors.inc();
                tracing::warn!("fleet: the database connection was lost; reconnecting");
            }
            let c = match client.take().filter(|c| !c.is_closed()) {
                Some(c) => c,
                None => {
                    self.metrics.listening.set(0);
                    match tokio::time::timeout(QUERY_TIMEOUT, self.open(&wake)).await {
                        Ok(Ok(c)) => c,
                        outcome => {
                            self.metrics.poll_errors.inc();
                            let e = match outcome {
                                Ok(Err(e)) => e.to_string(),
                                _ => "timed out".to_string(),
                            };
                            tracing::warn!(error = %e, "fleet: cannot reach the fleet database; retrying");
                            tokio::time::sleep(self.poll).await;
                            continue;
                        }
                    }
                }
            };
            let full = match tokio::time::timeout(QUERY_TIMEOUT, self.poll(&c)).await {
                Ok(Ok(full)) => full,
                outcome => {
                    self.metrics.poll_errors.inc();
                    if let Ok(Err(e)) = outcome {
                        tracing::warn!(error = %e, "fleet: reading the bans failed; reconnecting");
                    }
                    tokio::time::sleep(self.poll).await;
                    continue;
                }
            };
            if forgot.is_none_or(|t| t.elapsed() >= FORGET_EVERY) {
                forgot = Some(Instant::now());
                if let Err(e) = self.forget(&c).await {
                    tracing::warn!(error = %e, "fleet: deleting expired bans failed");
                }
            }
            client = Some(c);
            if full {
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(edge: i64, at_ms: i64) -> schema::Row {
        schema::Row {
            id: 1,
            host: None,
            path: "/v/".into(),
            exact: false,
            soft: false,
            at_ms,
            edge,
            age_ms: 0,
        }
    }

    #[test]
    fn own_rows_and_expired_rows_are_skipped() {
        assert_eq!(step(&row(7, 1000), 7, 0), Step::Own);
        assert_eq!(step(&row(8, 999), 7, 1000), Step::Expired);
        assert_eq!(step(&row(8, 1000), 7, 1000), Step::Apply);
    }
}
