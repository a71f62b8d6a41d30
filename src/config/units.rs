//! Human-readable units in `edge.toml`: durations (`30s`, `2h`, `1h 30m`) and byte sizes
//! (`64 MiB`, `1 GiB`, `4096`).

use std::time::Duration;

/// Parse a human duration such as `30s`, `500ms`, `2h` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; expected e.g. \"30s\", \"5m\" or \"2h\"".into());
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}); expected e.g. \"30s\", \"5m\" or \"2h\"")
    })
}

/// Parse a byte size such as `64 MiB`, `1 GiB`, `512 KB` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    text.parse::<bytesize::ByteSize>()
        .map(|s| s.as_u64())
        .map_err(|_| format!("invalid size {text:?}; expected e.g. \"64 MiB\" or \"1 GiB\""))
}

/// Format a byte size for summaries (`1.0 GiB`).
pub fn format_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64 MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1 GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").unwrap_err().contains("invalid size"));
        assert_eq!(format_size(1 << 30), "1.0 GiB");
    }
}
