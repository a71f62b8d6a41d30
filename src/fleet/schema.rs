//! The fleet's tables in the shared database and the statements on them.
//!
//! Migrations (`src/fleet/migrations/NNNN_name.sql`) are versioned in `edge_fleet_schema`, a
//! table of their own, so the fan-out works the same whether or not the control plane uses
//! the database, and applied at connect in one transaction under an advisory lock: edges
//! starting at once apply each exactly once.

use tokio_postgres::{Client, GenericClient};

/// `(version, name, sql)`, in order.
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "0001_bans", include_str!("migrations/0001_bans.sql"))];

/// Held while migrating ("edgeflmg").
const MIGRATION_LOCK: i64 = 0x6564_6765_666c_6d67;
/// Held by each insert until it commits ("edgeflbn"), so ids become visible in order.
const INSERT_LOCK: i64 = 0x6564_6765_666c_626e;
/// The NOTIFY channel an insert signals.
pub const CHANNEL: &str = "edge_bans";

/// Milliseconds since the epoch on the database's clock.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Apply pending migrations; returns this database's fleet id.
pub async fn migrate(client: &mut Client) -> Result<String, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS edge_fleet_schema (
            version    BIGINT PRIMARY KEY,
            name       TEXT   NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM edge_fleet_schema",
            &[],
        )
        .await?
        .try_get(0)?;
    for (version, name, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            &format!(
                "INSERT INTO edge_fleet_schema (version, name, applied_at) \
                 VALUES ($1, $2, {DB_NOW_MS} / 1000)"
            ),
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "fleet: applied migration");
    }
    let id: String = tx
        .query_one("SELECT fleet_id FROM edge_fleet", &[])
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(id)
}

/// One row of `edge_bans`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub host: Option<String>,
    pub path: String,
    pub exact: bool,
    pub soft: bool,
    pub at_ms: i64,
    pub edge: i64,
    /// How long ago it was inserted when read, on the database's clock.
    pub age_ms: i64,
}

/// Insert `ban` as accepted by `edge`, wake the listeners, commit; returns its id.
pub async fn insert(
    client: &mut Client,
    ban: &crate::cache::bans::Ban,
    edge: i64,
) -> Result<i64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK])
        .await?;
    let at_ms = i64::try_from(ban.at_ms).unwrap_or(i64::MAX);
    let host = ban.host.as_deref();
    let path: &str = &ban.path;
    let id: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO edge_bans (host, path, exact, soft, at_ms, edge, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, {DB_NOW_MS}) RETURNING id"
            ),
            &[&host, &path, &ban.exact, &ban.soft, &at_ms, &edge],
        )
        .await?
        .try_get(0)?;
    // Delivered at commit; where NOTIFY is missing the followers' poll finds the row.
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &id.to_string()])
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Up to `limit` rows after `after`, in id order.
pub async fn after(
    client: &impl GenericClient,
    after: i64,
    limit: i64,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT id, host, path, exact, soft, at_ms, edge, {DB_NOW_MS} - created_ms \
                 FROM edge_bans WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            &[&after, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Row {
                id: r.try_get(0)?,
                host: r.try_get(1)?,
                path: r.try_get(2)?,
                exact: r.try_get(3)?,
                soft: r.try_get(4)?,
                at_ms: r.try_get(5)?,
                edge: r.try_get(6)?,
                age_ms: r.try_get(7)?,
            })
        })
        .collect()
}

/// The newest id in the table (0 when empty).
pub async fn newest(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one("SELECT COALESCE(MAX(id), 0)::BIGINT FROM edge_bans", &[])
        .await?
        .try_get(0)
}

/// Delete the rows no edge obeys any more (older than `horizon_ms`); returns how many.
pub async fn forget_before(
    client: &impl GenericClient,
    horizon_ms: i64,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM edge_bans WHERE at_ms < $1", &[&horizon_ms])
        .await
}
