//! `[purge]`: who may send the `PURGE` method to the player listener.

use super::error::ConfigError;
use super::file::PurgeSection;
use super::value::nets;

#[derive(Debug, Clone)]
pub struct PurgeConfig {
    /// Networks allowed to send the `PURGE` method to the player listener.
    pub allow: Vec<crate::net::IpNet>,
}

impl TryFrom<PurgeSection> for PurgeConfig {
    type Error = ConfigError;

    fn try_from(p: PurgeSection) -> Result<Self, ConfigError> {
        let allow = p
            .allow
            .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()]);
        Ok(PurgeConfig {
            allow: nets("purge.allow", &allow)?,
        })
    }
}
