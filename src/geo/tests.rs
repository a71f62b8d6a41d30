use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::net::IpNet;

use super::*;

const TEST_DB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/edge-test.mmdb");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cc(db: &Db, addr: &str) -> Option<String> {
    db.lookup(ip(addr)).map(|c| c.to_string())
}

// ---------------------------------------------------------------------------------------
// the committed test database

#[test]
fn test_db_lookups() {
    let db = Db::open(Path::new(TEST_DB)).unwrap();
    assert_eq!(db.database_type(), "GeoLite2-Country");
    assert_eq!(db.build_epoch(), 1_704_067_200);
    assert_eq!(db.path(), Path::new(TEST_DB));
    let table: &[(&str, Option<&str>)] = &[
        // IPv4 documentation ranges, edges included
        ("192.0.2.0", Some("GB")),
        ("192.0.2.77", Some("GB")),
        ("192.0.2.255", Some("GB")),
        ("192.0.1.255", None),
        ("192.0.3.0", None),
        ("198.51.100.1", Some("US")),
        ("198.51.100.255", Some("US")),
        ("198.51.101.0", None),
        ("203.0.113.9", Some("DE")),
        ("203.0.114.0", None),
        // IPv4-mapped IPv6 is the IPv4 address
        ("::ffff:192.0.2.1", Some("GB")),
        ("::ffff:198.51.100.1", Some("US")),
        ("::ffff:203.0.113.1", Some("DE")),
        ("::ffff:127.0.0.1", None),
        // IPv6 documentation ranges
        ("2001:db8:1::", Some("GB")),
        ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", Some("GB")),
        ("2001:db8:2::1", Some("US")),
        ("2001:db8:3::1", Some("NL")), // registered_country fallback
        ("2001:db8:4::1", None),       // record without any country
        ("2001:db8:5::1", None),
        ("2001:db8::1", None),
        // unknown
        ("127.0.0.1", None),
        ("8.8.8.8", None),
        ("10.1.2.3", None),
        ("0.0.0.0", None),
        ("255.255.255.255", None),
        ("::1", None),
        ("::", None),
        ("2606:4700::1111", None),
    ];
    for (addr, want) in table {
        assert_eq!(cc(&db, addr).as_deref(), *want, "{addr}");
    }
}

#[test]
fn test_db_is_valid_for_the_reference_reader() {
    // The maxminddb crate's full structural verification, plus its own decoding of a record
    // in the GeoLite2 layout.
    let reader = maxminddb::Reader::open_readfile(TEST_DB).unwrap();
    reader.verify().unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.ip_version, 6);
    assert_eq!(meta.record_size, 24);
    assert_eq!(meta.languages, vec!["en".to_string()]);
    let country: maxminddb::geoip2::Country = reader
        .lookup(ip("192.0.2.1"))
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(country.country.iso_code, Some("GB"));
    assert_eq!(country.country.names.english, Some("United Kingdom"));
    assert_eq!(country.registered_country.iso_code, Some("GB"));
    assert_eq!(country.continent.code, Some("EU"));
    let de: maxminddb::geoip2::Country = reader
        .lookup(ip("203.0.113.1"))
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(de.country.is_in_european_union, Some(true));
    assert!(reader
        .lookup(ip("8.8.8.8"))
        .unwrap()
        .decode::<maxminddb::geoip2::Country>()
        .unwrap()
        .is_none());
}

#[test]
fn country_code() {
    assert_eq!(CountryCode::parse("gb").unwrap().as_str(), "GB");
    assert_eq!(CountryCode::parse("Us").unwrap().as_bytes(), *b"US");
    assert_eq!(
        format!("{:?}", CountryCode::parse("de").unwrap()),
        "CountryCode(DE)"
    );
    for bad in ["", "G", "GBR", "G1", "  ", "É"] {
        assert_eq!(CountryCode::parse(bad), None, "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------
// bad files

fn tmp_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn open_err(path: &Path) -> String {
    let e = Db::open(path).expect_err("expected an error");
    assert_eq!(e.path(), path);
    e.to_string()
}

#[test]
fn corrupt_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(TEST_DB).unwrap();

    let e = open_err(&tmp_with(dir.path(), "empty.mmdb", b""));
    assert!(
        e.ends_with("empty.mmdb: not a usable MaxMind DB (.mmdb) file: the file is empty"),
        "{e}"
    );

    let e = open_err(&tmp_with(
        dir.path(),
        "text.mmdb",
        b"GeoLite2 Country, honest\n",
    ));
    assert!(
        e.contains("text.mmdb: not a usable MaxMind DB (.mmdb) file: "),
        "{e}"
    );

    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let e = open_err(&tmp_with(dir.path(), "random.mmdb", &random));
    assert!(
        e.contains("random.mmdb: not a usable MaxMind DB (.mmdb) file: "),
        "{e}"
    );

    let e = open_err(&tmp_with(dir.path(), "half.mmdb", &real[..real.len() / 2]));
    assert!(
        e.contains("half.mmdb: not a usable MaxMind DB (.mmdb) file: "),
        "{e}"
    );
    assert!(e.contains("truncated"), "{e}");

    let e = open_err(&dir.path().join("missing.mmdb"));
    assert!(
        e.contains("missing.mmdb: cannot read the GeoIP database: "),
        "{e}"
    );

    let e = open_err(dir.path());
    assert!(e.contains("cannot read the GeoIP database"), "{e}");
}

#[test]
fn every_truncation_and_byte_flip_is_handled_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(TEST_DB).unwrap();
    let path = dir.path().join("mutant.mmdb");
    let probes = [
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "2001:db8:3::1",
        "8.8.8.8",
    ];
    // Every proper prefix of the file is rejected.
    for len in 0..real.len() {
        std::fs::write(&path, &real[..len]).unwrap();
        assert!(
            Db::open(&path).is_err(),
            "truncated to {len} bytes was accepted"
        );
    }
    // Every single-byte corruption either is rejected at open or still answers lookups
    // (some bytes, e.g. inside a name string, change nothing structural).
    let mut rejected = 0;
    for i in 0..real.len() {
        let mut bytes = real.clone();
        bytes[i] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        match Db::open(&path) {
            Err(_) => rejected += 1,
            Ok(db) => {
                for p in probes {
                    let _ = db.lookup(ip(p));
                }
            }
        }
    }
    assert!(
        rejected > real.len() / 4,
        "only {rejected} of {} flips rejected",
        real.len()
    );
}

// ---------------------------------------------------------------------------------------
// reload

/// The test db with 203.0.113.0/24 relabelled from DE to FR (same length: still valid).
fn relabelled_db() -> Vec<u8> {
    let mut bytes = std::fs::read(TEST_DB).unwrap();
    // utf8 string of length 2 (control byte 0x42) "DE"
    let needle = [0x42, b'D', b'E'];
    let at: Vec<usize> = bytes
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "expected one DE string in the data section");
    bytes[at[0] + 1] = b'F';
    bytes[at[0] + 2] = b'R';
    bytes
}

/// Writes `bytes` over `path` and moves its mtime, so the change is seen even on
/// file systems with coarse timestamps.
fn rewrite(path: &Path, bytes: &[u8], mtime_offset_s: u64) {
    std::fs::write(path, bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + mtime_offset_s))
        .unwrap();
}

#[test]
fn reload_if_changed_picks_up_a_new_file_and_keeps_the_old_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.mmdb");
    rewrite(&path, &std::fs::read(TEST_DB).unwrap(), 1);
    let geo = Geo::open(&path).unwrap();
    assert_eq!(geo.path(), path);
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "DE");
    assert!(!geo.reload_if_changed().unwrap());

    // same length, new content and mtime
    rewrite(&path, &relabelled_db(), 2);
    assert!(geo.reload_if_changed().unwrap());
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "FR");
    assert_eq!(geo.lookup(ip("192.0.2.1")).unwrap().as_str(), "GB");
    assert!(!geo.reload_if_changed().unwrap());

    // a bad new file: error once, old db kept, not retried until it changes again
    rewrite(&path, b"not a database", 3);
    let e = geo.reload_if_changed().unwrap_err().to_string();
    assert!(e.contains("geo.mmdb: not a usable MaxMind DB"), "{e}");
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "FR");
    assert!(!geo.reload_if_changed().unwrap());
    // a forced reload does retry (and fails again)
    assert!(geo.reload().is_err());
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "FR");

    // a truncated copy of the real db
    let real = std::fs::read(TEST_DB).unwrap();
    rewrite(&path, &real[..real.len() - 100], 4);
    assert!(geo.reload_if_changed().is_err());
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "FR");

    // the file disappears: reported once, old db kept
    std::fs::remove_file(&path).unwrap();
    let e = geo.reload_if_changed().unwrap_err().to_string();
    assert!(
        e.contains("geo.mmdb: cannot read the GeoIP database"),
        "{e}"
    );
    assert!(!geo.reload_if_changed().unwrap());
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "FR");

    // and comes back (atomic rename, as a downloader would do)
    let staged = dir.path().join("geo.mmdb.new");
    rewrite(&staged, &real, 5);
    std::fs::rename(&staged, &path).unwrap();
    assert!(geo.reload_if_changed().unwrap());
    assert_eq!(geo.lookup(ip("203.0.113.1")).unwrap().as_str(), "DE");
    assert_eq!(geo.db().database_type(), "GeoLite2-Country");
    assert!(format!("{geo:?}").contains("GeoLite2-Country"));

    // forced reload of an unchanged good file
    geo.reload().unwrap();
    assert_eq!(geo.lookup(ip("198.51.100.1")).unwrap().as_str(), "US");
}

#[test]
fn geo_open_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Geo::open(dir.path().join("nope.mmdb"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nope.mmdb: cannot read the GeoIP database"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// client_ip

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| IpNet::parse(n).unwrap()).collect()
}

#[test]
fn client_ip_table() {
    let trusted = nets(&["10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "127.0.0.1/32"]);
    #[rustfmt::skip]
    let table: &[(&str, Option<&str>, &str, &str)] = &[
        // peer, X-Forwarded-For, expected, why
        ("203.0.113.5", None, "203.0.113.5", "untrusted peer, no header"),
        ("203.0.113.5", Some("192.0.2.1"), "203.0.113.5", "untrusted peer: header ignored (spoofable)"),
        ("203.0.113.5", Some("192.0.2.1, 10.0.0.1"), "203.0.113.5", "untrusted peer, chain ignored"),
        ("10.0.0.2", None, "10.0.0.2", "trusted peer, no header"),
        ("10.0.0.2", Some(""), "10.0.0.2", "trusted peer, empty header"),
        ("10.0.0.2", Some("192.0.2.1"), "192.0.2.1", "trusted peer, one entry"),
        ("10.0.0.2", Some(" 192.0.2.1 "), "192.0.2.1", "whitespace"),
        ("10.0.0.2", Some("192.0.2.1, 10.0.0.1"), "192.0.2.1", "skip trusted hops from the right"),
        ("10.0.0.2", Some("192.0.2.1,10.0.0.1,192.168.1.1"), "192.0.2.1", "several trusted hops"),
        ("10.0.0.2", Some("6.6.6.6, 192.0.2.1, 10.0.0.1"), "192.0.2.1", "client-supplied spoof left of the real client"),
        ("10.0.0.2", Some("10.0.0.9, 10.0.0.1"), "10.0.0.9", "all trusted: left-most"),
        ("10.0.0.2", Some("garbage, 192.0.2.1"), "192.0.2.1", "malformed left of the client: not reached"),
        ("10.0.0.2", Some("192.0.2.1, garbage"), "10.0.0.2", "malformed right-most: stop at peer"),
        ("10.0.0.2", Some("192.0.2.1, unknown, 10.0.0.1"), "10.0.0.1", "malformed: last good (trusted) one"),
        ("10.0.0.2", Some("192.0.2.1,,10.0.0.1"), "192.0.2.1", "empty element skipped"),
        ("10.0.0.2", Some("192.0.2.1, 10.0.0.1,"), "192.0.2.1", "trailing comma"),
        ("10.0.0.2", Some("192.0.2.1:5678"), "192.0.2.1", "v4 with port"),
        ("10.0.0.2", Some("999.1.1.1"), "10.0.0.2", "out-of-range v4 is malformed"),
        ("10.0.0.2", Some("192.0.2.1/24"), "10.0.0.2", "CIDR is malformed"),
        ("10.0.0.2", Some("fe80::1%eth0"), "10.0.0.2", "zone id is malformed"),
        // IPv6
        ("fd00::1", Some("2001:db8:1::7"), "2001:db8:1::7", "v6 peer and client"),
        ("fd00::1", Some("[2001:db8:1::7]"), "2001:db8:1::7", "bracketed v6"),
        ("fd00::1", Some("[2001:db8:1::7]:443"), "2001:db8:1::7", "bracketed v6 with port"),
        ("fd00::1", Some("2001:db8:1::7, fd12::3"), "2001:db8:1::7", "trusted v6 hop skipped"),
        ("10.0.0.2", Some("2001:db8:2::1, 10.1.1.1"), "2001:db8:2::1", "mixed families"),
        ("2001:db8:9::1", Some("192.0.2.1"), "2001:db8:9::1", "untrusted v6 peer"),
        // IPv4-mapped IPv6
        ("::ffff:10.0.0.2", Some("192.0.2.1"), "192.0.2.1", "mapped peer matches a v4 trusted net"),
        ("::ffff:203.0.113.5", Some("192.0.2.1"), "203.0.113.5", "mapped untrusted peer: returned as v4"),
        ("10.0.0.2", Some("::ffff:192.0.2.1"), "192.0.2.1", "mapped entry returned as v4"),
        ("10.0.0.2", Some("192.0.2.1, ::ffff:10.0.0.1"), "192.0.2.1", "mapped trusted hop skipped"),
        ("127.0.0.1", Some("198.51.100.7"), "198.51.100.7", "loopback /32 trusted"),
        ("127.0.0.2", Some("198.51.100.7"), "127.0.0.2", "other loopback not trusted"),
    ];
    for (peer, xff, want, why) in table {
        assert_eq!(
            client_ip(ip(peer), *xff, &trusted),
            ip(want),
            "{why}: peer {peer} xff {xff:?}"
        );
    }
    // nothing trusted: always the peer
    assert_eq!(
        client_ip(ip("10.0.0.2"), Some("192.0.2.1"), &[]),
        ip("10.0.0.2")
    );
    assert!(is_trusted(ip("::ffff:10.1.2.3"), &trusted));
    assert!(!is_trusted(ip("11.0.0.1"), &trusted));
}

#[test]
fn client_ip_then_lookup() {
    let db = Db::open(Path::new(TEST_DB)).unwrap();
    let trusted = nets(&["10.0.0.0/8"]);
    let who = client_ip(ip("10.0.0.1"), Some("2001:db8:1::5"), &trusted);
    assert_eq!(db.lookup(who).unwrap().as_str(), "GB");
    let who = client_ip(ip("198.51.100.9"), Some("192.0.2.1"), &trusted);
    assert_eq!(db.lookup(who).unwrap().as_str(), "US");
}

// ---------------------------------------------------------------------------------------
// rules

fn list(codes: &[&str]) -> Option<Vec<String>> {
    Some(codes.iter().map(|c| c.to_string()).collect())
}

fn rule(
    prefix: &str,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    unknown: Action,
) -> Rule {
    Rule {
        prefix: prefix.into(),
        allow,
        deny,
        unknown,
    }
}

fn policy() -> Policy {
    Policy::new(
        vec![
            rule("/v/", None, list(&["KP", "ir"]), Action::Allow),
            rule("/v/uk-only/", list(&["gb"]), None, Action::Deny),
            rule("/v/eu/", list(&["DE", "FR", "NL"]), None, Action::Allow),
            rule("/v/uk-only/free/", None, None, Action::Allow),
            rule("/live/index.m3u8", list(&["US"]), None, Action::Deny),
        ],
        None,
    )
    .unwrap()
}

/// path, country, token cc, expected (reason, country) when blocked
type RuleCase<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a [String]>,
    Result<(), (&'static str, Option<&'a str>)>,
);

#[test]
fn rules_table() {
    let p = policy();
    assert_eq!(p.status(), 451);
    let prefixes: Vec<&str> = p.rules().iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        [
            "/v/uk-only/free/",
            "/live/index.m3u8",
            "/v/uk-only/",
            "/v/eu/",
            "/v/"
        ]
    );
    let gb_cc = vec!["GB".to_string()];
    let empty_cc: Vec<String> = vec![];
    #[rustfmt::skip]
    let table: &[RuleCase<'_>] = &[
        // deny list
        ("/v/title/a.ts", Some("US"), None, Ok(())),
        ("/v/title/a.ts", Some("KP"), None, Err(("country_denied", Some("KP")))),
        ("/v/title/a.ts", Some("ir"), None, Err(("country_denied", Some("IR")))),
        ("/v/title/a.ts", None, None, Ok(())),
        // allow list + unknown deny
        ("/v/uk-only/master.m3u8", Some("GB"), None, Ok(())),
        ("/v/uk-only/master.m3u8", Some("gb"), None, Ok(())),
        ("/v/uk-only/master.m3u8", Some("US"), None, Err(("country_not_allowed", Some("US")))),
        ("/v/uk-only/master.m3u8", None, None, Err(("country_unknown", None))),
        ("/v/uk-only/master.m3u8", Some("G1"), None, Err(("country_unknown", None))),
        ("/v/uk-only", Some("US"), None, Err(("country_not_allowed", Some("US")))),
        // segment boundaries
        ("/v/uk-only-extra/a.ts", Some("US"), None, Ok(())),
        ("/v/uk-only-extra/a.ts", Some("KP"), None, Err(("country_denied", Some("KP")))),
        ("/v/uk-onl", Some("US"), None, Ok(())),
        ("/v", Some("KP"), None, Err(("country_denied", Some("KP")))),
        ("/video/x", Some("KP"), None, Ok(())),
        ("/V/uk-only/a.ts", Some("US"), None, Ok(())),
        // a longer rule without lists exempts a sub-tree
        ("/v/uk-only/free/a.ts", Some("US"), None, Ok(())),
        ("/v/uk-only/free/a.ts", None, None, Ok(())),
        // allow list + unknown allow
        ("/v/eu/a.ts", Some("NL"), None, Ok(())),
        ("/v/eu/a.ts", Some("GB"), None, Err(("country_not_allowed", Some("GB")))),
        ("/v/eu/a.ts", Some("KP"), None, Err(("country_not_allowed", Some("KP")))),
        ("/v/eu/a.ts", None, None, Ok(())),
        // exact-path rule
        ("/live/index.m3u8", Some("US"), None, Ok(())),
        ("/live/index.m3u8", Some("GB"), None, Err(("country_not_allowed", Some("GB")))),
        ("/live/index.m3u8x", Some("GB"), None, Ok(())),
        ("/live/index.m3u8/", Some("GB"), None, Ok(())),
        ("/live/other.m3u8", None, None, Ok(())),
        // no rule
        ("/other", None, None, Ok(())),
        // token cc claim
        ("/other", Some("GB"), Some(&gb_cc), Ok(())),
        ("/other", Some("gb"), Some(&gb_cc), Ok(())),
        ("/other", Some("US"), Some(&gb_cc), Err(("token_country", Some("US")))),
        ("/other", None, Some(&gb_cc), Err(("token_country", None))),
        ("/other", Some("GB"), Some(&empty_cc), Err(("token_country", Some("GB")))),
        ("/v/eu/a.ts", None, Some(&gb_cc), Err(("token_country", None))),
        ("/v/uk-only/a.ts", Some("GB"), Some(&gb_cc), Ok(())),
        // the path's rule is reported first when both block
        ("/v/uk-only/a.ts", Some("US"), Some(&gb_cc), Err(("country_not_allowed", Some("US")))),
        ("/v/uk-only/a.ts", None, Some(&gb_cc), Err(("country_unknown", None))),
    ];
    for (path, country, token_cc, want) in table {
        let got = p.check(path, *country, *token_cc);
        let want = want.map_err(|(reason, country)| Blocked {
            reason,
            country: country.map(str::to_string),
        });
        assert_eq!(got, want, "path {path} country {country:?} cc {token_cc:?}");
    }
}

#[test]
fn rules_root_prefix_and_defaults() {
    let p = Policy::new(vec![rule("/", None, None, Action::Deny)], Some(403)).unwrap();
    assert_eq!(p.status(), 403);
    assert!(p.check("/anything", Some("US"), None).is_ok());
    assert_eq!(
        p.check("/anything", None, None).unwrap_err().reason,
        "country_unknown"
    );
    assert_eq!(p.rule_for("/x").unwrap().prefix, "/");

    let none = Policy::default();
    assert_eq!(none.status(), 451);
    assert!(none.check("/v/a", None, None).is_ok());
    assert_eq!(
        none.check("/v/a", None, Some(&["GB".to_string()]))
            .unwrap_err()
            .reason,
        "token_country"
    );

    assert_eq!("deny".parse::<Action>().unwrap(), Action::Deny);
    assert_eq!("Allow".parse::<Action>().unwrap(), Action::Allow);
    assert!("block".parse::<Action>().is_err());
    assert_eq!(Action::default(), Action::Allow);

    let b = Blocked {
        reason: "country_denied",
        country: Some("KP".into()),
    };
    assert_eq!(b.to_string(), "country_denied (KP)");
    let b = Blocked {
        reason: "country_unknown",
        country: None,
    };
    assert_eq!(b.to_string(), "country_unknown (country unknown)");
}

#[test]
fn rules_validation() {
    let bad =
        |rules: Vec<Rule>, status: Option<u16>| Policy::new(rules, status).unwrap_err().to_string();
    let e = bad(vec![rule("v/", None, None, Action::Allow)], None);
    assert!(e.contains("\"v/\": prefix must start with '/'"), "{e}");
    let e = bad(
        vec![rule("/v/", list(&["GB"]), list(&["US"]), Action::Allow)],
        None,
    );
    assert!(e.contains("either `allow` or `deny`"), "{e}");
    let e = bad(vec![rule("/v/", list(&[]), None, Action::Allow)], None);
    assert!(e.contains("`allow` is empty"), "{e}");
    let e = bad(vec![rule("/v/", list(&["GBR"]), None, Action::Allow)], None);
    assert!(
        e.contains("geo rule \"/v/\": allow: \"GBR\" is not a two-letter"),
        "{e}"
    );
    let e = bad(vec![rule("/v/", None, list(&["1"]), Action::Allow)], None);
    assert!(e.contains("deny: \"1\""), "{e}");
    let e = bad(
        vec![
            rule("/v/", None, None, Action::Allow),
            rule("/v/", None, None, Action::Deny),
        ],
        None,
    );
    assert!(e.contains("listed twice"), "{e}");
    let e = bad(vec![], Some(200));
    assert!(e.contains("geo status 200"), "{e}");
    assert!(Policy::new(vec![], Some(599)).is_ok());
    // codes are stored upper case
    let p = Policy::new(
        vec![rule("/v/", list(&["gb", "Us"]), None, Action::Allow)],
        None,
    )
    .unwrap();
    assert_eq!(p.rules()[0].allow, list(&["GB", "US"]));
}
