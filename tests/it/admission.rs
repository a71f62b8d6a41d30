//! Disk admission with the default `second-hit-when-full`: while the disk tier has room, an
//! object memory evicts before its second request goes to disk (one origin fetch, like
//! first-hit); once the disk is full, one-hit wonders stay off it (like second-hit).

use crate::support::{bytes_of, Edge, Origin, Route};

const KIB: usize = 1024;

fn pool(origin: &Origin) -> String {
    format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\nread_timeout = \"10s\"\n",
        origin.addr
    )
}

/// Origin fetches of an object requested once, pushed out of a 4 MiB memory tier by 40 other
/// objects, then requested again; and what the second request was.
async fn refetches(admission: Option<&str>) -> (usize, String) {
    let origin = Origin::start().await;
    let body = bytes_of(256 * KIB, 7);
    origin.route("/v/first.ts", Route::ok(body.clone()));
    for i in 0..40 {
        origin.route(
            &format!("/v/other/{i}.ts"),
            Route::ok(bytes_of(256 * KIB, 100 + i)),
        );
    }
    let mut cache = "memory = \"4 MiB\"\n".to_string();
    if let Some(a) = admission {
        cache.push_str(&format!("disk_admission = \"{a}\"\n"));
    }
    let edge = Edge::start_full(&pool(&origin), "", &cache).await;
    assert_eq!(edge.get_cached("/v/first.ts").await.0, "MISS");
    for i in 0..40 {
        edge.get_cached(&format!("/v/other/{i}.ts")).await;
    }
    edge.disk_writes_settle(0.0).await;
    let (x, got) = edge.get_cached("/v/first.ts").await;
    assert!(got == body, "the origin's bytes");
    (origin.hits("/v/first.ts"), x)
}

#[tokio::test]
async fn an_object_evicted_before_its_second_request_is_a_disk_hit_while_the_disk_has_room() {
    let (fetches, x) = refetches(None).await;
    assert_eq!(
        (fetches, x.as_str()),
        (1, "HIT"),
        "the default admits to disk while it has room"
    );
    // What second-hit admission costs here: the origin is asked again.
    let (fetches, x) = refetches(Some("second-hit")).await;
    assert_eq!((fetches, x.as_str()), (2, "MISS"));
}

/// Disk bytes written while `count` one-hit 256 KiB objects pass through a 4 MiB memory tier
/// after `fill` others filled a 16 MiB disk tier.
async fn written_once_full(admission: &str, fill: usize, count: usize) -> f64 {
    let origin = Origin::start().await;
    for i in 0..fill + count {
        origin.route(
            &format!("/v/{i}.ts"),
            Route::ok(bytes_of(256 * KIB, 1000 + i as u64)),
        );
    }
    let cache = format!(
        "memory = \"4 MiB\"\ndisk = \"16 MiB\"\nmax_object = \"1 MiB\"\ndisk_admission = \"{admission}\"\n"
    );
    let edge = Edge::start_full(&pool(&origin), "", &cache).await;
    for i in 0..fill {
        edge.get_cached(&format!("/v/{i}.ts")).await;
    }
    let before = edge.disk_writes_settle((8 << 20) as f64).await;
    assert!(
        before >= (8 << 20) as f64,
        "filling the disk wrote {before}"
    );
    for i in fill..fill + count {
        edge.get_cached(&format!("/v/{i}.ts")).await;
    }
    let after = edge.disk_writes_settle(before).await;
    assert_eq!(origin.total_hits(), fill + count, "every object once");
    after - before
}

#[tokio::test]
async fn one_hit_wonders_do_not_churn_a_full_disk() {
    // 96 x 256 KiB = 24 MiB claims the 16 MiB tier; then 80 one-hit objects (20 MiB).
    let default = written_once_full("second-hit-when-full", 96, 80).await;
    let first_hit = written_once_full("first-hit", 96, 80).await;
    eprintln!("disk bytes written for 80 one-hit objects once the disk is full: default {default}, first-hit {first_hit}");
    assert!(
        first_hit >= (16 << 20) as f64,
        "first-hit writes what memory evicts: {first_hit}"
    );
    // At most what the memory tier held when the room ran out, plus a block being filled.
    assert!(
        default <= (8 << 20) as f64,
        "the default writes no one-hit wonder to a full disk: {default}"
    );
}
