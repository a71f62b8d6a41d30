//! `edge.toml` text → [`edge::config::Config::parse`] (the pure step: no file, DNS or
//! environment is read).
//!
//! Input: a byte choosing how the text is used, then the text. Even: the text is the whole
//! config. Odd: the shipped `edge.toml` with the value of one of its `key = value` lines
//! (chosen by the second byte) replaced by the text — the fuzzer then explores the values of
//! every key rather than TOML syntax.
//!
//! Invariants: no panic; an error in a config that is valid TOML names a key path (a section
//! or a key of it, or the unknown key itself) and shows it in its message.
#![no_main]

use std::path::Path;

use edge::config::Config;
use libfuzzer_sys::fuzz_target;

const SHIPPED: &str = include_str!("../../edge.toml");
const SECTIONS: [&str; 10] = [
    "server", "cache", "cors", "purge", "tokens", "tls", "geo", "control", "origins", "demo",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let text = if mode & 1 == 0 {
        text.to_string()
    } else {
        let Some((&line, value)) = text.as_bytes().split_first() else {
            return;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return;
        };
        with_value(usize::from(line), value)
    };
    // Relative paths resolve against a folder that does not exist: parsing reads nothing.
    let Err(e) = Config::parse(&text, Path::new("/nonexistent/edge-fuzz")) else {
        return;
    };
    if text.parse::<toml::Table>().is_err() {
        return;
    }
    let message = e.to_string();
    assert!(
        !e.key.is_empty(),
        "an error without a key path: {message:?}\n{text}"
    );
    // A section's key, or an unknown key itself.
    let section = e.key.split(['.', '[']).next().unwrap_or("");
    assert!(
        SECTIONS.contains(&section) || e.reason.starts_with("unknown field"),
        "an error naming no section: {message:?}"
    );
    assert!(message.starts_with(&e.key), "{message:?}");
});

/// The shipped config with the value of its `n`-th `key = value` line (modulo their count)
/// replaced by `value`.
fn with_value(n: usize, value: &str) -> String {
    let lines: Vec<&str> = SHIPPED.lines().collect();
    let keyed: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim_start().starts_with('#') && lines[i].contains(" = "))
        .collect();
    let chosen = keyed[n % keyed.len()];
    let mut out = String::with_capacity(SHIPPED.len() + value.len());
    for (i, l) in lines.iter().enumerate() {
        if i == chosen {
            let key = l.split(" = ").next().unwrap_or("");
            out.push_str(key);
            out.push_str(" = ");
            out.push_str(value);
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    out
}
