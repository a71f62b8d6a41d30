//! The disk tier: large objects reach it, one-hit wonders do not churn it, damaged entries
//! are misses.

use crate::support::{bytes_of, Edge, Origin, Route};

fn pool(origin: &Origin) -> String {
    format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\nread_timeout = \"10s\"\n",
        origin.addr
    )
}

/// Wait (bounded) until foyer's flushers have written at least `bytes` to disk.
async fn disk_written_at_least(edge: &Edge, bytes: f64) -> f64 {
    let mut written = 0.0;
    for _ in 0..100 {
        written = edge.metric("edge_cache_disk_write_bytes_total").await;
        if written >= bytes {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    written
}

#[tokio::test]
async fn a_20_mib_object_reaches_the_disk_tier_and_is_served_from_it() {
    let origin = Origin::start().await;
    let body = bytes_of(20 << 20, 60);
    origin.route("/v/big.mp4", Route::ok(body.clone()));
    let mut edge = Edge::start_full(
        &pool(&origin),
        "",
        "memory = \"32 MiB\"\nmax_object = \"24 MiB\"\ndisk = \"256 MiB\"\n",
    )
    .await;
    let (x, got) = edge.get_cached("/v/big.mp4").await;
    assert_eq!(x, "MISS");
    assert!(got == body);
    // A graceful restart flushes the memory tier; the object must come back from disk.
    edge.restart().await;
    let written = edge.metric("edge_cache_disk_write_bytes_total").await;
    assert_eq!(written, 0.0, "a fresh process has written nothing yet");
    let (x, got) = edge.get_cached("/v/big.mp4").await;
    assert_eq!(x, "HIT");
    assert!(got == body, "the disk copy is byte-identical");
    assert_eq!(
        edge.metric(r#"edge_cache_lookups_total{result="disk"}"#)
            .await,
        1.0
    );
    let disk_bytes = edge.metric(r#"edge_cache_bytes{tier="disk"}"#).await;
    assert!(
        disk_bytes >= (20 << 20) as f64,
        "the disk tier holds the object: {disk_bytes}"
    );
    assert_eq!(origin.hits("/v/big.mp4"), 1);
}

/// Disk bytes written for 40 one-hit objects of 256 KiB through a 4 MiB memory tier.
async fn one_hit_disk_bytes(admission: &str) -> f64 {
    let origin = Origin::start().await;
    for i in 0..40 {
        origin.route(
            &format!("/v/once/{i}.ts"),
            Route::ok(bytes_of(256 * 1024, 100 + i)),
        );
    }
    origin.route("/v/twice.ts", Route::ok(bytes_of(256 * 1024, 99)));
    let cache = format!("memory = \"4 MiB\"\ndisk_admission = \"{admission}\"\n");
    let edge = Edge::start_full(&pool(&origin), "", &cache).await;
    for i in 0..40 {
        edge.get_cached(&format!("/v/once/{i}.ts")).await;
    }
    // Let the flushers write what memory evicted.
    let written = disk_written_at_least(&edge, 20.0 * 256.0 * 1024.0).await;
    assert_eq!(origin.total_hits(), 40);
    written
}

#[tokio::test]
async fn one_hit_wonders_do_not_churn_the_disk() {
    let with = one_hit_disk_bytes("second-hit").await;
    let without = one_hit_disk_bytes("first-hit").await;
    eprintln!(
        "disk bytes written for 40 one-hit 256 KiB objects: second-hit {with}, first-hit {without}"
    );
    assert!(
        without >= 20.0 * 256.0 * 1024.0,
        "first-hit admission writes evicted objects: {without}"
    );
    assert!(
        with < without / 10.0,
        "second-hit admission writes far less: {with} vs {without}"
    );
}

#[tokio::test]
async fn damaged_disk_entries_are_misses_never_bad_bytes() {
    let origin = Origin::start().await;
    let bodies: Vec<Vec<u8>> = (0..6).map(|i| bytes_of(300_000, 200 + i)).collect();
    for (i, b) in bodies.iter().enumerate() {
        origin.route(&format!("/v/c/{i}.ts"), Route::ok(b.clone()));
    }
    let mut edge = Edge::start_full(&pool(&origin), "", "").await;
    for i in 0..bodies.len() {
        edge.get_cached(&format!("/v/c/{i}.ts")).await;
    }
    // Graceful stop flushes everything to disk; then damage every data file past its header.
    edge.terminate();
    edge.wait_exit(std::time::Duration::from_secs(15)).await;
    let mut damaged = 0;
    for entry in std::fs::read_dir(edge.cache_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("foyer-storage") {
            continue;
        }
        let mut data = std::fs::read(&path).unwrap();
        if data.iter().all(|&b| b == 0) {
            continue;
        }
        for (j, b) in data.iter_mut().enumerate().skip(4096) {
            if j % 7 == 0 {
                *b ^= 0x5a;
            }
        }
        std::fs::write(&path, data).unwrap();
        damaged += 1;
    }
    assert!(damaged >= 1, "found data files to damage");
    edge.restart_after_stop().await;
    for (i, b) in bodies.iter().enumerate() {
        let (_, got) = edge.get_cached(&format!("/v/c/{i}.ts")).await;
        assert!(
            got == *b,
            "object {i}: correct bytes, from the origin if the disk copy was damaged"
        );
    }
    assert!(
        origin.total_hits() > bodies.len(),
        "damaged objects were refetched"
    );
}
