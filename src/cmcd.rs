//! Common Media Client Data (CTA-5004): what a player says about itself on each request, read
//! for the edge's quality-of-experience metrics and access log. Pure.
//!
//! A player sends CMCD in the `CMCD` query parameter (percent-encoded) or in up to four header
//! fields (`CMCD-Request`, `CMCD-Object`, `CMCD-Status`, `CMCD-Session`). Every form carries
//! a Structured Field dictionary (RFC 8941; CTA-5004 §3.2), parsed here with `sfv`: `br=800`,
//! `ot=v`, `sid="…"`, `bs` (a bare key is `true`). Each source is parsed on its own; a source
//! that is not a valid dictionary is ignored and marks the request [`Cmcd::malformed`], the
//! others still count. Keys this edge does not read and values of the wrong type are skipped
//! (CTA-5004 §3.1: receivers ignore what they do not understand).
//!
//! CMCD never reaches the cache key ([`crate::cache::key`]); the gate parses it once for both
//! request paths ([`crate::proxy::gate`]).

use serde::Serialize;

/// The query parameter that carries CMCD.
pub const PARAM: &str = "CMCD";

/// The header fields that carry CMCD (lower-case).
pub const HEADERS: [&str; 4] = ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"];

/// Longest CMCD source read; a longer one is malformed (CTA-5004 payloads are a few hundred
/// bytes; the head limits bound it anyway).
const MAX_SOURCE: usize = 4096;

/// Longest string value kept (`sid`, `cid`); longer ones are cut at a char boundary.
const MAX_STRING: usize = 64;

/// The object type (`ot`, CTA-5004 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ObjectType {
    #[serde(rename = "m")]
    Manifest,
    #[serde(rename = "a")]
    Audio,
    #[serde(rename = "v")]
    Video,
    #[serde(rename = "av")]
    Muxed,
    #[serde(rename = "i")]
    Init,
    #[serde(rename = "c")]
    Caption,
    #[serde(rename = "tt")]
    Timed,
    #[serde(rename = "k")]
    Key,
    #[serde(rename = "o")]
    Other,
}

impl ObjectType {
    /// Every type, for metric labels exported before any request.
    pub const ALL: [ObjectType; 9] = [
        ObjectType::Manifest,
        ObjectType::Audio,
        ObjectType::Video,
        ObjectType::Muxed,
        ObjectType::Init,
        ObjectType::Caption,
        ObjectType::Timed,
        ObjectType::Key,
        ObjectType::Other,
    ];

    /// The CMCD token, also the metric label.
    pub fn code(self) -> &'static str {
        match self {
            ObjectType::Manifest => "m",
            ObjectType::Audio => "a",
            ObjectType::Video => "v",
            ObjectType::Muxed => "av",
            ObjectType::Init => "i",
            ObjectType::Caption => "c",
            ObjectType::Timed => "tt",
            ObjectType::Key => "k",
            ObjectType::Other => "o",
        }
    }

    fn of(token: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.code() == token)
    }
}

/// The CMCD keys the edge reads from one request. Units as CTA-5004 defines them: bitrates in
/// kbit/s, durations in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cmcd {
    /// Encoded bitrate of the requested object (`br`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub br: Option<u64>,
    /// Buffer length (`bl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bl: Option<u64>,
    /// The buffer ran empty since the last request (`bs`).
    #[serde(skip_serializing_if = "is_false")]
    pub bs: bool,
    /// Content id (`cid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Object duration (`d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d: Option<u64>,
    /// Deadline: buffer left when the object is needed (`dl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dl: Option<u64>,
    /// Measured throughput (`mtp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtp: Option<u64>,
    /// Object type (`ot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ot: Option<ObjectType>,
    /// Playback rate (`pr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr: Option<f64>,
    /// Requested maximum throughput (`rtp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtp: Option<u64>,
    /// Streaming format (`sf`): `d` DASH, `h` HLS, `s` Smooth, `o` other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sf: Option<String>,
    /// Session id (`sid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Stream type (`st`): `v` VOD, `l` live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub st: Option<String>,
    /// Startup: the object is needed urgently to start (or restart) playback (`su`).
    #[serde(skip_serializing_if = "is_false")]
    pub su: bool,
    /// Top bitrate the player may choose (`tb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tb: Option<u64>,
    /// A source was not a valid dictionary (or too long), and was ignored.
    #[serde(skip_serializing_if = "is_false")]
    pub malformed: bool,
}

/// A request's CMCD, with the `[cmcd]` content prefix its metrics are labelled by.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub prefix: String,
    pub data: Cmcd,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The CMCD of a request: from the `CMCD` parameters of its query (`query` as sent, before
/// token parameters are taken out) and the values of its `CMCD-*` fields. `None` when the
/// request carries none.
pub fn of<'a>(query: Option<&str>, fields: impl IntoIterator<Item = &'a [u8]>) -> Option<Cmcd> {
    let mut cmcd: Option<Cmcd> = None;
    let params = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (name == PARAM).then_some(value)
        });
    for value in params {
        // `+` is not a space here: CMCD values are percent-encoded (CTA-5004 §2).
        let decoded = percent_encoding::percent_decode_str(value).collect::<Vec<u8>>();
        read(cmcd.get_or_insert_with(Cmcd::default), &decoded);
    }
    for value in fields {
        read(cmcd.get_or_insert_with(Cmcd::default), value);
    }
    cmcd
}

/// Add one source's keys to `cmcd`.
fn read(cmcd: &mut Cmcd, source: &[u8]) {
    let source = source.trim_ascii();
    if source.is_empty() {
        return;
    }
    if source.len() > MAX_SOURCE {
        cmcd.malformed = true;
        return;
    }
    let Ok(dict) = sfv::Parser::parse_dictionary(source) else {
        cmcd.malformed = true;
        return;
    };
    for (key, entry) in &dict {
        let sfv::ListEntry::Item(item) = entry else {
            continue;
        };
        let v = &item.bare_item;
        let int = || v.as_int().and_then(|n| u64::try_from(n).ok());
        let flag = || v.as_bool().unwrap_or(false);
        let text = || v.as_str().map(short);
        let token = || v.as_token().map(short);
        match key.as_str() {
            "br" => cmcd.br = int().or(cmcd.br),
            "bl" => cmcd.bl = int().or(cmcd.bl),
            "bs" => cmcd.bs |= flag(),
            "cid" => cmcd.cid = text().or(cmcd.cid.take()),
            "d" => cmcd.d = int().or(cmcd.d),
            "dl" => cmcd.dl = int().or(cmcd.dl),
            "mtp" => cmcd.mtp = int().or(cmcd.mtp),
            "ot" => cmcd.ot = v.as_token().and_then(ObjectType::of).or(cmcd.ot),
            "pr" => {
                let pr = v
                    .as_decimal()
                    .and_then(|d| d.to_string().parse::<f64>().ok())
                    .or_else(|| v.as_int().map(|n| n as f64));
                cmcd.pr = pr.or(cmcd.pr);
            }
            "rtp" => cmcd.rtp = int().or(cmcd.rtp),
            "sf" => cmcd.sf = token().or(cmcd.sf.take()),
            "sid" => cmcd.sid = text().or(cmcd.sid.take()),
            "st" => cmcd.st = token().or(cmcd.st.take()),
            "su" => cmcd.su |= flag(),
            "tb" => cmcd.tb = int().or(cmcd.tb),
            _ => {}
        }
    }
}

fn short(s: &str) -> String {
    let mut end = s.len().min(MAX_STRING);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> std::iter::Empty<&'static [u8]> {
        std::iter::empty()
    }

    #[test]
    fn hls_js_query() {
        // What hls.js 1.x sends for a video segment (its query, percent-encoded).
        let q = "token=abc&CMCD=bl%3D2000%2Cbr%3D800%2Ccid%3D%22demo%22%2Cd%3D4000%2Cmtp%3D12300%2Cot%3Dv%2Csf%3Dh%2Csid%3D%22s-1%22%2Cst%3Dv%2Csu%2Ctb%3D1600";
        let c = of(Some(q), none()).unwrap();
        assert_eq!(
            c,
            Cmcd {
                br: Some(800),
                bl: Some(2000),
                cid: Some("demo".into()),
                d: Some(4000),
                mtp: Some(12300),
                ot: Some(ObjectType::Video),
                sf: Some("h".into()),
                sid: Some("s-1".into()),
                st: Some("v".into()),
                su: true,
                tb: Some(1600),
                ..Cmcd::default()
            }
        );
    }

    #[test]
    fn headers_add_up() {
        let fields: [&[u8]; 4] = [
            b"bl=21300,dl=18500,mtp=48100",
            b"br=3200,d=4004,ot=v,tb=6000",
            b"bs,rtp=15000",
            b"cid=\"faec5fc2\",pr=1.25,sf=d,sid=\"6e2f\",st=v",
        ];
        let c = of(None, fields).unwrap();
        assert_eq!(c.br, Some(3200));
        assert_eq!(c.mtp, Some(48100));
        assert!(c.bs && !c.su);
        assert_eq!(c.pr, Some(1.25));
        assert_eq!(c.sf.as_deref(), Some("d"));
        assert_eq!(c.rtp, Some(15000));
        assert!(!c.malformed);
    }

    #[test]
    fn nothing_and_garbage() {
        assert_eq!(of(None, none()), None);
        assert_eq!(
            of(Some("a=1&cmcd=br%3D1"), none()),
            None,
            "the name is case-sensitive"
        );
        // Present but empty: CMCD, with no keys.
        assert_eq!(of(Some("CMCD="), none()), Some(Cmcd::default()));
        for bad in [
            "br%3D",
            "%22",
            "br%3D1%2C%2C",
            "BR%3D1",
            "%FF",
            "sid%3D%22%C3%A9%22",
        ] {
            let c = of(Some(&format!("CMCD={bad}")), none()).unwrap();
            assert!(c.malformed, "{bad}");
            assert_eq!(c.br, None, "{bad}");
        }
        // One bad source does not spoil another.
        let c = of(Some("CMCD=br%3D5"), [&b"ot=?"[..]]).unwrap();
        assert!(c.malformed);
        assert_eq!(c.br, Some(5));
        let long = format!("sid=\"{}\"", "x".repeat(MAX_SOURCE));
        assert!(of(None, [long.as_bytes()]).unwrap().malformed);
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_skipped() {
        let c = of(
            None,
            [&b"br=\"800\",ot=zz,bs=?0,su=?1,mtp=-5,com.example-x=1"[..]],
        )
        .unwrap();
        assert_eq!(c.br, None);
        assert_eq!(c.ot, None);
        assert!(!c.bs && c.su);
        assert_eq!(c.mtp, None);
        assert!(!c.malformed);
    }

    #[test]
    fn strings_are_bounded() {
        let sid = format!("sid=\"{}\"", "a".repeat(200));
        let c = of(None, [sid.as_bytes()]).unwrap();
        assert_eq!(c.sid.map(|s| s.len()), Some(MAX_STRING));
        // Cut at a char boundary (sf strings are ASCII, but the cut must never panic).
        assert_eq!(
            short(&format!("a{}", "é".repeat(100))).len(),
            MAX_STRING - 1
        );
    }

    #[test]
    fn log_form_has_only_what_was_sent() {
        let c = of(None, [&b"br=800,ot=m,su"[..]]).unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"br":800,"ot":"m","su":true}"#
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]

        /// Any query and field bytes: no panic, and string values stay bounded.
        #[test]
        fn never_panics(q in ".{0,80}", f in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            if let Some(c) = of(Some(&q), [f.as_slice()]) {
                proptest::prop_assert!(c.sid.as_ref().is_none_or(|s| s.len() <= MAX_STRING));
            }
        }
    }
}
