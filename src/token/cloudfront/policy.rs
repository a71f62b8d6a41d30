//! A CloudFront policy statement: the canned policy's exact text, and the custom policy's
//! JSON parsed into a [`Policy`] (one statement: `Resource`, `DateLessThan`,
//! `DateGreaterThan`, `IpAddress`), and the `Resource` wildcard match.

use serde_json::Value;

use crate::net::IpNet;

/// The text a canned policy signs: CloudFront's own JSON for "this URL until `expires`",
/// without any whitespace (the signer hashes exactly these bytes).
pub fn canned(resource: &str, expires: u64) -> String {
    // A URL holds no `"` or `\` that JSON would escape: `resource` comes from a request
    // target and a Host the gate has validated.
    format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

/// A custom policy's one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `Resource`: a URL with `*` and `?` wildcards; `None` when omitted (every URL).
    pub resource: Option<String>,
    /// `Condition.DateLessThan.AWS:EpochTime` (required).
    pub date_less_than: u64,
    /// `Condition.DateGreaterThan.AWS:EpochTime`.
    pub date_greater_than: Option<u64>,
    /// `Condition.IpAddress.AWS:SourceIp`, a CIDR range or one address.
    pub source_ip: Option<IpNet>,
}

/// Parses a custom policy. `None` when it is not JSON, has other than one statement, lacks
/// `DateLessThan`, or a field has the wrong type (an epoch that is not a non-negative
/// integer, an IP range that does not parse).
pub fn parse(json: &[u8]) -> Option<Policy> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let statements = v.get("Statement")?.as_array()?;
    let [statement] = statements.as_slice() else {
        return None;
    };
    let resource = match statement.get("Resource") {
        None => None,
        Some(r) => Some(r.as_str()?.to_string()),
    };
    let condition = statement.get("Condition")?.as_object()?;
    let epoch = |name: &str| -> Option<Option<u64>> {
        match condition.get(name) {
            None => Some(None),
            Some(c) => c.get("AWS:EpochTime")?.as_u64().map(Some),
        }
    };
    let date_less_than = epoch("DateLessThan")??;
    let date_greater_than = epoch("DateGreaterThan")?;
    let source_ip = match condition.get("IpAddress") {
        None => None,
        Some(c) => Some(IpNet::parse(c.get("AWS:SourceIp")?.as_str()?)?),
    };
    Some(Policy {
        resource,
        date_less_than,
        date_greater_than,
        source_ip,
    })
}

/// Whether a `Resource` pattern matches `url`: `*` matches any run of characters (also none,
/// also `/`), `?` exactly one; everything else is literal and case-sensitive, as CloudFront
/// compares.
pub fn resource_matches(pattern: &str, url: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), url.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen and the text position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|r| r.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_text_is_cloudfronts() {
        // The example from the CloudFront developer guide ("Create a policy statement for a
        // signed URL that uses a canned policy").
        assert_eq!(
            canned(
                "https://d111111abcdef8.cloudfront.net/horizon.jpg?size=large&license=yes",
                1357034400
            ),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/horizon.jpg?size=large&license=yes","Condition":{"DateLessThan":{"AWS:EpochTime":1357034400}}}]}"#
        );
    }

    #[test]
    fn custom_policies() {
        let p = parse(
            br#"{
              "Statement": [{
                "Resource": "http*://d111111abcdef8.cloudfront.net/training/*",
                "Condition": {
                  "DateLessThan": {"AWS:EpochTime": 1767290400},
                  "DateGreaterThan": {"AWS:EpochTime": 1767200400},
                  "IpAddress": {"AWS:SourceIp": "192.0.2.0/24"}
                }
              }]
            }"#,
        )
        .unwrap();
        assert_eq!(
            p.resource.as_deref(),
            Some("http*://d111111abcdef8.cloudfront.net/training/*")
        );
        assert_eq!(p.date_less_than, 1767290400);
        assert_eq!(p.date_greater_than, Some(1767200400));
        assert_eq!(p.source_ip, IpNet::parse("192.0.2.0/24"));

        let minimal =
            parse(br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5}}}]}"#)
                .unwrap();
        assert_eq!(minimal.resource, None);
        assert_eq!(minimal.date_less_than, 5);
        assert_eq!(minimal.date_greater_than, None);
        assert_eq!(minimal.source_ip, None);
        let v6 = parse(br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5},"IpAddress":{"AWS:SourceIp":"2001:db8::/32"}}}]}"#).unwrap();
        assert!(v6
            .source_ip
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn malformed_policies() {
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            br#"{"Statement":[]}"#,
            br#"{"Statement":{}}"#,
            br#"{"Statement":[{"Resource":"x"}]}"#,
            br#"{"Statement":[{"Condition":{}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":"5"}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":-5}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5.5}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5},"DateGreaterThan":{}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5},"IpAddress":{"AWS:SourceIp":"nope"}}}]}"#,
            br#"{"Statement":[{"Resource":7,"Condition":{"DateLessThan":{"AWS:EpochTime":5}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5}}},{"Condition":{"DateLessThan":{"AWS:EpochTime":5}}}]}"#,
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn wildcards() {
        for (pattern, url, want) in [
            ("https://h/v/a.m3u8", "https://h/v/a.m3u8", true),
            ("https://h/v/a.m3u8", "https://h/v/a.m3u8?x=1", false),
            ("https://h/v/*", "https://h/v/a/b/c.ts?x=1", true),
            ("https://h/v/*", "https://h/v/", true),
            ("https://h/v/*", "https://h/w/a.ts", false),
            ("http*://h/v/*", "http://h/v/a.ts", true),
            ("http*://h/v/*", "https://h/v/a.ts", true),
            ("*", "https://anything/at/all", true),
            ("https://*/v/*.ts", "https://cdn.example/v/1080/s1.ts", true),
            (
                "https://*/v/*.ts",
                "https://cdn.example/v/1080/s1.m4s",
                false,
            ),
            ("https://h/v/seg?.ts", "https://h/v/seg1.ts", true),
            ("https://h/v/seg?.ts", "https://h/v/seg12.ts", false),
            ("https://h/v/seg?.ts", "https://h/v/seg.ts", false),
            ("https://H/v/a.ts", "https://h/v/a.ts", false),
            ("", "https://h/", false),
        ] {
            assert_eq!(resource_matches(pattern, url), want, "{pattern} vs {url}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]

        /// The parser never panics, and a pattern of the URL itself (and `*`) always matches.
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), url in "[ -~]{0,40}") {
            let _ = parse(&raw);
            proptest::prop_assert!(resource_matches("*", &url));
            if !url.contains(['*', '?']) {
                proptest::prop_assert!(resource_matches(&url, &url));
            }
        }
    }
}
