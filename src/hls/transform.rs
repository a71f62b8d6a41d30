//! One playlist on its way to one viewer: decoded from its content coding, variants above the
//! token's `mh` filtered out, every URI carrying the token; sent as identity. A DASH MPD takes
//! the same way with the `mh` filter only ([`Transform::mpd`]).

use bytes::Bytes;

use crate::hls::encoding::{Coding, DecodeError, Decoder, MAX_DECODED};
use crate::hls::{filter_variants, PlaylistRewriter};

/// The transformation of one playlist body, fed chunk by chunk.
///
/// An identity body that only carries a token streams through the [`PlaylistRewriter`] line
/// by line. Every other body is held (decoded) until its end, then transformed at once:
/// - an encoded body, because only its end proves it whole (gzip's CRC, the end of a deflate
///   or brotli stream): a viewer must get the whole playlist or nothing, never a mangled or
///   cut one that still parses;
/// - a master filtered by `mh`, because a variant's tag and URI line must be seen together.
///
/// What is held is bounded by the decoder's limit ([`MAX_DECODED`] by default): past it the
/// body is refused with [`DecodeError::TooLarge`].
///
/// An encoded body is complete when its stream ends: [`push`](Self::push) then returns the
/// whole playlist at once, without waiting for [`finish`](Self::finish) (the transport's end may
/// never be reported to a body filter). Data after that end is an error.
#[derive(Debug)]
pub struct Transform {
    decoder: Decoder,
    rewriter: Option<PlaylistRewriter>,
    max_height: Option<u32>,
    /// Decoded bytes held until the end (see the type's doc).
    held: Vec<u8>,
    hold: bool,
    finished: bool,
    /// An MPEG-DASH manifest ([`Transform::mpd`]): `mh` filters its `Representation`s.
    mpd: bool,
}

impl Transform {
    /// A transformation of a body in `coding`: URIs rewritten by `rewriter` (if any), variants
    /// above `max_height` removed (if any).
    pub fn new(
        coding: Coding,
        rewriter: Option<PlaylistRewriter>,
        max_height: Option<u32>,
    ) -> Transform {
        Transform::with_limit(coding, rewriter, max_height, MAX_DECODED)
    }

    /// As [`new`](Self::new), holding at most `limit` decoded bytes.
    pub fn with_limit(
        coding: Coding,
        rewriter: Option<PlaylistRewriter>,
        max_height: Option<u32>,
        limit: usize,
    ) -> Transform {
        let hold = coding != Coding::Identity || max_height.is_some();
        // A streamed identity body holds nothing beyond the rewriter's line buffer.
        let limit = if hold { limit } else { usize::MAX };
        Transform {
            decoder: Decoder::new(coding, limit),
            rewriter,
            max_height,
            held: Vec::new(),
            hold,
            finished: false,
            mpd: false,
        }
    }

    /// The body is an MPD, not a playlist: `max_height` removes its `Representation`s above
    /// it ([`crate::dash::filter_representations`]). MPD URIs are not rewritten: give it no
    /// rewriter.
    pub fn mpd(mut self) -> Transform {
        self.mpd = true;
        self
    }

    /// The next chunk of the origin's body; returns what can be sent now.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        if !self.hold {
            return Ok(match &mut self.rewriter {
                Some(rw) => rw.push(chunk),
                None => Bytes::copy_from_slice(chunk),
            });
        }
        let decoded = self.decoder.push(chunk)?;
        self.held.extend_from_slice(&decoded);
        if self.decoder.is_complete() && !self.finished {
            return self.finish();
        }
        Ok(Bytes::new())
    }

    /// The last chunk of the body (`chunk` may be empty): what [`push`](Self::push) returns for
    /// it followed by [`finish`](Self::finish)'s rest, in one piece.
    pub fn push_last(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        let out = self.push(chunk)?;
        if self.finished {
            return Ok(out);
        }
        let tail = self.finish()?;
        if out.is_empty() {
            return Ok(tail);
        }
        let mut all = Vec::with_capacity(out.len() + tail.len());
        all.extend_from_slice(&out);
        all.extend_from_slice(&tail);
        Ok(Bytes::from(all))
    }

    /// Whether the whole playlist has been returned.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The end of the body: the rest of the playlist, or why the body cannot be sent. Returns
    /// nothing more once finished.
    pub fn finish(&mut self) -> Result<Bytes, DecodeError> {
        if self.finished {
            return Ok(Bytes::new());
        }
        self.finished = true;
        if !self.hold {
            return Ok(match &mut self.rewriter {
                Some(rw) => rw.finish(),
                None => Bytes::new(),
            });
        }
        let tail = self.decoder.finish()?;
        self.held.extend_from_slice(&tail);
        let body = std::mem::take(&mut self.held);
        let body = match self.max_height {
            Some(h) if self.mpd => crate::dash::filter_representations(&body, h),
            Some(h) => filter_variants(&body, h),
            None => body,
        };
        Ok(Bytes::from(match &mut self.rewriter {
            Some(rw) => rw.rewrite_all(&body),
            None => body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hls::encoding::tests::encode;

    const TOK: &str = "token=v1.k1.xxx.yyy";
    const MASTER: &[u8] = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=426x240\n240p/i.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2,RESOLUTION=1920x1080\n1080p/i.m3u8\n";

    fn run(mut t: Transform, input: &[u8], cuts: &[usize]) -> Result<Vec<u8>, DecodeError> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain([input.len()]) {
            out.extend_from_slice(&t.push(&input[prev..p])?);
            prev = p;
        }
        out.extend_from_slice(&t.finish()?);
        Ok(out)
    }

    fn rewriter() -> Option<PlaylistRewriter> {
        Some(PlaylistRewriter::new(TOK.into()))
    }

    #[test]
    fn an_encoded_master_is_filtered_and_carries_the_token() {
        let want = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=426x240\n240p/i.m3u8?token=v1.k1.xxx.yyy\n";
        for coding in [Coding::Identity, Coding::Gzip, Coding::Deflate, Coding::Br] {
            let got = run(
                Transform::new(coding, rewriter(), Some(720)),
                &encode(coding, MASTER),
                &[3, 11],
            )
            .unwrap();
            assert_eq!(got, want, "{coding:?}");
            // mh alone (a path token): filtered, not rewritten
            let got = run(
                Transform::new(coding, None, Some(720)),
                &encode(coding, MASTER),
                &[],
            )
            .unwrap();
            assert_eq!(
                got, b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=426x240\n240p/i.m3u8\n",
                "{coding:?}"
            );
        }
    }

    #[test]
    fn an_encoded_body_is_held_until_proven_whole() {
        let enc = encode(Coding::Gzip, MASTER);
        let mut t = Transform::new(Coding::Gzip, rewriter(), None);
        assert!(t.push(&enc[..enc.len() - 1]).unwrap().is_empty());
        // cut before the last byte of the CRC trailer: nothing was sent, and nothing will be
        assert_eq!(t.finish().unwrap_err().reason(), "corrupt");
    }

    #[test]
    fn an_encoded_body_is_sent_when_its_stream_ends() {
        let enc = encode(Coding::Br, MASTER);
        let mut t = Transform::new(Coding::Br, rewriter(), None);
        let out = t.push(&enc).unwrap();
        assert!(t.is_finished());
        assert_eq!(
            out,
            Bytes::from(PlaylistRewriter::new(TOK.into()).rewrite_all(MASTER))
        );
        assert!(t.push(b"").unwrap().is_empty());
        assert!(t.finish().unwrap().is_empty());
        assert_eq!(t.push(b"more").unwrap_err().reason(), "corrupt");
    }

    #[test]
    fn an_identity_media_playlist_streams() {
        let mut t = Transform::new(Coding::Identity, rewriter(), None);
        assert_eq!(
            &t.push(b"#EXTM3U\nseg.ts\nse").unwrap()[..],
            b"#EXTM3U\nseg.ts?token=v1.k1.xxx.yyy\n"
        );
        assert_eq!(&t.finish().unwrap()[..], b"se?token=v1.k1.xxx.yyy");
    }

    #[test]
    fn held_bodies_are_bounded() {
        let e = run(
            Transform::with_limit(Coding::Gzip, rewriter(), None, 64),
            &encode(Coding::Gzip, MASTER),
            &[],
        );
        assert_eq!(e.unwrap_err(), DecodeError::TooLarge { limit: 64 });
        let e = run(
            Transform::with_limit(Coding::Identity, None, Some(720), 64),
            MASTER,
            &[],
        );
        assert_eq!(e.unwrap_err(), DecodeError::TooLarge { limit: 64 });
        // A streamed identity body has no limit.
        let got = run(
            Transform::with_limit(Coding::Identity, rewriter(), None, 64),
            MASTER,
            &[],
        )
        .unwrap();
        assert!(got.len() > 64);
    }

    fn playlist() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                (1u32..2000)
                    .prop_map(|h| format!("#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=1x{h}\n")),
                Just("#EXTINF:4.0,\n".to_string()),
                Just("#EXT-X-MAP:URI=\"init.mp4\"\r\n".to_string()),
                "[a-z0-9_/]{1,12}\\.(ts|m4s|m3u8)(\\?a=1)?\n",
                "[ -~]{0,30}\n",
                Just("last-line-without-newline.ts".to_string()),
            ],
            0..40,
        )
        .prop_map(|lines| lines.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        /// The property: an encoded playlist, split anywhere, is delivered exactly as
        /// the identity playlist would be.
        #[test]
        fn encoded_delivery_equals_identity_delivery(
            body in playlist(),
            coding in proptest::sample::select(vec![Coding::Gzip, Coding::Deflate, Coding::Br]),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            token in any::<bool>(),
            mh in proptest::option::of(0u32..2000),
        ) {
            prop_assume!(token || mh.is_some());
            let rw = || token.then(|| PlaylistRewriter::new(TOK.into()));
            let identity = run(Transform::new(Coding::Identity, rw(), mh), &body, &[]).unwrap();
            let encoded = run(Transform::new(coding, rw(), mh), &encode(coding, &body), &cuts).unwrap();
            prop_assert_eq!(encoded, identity);
        }
    }
}
