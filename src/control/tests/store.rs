//! SQLite store: migrations, pragmas, search index upkeep.

use std::path::Path;

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

#[tokio::test]
async fn store_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open_async(dir.path().join("c.db"))
        .await
        .expect("open");
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
