//! `[cmcd]`: how the CMCD metrics ([`crate::metrics::cmcd`]) group requests by content.

use super::error::ConfigError;
use super::file::CmcdSection;

/// Most prefixes `[cmcd] prefixes` may list: each is a label value of every CMCD metric.
pub const MAX_PREFIXES: usize = 32;

/// The label of a path under no configured prefix.
pub const OTHER: &str = "other";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmcdConfig {
    /// Path prefixes the CMCD metrics are labelled by (`prefix`); every other path is
    /// `other`. Default: none.
    pub prefixes: Vec<String>,
}

impl CmcdConfig {
    pub fn build(c: CmcdSection) -> Result<Self, ConfigError> {
        let prefixes = c.prefixes.unwrap_or_default();
        if prefixes.len() > MAX_PREFIXES {
            return Err(ConfigError::new(
                "cmcd.prefixes",
                format!(
                    "{} prefixes; at most {MAX_PREFIXES} (each is a metric label value)",
                    prefixes.len()
                ),
            ));
        }
        for (i, p) in prefixes.iter().enumerate() {
            if !p.starts_with('/') || p.chars().any(|c| c.is_control() || c == '"') {
                return Err(ConfigError::new(
                    format!("cmcd.prefixes[{i}]"),
                    format!("{p:?} must be a path prefix starting with \"/\""),
                ));
            }
            if prefixes[..i].contains(p) {
                return Err(ConfigError::new(
                    format!("cmcd.prefixes[{i}]"),
                    format!("{p:?} is listed twice"),
                ));
            }
        }
        Ok(CmcdConfig { prefixes })
    }

    /// The `prefix` label of a (normalised) path: its longest configured prefix, else
    /// [`OTHER`].
    pub fn label(&self, path: &str) -> &str {
        self.prefixes
            .iter()
            .filter(|p| path.starts_with(p.as_str()))
            .max_by_key(|p| p.len())
            .map_or(OTHER, |p| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(prefixes: &[&str]) -> Result<CmcdConfig, ConfigError> {
        CmcdConfig::build(CmcdSection {
            prefixes: Some(prefixes.iter().map(|p| p.to_string()).collect()),
        })
    }

    #[test]
    fn labels_by_longest_prefix() {
        let c = build(&["/demo/", "/demo/dash/", "/live/"]).unwrap();
        assert_eq!(c.label("/demo/ts/a.ts"), "/demo/");
        assert_eq!(c.label("/demo/dash/480p/seg_001.m4s"), "/demo/dash/");
        assert_eq!(c.label("/vod/x.ts"), OTHER);
        assert_eq!(CmcdConfig::default().label("/demo/a.ts"), OTHER);
    }

    #[test]
    fn refusals_name_the_key() {
        let e = build(&["demo/"]).unwrap_err();
        assert_eq!(e.key, "cmcd.prefixes[0]");
        let e = build(&["/a/", "/a/"]).unwrap_err();
        assert_eq!(e.key, "cmcd.prefixes[1]");
        let many: Vec<String> = (0..=MAX_PREFIXES).map(|i| format!("/{i}/")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(build(&many).unwrap_err().key, "cmcd.prefixes");
    }
}
