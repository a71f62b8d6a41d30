//! Player CMCD (CTA-5004) → [`edge::cmcd::of`], as the gate reads it from a query and the
//! `CMCD-*` fields; and MPD bodies → the DASH TTL reading and the `mh` Representation filter.
//!
//! Input: a flags byte, then the bytes. flags & 1: the bytes are an MPD (else CMCD: the first
//! half as a query, the second as one header field value).
//!
//! Invariants: no panic; CMCD strings stay bounded; the filtered MPD is never longer than the
//! body, and filtering it again at the same height changes nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    if flags & 1 == 1 {
        let h = u32::from(flags >> 1) * 8;
        let _ = edge::dash::refresh(body);
        let once = edge::dash::filter_representations(body, h);
        assert!(once.len() <= body.len());
        let twice = edge::dash::filter_representations(&once, h);
        assert!(twice.len() <= once.len());
        return;
    }
    let (q, field) = body.split_at(body.len() / 2);
    let query = String::from_utf8_lossy(q);
    if let Some(c) = edge::cmcd::of(Some(query.as_ref()), [field]) {
        assert!(c.sid.as_ref().is_none_or(|s| s.len() <= 64));
        assert!(c.cid.as_ref().is_none_or(|s| s.len() <= 64));
    }
});
