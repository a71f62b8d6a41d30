//! `[tls]`: certificates for the HTTPS listener (`[server] https`). The files are read when
//! the server starts (and on reload), not here.

use std::path::Path;
use std::time::Duration;

use super::error::ConfigError;
use super::file::TlsSection;
use super::value::duration;

#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// First = default for clients without SNI (or an unknown name).
    pub certs: Vec<crate::tls::store::CertSpec>,
    /// Names for a development certificate generated when the first cert file is missing.
    pub dev_names: Option<Vec<String>>,
    /// How often the cert/key files are checked for changes (SIGHUP reloads at once).
    pub reload_interval: Duration,
}

impl TlsConfig {
    /// Validate `[tls]`; certificate paths resolve against `base`.
    pub fn build(t: TlsSection, base: &Path) -> Result<Self, ConfigError> {
        if t.certs.is_empty() {
            return Err(ConfigError::new(
                "tls.certs",
                "at least one { cert, key } pair is required",
            ));
        }
        let certs = t
            .certs
            .iter()
            .map(|c| crate::tls::store::CertSpec::new(base.join(&c.cert), base.join(&c.key)))
            .collect();
        if t.dev_names.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::new(
                "tls.dev_names",
                "list at least one name, or leave it out",
            ));
        }
        super::features::require(
            "tls.dev_names",
            "dev-certs",
            t.dev_names.is_some(),
            cfg!(feature = "dev-certs"),
        )?;
        Ok(TlsConfig {
            certs,
            dev_names: t.dev_names,
            reload_interval: duration("tls.reload_interval", t.reload_interval.as_deref(), "2s")?,
        })
    }
}
