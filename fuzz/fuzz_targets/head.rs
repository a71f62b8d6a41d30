//! The bytes a client sends as a request head → what the HTTP/1 front makes of them.
//!
//! Input: one selector byte (odd: the peer is 127.0.0.1, a trusted proxy of the shipped
//! config whose `X-Forwarded-For` counts; even: 192.0.2.7), then the head. Every `$T` in the
//! head becomes a token signed for `/` with the shipped demo key, so the fuzzer reaches past
//! the token gate.
//!
//! Invariants: no panic; a head the front would answer from the memory tier is one Pingora's
//! own HTTP/1 parser (the pipeline's) also accepts, and the gate admits it there as the same
//! content (host, path, query, cache key, token): the front never answers a request the
//! pipeline would refuse or key differently.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use edge::fuzzing;
use edge::proxy::gate::Admission;
use edge::state::EdgeState;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

struct Setup {
    state: &'static EdgeState,
    token: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let state = fuzzing::state(&root);
        let live = state.live();
        let tokens = live
            .config
            .tokens
            .as_ref()
            .expect("the shipped config has [tokens]");
        let token = edge::token::sign(&tokens.keyring, &edge::token::Claims::new("/", NOW + 600))
            .expect("sign");
        Setup { state, token }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, head)) = data.split_first() else {
        return;
    };
    let setup = setup();
    let peer: IpAddr = if selector & 1 == 1 {
        [127, 0, 0, 1].into()
    } else {
        [192, 0, 2, 7].into()
    };
    let head = replace(head, b"$T", setup.token.as_bytes());
    let Some(front) = fuzzing::front_content(setup.state, &head, peer, NOW) else {
        return;
    };
    let whole = &head[..front.head_len];
    let content = &front.content;
    assert!(content.path.starts_with('/'), "{content:?}");
    let pipeline = match fuzzing::pipeline_admission(setup.state, whole, peer, NOW) {
        Ok(Some((_, Admission::Content(c)))) => c,
        Ok(Some((req, _))) => panic!("the front answers what the pipeline does not admit as content: {req:?}\nfront: {content:?}"),
        Ok(None) => panic!("the front answers a head the pipeline never reads: {:?}", String::from_utf8_lossy(whole)),
        Err(e) => panic!("the front answers a head Pingora refuses ({e}): {:?}", String::from_utf8_lossy(whole)),
    };
    let view = |c: &edge::proxy::gate::ContentRequest| {
        (
            c.host.clone(),
            c.path.clone(),
            c.query.clone(),
            c.key_query.clone(),
            c.key.primary_key().to_vec(),
            c.rewritten,
            c.accept_encoding,
            c.token.as_ref().map(|t| (t.token.clone(), t.placement)),
        )
    };
    assert_eq!(
        view(content),
        view(&pipeline),
        "front and pipeline read {:?} differently",
        String::from_utf8_lossy(whole)
    );
});

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}
