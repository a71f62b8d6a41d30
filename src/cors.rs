//! CORS for players on other origins: which `Origin`s may read responses, and the headers
//! a preflight and a normal response carry.

use crate::config::CorsConfig;

/// CORS policy from `[cors]`.
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
    max_age: String,
}

/// Headers players need to read for ranges and progress.
pub const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Accept-Ranges, Age, X-Cache";
pub const ALLOW_METHODS: &str = "GET, HEAD, OPTIONS";

impl Cors {
    pub fn new(c: &CorsConfig) -> Self {
        Cors {
            any: c.allow_origins.iter().any(|o| o == "*"),
            origins: c
                .allow_origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            max_age: c.max_age.as_secs().to_string(),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if it is allowed.
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        let origin = origin?;
        if self.any {
            return Some("*".into());
        }
        let lower = origin.to_ascii_lowercase();
        self.origins.contains(&lower).then(|| origin.to_string())
    }

    /// Whether the allowed value depends on the request (so responses need `Vary: Origin`).
    pub fn varies(&self) -> bool {
        !self.any
    }

    pub fn max_age(&self) -> &str {
        &self.max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cors(origins: &[&str]) -> Cors {
        Cors::new(&CorsConfig {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            max_age: Duration::from_secs(60),
        })
    }

    #[test]
    fn any_origin() {
        let c = cors(&["*"]);
        assert_eq!(
            c.allow_origin(Some("https://p.example")).as_deref(),
            Some("*")
        );
        assert_eq!(c.allow_origin(None), None);
        assert!(!c.varies());
        assert_eq!(c.max_age(), "60");
    }

    #[test]
    fn listed_origins_only() {
        let c = cors(&["https://Player.example/"]);
        assert_eq!(
            c.allow_origin(Some("https://player.example")).as_deref(),
            Some("https://player.example")
        );
        assert_eq!(c.allow_origin(Some("https://evil.example")), None);
        assert!(c.varies());
        assert_eq!(cors(&[]).allow_origin(Some("https://p.example")), None);
    }
}
