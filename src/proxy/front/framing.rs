//! Where a request the front hands to the pipeline ends on the wire: its head, then its body
//! as RFC 9112 §6.3 frames it — and as Pingora's HTTP/1 reader will read it.
//!
//! The front gives the pipeline one request at a time ([`super::handover`]) and keeps what
//! follows it, so it must find the request's end exactly where Pingora does. [`of`] reads the
//! framing from the head with Pingora's rules (a final `chunked` transfer coding wins over
//! `Content-Length`; equal repeated lengths are one; no length and no coding: no body), and
//! answers `None` for every head whose end it cannot be sure of — an `Upgrade` or `CONNECT`
//! (the bytes after it are a tunnel), a coding other than chunked, lengths that disagree or do
//! not parse (Pingora refuses those with 400). [`BodyEnd`] then follows the body through the
//! bytes as they pass, chunk by chunk for a chunked one (chunk-size lines read with
//! `httparse::parse_chunk_size`, as Pingora reads them). Where its reading of a chunked body
//! goes wrong — a chunk not ended by CRLF, a bad size line — Pingora's does too and it closes
//! the connection; [`BodyEnd`] then stops marking an end ([`Scan::Unknown`]) and the bytes pass
//! on unsorted.

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding, up to and including the trailer section's empty line.
    Chunked,
}

/// The framing of a request with a complete, parsed head, or `None` when the front cannot be
/// sure where Pingora will see it end.
pub fn of(req: &httparse::Request<'_, '_>) -> Option<Framing> {
    if req.method == Some("CONNECT") {
        return None;
    }
    let mut length: Option<&[u8]> = None;
    let mut coding: Option<&[u8]> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            return None;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last field's last coding decides (Pingora: `is_chunked_encoding`).
            coding = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for value in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if value.is_empty()
                    || !value.iter().all(u8::is_ascii_digit)
                    || length.is_some_and(|l| l != value)
                {
                    return None;
                }
                length = Some(value);
            }
        }
    }
    if let Some(coding) = coding {
        let last = coding
            .rsplit(|b| *b == b',')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        return (req.version == Some(1) && last.eq_ignore_ascii_case(b"chunked"))
            .then_some(Framing::Chunked);
    }
    match length {
        None => Some(Framing::Length(0)),
        Some(digits) => std::str::from_utf8(digits)
            .ok()?
            .parse()
            .ok()
            .map(Framing::Length),
    }
}

/// [`of`] for a head longer or with more fields than the front parses itself, parsed within
/// the pipeline's limits: its length and framing, or `None` when it is not whole there.
pub fn of_long_head(buf: &[u8]) -> Option<(usize, Framing)> {
    let mut headers = vec![httparse::EMPTY_HEADER; crate::limits::head::PIPELINE_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= crate::limits::head::PIPELINE_HEAD_MAX => {
            Some((n, of(&req)?))
        }
        _ => None,
    }
}

/// The longest chunk-size line followed (Pingora's `PARTIAL_CHUNK_HEAD_LIMIT`).
const SIZE_LINE_MAX: usize = 8 * 1024;

/// A request body followed through its bytes until it ends.
#[derive(Debug)]
pub struct BodyEnd {
    state: State,
}

#[derive(Debug)]
enum State {
    /// This many body bytes still to come.
    Length(u64),
    /// A chunk-size line, the part of it read so far.
    Size(Vec<u8>),
    /// Chunk data still to come.
    Data(u64),
    /// The CRLF after chunk data; how much of it was seen.
    DataEnd(usize),
    /// After the last chunk: how much of the CRLF CRLF ending the trailer section was seen
    /// (the last chunk's own line end is its first half).
    Trailers(usize),
    /// The body ended.
    Done,
    /// The bytes cannot be followed; no end is marked.
    Lost,
}

/// What one [`BodyEnd::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// All of the bytes belong to the body, which goes on.
    More,
    /// The body ends after this many of the bytes; the rest is the next request's.
    End(usize),
    /// The body could not be followed (see the module doc).
    Unknown,
}

impl BodyEnd {
    pub fn new(framing: Framing) -> BodyEnd {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size(Vec::new()),
        };
        BodyEnd { state }
    }

    /// Whether the body has ended.
    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Follow the body through the next `bytes` of the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Scan {
        let mut i = 0;
        loop {
            match &mut self.state {
                State::Done => return Scan::End(i),
                State::Lost => return Scan::Unknown,
                _ if i == bytes.len() => return Scan::More,
                State::Length(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::Done;
                    }
                }
                State::Size(line) => {
                    let before = line.len();
                    let take = (bytes.len() - i).min(SIZE_LINE_MAX + 2 - before);
                    line.extend_from_slice(&bytes[i..i + take]);
                    self.state = match httparse::parse_chunk_size(line) {
                        Ok(httparse::Status::Complete((end, 0))) => {
                            i += end - before;
                            State::Trailers(2)
                        }
                        Ok(httparse::Status::Complete((end, size))) => {
                            i += end - before;
                            State::Data(size)
                        }
                        Ok(httparse::Status::Partial) if line.len() <= SIZE_LINE_MAX => {
                            i += take;
                            continue;
                        }
                        _ => State::Lost,
                    };
                }
                State::Data(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::DataEnd(0);
                    }
                }
                State::DataEnd(seen) => {
                    self.state = match (*seen, bytes[i]) {
                        (0, b'\r') => State::DataEnd(1),
                        (1, b'\n') => State::Size(Vec::new()),
                        _ => State::Lost,
                    };
                    i += 1;
                }
                State::Trailers(seen) => {
                    // Pingora ends the body at the first CRLF CRLF; a lone CR or LF there is
                    // malformed (it fails, so may this).
                    self.state = match (*seen, bytes[i]) {
                        (0 | 2, b'\r') => State::Trailers(*seen + 1),
                        (3, b'\n') => State::Done,
                        (1, b'\n') => State::Trailers(2),
                        (1 | 3, _) | (0 | 2, b'\n') => State::Lost,
                        _ => State::Trailers(0),
                    };
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(head: &str) -> Option<Framing> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(head.as_bytes()).unwrap().is_complete(), "{head}");
        of(&req)
    }

    #[test]
    fn framing_as_pingora_reads_it() {
        let h = |fields: &str| format!("POST /p HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        for (fields, want) in [
            ("", Some(Framing::Length(0))),
            ("Content-Length: 12\r\n", Some(Framing::Length(12))),
            ("content-length: 0\r\n", Some(Framing::Length(0))),
            (
                "Content-Length: 7\r\nContent-Length: 7\r\n",
                Some(Framing::Length(7)),
            ),
            ("Content-Length: 7, 7\r\n", Some(Framing::Length(7))),
            ("Transfer-Encoding: chunked\r\n", Some(Framing::Chunked)),
            (
                "Transfer-Encoding: gzip, Chunked\r\n",
                Some(Framing::Chunked),
            ),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                Some(Framing::Chunked),
            ),
            // The coding wins over a length (Pingora drops the length and closes after).
            (
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                Some(Framing::Chunked),
            ),
            // Refused by Pingora (400) or not ending where a body would: not followed.
            ("Transfer-Encoding: chunked, gzip\r\n", None),
            ("Transfer-Encoding: gzip\r\n", None),
            ("Content-Length: 7\r\nContent-Length: 8\r\n", None),
            ("Content-Length: 7, 8\r\n", None),
            ("Content-Length: +7\r\n", None),
            ("Content-Length: \r\n", None),
            ("Content-Length: 99999999999999999999999\r\n", None),
            ("Upgrade: websocket\r\nConnection: upgrade\r\n", None),
        ] {
            assert_eq!(framing(&h(fields)), want, "{fields:?}");
        }
        assert_eq!(
            framing("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            None
        );
        assert_eq!(
            framing("POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            None,
            "refused on HTTP/1.0"
        );
    }

    #[test]
    fn long_heads_within_the_pipeline_limits() {
        let fields: String = (0..40)
            .map(|i| format!("X-F{i}: {}\r\n", "v".repeat(300)))
            .collect();
        let head = format!("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n{fields}\r\n");
        let buf = format!("{head}abcGET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            of_long_head(buf.as_bytes()),
            Some((head.len(), Framing::Length(3)))
        );
        assert_eq!(
            of_long_head(&buf.as_bytes()[..head.len() - 1]),
            None,
            "not whole"
        );
        let many: String = (0..300).map(|i| format!("X-F{i}: v\r\n")).collect();
        assert_eq!(
            of_long_head(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            None,
            "over the pipeline's field limit"
        );
    }

    /// Feed `input` in pieces of `step` bytes; where the body ended (an offset into `input`).
    fn end_of(framing: Framing, input: &[u8], step: usize) -> Option<usize> {
        let mut body = BodyEnd::new(framing);
        let mut at = 0;
        for piece in input.chunks(step.max(1)) {
            match body.feed(piece) {
                Scan::End(k) => return Some(at + k),
                Scan::Unknown => return None,
                Scan::More => at += piece.len(),
            }
        }
        body.feed(&[]).eq(&Scan::End(0)).then_some(at)
    }

    #[test]
    fn a_body_ends_where_its_framing_says_in_any_pieces() {
        let next = b"GET /next HTTP/1.1\r\n\r\n";
        let cases: [(Framing, &[u8]); 7] = [
            (Framing::Length(0), b""),
            (Framing::Length(5), b"hello"),
            (Framing::Chunked, b"0\r\n\r\n"),
            (
                Framing::Chunked,
                b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
            ),
            (
                Framing::Chunked,
                b"A\r\n0123456789\r\n0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
            ),
            // An extension may hold any byte, a bare LF too: the line ends at CRLF.
            (Framing::Chunked, b"3;a\nb\r\nabc\r\n000\r\n\r\n"),
            // Chunk data that looks like chunk framing.
            (Framing::Chunked, b"9\r\n0\r\n\r\n\r\n\r\n\r\n0\r\n\r\n"),
        ];
        for (framing, body) in cases {
            let input = [body, next.as_slice()].concat();
            for step in [1, 2, 3, 7, input.len()] {
                assert_eq!(
                    end_of(framing, &input, step),
                    Some(body.len()),
                    "{framing:?} {:?} step {step}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn an_unfinished_body_asks_for_more() {
        for (framing, part) in [
            (Framing::Length(10), b"hello".as_slice()),
            (Framing::Chunked, b"5\r\nhel"),
            (Framing::Chunked, b"5\r\nhello\r"),
            (Framing::Chunked, b"5\r\nhello\r\n0\r\n"),
            (Framing::Chunked, b"5\r\nhello\r\n0\r\nX-T: 1\r\n"),
            (Framing::Chunked, b"ff"),
        ] {
            assert_eq!(
                BodyEnd::new(framing).feed(part),
                Scan::More,
                "{framing:?} {:?}",
                String::from_utf8_lossy(part)
            );
        }
    }

    /// Where Pingora's chunked reader fails (and closes the connection), no end is marked.
    #[test]
    fn malformed_chunked_bodies_are_not_followed() {
        for body in [
            b"5\r\nhelloXX".as_slice(),
            b"5\r\nhello\n0\r\n\r\n",
            b"g\r\n",
            b"5\rx",
            b"0\r\n\n",
            b"0\r\nX-T: 1\n\r\n",
            b"12345678901234567\r\n",
        ] {
            assert_eq!(
                end_of(Framing::Chunked, body, 1),
                None,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let long = [b"1;".as_slice(), &[b'x'; SIZE_LINE_MAX]].concat();
        assert_eq!(
            BodyEnd::new(Framing::Chunked).feed(&long),
            Scan::Unknown,
            "a size line over Pingora's limit"
        );
    }
}
