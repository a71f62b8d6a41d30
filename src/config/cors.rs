//! `[cors]`: which player origins may read responses from script.

use std::time::Duration;

use super::error::ConfigError;
use super::file::CorsSection;
use super::value::duration;

#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Allowed `Origin` values; `*` allows any. Empty disables CORS headers.
    pub allow_origins: Vec<String>,
    pub max_age: Duration,
}

impl TryFrom<CorsSection> for CorsConfig {
    type Error = ConfigError;

    fn try_from(c: CorsSection) -> Result<Self, ConfigError> {
        let allow_origins = c.allow_origins.unwrap_or_else(|| vec!["*".into()]);
        for (i, o) in allow_origins.iter().enumerate() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(ConfigError::new(
                    format!("cors.allow_origins[{i}]"),
                    format!("{o:?} must be \"*\" or an origin like \"https://player.example\""),
                ));
            }
        }
        Ok(CorsConfig {
            allow_origins,
            max_age: duration("cors.max_age", c.max_age.as_deref(), "1h")?,
        })
    }
}
