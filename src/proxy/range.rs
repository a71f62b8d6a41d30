//! The pipeline's answer to a `Range` request (RFC 9110 §14): Pingora's range filter, given
//! only range specs that select at least one byte.
//!
//! Pingora reads a suffix range of length zero (`bytes=-0`) as the empty range at the end of
//! the object, and any suffix range of an empty object (`bytes=-5` on `Content-Length: 0`) as
//! the empty range `0..0` (a start too large for it counts as absent: `99999999999999999999-0`
//! is `-0`). It then answers a 206 whose `Content-Range` has its last byte
//! before its first (`bytes 10-9/10`), or, on the empty object, overflows computing it
//! (a panic in a debug build, `bytes 0-18446744073709551615/0` in a release build). Neither
//! spec is satisfiable (RFC 9110 §14.1.1: a suffix range needs a non-zero length, and an empty
//! representation has no byte to select), so they are taken out of the range set before
//! Pingora reads it: the other specs are answered as usual, and a set left empty gets
//! Pingora's own 416 (`Content-Range: bytes */len`), as nginx answers both.
//!
//! The front answers only the plain single ranges it reads the same way
//! ([`super::front`]'s `single_range`); everything else comes here.

use http::header::{CONTENT_LENGTH, RANGE};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::RangeType;

/// Multipart range sets with this many specs or more are ignored (answered whole).
const MAX_RANGES: usize = 200;

/// How the pipeline answers `req`'s `Range` on the whole response `resp`: Pingora's range
/// filter, which also sets the 206's or 416's header fields in `resp`.
pub fn range_type(req: &RequestHeader, resp: &mut ResponseHeader) -> RangeType {
    let len = (resp.status == http::StatusCode::OK)
        .then(|| resp.headers.get(CONTENT_LENGTH))
        .flatten()
        .and_then(|v| {
            std::str::from_utf8(v.as_bytes())
                .ok()?
                .parse::<usize>()
                .ok()
        });
    let value = req
        .headers
        .get(RANGE)
        .and_then(|v| satisfiable_specs(v.as_bytes(), len?));
    if let Some(value) = value {
        let mut probe = req.clone();
        if probe.insert_header(RANGE, value).is_ok() {
            return pingora_proxy::range_header_filter(&probe, resp, Some(MAX_RANGES));
        }
    }
    pingora_proxy::range_header_filter(req, resp, Some(MAX_RANGES))
}

/// The `Range` value without the specs that select nothing of an object of `len` bytes (see
/// the module doc), as Pingora's parser reads specs; `None` when there is none to take out.
fn satisfiable_specs(value: &[u8], len: usize) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, specs) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") || specs.split(',').count() >= MAX_RANGES {
        return None;
    }
    let selects_nothing = |spec: &str| suffix_length(spec).is_some_and(|n| n == 0 || len == 0);
    if !specs.split(',').any(selects_nothing) {
        return None;
    }
    let kept: Vec<&str> = specs.split(',').filter(|s| !selects_nothing(s)).collect();
    Some(format!("{unit}={}", kept.join(",")))
}

/// The length of a spec Pingora reads as a suffix range: `-500`, and also `<start>-500` with a
/// start it cannot read as a number (too large for it), which it takes as absent.
fn suffix_length(spec: &str) -> Option<usize> {
    let (start, digits) = spec.trim().split_once('-')?;
    if !start.chars().all(char::is_numeric) || start.parse::<usize>().is_ok() {
        return None;
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range decision and the `Content-Range` of a GET with `range` on a 200 of `len` bytes.
    fn answer(range: &str, len: usize) -> (RangeType, u16, Option<String>) {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header(RANGE, range).unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header(CONTENT_LENGTH, len.to_string()).unwrap();
        let t = range_type(&req, &mut resp);
        let content_range = resp
            .headers
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_string());
        (t, resp.status.as_u16(), content_range)
    }

    #[test]
    fn ranges_pingora_answers_itself() {
        assert_eq!(
            answer("bytes=0-9", 100),
            (RangeType::Single(0..10), 206, Some("bytes 0-9/100".into()))
        );
        assert_eq!(
            answer("bytes=-10", 100),
            (
                RangeType::Single(90..100),
                206,
                Some("bytes 90-99/100".into())
            )
        );
        assert_eq!(
            answer("bytes=100-", 100),
            (RangeType::Invalid, 416, Some("bytes */100".into()))
        );
        assert_eq!(answer("items=-0", 100).0, RangeType::None);
        assert_eq!(
            answer("bytes=0-", 0),
            (RangeType::Invalid, 416, Some("bytes */0".into()))
        );
    }

    #[test]
    fn empty_suffix_ranges_are_unsatisfiable() {
        for v in [
            "bytes=-0",
            "bytes=-00",
            "bytes= -0 ",
            "BYTES=-0",
            "bytes=-0,-0",
        ] {
            assert_eq!(
                answer(v, 100),
                (RangeType::Invalid, 416, Some("bytes */100".into())),
                "{v}"
            );
        }
        // The other specs of the set are answered (was a multipart answer with `bytes 100-99`).
        assert_eq!(
            answer("bytes=0-9,-0", 100),
            (RangeType::Single(0..10), 206, Some("bytes 0-9/100".into()))
        );
        // Found by the `range` fuzz target: Pingora reads a start too large for it as none,
        // so this was `bytes=-0`, an inverted 206 (`bytes 256-255/256`).
        let found = "bytes=5-1, 5-1, 22222222222-1, 2222222222222222222222222222-0, -";
        assert_eq!(
            answer(found, 256),
            (RangeType::Invalid, 416, Some("bytes */256".into()))
        );
        assert_eq!(
            answer("bytes=99999999999999999999999-5", 100),
            (
                RangeType::Single(95..100),
                206,
                Some("bytes 95-99/100".into())
            )
        );
    }

    /// Pingora overflows on `bytes=-5` of an empty object (a panic in this debug build).
    #[test]
    fn no_suffix_range_of_an_empty_object() {
        for v in ["bytes=-5", "bytes=-1,-2", "bytes=-1,0-"] {
            assert_eq!(
                answer(v, 0),
                (RangeType::Invalid, 416, Some("bytes */0".into())),
                "{v}"
            );
        }
        // Not a range request Pingora honours: the whole (empty) object.
        assert_eq!(answer("bytes=-5,x", 0).0, RangeType::None);
    }
}
