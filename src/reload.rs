//! Reloading the configuration while serving (`SIGHUP`, `POST /admin/reload`).
//!
//! A reload re-reads the file the edge started from, validates it completely (parse and the
//! start-up I/O: key files, CA files, origin names — [`Config::load`], the same path as
//! `edge check`), then swaps the new settings in as one [`Live`] snapshot: requests already
//! running finish on the snapshot they started with, the next ones take the new one. Nothing
//! is closed: connections, the cache (both tiers), certificates and the GeoIP database stay.
//!
//! A setting the running process cannot change (listen addresses, threads, the cache's sizes
//! and folder, ...: [`plan`] lists them) is never half-applied: the running value stays, and
//! the reload reports the key as "needs restart". A file that does not load changes nothing
//! and the error names the file, the key and the reason, as `edge check` prints it.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use crate::config::{Config, ConfigError};
use crate::state::{EdgeState, Live};

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// The settings that changed and are now in service (key paths).
    pub applied: Vec<&'static str>,
    /// The settings that changed in the file but keep their running value until a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the edge runs on the built-in edge.toml: there is no file to re-read (start it with --config)")]
    NoFile,
    /// The same line `edge check` prints: `file: key: reason`.
    #[error("{file}: {error}")]
    Config { file: String, error: ConfigError },
}

/// Whether two values differ. Config structs compare by their `Debug` form: it holds every
/// setting (key material is redacted, so a new secret under the same key id is applied but
/// not listed as a change).
fn differs<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// Each setting read only when the process starts, by its key path: the listeners, the
/// runtimes, the connection limits (built into the front), the cache's storage (`max_object`
/// sets the disk block size, `max_ttl` the purge log's retention), the certificate list and
/// the GeoIP database (their files reload on their own), and the control plane and demo
/// origin (started once; the control plane signs with the token keys it started with).
/// `new` gets the running value of each that differs; returns their keys.
fn pin_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    macro_rules! pin {
        ($key:literal, $($field:tt).+) => {
            if differs(&running.$($field).+, &new.$($field).+) {
                new.$($field).+ = running.$($field).+.clone();
                keys.push($key);
            }
        };
    }
    pin!("server.http", server.http);
    pin!("server.https", server.https);
    pin!("server.admin", server.admin);
    pin!("server.threads", server.threads);
    pin!("server.grace_period", server.grace_period);
    pin!("server.shutdown_timeout", server.shutdown_timeout);
    pin!("server.upgrade_socket", server.upgrade_socket);
    pin!("server.public_url", server.public_url);
    pin!("server.header_timeout", server.limits.header_timeout);
    pin!("server.send_timeout", server.limits.send_timeout);
    pin!("server.max_connections", server.limits.max_connections);
    pin!(
        "server.max_connections_per_ip",
        server.limits.max_connections_per_ip
    );
    pin!("cache.memory", cache.memory);
    pin!("cache.disk", cache.disk);
    pin!("cache.dir", cache.dir);
    pin!("cache.max_object", cache.max_object);
    pin!("cache.lock_timeout", cache.lock_timeout);
    pin!("cache.disk_admission", cache.disk_admission);
    pin!("cache.max_ttl", cache.max_ttl);
    // The fill budget is made when the cache opens; HTTP/2 announces max_head per connection
    // from the settings the front started with.
    pin!("cache.fill_memory", cache.fill_memory);
    pin!("server.max_head", server.head.max_head);
    pin!("tls", tls);
    pin!("geo.database", geo.database);
    pin!("geo.reload_interval", geo.reload_interval);
    // The front's per-address connection caps read the client address with these.
    pin!("geo.trusted_proxies", geo.trusted_proxies);
    pin!("control", control);
    // The fleet's follower and connection start once.
    pin!("purge.fleet", purge.fleet);
    pin!("purge.fleet_poll", purge.fleet_poll);
    pin!("demo", demo);
    if running.control.is_some() {
        pin!("tokens", tokens);
    }
    // The access log's channel is made once.
    pin!("log.buffer", log.buffer);
    keys
}

/// The settings a request reads, by key path, that differ between `running` and `new`.
fn live_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    macro_rules! check {
        ($key:literal, $($field:tt).+) => {
            if differs(&running.$($field).+, &new.$($field).+) {
                keys.push($key);
            }
        };
    }
    check!("server.role", server.role);
    check!("server.name", server.name);
    check!("server.fast_hits", server.fast_hits);
    check!("server.max_request_line", server.head.max_request_line);
    check!("server.max_header_field", server.head.max_header_field);
    check!("server.forward_headers", server.forward_headers);
    check!("server.upgrade_prefixes", server.upgrade_prefixes);
    check!("cache.fill_stall", cache.fill_stall);
    check!("cache.default_ttl", cache.default_ttl);
    check!("cache.negative_ttl", cache.negative_ttl);
    check!("cache.stale_while_revalidate", cache.stale_while_revalidate);
    check!("cache.stale_if_error", cache.stale_if_error);
    check!("cache.stale_timeout", cache.stale_timeout);
    check!("cache.vod_playlist_ttl", cache.vod_playlist_ttl);
    check!("cache.live_playlist_fraction", cache.live_playlist_fraction);
    check!("cache.targeted_field", cache.targeted);
    check!("cache.forward_cmcd", cache.forward_cmcd);
    check!("cache.rules", cache.rules);
    check!("cache.keys", cache.keys);
    check!("cors", cors);
    check!("purge", purge);
    check!("tokens", tokens);
    check!("geo.rules", geo.policy);
    check!("origins", origins);
    check!("log.access", log.access);
    check!("log.format", log.format);
    check!("log.hit_sample", log.hit_sample);
    check!("cmcd.prefixes", cmcd.prefixes);
    keys
}

/// The config to run after a reload from `running` to `new` (restart-only settings kept as
/// they run), and what changes. Pure.
pub fn plan(running: &Config, mut new: Config) -> (Config, Outcome) {
    let needs_restart = pin_restart_only(running, &mut new);
    let applied = live_changes(running, &new);
    (
        new,
        Outcome {
            applied,
            needs_restart,
        },
    )
}

/// One reload at a time: each plans against the config the one before it installed.
static RELOADING: Mutex<()> = Mutex::new(());

/// Re-read the config file, validate it and swap it in; logged either way. Blocking (file
/// reads, origin name lookups): call it off the async workers.
pub fn reload(state: &EdgeState) -> Result<Outcome, ReloadError> {
    let result = reload_now(state);
    let label = if result.is_ok() { "applied" } else { "failed" };
    state
        .metrics
        .config_reloads
        .with_label_values(&[label])
        .inc();
    match &result {
        Ok(o) if o.needs_restart.is_empty() => {
            tracing::info!(applied = ?o.applied, "config reloaded")
        }
        Ok(o) => tracing::warn!(
            applied = ?o.applied,
            needs_restart = ?o.needs_restart,
            "config reloaded; these settings keep their running values until a restart"
        ),
        Err(e) => tracing::error!("config reload failed; the running config stays: {e}"),
    }
    result
}

fn reload_now(state: &EdgeState) -> Result<Outcome, ReloadError> {
    let file = state.source.as_deref().ok_or(ReloadError::NoFile)?;
    let _one = RELOADING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let new = Config::load(file).map_err(|error| ReloadError::Config {
        file: file.display().to_string(),
        error,
    })?;
    let running = state.live_full();
    let (config, outcome) = plan(&running.config, new);
    // Same pools, same health and in-flight counts: only new origin settings start afresh.
    let pools = (!outcome.applied.contains(&"origins")).then(|| Arc::clone(&running.pools));
    // A new file is opened before the next line, the old one closed.
    state.access_log.retarget(&config.log.access);
    state.live.store(Arc::new(Live::new(config, pools)));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra_server: &str, extra_cache: &str, rest: &str) -> Config {
        let text = format!(
            "[server]\nhttp = \"127.0.0.1:8080\"\n{extra_server}\n[cache]\ndir = \"/tmp/edge-reload-test\"\n{extra_cache}\n\
             [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9000\" }}]\n{rest}"
        );
        Config::load_str(&text, Path::new("/tmp")).unwrap()
    }

    #[test]
    fn nothing_changed_is_an_empty_outcome() {
        let (_, o) = plan(&config("", "", ""), config("", "", ""));
        assert_eq!(o, Outcome::default());
    }

    #[test]
    fn live_settings_are_applied() {
        let running = config("", "", "");
        let new = config(
            "name = \"other\"",
            "default_ttl = \"9s\"\n[[cache.rules]]\nprefix = \"/live/\"\nttl = \"2s\"",
            "[[origins]]\nname = \"p\"\nnodes = [{ addr = \"127.0.0.1:9001\" }]\n[cors]\nallow_origins = [\"https://p.example\"]",
        );
        let (next, o) = plan(&running, new);
        assert_eq!(
            o.applied,
            vec![
                "server.name",
                "cache.default_ttl",
                "cache.rules",
                "cors",
                "origins"
            ]
        );
        assert!(o.needs_restart.is_empty());
        assert_eq!(next.server.name, "other");
        assert_eq!(next.origins.len(), 2);
    }

    #[test]
    fn log_settings_are_live_but_the_buffer() {
        let running = config("", "", "");
        let new = config(
            "",
            "",
            "[log]\naccess = \"/var/log/edge/access.log\"\nformat = \"text\"\nhit_sample = 0.5\nbuffer = 10",
        );
        let (next, o) = plan(&running, new);
        assert_eq!(
            o.applied,
            vec!["log.access", "log.format", "log.hit_sample"]
        );
        assert_eq!(o.needs_restart, vec!["log.buffer"]);
        assert_eq!(next.log.buffer, running.log.buffer);
        assert_eq!(next.log.hit_sample, 0.5);
    }

    #[test]
    fn the_fleet_needs_a_restart_but_the_purge_acl_is_live() {
        let running = config("", "", "[purge]\nfleet = \"postgres://edge@db-a/edge\"");
        let new = config(
            "",
            "",
            "[purge]\nallow = [\"10.0.0.0/8\"]\nfleet = \"postgres://edge@db-b/edge\"\nfleet_poll = \"2s\"",
        );
        let (next, o) = plan(&running, new);
        assert_eq!(o.needs_restart, vec!["purge.fleet", "purge.fleet_poll"]);
        assert_eq!(o.applied, vec!["purge"]);
        assert_eq!(next.purge.fleet, running.purge.fleet);
        assert_eq!(next.purge.fleet_poll, running.purge.fleet_poll);
        assert_eq!(next.purge.allow.len(), 1);
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let running = config("", "", "");
        let new = config(
            "admin = \"127.0.0.1:9999\"\nthreads = 7\nupgrade_socket = \"/run/edge.sock\"\nheader_timeout = \"3s\"",
            "memory = \"8 MiB\"\ndefault_ttl = \"9s\"",
            "",
        );
        let (next, o) = plan(&running, new);
        assert_eq!(
            o.needs_restart,
            vec![
                "server.admin",
                "server.threads",
                "server.upgrade_socket",
                "server.header_timeout",
                "cache.memory"
            ]
        );
        assert_eq!(o.applied, vec!["cache.default_ttl"]);
        assert_eq!(next.server.admin, running.server.admin);
        assert_eq!(next.server.threads, running.server.threads);
        assert_eq!(next.server.upgrade_socket, running.server.upgrade_socket);
        assert_eq!(next.server.limits, running.server.limits);
        assert_eq!(next.cache.memory, running.cache.memory);
        assert_eq!(next.cache.default_ttl, std::time::Duration::from_secs(9));
        // Planning again from what now runs finds nothing new to apply.
        let (_, again) = plan(&next, config("", "default_ttl = \"9s\"", ""));
        assert!(again.applied.is_empty(), "{again:?}");
    }
}
