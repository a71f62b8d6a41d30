//! Request head size limits (`[server] max_request_line`, `max_header_field`, `max_head`):
//! a request line over its limit is answered 414, a header field or a whole head over
//! theirs 431 (RFC 6585 §5), and the connection is closed.
//!
//! nginx's `large_client_header_buffers 4 8k` is the model: a request line must fit one 8 KiB
//! buffer (414), a header field one buffer, and the head four (nginx answers 400 "Request
//! Header Or Cookie Too Large" for both; the edge answers RFC 6585's 431, which says what is
//! wrong and which clients and monitoring understand). Without these limits Pingora would
//! accept heads of up to ~1 MiB and forward them to the origin.
//!
//! Two checks, one rule: [`check`] measures a parsed head (the gate calls it, so the front,
//! the Pingora pipeline and HTTP/2 all obey it), and [`check_partial`] measures the bytes of
//! a head still arriving, so the HTTP/1 front stops reading one that already broke a limit
//! instead of buffering up to Pingora's 1 MiB. Sizes are counted as nginx counts its buffers:
//! the request line `method SP target SP version` and each `name: value` line without its
//! line end; the head as their sum plus a line end (2 bytes) each.

/// The configured limits, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_request_line: usize,
    pub max_header_field: usize,
    pub max_head: usize,
}

impl Default for HeadLimits {
    /// nginx's `large_client_header_buffers 4 8k`.
    fn default() -> Self {
        HeadLimits {
            max_request_line: 8 * 1024,
            max_header_field: 8 * 1024,
            max_head: 32 * 1024,
        }
    }
}

/// Which limit a head broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    RequestLine,
    HeaderField,
    Head,
}

impl Oversize {
    pub fn status(self) -> u16 {
        match self {
            Oversize::RequestLine => 414,
            Oversize::HeaderField | Oversize::Head => 431,
        }
    }

    /// The `x-edge-reason` code and the answer's body.
    pub fn reason(self) -> &'static str {
        match self {
            Oversize::RequestLine => "request_line_too_long",
            Oversize::HeaderField => "header_field_too_large",
            Oversize::Head => "head_too_large",
        }
    }

    /// The limit, for `edge_connection_limits_total{limit}`.
    pub fn limit(self) -> super::Limit {
        match self {
            Oversize::RequestLine => super::Limit::RequestLine,
            Oversize::HeaderField => super::Limit::HeaderField,
            Oversize::Head => super::Limit::HeadSize,
        }
    }
}

/// A parsed head: its request line's length and each field's `name` and `value` lengths.
pub fn check(
    limits: &HeadLimits,
    line: usize,
    fields: impl Iterator<Item = (usize, usize)>,
) -> Result<(), Oversize> {
    if line > limits.max_request_line {
        return Err(Oversize::RequestLine);
    }
    let mut head = line + 2;
    for (name, value) in fields {
        let field = name + 2 + value;
        if field > limits.max_header_field {
            return Err(Oversize::HeaderField);
        }
        head += field + 2;
    }
    if head + 2 > limits.max_head {
        return Err(Oversize::Head);
    }
    Ok(())
}

/// The start of a head that has not ended yet: whether it already broke a limit (its request
/// line, a line, or its length so far too long to end within the limits).
pub fn check_partial(limits: &HeadLimits, buf: &[u8]) -> Option<Oversize> {
    let mut lines = buf.split(|&b| b == b'\n');
    // A line's length without its line end (CR LF or a bare LF).
    let len = |l: &[u8]| l.len() - usize::from(l.last() == Some(&b'\r'));
    // The last piece is a line still arriving: measured as is (a CR at its end may be the
    // start of its line end, so it is not counted).
    let first = lines.next()?;
    if len(first) > limits.max_request_line {
        return Some(Oversize::RequestLine);
    }
    if lines.any(|l| len(l) > limits.max_header_field) {
        return Some(Oversize::HeaderField);
    }
    // Every line fits, but the head cannot end within the limit.
    (buf.len() + 2 > limits.max_head).then_some(Oversize::Head)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: HeadLimits = HeadLimits {
        max_request_line: 100,
        max_header_field: 50,
        max_head: 200,
    };

    #[test]
    fn parsed_heads() {
        assert_eq!(check(&L, 100, [(4, 10)].into_iter()), Ok(()));
        assert_eq!(
            check(&L, 101, std::iter::empty()),
            Err(Oversize::RequestLine)
        );
        assert_eq!(
            check(&L, 20, [(4, 44)].into_iter()),
            Ok(()),
            "4 + ': ' + 44 = 50"
        );
        assert_eq!(
            check(&L, 20, [(4, 45)].into_iter()),
            Err(Oversize::HeaderField)
        );
        // 20+2 + 5 × (30+2) + 2 = 184; one more field = 216.
        assert_eq!(check(&L, 20, std::iter::repeat_n((10, 18), 5)), Ok(()));
        assert_eq!(
            check(&L, 20, std::iter::repeat_n((10, 18), 6)),
            Err(Oversize::Head)
        );
        assert_eq!(Oversize::RequestLine.status(), 414);
        assert_eq!(Oversize::Head.status(), 431);
    }

    #[test]
    fn heads_still_arriving() {
        let line = |n: usize| format!("GET /{} HTTP/1.1", "a".repeat(n - 14));
        assert_eq!(line(100).len(), 100);
        assert_eq!(
            check_partial(&L, line(100).as_bytes()),
            None,
            "at the limit, still arriving"
        );
        assert_eq!(
            check_partial(&L, line(101).as_bytes()),
            Some(Oversize::RequestLine),
            "over it before its end"
        );
        assert_eq!(
            check_partial(&L, format!("{}\r\n", line(100)).as_bytes()),
            None
        );
        assert_eq!(
            check_partial(&L, format!("{}\r", line(100)).as_bytes()),
            None,
            "a CR may start the line end"
        );
        let field = format!("x: {}", "v".repeat(47));
        assert_eq!(
            check_partial(&L, format!("GET / HTTP/1.1\r\n{field}\r\n").as_bytes()),
            None
        );
        assert_eq!(
            check_partial(&L, format!("GET / HTTP/1.1\r\n{field}v").as_bytes()),
            Some(Oversize::HeaderField)
        );
        assert_eq!(
            check_partial(&L, format!("GET / HTTP/1.1\n{field}v\nh: 1\n").as_bytes()),
            Some(Oversize::HeaderField),
            "bare LF"
        );
        let many: String = (0..14).map(|i| format!("h{i}: 123456789\r\n")).collect();
        assert_eq!(
            check_partial(&L, format!("GET / HTTP/1.1\r\n{many}").as_bytes()),
            Some(Oversize::Head)
        );
        assert_eq!(check_partial(&L, b""), None);
    }

    proptest::proptest! {
        /// What the partial check refuses, the parsed check refuses too once the head is
        /// whole (the front never cuts a head the gate would have let through).
        #[test]
        fn partial_refusals_hold_for_the_whole_head(n_line in 16usize..150, fields in proptest::collection::vec((1usize..20, 0usize..60), 0..8)) {
            let mut head = format!("GET /{} HTTP/1.1\r\n", "a".repeat(n_line - 14));
            for (i, (n, v)) in fields.iter().enumerate() {
                head.push_str(&format!("{}: {}\r\n", ((b'a' + (i as u8)) as char).to_string().repeat(*n), "v".repeat(*v)));
            }
            if let Some(o) = check_partial(&L, head.as_bytes()) {
                let whole = check(&L, n_line, fields.iter().copied());
                proptest::prop_assert_eq!(whole, Err(o));
            }
        }
    }
}
