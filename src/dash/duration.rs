//! ISO 8601 durations as MPDs write them (`xs:duration`: `PT2S`, `PT0.5S`, `P1DT2H`).

use std::time::Duration;

/// `PnYnMnDTnHnMnS` with a decimal fraction allowed on the seconds; years and months are not
/// taken (their length varies, and no MPD update period is that long): `None` for them, for a
/// negative duration and for anything malformed.
pub fn iso8601(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut secs = 0f64;
    let mut part = |text: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut unit_at = 0;
        for c in text.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let i = units[unit_at..].iter().position(|(u, _)| *u == c)? + unit_at;
            // Only the seconds may have a fraction.
            if number.is_empty() || (number.contains('.') && c != 'S') {
                return None;
            }
            secs += number.parse::<f64>().ok()? * units[i].1;
            number.clear();
            unit_at = i + 1;
        }
        number.is_empty().then_some(())
    };
    part(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        part(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| iso8601(s).map(|d| d.as_secs_f64());
        assert_eq!(d("PT2S"), Some(2.0));
        assert_eq!(d("PT0.5S"), Some(0.5));
        assert_eq!(d("PT1M30S"), Some(90.0));
        assert_eq!(d("PT0S"), Some(0.0));
        assert_eq!(d("P1DT2H"), Some(93_600.0));
        assert_eq!(d(" PT10S "), Some(10.0));
        for bad in [
            "", "P", "PT", "2S", "PT2", "PTS", "PT1.5M", "P1M", "P1Y", "PT2S1M", "-PT2S", "PT2X",
            "PT1..2S",
        ] {
            assert_eq!(iso8601(bad), None, "{bad}");
        }
    }
}
