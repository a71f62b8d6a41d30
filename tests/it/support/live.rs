//! Live HLS sources for tests.
//!
//! - [`Ffmpeg`]: ffmpeg encoding a test pattern live (`-re`) into HLS (MPEG-TS or fMP4) in a
//!   temp folder, 1 s segments, a 6-segment window, old segments deleted; serve the folder
//!   with [`super::Origin::serve_dir`].
//! - [`LlOrigin`]: a Low-Latency HLS origin (RFC 8216bis) producing partial segments on a
//!   timer: `#EXT-X-PART`, `#EXT-X-PRELOAD-HINT`, `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES`,
//!   `#EXT-X-RENDITION-REPORT`; it holds `_HLS_msn`/`_HLS_part` requests until the playlist
//!   has that part (400 for one more than two segments ahead, 503 after three target
//!   durations), answers `_HLS_skip=YES` with a delta update, and streams a part (or segment)
//!   still being produced as it is produced. Every request target is recorded.
//!
//! Parts are deterministic bytes ([`LlOrigin::part_bytes`]), so a test can check every byte.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// ffmpeg writing a live HLS stream into a temp folder until dropped.
pub struct Ffmpeg {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Ffmpeg {
    /// Start encoding; `fmp4` picks CMAF segments (`init.mp4` + `.m4s`) over MPEG-TS. The
    /// playlist is `live.m3u8` in [`Self::dir`].
    pub fn start(fmp4: bool) -> Ffmpeg {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"])
            .args(["-c:a", "aac", "-b:a", "64k"])
            .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
            .args(["-hls_flags", "delete_segments+temp_file"]);
        if fmp4 {
            cmd.args(["-hls_segment_type", "fmp4"]);
        }
        cmd.arg(dir.path().join("live.m3u8"))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd
            .spawn()
            .expect("ffmpeg must be installed (bash .ci/deps test)");
        Ffmpeg { child, dir }
    }

    pub fn playlist(&self) -> PathBuf {
        self.dir.path().join("live.m3u8")
    }

    /// Wait (at most 20 s) until the playlist lists `n` segments.
    pub async fn wait_segments(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(self.playlist()) {
                if text.lines().filter(|l| l.starts_with("#EXTINF")).count() >= n {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ffmpeg wrote no live playlist with {n} segments in 20 s");
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `#EXT-X-MEDIA-SEQUENCE` of a playlist.
pub fn media_sequence(playlist: &str) -> Option<u64> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The URI lines of a playlist.
pub fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Content type by file name, for a folder served by the test origin.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("mp4") | Some("m4s") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The shape of an [`LlOrigin`] stream.
#[derive(Clone, Copy, Debug)]
pub struct LlShape {
    /// Part duration (`PART-TARGET`).
    pub part: Duration,
    /// Parts per segment (the segment duration is `part × parts`, `TARGETDURATION` rounds it
    /// up to whole seconds).
    pub parts: u64,
    /// Bytes per part.
    pub part_len: usize,
    /// Complete segments in the playlist window.
    pub window: u64,
}

impl Default for LlShape {
    fn default() -> Self {
        LlShape {
            part: Duration::from_millis(250),
            parts: 4,
            part_len: 16 * 1024,
            window: 6,
        }
    }
}

struct LlShared {
    start: Instant,
    shape: LlShape,
    seen: Mutex<Vec<String>>,
}

/// A running Low-Latency HLS origin; its playlists are `/ll/p.m3u8` and `/ll/alt.m3u8` (the
/// same timeline, each reporting the other), its parts `/ll/s<msn>.<part>.mp4`, its segments
/// `/ll/s<msn>.mp4`. Media sequence numbers start at 0 when it starts.
pub struct LlOrigin {
    pub addr: SocketAddr,
    shared: Arc<LlShared>,
    task: tokio::task::JoinHandle<()>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for LlOrigin {
    fn drop(&mut self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl LlOrigin {
    pub async fn start(shape: LlShape) -> LlOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(LlShared {
            start: Instant::now(),
            shape,
            seen: Mutex::new(Vec::new()),
        });
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (s, c) = (shared.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = tokio::spawn(serve(stream, s.clone()));
                c.lock().unwrap().push(conn.abort_handle());
            }
        });
        LlOrigin {
            addr,
            shared,
            task,
            conns,
        }
    }

    pub fn shape(&self) -> LlShape {
        self.shared.shape
    }

    /// The bytes of part `part` of segment `msn`.
    pub fn part_bytes(&self, msn: u64, part: u64) -> Vec<u8> {
        part_bytes(&self.shared.shape, msn, part)
    }

    /// Complete parts so far (the part being produced is number `produced()`).
    pub fn produced(&self) -> u64 {
        self.shared.produced()
    }

    /// When part `g` (counted from the start) is complete.
    pub fn complete_at(&self, g: u64) -> Instant {
        self.shared.start + self.shared.shape.part * (g + 1) as u32
    }

    /// Requests whose target is exactly `target` (path and query as sent).
    pub fn hits(&self, target: &str) -> usize {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == target)
            .count()
    }

    /// Requests for `path`, whatever their query.
    pub fn path_hits(&self, path: &str) -> usize {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.split('?').next() == Some(path))
            .count()
    }

    pub fn requests(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().clone()
    }
}

fn part_bytes(shape: &LlShape, msn: u64, part: u64) -> Vec<u8> {
    super::bytes_of(shape.part_len, msn * shape.parts + part + 1)
}

impl LlShared {
    fn produced(&self) -> u64 {
        (self.start.elapsed().as_nanos() / self.shape.part.as_nanos()) as u64
    }

    fn complete_at(&self, g: u64) -> Instant {
        self.start + self.shape.part * (g + 1) as u32
    }

    fn target_duration(&self) -> u64 {
        (self.shape.part * self.shape.parts as u32)
            .as_secs_f64()
            .ceil() as u64
    }

    /// The media playlist when `n` parts are complete; `skip`: a delta update.
    fn playlist(&self, name: &str, n: u64, skip: bool) -> String {
        let sh = &self.shape;
        let seg = (sh.part * sh.parts as u32).as_secs_f64();
        let part = sh.part.as_secs_f64();
        let (current, done) = (n / sh.parts, n % sh.parts);
        let first = current.saturating_sub(sh.window);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
             #EXT-X-PART-INF:PART-TARGET={part:.3}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},CAN-SKIP-UNTIL={:.1}\n\
             #EXT-X-MEDIA-SEQUENCE:{first}\n",
            self.target_duration(),
            part * 3.0,
            seg * 3.0,
        );
        // A delta update leaves out the segments older than CAN-SKIP-UNTIL (3 segments).
        let skipped = if skip {
            (current - first).saturating_sub(3)
        } else {
            0
        };
        if skipped > 0 {
            out.push_str(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n"));
        }
        for msn in first + skipped..current {
            // Parts are listed for the last two complete segments, as RFC 8216bis asks.
            if msn + 2 >= current {
                for p in 0..sh.parts {
                    out.push_str(&part_line(msn, p, part));
                }
            }
            out.push_str(&format!("#EXTINF:{seg:.3},\ns{msn}.mp4\n"));
        }
        for p in 0..done {
            out.push_str(&part_line(current, p, part));
        }
        out.push_str(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s{current}.{done}.mp4\"\n"
        ));
        let other = if name == "p.m3u8" {
            "alt.m3u8"
        } else {
            "p.m3u8"
        };
        let last_part = if done == 0 {
            format!(
                "LAST-MSN={},LAST-PART={}",
                current.saturating_sub(1),
                sh.parts - 1
            )
        } else {
            format!("LAST-MSN={current},LAST-PART={}", done - 1)
        };
        out.push_str(&format!(
            "#EXT-X-RENDITION-REPORT:URI=\"{other}\",{last_part}\n"
        ));
        out
    }
}

fn part_line(msn: u64, p: u64, dur: f64) -> String {
    let independent = if p == 0 { ",INDEPENDENT=YES" } else { "" };
    format!("#EXT-X-PART:DURATION={dur:.3},URI=\"s{msn}.{p}.mp4\"{independent}\n")
}

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

/// What a request for a path under `/ll/` is.
enum Asked {
    Playlist(String),
    Part(u64, u64),
    Segment(u64),
    Unknown,
}

fn asked(path: &str) -> Asked {
    let Some(name) = path.strip_prefix("/ll/") else {
        return Asked::Unknown;
    };
    if name == "p.m3u8" || name == "alt.m3u8" {
        return Asked::Playlist(name.to_string());
    }
    let Some(stem) = name.strip_prefix('s').and_then(|s| s.strip_suffix(".mp4")) else {
        return Asked::Unknown;
    };
    match stem.split_once('.') {
        Some((m, p)) => match (m.parse(), p.parse()) {
            (Ok(m), Ok(p)) => Asked::Part(m, p),
            _ => Asked::Unknown,
        },
        None => stem.parse().map_or(Asked::Unknown, Asked::Segment),
    }
}

async fn serve(stream: tokio::net::TcpStream, shared: Arc<LlShared>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let method = line.split_whitespace().next().unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            if h.trim_end().is_empty() {
                break;
            }
        }
        shared.seen.lock().unwrap().push(target.clone());
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let ok = answer(
            reader.get_mut(),
            &shared,
            asked(path),
            query,
            method == "HEAD",
        )
        .await;
        if ok.is_err() {
            return;
        }
    }
}

async fn head(
    w: &mut tokio::net::TcpStream,
    status: u16,
    ctype: &str,
    len: usize,
    extra: &str,
) -> std::io::Result<()> {
    let h = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len}\r\n{extra}\r\n"
    );
    w.write_all(h.as_bytes()).await
}

async fn answer(
    w: &mut tokio::net::TcpStream,
    sh: &LlShared,
    what: Asked,
    query: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let parts = sh.shape.parts;
    match what {
        Asked::Playlist(name) => {
            let msn = param(query, "_HLS_msn").and_then(|v| v.parse::<u64>().ok());
            let part = param(query, "_HLS_part").and_then(|v| v.parse::<u64>().ok());
            if part.is_some() && msn.is_none() {
                return head(w, 400, "text/plain", 0, "").await;
            }
            if let Some(m) = msn {
                // The part count the playlist must reach.
                let need = match part {
                    Some(p) if p < parts => m * parts + p + 1,
                    Some(_) => (m + 1) * parts + 1,
                    None => (m + 1) * parts,
                };
                if m > sh.produced() / parts + 2 {
                    return head(w, 400, "text/plain", 0, "").await;
                }
                let limit = Instant::now() + Duration::from_secs(3 * sh.target_duration());
                let at = sh.complete_at(need - 1);
                if at > limit {
                    tokio::time::sleep_until(limit.into()).await;
                    return head(w, 503, "text/plain", 0, "").await;
                }
                tokio::time::sleep_until(at.into()).await;
            }
            let skip = param(query, "_HLS_skip").is_some_and(|v| v == "YES" || v == "v2");
            let body = sh.playlist(&name, sh.produced(), skip);
            head(w, 200, "application/vnd.apple.mpegurl", body.len(), "").await?;
            if !head_only {
                w.write_all(body.as_bytes()).await?;
            }
            Ok(())
        }
        Asked::Part(m, p) if p < parts => {
            let g = m * parts + p;
            stream_parts(w, sh, g, g, head_only).await
        }
        Asked::Segment(m) => stream_parts(w, sh, m * parts, (m + 1) * parts - 1, head_only).await,
        _ => head(w, 404, "text/plain", 0, "").await,
    }
}

/// Parts `from..=to` (counted from the start) as one body: complete ones at once, the one
/// being produced as it is produced (in eight pieces over its production), anything later
/// than the part being produced is a 404.
async fn stream_parts(
    w: &mut tokio::net::TcpStream,
    sh: &LlShared,
    from: u64,
    to: u64,
    head_only: bool,
) -> std::io::Result<()> {
    if from > sh.produced() {
        return head(w, 404, "text/plain", 0, "").await;
    }
    let len = sh.shape.part_len * (to - from + 1) as usize;
    head(w, 200, "video/mp4", len, "cache-control: max-age=60\r\n").await?;
    if head_only {
        return Ok(());
    }
    for g in from..=to {
        let bytes = part_bytes(&sh.shape, g / sh.shape.parts, g % sh.shape.parts);
        let pieces = 8;
        let piece = bytes.len().div_ceil(pieces);
        let begins = sh.complete_at(g) - sh.shape.part;
        for (i, chunk) in bytes.chunks(piece).enumerate() {
            let ready = begins + sh.shape.part * (i as u32 + 1) / pieces as u32;
            tokio::time::sleep_until(ready.into()).await;
            w.write_all(chunk).await?;
            w.flush().await?;
        }
    }
    Ok(())
}
