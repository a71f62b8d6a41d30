//! Signed tokens through a real edge: every rejection reason, every placement, playlists
//! carrying the token, a shared cache, EdgeAuth, and a table of ACL bypass attempts.

use std::time::{SystemTime, UNIX_EPOCH};

use edge::token::{self, Claims, Keyring};
use ring::hmac;

use crate::support::{client, raw_get, Edge, Origin, Route};

const KEY: [u8; 32] = [0x42; 32];
const OLD_KEY: [u8; 32] = [0x17; 32];
const EDGEAUTH_KEY_HEX: &str = "00112233445566778899aabbccddeeff";
const MASTER: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=426x240\n240p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1280x720\n720p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1920x1080\n1080p/index.m3u8\n";
const MEDIA: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg_000.m4s\n#EXT-X-ENDLIST\n";
const M3U8: &str = "application/vnd.apple.mpegurl";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn keyring() -> Keyring {
    Keyring::new([("k2", KEY), ("k1", OLD_KEY)], "k2").unwrap()
}

fn sign(claims: &Claims) -> String {
    token::sign(&keyring(), claims).unwrap()
}

fn grant(acl: &str) -> String {
    sign(&Claims::new(acl, now() + 600))
}

/// An origin with a small title and a secret, and an edge that requires tokens.
async fn setup() -> (Origin, Edge, tempfile::TempDir) {
    let origin = Origin::start().await;
    origin.route(
        "/v/a/master.m3u8",
        Route::ok(MASTER).header("content-type", M3U8),
    );
    origin.route(
        "/v/a/240p/index.m3u8",
        Route::ok(MEDIA).header("content-type", M3U8),
    );
    origin.route("/v/a/240p/seg_000.m4s", Route::ok("segment-a"));
    origin.route("/v/secret/x.ts", Route::ok("SECRET"));
    origin.route("/public/logo.png", Route::ok("logo"));
    let keys = tempfile::tempdir().unwrap();
    let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    std::fs::write(keys.path().join("k2.key"), hex(&KEY)).unwrap();
    std::fs::write(keys.path().join("k1.key"), hex(&OLD_KEY)).unwrap();
    std::fs::write(keys.path().join("ea.key"), EDGEAUTH_KEY_HEX).unwrap();
    let d = keys.path().display();
    let cfg = format!(
        "[tokens]\nrequired = true\ncurrent = \"k2\"\nmax_ttl = \"1h\"\npublic = [\"/public/\"]\n\
         keys = [{{ id = \"k2\", secret_file = \"{d}/k2.key\" }}, {{ id = \"k1\", secret_file = \"{d}/k1.key\" }}]\n\
         [tokens.edgeauth]\nparam = \"hdnts\"\nkey_file = \"{d}/ea.key\"\n"
    );
    let edge = Edge::start(origin.addr, &cfg).await;
    (origin, edge, keys)
}

async fn refused(edge: &Edge, path_and_query: &str, reason: &str) {
    let r = client().get(edge.url(path_and_query)).send().await.unwrap();
    assert_eq!(r.status(), 403, "{path_and_query}");
    assert_eq!(r.headers()["x-edge-reason"], reason, "{path_and_query}");
    assert_eq!(r.text().await.unwrap(), format!("{reason}\n"));
}

#[tokio::test]
async fn every_rejection_reason_is_a_403_with_its_code_and_metric() {
    let (origin, edge, _keys) = setup().await;
    let t = now();
    let other_ring = Keyring::single("k9", &[9u8; 32]).unwrap();
    let forged = Keyring::single("k2", &[1u8; 32]).unwrap();
    let mut ip_bound = Claims::new("/v/a/", t + 600);
    ip_bound.ip = Some("203.0.113.0/24".into());
    let mut not_yet = Claims::new("/v/a/", t + 900);
    not_yet.nbf = Some(t + 600);
    let cases: Vec<(String, &str)> = vec![
        ("/v/a/master.m3u8".into(), "missing"),
        ("/v/a/master.m3u8?token=v1.k2.nonsense".into(), "malformed"),
        (
            format!(
                "/v/a/master.m3u8?token={}",
                token::sign(&forged, &Claims::new("/v/a/", t + 600)).unwrap()
            ),
            "bad_signature",
        ),
        (
            format!(
                "/v/a/master.m3u8?token={}",
                token::sign(&other_ring, &Claims::new("/v/a/", t + 600)).unwrap()
            ),
            "unknown_key",
        ),
        (
            format!(
                "/v/a/master.m3u8?token={}",
                sign(&Claims::new("/v/a/", t - 120))
            ),
            "expired",
        ),
        (
            format!("/v/a/master.m3u8?token={}", sign(&not_yet)),
            "not_yet_valid",
        ),
        (
            format!(
                "/v/a/master.m3u8?token={}",
                sign(&Claims::new("/v/b/", t + 600))
            ),
            "acl_mismatch",
        ),
        (
            format!("/v/a/master.m3u8?token={}", sign(&ip_bound)),
            "ip_mismatch",
        ),
        (
            format!(
                "/v/a/master.m3u8?token={}",
                sign(&Claims::new("/v/a/", t + 7200))
            ),
            "ttl_too_long",
        ),
    ];
    for (url, reason) in &cases {
        refused(&edge, url, reason).await;
    }
    for (_, reason) in &cases {
        let n = edge
            .metric(&format!(
                r#"edge_token_rejections_total{{reason="{reason}"}}"#
            ))
            .await;
        assert_eq!(n, 1.0, "{reason}");
    }
    assert_eq!(origin.total_hits(), 0, "nothing refused reaches the origin");
    // A token signed with the previous key (still listed) is accepted: rotation.
    let old = token::sign_with(&keyring(), "k1", &Claims::new("/v/a/", t + 600)).unwrap();
    let r = client()
        .get(edge.url(&format!("/v/a/240p/seg_000.m4s?token={old}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Public prefixes need no token.
    assert_eq!(
        client()
            .get(edge.url("/public/logo.png"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn path_query_and_cookie_tokens_share_one_cached_object() {
    let (origin, edge, _keys) = setup().await;
    let c = client();
    let r = c
        .get(edge.url(&format!("/t/{}/v/a/240p/seg_000.m4s", grant("/v/a/"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["x-cache"].to_str().unwrap().to_string()
        ),
        (200, "MISS".into())
    );
    let r = c
        .get(edge.url(&format!(
            "/v/a/240p/seg_000.m4s?token={}",
            grant("/v/a/240p/")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    let r = c
        .get(edge.url("/v/a/240p/seg_000.m4s"))
        .header("cookie", format!("theme=dark; edge_token={}", grant("/v/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.text().await.unwrap(), "segment-a");
    assert_eq!(
        origin.hits("/v/a/240p/seg_000.m4s"),
        1,
        "three viewers, three tokens, one origin fetch"
    );
    let seen = &origin.requests()[0];
    assert_eq!(
        seen.target, "/v/a/240p/seg_000.m4s",
        "the origin never sees the token"
    );
}

#[tokio::test]
async fn query_tokens_are_carried_by_every_playlist_uri_and_the_cache_keeps_origin_bytes() {
    let (origin, edge, _keys) = setup().await;
    let c = client();
    let (t1, t2) = (grant("/v/a/"), sign(&Claims::new("/v/a/", now() + 601)));
    let body1 = c
        .get(edge.url(&format!("/v/a/master.m3u8?token={t1}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body1.contains(&format!("240p/index.m3u8?token={t1}\n")),
        "{body1}"
    );
    assert!(
        body1.contains(&format!("1080p/index.m3u8?token={t1}\n")),
        "{body1}"
    );
    let r = c
        .get(edge.url(&format!("/v/a/master.m3u8?token={t2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let body2 = r.text().await.unwrap();
    assert!(
        body2.contains(&format!("240p/index.m3u8?token={t2}\n")) && !body2.contains(&t1),
        "{body2}"
    );
    // A path-token viewer gets the origin's bytes: the cache never stored a rewrite.
    let plain = c
        .get(edge.url(&format!("/t/{t1}/v/a/master.m3u8")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(plain, MASTER);
    assert_eq!(origin.hits("/v/a/master.m3u8"), 1);
    // Media playlists: EXT-X-MAP URIs and segments carry it too, and the player can follow them.
    let media = c
        .get(edge.url(&format!("/v/a/240p/index.m3u8?token={t1}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        media.contains(&format!("URI=\"init.mp4?token={t1}\"")),
        "{media}"
    );
    let seg_uri = media.lines().find(|l| l.starts_with("seg_000")).unwrap();
    let r = c
        .get(edge.url(&format!("/v/a/240p/{seg_uri}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "segment-a");
}

#[tokio::test]
async fn a_last_line_without_newline_is_rewritten_on_miss_and_hit() {
    let (origin, edge, _keys) = setup().await;
    origin.route(
        "/v/a/nonl.m3u8",
        Route::ok("#EXTM3U\n#EXTINF:4,\nseg.ts").header("content-type", M3U8),
    );
    let t = grant("/v/a/");
    for want in ["MISS", "HIT"] {
        let r = client()
            .get(edge.url(&format!("/v/a/nonl.m3u8?token={t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache"], want);
        assert_eq!(
            r.text().await.unwrap(),
            format!("#EXTM3U\n#EXTINF:4,\nseg.ts?token={t}")
        );
    }
}

#[tokio::test]
async fn max_height_claim_hides_higher_variants() {
    let (_origin, edge, _keys) = setup().await;
    let mut claims = Claims::new("/v/a/", now() + 600);
    claims.mh = Some(720);
    let t = sign(&claims);
    let r = client()
        .get(edge.url(&format!("/t/{t}/v/a/master.m3u8")))
        .send()
        .await
        .unwrap();
    let head = format!("{:?}", r.headers());
    let body = r.text().await.unwrap();
    assert!(
        body.contains("720p/index.m3u8") && body.contains("240p/index.m3u8"),
        "{head} {body}"
    );
    assert!(
        !body.contains("1080"),
        "a 720p viewer never sees 1080p: {body}"
    );
}

/// EdgeAuth 2.0 token computed here from the published algorithm.
fn edgeauth(acl: &str, exp: u64) -> String {
    let key: Vec<u8> = (0..EDGEAUTH_KEY_HEX.len() / 2)
        .map(|i| u8::from_str_radix(&EDGEAUTH_KEY_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let fields = format!("st={}~exp={exp}~acl={acl}", now() - 10);
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), fields.as_bytes());
    let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{fields}~hmac={hex}")
}

#[tokio::test]
async fn edgeauth_tokens_are_accepted_and_carried() {
    let (origin, edge, _keys) = setup().await;
    let tok = edgeauth("/v/a/*", now() + 600);
    let enc: String = tok
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let c = client();
    let r = c
        .get(edge.url(&format!("/v/a/master.m3u8?hdnts={enc}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.headers().get("x-edge-reason"));
    let body = r.text().await.unwrap();
    let line = body
        .lines()
        .find(|l| l.starts_with("240p/"))
        .unwrap()
        .to_string();
    assert!(line.starts_with("240p/index.m3u8?hdnts="), "{body}");
    let r = c
        .get(edge.url(&format!("/v/a/{line}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the rewritten URI carries a token the edge accepts"
    );
    let bad = edgeauth("/v/secret/*", now() + 600);
    let r = c
        .get(edge.url(&format!(
            "/v/a/master.m3u8?hdnts={}",
            bad.replace('~', "%7E")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(origin.hits("/v/secret/x.ts"), 0);
}

#[tokio::test]
async fn acl_bypass_attempts_never_reach_content_outside_the_acl() {
    let (origin, edge, _keys) = setup().await;
    let t = grant("/v/a/");
    let q = format!("token={t}");
    let attempts: Vec<String> = vec![
        format!("/v/secret/x.ts?{q}"),
        format!("/v/a/../secret/x.ts?{q}"),
        format!("/v/a/./../secret/x.ts?{q}"),
        format!("/v/a/%2e%2e/secret/x.ts?{q}"),
        format!("/v/a/%2E%2E/secret/x.ts?{q}"),
        format!("/v/a/.%2e/secret/x.ts?{q}"),
        format!("/v/a/%2e./secret/x.ts?{q}"),
        format!("/v/a/..%2fsecret/x.ts?{q}"),
        format!("/v/a%2f..%2fsecret/x.ts?{q}"),
        format!("/v/a/..%5csecret/x.ts?{q}"),
        format!("/v/a\\..\\secret/x.ts?{q}"),
        format!("/v/a/%00/../secret/x.ts?{q}"),
        format!("/v/a/x%00/../../secret/x.ts?{q}"),
        format!("/v/a/;/../../secret/x.ts?{q}"),
        format!("/v/a/x.ts%3f/../../secret/x.ts?{q}"),
        format!("/v/a//../secret/x.ts?{q}"),
        format!("/v/aa/../secret/x.ts?{q}"),
        format!("/v/a../secret/x.ts?{q}"),
        format!("/t/{t}/v/secret/x.ts"),
        format!("/t/{t}/../v/secret/x.ts"),
        format!("/t/{t}/v/a/../secret/x.ts"),
        format!("/t/{t}/v/a/%2e%2e/secret/x.ts"),
        format!("/t/{t}//v//secret/x.ts"),
        format!("/v/secret/x.ts?{q}&{q}"),
        format!("/v/secret/x.ts?token=&{q}"),
        format!("/v/secret/x.ts?x=/v/a/&{q}"),
        format!("/v/secret%2fx.ts?{q}"),
        format!("/v/%73ecret/x.ts?{q}"),
        format!("/v/a/%252e%252e/secret/x.ts?{q}"),
        format!("http://{}/v/secret/x.ts?{q}", edge.http),
    ];
    assert!(attempts.len() >= 25);
    for a in &attempts {
        let (status, head) = raw_get(edge.http, a).await;
        assert!(matches!(status, 400 | 403 | 404), "{a}: {status}\n{head}");
    }
    // The cookie placement cannot widen the ACL either.
    let r = client()
        .get(edge.url("/v/secret/x.ts"))
        .header("cookie", format!("edge_token={t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        origin.hits("/v/secret/x.ts"),
        0,
        "the secret was never fetched"
    );
}
