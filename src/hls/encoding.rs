//! Content codings of playlist bodies (RFC 9110 §8.4): which one a response uses, and a
//! streaming decoder bounded in memory.
//!
//! The cache keeps the origin's bytes whatever their coding; a playlist transformed for one
//! viewer (token carrying, `mh` filtering) is decoded on its way out, so the transformation
//! sees text and the viewer gets an identity body. Supported: `gzip` (also `x-gzip`; one member),
//! `deflate` (zlib-wrapped as RFC 9110 says, or raw deflate as some servers send it),
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
    pub fn from_header<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Coding, DecodeError> {
        let mut found = Coding::Identity;
        let mut names: Vec<String> = Vec::new();
        for value in values {
            for name in value.split(|&c| c == b',') {
                let name = name.trim_ascii();
                if name.is_empty() || name.eq_ignore_ascii_case(b"identity") {
                    continue;
                }
                names.push(printable(name));
                found =
                    if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
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
    name.iter()
        .take(32)
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
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
    Corrupt {
        coding: &'static str,
        detail: String,
    },
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
/// total. Checked after every step of [`STEP`] bytes of output, so a bomb is stopped with at
/// most one step produced past the limit.
struct Sink {
    out: Vec<u8>,
    total: usize,
    limit: usize,
    over: bool,
}

impl Sink {
    fn new(limit: usize) -> Sink {
        Sink {
            out: Vec::new(),
            total: 0,
            limit,
            over: false,
        }
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

/// Longest gzip member header accepted (`FEXTRA` is at most 64 KiB; names are short).
const MAX_GZIP_HEADER: usize = 128 * 1024;

/// The length of the gzip member header (RFC 1952 §2.3) at the start of `b`, once complete.
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, &'static str> {
    if b.first().is_some_and(|&c| c != 0x1f) || b.get(1).is_some_and(|&c| c != 0x8b) {
        return Err("not gzip (bad magic bytes)");
    }
    if b.get(2).is_some_and(|&c| c != 8) {
        return Err("unknown gzip compression method");
    }
    let Some(&flags) = b.get(3) else {
        return Ok(None);
    };
    if flags & 0xe0 != 0 {
        return Err("reserved gzip flags set");
    }
    let mut n = 10; // magic, method, flags, mtime, xfl, os
    if flags & 0x04 != 0 {
        // FEXTRA: a little-endian length, then that many bytes
        let Some(&[lo, hi]) = b.get(n..n + 2) else {
            return Ok(None);
        };
        n += 2 + usize::from(u16::from_le_bytes([lo, hi]));
    }
    for flag in [0x08, 0x10] {
        // FNAME, FCOMMENT: zero-terminated
        if flags & flag != 0 {
            match b.get(n..).and_then(|rest| memchr::memchr(0, rest)) {
                Some(i) => n += i + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 0x02 != 0 {
        n += 2; // FHCRC
    }
    Ok((b.len() >= n).then_some(n))
}

/// Where an [`Inflate`] is in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gathering the gzip header, or the two bytes that tell zlib from raw deflate.
    Head,
    Body,
    /// Gathering gzip's CRC-32 and size.
    Trailer,
    End,
}

/// `gzip` and `deflate`, driven on [`flate2::Decompress`] directly because the end of the
/// stream must be seen: a truncated body is an error, not a short playlist, and a complete one
/// is known complete before the transport says so.
///
/// HTTP `deflate` is zlib (RFC 1950) per RFC 9110, but servers have long sent raw deflate
/// (RFC 1951) under that name, so the first two bytes decide, as browsers do. A gzip body is
/// one member (what HTTP servers send); bytes after it are an error.
struct Inflate {
    gzip: bool,
    phase: Phase,
    /// Bytes of a header or trailer not complete yet.
    held: Vec<u8>,
    z: flate2::Decompress,
    crc: flate2::Crc,
    step: Vec<u8>,
    sink: Sink,
}

/// Whether two bytes start a zlib stream: method 8 (deflate), window ≤ 32 KiB, check bits.
fn is_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

enum Fail {
    Corrupt(String),
    Over,
}

fn corrupt(detail: &str) -> Fail {
    Fail::Corrupt(detail.to_string())
}

impl Inflate {
    fn new(gzip: bool, limit: usize) -> Inflate {
        Inflate {
            gzip,
            phase: Phase::Head,
            held: Vec::new(),
            // gzip wraps raw deflate; deflate's wrapper is decided on its first two bytes
            z: flate2::Decompress::new(false),
            crc: flate2::Crc::new(),
            step: Vec::with_capacity(STEP),
            sink: Sink::new(limit),
        }
    }

    fn push(&mut self, input: &[u8]) -> Result<(), Fail> {
        let mut input = input;
        let after_head;
        if self.phase == Phase::Head {
            self.held.extend_from_slice(input);
            let head = if self.gzip {
                gzip_header_len(&self.held).map_err(corrupt)?
            } else if self.held.len() >= 2 {
                self.z = flate2::Decompress::new(is_zlib(&self.held));
                Some(0) // zlib's header is the decompressor's to read
            } else {
                None
            };
            let Some(n) = head else {
                return match self.held.len() > MAX_GZIP_HEADER {
                    true => Err(corrupt("gzip header too long")),
                    false => Ok(()),
                };
            };
            let mut rest = std::mem::take(&mut self.held);
            rest.drain(..n);
            after_head = rest;
            input = &after_head;
            self.phase = Phase::Body;
        }
        if self.phase == Phase::Body {
            let used = self.inflate(input)?;
            input = input.get(used..).unwrap_or_default();
        }
        if self.phase == Phase::Trailer {
            let take = (8 - self.held.len()).min(input.len());
            self.held
                .extend_from_slice(input.get(..take).unwrap_or_default());
            input = input.get(take..).unwrap_or_default();
            if let Ok(trailer) = <[u8; 8]>::try_from(self.held.as_slice()) {
                let [c0, c1, c2, c3, s0, s1, s2, s3] = trailer;
                if u32::from_le_bytes([c0, c1, c2, c3]) != self.crc.sum() {
                    return Err(corrupt("CRC-32 mismatch"));
                }
                if u32::from_le_bytes([s0, s1, s2, s3]) != self.crc.amount() {
                    return Err(corrupt("size mismatch"));
                }
                self.phase = Phase::End;
            }
        }
        if self.phase == Phase::End && !input.is_empty() {
            return Err(corrupt("data after the end of the stream"));
        }
        Ok(())
    }

    /// Inflate from `input` until it is used up or the deflate stream ends; returns how many
    /// bytes of `input` were used.
    fn inflate(&mut self, input: &[u8]) -> Result<usize, Fail> {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let (in_before, out_before) = (self.z.total_in(), self.z.total_out());
            self.step.clear();
            let status = self
                .z
                .decompress_vec(rest, &mut self.step, flate2::FlushDecompress::None)
                .map_err(|e| Fail::Corrupt(e.to_string()))?;
            let now = usize::try_from(self.z.total_in() - in_before).unwrap_or(usize::MAX);
            used = used.saturating_add(now);
            if self.gzip {
                self.crc.update(&self.step);
            }
            self.sink.write_all(&self.step).map_err(|_| Fail::Over)?;
            if status == flate2::Status::StreamEnd {
                self.phase = if self.gzip {
                    Phase::Trailer
                } else {
                    Phase::End
                };
                return Ok(used);
            }
            // A full step may leave output inside the decompressor: go round again.
            let full = self.step.len() == self.step.capacity();
            if used >= input.len() && !full {
                return Ok(used);
            }
            if now == 0 && self.z.total_out() == out_before {
                return Err(corrupt("no progress"));
            }
        }
    }
}

type BrotliState = brotli_decompressor::BrotliState<
    brotli_decompressor::StandardAlloc,
    brotli_decompressor::StandardAlloc,
    brotli_decompressor::StandardAlloc,
>;

/// `br`, driven on the decoder's stream API for the same reason as [`Inflate`]: it says when
/// the stream is complete.
struct Unbrotli {
    state: Box<BrotliState>,
    ended: bool,
    total_out: usize,
    step: Vec<u8>,
    sink: Sink,
}

impl Unbrotli {
    fn new(limit: usize) -> Unbrotli {
        let a = brotli_decompressor::StandardAlloc::default;
        Unbrotli {
            state: Box::new(BrotliState::new(a(), a(), a())),
            ended: false,
            total_out: 0,
            step: vec![0; STEP],
            sink: Sink::new(limit),
        }
    }

    fn push(&mut self, input: &[u8]) -> Result<(), Fail> {
        if self.ended {
            return match input.is_empty() {
                true => Ok(()),
                false => Err(corrupt("data after the end of the stream")),
            };
        }
        let (mut available_in, mut input_offset) = (input.len(), 0);
        loop {
            let (mut available_out, mut output_offset) = (self.step.len(), 0);
            let result = brotli_decompressor::BrotliDecompressStream(
                &mut available_in,
                &mut input_offset,
                input,
                &mut available_out,
                &mut output_offset,
                &mut self.step,
                &mut self.total_out,
                &mut self.state,
            );
            self.sink
                .write_all(self.step.get(..output_offset).unwrap_or_default())
                .map_err(|_| Fail::Over)?;
            match result {
                brotli_decompressor::BrotliResult::NeedsMoreOutput => continue,
                brotli_decompressor::BrotliResult::NeedsMoreInput => return Ok(()),
                brotli_decompressor::BrotliResult::ResultSuccess => {
                    self.ended = true;
                    return match available_in {
                        0 => Ok(()),
                        _ => Err(corrupt("data after the end of the stream")),
                    };
                }
                brotli_decompressor::BrotliResult::ResultFailure => {
                    return Err(corrupt("invalid brotli data"))
                }
            }
        }
    }
}

enum State {
    Identity(Sink),
    Inflate(Box<Inflate>),
    Br(Box<Unbrotli>),
    /// Finished, or failed with this error.
    Done(Option<DecodeError>),
}

/// A streaming decoder for one body: feed it the body's chunks with [`push`](Self::push), then
/// call [`finish`](Self::finish). The concatenated output is the decoded body however the
/// input is split. The decoded total is bounded by the limit given to [`new`](Self::new); the
/// decoder holds at most one step of output (32 KiB) plus the coding's window beyond what it
/// returned. After an error every call returns that error.
///
/// The encoded codings delimit themselves: [`is_complete`](Self::is_complete) turns true once
/// the whole stream (checksum included) has been read, whatever the transport says.
pub struct Decoder {
    coding: Coding,
    limit: usize,
    state: State,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("coding", &self.coding)
            .field("limit", &self.limit)
            .finish()
    }
}

impl Decoder {
    /// A decoder for `coding` whose decoded output may total at most `limit` bytes.
    pub fn new(coding: Coding, limit: usize) -> Decoder {
        let state = match coding {
            Coding::Identity => State::Identity(Sink::new(limit)),
            Coding::Gzip => State::Inflate(Box::new(Inflate::new(true, limit))),
            Coding::Deflate => State::Inflate(Box::new(Inflate::new(false, limit))),
            Coding::Br => State::Br(Box::new(Unbrotli::new(limit))),
        };
        Decoder {
            coding,
            limit,
            state,
        }
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Whether the encoded stream has ended (checksums verified). Never true for identity,
    /// which only the transport can end.
    pub fn is_complete(&self) -> bool {
        match &self.state {
            State::Inflate(d) => d.phase == Phase::End,
            State::Br(d) => d.ended,
            State::Identity(_) | State::Done(_) => false,
        }
    }

    /// Decode the next chunk of the body; returns the decoded bytes available so far (possibly
    /// none: decoders buffer a little).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        let result = match &mut self.state {
            State::Identity(sink) => sink
                .write_all(chunk)
                .map(|_| sink.take())
                .map_err(|_| Fail::Over),
            State::Inflate(d) => d.push(chunk).map(|_| d.sink.take()),
            State::Br(d) => d.push(chunk).map(|_| d.sink.take()),
            State::Done(None) if chunk.is_empty() => Ok(Bytes::new()),
            State::Done(None) => Err(corrupt("data after the end of the body")),
            State::Done(Some(e)) => return Err(e.clone()),
        };
        self.settle(result, false)
    }

    /// The end of the body: the rest of the decoded bytes, or an error if the body was
    /// truncated.
    pub fn finish(&mut self) -> Result<Bytes, DecodeError> {
        let complete = self.is_complete();
        let result = match &mut self.state {
            State::Identity(sink) => Ok(sink.take()),
            State::Inflate(d) if complete => Ok(d.sink.take()),
            State::Br(d) if complete => Ok(d.sink.take()),
            State::Inflate(_) | State::Br(_) => Err(corrupt("truncated")),
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
                    Fail::Corrupt(detail) => DecodeError::Corrupt {
                        coding: self.coding.as_str(),
                        detail,
                    },
                };
                self.state = State::Done(Some(e.clone()));
                Err(e)
            }
        }
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
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
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
    fn decode_chunked(
        coding: Coding,
        input: &[u8],
        cuts: &[usize],
        limit: usize,
    ) -> Result<Vec<u8>, DecodeError> {
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
        assert_eq!(
            parse(&["zstd"]),
            Err(DecodeError::Unsupported("zstd".into()))
        );
        assert_eq!(
            parse(&["compress"]).unwrap_err().reason(),
            "unsupported_encoding"
        );
        assert_eq!(
            parse(&["gzip, br"]),
            Err(DecodeError::Unsupported("gzip, br".into()))
        );
        assert_eq!(
            parse(&["gzip", "gzip"]),
            Err(DecodeError::Unsupported("gzip, gzip".into()))
        );
        assert_eq!(
            parse(&["gzip", "zstd"]),
            Err(DecodeError::Unsupported("gzip, zstd".into()))
        );
        let long = "z".repeat(100) + "\u{7f}";
        assert_eq!(
            parse(&[&long]),
            Err(DecodeError::Unsupported("z".repeat(32)))
        );
    }

    #[test]
    fn every_coding_round_trips_byte_at_a_time() {
        for coding in ALL {
            let enc = encode(coding, PLAYLIST);
            let cuts: Vec<usize> = (0..enc.len()).collect();
            assert_eq!(
                decode_chunked(coding, &enc, &cuts, MAX_DECODED).unwrap(),
                PLAYLIST,
                "{coding:?}"
            );
        }
    }

    #[test]
    fn raw_deflate_is_accepted_as_deflate() {
        let enc = raw_deflate(PLAYLIST);
        assert!(!is_zlib(&enc));
        assert_eq!(
            decode_chunked(Coding::Deflate, &enc, &[1, 7], MAX_DECODED).unwrap(),
            PLAYLIST
        );
    }

    #[test]
    fn a_second_gzip_member_is_data_after_the_end() {
        let mut enc = encode(Coding::Gzip, b"#EXTM3U\n");
        enc.extend(encode(Coding::Gzip, b"seg.ts\n"));
        let e = decode_chunked(Coding::Gzip, &enc, &[5, 30], MAX_DECODED).unwrap_err();
        assert_eq!(
            e.to_string(),
            "body is not valid gzip: data after the end of the stream"
        );
    }

    #[test]
    fn gzip_headers_with_every_optional_field() {
        let mut e = flate2::GzBuilder::new()
            .filename("index.m3u8")
            .comment("made by a test")
            .extra(vec![7; 300])
            .mtime(1_700_000_000)
            .write(Vec::new(), flate2::Compression::default());
        e.write_all(PLAYLIST).unwrap();
        let enc = e.finish().unwrap();
        let cuts: Vec<usize> = (0..enc.len()).step_by(3).collect();
        assert_eq!(
            decode_chunked(Coding::Gzip, &enc, &cuts, MAX_DECODED).unwrap(),
            PLAYLIST
        );
        // FHCRC: two header CRC bytes after the rest of the header (flag bit 1)
        let plain = encode(Coding::Gzip, PLAYLIST);
        let mut with_hcrc = plain[..10].to_vec();
        with_hcrc[3] |= 0x02;
        with_hcrc.extend_from_slice(&[0xab, 0xcd]);
        with_hcrc.extend_from_slice(&plain[10..]);
        assert_eq!(
            decode_chunked(Coding::Gzip, &with_hcrc, &[11], MAX_DECODED).unwrap(),
            PLAYLIST
        );
        // reserved flag bits, another method
        let mut bad = plain.clone();
        bad[3] |= 0x80;
        assert_eq!(
            decode_chunked(Coding::Gzip, &bad, &[], MAX_DECODED)
                .unwrap_err()
                .to_string(),
            "body is not valid gzip: reserved gzip flags set"
        );
        let mut bad = plain;
        bad[2] = 7;
        assert_eq!(
            decode_chunked(Coding::Gzip, &bad, &[], MAX_DECODED)
                .unwrap_err()
                .reason(),
            "corrupt"
        );
    }

    #[test]
    fn an_encoded_stream_knows_its_end_before_the_transport_does() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let enc = encode(coding, PLAYLIST);
            let mut d = Decoder::new(coding, MAX_DECODED);
            let mut out = d.push(&enc[..enc.len() - 1]).unwrap().to_vec();
            assert!(!d.is_complete(), "{coding:?}");
            out.extend_from_slice(&d.push(&enc[enc.len() - 1..]).unwrap());
            assert!(d.is_complete(), "{coding:?}");
            assert_eq!(out, PLAYLIST, "{coding:?}: all output is out once complete");
            assert!(d.finish().unwrap().is_empty());
            assert!(
                d.push(b"").unwrap().is_empty(),
                "an empty push after the end is fine"
            );
            assert_eq!(d.push(b"x").unwrap_err().reason(), "corrupt");
        }
        let mut d = Decoder::new(Coding::Identity, MAX_DECODED);
        d.push(PLAYLIST).unwrap();
        assert!(!d.is_complete());
    }

    #[test]
    fn empty_bodies_are_valid_only_in_identity() {
        assert_eq!(
            decode_chunked(Coding::Identity, b"", &[], MAX_DECODED).unwrap(),
            b""
        );
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let e = decode_chunked(coding, b"", &[], MAX_DECODED).unwrap_err();
            assert_eq!(e.reason(), "corrupt", "{coding:?}: {e}");
        }
        // An encoded empty body is fine.
        for coding in ALL {
            assert_eq!(
                decode_chunked(coding, &encode(coding, b""), &[], MAX_DECODED).unwrap(),
                b""
            );
        }
    }

    #[test]
    fn plain_text_claiming_a_coding_is_corrupt() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br] {
            let e = decode_chunked(coding, PLAYLIST, &[3], MAX_DECODED).unwrap_err();
            assert!(matches!(e, DecodeError::Corrupt { .. }), "{coding:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("body is not valid {}", coding.as_str())),
                "{e}"
            );
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
        // gzip too (a second member is refused the same way)
        let mut enc = encode(Coding::Gzip, PLAYLIST);
        enc.extend_from_slice(b"junk");
        assert_eq!(
            decode_chunked(Coding::Gzip, &enc, &[], MAX_DECODED)
                .unwrap_err()
                .reason(),
            "corrupt"
        );
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
        assert_eq!(
            decode_chunked(Coding::Deflate, &enc, &[], MAX_DECODED)
                .unwrap_err()
                .reason(),
            "corrupt"
        );
    }

    #[test]
    fn the_limit_is_inclusive_and_stops_a_bomb_early() {
        for coding in ALL {
            let enc = encode(coding, PLAYLIST);
            assert_eq!(
                decode_chunked(coding, &enc, &[], PLAYLIST.len()).unwrap(),
                PLAYLIST
            );
            let e = decode_chunked(coding, &enc, &[], PLAYLIST.len() - 1).unwrap_err();
            assert_eq!(
                e,
                DecodeError::TooLarge {
                    limit: PLAYLIST.len() - 1
                },
                "{coding:?}"
            );
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
            "(#EXT[A-Z-]{0,12}:[ -~]{0,30}\n|[a-z0-9_/]{1,20}\\.(ts|m4s|m3u8)\n){0,60}"
                .prop_map(String::into_bytes),
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
