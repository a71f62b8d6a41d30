//! Zero-downtime binary upgrade: a new `edge` process takes the listening sockets and then the
//! cache folder over from the running one (README, "Operating it" → "Upgrade").
//!
//! The sequence, with `edge serve --upgrade` as the new process:
//!
//! 1. The new process finds the running edge (the pid in the cache folder's `LOCK`,
//!    [`crate::cache::folder`]) and starts Pingora's bootstrap, which binds the upgrade socket
//!    (`[server] upgrade_socket`) and waits there for the listeners. As soon as the socket
//!    exists, [`ask_running_edge`] sends the running edge `QUIT`.
//! 2. The old process reads `QUIT` as an upgrade only while a new process waits on the socket
//!    ([`Handoff::waiting`]; otherwise `QUIT` stays a graceful stop). Pingora sends every
//!    listening socket (player HTTP/1 + front, HTTPS, admin, demo origin) over it, the old
//!    process keeps accepting for 5 s, then stops accepting and drains.
//! 3. [`CacheRelease`]: as soon as the old process's player connections are closed (idle
//!    keep-alive connections close at once, started requests finish with `Connection: close`;
//!    at most `grace_period`), it flushes the memory tier to disk, closes foyer and releases
//!    the folder's lock — without waiting out Pingora's fixed grace period.
//! 4. The new process waits for the lock ([`lock_wait`]), opens the disk tier warm, and only
//!    then starts its services: they accept on the sockets it received.
//!
//! Sockets handed over rather than re-bound with `SO_REUSEPORT`: one socket keeps one accept
//! queue, so a connection that arrives while neither process accepts (the old one has stopped,
//! the new one is opening the cache) waits in the queue and is served by the new process. With
//! `SO_REUSEPORT` each process has a queue of its own and the kernel resets the connections
//! still queued on the old one when it closes its socket.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::cache::Cache;
use crate::state::EdgeState;

/// How long Pingora's old process keeps accepting after it sent its listeners (its
/// `CLOSE_TIMEOUT`): the new process waits at least this long for the cache folder.
const OLD_KEEPS_ACCEPTING: Duration = Duration::from_secs(5);
/// What flushing the memory tier and closing foyer may take, on top of the old process's
/// shutdown timings.
const FLUSH_ALLOWANCE: Duration = Duration::from_secs(60);
/// How long the new process waits for Pingora's bootstrap to bind the upgrade socket.
const SOCKET_WAIT: Duration = Duration::from_secs(5);

/// Why an upgrade cannot start.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("--upgrade: no running edge holds cache.dir {0} (start without --upgrade)")]
    NoRunningEdge(String),
    #[error("server.upgrade_socket: folder {0} does not exist")]
    NoSocketFolder(String),
}

/// The old process's view of a hand-over: where a new process would wait, whether one is
/// under way, and the cache close both the hand-over and the final shutdown may ask for.
pub struct Handoff {
    pub socket: PathBuf,
    upgrading: AtomicBool,
    /// `true` once the cache is closed; held while closing, so a second closer waits.
    closed: tokio::sync::Mutex<bool>,
}

impl Handoff {
    pub fn new(socket: PathBuf) -> Handoff {
        Handoff {
            socket,
            upgrading: AtomicBool::new(false),
            closed: tokio::sync::Mutex::new(false),
        }
    }

    /// Whether a new process waits for the listeners: Pingora's bootstrap binds the socket
    /// while it waits and removes it once it has them (or gives up).
    pub fn waiting(&self) -> bool {
        is_socket(&self.socket)
    }

    /// Mark the shutdown that follows as a hand-over to a new process.
    pub fn begin(&self) {
        self.upgrading.store(true, Ordering::Relaxed);
    }

    pub fn upgrading(&self) -> bool {
        self.upgrading.load(Ordering::Relaxed)
    }

    /// Flush the memory tier, close the cache and release the folder, once: whoever comes
    /// second waits for the first to finish.
    pub async fn close_cache(&self, cache: &Cache) {
        let mut closed = self.closed.lock().await;
        if *closed {
            return;
        }
        if let Err(e) = cache.close().await {
            tracing::warn!(error = %e, "cache close failed");
        }
        cache.unlock_dir();
        *closed = true;
    }
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// How long the new process waits for the old one to release the cache folder: the old one's
/// accepting window, its grace period and shutdown timeout (read from this config: an upgrade
/// normally keeps them), and time to flush.
pub fn lock_wait(server: &crate::config::ServerConfig) -> Duration {
    OLD_KEEPS_ACCEPTING + server.grace_period + server.shutdown_timeout + FLUSH_ALLOWANCE
}

/// The new process's first step: find the running edge on `cache_dir`, then (on a thread, as
/// Pingora's bootstrap blocks this one) send it `QUIT` once `socket` exists. A socket file
/// left behind by a process that died is removed first, so its presence means ours.
pub fn ask_running_edge(
    cache_dir: &Path,
    socket: &Path,
) -> Result<std::thread::JoinHandle<()>, UpgradeError> {
    let pid = crate::cache::folder::holder(cache_dir)
        .ok_or_else(|| UpgradeError::NoRunningEdge(cache_dir.display().to_string()))?;
    let folder = socket.parent().unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(UpgradeError::NoSocketFolder(folder.display().to_string()));
    }
    if is_socket(socket) {
        let _ = std::fs::remove_file(socket);
    }
    let socket = socket.to_path_buf();
    Ok(std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + SOCKET_WAIT;
        while !is_socket(&socket) {
            if std::time::Instant::now() > deadline {
                tracing::error!(socket = %socket.display(), "the upgrade socket did not appear; not signalling the running edge");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::info!(pid, socket = %socket.display(), "upgrade: asking the running edge for its listeners (QUIT)");
        let sent = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .map(|p| rustix::process::kill_process(p, rustix::process::Signal::Quit));
        match sent {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::error!(pid, error = %e, "cannot signal the running edge"),
            None => tracing::error!(pid, "not a process id"),
        }
    }))
}

/// The old process's side of step 3: once an upgrade's shutdown has started, wait until the
/// player connections are closed (at most `grace_period`), then close the cache and release
/// the folder for the new process.
pub struct CacheRelease {
    pub state: &'static EdgeState,
    pub handoff: &'static Handoff,
    /// The cache's own runtime: the close runs there, so it finishes even when Pingora's
    /// runtimes stop first.
    pub cache_rt: tokio::runtime::Handle,
}

#[async_trait]
impl BackgroundService for CacheRelease {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.wait_for(|&stop| stop).await.is_err() || !self.handoff.upgrading() {
            return;
        }
        let grace = self.state.live().config.server.grace_period;
        let connections = &self.state.metrics.connections;
        let open = || {
            use crate::metrics::connections::Listener;
            connections.open(Listener::Http) + connections.open(Listener::Https)
        };
        let deadline = tokio::time::Instant::now() + grace;
        // Bounded by the grace period, in 10 ms steps.
        while open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(
            open = open(),
            "upgrade: player connections drained; flushing the cache and releasing its folder"
        );
        let (handoff, cache) = (self.handoff, self.state.cache);
        let closing = self
            .cache_rt
            .spawn(async move { handoff.close_cache(cache).await });
        let _ = closing.await;
        tracing::info!("upgrade: the cache folder is released to the new process");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_socket_means_a_waiting_process() {
        let dir = tempfile::tempdir().unwrap();
        let handoff = Handoff::new(dir.path().join("upgrade.sock"));
        assert!(!handoff.waiting(), "no file");
        std::fs::write(&handoff.socket, b"").unwrap();
        assert!(!handoff.waiting(), "a plain file");
        std::fs::remove_file(&handoff.socket).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(&handoff.socket).unwrap();
        assert!(handoff.waiting(), "a bound socket");
    }

    #[test]
    fn the_new_process_needs_a_running_edge() {
        let dir = tempfile::tempdir().unwrap();
        let err = ask_running_edge(dir.path(), &dir.path().join("upgrade.sock")).unwrap_err();
        assert!(matches!(err, UpgradeError::NoRunningEdge(_)), "{err}");
    }
}
