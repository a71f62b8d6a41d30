//! MPEG-DASH manifests (MPDs) for the edge (pure functions, no I/O).
//!
//! - [`is_mpd`]: decides from `Content-Type` and path whether a response is an MPD.
//! - [`Refresh`] / [`refresh`]: what an MPD says about its own updates (`type`,
//!   `minimumUpdatePeriod`), for the TTL policy ([`crate::cache::policy::playlist_ttl`]): a
//!   static MPD is kept like a VOD playlist, a dynamic one for a fraction of its
//!   `minimumUpdatePeriod`.
//! - [`filter_representations`]: drops the `Representation`s above a maximum height (the
//!   token's `mh` claim), the rest of the document byte for byte as the origin sent it.
//!
//! `mh` on segments: a DASH segment is refused above the viewer's tier by the same path rule
//! as an HLS one ([`crate::hls::rendition_height`]): the rendition's height named in its path
//! (`$RepresentationID$` = `480p` in `480p/seg_$Number$.m4s`).

mod duration;
mod filter;

pub use duration::iso8601;
pub use filter::filter_representations;

use std::time::Duration;

use quick_xml::events::Event;

/// Whether a response is an MPD: `Content-Type` (parameters ignored, case-insensitive)
/// `application/dash+xml`, or the path (query ignored) ends in `.mpd` (case-insensitive).
pub fn is_mpd(content_type: Option<&str>, path: &str) -> bool {
    if let Some(ct) = content_type {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("application/dash+xml") {
            return true;
        }
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let ext = ".mpd";
    path.len() >= ext.len()
        && path
            .get(path.len() - ext.len()..)
            .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// How an MPD is updated, from its root element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refresh {
    /// `type="static"` (the default), or dynamic without `minimumUpdatePeriod` (ISO/IEC
    /// 23009-1 §5.4: such an MPD does not change): kept like a VOD playlist.
    Fixed,
    /// `type="dynamic"` with `minimumUpdatePeriod`: may change that often.
    Every(Duration),
}

/// The [`Refresh`] of a body, `None` when it is not an MPD (no `MPD` root element) or its
/// `minimumUpdatePeriod` is not an ISO 8601 duration.
pub fn refresh(body: &[u8]) -> Option<Refresh> {
    let mut reader = quick_xml::Reader::from_reader(body);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                if e.local_name().as_ref() != b"MPD" {
                    return None;
                }
                let attr = |name: &[u8]| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned())
                };
                let dynamic = attr(b"type").is_some_and(|t| t.trim_ascii() == b"dynamic");
                if !dynamic {
                    return Some(Refresh::Fixed);
                }
                return match attr(b"minimumUpdatePeriod") {
                    None => Some(Refresh::Fixed),
                    Some(p) => std::str::from_utf8(&p)
                        .ok()
                        .and_then(iso8601)
                        .map(Refresh::Every),
                };
            }
            Event::Eof => return None,
            // The XML declaration, comments, processing instructions, whitespace.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpds_by_type_or_path() {
        assert!(is_mpd(Some("application/dash+xml"), "/x"));
        assert!(is_mpd(Some("Application/DASH+XML; charset=utf-8"), "/x"));
        assert!(is_mpd(None, "/v/manifest.MPD"));
        assert!(is_mpd(Some("application/octet-stream"), "/v/manifest.mpd"));
        assert!(!is_mpd(Some("application/xml"), "/v/manifest.xml"));
        assert!(!is_mpd(None, "/v/mpd"));
    }

    #[test]
    fn refresh_from_the_root() {
        let stat = br#"<?xml version="1.0"?><!-- c --><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT20S"><Period/></MPD>"#;
        assert_eq!(refresh(stat), Some(Refresh::Fixed));
        let dynamic = br#"<MPD type="dynamic" minimumUpdatePeriod="PT2S"><Period/></MPD>"#;
        assert_eq!(
            refresh(dynamic),
            Some(Refresh::Every(Duration::from_secs(2)))
        );
        let no_updates = br#"<MPD type="dynamic"><Period/></MPD>"#;
        assert_eq!(refresh(no_updates), Some(Refresh::Fixed));
        let default_static = br#"<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011"/>"#;
        assert_eq!(refresh(default_static), Some(Refresh::Fixed));
        assert_eq!(
            refresh(br#"<MPD type="dynamic" minimumUpdatePeriod="2s"/>"#),
            None
        );
        assert_eq!(refresh(b"#EXTM3U\n"), None);
        assert_eq!(refresh(b"<html></html>"), None);
        assert_eq!(refresh(b""), None);
    }
}
