//! MPEG-DASH through the edge: the TTL policy knows MPDs (static like a VOD playlist, dynamic
//! for half its `minimumUpdatePeriod`), and a token's `mh` claim removes the Representations
//! above the viewer's tier from the demo title's MPD and refuses their segments.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge::token::{self, Claims, Keyring};

use crate::support::{client, free_port, Edge, Origin, Route};

const MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media");
const DASH_XML: &str = "application/dash+xml";

#[tokio::test]
async fn dynamic_mpd_is_fresh_for_half_its_update_period_static_like_vod() {
    let origin = Origin::start().await;
    let live = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2S" availabilityStartTime="2026-11-27T00:00:00Z"><Period start="PT0S"/></MPD>
"#;
    let vod = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT20S"><Period/></MPD>"#;
    origin.route(
        "/live/ch1/manifest",
        Route::ok(live).header("content-type", DASH_XML),
    );
    origin.route("/v/t/manifest.mpd", Route::ok(vod));
    let cfg = format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_with_config_cache(
        &cfg,
        "stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\n",
    )
    .await;
    let c = client();
    let cache = |p: &'static str| {
        let c = c.clone();
        let url = edge.url(p);
        async move {
            let r = c.get(url).send().await.unwrap();
            let label = r.headers()["x-cache"].to_str().unwrap().to_string();
            (label, r.text().await.unwrap())
        }
    };
    for p in ["/live/ch1/manifest", "/v/t/manifest.mpd"] {
        assert_eq!(cache(p).await.0, "MISS", "{p}");
        assert_eq!(cache(p).await.0, "HIT", "{p}");
    }
    // minimumUpdatePeriod 2 s × live_playlist_fraction 0.5 = 1 s; the static MPD has an hour.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (label, body) = cache("/live/ch1/manifest").await;
    assert_ne!(label, "HIT");
    assert_eq!(body, live);
    assert_eq!(origin.hits("/live/ch1/manifest"), 2);
    assert_eq!(cache("/v/t/manifest.mpd").await.0, "HIT");
    assert_eq!(origin.hits("/v/t/manifest.mpd"), 1);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A path token for `/demo/` signed with the demo's test key, at most `mh` tall.
fn demo_token(mh: Option<u32>) -> String {
    let hex = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/demo-token.TEST-KEY.hex"
    ))
    .unwrap();
    let hex = hex.trim();
    let key: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let key: [u8; 32] = key.try_into().unwrap();
    let mut claims = Claims::new("/demo/", now() + 600);
    claims.mh = mh;
    token::sign(&Keyring::new([("demo", key)], "demo").unwrap(), &claims).unwrap()
}

/// The demo MPD without the Representation `id` (its lines, as an independent reading of the
/// fixture: from the line that opens it to the line that closes it).
fn without_representation(mpd: &str, id: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in mpd.split_inclusive('\n') {
        if line.contains(&format!("<Representation id=\"{id}\"")) {
            skipping = !line.trim_end().ends_with("/>");
            continue;
        }
        if skipping {
            skipping = !line.contains("</Representation>");
            continue;
        }
        out.push_str(line);
    }
    out
}

#[tokio::test]
async fn mh_removes_representations_above_the_tier_and_refuses_their_segments() {
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = format!(
        "[demo]\nlisten = \"127.0.0.1:{}\"\nmedia = \"{MEDIA}\"\ntitle = \"/demo/ts/master.m3u8\"\n\
         [tokens]\nrequired = true\ncurrent = \"demo\"\nkeys = [{{ id = \"demo\", secret_file = \"{root}/certs/demo-token.TEST-KEY.hex\" }}]\n",
        free_port()
    );
    let edge = Edge::start_with_config(&cfg, "").await;
    let fixture = std::fs::read_to_string(format!("{MEDIA}/demo/dash/manifest.mpd")).unwrap();
    assert!(fixture.contains("<Representation id=\"480p\""));
    let c = client();
    let get = |path: String| {
        let c = c.clone();
        let url = edge.url(&path);
        async move { c.get(url).send().await.unwrap() }
    };

    let t360 = demo_token(Some(360));
    for round in ["cold", "warm"] {
        let r = get(format!("/t/{t360}/demo/dash/manifest.mpd")).await;
        assert_eq!(r.status(), 200, "{round}");
        assert_eq!(r.headers()["content-type"], DASH_XML, "{round}");
        let body = r.text().await.unwrap();
        assert_eq!(body, without_representation(&fixture, "480p"), "{round}");
    }
    let r = get(format!("/t/{t360}/demo/dash/360p/seg_001.m4s")).await;
    assert_eq!(r.status(), 200);
    let want = std::fs::read(format!("{MEDIA}/demo/dash/360p/seg_001.m4s")).unwrap();
    assert!(r.bytes().await.unwrap() == want, "the segment's bytes");
    for p in ["480p/init.mp4", "480p/seg_001.m4s"] {
        let r = get(format!("/t/{t360}/demo/dash/{p}")).await;
        assert_eq!(r.status(), 403, "{p}");
        assert_eq!(r.headers()["x-edge-reason"], "rendition_not_allowed", "{p}");
    }
    // Audio has no height: every tier gets it.
    let r = get(format!("/t/{t360}/demo/dash/audio/seg_001.m4s")).await;
    assert_eq!(r.status(), 200);

    // The lowest tier that exists is kept for a viewer below it; audio stays.
    let r = get(format!(
        "/t/{}/demo/dash/manifest.mpd",
        demo_token(Some(144))
    ))
    .await;
    let body = r.text().await.unwrap();
    let want = without_representation(&without_representation(&fixture, "480p"), "360p");
    assert_eq!(body, want);
    assert!(body.contains("<Representation id=\"audio\""));

    // Without mh the MPD is the origin's, byte for byte.
    let r = get(format!("/t/{}/demo/dash/manifest.mpd", demo_token(None))).await;
    assert_eq!(r.text().await.unwrap(), fixture);
}
