use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;
use ring::hmac;

use crate::token::edgeauth;
use crate::token::*;

const NOW: u64 = 1_700_000_000;
const KEY_A: [u8; 32] = [0xA5; 32];
const KEY_B: [u8; 32] = [0x5A; 32];

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn client() -> IpAddr {
    v4(198, 51, 100, 7)
}

fn ring1() -> Keyring {
    Keyring::single("k1", &KEY_A).unwrap()
}

fn policy() -> VerifyPolicy {
    VerifyPolicy::default()
}

fn claims() -> Claims {
    Claims::new("/v/title/", NOW + 3600)
}

/// Builds a token independently of `sign` (straight from the spec).
fn craft(kid: &str, key: &[u8], payload_json: &str) -> String {
    let p = URL_SAFE_NO_PAD.encode(payload_json.as_bytes());
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, format!("edge-token/v1.{kid}.{p}").as_bytes());
    format!("v1.{kid}.{p}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn check(token: &str, path: &str) -> Result<Claims, Reject> {
    verify(&ring1(), token, path, client(), NOW, &policy())
}

// ---------------------------------------------------------------- round trip & format

#[test]
fn round_trip_minimal() {
    let t = sign(&ring1(), &claims()).unwrap();
    assert!(t.starts_with("v1.k1."));
    assert_eq!(t.split('.').count(), 4);
    assert!(!t.contains('='));
    assert_eq!(check(&t, "/v/title/a.ts").unwrap(), claims());
}

#[test]
fn round_trip_all_claims() {
    let c = Claims {
        exp: NOW + 60,
        nbf: Some(NOW - 10),
        acl: "/v/a/!/v/b/master.m3u8".into(),
        sid: Some("sess-\"1\"\u{e9}".into()),
        ip: Some("198.51.100.0/24".into()),
        cc: Some(vec!["GB".into(), "FR".into()]),
        mh: Some(1080),
    };
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(check(&t, "/v/b/master.m3u8").unwrap(), c);
    assert_eq!(check(&t, "/v/a/x/y.ts").unwrap(), c);
}

#[test]
fn sign_matches_independent_construction() {
    let t = sign(&ring1(), &claims()).unwrap();
    let expected = craft(
        "k1",
        &KEY_A,
        &format!(r#"{{"exp":{},"acl":"/v/title/"}}"#, NOW + 3600),
    );
    assert_eq!(t, expected);
}

#[test]
fn none_fields_are_skipped() {
    let json = serde_json::to_string(&claims()).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"exp":{},"acl":"/v/title/"}}"#, NOW + 3600)
    );
}

#[test]
fn unknown_claim_fields_are_ignored() {
    let t = craft(
        "k1",
        &KEY_A,
        &format!(
            r#"{{"exp":{},"acl":"/v/","future":{{"x":[1,2]}},"z":null}}"#,
            NOW + 10
        ),
    );
    let c = check(&t, "/v/x.ts").unwrap();
    assert_eq!(c.acl, "/v/");
}

#[test]
fn wrong_claim_types_are_malformed() {
    let bad = [
        format!(r#"{{"exp":"{}","acl":"/v/"}}"#, NOW + 10),
        format!(r#"{{"exp":{}.5,"acl":"/v/"}}"#, NOW + 10),
        r#"{"exp":-1,"acl":"/v/"}"#.to_string(),
        format!(r#"{{"exp":{},"acl":7}}"#, NOW + 10),
        format!(r#"{{"exp":{},"acl":"/v/","cc":"GB"}}"#, NOW + 10),
        format!(r#"{{"exp":{},"acl":"/v/","mh":-3}}"#, NOW + 10),
        format!(r#"{{"exp":{},"acl":"/v/","nbf":"x"}}"#, NOW + 10),
        r#"{"acl":"/v/"}"#.to_string(),
        format!(r#"{{"exp":{}}}"#, NOW + 10),
        format!(r#"{{"exp":{0},"exp":{0},"acl":"/v/"}}"#, NOW + 10),
        format!(r#"[{},"/v/"]"#, NOW + 10),
        format!(r#"{{"exp":{},"acl":"/v/"}} trailing"#, NOW + 10),
        "not json".to_string(),
        String::new(),
    ];
    for json in bad {
        let t = craft("k1", &KEY_A, &json);
        assert_eq!(check(&t, "/v/x.ts"), Err(Reject::Malformed), "{json}");
    }
}

#[test]
fn invalid_claim_values_are_malformed_and_not_signed() {
    let bad = [
        r#""acl":"v/title/""#,
        r#""acl":"""#,
        r#""acl":"/v/!""#,
        r#""acl":"/v/","ip":"300.1.1.1""#,
        r#""acl":"/v/","ip":"10.0.0.0/33""#,
        r#""acl":"/v/","cc":["gb"]"#,
        r#""acl":"/v/","cc":["GBR"]"#,
    ];
    for frag in bad {
        let json = format!(r#"{{"exp":{},{frag}}}"#, NOW + 10);
        let t = craft("k1", &KEY_A, &json);
        assert_eq!(check(&t, "/v/x.ts"), Err(Reject::Malformed), "{json}");
        let c: Claims = serde_json::from_str(&json).unwrap();
        assert!(
            matches!(sign(&ring1(), &c), Err(SignError::InvalidClaims(_))),
            "{json}"
        );
    }
}

// ---------------------------------------------------------------- every reject reason

#[test]
fn reject_missing() {
    assert_eq!(check("", "/v/title/a.ts"), Err(Reject::Missing));
}

#[test]
fn reject_malformed_forms() {
    let good = sign(&ring1(), &claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let bad = vec![
        "x".to_string(),
        "v1".to_string(),
        "v1.k1".to_string(),
        "v1.k1.abc".to_string(),
        format!("{good}."),
        format!(".{good}"),
        format!("{good}.extra"),
        format!("v2.{}.{}.{}", parts[1], parts[2], parts[3]),
        format!("V1.{}.{}.{}", parts[1], parts[2], parts[3]),
        format!("v1..{}.{}", parts[2], parts[3]),
        format!("v1.k!1.{}.{}", parts[2], parts[3]),
        format!("v1.{}.{}.{}", "k".repeat(33), parts[2], parts[3]),
        format!("v1.k1..{}", parts[3]),
        format!("v1.k1.{}.", parts[2]),
        format!("v1.k1.{}=.{}", parts[2], parts[3]),
        format!("v1.k1.{}.{}=", parts[2], parts[3]),
        format!("v1.k1.{}.{}", parts[2], &parts[3][..parts[3].len() - 1]),
        format!("v1.k1.{}.{}AA", parts[2], parts[3]),
        format!("v1.k1.{}.{}", parts[2], STANDARD.encode([0xfb; 32])),
        format!("v1.k1.{}.{}", parts[2], "a".repeat(MAX_TOKEN_LEN)),
        " ".to_string(),
        format!(" {good}"),
    ];
    for t in bad {
        assert_eq!(check(&t, "/v/title/a.ts"), Err(Reject::Malformed), "{t}");
    }
}

#[test]
fn reject_malformed_non_canonical_base64_mac() {
    // Changing the last char of the 43-char MAC only in its 2 unused low bits must not verify.
    let good = sign(&ring1(), &claims()).unwrap();
    let (head, mac) = good.rsplit_once('.').unwrap();
    let last = mac.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    assert_eq!(idx & 3, 0, "canonical encoding has zero trailing bits");
    for low in 1..4 {
        let c = alphabet.as_bytes()[idx | low] as char;
        let t = format!("{head}.{}{c}", &mac[..mac.len() - 1]);
        assert_eq!(check(&t, "/v/title/a.ts"), Err(Reject::Malformed), "{t}");
    }
}

#[test]
fn reject_bad_signature() {
    let t = craft("k1", &KEY_B, &serde_json::to_string(&claims()).unwrap());
    assert_eq!(check(&t, "/v/title/a.ts"), Err(Reject::BadSignature));
}

#[test]
fn reject_unknown_key() {
    let t = craft("k9", &KEY_A, &serde_json::to_string(&claims()).unwrap());
    assert_eq!(check(&t, "/v/title/a.ts"), Err(Reject::UnknownKey));
}

#[test]
fn reject_expired() {
    let t = sign(&ring1(), &Claims::new("/v/", NOW - 31)).unwrap();
    assert_eq!(check(&t, "/v/a.ts"), Err(Reject::Expired));
}

#[test]
fn reject_not_yet_valid() {
    let mut c = claims();
    c.nbf = Some(NOW + 31);
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(check(&t, "/v/title/a.ts"), Err(Reject::NotYetValid));
}

#[test]
fn reject_ttl_too_long() {
    let t = sign(&ring1(), &Claims::new("/v/", NOW + 24 * 3600 + 1)).unwrap();
    assert_eq!(check(&t, "/v/a.ts"), Err(Reject::TtlTooLong));
    let t = sign(&ring1(), &Claims::new("/v/", NOW + 24 * 3600)).unwrap();
    assert!(check(&t, "/v/a.ts").is_ok());
}

#[test]
fn reject_acl_mismatch() {
    let t = sign(&ring1(), &claims()).unwrap();
    assert_eq!(check(&t, "/v/other/a.ts"), Err(Reject::AclMismatch));
}

#[test]
fn reject_ip_mismatch() {
    let mut c = claims();
    c.ip = Some("203.0.113.7".into());
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(check(&t, "/v/title/a.ts"), Err(Reject::IpMismatch));
    assert!(verify(
        &ring1(),
        &t,
        "/v/title/a.ts",
        v4(203, 0, 113, 7),
        NOW,
        &policy()
    )
    .is_ok());
}

#[test]
fn reject_order_is_as_specified() {
    // Unknown key wins over a bad MAC.
    let t = craft("zz", &KEY_B, "garbage");
    assert_eq!(check(&t, "/"), Err(Reject::UnknownKey));
    // Bad MAC wins over garbage claims.
    let t = craft("k1", &KEY_B, "garbage");
    assert_eq!(check(&t, "/"), Err(Reject::BadSignature));
    // Expired wins over not-yet-valid, TTL, ACL and IP.
    let mut c = Claims::new("/a/", NOW - 100);
    c.nbf = Some(NOW + 100);
    c.ip = Some("10.0.0.1".into());
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(check(&t, "/b/x"), Err(Reject::Expired));
    // Not-yet-valid wins over TTL too long.
    let mut c = Claims::new("/a/", NOW + 100 * 3600);
    c.nbf = Some(NOW + 100);
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(check(&t, "/b/x"), Err(Reject::NotYetValid));
    // TTL wins over ACL.
    let t = sign(&ring1(), &Claims::new("/a/", NOW + 100 * 3600)).unwrap();
    assert_eq!(check(&t, "/b/x"), Err(Reject::TtlTooLong));
    // ACL wins over IP.
    let mut c = Claims::new("/a/", NOW + 10);
    c.ip = Some("10.0.0.1".into());
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(check(&t, "/b/x"), Err(Reject::AclMismatch));
    assert_eq!(check(&t, "/a/x"), Err(Reject::IpMismatch));
}

#[test]
fn reject_codes() {
    let codes: Vec<&str> = Reject::ALL.iter().map(Reject::code).collect();
    assert_eq!(
        codes,
        [
            "missing",
            "malformed",
            "bad_signature",
            "unknown_key",
            "expired",
            "not_yet_valid",
            "acl_mismatch",
            "ip_mismatch",
            "ttl_too_long",
            "rendition_not_allowed",
            "cf_malformed",
            "cf_unknown_key",
            "cf_bad_signature",
            "cf_expired",
            "cf_not_yet_valid",
            "cf_resource",
            "cf_ip"
        ]
    );
}

// ---------------------------------------------------------------- keys & rotation

#[test]
fn key_rotation() {
    let old = Keyring::single("old", &KEY_A).unwrap();
    let t_old = sign(&old, &claims()).unwrap();
    let both = Keyring::new([("old", KEY_A), ("new", KEY_B)], "new").unwrap();
    let t_new = sign(&both, &claims()).unwrap();
    assert!(t_new.starts_with("v1.new."));
    let p = policy();
    assert!(verify(&both, &t_old, "/v/title/a", client(), NOW, &p).is_ok());
    assert!(verify(&both, &t_new, "/v/title/a", client(), NOW, &p).is_ok());
    // old key retired
    let only_new = Keyring::single("new", &KEY_B).unwrap();
    assert_eq!(
        verify(&only_new, &t_old, "/v/title/a", client(), NOW, &p),
        Err(Reject::UnknownKey)
    );
    assert!(verify(&only_new, &t_new, "/v/title/a", client(), NOW, &p).is_ok());
    // sign_with an explicit, listed key
    let t = sign_with(&both, "old", &claims()).unwrap();
    assert_eq!(t, t_old);
    assert_eq!(
        sign_with(&both, "nope", &claims()),
        Err(SignError::UnknownKey("nope".into()))
    );
    // same id, different secret
    let swapped = Keyring::single("old", &KEY_B).unwrap();
    assert_eq!(
        verify(&swapped, &t_old, "/v/title/a", client(), NOW, &p),
        Err(Reject::BadSignature)
    );
}

#[test]
fn keyring_validation() {
    assert!(matches!(
        Keyring::new(Vec::<(&str, [u8; 32])>::new(), "a"),
        Err(KeyError::Empty)
    ));
    assert!(matches!(
        Keyring::single("", &KEY_A),
        Err(KeyError::InvalidId(_))
    ));
    assert!(matches!(
        Keyring::single("a.b", &KEY_A),
        Err(KeyError::InvalidId(_))
    ));
    assert!(matches!(
        Keyring::single(&"a".repeat(33), &KEY_A),
        Err(KeyError::InvalidId(_))
    ));
    assert!(Keyring::single(&"a".repeat(32), &KEY_A).is_ok());
    assert!(Keyring::single("A-z_09", &KEY_A).is_ok());
    assert!(matches!(
        Keyring::single("k", &[1u8; 31]),
        Err(KeyError::BadLength { len: 31, .. })
    ));
    assert!(matches!(
        Keyring::single("k", &[1u8; 33]),
        Err(KeyError::BadLength { len: 33, .. })
    ));
    assert!(matches!(
        Keyring::new([("a", KEY_A), ("a", KEY_B)], "a"),
        Err(KeyError::DuplicateId(_))
    ));
    assert!(matches!(
        Keyring::new([("a", KEY_A)], "b"),
        Err(KeyError::UnknownCurrent(_))
    ));
    let k = Keyring::new([("a", KEY_A), ("b", KEY_B)], "b").unwrap();
    assert_eq!(k.current_id(), "b");
    assert_eq!(k.ids().collect::<Vec<_>>(), ["a", "b"]);
    assert!(k.contains("a") && !k.contains("c"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn secrets_never_in_debug_or_errors() {
    let k = Keyring::new([("a", KEY_A), ("b", KEY_B)], "b").unwrap();
    let dbg = format!("{k:?} {k:#?}");
    assert!(dbg.contains("\"a\"") && dbg.contains("\"b\""), "{dbg}");
    let secret = KeySecret::from_bytes(&KEY_A).unwrap();
    let dbg2 = format!("{secret:?}");
    for needle in [
        hex(&KEY_A),
        hex(&KEY_B),
        STANDARD.encode(KEY_A),
        "165".to_string(), // 0xA5 in decimal
        "a5".to_string(),
        "A5".to_string(),
        "5a".to_string(),
        "5A".to_string(),
        "90".to_string(), // 0x5A in decimal
    ] {
        assert!(!dbg.contains(&needle), "{needle} in {dbg}");
        assert!(!dbg2.contains(&needle), "{needle} in {dbg2}");
    }
    // errors
    let e = Keyring::single("k", &[0xA5; 31]).unwrap_err().to_string();
    assert!(
        !e.contains("165") && !e.to_lowercase().contains("a5a5"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("edge-token-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("secret-leak.key");
    let material = "deadbeefcafebabe-not-a-valid-key-material-XYZZY";
    std::fs::write(&f, material).unwrap();
    let e = load_key_file(&f).unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(msg.contains("secret-leak.key"), "{msg}");
    assert!(!msg.contains("XYZZY") && !msg.contains("deadbeef"), "{msg}");
    // 31 bytes of hex-looking material
    std::fs::write(&f, "ab".repeat(31)).unwrap();
    let msg = load_key_file(&f).unwrap_err().to_string();
    assert!(!msg.contains("abab"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn key_file_formats() {
    let dir = std::env::temp_dir().join(format!("edge-token-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(3));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("raw", key.to_vec()),
        ("hex", hex(&key).into_bytes()),
        (
            "hexnl",
            format!("  {}\n", hex(&key).to_uppercase()).into_bytes(),
        ),
        ("b64", format!("{}\n", STANDARD.encode(key)).into_bytes()),
        (
            "b64url",
            format!("{}\r\n", URL_SAFE_NO_PAD.encode(key)).into_bytes(),
        ),
        (
            "b64nopad",
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(key)
                .into_bytes(),
        ),
    ];
    for (name, bytes) in cases {
        let f = dir.join(name);
        std::fs::write(&f, &bytes).unwrap();
        let k = load_key_file(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(k.as_bytes(), &key, "{name}");
    }
    // raw 32 bytes are taken as-is, even if they look like whitespace-padded text
    let raw_ws = [b' '; 32];
    assert_eq!(KeySecret::parse(&raw_ws).unwrap().as_bytes(), &raw_ws);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("short", vec![1; 31]),
        ("long", vec![1; 33]),
        ("hex63", "a".repeat(63).into_bytes()),
        ("hexbad", format!("{}zz", "a".repeat(62)).into_bytes()),
        ("b64short", STANDARD.encode([1u8; 16]).into_bytes()),
        ("empty", vec![]),
        ("huge", vec![b'a'; 10_000]),
    ];
    for (name, bytes) in bad {
        let f = dir.join(name);
        std::fs::write(&f, &bytes).unwrap();
        let e = load_key_file(&f).unwrap_err();
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    let missing = dir.join("does-not-exist");
    let e = load_key_file(&missing).unwrap_err().to_string();
    assert!(e.contains("does-not-exist"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- tampering

#[test]
fn tampered_parts() {
    let c = Claims::new("/v/title/", NOW + 3600);
    let t = sign(&ring1(), &c).unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    // payload re-encoded with a wider ACL, original MAC
    let evil = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{},"acl":"/"}}"#, NOW + 3600));
    let t2 = format!("v1.k1.{evil}.{}", parts[3]);
    assert_eq!(check(&t2, "/v/title/a.ts"), Err(Reject::BadSignature));
    // kid swapped to another listed key
    let two = Keyring::new([("k1", KEY_A), ("k2", KEY_B)], "k1").unwrap();
    let t3 = format!("v1.k2.{}.{}", parts[2], parts[3]);
    assert_eq!(
        verify(&two, &t3, "/v/title/a", client(), NOW, &policy()),
        Err(Reject::BadSignature)
    );
    // one MAC char flipped
    let mut mac = parts[3].as_bytes().to_vec();
    mac[0] = if mac[0] == b'A' { b'B' } else { b'A' };
    let t4 = format!("v1.k1.{}.{}", parts[2], String::from_utf8(mac).unwrap());
    assert_eq!(check(&t4, "/v/title/a.ts"), Err(Reject::BadSignature));
    // MAC truncated to 16 bytes
    let short = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(parts[3]).unwrap()[..16]);
    assert_eq!(
        check(&format!("v1.k1.{}.{short}", parts[2]), "/v/title/a"),
        Err(Reject::Malformed)
    );
}

// ---------------------------------------------------------------- time boundaries

#[test]
fn leeway_boundaries() {
    let p = VerifyPolicy {
        leeway: Duration::from_secs(30),
        max_ttl: Duration::from_secs(3600),
    };
    let at = |c: &Claims, now: u64| {
        let t = sign(&ring1(), c).unwrap();
        verify(&ring1(), &t, "/v/x", client(), now, &p)
    };
    let c = Claims::new("/v/", NOW);
    assert!(at(&c, NOW).is_ok());
    assert!(
        at(&c, NOW + 30).is_ok(),
        "exp == now - leeway is still valid"
    );
    assert_eq!(at(&c, NOW + 31), Err(Reject::Expired));
    let mut c = Claims::new("/v/", NOW + 100);
    c.nbf = Some(NOW + 30);
    assert!(at(&c, NOW).is_ok(), "nbf == now + leeway is valid");
    c.nbf = Some(NOW + 31);
    assert_eq!(at(&c, NOW), Err(Reject::NotYetValid));
    let c = Claims::new("/v/", NOW + 3600);
    assert!(at(&c, NOW).is_ok());
    let c = Claims::new("/v/", NOW + 3601);
    assert_eq!(at(&c, NOW), Err(Reject::TtlTooLong));
    // zero leeway
    let p0 = VerifyPolicy {
        leeway: Duration::ZERO,
        ..p
    };
    let t = sign(&ring1(), &Claims::new("/v/", NOW)).unwrap();
    assert!(verify(&ring1(), &t, "/v/x", client(), NOW, &p0).is_ok());
    assert_eq!(
        verify(&ring1(), &t, "/v/x", client(), NOW + 1, &p0),
        Err(Reject::Expired)
    );
    // extreme values do not overflow
    let t = sign(&ring1(), &Claims::new("/v/", u64::MAX)).unwrap();
    assert_eq!(
        verify(&ring1(), &t, "/v/x", client(), u64::MAX, &p),
        Ok(Claims::new("/v/", u64::MAX))
    );
    assert_eq!(
        verify(&ring1(), &t, "/v/x", client(), 0, &p),
        Err(Reject::TtlTooLong)
    );
    let t = sign(&ring1(), &Claims::new("/v/", 0)).unwrap();
    assert!(verify(&ring1(), &t, "/v/x", client(), 0, &p).is_ok());
    assert_eq!(
        verify(&ring1(), &t, "/v/x", client(), u64::MAX, &p),
        Err(Reject::Expired)
    );
    let mut c = Claims::new("/v/", 10);
    c.nbf = Some(u64::MAX);
    let t = sign(&ring1(), &c).unwrap();
    assert_eq!(
        verify(&ring1(), &t, "/v/x", client(), u64::MAX - 5, &p),
        Err(Reject::Expired)
    );
    assert_eq!(
        verify(&ring1(), &t, "/v/x", client(), 0, &p),
        Err(Reject::NotYetValid)
    );
}

#[test]
fn default_policy() {
    let p = VerifyPolicy::default();
    assert_eq!(p.leeway, Duration::from_secs(30));
    assert_eq!(p.max_ttl, Duration::from_secs(86_400));
}

// ---------------------------------------------------------------- ACL

#[test]
fn acl_table() {
    let table: &[(&str, &str, bool)] = &[
        ("/v/12/", "/v/12/a.ts", true),
        ("/v/12/", "/v/12/x/y.ts", true),
        ("/v/12/", "/v/12/", true),
        ("/v/12/", "/v/123/x.ts", false),
        ("/v/12/", "/v/12", false),
        ("/v/12/", "/v/1/", false),
        ("/v/12/", "/w/12/a.ts", false),
        ("/v/12/", "/V/12/a.ts", false),
        ("/v/12/master.m3u8", "/v/12/master.m3u8", true),
        ("/v/12/master.m3u8", "/v/12/master.m3u8x", false),
        ("/v/12/master.m3u8", "/v/12/master.m3u", false),
        ("/v/12/master.m3u8", "/v/12/master.m3u8/x", false),
        ("/v/12/master.m3u8", "/v/12/720p.m3u8", false),
        ("/v/12", "/v/12/a.ts", false),
        ("/v/12", "/v/12", true),
        ("/", "/anything/at/all", true),
        ("/v/a/!/v/b/", "/v/b/x.ts", true),
        ("/v/a/!/v/b/", "/v/a/x.ts", true),
        ("/v/a/!/v/b/", "/v/c/x.ts", false),
        ("/v/a/!/v/b/m.m3u8", "/v/b/m.m3u8", true),
        ("/v/a/!/v/b/m.m3u8", "/v/b/x.ts", false),
        ("/v/*/", "/v/x/a.ts", false),
        ("/v/*/", "/v/*/a.ts", true),
        ("!/v/", "/v/a", true),
        ("", "/", false),
    ];
    for &(acl, path, want) in table {
        assert_eq!(acl_covers(acl, path), want, "acl {acl:?} path {path:?}");
    }
}

#[test]
fn acl_via_verify() {
    let t = sign(&ring1(), &Claims::new("/v/12/", NOW + 60)).unwrap();
    assert!(check(&t, "/v/12/a.ts").is_ok());
    assert_eq!(check(&t, "/v/123/x.ts"), Err(Reject::AclMismatch));
    let t = sign(&ring1(), &Claims::new("/v/12/master.m3u8", NOW + 60)).unwrap();
    assert!(check(&t, "/v/12/master.m3u8").is_ok());
    assert_eq!(check(&t, "/v/12/a.ts"), Err(Reject::AclMismatch));
}

// ---------------------------------------------------------------- IP

#[test]
fn ip_claims_v4_v6_cidr() {
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let table: &[(&str, IpAddr, bool)] = &[
        ("203.0.113.7", v4(203, 0, 113, 7), true),
        ("203.0.113.7", v4(203, 0, 113, 8), false),
        ("203.0.113.7/32", v4(203, 0, 113, 7), true),
        ("203.0.113.0/24", v4(203, 0, 113, 255), true),
        ("203.0.113.0/24", v4(203, 0, 114, 0), false),
        ("203.0.113.77/24", v4(203, 0, 113, 1), true),
        ("10.0.0.0/8", v4(10, 255, 0, 1), true),
        ("10.0.0.0/8", v4(11, 0, 0, 1), false),
        ("0.0.0.0/0", v4(1, 2, 3, 4), true),
        ("0.0.0.0/0", v6("2001:db8::1"), false),
        ("203.0.113.0/24", v6("::ffff:203.0.113.9"), true),
        ("203.0.113.0/24", v6("::ffff:203.0.114.9"), false),
        ("2001:db8::/32", v6("2001:db8:ffff::1"), true),
        ("2001:db8::/32", v6("2001:db9::1"), false),
        ("2001:db8::1", v6("2001:db8::1"), true),
        ("2001:db8::1", v6("2001:db8::2"), false),
        ("2001:db8::/32", v4(32, 1, 13, 184), false),
        ("::/0", v6("::1"), true),
        ("::ffff:203.0.113.0/120", v4(203, 0, 113, 5), true),
        ("2001:db8:0:0:0:0:0:0/127", v6("2001:db8::1"), true),
        ("2001:db8::/128", v6("2001:db8::1"), false),
    ];
    for &(claim, ip, want) in table {
        let mut c = Claims::new("/v/", NOW + 60);
        c.ip = Some(claim.into());
        let t = sign(&ring1(), &c).unwrap();
        let r = verify(&ring1(), &t, "/v/a.ts", ip, NOW, &policy());
        if want {
            assert!(r.is_ok(), "{claim} {ip}: {r:?}");
        } else {
            assert_eq!(r, Err(Reject::IpMismatch), "{claim} {ip}");
        }
    }
    for bad in [
        "",
        "1.2.3",
        "1.2.3.4/",
        "1.2.3.4/+8",
        "1.2.3.4/0008",
        "1.2.3.4/8/8",
        "::/129",
        "fe80::1%eth0",
        " 1.2.3.4",
    ] {
        assert!(IpNet::parse(bad).is_none(), "{bad:?}");
    }
}

// ---------------------------------------------------------------- claims helpers

#[test]
fn claims_helpers() {
    let mut c = claims();
    assert!(c.allows_country("GB"));
    c.cc = Some(vec!["GB".into()]);
    assert!(c.allows_country("GB") && c.allows_country("gb") && !c.allows_country("US"));
    c.ip = Some("10.0.0.0/8".into());
    assert_eq!(c.ip_net().unwrap().prefix(), 8);
}

// ---------------------------------------------------------------- extraction

#[test]
fn extract_from_path() {
    assert_eq!(
        from_path("/t/abc.def/v/title/x.ts"),
        Some(("abc.def", "/v/title/x.ts"))
    );
    assert_eq!(from_path("/t/abc/"), Some(("abc", "/")));
    assert_eq!(from_path("/t/abc"), Some(("abc", "/")));
    assert_eq!(from_path("/t//x.ts"), Some(("", "/x.ts")));
    assert_eq!(from_path("/v/title/x.ts"), None);
    assert_eq!(from_path("/t"), None);
    assert_eq!(from_path("/tt/abc/x"), None);
    assert_eq!(from_path("t/abc/x"), None);
    assert_eq!(from_path(""), None);
    // the extracted token verifies against the rest path
    let t = sign(&ring1(), &claims()).unwrap();
    let p = format!("/t/{t}/v/title/720p/seg1.ts");
    let (tok, rest) = from_path(&p).unwrap();
    assert!(check(tok, rest).is_ok());
    assert_eq!(
        check(from_path("/t//v/title/a.ts").unwrap().0, "/v/title/a.ts"),
        Err(Reject::Missing)
    );
}

#[test]
fn extract_from_query() {
    let found = |t: &str, r: &str| QueryToken::Found {
        token: Cow::Owned(t.to_string()),
        rest: r.to_string(),
    };
    assert_eq!(from_query("token=abc", "token"), found("abc", ""));
    assert_eq!(
        from_query("a=1&token=abc&b=2", "token"),
        found("abc", "a=1&b=2")
    );
    assert_eq!(
        from_query("b=2&a=%20x&token=abc", "token"),
        found("abc", "b=2&a=%20x")
    );
    assert_eq!(
        from_query("a=1&&token=abc&", "token"),
        found("abc", "a=1&&")
    );
    assert_eq!(from_query("token", "token"), found("", ""));
    assert_eq!(from_query("token=", "token"), found("", ""));
    assert_eq!(from_query("token=a=b~c", "token"), found("a=b~c", ""));
    assert_eq!(
        from_query("token=st%3D1%7Eacl%3D%2Fv%2F%2A", "token"),
        found("st=1~acl=/v/*", "")
    );
    assert_eq!(from_query("token=bad%zz", "token"), found("bad%zz", ""));
    assert_eq!(from_query("token=bad%ff", "token"), found("bad%ff", ""));
    assert_eq!(from_query("token=bad%", "token"), found("bad%", ""));
    assert_eq!(from_query("a=1", "token"), QueryToken::Absent);
    assert_eq!(from_query("", "token"), QueryToken::Absent);
    assert_eq!(
        from_query("tokens=1&Token=2&xtoken=3", "token"),
        QueryToken::Absent
    );
    assert_eq!(
        from_query("token=a&x=1&token=b", "token"),
        QueryToken::Duplicate
    );
    assert_eq!(
        from_query("token=a&token=a", "token"),
        QueryToken::Duplicate
    );
    assert_eq!(from_query("tok=x&token=y", "tok"), found("x", "token=y"));
    // borrowed when no decoding is needed
    match from_query("x=1&token=abc", "token") {
        QueryToken::Found {
            token: Cow::Borrowed(t),
            ..
        } => assert_eq!(t, "abc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn extract_from_cookie() {
    assert_eq!(from_cookie("token=abc", "token"), Some("abc"));
    assert_eq!(from_cookie("a=1; token=abc; b=2", "token"), Some("abc"));
    assert_eq!(from_cookie("a=1;token=abc;b=2", "token"), Some("abc"));
    assert_eq!(from_cookie("a=1; token=\"abc\"", "token"), Some("abc"));
    assert_eq!(
        from_cookie("token=first; token=second", "token"),
        Some("first")
    );
    assert_eq!(from_cookie("mytoken=abc; token2=x", "token"), None);
    assert_eq!(from_cookie("token=", "token"), None);
    assert_eq!(from_cookie("token", "token"), None);
    assert_eq!(from_cookie("", "token"), None);
    assert_eq!(
        from_cookie("x=a=b; token=v1.k.p.m", "token"),
        Some("v1.k.p.m")
    );
    assert_eq!(
        from_cookie("__token__=st=1~exp=2~hmac=ab", "__token__"),
        Some("st=1~exp=2~hmac=ab")
    );
}

// ---------------------------------------------------------------- EdgeAuth

const EA_KEY_HEX: &str = "52a152a152a152a152a152a152a152a1";

/// Independent EdgeAuth token generation (published algorithm): fields joined by '~', HMAC-SHA256
/// over that text (plus `~url=<path>` for URL tokens) keyed with the hex-decoded key, lowercase hex.
fn ea_token(fields: &[(&str, &str)], url: Option<&str>) -> String {
    let key: Vec<u8> = (0..EA_KEY_HEX.len() / 2)
        .map(|i| u8::from_str_radix(&EA_KEY_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = body.join("~");
    let mut hash_source = body.clone();
    if let Some(u) = url {
        hash_source.push_str("~url=");
        hash_source.push_str(u);
    }
    let k = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mac = hmac::sign(&k, hash_source.as_bytes());
    format!("{body}~hmac={}", hex(mac.as_ref()))
}

fn ea_check(token: &str, path: &str, ip: IpAddr) -> Result<edgeauth::EdgeAuthClaims, Reject> {
    let key = edgeauth::parse_hex_key(EA_KEY_HEX).unwrap();
    edgeauth::verify(&key, token, path, ip, NOW, &policy())
}

#[test]
fn edgeauth_acl_token() {
    let st = NOW.to_string();
    let exp = (NOW + 3600).to_string();
    let t = ea_token(&[("st", &st), ("exp", &exp), ("acl", "/v/title/*")], None);
    let c = ea_check(&t, "/v/title/720p/seg1.ts", client()).unwrap();
    assert_eq!(c.exp, NOW + 3600);
    assert_eq!(c.st, Some(NOW));
    assert_eq!(c.acl.as_deref(), Some("/v/title/*"));
    assert_eq!(
        ea_check(&t, "/v/other/seg1.ts", client()),
        Err(Reject::AclMismatch)
    );
    // '*' spans segments and characters: /v/title* covers /v/title2 as well (EdgeAuth semantics)
    let t2 = ea_token(&[("exp", &exp), ("acl", "/v/title*")], None);
    assert!(ea_check(&t2, "/v/title2/a.ts", client()).is_ok());
}

#[test]
fn edgeauth_full_fields_and_multi_acl() {
    let exp = (NOW + 600).to_string();
    let t = ea_token(
        &[
            ("ip", "198.51.100.7"),
            ("st", &(NOW - 5).to_string()),
            ("exp", &exp),
            ("acl", "/a/*!/b/*/index.m3u8"),
            ("id", "sess42"),
            ("data", "opaque"),
        ],
        None,
    );
    let c = ea_check(&t, "/b/x/y/index.m3u8", client()).unwrap();
    assert_eq!(c.id.as_deref(), Some("sess42"));
    assert_eq!(c.data.as_deref(), Some("opaque"));
    assert_eq!(c.ip.as_deref(), Some("198.51.100.7"));
    assert!(ea_check(&t, "/a/q.ts", client()).is_ok());
    assert_eq!(
        ea_check(&t, "/b/x/y/seg.ts", client()),
        Err(Reject::AclMismatch)
    );
    assert_eq!(
        ea_check(&t, "/a/q.ts", v4(1, 1, 1, 1)),
        Err(Reject::IpMismatch)
    );
}

#[test]
fn edgeauth_url_token() {
    let exp = (NOW + 600).to_string();
    // URL tokens carry no acl/url field; the path is inside the MAC.
    let t = ea_token(&[("exp", &exp)], Some("/v/title/master.m3u8"));
    assert!(!t.contains("url="));
    let c = ea_check(&t, "/v/title/master.m3u8", client()).unwrap();
    assert_eq!(c.url.as_deref(), Some("/v/title/master.m3u8"));
    assert_eq!(
        ea_check(&t, "/v/title/other.m3u8", client()),
        Err(Reject::BadSignature)
    );
    // an explicit url= field: exact match
    let t = ea_token(&[("exp", &exp), ("url", "/v/x.ts")], None);
    assert!(ea_check(&t, "/v/x.ts", client()).is_ok());
    assert_eq!(ea_check(&t, "/v/y.ts", client()), Err(Reject::AclMismatch));
}

#[test]
fn edgeauth_rejects() {
    let exp = (NOW + 600).to_string();
    let good = ea_token(&[("exp", &exp), ("acl", "/*")], None);
    assert!(ea_check(&good, "/x", client()).is_ok());
    assert_eq!(ea_check("", "/x", client()), Err(Reject::Missing));
    // tampered field
    let bad = good.replace("acl=/*", "acl=/**");
    assert_eq!(ea_check(&bad, "/x", client()), Err(Reject::BadSignature));
    // wrong key
    let other = edgeauth::parse_hex_key("00112233").unwrap();
    assert_eq!(
        edgeauth::verify(&other, &good, "/x", client(), NOW, &policy()),
        Err(Reject::BadSignature)
    );
    // uppercase hex MAC is accepted (same bytes)
    let (head, mac) = good.rsplit_once("hmac=").unwrap();
    assert!(ea_check(
        &format!("{head}hmac={}", mac.to_uppercase()),
        "/x",
        client()
    )
    .is_ok());
    // malformed forms
    let malformed = vec![
        "exp=1".to_string(),
        "hmac=00".to_string(),
        format!("acl=/*~hmac={}", "0".repeat(64)),
        format!("{good}~x=1"),
        format!("exp=abc~acl=/*~hmac={}", "0".repeat(64)),
        format!("exp=+5~acl=/*~hmac={}", "0".repeat(64)),
        format!("exp=1~acl=/*~hmac={}", "0".repeat(63)),
        format!("exp=1~acl=/*~hmac={}", "g".repeat(64)),
        format!("exp=1~exp=2~acl=/*~hmac={}", "0".repeat(64)),
        format!("exp=1~noequals~hmac={}", "0".repeat(64)),
        format!("exp=1~hmac=00~hmac={}", "0".repeat(64)),
        ea_token(&[("exp", &exp), ("acl", "/*"), ("url", "/x")], None),
        ea_token(&[("exp", &exp), ("acl", "/*"), ("ip", "nope")], None),
        ea_token(&[("exp", "99999999999999999999999"), ("acl", "/*")], None),
        ea_token(&[("st", "x"), ("exp", &exp), ("acl", "/*")], None),
    ];
    for t in malformed {
        assert_eq!(ea_check(&t, "/x", client()), Err(Reject::Malformed), "{t}");
    }
    // times
    let t = ea_token(&[("exp", &(NOW - 31).to_string()), ("acl", "/*")], None);
    assert_eq!(ea_check(&t, "/x", client()), Err(Reject::Expired));
    let t = ea_token(&[("exp", &(NOW - 30).to_string()), ("acl", "/*")], None);
    assert!(ea_check(&t, "/x", client()).is_ok());
    let t = ea_token(
        &[
            ("st", &(NOW + 31).to_string()),
            ("exp", &exp),
            ("acl", "/*"),
        ],
        None,
    );
    assert_eq!(ea_check(&t, "/x", client()), Err(Reject::NotYetValid));
    let t = ea_token(&[("exp", &(NOW + 86_401).to_string()), ("acl", "/*")], None);
    assert_eq!(ea_check(&t, "/x", client()), Err(Reject::TtlTooLong));
    // unknown fields tolerated (and signed)
    let t = ea_token(&[("exp", &exp), ("acl", "/*"), ("future", "1")], None);
    assert!(ea_check(&t, "/x", client()).is_ok());
    // ip prefix
    let t = ea_token(
        &[("ip", "198.51.100.0/24"), ("exp", &exp), ("acl", "/*")],
        None,
    );
    assert!(ea_check(&t, "/x", client()).is_ok());
}

#[test]
fn edgeauth_wildcards() {
    let table: &[(&str, &str, bool)] = &[
        ("/*", "/", true),
        ("/*", "/a/b/c", true),
        ("*", "", true),
        ("/v/title/*", "/v/title/", true),
        ("/v/title/*", "/v/title", false),
        ("/v/title/*", "/v/titles/a", false),
        ("/v/*/seg.ts", "/v/a/b/seg.ts", true),
        ("/v/*/seg.ts", "/v/a/b/seg.tsx", false),
        ("/v/*.m3u8", "/v/a/b.m3u8", true),
        ("/v/*.m3u8", "/v/a/b.ts", false),
        ("/a*b*c", "/aXXbYYc", true),
        ("/a*b*c", "/aXXbYY", false),
        ("/a**c", "/ac", true),
        ("/exact", "/exact", true),
        ("/exact", "/exactly", false),
        ("/x/*!/y/*", "/y/1", true),
        ("/x/*!", "/z", false),
        ("", "", false),
    ];
    for &(acl, path, want) in table {
        assert_eq!(edgeauth::acl_matches(acl, path), want, "{acl:?} {path:?}");
    }
    assert!(edgeauth::parse_hex_key("abc").is_none());
    assert!(edgeauth::parse_hex_key("zz").is_none());
    assert!(edgeauth::parse_hex_key("").is_none());
    assert_eq!(edgeauth::parse_hex_key("0aFf").unwrap(), vec![0x0a, 0xff]);
}

// ---------------------------------------------------------------- property tests

fn good_token() -> String {
    let mut c = Claims::new("/v/title/", NOW + 3600);
    c.sid = Some("s".into());
    sign(&ring1(), &c).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn verify_never_panics_on_arbitrary_strings(s in ".{0,300}", path in "/[a-z/]{0,20}") {
        let r = verify(&ring1(), &s, &path, client(), NOW, &policy());
        prop_assert!(r.is_err());
        let _ = edgeauth::verify(&KEY_A, &s, &path, client(), NOW, &policy());
    }

    #[test]
    fn verify_never_panics_on_structured_garbage(
        kid in "[A-Za-z0-9_-]{0,34}",
        p in "[A-Za-z0-9_=-]{0,200}",
        m in "[A-Za-z0-9_=-]{0,60}",
    ) {
        let t = format!("v1.{kid}.{p}.{m}");
        prop_assert!(verify(&ring1(), &t, "/v/title/a", client(), NOW, &policy()).is_err());
    }

    #[test]
    fn only_the_unmodified_token_verifies(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4)
    ) {
        let good = good_token();
        let mut bytes = good.clone().into_bytes();
        for (idx, b, op) in edits {
            match op {
                0 if !bytes.is_empty() => { let i = idx.index(bytes.len()); bytes[i] = b; }
                1 => { let i = idx.index(bytes.len() + 1); bytes.insert(i, b); }
                _ if !bytes.is_empty() => { let i = idx.index(bytes.len()); bytes.remove(i); }
                _ => {}
            }
        }
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let r = verify(&ring1(), &s, "/v/title/a.ts", client(), NOW, &policy());
        if s == good {
            prop_assert!(r.is_ok());
        } else {
            prop_assert!(r.is_err(), "mutated token accepted: {}", s);
        }
    }

    #[test]
    fn edgeauth_only_unmodified_verifies(i in any::<prop::sample::Index>(), b in any::<u8>()) {
        let exp = (NOW + 600).to_string();
        let good = ea_token(&[("exp", &exp), ("acl", "/v/*")], None);
        let mut bytes = good.clone().into_bytes();
        let at = i.index(bytes.len());
        bytes[at] = b;
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let r = ea_check(&s, "/v/a", client());
        // hex case of the MAC is not significant (same MAC bytes)
        let same = match (s.rsplit_once("hmac="), good.rsplit_once("hmac=")) {
            (Some((h1, m1)), Some((h2, m2))) => h1 == h2 && m1.to_ascii_lowercase() == m2,
            _ => false,
        };
        if same {
            prop_assert!(r.is_ok());
        } else {
            prop_assert!(r.is_err(), "mutated token accepted: {}", s);
        }
    }

    #[test]
    fn sign_verify_round_trip(
        exp_off in 0u64..86_400,
        acl in "(/[a-z0-9]{1,8}){1,4}/?",
        sid in proptest::option::of("[ -~]{0,20}"),
        mh in proptest::option::of(any::<u32>()),
    ) {
        let mut c = Claims::new(acl.clone(), NOW + exp_off);
        c.sid = sid;
        c.mh = mh;
        let t = sign(&ring1(), &c).unwrap();
        let path = if acl.ends_with('/') { format!("{acl}x.ts") } else { acl.clone() };
        prop_assert_eq!(verify(&ring1(), &t, &path, client(), NOW, &policy()), Ok(c));
    }

    #[test]
    fn extractors_never_panic(s in ".{0,100}", name in "[a-z_]{0,6}") {
        let _ = from_path(&s);
        let _ = from_query(&s, &name);
        let _ = from_cookie(&s, &name);
        let _ = acl_covers(&s, &name);
        let _ = edgeauth::acl_matches(&s, &name);
        let _ = IpNet::parse(&s);
        let _ = KeySecret::parse(s.as_bytes());
    }
}
