//! Noticing changed certificate files, and how reloading is wired.
//!
//! [`SniResolver::reload`] re-reads and re-validates every configured file and swaps the set
//! atomically; when anything is wrong it returns the error and the old certificates stay in
//! service. Two triggers are meant to call it (the server wires them):
//!
//! - **SIGHUP** (explicit; what `systemctl reload` sends):
//!
//!   ```text
//!   let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
//!   while hup.recv().await.is_some() {
//!       match resolver.reload(&specs) {
//!           Ok(()) => tracing::info!(names = ?resolver.names(), "TLS certificates reloaded"),
//!           Err(e) => tracing::error!("TLS reload failed, keeping the old certificates: {e}"),
//!       }
//!   }
//!   ```
//!
//! - **Polling** (for tools that rewrite files, e.g. an ACME client or `edge certs`): a
//!   background task (a Pingora `background_service`, or a tokio task) calls
//!   [`Poller::poll`] every ~30 s; it reloads only when [`fingerprint`] changed, and retries a
//!   failed version only after the files change again (no log line every tick).
//!
//!   ```text
//!   let mut poller = Poller::new(specs.clone());
//!   let mut tick = tokio::time::interval(Duration::from_secs(30));
//!   loop {
//!       tick.tick().await;
//!       match poller.poll(&resolver) {
//!           PollOutcome::Unchanged => {}
//!           PollOutcome::Reloaded => tracing::info!("TLS certificates reloaded"),
//!           PollOutcome::Failed(e) => tracing::error!("TLS reload failed, keeping the old certificates: {e}"),
//!       }
//!   }
//!   ```
//!
//! Reloading reads a few KB and parses them: cheap enough for a runtime thread, though
//! `spawn_blocking` is fine too. Writers should replace files by rename (as `edge certs`
//! does); if a key and its certificate change between two polls one at a time, the first
//! reload fails (key mismatch, old set kept) and the next poll picks up the pair.

use std::hash::{Hash, Hasher};
use std::path::Path;

use super::store::{CertSpec, SniResolver};
use super::TlsError;
use crate::stamp::FileStamp;

/// A hash of every cert and key file's (path, length, mtime, inode). A missing or unreadable
/// file hashes as such, so its disappearance (and reappearance) counts as a change.
pub fn fingerprint(specs: &[CertSpec]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for spec in specs {
        stamp(&spec.cert).hash(&mut hasher);
        stamp(&spec.key).hash(&mut hasher);
    }
    hasher.finish()
}

/// The path and its [`FileStamp`], or the path and `None` while the file is missing.
fn stamp(path: &Path) -> (&Path, Option<FileStamp>) {
    (path, FileStamp::of(path).ok())
}

/// What one [`Poller::poll`] did.
#[derive(Debug)]
pub enum PollOutcome {
    Unchanged,
    Reloaded,
    /// The files changed but do not load; the old certificates stay in service.
    Failed(TlsError),
}

/// Reloads a resolver when its files change. Start it right after the resolver was loaded
/// from the same specs.
#[derive(Debug, Clone)]
pub struct Poller {
    specs: Vec<CertSpec>,
    last: u64,
}

impl Poller {
    pub fn new(specs: Vec<CertSpec>) -> Self {
        let last = fingerprint(&specs);
        Poller { specs, last }
    }

    pub fn specs(&self) -> &[CertSpec] {
        &self.specs
    }

    /// Reloads `resolver` if the files changed since the last poll (or since `new`).
    pub fn poll(&mut self, resolver: &SniResolver) -> PollOutcome {
        let now = fingerprint(&self.specs);
        if now == self.last {
            return PollOutcome::Unchanged;
        }
        self.last = now;
        match resolver.reload(&self.specs) {
            Ok(()) => PollOutcome::Reloaded,
            Err(e) => PollOutcome::Failed(e),
        }
    }
}
