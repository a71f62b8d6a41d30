//! Content codings of playlist bodies (RFC 9110 §8.4): which one a response uses, and a
//! streaming decoder bounded in memory.
//!
//! The cache keeps the origin's bytes whatever their coding; a playlist transformed for one
//! viewer (token carrying, `mh` filtering) is decoded on its way out, so the transformation
//! sees text and the viewer gets an identity body. Supported: `gzip` (also `x-gzip`, several
//! members), `deflate` (zlib-wrapped as RFC 9110 says, or raw deflate as some servers send it),
//! `br`. Anything else, and stacked codings, is [`DecodeError::Unsupported`]: the caller must
//! not transform (or send) what it cannot read.

use std::io::Write;

use bytes::Bytes;

/// Largest decoded playlist, in bytes (8 MiB). Real playlists are kilobytes; a long DVR window
/// of LL-HLS parts reaches a few MiB. Past this the body is refused ([`DecodeError::TooLarge`])
/// rather than held: it also bounds what a decompression bomb can cost.
pub const MAX_DECODED: usize = 8 * 1024 * 1024;

/// Output buffer of one decompression step: what a decoder holds beyond its output.
const STEP: usize = 32 * 1024;

/// A content coding this module can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Br,
}

impl Coding {
    /// The coding of a response from all its `Content-Encoding` field values, in order.
    /// Names are case-insensitive; `identity` and empty list elements are ignored. Two or more
    /// codings (`gzip, br`), or an unknown one (`zstd`, `compress`), are unsupported.
    pub fn from_header<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Coding, DecodeError> {
        let mut found = Coding::Identity;
        let mut names: Vec<String> = Vec::new();
        for value in values {
            for name in value.split(|&c| c == b',') {
                let name = name.trim_ascii();
                if name.is_empty() || name.eq_ignore_ascii_case(b"identity") {
                    continue;
                }
                names.push(printable(name));
                found = if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                    Coding::Gzip
                } else if name.eq_ignore_ascii_case(b"deflate") {
                    Coding::Deflate
                } else if name.eq_ignore_ascii_case(b"br") {
                    Coding::Br
                } else {
                    return Err(DecodeError::Unsupported(names.join(", ")));
                };
            }
        }
        if names.len() > 1 {
            return Err(DecodeError::Unsupported(names.join(", ")));
        }
        Ok(found)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
        }
    }
}

/// A coding name for an error message: at most 32 bytes, non-printable bytes as `?`.
fn printable(name: &[u8]) -> String {
    name.iter().take(32).map(|&c| if c.is_ascii_graphic() { c as char } else { '?' }).collect()
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A coding (or a stack of codings) this module does not decode.
    #[error("content coding {0:?} is not supported")]
    Unsupported(String),
    /// The body is not valid in its coding: bad header, bad data, bad checksum, truncated,
    /// or data after the end of the stream.
    #[error("body is not valid {coding}: {detail}")]
    Corrupt { coding: &'static str, detail: String },
    /// The decoded body would exceed the decoder's limit.
    #[error("decoded body exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

impl DecodeError {
    /// Every [`reason`](Self::reason), for metric labels.
    pub const REASONS: [&'static str; 3] = ["unsupported_encoding", "corrupt", "too_large"];

    /// A short label: `unsupported_encoding`, `corrupt` or `too_large`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Unsupported(_) => "unsupported_encoding",
            DecodeError::Corrupt { .. } => "corrupt",
            DecodeError::TooLarge { .. } => "too_large",
        }
    }
}

/// Where decoders write: collects output until taken, and refuses to grow past `limit` in
/// total. Refusing inside the write (not after it) is what bounds a bomb: a decoder hands its
/// output over in [`STEP`]-sized pieces, so no more than that is ever produced past the limit.
struct Sink {
    out: Vec<u8>,
    total: usize,
    limit: usize,
    over: bool,
}

impl Sink {
    fn new(limit: usize) -> Sink {
        Sink { out: Vec::new(), total: 0, limit, over: false }
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.out))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.total.saturating_add(buf.len()) > self.limit {
            self.over = true;
            return Err(std::io::Error::other("decoded size limit"));
        }
        self.total += buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// HTTP `deflate`: RFC 9110 says zlib (RFC 1950), but servers have long sent raw deflate
/// (RFC 1951) under that name, so the first two bytes decide, as browsers do. Driven on
/// [`flate2::Decompress`] directly because the end of the stream must be seen: a truncated
/// body is an error, not a short playlist.
struct Inflate {
    /// The first bytes, until there are two to look at.
    head: Vec<u8>,
    z: Option<flate2::Decompress>,
    ended: bool,
    step: Vec<u8>,
    sink: Sink,
}

/// Whether two bytes start a zlib stream: method 8 (deflate), window ≤ 32 KiB, check bits.
fn is_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

enum Fail {
    Corrupt(String),
    Over,
}

impl Inflate {
    fn new(limit: usize) -> Inflate {
        Inflate { head: Vec::new(), z: None, ended: false, step: Vec::with_capacity(STEP), sink: Sink::new(limit) }
    }

    fn push(&mut self, mut input: &[u8]) -> Result<(), Fail> {
        if self.z.is_none() {
            let take = (2 - self.head.len()).min(input.len());
            self.head.extend_from_slice(input.get(..take).unwrap_or_default());
            input = input.get(take..).unwrap_or_default();
            if self.head.len() < 2 {
                return Ok(());
            }
            let head = std::mem::take(&mut self.head);
            self.z = Some(flate2::Decompress::new(is_zlib(&head)));
            self.inflate(&head)?;
        }
        self.inflate(input)
    }

    fn inflate(&mut self, mut input: &[u8]) -> Result<(), Fail> {
        let Some(z) = self.z.as_mut() else { return Ok(()) };
        loop {
            if self.ended {
                return match input.is_empty() {
                    true => Ok(()),
                    false => Err(Fail::Corrupt("data after the end of the stream".into())),
                };
            }
            let (in_before, out_before) = (z.total_in(), z.total_out());
            self.step.clear();
            let status = z
                .decompress_vec(input, &mut self.step, flate2::FlushDecompress::None)
                .map_err(|e| Fail::Corrupt(e.to_string()))?;
            let used = usize::try_from(z.total_in() - in_before).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or_default();
            self.sink.write_all(&self.step).map_err(|_| Fail::Over)?;
            if status == flate2::Status::StreamEnd {
                self.ended = true;
                continue;
            }
            let full = self.step.len() == self.step.capacity();
            if input.is_empty() && !full {
                return Ok(());
            }
            if used == 0 && z.total_out() == out_before {
                return Err(Fail::Corrupt("no progress".into()));
            }
        }
    }
}

enum State {
    Identity(Sink),
    Gzip(Box<flate2::write::MultiGzDecoder<Sink>>),
    Deflate(Box<Inflate>),
    Br(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    /// Finished, or failed with this error.
    Done(Option<DecodeError>),
}

/// A streaming decoder for one body: feed it the body's chunks with [`push`](Self::push), then
/// call [`finish`](Self::finish). The concatenated output is the decoded body however the
/// input is split. The decoded total is bounded by the limit given to [`new`](Self::new); the
/// decoder holds at most a step's output (32 KiB) plus the coding's window beyond what it returns.
/// After an error every call returns that error.
pub struct Decoder {
    coding: Coding,
    limit: usize,
    state: State,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("coding", &self.coding).field("limit", &self.limit).finish()
    }
}

impl Decoder {
    /// A decoder for `coding` whose decoded output may total at most `limit` bytes.
    pub fn new(coding: Coding, limit: usize) -> Decoder {
        let state = match coding {
            Coding::Identity => State::Identity(Sink::new(limit)),
            Coding::Gzip => State::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Sink::new(limit)))),
            Coding::Deflate => State::Deflate(Box::new(Inflate::new(limit))),
            Coding::Br => State::Br(Box::new(brotli_decompressor::DecompressorWriter::new(Sink::new(limit), 4096))),
        };
        Decoder { coding, limit, state }
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Decode the next chunk of the body; returns the decoded bytes available so far (possibly
    /// none: decoders buffer a little).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        let result = match &mut self.state {
            State::Identity(sink) => sink.write_all(chunk).map(|_| sink.take()).map_err(|_| Fail::Over),
            State::Gzip(d) => io_result(d.write_all(chunk), d.get_mut()),
            State::Deflate(d) => d.push(chunk).map(|_| d.sink.take()),
            State::Br(d) => io_result(d.write_all(chunk), d.get_mut()),
            State::Done(None) => Err(Fail::Corrupt("data after the end of the body".into())),
            State::Done(Some(e)) => return Err(e.clone()),
        };
        self.settle(result, false)
    }

    /// The end of the body: the rest of the decoded bytes, or an error if the body was
    /// truncated or failed its checksum.
    pub fn finish(&mut self) -> Result<Bytes, DecodeError> {
        let result = match &mut self.state {
            State::Identity(sink) => Ok(sink.take()),
            State::Gzip(d) => io_result(d.try_finish(), d.get_mut()),
            State::Deflate(d) => match (d.ended, d.push(&[])) {
                (_, Err(e)) => Err(e),
                (true, Ok(())) => Ok(d.sink.take()),
                (false, Ok(())) => Err(Fail::Corrupt("truncated".into())),
            },
            State::Br(d) => io_result(d.close(), d.get_mut()),
            State::Done(None) => Ok(Bytes::new()),
            State::Done(Some(e)) => return Err(e.clone()),
        };
        self.settle(result, true)
    }

    /// Record a failure (every later call repeats it) or the end.
    fn settle(&mut self, result: Result<Bytes, Fail>, end: bool) -> Result<Bytes, DecodeError> {
        match result {
            Ok(out) => {
                if end {
                    self.state = State::Done(None);
                }
                Ok(out)
            }
            Err(fail) => {
                let e = match fail {
                    Fail::Over => DecodeError::TooLarge { limit: self.limit },
                    Fail::Corrupt(detail) => DecodeError::Corrupt { coding: self.coding.as_str(), detail },
                };
                self.state = State::Done(Some(e.clone()));
                Err(e)
            }
        }
    }
}

/// The outcome of a write into a `Write`-style decoder: its sink's output, or why not. An error
/// after the sink refused to grow is the limit, whatever the decoder made of it.
fn io_result(r: std::io::Result<()>, sink: &mut Sink) -> Result<Bytes, Fail> {
    match r {
        Ok(()) => Ok(sink.take()),
        Err(_) if sink.over => Err(Fail::Over),
        Err(e) if e.kind() == std::io::ErrorKind::WriteZero => Err(Fail::Corrupt("data after the end of the stream".into())),
        Err(e) => Err(Fail::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const PLAYLIST: &[u8] = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_000.ts\n#EXTINF:4.0,\nseg_001.ts\n#EXT-X-ENDLIST\n";

    pub(crate) fn encode(coding: Coding, body: &[u8]) -> Vec<u8> {
        match coding {
            Coding::Identity => body.to_vec(),
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            Coding::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            Coding::Br => {
                let mut out = Vec::new();
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                e.write_all(body).unwrap();
                drop(e);
                out
            }
        }
    }

    fn raw_deflate(body: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    }

    /// Decode `input` split at `cuts` (positions taken modulo the length).
    fn decode_chunked(coding: Coding, input: &[u8], cuts: &[usize], limit: usize) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::new(coding, limit);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain([input.len()]) {
            out.extend_from_slice(&d.push(&input[prev..p])?);
            prev = p;
        }
        out.extend_from_slice(&d.finish()?);
        Ok(out)
    }

    const ALL: [Coding; 4] = [Coding::Identity, Coding::Gzip, Coding::Deflate, Coding::Br];

    #[test]
    fn header_values_name_one_coding() {
        let parse = |vals: &[&str]| Coding::from_header(vals.iter().map(|v| v.as_bytes()));
        assert_eq!(parse(&[]), Ok(Coding::Identity));
        assert_eq!(parse(&["identity"]), Ok(Coding::Identity));
        assert_eq!(parse(&["GZIP"]), Ok(Coding::Gzip));
        assert_eq!(parse(&["x-gzip"]), Ok(Coding::Gzip));
        assert_eq!(parse(&[" deflate "]), Ok(Coding::Deflate));
        assert_eq!(parse(&["br"]), Ok(Coding::Br));
        assert_eq!(parse(&["identity, br", ""]), Ok(Coding::Br));
        assert_eq!(parse(&["zstd"]), Err(DecodeError::Unsupported("zstd".into())));
        assert_eq!(parse(&["compress"]).unwrap_err().reason(), "unsupported_encoding");
        assert_eq!(parse(&["gzip, br"]), Err(DecodeError::Unsupported("gzip, br".into())));
        assert_eq!(parse(&["gzip", "gzip"]), Err(DecodeError::Unsupported("gzip, gzip".into())));
        assert_eq!(parse(&["gzip", "zstd"]), Err(DecodeError::Unsupported("gzip, zstd".into())));
        let long = "z".repeat(100) + "\u{7f}";
        assert_eq!(parse(&[&long]), Err(DecodeError::Unsupported("z".repeat(32))));
    }

    #[test]
    fn every_coding_round_trips_byte_at_a_time() {
        for coding in ALL {
            let enc = encode(coding, PLAYLIST);
            let cuts: Vec<usize> = (0..enc.len()).collect();
            assert_eq!(decode_chunked(coding, &enc, &cuts, MAX_DECODED).unwrap(), PLAYLIST, "{coding:?}");
        }
    }

    #[test]
    fn raw_deflate_is_accepted_as_deflate() {
        let enc = raw_deflate(PLAYLIST);
        assert!(!is_zlib(&enc));
        assert_eq!(decode_chunked(Coding::Deflate, &enc, &[1, 7], MAX_DECODED).unwrap(), PLAYLIST);
    }

    #[test]
    fn gzip_with_several_members_is_one_body() {
        let mut enc = encode(Coding::Gzip, b"#EXTM3U\n");
        enc.extend(encode(Coding::Gzip, b"seg.ts\n"));
        assert_eq!(decode_chunked(Coding::Gzip, &enc, &[5, 30], MAX_DECODED).unwrap(), b"#EXTM3U\nseg.ts\n");
    }

    #[test]
    fn empty_bodies_are_valid_only_in_identity() {
        assert_eq!(decode_chunked(Coding::Identity, b"", &[], MAX_DECODED).unwrap(), b"");
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let e = decode_chunked(coding, b"", &[], MAX_DECODED).unwrap_err();
            assert_eq!(e.reason(), "corrupt", "{coding:?}: {e}");
        }
        // An encoded empty body is fine.
        for coding in ALL {
            assert_eq!(decode_chunked(coding, &encode(coding, b""), &[], MAX_DECODED).unwrap(), b"");
        }
    }

    #[test]
    fn plain_text_claiming_a_coding_is_corrupt() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let e = decode_chunked(coding, PLAYLIST, &[3], MAX_DECODED).unwrap_err();
            assert!(matches!(e, DecodeError::Corrupt { .. }), "{coding:?}: {e}");
            assert!(e.to_string().starts_with(&format!("body is not valid {}", coding.as_str())), "{e}");
        }
    }

    #[test]
    fn truncated_bodies_are_corrupt_never_short() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let enc = encode(coding, PLAYLIST);
            for cut in [1, enc.len() / 2, enc.len() - 1] {
                let e = decode_chunked(coding, &enc[..cut], &[cut / 2], MAX_DECODED).unwrap_err();
                assert_eq!(e.reason(), "corrupt", "{coding:?} cut at {cut}: {e}");
            }
        }
    }

    #[test]
    fn data_after_the_end_is_corrupt() {
        for coding in [Coding::Deflate, Coding::Br] {
            let mut enc = encode(coding, PLAYLIST);
            enc.extend_from_slice(b"junk");
            let e = decode_chunked(coding, &enc, &[], MAX_DECODED).unwrap_err();
            assert_eq!(e.reason(), "corrupt", "{coding:?}: {e}");
        }
        // gzip: trailing bytes are read as the next member, whose header is wrong
        let mut enc = encode(Coding::Gzip, PLAYLIST);
        enc.extend_from_slice(b"junk");
        assert_eq!(decode_chunked(Coding::Gzip, &enc, &[], MAX_DECODED).unwrap_err().reason(), "corrupt");
    }

    #[test]
    fn a_bad_gzip_checksum_is_corrupt() {
        let mut enc = encode(Coding::Gzip, PLAYLIST);
        let n = enc.len();
        enc[n - 8] ^= 0xff; // CRC32
        let e = decode_chunked(Coding::Gzip, &enc, &[], MAX_DECODED).unwrap_err();
        assert_eq!(e.reason(), "corrupt", "{e}");
        let mut enc = encode(Coding::Deflate, PLAYLIST);
        let n = enc.len();
        enc[n - 1] ^= 0xff; // Adler-32
        assert_eq!(decode_chunked(Coding::Deflate, &enc, &[], MAX_DECODED).unwrap_err().reason(), "corrupt");
    }

    #[test]
    fn the_limit_is_inclusive_and_stops_a_bomb_early() {
        for coding in ALL {
            let enc = encode(coding, PLAYLIST);
            assert_eq!(decode_chunked(coding, &enc, &[], PLAYLIST.len()).unwrap(), PLAYLIST);
            let e = decode_chunked(coding, &enc, &[], PLAYLIST.len() - 1).unwrap_err();
            assert_eq!(e, DecodeError::TooLarge { limit: PLAYLIST.len() - 1 }, "{coding:?}");
        }
        // 4 MiB of zeros: a few KiB (gzip, deflate) or bytes (br) on the wire, stopped at the
        // limit, with no more than the limit ever returned.
        let zeros = vec![0u8; 4 << 20];
        let limit = 256 << 10;
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let enc = encode(coding, &zeros);
            assert!(enc.len() < 16 << 10, "{coding:?} {}", enc.len());
            let mut d = Decoder::new(coding, limit);
            let mut out = 0;
            let mut err = None;
            for chunk in enc.chunks(1024) {
                match d.push(chunk) {
                    Ok(b) => out += b.len(),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            assert_eq!(err, Some(DecodeError::TooLarge { limit }), "{coding:?}");
            assert!(out <= limit, "{coding:?}: {out}");
        }
    }

    #[test]
    fn after_an_error_every_call_repeats_it() {
        let mut d = Decoder::new(Coding::Gzip, MAX_DECODED);
        let e = d.push(b"not gzip at all").unwrap_err();
        assert_eq!(d.push(&encode(Coding::Gzip, PLAYLIST)).unwrap_err(), e);
        assert_eq!(d.finish().unwrap_err(), e);
    }

    fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2000),
            "(#EXT[A-Z-]{0,12}:[ -~]{0,30}\n|[a-z0-9_/]{1,20}\\.(ts|m4s|m3u8)\n){0,60}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_split_of_any_coding_gives_the_body(
            body in body_strategy(),
            coding in proptest::sample::select(ALL.to_vec()),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let enc = encode(coding, &body);
            prop_assert_eq!(decode_chunked(coding, &enc, &cuts, MAX_DECODED).unwrap(), body);
        }

        #[test]
        fn garbage_never_panics(
            junk in proptest::collection::vec(any::<u8>(), 0..300),
            coding in proptest::sample::select(ALL.to_vec()),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
        ) {
            let _ = decode_chunked(coding, &junk, &cuts, 1 << 16);
        }
    }
}
