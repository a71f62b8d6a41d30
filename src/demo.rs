//! The embedded demo origin: serves the sample HLS title from `[demo] media` so the shipped
//! `edge.toml` plays with nothing else running. It is a plain static file server for a small
//! folder, not a production origin.

use std::path::PathBuf;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

pub struct DemoOrigin {
    pub root: PathBuf,
}

/// Content type by file extension, for the media types HLS and DASH use.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "aac" => "audio/aac",
        "vtt" => "text/vtt",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let mut r = Response::new(body.as_bytes().to_vec());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    r
}

#[async_trait]
impl ServeHttp for DemoOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let head = req.method == http::Method::HEAD;
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let Ok(path) = crate::path::normalize(req.uri.path()) else {
            return plain(StatusCode::BAD_REQUEST, "bad path\n");
        };
        let file = self.root.join(path.trim_start_matches('/'));
        match tokio::fs::read(&file).await {
            Ok(body) => {
                let len = body.len();
                let mut r = Response::new(if head { Vec::new() } else { body });
                let h = r.headers_mut();
                h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
                if let Ok(v) = content_type(&path).parse() {
                    h.insert(http::header::CONTENT_TYPE, v);
                }
                r
            }
            Err(_) => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_types() {
        assert_eq!(
            content_type("/a/master.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type("/a/seg_000.ts"), "video/mp2t");
        assert_eq!(content_type("/a/init.mp4"), "video/mp4");
        assert_eq!(content_type("/a/seg_000.m4s"), "video/iso.segment");
        assert_eq!(content_type("/a/x"), "application/octet-stream");
    }
}
