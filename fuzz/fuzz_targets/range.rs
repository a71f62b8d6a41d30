//! `Range` header values → the front's single-range reader and the pipeline's range decision
//! (Pingora's range filter behind the edge's own fix-ups).
//!
//! Input: two bytes of object length (little-endian; most objects the fuzzer sees are short,
//! which is where the edge cases are), then the header value.
//!
//! Invariants: no panic; every range either path answers lies within the object and is not
//! empty; the pipeline's 206 says the same range in `Content-Range` and `Content-Length`, its
//! 416 names the length; where the front answers a range, the pipeline answers the same one.
#![no_main]

use edge::fuzzing;
use libfuzzer_sys::fuzz_target;
use pingora_proxy::RangeType;

fuzz_target!(|data: &[u8]| {
    let Some((len, value)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_le_bytes(*len));
    let front = std::str::from_utf8(value)
        .ok()
        .and_then(|v| fuzzing::front_range(v, len));
    if let Some(r) = &front {
        assert!(r.start < r.end && r.end <= len, "front: {r:?} of {len}");
    }
    let Some((pipeline, resp)) = fuzzing::pipeline_range(value, len) else {
        assert!(
            front.is_none(),
            "the front reads a value that is no header value"
        );
        return;
    };
    let header = |name: &str| {
        resp.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    match &pipeline {
        RangeType::Single(r) => {
            assert!(r.start < r.end && r.end <= len, "pipeline: {r:?} of {len}");
            assert_eq!(resp.status.as_u16(), 206);
            assert_eq!(
                header("content-range"),
                Some(format!("bytes {}-{}/{len}", r.start, r.end - 1))
            );
            assert_eq!(header("content-length"), Some(r.len().to_string()));
        }
        RangeType::Multi(m) => {
            assert_eq!(resp.status.as_u16(), 206);
            let mut end = 0;
            for r in &m.ranges {
                assert!(
                    r.start < r.end && r.end <= len && r.start >= end,
                    "pipeline: {:?} of {len}",
                    m.ranges
                );
                end = r.end;
            }
        }
        RangeType::Invalid => {
            assert_eq!(resp.status.as_u16(), 416);
            assert_eq!(header("content-range"), Some(format!("bytes */{len}")));
        }
        RangeType::None => assert_eq!(resp.status.as_u16(), 200),
    }
    if let Some(r) = front {
        assert_eq!(
            pipeline,
            RangeType::Single(r.clone()),
            "the front answers {r:?} for {:?} on {len}",
            String::from_utf8_lossy(value)
        );
    }
});
