//! `[log]`: the access log — where its lines go, in which format, how many hit lines are
//! kept, and how many lines may wait for the writer.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::file::LogSection;

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Off,
    Stdout,
    /// Appended to; reopened on `SIGUSR1`.
    File(PathBuf),
}

/// How an access-log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// A combined-log-like line (README, "Access logs").
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Default: off (README, "Access logs", says why).
    pub access: LogTarget,
    /// Default: JSON.
    pub format: LogFormat,
    /// The fraction of cache-hit lines written (misses, local answers and errors: all).
    /// Default: 1.0.
    pub hit_sample: f64,
    /// Lines that may wait for the writer; more are dropped and counted. Default: 8192.
    pub buffer: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            access: LogTarget::Off,
            format: LogFormat::Json,
            hit_sample: 1.0,
            buffer: 8192,
        }
    }
}

impl LogConfig {
    /// Validate `[log]`; a file path resolves against `base` (the config file's folder).
    pub fn build(l: LogSection, base: &Path) -> Result<Self, ConfigError> {
        let d = LogConfig::default();
        let access = match l.access.as_deref() {
            None | Some("off") => LogTarget::Off,
            Some("stdout") => LogTarget::Stdout,
            Some("") => {
                return Err(ConfigError::new(
                    "log.access",
                    "empty; expected \"off\", \"stdout\" or a file path",
                ))
            }
            Some(path) => LogTarget::File(base.join(path)),
        };
        let format = match l.format.as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("{other:?}; expected \"json\" or \"text\""),
                ))
            }
        };
        let hit_sample = match l.hit_sample {
            None => d.hit_sample,
            Some(f) if (0.0..=1.0).contains(&f) => f,
            Some(f) => {
                return Err(ConfigError::new(
                    "log.hit_sample",
                    format!("{f} is out of range 0.0..=1.0"),
                ))
            }
        };
        let buffer = match l.buffer {
            None => d.buffer,
            Some(n) if (1..=1_048_576).contains(&n) => n as usize,
            Some(n) => {
                return Err(ConfigError::new(
                    "log.buffer",
                    format!("{n} is out of range 1..=1048576 (lines)"),
                ))
            }
        };
        Ok(LogConfig {
            access,
            format,
            hit_sample,
            buffer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<LogConfig, ConfigError> {
        let l: LogSection = toml::from_str(text).unwrap();
        LogConfig::build(l, Path::new("/etc/edge"))
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(build("").unwrap(), LogConfig::default());
        let c = build(
            "access = \"logs/access.log\"\nformat = \"text\"\nhit_sample = 0.25\nbuffer = 16",
        )
        .unwrap();
        assert_eq!(
            c.access,
            LogTarget::File(PathBuf::from("/etc/edge/logs/access.log"))
        );
        assert_eq!(c.format, LogFormat::Text);
        assert_eq!(c.hit_sample, 0.25);
        assert_eq!(c.buffer, 16);
        assert_eq!(
            build("access = \"stdout\"").unwrap().access,
            LogTarget::Stdout
        );
        assert_eq!(
            build("access = \"/var/log/edge.log\"").unwrap().access,
            LogTarget::File(PathBuf::from("/var/log/edge.log"))
        );
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("access = \"\"", "log.access"),
            ("format = \"xml\"", "log.format"),
            ("hit_sample = 1.5", "log.hit_sample"),
            ("hit_sample = -0.1", "log.hit_sample"),
            ("buffer = 0", "log.buffer"),
        ] {
            assert_eq!(build(text).unwrap_err().key, key, "{text}");
        }
    }
}
