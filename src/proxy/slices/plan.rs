//! The arithmetic of a sliced answer (pure): which bytes a client wants, which slices hold
//! them, what a slice's `206` says about the object, and whether two slices are of the same
//! version of it.

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, LAST_MODIFIED};
use pingora_http::ResponseHeader;

/// What a client asked for, before the object's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The whole object (no `Range`, or one the edge may ignore: RFC 9110 §14.2 lets a
    /// server answer any range request whole).
    Whole,
    /// `bytes=first-` or `bytes=first-last` (last inclusive).
    From(u64, Option<u64>),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// The client's `Range` as one byte range. Multipart sets, other units and anything that
/// does not parse are answered whole, as is every range sent with `If-Range` (honouring it
/// would need the validator before the first slice is chosen).
pub fn wanted(range: Option<&str>, if_range: bool) -> Wanted {
    let Some(range) = range else {
        return Wanted::Whole;
    };
    if if_range {
        return Wanted::Whole;
    }
    let Some((unit, spec)) = range.trim().split_once('=') else {
        return Wanted::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        (true, _, Some(n)) => Wanted::Suffix(n),
        (false, Some(a), None) if last.trim().is_empty() => Wanted::From(a, None),
        (false, Some(a), Some(b)) if a <= b => Wanted::From(a, Some(b)),
        _ => Wanted::Whole,
    }
}

/// The slice to ask for first: the one holding the first wanted byte; for the whole object
/// or a suffix (whose start needs the length), the first slice, which tells the length.
pub fn first_slice(wanted: Wanted, size: u64) -> u64 {
    match wanted {
        Wanted::From(a, _) => a / size.max(1),
        Wanted::Whole | Wanted::Suffix(_) => 0,
    }
}

/// The answer to give once the object's length `total` is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `200` with the whole object.
    Whole,
    /// `206` with bytes `first..=last`.
    Part { first: u64, last: u64 },
    /// `416` with `Content-Range: bytes */total`.
    Unsatisfiable,
}

impl Answer {
    /// The inclusive byte span sent (`None`: no byte, an empty object or a 416).
    pub fn span(self, total: u64) -> Option<(u64, u64)> {
        match self {
            Answer::Whole if total > 0 => Some((0, total - 1)),
            Answer::Part { first, last } => Some((first, last)),
            Answer::Whole | Answer::Unsatisfiable => None,
        }
    }
}

/// RFC 9110 §14.1.2: a range starting past the end, or a zero-length suffix, is unsatisfiable;
/// a last position past the end is the end.
pub fn answer(wanted: Wanted, total: u64) -> Answer {
    match wanted {
        Wanted::Whole => Answer::Whole,
        Wanted::From(a, _) if a >= total => Answer::Unsatisfiable,
        Wanted::From(a, b) => Answer::Part {
            first: a,
            last: b.map_or(total - 1, |b| b.min(total - 1)),
        },
        Wanted::Suffix(n) if n == 0 || total == 0 => Answer::Unsatisfiable,
        Wanted::Suffix(n) => Answer::Part {
            first: total - n.min(total),
            last: total - 1,
        },
    }
}

/// The inclusive byte range of slice `index` of `size` bytes, as the origin is asked for it
/// (the last slice's end is past the object's: the origin answers what there is).
pub fn slice_range(index: u64, size: u64) -> (u64, u64) {
    let first = index.saturating_mul(size);
    (first, first.saturating_add(size - 1))
}

/// The version of an object a slice belongs to: its validators and length. Slices of two
/// versions are never put together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub total: u64,
}

/// A `206` that is slice `index` of `size` bytes: its `Content-Range` starts at the slice's
/// first byte and ends at the slice's last (or the object's, for the last slice). Returns
/// the object's version and the slice's length.
pub fn slice_of(resp: &ResponseHeader, index: u64, size: u64) -> Option<(Version, u64)> {
    if resp.status.as_u16() != 206 {
        return None;
    }
    let (first, last, total) = content_range(header(resp, CONTENT_RANGE)?)?;
    let (want_first, want_last) = slice_range(index, size);
    if first != want_first || last != want_last.min(total.checked_sub(1)?) {
        return None;
    }
    let len = last - first + 1;
    if let Some(cl) = header(resp, CONTENT_LENGTH) {
        if cl.trim().parse::<u64>().ok()? != len {
            return None;
        }
    }
    Some((
        Version {
            etag: header(resp, ETAG).map(str::to_string),
            last_modified: header(resp, LAST_MODIFIED).map(str::to_string),
            total,
        },
        len,
    ))
}

fn header(resp: &ResponseHeader, name: http::header::HeaderName) -> Option<&str> {
    resp.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `bytes first-last/total` (a complete length: a slice of an object of unknown length
/// cannot be placed).
fn content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let n = |s: &str| s.trim().parse::<u64>().ok();
    let (first, last, total) = (n(first)?, n(last)?, n(total)?);
    (first <= last && last < total).then_some((first, last, total))
}

/// The number of slices of `size` bytes an object of `total` bytes is cut into.
pub fn slice_count(total: u64, size: u64) -> u64 {
    total.div_ceil(size.max(1))
}

/// The part of a body chunk at object offset `at` (of `len` bytes) that lies in the
/// inclusive `span`, as a range of the chunk (`None`: none of it).
pub fn within(at: u64, len: usize, span: (u64, u64)) -> Option<std::ops::Range<usize>> {
    let end = at.checked_add(len as u64)?;
    let from = at.max(span.0);
    let to = end.min(span.1.checked_add(1)?);
    if from >= to {
        return None;
    }
    let a = usize::try_from(from - at).ok()?;
    let b = usize::try_from(to - at).ok()?;
    Some(a..b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ranges() {
        assert_eq!(wanted(None, false), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-99"), false), Wanted::From(0, Some(99)));
        assert_eq!(wanted(Some("bytes=100-"), false), Wanted::From(100, None));
        assert_eq!(wanted(Some("bytes=-500"), false), Wanted::Suffix(500));
        assert_eq!(wanted(Some("BYTES = 5-7"), false), Wanted::From(5, Some(7)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=9-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "bytes",
        ] {
            assert_eq!(wanted(Some(ignored), false), Wanted::Whole, "{ignored}");
        }
        assert_eq!(wanted(Some("bytes=0-99"), true), Wanted::Whole, "If-Range");
    }

    #[test]
    fn answers_once_the_length_is_known() {
        assert_eq!(answer(Wanted::Whole, 10), Answer::Whole);
        assert_eq!(
            answer(Wanted::From(2, Some(99)), 10),
            Answer::Part { first: 2, last: 9 }
        );
        assert_eq!(
            answer(Wanted::From(9, None), 10),
            Answer::Part { first: 9, last: 9 }
        );
        assert_eq!(answer(Wanted::From(10, None), 10), Answer::Unsatisfiable);
        assert_eq!(
            answer(Wanted::Suffix(3), 10),
            Answer::Part { first: 7, last: 9 }
        );
        assert_eq!(
            answer(Wanted::Suffix(30), 10),
            Answer::Part { first: 0, last: 9 }
        );
        assert_eq!(answer(Wanted::Suffix(0), 10), Answer::Unsatisfiable);
        assert_eq!(answer(Wanted::Suffix(3), 0), Answer::Unsatisfiable);
        assert_eq!(answer(Wanted::From(0, None), 0), Answer::Unsatisfiable);
        assert_eq!(Answer::Whole.span(0), None);
        assert_eq!(Answer::Whole.span(10), Some((0, 9)));
    }

    #[test]
    fn the_slices_a_range_touches() {
        let s = 4 << 20;
        assert_eq!(first_slice(Wanted::From(0, Some(1)), s), 0);
        assert_eq!(first_slice(Wanted::From(s, None), s), 1);
        assert_eq!(first_slice(Wanted::From(3 * s - 1, None), s), 2);
        assert_eq!(first_slice(Wanted::Suffix(5), s), 0);
        assert_eq!(slice_range(0, s), (0, s - 1));
        assert_eq!(slice_range(2, s), (2 * s, 3 * s - 1));
        assert_eq!(slice_count(0, s), 0);
        assert_eq!(slice_count(s, s), 1);
        assert_eq!(slice_count(s + 1, s), 2);
    }

    fn resp(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in fields {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn a_slice_is_the_206_for_its_own_bytes() {
        let r = resp(
            206,
            &[
                ("content-range", "bytes 100-199/250"),
                ("content-length", "100"),
                ("etag", "\"v1\""),
            ],
        );
        let (v, len) = slice_of(&r, 1, 100).unwrap();
        assert_eq!(len, 100);
        assert_eq!(v.total, 250);
        assert_eq!(v.etag.as_deref(), Some("\"v1\""));
        assert_eq!(v.last_modified, None);
        // The last slice ends with the object.
        let last = resp(206, &[("content-range", "bytes 200-249/250")]);
        assert_eq!(slice_of(&last, 2, 100).map(|(_, l)| l), Some(50));
        // Not this slice, not a slice, or not a length the edge can place.
        assert!(slice_of(&r, 0, 100).is_none());
        assert!(slice_of(&r, 1, 50).is_none());
        assert!(slice_of(&resp(200, &[("content-length", "250")]), 0, 100).is_none());
        let short = resp(206, &[("content-range", "bytes 100-149/250")]);
        assert!(slice_of(&short, 1, 100).is_none());
        let unknown = resp(206, &[("content-range", "bytes 100-199/*")]);
        assert!(slice_of(&unknown, 1, 100).is_none());
        let lying = resp(
            206,
            &[
                ("content-range", "bytes 100-199/250"),
                ("content-length", "99"),
            ],
        );
        assert!(slice_of(&lying, 1, 100).is_none());
    }

    #[test]
    fn versions_differ_by_any_validator_or_the_length() {
        let v = |etag: &str, lm: &str, total| Version {
            etag: Some(etag.into()),
            last_modified: Some(lm.into()),
            total,
        };
        assert_eq!(v("a", "x", 1), v("a", "x", 1));
        assert_ne!(v("a", "x", 1), v("b", "x", 1));
        assert_ne!(v("a", "x", 1), v("a", "y", 1));
        assert_ne!(v("a", "x", 1), v("a", "x", 2));
    }

    #[test]
    fn chunks_are_cut_to_the_span() {
        assert_eq!(within(0, 10, (0, 9)), Some(0..10));
        assert_eq!(within(0, 10, (3, 5)), Some(3..6));
        assert_eq!(within(10, 10, (3, 5)), None);
        assert_eq!(within(10, 10, (15, 100)), Some(5..10));
        assert_eq!(within(10, 10, (0, 10)), Some(0..1));
        assert_eq!(within(10, 0, (0, 100)), None);
    }
}
