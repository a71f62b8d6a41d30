//! Known-answer checks: the signatures below were made with `openssl dgst -sha1 -sign` and
//! the private key of `tests/fixtures/cloudfront/test-public.pem` (not with this code).

use super::*;
use std::time::Duration;

const PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/cloudfront/test-public.pem");
const OTHER: &[u8] = include_bytes!("../../../tests/fixtures/cloudfront/other-public.pem");

/// Canned: `https://cdn.example/v/a.m3u8?x=1` until 1800000600.
const CANNED_SIG: &str = "x4eya52eA1lLM3318dswU4UWt0FcuBlDxxtCp1ephrFCo0G569iLz9VnelIXiNSoKNoFQ9fO~MAfzBS0zOZmrdXhKEm88SP3KH59~02poLd1OaozBIF1xZ9-m84u-S0pOgWp0r6Z0qJcr4EKnjqunAgGBwPjSway6erAYWI3ALTEQ0c2h~yVrrxQOf8-06wIH~8Q41Rmz4gyOAxa6lXtEiidGttZ5LBoz4exER0NYl5KOysn6ci653WjN1FVQiyggjIaamc~RNNerbi630EywBu9tJ~LDtogD5q-RYRidaeIUqot5tuVb7RbgFcrbp1qWyRefIV4UKaVqHHdNVTegw__";
/// Custom: `http*://cdn.example/v/*`, 1799999000 < t < 1800000600, from 192.0.2.0/24.
const CUSTOM_POLICY: &str = "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cCo6Ly9jZG4uZXhhbXBsZS92LyoiLCJDb25kaXRpb24iOnsiRGF0ZUxlc3NUaGFuIjp7IkFXUzpFcG9jaFRpbWUiOjE4MDAwMDA2MDB9LCJEYXRlR3JlYXRlclRoYW4iOnsiQVdTOkVwb2NoVGltZSI6MTc5OTk5OTAwMH0sIklwQWRkcmVzcyI6eyJBV1M6U291cmNlSXAiOiIxOTIuMC4yLjAvMjQifX19XX0_";
const CUSTOM_SIG: &str = "gmh2ufECuRVTvEBaCAVaZ83CZH~M5xpj0y~-ttYQt1CsGHv1cxgvqHDfcj4vJL1EpBIrYdtxntH4dRyS7zP0cJKoqIDCBqkWGg~XtDfsCR12Ach~cQmucNX2hcNOy-fPtc7uJcB~DbszajhSXYsON5rGW1fjG-DxX46TsR0tOUXjbzFbNGaYJsEytdOt5k76GQkEMcRr8b83rxuCOqh3jzRv3UMEcG3oPdApELXS~nf8oeSP~zzBbK5WESsrwKaGtAuE6VLjHAHRAfigSoeL0t9N-mVVWe5vgQX3Sheqx~lbO3A6oUEH3LNJvZYx5VRZ62fPLGAfswEsGuNPg4UybA__";

const NOW: u64 = 1_800_000_000;

fn keys() -> PublicKeys {
    let mut k = PublicKeys::default();
    k.add_pem("K2TEST", PUBLIC).unwrap();
    k.add_pem("KOTHER", OTHER).unwrap();
    k
}

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        leeway: Duration::from_secs(30),
        max_ttl: Duration::from_secs(60),
    }
}

fn canned(expires: &str, sig: &str, id: &str) -> Signed<'static> {
    Signed {
        expires: Some(Box::leak(expires.to_string().into_boxed_str())),
        policy: None,
        signature: Some(Box::leak(sig.to_string().into_boxed_str())),
        key_pair_id: Some(Box::leak(id.to_string().into_boxed_str())),
    }
}

fn custom(sig: &str, id: &str) -> Signed<'static> {
    Signed {
        expires: None,
        policy: Some(CUSTOM_POLICY),
        signature: Some(Box::leak(sig.to_string().into_boxed_str())),
        key_pair_id: Some(Box::leak(id.to_string().into_boxed_str())),
    }
}

fn run(s: &Signed<'_>, url: &str, ip: &str, now: u64) -> Result<Verified, Reject> {
    verify(&keys(), s, url, ip.parse().unwrap(), now, &policy())
}

const URL: &str = "https://cdn.example/v/a.m3u8?x=1";

#[test]
fn canned_policy() {
    let s = canned("1800000600", CANNED_SIG, "K2TEST");
    let v = run(&s, URL, "198.51.100.1", NOW).unwrap();
    assert_eq!(
        v,
        Verified {
            key_pair_id: "K2TEST".into(),
            custom: false,
            expires: 1800000600
        }
    );
    // The edge's max_ttl (60 s here) does not apply to CloudFront signatures.
    // Another URL, another expiry or another key: the signed text differs.
    for url in [
        "https://cdn.example/v/a.m3u8",
        "http://cdn.example/v/a.m3u8?x=1",
        "https://cdn.example/v/b.m3u8?x=1",
    ] {
        assert_eq!(
            run(&s, url, "198.51.100.1", NOW),
            Err(Reject::CfBadSignature),
            "{url}"
        );
    }
    let later = canned("1800000601", CANNED_SIG, "K2TEST");
    assert_eq!(
        run(&later, URL, "198.51.100.1", NOW),
        Err(Reject::CfBadSignature)
    );
    let other = canned("1800000600", CANNED_SIG, "KOTHER");
    assert_eq!(
        run(&other, URL, "198.51.100.1", NOW),
        Err(Reject::CfBadSignature)
    );
    let unknown = canned("1800000600", CANNED_SIG, "KNOPE");
    assert_eq!(
        run(&unknown, URL, "198.51.100.1", NOW),
        Err(Reject::CfUnknownKey)
    );
    // Expiry: served while now < Expires + leeway.
    assert!(run(&s, URL, "198.51.100.1", 1800000629).is_ok());
    assert_eq!(
        run(&s, URL, "198.51.100.1", 1800000630),
        Err(Reject::CfExpired)
    );
}

#[test]
fn tampered_signatures() {
    // One character of the signature changed (still valid base64): bad signature.
    let mut t = CANNED_SIG.to_string();
    t.replace_range(10..11, if &CANNED_SIG[10..11] == "A" { "B" } else { "A" });
    let s = canned("1800000600", &t, "K2TEST");
    assert_eq!(
        run(&s, URL, "198.51.100.1", NOW),
        Err(Reject::CfBadSignature)
    );
    // Truncated.
    let s = canned("1800000600", &CANNED_SIG[..40], "K2TEST");
    assert_eq!(
        run(&s, URL, "198.51.100.1", NOW),
        Err(Reject::CfBadSignature)
    );
    // A custom policy with one byte of its JSON changed (the resource widened to `*`).
    let json = decode_b64(CUSTOM_POLICY).unwrap();
    let widened = String::from_utf8(json)
        .unwrap()
        .replace("http*://cdn.example/v/*", "*");
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(widened)
        .replace('+', "-")
        .replace('=', "_")
        .replace('/', "~");
    let s = Signed {
        policy: Some(Box::leak(b64.into_boxed_str())),
        ..custom(CUSTOM_SIG, "K2TEST")
    };
    assert_eq!(
        run(&s, "https://other.example/x", "192.0.2.9", NOW),
        Err(Reject::CfBadSignature)
    );
}

#[test]
fn custom_policy() {
    let s = custom(CUSTOM_SIG, "K2TEST");
    for url in [
        "https://cdn.example/v/a.m3u8",
        "http://cdn.example/v/1080/seg1.ts?x=1",
    ] {
        let v = run(&s, url, "192.0.2.77", NOW).unwrap();
        assert!(v.custom);
        assert_eq!(v.expires, 1800000600);
    }
    assert_eq!(
        run(&s, "https://cdn.example/w/a.m3u8", "192.0.2.77", NOW),
        Err(Reject::CfResource)
    );
    assert_eq!(
        run(&s, "https://cdn.example.org/v/a.m3u8", "192.0.2.77", NOW),
        Err(Reject::CfResource)
    );
    assert_eq!(
        run(&s, "https://cdn.example/v/a.m3u8", "192.0.3.1", NOW),
        Err(Reject::CfIp)
    );
    assert_eq!(
        run(&s, "https://cdn.example/v/a.m3u8", "2001:db8::1", NOW),
        Err(Reject::CfIp)
    );
    // DateGreaterThan 1799999000 (leeway 30), DateLessThan 1800000600.
    assert!(run(&s, "https://cdn.example/v/a", "192.0.2.1", 1799998970).is_ok());
    assert_eq!(
        run(&s, "https://cdn.example/v/a", "192.0.2.1", 1799998969),
        Err(Reject::CfNotYetValid)
    );
    assert_eq!(
        run(&s, "https://cdn.example/v/a", "192.0.2.1", 1800000630),
        Err(Reject::CfExpired)
    );
    assert_eq!(
        run(
            &custom(CUSTOM_SIG, "KOTHER"),
            "https://cdn.example/v/a",
            "192.0.2.1",
            NOW
        ),
        Err(Reject::CfBadSignature)
    );
}

#[test]
fn malformed_forms() {
    let base = custom(CUSTOM_SIG, "K2TEST");
    for s in [
        Signed {
            signature: None,
            ..base
        },
        Signed {
            key_pair_id: None,
            ..base
        },
        // Both Expires and Policy, or neither.
        Signed {
            expires: Some("1800000600"),
            ..base
        },
        Signed {
            policy: None,
            ..base
        },
        Signed {
            policy: Some("not*base64"),
            ..base
        },
        Signed {
            signature: Some("%%%"),
            ..base
        },
        canned("18000006x0", CANNED_SIG, "K2TEST"),
        canned("", CANNED_SIG, "K2TEST"),
        canned("-1", CANNED_SIG, "K2TEST"),
    ] {
        assert_eq!(
            run(&s, URL, "192.0.2.1", NOW),
            Err(Reject::CfMalformed),
            "{s:?}"
        );
    }
    assert!(!Signed::default().present());
    assert!(!Signed {
        expires: Some("1"),
        ..Signed::default()
    }
    .present());
    assert!(base.present());
}

#[test]
fn cloudfront_base64() {
    // `+` `=` `/` are `-` `_` `~`; padding optional.
    assert_eq!(
        decode_b64("-~8_").unwrap(),
        base64::engine::general_purpose::STANDARD
            .decode("+/8=")
            .unwrap()
    );
    assert_eq!(decode_b64("-~8").unwrap(), vec![0xfb, 0xff]);
    assert_eq!(decode_b64("YQ__").unwrap(), b"a");
    assert_eq!(decode_b64("YQ").unwrap(), b"a");
    assert!(
        decode_b64("a+b/").is_some(),
        "the standard alphabet decodes too"
    );
    assert!(decode_b64("Y*").is_none());
}

#[test]
fn public_keys() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudfront/");
    let read = |f: &str| std::fs::read(format!("{dir}{f}")).unwrap();
    assert!(rsa_public_key_from_pem(&read("test-public.pem")).is_ok());
    assert_eq!(
        rsa_public_key_from_pem(&read("rsa1024-public.pem")),
        Err(PublicKeyError::BadSize(1024))
    );
    assert_eq!(
        rsa_public_key_from_pem(&read("ec-public.pem")),
        Err(PublicKeyError::NotRsa)
    );
    assert_eq!(
        rsa_public_key_from_pem(b"hello"),
        Err(PublicKeyError::NoPublicKey)
    );
    let mut k = PublicKeys::default();
    k.add_pem("K1", PUBLIC).unwrap();
    assert_eq!(
        k.add_pem("K1", PUBLIC),
        Err(PublicKeyError::DuplicateId("K1".into()))
    );
    assert_eq!(
        k.add_pem("bad id", PUBLIC),
        Err(PublicKeyError::InvalidId("bad id".into()))
    );
    assert_eq!(format!("{k:?}"), r#"["K1"]"#);
}
