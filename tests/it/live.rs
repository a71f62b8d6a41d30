//! Live and Low-Latency HLS through the edge (issue #16): ffmpeg encoding live behind the
//! test origin, and an LL-HLS origin producing parts on a timer (`support::live`).
//!
//! - a live playlist through the edge is never older than its lifetime allows, and every
//!   segment it lists arrives byte for byte; ffmpeg reads the stream through the edge;
//! - blocking playlist reloads (`_HLS_msn`/`_HLS_part`) are coalesced: one origin request per
//!   (playlist, msn, part) however many players wait, kept for six target durations, and the
//!   directives stay in the key under a `query = "none"` rule;
//! - a refusal of a future msn is one origin request, kept briefly;
//! - delta updates (`_HLS_skip`) are their own answer;
//! - a part still being produced streams to every waiter from one origin request, open-ended
//!   ranges included;
//! - a part (listed by a live playlist the edge stored, or its preload hint) is kept three
//!   target durations whatever its `max-age`, a segment its own lifetime;
//! - players on two edges following the blocking reloads know the same part (a median of
//!   one apart, never more than two), each edge asking the origin once per step.

use std::time::{Duration, Instant};

use crate::support::live::{media_sequence, uris, Ffmpeg, LlOrigin, LlShape};
use crate::support::{client, Edge, Origin};

/// Poll a live ffmpeg stream through the edge for a few seconds.
async fn live_playlist_through_the_edge(fmp4: bool) {
    let ff = Ffmpeg::start(fmp4);
    let origin = Origin::start().await;
    origin.serve_dir(ff.dir.path());
    let edge = Edge::start(origin.addr, "").await;
    ff.wait_segments(3).await;
    let c = client();
    let mut fetched = std::collections::HashSet::new();
    // The newest segment's media sequence number, first and last seen.
    let (mut first_seq, mut last_seq) = (None, 0);
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut polls = 0;
    while Instant::now() < deadline {
        let direct = std::fs::read_to_string(ff.playlist()).unwrap_or_default();
        let direct_seq = media_sequence(&direct).unwrap_or(0);
        let r = c.get(edge.url("/live.m3u8")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // Never older than its lifetime: not served stale while a refresh runs.
        let cached = r
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_ne!(
            cached.as_deref(),
            Some("STALE"),
            "a stale live playlist was served"
        );
        let body = r.text().await.unwrap();
        let seq = media_sequence(&body).expect("a live playlist");
        // Lifetime: half of a 1-2 s target duration; ffmpeg moves on once a second.
        assert!(
            seq + 1 >= direct_seq,
            "the edge's playlist is behind: {seq} vs {direct_seq} at the origin"
        );
        assert!(!body.contains("#EXT-X-ENDLIST"));
        let newest = seq + uris(&body).len() as u64;
        first_seq.get_or_insert(newest);
        last_seq = newest;
        let mut wanted = uris(&body);
        if fmp4 {
            wanted.push("init.mp4".into());
        }
        for uri in wanted {
            if !fetched.insert(uri.clone()) {
                continue;
            }
            let on_disk = std::fs::read(ff.dir.path().join(&uri));
            let r = c.get(edge.url(&format!("/{uri}"))).send().await.unwrap();
            let status = r.status();
            let bytes = r.bytes().await.unwrap();
            if let Ok(disk) = on_disk {
                assert_eq!(status, 200, "{uri}");
                assert!(
                    bytes == disk,
                    "{uri}: the edge's bytes differ from the file"
                );
            }
        }
        polls += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_seq = first_seq.unwrap();
    assert!(polls >= 10, "only {polls} polls in 6 s");
    assert!(
        last_seq >= first_seq + 3,
        "the live playlist did not move through the edge: {first_seq} → {last_seq}"
    );
    // A real player reads it: ffmpeg takes 3 s of the live stream through the edge.
    let url = edge.url("/live.m3u8");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args(["30", "ffmpeg", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(&url)
            .args(["-t", "3", "-c", "copy", "-f", "null", "-"])
            .output()
            .expect("ffmpeg")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg could not read the live stream through the edge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn ffmpeg_live_ts_through_the_edge() {
    live_playlist_through_the_edge(false).await;
}

#[tokio::test]
async fn ffmpeg_live_fmp4_through_the_edge() {
    live_playlist_through_the_edge(true).await;
}

/// Wait until the origin has produced at least `n` parts.
async fn produced(ll: &LlOrigin, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while ll.produced() < n {
        assert!(
            Instant::now() < deadline,
            "the LL-HLS origin is not producing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` concurrent GETs of `path`: (status, body) each.
async fn herd(edge: &Edge, paths: &[String]) -> Vec<(u16, String)> {
    let c = client();
    let mut set = tokio::task::JoinSet::new();
    for p in paths {
        let c = c.clone();
        let url = edge.url(p);
        set.spawn(async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
    }
    set.join_all().await
}

#[tokio::test]
async fn blocking_reloads_are_one_origin_request_per_msn_and_part() {
    let ll = LlOrigin::start(LlShape::default()).await;
    let edge = Edge::start(ll.addr, "").await;
    let parts = ll.shape().parts;
    produced(&ll, 2 * parts).await;
    let mut steps = Vec::new();
    for step in 0..6 {
        // The part after the one being produced: every request blocks.
        let g = ll.produced() + 1;
        let (msn, part) = (g / parts, g % parts);
        let before = ll.path_hits("/ll/p.m3u8");
        // 20 players, half of them naming the directives in the other order.
        let paths: Vec<String> = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    format!("/ll/p.m3u8?_HLS_msn={msn}&_HLS_part={part}")
                } else {
                    format!("/ll/p.m3u8?_HLS_part={part}&_HLS_msn={msn}")
                }
            })
            .collect();
        let started = Instant::now();
        let answers = herd(&edge, &paths).await;
        let waited = started.elapsed();
        let want = format!("URI=\"s{msn}.{part}.mp4\"");
        for (status, body) in &answers {
            assert_eq!(*status, 200, "step {step}");
            assert!(
                body.lines()
                    .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&want)),
                "step {step}: the answer lacks part {msn}.{part}:\n{body}"
            );
        }
        assert_eq!(
            ll.path_hits("/ll/p.m3u8") - before,
            1,
            "step {step}: 20 waiting players cost one origin request; origin saw {:?}",
            ll.requests()
        );
        assert!(
            waited >= Duration::from_millis(100),
            "step {step}: the answer did not wait for the part ({waited:?})"
        );
        steps.push((msn, part));
    }
    // A late player asking for a step already answered gets the stored answer (six target
    // durations, not the plain live lifetime of half a target duration) without asking.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = ll.path_hits("/ll/p.m3u8");
    for (msn, part) in &steps[3..] {
        let r = client()
            .get(edge.url(&format!("/ll/p.m3u8?_HLS_msn={msn}&_HLS_part={part}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("x-cache").and_then(|v| v.to_str().ok()),
            Some("HIT"),
            "{msn}.{part}"
        );
    }
    assert_eq!(ll.path_hits("/ll/p.m3u8"), before);
}

#[tokio::test]
async fn blocking_directives_stay_in_the_key_under_a_query_none_rule() {
    let ll = LlOrigin::start(LlShape::default()).await;
    let edge = Edge::start(
        ll.addr,
        "[[cache.keys]]\nprefix = \"/ll/\"\nquery = \"none\"\n",
    )
    .await;
    let parts = ll.shape().parts;
    produced(&ll, parts).await;
    // A plain reload is stored; then a player blocks for a part it does not have.
    let c = client();
    let plain = c.get(edge.url("/ll/p.m3u8?x=1")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    let g = ll.produced() + 1;
    let (msn, part) = (g / parts, g % parts);
    let target = format!("/ll/p.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let body = c
        .get(edge.url(&target))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(&format!("URI=\"s{msn}.{part}.mp4\"")),
        "the blocking reload was answered without its part:\n{body}"
    );
    assert_eq!(ll.hits(&target), 1, "{:?}", ll.requests());
    // Other parameters still do not count (`x` is dropped from the key, not from the
    // origin's request).
    let again = format!("/ll/p.m3u8?_HLS_msn={msn}&_HLS_part={part}&x=2");
    let r = c.get(edge.url(&again)).send().await.unwrap();
    assert_eq!(
        r.headers().get("x-cache").and_then(|v| v.to_str().ok()),
        Some("HIT")
    );
}

#[tokio::test]
async fn a_future_msn_refusal_is_one_origin_request_kept_briefly() {
    let ll = LlOrigin::start(LlShape::default()).await;
    let edge = Edge::start(ll.addr, "").await;
    produced(&ll, 1).await;
    // More than two segments ahead: the origin answers 400 at once (RFC 8216bis §6.2.5.2).
    let msn = ll.produced() / ll.shape().parts + 10;
    let target = format!("/ll/p.m3u8?_HLS_msn={msn}");
    let answers = herd(&edge, &vec![target.clone(); 10]).await;
    assert!(answers.iter().all(|(s, _)| *s == 400), "{answers:?}");
    let first = ll.hits(&target);
    assert!(
        first <= 2,
        "10 players refused for a future msn cost {first} origin requests"
    );
    let r = client().get(edge.url(&target)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(ll.hits(&target), first, "kept for a moment");
    // ... but not for long: after a second the origin is asked again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = client().get(edge.url(&target)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(ll.hits(&target), first + 1);
}

#[tokio::test]
async fn delta_updates_are_their_own_answer() {
    let ll = LlOrigin::start(LlShape {
        part: Duration::from_millis(100),
        ..LlShape::default()
    })
    .await;
    let edge = Edge::start(ll.addr, "").await;
    let parts = ll.shape().parts;
    // A full window (6 segments) to skip from.
    produced(&ll, 7 * parts).await;
    let g = ll.produced() + 1;
    let (msn, part) = (g / parts, g % parts);
    let c = client();
    let full = format!("/ll/p.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let delta = format!("{full}&_HLS_skip=YES");
    let (d, f) = tokio::join!(
        async {
            c.get(edge.url(&delta))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        },
        async {
            c.get(edge.url(&full))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        },
    );
    assert!(d.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{d}");
    assert!(!f.contains("#EXT-X-SKIP"), "{f}");
    assert_eq!(ll.hits(&delta), 1);
    assert_eq!(ll.hits(&full), 1);
}

#[tokio::test]
async fn a_part_being_produced_streams_to_every_waiter_from_one_origin_request() {
    // One-second parts, so "as it is produced" is measurable.
    let ll = LlOrigin::start(LlShape {
        part: Duration::from_secs(1),
        parts: 2,
        part_len: 64 * 1024,
        window: 6,
    })
    .await;
    let edge = Edge::start(ll.addr, "").await;
    let parts = ll.shape().parts;
    // Just after a part begins: it is the preload hint of the current playlist.
    produced(&ll, 1).await;
    let g = ll.produced();
    let (msn, part) = (g / parts, g % parts);
    let hint = client()
        .get(edge.url("/ll/p.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = format!("/ll/s{msn}.{part}.mp4");
    assert!(
        hint.contains(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s{msn}.{part}.mp4\""
        )),
        "{hint}"
    );
    let done = ll.complete_at(g);
    let want = ll.part_bytes(msn, part);
    let c = client();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        let c = c.clone();
        let url = edge.url(&path);
        set.spawn(async move {
            // Every other waiter asks for an open-ended range.
            let from = if i % 2 == 1 { Some(1000 * i) } else { None };
            let mut req = c.get(url);
            if let Some(n) = from {
                req = req.header("range", format!("bytes={n}-"));
            }
            let mut r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let mut body = Vec::new();
            let mut first = None;
            while let Some(chunk) = r.chunk().await.unwrap() {
                first.get_or_insert_with(Instant::now);
                body.extend_from_slice(&chunk);
            }
            (from, status, first, body)
        });
    }
    let answers = set.join_all().await;
    for (from, status, first, body) in answers {
        let from = from.unwrap_or(0);
        assert_eq!(
            status,
            if from > 0 { 206 } else { 200 },
            "range from {from}"
        );
        assert!(body == want[from..], "range from {from}: wrong bytes");
        let first = first.expect("a body");
        assert!(
            first + Duration::from_millis(300) < done,
            "range from {from}: the first byte came {:?} before the part was complete",
            done.saturating_duration_since(first)
        );
    }
    assert_eq!(ll.path_hits(&path), 1, "{:?}", ll.requests());
}

#[tokio::test]
async fn parts_are_kept_a_few_target_durations_and_segments_their_own_lifetime() {
    // 250 ms parts, 1 s segments (TARGETDURATION 1): a part lives 3 s at the edge, though the
    // origin says `max-age=60` for parts and segments alike.
    let ll = LlOrigin::start(LlShape::default()).await;
    let edge = Edge::start(ll.addr, "").await;
    let parts = ll.shape().parts;
    produced(&ll, 2 * parts + 1).await;
    // The edge learns the parts from the playlist it stores: a listed part, the preload hint.
    let playlist = client()
        .get(edge.url("/ll/p.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hinted = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a preload hint")
        .to_string();
    let msn = media_sequence(&playlist).unwrap() + 1;
    let part = format!("/ll/s{msn}.0.mp4");
    let hint = format!("/ll/{hinted}");
    let segment = format!("/ll/s{msn}.mp4");
    assert!(
        playlist.contains(&format!("URI=\"s{msn}.0.mp4\"")),
        "{playlist}"
    );
    let get = |path: String| {
        let url = edge.url(&path);
        async move {
            let r = client().get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.bytes().await.unwrap().to_vec()
        }
    };
    for _ in 0..2 {
        assert!(get(part.clone()).await == ll.part_bytes(msn, 0), "{part}");
        get(hint.clone()).await;
        get(segment.clone()).await;
    }
    for p in [&part, &hint, &segment] {
        assert_eq!(ll.path_hits(p), 1, "{p}: {:?}", ll.requests());
    }
    // Past the part lifetime (3 s), parts are asked for again; the segment is still fresh.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for p in [&part, &hint, &segment] {
        get(p.clone()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while (ll.path_hits(&part) < 2 || ll.path_hits(&hint) < 2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ll.path_hits(&part),
        2,
        "a listed part outlived its part lifetime"
    );
    assert_eq!(
        ll.path_hits(&hint),
        2,
        "a hinted part outlived its part lifetime"
    );
    assert_eq!(
        ll.path_hits(&segment),
        1,
        "the segment lives its own lifetime"
    );
}

/// The newest part a playlist of the `LlOrigin` lists, counted from the start.
fn newest_part(playlist: &str, parts: u64) -> Option<u64> {
    let uri = playlist
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))?
        .split("URI=\"s")
        .nth(1)?;
    let (msn, part) = uri.split(".mp4").next()?.split_once('.')?;
    Some(msn.parse::<u64>().ok()? * parts + part.parse::<u64>().ok()?)
}

#[tokio::test]
async fn players_on_two_edges_converge_on_the_same_part() {
    // Four players on each of two edges follow the stream by blocking reloads for 3 s; every
    // 250 ms the newest part each one knows is sampled.
    let ll = LlOrigin::start(LlShape::default()).await;
    let parts = ll.shape().parts;
    let edges = [
        Edge::start(ll.addr, "").await,
        Edge::start(ll.addr, "").await,
    ];
    produced(&ll, 2 * parts).await;
    let newest: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>> = std::sync::Arc::new(
        (0..8)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let base = edges[i % 2].url("/ll/p.m3u8");
        let newest = newest.clone();
        set.spawn(async move {
            let c = client();
            let mut url = base.clone();
            let mut steps = 0;
            while Instant::now() < deadline {
                let r = c.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}");
                let g = newest_part(&r.text().await.unwrap(), parts).expect("a part");
                newest[i].store(g, std::sync::atomic::Ordering::Relaxed);
                let next = g + 1;
                url = format!(
                    "{base}?_HLS_msn={}&_HLS_part={}",
                    next / parts,
                    next % parts
                );
                steps += 1;
            }
            steps
        });
    }
    let mut spreads = Vec::new();
    while Instant::now() + Duration::from_millis(300) < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now: Vec<u64> = newest
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        spreads.push(now.iter().max().unwrap() - now.iter().min().unwrap());
    }
    let steps = set.join_all().await;
    assert!(
        steps.iter().all(|&s| s >= 8),
        "every player followed the stream part by part: {steps:?} steps"
    );
    // Mid-step a player may not have the part another just got yet: one part apart, two at
    // most on a loaded machine (an answer 250 ms late), never more.
    let mut sorted = spreads.clone();
    sorted.sort();
    assert!(
        !sorted.is_empty() && sorted[sorted.len() / 2] <= 1 && sorted[sorted.len() - 1] <= 2,
        "the players on the two edges drifted apart: {spreads:?} parts"
    );
    let live = ll.produced();
    for (i, n) in newest.iter().enumerate() {
        let n = n.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n + 2 >= live, "player {i} is behind: part {n}, live {live}");
    }
    // Each blocking step cost each edge one origin request: two at most.
    let mut targets = ll.requests();
    targets.retain(|t| t.contains("_HLS_msn"));
    targets.sort();
    let mut counts = targets.clone();
    counts.dedup();
    for t in &counts {
        let n = targets.iter().filter(|x| *x == t).count();
        assert!(n <= 2, "{t} asked {n} times of the origin by two edges");
    }
}
