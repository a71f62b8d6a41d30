//! Config parsing on arbitrary input: never a panic; every refusal names a reason (and, where
//! the text is valid TOML, the key it is about).

use std::path::Path;

use proptest::prelude::*;

use super::Config;

/// Lines that look like `edge.toml`: known sections and keys with odd values.
fn config_like() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[server]",
        "[cache]",
        "[cors]",
        "[purge]",
        "[tokens]",
        "[tokens.cloudfront]",
        "[geo]",
        "[[origins]]",
        "[[cache.keys]]",
        "[[cache.rules]]",
        "[[cache.slices]]",
        "[demo]",
        "[log]",
        "[cmcd]",
        "[[prefetch]]",
    ]);
    let key = prop::sample::select(vec![
        "http",
        "admin",
        "threads",
        "memory",
        "disk",
        "max_object",
        "default_ttl",
        "prefix",
        "query",
        "allow",
        "name",
        "nodes",
        "idle_timeout",
        "targeted_field",
        "forward_cmcd",
        "prefixes",
        "allow_origins",
        "required",
        "ttl",
        "max_ttl",
        "header_timeout",
        "send_timeout",
        "max_connections",
        "max_connections_per_ip",
        "max_request_line",
        "max_header_field",
        "max_head",
        "forward_headers",
        "upgrade_prefixes",
        "upgrade_socket",
        "fill_memory",
        "fill_stall",
        "size",
        "access",
        "format",
        "hit_sample",
        "buffer",
        "keys",
        "public_key_file",
        "segments",
        "concurrency",
        "max_bytes",
        "pause",
    ]);
    let value = prop::sample::select(vec![
        "\"1s\"",
        "\"0s\"",
        "\"-1s\"",
        "\"lots\"",
        "0",
        "-1",
        "99999999999",
        "true",
        "\"\"",
        "\"/v/\"",
        "\"v/\"",
        "[]",
        "[\"a\"]",
        "\"127.0.0.1:0\"",
        "\"none\"",
        "\"all\"",
        "\"1 GiB\"",
        "[{ addr = \"127.0.0.1:1\" }]",
        "1.5",
        "\"8 KiB\"",
        "\"100\"",
        "[\"X-Forwarded-Proto\"]",
        "[{ id = \"K1\", public_key_file = \"k.pem\" }]",
    ]);
    prop::collection::vec((section, prop::collection::vec((key, value), 0..4)), 0..5).prop_map(
        |sections| {
            let mut text = String::new();
            for (s, kvs) in sections {
                text.push_str(s);
                text.push('\n');
                for (k, v) in kvs {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            text
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_and_errors_say_why(text in config_like()) {
        if let Err(e) = Config::parse(&text, Path::new("/nonexistent")) {
            prop_assert!(!e.reason.is_empty(), "{}", text);
        }
    }

    #[test]
    fn parse_never_panics_on_bytes(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Config::parse(&String::from_utf8_lossy(&raw), Path::new("/nonexistent"));
    }
}
