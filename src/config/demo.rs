//! `[demo]`: the embedded demo origin and the title it plays.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::file::DemoSection;
use super::server::ServerConfig;
use super::value::addr;

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub listen: SocketAddr,
    pub media: PathBuf,
    /// Path of the demo title's master playlist, as a player requests it through the edge.
    pub title: String,
}

impl DemoConfig {
    /// `None` when the section is absent or `enabled = false`; `media` resolves against `base`.
    pub fn build(
        d: Option<DemoSection>,
        base: &Path,
        server: &ServerConfig,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(d) = d.filter(|d| d.enabled.unwrap_or(true)) else {
            return Ok(None);
        };
        super::features::require("demo", "demo", true, cfg!(feature = "demo"))?;
        let title = d.title.unwrap_or_else(|| "/demo/ts/master.m3u8".into());
        if !title.starts_with('/') {
            return Err(ConfigError::new(
                "demo.title",
                "must be a path starting with '/'",
            ));
        }
        let listen = addr(
            "demo.listen",
            d.listen.as_deref().unwrap_or("127.0.0.1:8081"),
        )?;
        if listen == server.http || listen == server.admin {
            return Err(ConfigError::new(
                "demo.listen",
                "must differ from server.http and server.admin",
            ));
        }
        let media = base.join(d.media.as_deref().unwrap_or("tests/fixtures/media"));
        Ok(Some(DemoConfig {
            listen,
            media,
            title,
        }))
    }
}
