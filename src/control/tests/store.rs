//! The stores: SQLite's migrations, pragmas and search index upkeep; PostgreSQL's
//! migrations under concurrent starts; and the store contract on both (one parameterised
//! suite), including search returning the same titles on both.

use std::path::Path;
use std::sync::Arc;

use super::pg_server;
use super::support::{on_both_stores, Backend};
use crate::control::api::open_store;
use crate::control::store::postgres::PgStore;

use crate::control::model::{Maturity, NewProfile, Registration, Title};
use crate::control::store::sqlite::{latest_version, SqliteStore, MIGRATIONS};
use crate::control::store::{PutMode, PutOutcome, SessionLookup, Store, StoreError};

fn reg(email: &str) -> Registration {
    Registration {
        email: email.into(),
        password: "unused".into(),
        first_profile: NewProfile {
            display_name: "x".into(),
            language: "en".into(),
            maturity: Maturity::Adult,
        },
    }
}

#[test]
fn migration_files_match_the_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control/migrations");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("migrations dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<String> = MIGRATIONS
        .iter()
        .map(|m| format!("{}.sql", m.name))
        .collect();
    assert_eq!(files, listed, "every migration file is listed, in order");
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1, "versions are 1, 2, 3, …");
        assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        let on_disk = std::fs::read_to_string(dir.join(format!("{}.sql", m.name))).expect("read");
        assert_eq!(on_disk, m.sql);
    }
}

#[tokio::test]
async fn open_migrates_once_with_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.db");
    let s = SqliteStore::open_async(path.clone()).await.expect("open");
    assert_eq!(s.schema_version().await.expect("version"), latest_version());
    drop(s);
    let s = SqliteStore::open_async(path.clone()).await.expect("reopen");
    assert_eq!(s.schema_version().await.expect("version"), latest_version());
    let c = rusqlite::Connection::open(&path).expect("open");
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        rows,
        MIGRATIONS.len() as i64,
        "each migration recorded once"
    );
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    // Foreign keys are enforced by the store's connections.
    let e = s
        .create_session([1; 32], 424242, 0, 10)
        .await
        .expect_err("no such user");
    assert!(matches!(e, StoreError::NotFound("user")), "{e:?}");
    let e = s
        .put_progress(1, "nope", 1, 0)
        .await
        .expect_err("no such title/profile");
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.db");
    drop(SqliteStore::open_async(path.clone()).await.expect("open"));
    let c = rusqlite::Connection::open(&path).expect("open");
    c.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (99, '0099_future', 0)",
        [],
    )
    .expect("insert");
    drop(c);
    let e = SqliteStore::open_async(path)
        .await
        .expect_err("newer schema");
    assert!(e.to_string().contains("newer"), "{e}");
}

#[tokio::test]
async fn search_migration_indexes_existing_titles() {
    // A database at version 1 with a title, then opened by this build: 0002 indexes it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.db");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);",
        )
        .expect("schema_version");
        c.execute_batch(MIGRATIONS[0].sql).expect("0001");
        c.execute(
            "INSERT INTO schema_version VALUES (1, '0001_initial', 0)",
            [],
        )
        .expect("v1");
        c.execute(
            "INSERT INTO titles (id, name, description, tags, rating, duration_seconds, origin_path, acl_path, renditions, countries, created_at, updated_at)
             VALUES ('old', 'Ancient Relic', '', '[]', 'G', 10, '/old/m.m3u8', '/old/', '[{\"height\":240,\"bandwidth\":1}]', '[]', 0, 0)",
            [],
        )
        .expect("title");
    }
    let s = SqliteStore::open_async(path).await.expect("migrate");
    assert_eq!(s.schema_version().await.expect("v"), latest_version());
    let p = s
        .search_titles(&["relic".into()], 0, 10)
        .await
        .expect("search");
    assert_eq!(p.total, 1);
    assert_eq!(p.items[0].id, "old");
}

/// A store on a new database of backend `b` (the folder holds a SQLite file).
async fn fresh_store(b: Backend, dir: &Path) -> Arc<dyn Store> {
    open_store(&b.fresh_database(dir))
        .await
        .expect("open store")
}

async fn store_round_trips(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = fresh_store(b, dir.path()).await;
    let demo = Title::demo();
    assert_eq!(
        s.put_title(&demo, PutMode::IfAbsent, 1).await.expect("put"),
        PutOutcome::Created
    );
    assert_eq!(
        s.put_title(&demo, PutMode::IfAbsent, 1).await.expect("put"),
        PutOutcome::Kept
    );
    assert!(matches!(
        s.put_title(&demo, PutMode::Create, 1).await,
        Err(StoreError::Conflict("title"))
    ));
    assert_eq!(s.title("demo").await.expect("get"), Some(demo.clone()));

    let (u, p) = s
        .create_user(&reg("a@b.co"), "hash".into(), 5)
        .await
        .expect("user");
    assert!(matches!(
        s.create_user(&reg("a@b.co"), "h".into(), 5).await,
        Err(StoreError::Conflict("email"))
    ));
    assert_eq!(
        s.credentials("a@b.co")
            .await
            .expect("creds")
            .map(|c| c.password_hash),
        Some("hash".into())
    );
    assert_eq!(
        s.profile(u.id, None).await.expect("profile"),
        Some(p.clone())
    );
    assert_eq!(
        s.profile(u.id, Some(p.id + 1000)).await.expect("profile"),
        None
    );

    s.create_session([9; 32], u.id, 10, 20)
        .await
        .expect("session");
    assert_eq!(
        s.session([9; 32], 19).await.expect("s"),
        SessionLookup::Valid(u.clone())
    );
    assert_eq!(
        s.session([9; 32], 20).await.expect("s"),
        SessionLookup::Expired
    );
    assert_eq!(
        s.session([8; 32], 0).await.expect("s"),
        SessionLookup::Unknown
    );
    assert_eq!(s.purge_sessions(19).await.expect("purge"), 0);
    assert_eq!(s.purge_sessions(20).await.expect("purge"), 1);

    let updated = s
        .set_tier(u.id, crate::control::Tier::Premium)
        .await
        .expect("tier")
        .expect("user");
    assert_eq!(updated.tier, crate::control::Tier::Premium);
    assert_eq!(
        s.set_tier(u.id + 99, crate::control::Tier::Basic)
            .await
            .expect("tier"),
        None
    );

    s.put_progress(p.id, "demo", 5, 100)
        .await
        .expect("progress");
    let cw = s.continue_watching(p.id, 0, 10).await.expect("cw");
    assert_eq!(cw.total, 1);
    assert_eq!(cw.items[0].position_seconds, 5);
    assert!(s.delete_title("demo").await.expect("delete"));
    assert_eq!(s.continue_watching(p.id, 0, 10).await.expect("cw").total, 0);
    assert_eq!(
        s.search_titles(&["demo".into()], 0, 10)
            .await
            .expect("search")
            .total,
        0
    );
    assert_eq!(s.search_titles(&[], 0, 10).await.expect("search").total, 0);
}

/// A small catalog with accents, hyphens, shared prefixes and words in every field.
fn search_catalog() -> Vec<Title> {
    let mk = |id: &str, name: &str, description: &str, tags: &[&str]| {
        let mut t = Title::demo();
        t.id = id.into();
        t.name = name.into();
        t.description = description.into();
        t.tags = tags.iter().map(|s| s.to_string()).collect();
        t.origin_path = format!("/{id}/master.m3u8");
        t.acl_path = format!("/{id}/");
        t
    };
    vec![
        mk(
            "cafe",
            "Café Society",
            "A night at the café.",
            &["drama", "paris"],
        ),
        mk(
            "ocean",
            "Ocean Drift",
            "Sailing the Pacific on a catamaran.",
            &["documentary", "sea"],
        ),
        mk(
            "sea",
            "The Sea Inside",
            "Drama about the sea and a life-long wish.",
            &["drama"],
        ),
        mk(
            "x-men",
            "X-Men 2",
            "Mutants, again (2003).",
            &["action", "sci-fi"],
        ),
        mk(
            "pacific",
            "Pacific Rim",
            "Robots versus sea monsters.",
            &["action", "monsters"],
        ),
        mk(
            "naive",
            "Naïve Melody",
            "Music documentary, 1983.",
            &["music", "documentary"],
        ),
    ]
}

/// Search finds the same titles on both stores for every query of this list.
async fn search_returns_the_same_titles(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = fresh_store(b, dir.path()).await;
    for t in search_catalog() {
        s.put_title(&t, PutMode::Create, 1).await.expect("put");
    }
    let expect: &[(&[&str], &[&str])] = &[
        (&["sea"], &["ocean", "pacific", "sea"]),
        (&["se"], &["ocean", "pacific", "sea"]),
        (&["cafe"], &["cafe"]),
        (&["café"], &["cafe"]),
        (&["drama"], &["cafe", "sea"]),
        (&["documentary"], &["naive", "ocean"]),
        (&["naive"], &["naive"]),
        (&["sci"], &["x-men"]),
        (&["men", "2"], &["x-men"]),
        (&["2003"], &["x-men"]),
        (&["pacific", "sea"], &["ocean", "pacific"]),
        (&["life"], &["sea"]),
        (&["long"], &["sea"]),
        (&["zebra"], &[]),
        (&["sea", "zebra"], &[]),
    ];
    for (terms, want) in expect {
        let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
        let p = s.search_titles(&terms, 0, 50).await.expect("search");
        let mut got: Vec<&str> = p.items.iter().map(|t| t.id.as_str()).collect();
        got.sort();
        assert_eq!(&got, want, "{b:?}: {terms:?}");
        assert_eq!(p.total, want.len() as u64, "{b:?}: {terms:?}");
    }
    // The name outranks the description: "sea" in a name comes before "sea" in a text.
    let p = s
        .search_titles(&["inside".into()], 0, 10)
        .await
        .expect("search");
    assert_eq!(p.items.len(), 1);
    let p = s
        .search_titles(&["sea".into()], 0, 10)
        .await
        .expect("search");
    assert_eq!(p.items[0].id, "sea", "{b:?}: name match first");
    // Paging: the total stays, the items are the window.
    let p = s
        .search_titles(&["sea".into()], 1, 1)
        .await
        .expect("search");
    assert_eq!((p.total, p.items.len()), (3, 1));
    // A renamed title is found under its new name only; a deleted one not at all.
    let mut t = search_catalog().remove(0);
    t.name = "Tea Room".into();
    t.description = String::new();
    t.tags = Vec::new();
    assert_eq!(
        s.put_title(&t, PutMode::Upsert, 2).await.expect("upsert"),
        PutOutcome::Replaced
    );
    assert_eq!(
        s.search_titles(&["cafe".into()], 0, 10)
            .await
            .expect("search")
            .total,
        0
    );
    assert_eq!(
        s.search_titles(&["tea".into()], 0, 10)
            .await
            .expect("search")
            .total,
        1
    );
    assert!(s.delete_title("cafe").await.expect("delete"));
    assert_eq!(
        s.search_titles(&["tea".into()], 0, 10)
            .await
            .expect("search")
            .total,
        0
    );
}

on_both_stores!(store_round_trips, search_returns_the_same_titles);

/// Several edges starting at once on one new database: each migration is applied once and
/// every start succeeds (the advisory lock serialises them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_migrates_once_under_concurrent_starts() {
    let url = pg_server::shared().create_database();
    let opens = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::open(&url).await })
    });
    for o in opens.collect::<Vec<_>>() {
        let s = o.await.expect("join").expect("open");
        assert_eq!(s.schema_version().await.expect("version"), latest_version());
    }
    let rows = pg_server::shared()
        .psql(&url, "SELECT string_agg(version::text || ':' || name, ',' ORDER BY version) FROM schema_version")
        .expect("psql");
    let want: Vec<String> = MIGRATIONS
        .iter()
        .map(|m| format!("{}:{}", m.version, m.name))
        .collect();
    assert_eq!(rows, want.join(","), "each migration recorded once");
}

#[tokio::test]
async fn postgres_newer_schema_is_refused_and_old_titles_are_indexed() {
    let server = pg_server::shared();
    let url = server.create_database();
    // A database at version 1 with a title, then opened by this build: 0002 and the open
    // index it.
    let v1 = crate::control::store::postgres::MIGRATIONS[0].sql;
    server
        .psql(&url, "CREATE TABLE schema_version (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .expect("schema_version");
    server.psql(&url, v1).expect("0001");
    server
        .psql(
            &url,
            "INSERT INTO schema_version VALUES (1, '0001_initial', 0);
             INSERT INTO titles (id, name, description, tags, rating, duration_seconds, origin_path, acl_path, renditions, countries, created_at, updated_at)
             VALUES ('old', 'Ancient Relic', '', '[]', 'G', 10, '/old/m.m3u8', '/old/', '[{\"height\":240,\"bandwidth\":1}]', '[]', 0, 0)",
        )
        .expect("v1 title");
    let s = PgStore::open(&url).await.expect("migrate");
    assert_eq!(s.schema_version().await.expect("v"), latest_version());
    let p = s
        .search_titles(&["relic".into()], 0, 10)
        .await
        .expect("search");
    assert_eq!(p.total, 1);
    assert_eq!(p.items[0].id, "old");
    drop(s);
    server
        .psql(
            &url,
            "INSERT INTO schema_version VALUES (99, '0099_future', 0)",
        )
        .expect("future");
    let e = PgStore::open(&url).await.expect_err("newer schema");
    assert!(e.to_string().contains("newer"), "{e}");
}
