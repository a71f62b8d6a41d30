//! The `mh` filter of an MPD: `Representation`s above the viewer's maximum height removed.

use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One `Representation` of an `AdaptationSet`: its bytes and its height.
struct Rep {
    span: Range<usize>,
    height: Option<u32>,
}

/// Removes every `Representation` element (with what it holds) whose `height` (its own, else
/// its `AdaptationSet`'s) is above `max_height`.
///
/// - Representations without a (parsable) height are kept (audio, text).
/// - If every Representation of an `AdaptationSet` would go, the ones at its smallest height
///   are kept, as [`crate::hls::filter_variants`] keeps the lowest HLS variants: a viewer
///   entitled to less than the lowest rendition still gets a playable manifest (and its
///   segments are refused by the path rule if they are above the tier).
/// - Everything else is byte-for-byte unchanged, including the removed elements'
///   neighbourhood: a removed element's indentation and line end go with it when it stood on
///   lines of its own. A body that is not well-formed XML is returned as is.
pub fn filter_representations(mpd: &[u8], max_height: u32) -> Vec<u8> {
    let Some(cuts) = cuts(mpd, max_height) else {
        return mpd.to_vec();
    };
    let mut out = Vec::with_capacity(mpd.len());
    let mut at = 0;
    for cut in cuts {
        let cut = whole_lines(mpd, cut);
        out.extend_from_slice(&mpd[at..cut.start.max(at)]);
        at = at.max(cut.end);
    }
    out.extend_from_slice(&mpd[at..]);
    out
}

/// The byte ranges to remove, in order; `None` when the body is not well-formed.
fn cuts(mpd: &[u8], max_height: u32) -> Option<Vec<Range<usize>>> {
    let mut reader = Reader::from_reader(mpd);
    let mut cuts = Vec::new();
    // The open AdaptationSet: its height and its Representations so far.
    let mut set: Option<(Option<u32>, Vec<Rep>)> = None;
    loop {
        let before = pos(&reader)?;
        match reader.read_event().ok()? {
            Event::Start(e) if is(&e, b"AdaptationSet") => set = Some((height(&e), Vec::new())),
            Event::End(e) if e.local_name().as_ref() == b"AdaptationSet" => {
                if let Some((_, reps)) = set.take() {
                    cuts.extend(over(reps, max_height));
                }
            }
            Event::Start(e) if is(&e, b"Representation") => {
                let h = height(&e);
                let name = e.name().as_ref().to_vec();
                reader.read_to_end(quick_xml::name::QName(&name)).ok()?;
                let span = before..pos(&reader)?;
                if let Some((set_h, reps)) = &mut set {
                    reps.push(Rep {
                        span,
                        height: h.or(*set_h),
                    });
                }
            }
            Event::Empty(e) if is(&e, b"Representation") => {
                let h = height(&e);
                let span = before..pos(&reader)?;
                if let Some((set_h, reps)) = &mut set {
                    reps.push(Rep {
                        span,
                        height: h.or(*set_h),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    cuts.sort_by_key(|c| c.start);
    Some(cuts)
}

fn pos(reader: &Reader<&[u8]>) -> Option<usize> {
    usize::try_from(reader.buffer_position()).ok()
}

fn is(e: &BytesStart<'_>, name: &[u8]) -> bool {
    e.local_name().as_ref() == name
}

fn height(e: &BytesStart<'_>) -> Option<u32> {
    let a = e.try_get_attribute(b"height").ok()??;
    std::str::from_utf8(&a.value).ok()?.trim().parse().ok()
}

/// The spans of a set's Representations to remove.
fn over(reps: Vec<Rep>, max_height: u32) -> Vec<Range<usize>> {
    let above = |r: &Rep| r.height.is_some_and(|h| h > max_height);
    if reps.iter().all(above) {
        let lowest = reps.iter().filter_map(|r| r.height).min();
        return reps
            .into_iter()
            .filter(|r| r.height != lowest)
            .map(|r| r.span)
            .collect();
    }
    reps.into_iter().filter(above).map(|r| r.span).collect()
}

/// `cut` widened to its whole lines when nothing but whitespace shares them.
fn whole_lines(doc: &[u8], cut: Range<usize>) -> Range<usize> {
    let line_start = doc[..cut.start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let lead_blank = doc[line_start..cut.start]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t'));
    let line_end = doc[cut.end..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| cut.end + i + 1);
    let trail_blank = line_end.is_some_and(|e| {
        doc[cut.end..e]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    });
    match (lead_blank, trail_blank, line_end) {
        (true, true, Some(end)) => line_start..end,
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MPD: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT20S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" maxHeight="480">
      <SegmentTemplate timescale="12800" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg_$Number%03d$.m4s" startNumber="1" duration="51200"/>
      <Representation id="240p" bandwidth="120000" width="426" height="240" codecs="avc1.42c015"/>
      <Representation id="360p" bandwidth="200000" width="640" height="360" codecs="avc1.42c01e">
        <!-- a child -->
        <BaseURL>360p/</BaseURL>
      </Representation>
      <Representation id="480p" bandwidth="280000" width="854" height="480" codecs="avc1.42c01e"/>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio">
      <Representation id="audio" bandwidth="48000" codecs="mp4a.40.2"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

    fn ids(mpd: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(mpd).unwrap();
        text.match_indices("<Representation id=\"")
            .map(|(i, m)| {
                let rest = &text[i + m.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    }

    #[test]
    fn representations_above_the_tier_go_and_the_rest_is_unchanged() {
        let out = filter_representations(MPD.as_bytes(), 360);
        assert_eq!(ids(&out), ["240p", "360p", "audio"]);
        let want = MPD.replace(
            "      <Representation id=\"480p\" bandwidth=\"280000\" width=\"854\" height=\"480\" codecs=\"avc1.42c01e\"/>\n",
            "",
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);

        let out = filter_representations(MPD.as_bytes(), 240);
        assert_eq!(ids(&out), ["240p", "audio"]);
        assert!(
            !String::from_utf8_lossy(&out).contains("a child"),
            "children go too"
        );
        assert_eq!(filter_representations(MPD.as_bytes(), 1080), MPD.as_bytes());
    }

    #[test]
    fn the_lowest_stays_when_all_would_go() {
        let out = filter_representations(MPD.as_bytes(), 144);
        assert_eq!(ids(&out), ["240p", "audio"]);
    }

    #[test]
    fn the_set_height_counts_and_one_line_documents_work() {
        let mpd = br#"<MPD><Period><AdaptationSet height="720"><Representation id="a"/><Representation id="b" height="360"/></AdaptationSet></Period></MPD>"#;
        let out = filter_representations(mpd, 480);
        assert_eq!(
            out,
            br#"<MPD><Period><AdaptationSet height="720"><Representation id="b" height="360"/></AdaptationSet></Period></MPD>"#
        );
        let prefixed = br#"<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011"><mpd:Period><mpd:AdaptationSet><mpd:Representation id="a" height="1080"></mpd:Representation><mpd:Representation id="b" height="240"/></mpd:AdaptationSet></mpd:Period></mpd:MPD>"#;
        let out = String::from_utf8(filter_representations(prefixed, 480)).unwrap();
        assert!(
            !out.contains("id=\"a\"") && out.contains("id=\"b\""),
            "{out}"
        );
    }

    #[test]
    fn not_xml_is_returned_as_is() {
        for body in [&b"<MPD><Period>"[..], b"#EXTM3U\n", b"<a></b>", b""] {
            assert_eq!(filter_representations(body, 240), body);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1_000, failure_persistence: None, ..Default::default() })]

        /// Any cut of the sample and any tier: no panic, and the output is never longer.
        #[test]
        fn never_panics(cut in 0usize..1200, h in 0u32..2000) {
            let body = &MPD.as_bytes()[..cut.min(MPD.len())];
            let out = filter_representations(body, h);
            proptest::prop_assert!(out.len() <= body.len());
        }
    }
}
