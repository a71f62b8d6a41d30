//! [`TokenPlan`]: a stored playlist's rewrite for a query token, done once per object and cut
//! where the viewer's token goes, so each viewer's copy is a concatenation.
//!
//! Every viewer of a playlist with a query token gets the same bytes but for the token's
//! value: the [`PlaylistRewriter`] decides where a URI gets `?name=…` or `&name=…` (and which
//! of its own `name` parameters it drops) from the URI, the parameter's *name* and the host,
//! never from the value, which it only copies after [sanitizing](super::rewrite::sanitize) it
//! byte by byte. So the plan is the rewriter's own output for a placeholder value, split at
//! each placeholder; a viewer's body is the pieces joined by its sanitized value. The
//! rewriter stays the one definition of the rewrite: a plan cannot disagree with it, and a
//! body that already contains the placeholder gets no plan (the caller rewrites it itself).

use bytes::{Bytes, BytesMut};

use super::PlaylistRewriter;

/// Stands for the token's value while the plan is made: letters and digits only, so the
/// rewriter copies it as it is.
const PLACEHOLDER: &[u8] = b"EdgeTokenPlaceholderQ7xZ9k";

/// An identity playlist body rewritten for the query parameter `name` on host `host`, cut
/// where the parameter's value goes.
#[derive(Debug)]
pub struct TokenPlan {
    name: String,
    host: String,
    /// The rewritten body, without the placeholders.
    text: Bytes,
    /// Where in `text` a value goes, in order.
    cuts: Vec<usize>,
}

impl TokenPlan {
    /// The plan of `body` for the parameter `name` on `host` (as
    /// [`PlaylistRewriter::with_own_host`] takes it); `None` when `body` contains the
    /// placeholder.
    pub fn new(body: &[u8], name: &str, host: &str) -> Option<TokenPlan> {
        if memchr::memmem::find(body, PLACEHOLDER).is_some() {
            return None;
        }
        let mut append = String::with_capacity(name.len() + 1 + PLACEHOLDER.len());
        append.push_str(name);
        append.push('=');
        append.push_str(std::str::from_utf8(PLACEHOLDER).ok()?);
        let out = PlaylistRewriter::new(append)
            .with_own_host(host)
            .rewrite_all(body);
        let mut text = BytesMut::with_capacity(out.len());
        let mut cuts = Vec::new();
        let mut rest = &out[..];
        while let Some(i) = memchr::memmem::find(rest, PLACEHOLDER) {
            let (before, after) = rest.split_at(i);
            text.extend_from_slice(before);
            cuts.push(text.len());
            rest = after.get(PLACEHOLDER.len()..)?;
        }
        text.extend_from_slice(rest);
        Some(TokenPlan {
            name: name.to_string(),
            host: host.to_string(),
            text: text.freeze(),
            cuts,
        })
    }

    /// Whether this plan was made for the parameter `name` on `host`.
    pub fn fits(&self, name: &str, host: &str) -> bool {
        self.name == name && self.host == host
    }

    /// The body for the parameter's `value`: what
    /// `PlaylistRewriter::new(format!("{name}={value}")).with_own_host(host)` makes of the
    /// body. `None` for a value the rewriter would read as more parameters (`&`) or as none.
    pub fn apply(&self, value: &str) -> Option<Bytes> {
        if value.contains('&') {
            return None;
        }
        if self.cuts.is_empty() {
            return Some(self.text.clone());
        }
        let value = super::rewrite::sanitize(value.as_bytes());
        let mut out = BytesMut::with_capacity(self.text.len() + self.cuts.len() * value.len());
        let mut from = 0;
        for &cut in &self.cuts {
            out.extend_from_slice(self.text.get(from..cut)?);
            out.extend_from_slice(&value);
            from = cut;
        }
        out.extend_from_slice(self.text.get(from..)?);
        Some(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rewriter(body: &[u8], name: &str, value: &str, host: &str) -> Vec<u8> {
        PlaylistRewriter::new(format!("{name}={value}"))
            .with_own_host(host)
            .rewrite_all(body)
    }

    #[test]
    fn a_plan_is_the_rewriters_output() {
        let body = b"#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4,\na.ts?x=1&token=old\n#EXTINF:4,\nhttp://cdn.example/b.ts\n#EXTINF:4,\nhttp://other.example/c.ts\n#EXT-X-ENDLIST";
        let plan = TokenPlan::new(body, "token", "cdn.example").unwrap();
        for value in ["v1.k.abc.def", "a%2Fb", "", "sp ace\"#"] {
            assert_eq!(
                plan.apply(value).unwrap(),
                rewriter(body, "token", value, "cdn.example"),
                "{value:?}"
            );
        }
        assert!(plan.fits("token", "cdn.example"));
        assert!(!plan.fits("t", "cdn.example"));
        assert!(!plan.fits("token", "other.example"));
        assert!(plan.apply("a&b=c").is_none());
    }

    #[test]
    fn a_body_holding_the_placeholder_gets_no_plan() {
        let body = b"#EXTM3U\nEdgeTokenPlaceholderQ7xZ9k.ts\n";
        assert!(TokenPlan::new(body, "token", "h").is_none());
    }

    proptest! {
        #[test]
        fn plans_agree_with_the_rewriter(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("#EXTM3U".to_string()),
                    Just("#EXTINF:4,".to_string()),
                    Just("#EXT-X-PART:DURATION=0.3,URI=\"p.mp4?token=x\"".to_string()),
                    Just("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"//h/p.mp4\"".to_string()),
                    Just("http://h/a.ts#frag".to_string()),
                    "[a-z/?=&.#%]{0,20}",
                ],
                0..12,
            ),
            crlf in any::<bool>(),
            value in "[ -~]{0,30}",
        ) {
            let body = lines.join(if crlf { "\r\n" } else { "\n" });
            let plan = TokenPlan::new(body.as_bytes(), "token", "h").unwrap();
            match plan.apply(&value) {
                Some(out) => prop_assert_eq!(&out[..], &rewriter(body.as_bytes(), "token", &value, "h")[..]),
                None => prop_assert!(value.contains('&')),
            }
        }
    }
}
