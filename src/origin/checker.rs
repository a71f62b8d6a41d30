//! Active health checks: a background service that asks every node of every pool with a
//! `health` section for its check path, each interval, and feeds the verdicts to
//! [`super::health::NodeHealth::on_check`].
//!
//! It checks the pools in service now: after a reload swaps them, the next round checks the
//! new pools' nodes and the old pools are no longer checked (they are dropped once their last
//! request ends).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::connectors::http::Connector;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_http::RequestHeader;

use super::pools::Pools;

/// The pools in service now (a reload may replace them).
pub type CurrentPools = Box<dyn Fn() -> Arc<Pools> + Send + Sync>;

/// The checker.
pub struct Checker {
    pub pools: CurrentPools,
}

/// The (pool, node, interval) of every node with active checks.
fn checked_nodes(pools: &Pools) -> Vec<(usize, usize, Duration)> {
    pools
        .pools
        .iter()
        .enumerate()
        .filter_map(|(pi, p)| p.cfg.health.as_ref().map(|h| (pi, p, h.interval)))
        .flat_map(|(pi, p, interval)| (0..p.cfg.nodes.len()).map(move |ni| (pi, ni, interval)))
        .collect()
}

/// One check: GET `path` on the node; healthy when it answers 2xx or 3xx within `timeout`.
async fn check_once(connector: &Connector, pools: &Pools, pool: usize, node: usize) -> bool {
    let Some(p) = pools.pools.get(pool) else {
        return false;
    };
    let Some(hc) = &p.cfg.health else { return true };
    let Some(n) = p.cfg.nodes.get(node) else {
        return false;
    };
    let peer = pools.peer_for(pool, node, Some(hc.timeout));
    let attempt = async {
        let (mut session, _) = connector.get_http_session(peer.as_ref()).await.ok()?;
        let mut req = RequestHeader::build("GET", hc.path.as_bytes(), None).ok()?;
        let host = n.host.clone().unwrap_or_else(|| n.addr.to_string());
        req.insert_header(http::header::HOST, host).ok()?;
        req.insert_header(http::header::USER_AGENT, "edge-health-check")
            .ok()?;
        session.write_request_header(Box::new(req)).await.ok()?;
        session.finish_request_body().await.ok()?;
        session.read_response_header().await.ok()?;
        let status = session.response_header()?.status.as_u16();
        // Drain a small body so the connection can be reused; ignore body errors.
        while let Ok(Some(_)) = session.read_response_body().await {}
        // Kept no longer than the pool's idle timeout, so a check does not meet a connection
        // the origin closed in between (a check interval above the origin's keep-alive).
        connector
            .release_http_session(session, peer.as_ref(), peer.options.idle_timeout)
            .await;
        Some((200..400).contains(&status))
    };
    tokio::time::timeout(hc.timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[async_trait]
impl BackgroundService for Checker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let connector = Arc::new(Connector::new(None));
        let mut pools = (self.pools)();
        let mut checked = checked_nodes(&pools);
        let mut next_due: Vec<tokio::time::Instant> =
            vec![tokio::time::Instant::now(); checked.len()];
        loop {
            let current = (self.pools)();
            if !Arc::ptr_eq(&current, &pools) {
                pools = current;
                checked = checked_nodes(&pools);
                next_due = vec![tokio::time::Instant::now(); checked.len()];
            }
            let now = tokio::time::Instant::now();
            let mut batch = Vec::new();
            for (i, (pi, ni, interval)) in checked.iter().enumerate() {
                if next_due[i] <= now {
                    next_due[i] = now + *interval;
                    let (pools, connector, pi, ni) = (pools.clone(), connector.clone(), *pi, *ni);
                    batch.push(
                        async move { (pi, ni, check_once(&connector, &pools, pi, ni).await) },
                    );
                }
            }
            for (pi, ni, ok) in futures_join_all(batch).await {
                let Some(p) = pools.pools.get(pi) else {
                    continue;
                };
                let (Some(h), Some(hc)) = (p.health.get(ni), &p.cfg.health) else {
                    continue;
                };
                if let Some(up) = h.on_check(ok, hc) {
                    let node = p
                        .cfg
                        .nodes
                        .get(ni)
                        .map(|n| n.addr.to_string())
                        .unwrap_or_default();
                    tracing::warn!(pool = %p.cfg.name, node = %node, up, "origin node health changed");
                }
            }
            // Without checked nodes this only watches for a reload that brings some.
            let tick = checked
                .iter()
                .map(|c| c.2)
                .min()
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(tick.min(Duration::from_millis(250))) => {}
            }
        }
    }
}

/// Run the checks of one round concurrently.
async fn futures_join_all<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
