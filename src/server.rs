//! Building and running the edge: one Pingora server with the proxy, admin and (optional)
//! demo-origin services, over a foyer cache that lives on its own runtime.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;

use crate::admin::AdminApp;
use crate::cache::Cache;
use crate::config::Config;
#[cfg(feature = "demo")]
use crate::demo::DemoOrigin;
use crate::metrics::connections::{Counted, Listener, Source};
use crate::metrics::Metrics;
use crate::proxy::EdgeProxy;
use crate::state::{EdgeState, Live};
use crate::upgrade::{CacheRelease, Handoff};

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{key}: cannot listen on {addr}: {source}")]
    Listen {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Cache(#[from] crate::cache::OpenError),
    #[error("cannot start the cache runtime: {0}")]
    Runtime(std::io::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("demo.media: folder {0} does not exist")]
    DemoMedia(String),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("geo.database: {0}")]
    Geo(#[from] crate::geo::GeoError),
    #[error("control: {0}")]
    Control(String),
    #[error("purge.fleet: {0}")]
    Fleet(String),
    #[error("{0}")]
    Upgrade(#[from] crate::upgrade::UpgradeError),
    #[error("log: {0}")]
    AccessLog(#[from] crate::access_log::StartError),
}

/// CDN host health for the control plane: a TCP connect to each host every few seconds.
#[cfg(feature = "control")]
struct ProbeHealth {
    hosts: Vec<(String, std::sync::atomic::AtomicBool)>,
}

#[cfg(feature = "control")]
impl crate::control::CdnHealth for ProbeHealth {
    fn healthy(&self, host: &crate::control::CdnHost) -> bool {
        self.hosts
            .iter()
            .find(|(u, _)| *u == host.base_url)
            .is_none_or(|(_, ok)| ok.load(Ordering::Relaxed))
    }
}

#[cfg(feature = "control")]
impl ProbeHealth {
    /// host:port of a bare origin URL.
    fn authority(base_url: &str) -> Option<String> {
        let (scheme, rest) = base_url.split_once("://")?;
        let host = rest.trim_end_matches('/');
        if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            Some(host.to_string())
        } else {
            Some(format!(
                "{host}:{}",
                if scheme == "https" { 443 } else { 80 }
            ))
        }
    }

    async fn probe_forever(self: std::sync::Arc<Self>) {
        loop {
            for (url, ok) in &self.hosts {
                let up = match Self::authority(url) {
                    Some(a) => matches!(
                        tokio::time::timeout(
                            std::time::Duration::from_secs(1),
                            tokio::net::TcpStream::connect(a)
                        )
                        .await,
                        Ok(Ok(_))
                    ),
                    None => false,
                };
                ok.store(up, Ordering::Relaxed);
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    }
}

/// The running control plane: its runtime, address, secret and shutdown switch.
#[cfg(feature = "control")]
struct ControlPlane {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    secret: crate::control::EdgeSecret,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// A one-worker runtime of its own, outside Pingora's services (control plane, cache I/O).
fn side_runtime(name: &str) -> Result<tokio::runtime::Runtime, StartError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(StartError::Runtime)
}

/// Join the purge fleet `[purge] fleet` names (or the control plane's PostgreSQL database).
#[cfg(feature = "fleet")]
fn start_fleet(
    cfg: &Config,
    cache: &'static Cache,
    registry: &prometheus::Registry,
) -> Result<Option<&'static crate::fleet::Fleet>, StartError> {
    let Some(url) = cfg.purge.fleet.url() else {
        return Ok(None);
    };
    let fleet = crate::fleet::Fleet::start(
        url,
        cfg.purge.fleet_poll,
        cache,
        cfg.cache.dir.clone(),
        registry,
    )
    .map_err(StartError::Fleet)?;
    tracing::info!("fleet: purges fan out through the fleet database");
    Ok(Some(fleet))
}

#[cfg(feature = "control")]
fn start_control(
    cfg: &Config,
    registry: &prometheus::Registry,
) -> Result<Option<ControlPlane>, StartError> {
    let (Some(c), Some(tokens)) = (&cfg.control, &cfg.tokens) else {
        return Ok(None);
    };
    let runtime = side_runtime("edge-control")?;
    let health = std::sync::Arc::new(ProbeHealth {
        hosts: c
            .cdn_hosts
            .iter()
            .map(|h| (h.base_url.clone(), std::sync::atomic::AtomicBool::new(true)))
            .collect(),
    });
    let state = runtime
        .block_on(crate::control::AppState::open(
            c.clone(),
            tokens.keyring.clone(),
            health.clone(),
        ))
        .map_err(|e| StartError::Control(e.to_string()))?;
    state
        .metrics()
        .register(registry)
        .map_err(|e| StartError::Control(format!("metrics: {e}")))?;
    let secret = state.edge_secret().clone();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| StartError::Control(format!("cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Control(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(health.probe_forever());
    runtime.spawn(async move {
        if let Err(e) = crate::control::serve_state(listener, state, async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::error!(error = %e, "control plane stopped");
        }
    });
    Ok(Some(ControlPlane {
        runtime,
        addr,
        secret,
        stop,
    }))
}

/// On SIGHUP, reloads the config ([`crate::reload`]), then the certificates and the GeoIP
/// database; between signals, reloads certificates and the GeoIP database when their files
/// change. A bad new file is logged and the old one stays in service.
struct Reloader {
    state: &'static EdgeState,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Restart-only settings: a reload keeps them as they are.
        let (tls, geo_interval) = {
            let live = self.state.live();
            (live.config.tls.clone(), live.config.geo.reload_interval)
        };
        let mut poller = tls
            .as_ref()
            .map(|t| crate::tls::watch::Poller::new(t.certs.clone()));
        use crate::signals::{listen, next};
        use tokio::signal::unix::SignalKind;
        let mut hup = listen(SignalKind::hangup());
        let mut usr1 = listen(SignalKind::user_defined1());
        let mut usr2 = listen(SignalKind::user_defined2());
        let tick = tls
            .as_ref()
            .map(|t| t.reload_interval)
            .unwrap_or(geo_interval)
            .min(geo_interval);
        let mut geo_due = tokio::time::Instant::now() + geo_interval;
        loop {
            let forced = tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(tick) => false,
                Some(_) = next(&mut hup) => {
                    tracing::info!("SIGHUP: reloading the config, the certificates and the GeoIP database");
                    let state = self.state;
                    // Logged inside; a failure leaves the running config in service.
                    let _ = tokio::task::spawn_blocking(move || crate::reload::reload(state)).await;
                    true
                }
                Some(_) = next(&mut usr1) => {
                    tracing::info!("SIGUSR1: reopening the access log file");
                    self.state.access_log.reopen();
                    continue;
                }
                Some(_) = next(&mut usr2) => {
                    tracing::info!("SIGUSR2: ignored");
                    continue;
                }
            };
            if let (Some(p), Some(resolver)) = (poller.as_mut(), &self.state.tls) {
                if forced {
                    match resolver.reload(p.specs()) {
                        Ok(()) => tracing::info!("SIGHUP: certificates reloaded"),
                        Err(e) => {
                            tracing::error!(error = %e, "SIGHUP: certificate reload failed; the old certificates stay in service")
                        }
                    }
                } else {
                    match p.poll(resolver) {
                        crate::tls::watch::PollOutcome::Reloaded => {
                            tracing::info!("certificate files changed: reloaded")
                        }
                        crate::tls::watch::PollOutcome::Failed(e) => {
                            tracing::error!(error = %e, "certificate files changed but do not load; the old certificates stay in service")
                        }
                        crate::tls::watch::PollOutcome::Unchanged => {}
                    }
                }
            }
            if let Some(geo) = self.state.geo.clone() {
                if forced || tokio::time::Instant::now() >= geo_due {
                    geo_due = tokio::time::Instant::now() + geo_interval;
                    match tokio::task::spawn_blocking(move || geo.reload_if_changed()).await {
                        Ok(Ok(true)) => tracing::info!("GeoIP database changed: reloaded"),
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "GeoIP database changed but does not load; the old one stays in service")
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Readiness: sets `ready` once the player listener accepts connections, and `draining` when
/// Pingora starts shutting down, so `/readyz` answers 200 only in between.
struct Lifecycle {
    state: &'static EdgeState,
}

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut probe = self.state.live().config.server.http;
        if probe.ip().is_unspecified() {
            probe.set_ip(if probe.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        // Bounded: 30 s of 20 ms probes, or until shutdown.
        for _ in 0..1500 {
            if *shutdown.borrow() {
                break;
            }
            if tokio::net::TcpStream::connect(probe).await.is_ok() {
                self.state.ready.store(true, Ordering::Relaxed);
                tracing::info!("ready: the player listener accepts connections");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = shutdown.changed().await;
        self.state.draining.store(true, Ordering::Relaxed);
        tracing::info!("shutdown started: draining");
    }
}

/// The lines printed for the demo title: the URL to play, signed when tokens are on (path
/// style first; query style too).
#[cfg(feature = "demo")]
fn demo_urls(cfg: &Config, title: &str) -> Vec<String> {
    let url = format!("{}{}", cfg.server.public_url, title);
    let Some(tokens) = &cfg.tokens else {
        return vec![format!("edge: play {url}")];
    };
    // Grant the title's top folder (e.g. /demo/ covers the TS and fMP4 packagings).
    let acl = match title.trim_start_matches('/').split_once('/') {
        Some((top, _)) => format!("/{top}/"),
        None => title.to_string(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ttl = tokens
        .policy
        .max_ttl
        .as_secs()
        .min(24 * 3600)
        .saturating_sub(60)
        .max(60);
    let claims = crate::token::Claims::new(acl, now + ttl);
    let mut lines = Vec::new();
    let https = cfg
        .server
        .https
        .map(|h| format!("https://localhost:{}{}", h.port(), title));
    let mut targets = vec![
        ("play", url.clone(), crate::token::url::Style::Path),
        ("play (query token)", url, crate::token::url::Style::Query),
    ];
    if let Some(h) = https {
        targets.push(("play (https)", h, crate::token::url::Style::Path));
    }
    for (label, target, style) in targets {
        match tokens.sign_url(None, &claims, &target, style) {
            Ok(u) => lines.push(format!("edge: {label} {u}")),
            Err(e) => lines.push(format!("edge: cannot sign the demo URL: {e}")),
        }
    }
    lines
}

fn check_port(key: &'static str, addr: SocketAddr) -> Result<(), StartError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| StartError::Listen { key, addr, source })
}

/// Run the edge until SIGTERM, SIGQUIT or SIGINT ([`crate::signals`]). Returns after the
/// cache has been closed (flushed). `source` is the file `config` was read from: what a
/// reload re-reads (`None`: the built-in copy, which does not change). `upgrade`: take the
/// listeners and then the cache folder over from the edge running on the same cache folder
/// ([`crate::upgrade`]).
pub fn run(
    config: Config,
    source: Option<std::path::PathBuf>,
    upgrade: bool,
) -> Result<(), StartError> {
    // foyer's I/O and flushing run on a runtime of their own that outlives Pingora's
    // service runtimes, so the cache can be closed (flushed) after they stop.
    let cache_rt = side_runtime("edge-cache")?;
    crate::signals::keep(&cache_rt);
    if upgrade {
        // The ports are the running edge's until it hands them over.
        preflight_demo(&config)?;
    } else {
        preflight(&config)?;
    }
    let tls = load_certificates(&config)?;
    let geo = match &config.geo.database {
        None => None,
        Some(path) => Some(std::sync::Arc::new(crate::geo::Geo::open(path.clone())?)),
    };
    let metrics = Metrics::new()?;
    crate::telemetry::register(&metrics.registry, tls.clone())?;
    #[cfg(feature = "control")]
    let control = start_control(&config, &metrics.registry)?;
    let handoff: &'static Handoff =
        Box::leak(Box::new(Handoff::new(config.server.upgrade_socket.clone())));
    let (mut server, cache_wait) = take_listeners(&config, upgrade)?;
    let cache = cache_rt.block_on(Cache::open_after(
        &config.cache,
        &metrics.registry,
        cache_rt.handle().clone().into(),
        cache_wait,
    ))?;
    let cache: &'static Cache = Box::leak(Box::new(cache));
    let present: &'static crate::cache::handoff::Present =
        Box::leak(Box::new(move |k: &pingora_cache::CacheKey| {
            cache
                .storage
                .cached_or_filling(crate::cache::store::key_of(k))
        }));
    let lock: &'static CacheKeyLockImpl =
        crate::cache::handoff::HandoffLock::leak_with(config.cache.lock_timeout, present);

    #[cfg(feature = "fleet")]
    let fleet = start_fleet(&config, cache, &metrics.registry)?;
    #[cfg(not(feature = "fleet"))]
    let fleet = None;
    let access_log = crate::access_log::AccessLog::start(&config.log, &metrics.registry)?;
    let prefetch = crate::prefetch::Prefetcher::new(&metrics.registry)?;
    let state: &'static EdgeState = Box::leak(Box::new(EdgeState {
        access_log,
        ids: crate::access_log::ids::IdSource::new(),
        live: arc_swap::ArcSwap::from_pointee(Live::new(config, None)),
        source,
        metrics,
        cache,
        lock,
        tls,
        geo,
        #[cfg(feature = "control")]
        control: control.as_ref().map(|c| c.addr),
        #[cfg(not(feature = "control"))]
        control: None,
        #[cfg(feature = "control")]
        control_secret: control.as_ref().map(|c| c.secret.clone()),
        fleet,
        prefetch,
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
    }));
    add_services(&mut server, state)?;
    server.add_service(background_service(
        "upgrade cache release",
        CacheRelease {
            state,
            handoff,
            cache_rt: cache_rt.handle().clone(),
        },
    ));
    announce(state);
    server.run(RunArgs {
        shutdown_signal: Box::new(crate::signals::EdgeSignals { handoff }),
    });

    #[cfg(feature = "control")]
    if let Some(c) = control {
        let _ = c.stop.send(());
        c.runtime
            .shutdown_timeout(std::time::Duration::from_secs(2));
    }
    tracing::info!("services stopped; flushing the cache");
    // After an upgrade the cache was closed as soon as the connections drained: this waits
    // for that close rather than closing twice.
    cache_rt.block_on(handoff.close_cache(cache));
    cache_rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}

/// The Pingora server, bootstrapped: with `upgrade`, holding the listening sockets the running
/// edge sent it (this blocks until they arrive; Pingora exits 1 when none come within about
/// 6 s), and how long to wait for that edge to release the cache folder.
fn take_listeners(
    config: &Config,
    upgrade: bool,
) -> Result<(Server, std::time::Duration), StartError> {
    let cfg = &config.server;
    let conf = ServerConf {
        threads: cfg.threads,
        grace_period_seconds: Some(cfg.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(cfg.shutdown_timeout.as_secs().max(1)),
        upstream_keepalive_pool_size: 512,
        upgrade_sock: cfg.upgrade_socket.display().to_string(),
        ..ServerConf::default()
    };
    let opt = pingora_core::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(upgrade.then_some(opt), conf);
    if !upgrade {
        server.bootstrap();
        return Ok((server, std::time::Duration::ZERO));
    }
    let asking = crate::upgrade::ask_running_edge(&config.cache.dir, &cfg.upgrade_socket)?;
    tracing::info!(socket = %cfg.upgrade_socket.display(), "upgrade: waiting for the running edge's listeners");
    server.bootstrap();
    let _ = asking.join();
    tracing::info!("upgrade: listeners received; waiting for the cache folder");
    Ok((server, crate::upgrade::lock_wait(cfg)))
}

/// Everything that can be checked before anything starts: free ports and the demo media.
fn preflight(config: &Config) -> Result<(), StartError> {
    check_port("server.http", config.server.http)?;
    check_port("server.admin", config.server.admin)?;
    if let Some(demo) = &config.demo {
        check_port("demo.listen", demo.listen)?;
    }
    if let Some(https) = config.server.https {
        check_port("server.https", https)?;
    }
    preflight_demo(config)
}

/// The demo media folder exists (the check an upgrade makes, whose ports are in use).
fn preflight_demo(config: &Config) -> Result<(), StartError> {
    match &config.demo {
        Some(demo) if !demo.media.is_dir() => {
            Err(StartError::DemoMedia(demo.media.display().to_string()))
        }
        _ => Ok(()),
    }
}

/// The HTTPS certificates, generating a development pair first when `dev_names` asks for it.
/// Loaded before anything starts: a bad file is a clear start error naming it, never a panic
/// inside a listener.
fn load_certificates(
    config: &Config,
) -> Result<Option<std::sync::Arc<crate::tls::store::SniResolver>>, StartError> {
    let Some(t) = &config.tls else {
        return Ok(None);
    };
    // Without the `dev-certs` feature `dev_names` is refused while parsing.
    #[cfg(feature = "dev-certs")]
    if let (Some(names), Some(first)) = (&t.dev_names, t.certs.first()) {
        if !first.cert.exists() || !first.key.exists() {
            let dir = first.cert.parent().unwrap_or(std::path::Path::new("."));
            let made = crate::tls::certs::generate_dev(dir, names)?;
            println!(
                "edge: generated a development CA and certificate in {} (trust {})",
                dir.display(),
                made.ca_cert.display()
            );
        }
    }
    Ok(Some(std::sync::Arc::new(
        crate::tls::store::SniResolver::load(&t.certs)?,
    )))
}

/// The server's services: the player listener (the front answers fresh memory hits, the
/// Pingora proxy the rest), admin, the demo origin and the background services.
fn add_services(server: &mut Server, state: &'static EdgeState) -> Result<(), StartError> {
    let live = state.live_full();
    let cfg = &live.config;

    let mut pipeline =
        pingora_proxy::HttpProxy::new(EdgeProxy::new(state), server.configuration.clone());
    pipeline.handle_init_modules();
    let mut proxy = Service::new(
        "edge proxy".to_string(),
        counted(
            crate::proxy::front::Front::new(pipeline, state),
            Source::Player,
            state,
        ),
    );
    // Player connections without Pingora's 64 KiB read buffer: the front reads each HTTP/1
    // head into its own 4 KiB buffer (and hands the bytes over), rustls and `h2` keep their
    // own, so that buffer was a copy of every read and 64 KiB zeroed per connection (an idle
    // keep-alive connection measured 27.9 -> 22.0 KiB plain, 40.7 -> 33.6 KiB over TLS
    // without it; README, Performance). Writes keep Pingora's small write buffer.
    let player = |addr: String| {
        pingora_core::listeners::ListenerConfig::tcp(addr)
            .l4_buffer(pingora_core::listeners::L4BufferSettings::default().read(0))
    };
    proxy.add_listener(player(cfg.server.http.to_string()));
    if let (Some(https), Some(resolver)) = (cfg.server.https, &state.tls) {
        let mut settings = pingora_core::listeners::tls::TlsSettings::intermediate("", "")
            .map_err(|e| StartError::Tls(crate::tls::TlsError::Config(e.to_string())))?;
        settings.set_cert_resolver(resolver.clone());
        settings.enable_h2();
        proxy.add_listener(player(https.to_string()).tls(settings));
    }
    server.add_service(proxy);

    let mut admin = Service::new(
        "edge admin".to_string(),
        counted(AdminApp { state }, Source::One(Listener::Admin), state),
    );
    admin.add_tcp(&cfg.server.admin.to_string());
    server.add_service(admin);

    // Without the `demo` feature `[demo]` is refused while parsing.
    #[cfg(feature = "demo")]
    if let Some(demo) = &cfg.demo {
        let mut origin = Service::new(
            "demo origin".to_string(),
            DemoOrigin {
                root: demo.media.clone(),
            },
        );
        origin.add_tcp(&demo.listen.to_string());
        server.add_service(origin);
    }
    server.add_service(background_service("lifecycle", Lifecycle { state }));
    server.add_service(background_service(
        "signals and reloads",
        Reloader { state },
    ));
    server.add_service(background_service(
        "origin health checks",
        crate::origin::checker::Checker {
            pools: Box::new(|| state.live_full().pools.clone()),
        },
    ));
    Ok(())
}

/// `app` with its connections counted per listener (`edge_open_connections{listener}`).
fn counted<A>(app: A, source: Source, state: &EdgeState) -> Counted<A> {
    Counted::new(app, source, state.metrics.connections.clone())
}

/// The start-up lines for the operator: where to play, where the listeners are.
fn announce(state: &EdgeState) {
    let live = state.live();
    let cfg = &live.config;
    #[cfg(feature = "demo")]
    if let Some(demo) = &cfg.demo {
        println!(
            "edge: demo origin on http://{} serving {}",
            demo.listen,
            demo.media.display()
        );
        for line in demo_urls(cfg, &demo.title) {
            println!("{line}");
        }
    }
    if let Some(https) = cfg.server.https {
        println!("edge: listening on https://{https} (HTTP/2 and HTTP/1.1)");
    }
    if state.control.is_some() {
        println!(
            "edge: control plane at {}/api/v1 (OpenAPI: /api/v1/openapi.json)",
            cfg.server.public_url
        );
    }
    println!(
        "edge: listening on http://{} (admin http://{}); cache {} in {}",
        cfg.server.http,
        cfg.server.admin,
        crate::config::units::format_size(cfg.cache.memory + cfg.cache.disk),
        cfg.cache.dir.display()
    );
}
