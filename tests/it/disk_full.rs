//! A full filesystem under the disk tier (issue #13 item 6). The tier reserves its files when
//! the cache opens, so a filesystem that fills later cannot fail foyer's writes: the tier keeps
//! writing (no failure, no degradation, no panic, bytes right), a restart on the still-full
//! filesystem finds its objects, and SIGTERM drains and exits 0. A tier the filesystem cannot
//! hold is refused by `edge check` and at start. The filesystem is a real 64 MiB tmpfs.

use std::time::Duration;

use crate::support::tmpfs::Tmpfs;
use crate::support::{bytes_of, free_port, Edge, Origin, Route};

const KIB: usize = 1024;

/// Bytes allocated to the tier's files in `dir` (they are sparse until reserved).
fn held(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("foyer-storage-")
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_tier_its_filesystem_cannot_hold_is_refused_by_check_and_at_start() {
    let fs = Tmpfs::mount(64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let write_in = |folder: &std::path::Path, disk: &str| {
        let cfg = dir.path().join("edge.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nhttp = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\n[cache]\ndir = \"{}\"\nmemory = \"4 MiB\"\ndisk = \"{disk}\"\nmax_object = \"1 MiB\"\n\
                 [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9\" }}]\n",
                free_port(),
                free_port(),
                folder.display()
            ),
        )
        .unwrap();
        cfg
    };
    let write = |disk: &str| write_in(fs.path(), disk);
    let run = |cmd: &str, cfg: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .args([cmd, "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // Larger than the filesystem.
    let cfg = write("96 MiB");
    let (code, err) = run("check", &cfg);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("cache.disk: 96.0 MiB is larger than its filesystem (64.0 MiB)"),
        "{err}"
    );
    let (code, err) = run("serve", &cfg);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains("cache.disk: 96.0 MiB is larger than its filesystem (64.0 MiB)"),
        "{err}"
    );
    // Refused before foyer created anything.
    assert_eq!(held(fs.path()), 0);
    assert!(
        fs.available() > 60 << 20,
        "nothing was left on the filesystem"
    );
    // A folder that does not exist yet may be a volume mounted later: `edge check` only warns,
    // the start (which creates it here) refuses.
    let later = fs.path().join("later");
    let cfg = write_in(&later, "96 MiB");
    let (code, err) = run("check", &cfg);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: cache.disk: 96.0 MiB is larger than its filesystem (64.0 MiB)"),
        "{err}"
    );
    assert!(err.contains("does not exist yet"), "{err}");
    let (code, err) = run("serve", &cfg);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains("cache.disk: 96.0 MiB is larger than its filesystem (64.0 MiB)"),
        "{err}"
    );
    assert_eq!(held(&later), 0);

    // Within the filesystem, not within its free space.
    let filler = fs.fill_but(24 << 20);
    let cfg = write("32 MiB");
    let (code, err) = run("check", &cfg);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(
            "cache.disk: 32.0 MiB does not fit in the free space (24.0 MiB free, 0 B already held"
        ),
        "{err}"
    );
    let (code, err) = run("serve", &cfg);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains("cache.disk: 32.0 MiB does not fit in the free space"),
        "{err}"
    );

    // Room again: `edge check` accepts it without a word about the disk.
    std::fs::remove_file(&filler).unwrap();
    let (code, err) = run("check", &cfg);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("cache.disk"), "{err}");
}

/// A 32 MiB tier on a 64 MiB filesystem that fills to the last byte while objects are evicted
/// to disk at once: before the reservation, foyer's writes met ENOSPC between two space checks
/// and foyer panicked (its flusher, block manager and tombstone log).
#[tokio::test]
async fn space_taken_between_two_checks_cannot_fail_a_write_of_the_reserved_tier() {
    // Declared before the edge, so it is unmounted after the edge is gone.
    let fs = Tmpfs::mount(64 << 20);
    let origin = Origin::start().await;
    let bodies: Vec<Vec<u8>> = (0..30).map(|i| bytes_of(512 * KIB, 500 + i)).collect();
    for (i, b) in bodies.iter().enumerate() {
        origin.route(&format!("/v/{i}.ts"), Route::ok(b.clone()));
    }
    let pool = format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\nread_timeout = \"10s\"\n",
        origin.addr
    );
    // A 4 MiB memory tier that evicts to the disk at once.
    let cache = format!(
        "dir = \"{}\"\nmemory = \"4 MiB\"\ndisk = \"32 MiB\"\nmax_object = \"1 MiB\"\ndisk_admission = \"first-hit\"\n",
        fs.path().display()
    );
    let mut edge = Edge::start_full(&pool, "", &cache).await;
    // The tier's files hold their space from the start: 28.1 MiB (a tombstone log, 7 blocks).
    let reserved = held(fs.path());
    assert!(reserved >= (28 << 20) + (128 << 10), "reserved {reserved}");
    assert!(
        fs.available() <= (64 << 20) - reserved,
        "the reservation is taken from the filesystem"
    );

    for (i, b) in bodies.iter().enumerate().take(10) {
        let (_, got) = edge.get_cached(&format!("/v/{i}.ts")).await;
        assert!(got == *b, "object {i}: the origin's bytes");
    }
    // The filesystem fills to the last byte, and objects are evicted to disk at once.
    let _filler = fs.fill_but(0);
    assert_eq!(fs.available(), 0);
    let written = edge.metric("edge_cache_disk_write_bytes_total").await;
    for (i, b) in bodies.iter().enumerate().skip(10) {
        let (_, got) = edge.get_cached(&format!("/v/{i}.ts")).await;
        assert!(got == *b, "object {i}: the origin's bytes");
    }
    // 10 MiB more through the 4 MiB memory tier: at least 5 MiB of it reaches the disk.
    let now_written = edge.disk_writes_settle(written + (5 << 20) as f64).await;
    assert!(
        now_written >= written + (5 << 20) as f64,
        "the tier writes on a full filesystem: {written} -> {now_written}"
    );
    // Two checks later, still healthy: nothing failed, nothing was short.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        edge.metric("edge_disk_tier_degraded").await,
        0.0,
        "{}",
        edge.log()
    );
    assert_eq!(
        edge.metric(r#"edge_disk_tier_errors_total{op="write"}"#)
            .await,
        0.0,
        "{}",
        edge.log()
    );
    assert_eq!(
        edge.metric(r#"edge_disk_tier_errors_total{op="space"}"#)
            .await,
        0.0,
        "{}",
        edge.log()
    );
    assert_eq!(
        held(fs.path()),
        reserved,
        "the tier took nothing beyond its reservation"
    );
    // Served bytes stay right, from memory or disk.
    for (i, b) in bodies.iter().enumerate() {
        let (_, got) = edge.get_cached(&format!("/v/{i}.ts")).await;
        assert!(got == *b, "object {i}: the origin's bytes");
    }
    let fetched: Vec<usize> = (0..bodies.len())
        .map(|i| origin.hits(&format!("/v/{i}.ts")))
        .collect();

    // SIGTERM on the still-full filesystem: the memory tier is flushed into the reserved
    // blocks; drain, exit 0. A restart there opens its reserved tier again.
    edge.terminate();
    let (status, _) = edge.wait_exit(Duration::from_secs(15)).await;
    let log = edge.log();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    assert_eq!(fs.available(), 0);
    edge.restart_after_stop().await;
    // Memory is empty after a restart: the last objects served come from the disk.
    let disk_hits = edge
        .metric(r#"edge_cache_lookups_total{result="disk"}"#)
        .await;
    for i in 26..30 {
        let (x, got) = edge.get_cached(&format!("/v/{i}.ts")).await;
        assert_eq!(x, "HIT", "object {i}");
        assert!(
            got == bodies[i],
            "object {i}: the disk copy is byte-identical"
        );
        assert_eq!(
            origin.hits(&format!("/v/{i}.ts")),
            fetched[i],
            "object {i}: not fetched again"
        );
    }
    edge.await_metric(
        r#"edge_cache_lookups_total{result="disk"}"#,
        disk_hits + 4.0,
    )
    .await;
    edge.terminate();
    let (status, _) = edge.wait_exit(Duration::from_secs(15)).await;
    let log = edge.log();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
}
