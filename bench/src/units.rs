//! Humane flag values: durations such as `10s`, `500ms`, `1.5m` and counts such
//! as `5k`, `1.5M`, `20000`. The clap value parsers of the CLI.

use std::time::Duration;

/// Parses a duration: a number with a unit `us`, `ms`, `s`, `m` or `h` (`10s`,
/// `500ms`, `0.25s`, `2m`); a bare number is seconds. `0` is allowed (a warm-up
/// of nothing).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use us, ms, s, m or h (e.g. 10s, 500ms)"
            ));
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 10s, 500ms)"))?;
    Duration::try_from_secs_f64(number * seconds_per_unit)
        .map_err(|_| format!("{text:?} is out of range"))
}

/// Parses a duration that must be more than zero (`--duration`, `--timeout`,
/// `--sample-interval`).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

/// Parses a count with an optional suffix `k` (thousand) or `M` (million):
/// `5k`, `1.5M`, `20000`. Fractions are allowed (`0.5` requests/s).
pub fn parse_count(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix(['k', 'K']) {
        Some(number) => (number, 1e3),
        None => match text.strip_suffix('M') {
            Some(number) => (number, 1e6),
            None => (text, 1.0),
        },
    };
    let value: f64 = number
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a number (e.g. 500, 5k, 1.5M)"))?;
    let value = value * scale;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(value)
}

/// Parses a request rate per second (`--rate`): a count more than zero.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate = parse_count(text)?;
    if rate <= 0.0 {
        return Err("must be more than zero".to_owned());
    }
    Ok(rate)
}

/// Parses a whole number at least 1 (`--connections`, `--threads`): `50`, `10k`.
pub fn parse_positive_integer(text: &str) -> Result<usize, String> {
    let value = parse_count(text)?;
    if value.fract() != 0.0 || value < 1.0 || value > u32::MAX as f64 {
        return Err(format!("{text:?} must be a whole number from 1"));
    }
    Ok(value as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations in every unit, with fractions and without a unit.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    /// `--duration 0` is refused, with a message saying why.
    #[test]
    fn zero_duration_is_refused() {
        assert_eq!(
            parse_positive_duration("0s"),
            Err("must be more than zero".to_owned())
        );
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    /// Counts with `k` and `M` suffixes, fractions, underscores.
    #[test]
    fn counts() {
        assert_eq!(parse_count("5k"), Ok(5000.0));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000.0));
        assert_eq!(parse_count("20_000"), Ok(20_000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_count("many").is_err());
        assert!(parse_count("-3").is_err());
        assert_eq!(parse_positive_integer("10k"), Ok(10_000));
        assert!(parse_positive_integer("1.5").is_err());
        assert!(parse_positive_integer("0").is_err());
    }
}
