//! Humane counts for flags: `5k`, `1.5M`, `20000`. (Durations are
//! `cluster::cli::parse_duration`, the one syntax of every binary.)

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

/// The highest `--rate`, requests per second: one request a nanosecond. The
/// open loop's schedule is a list of `Instant`s, which count nanoseconds, so a
/// higher rate could not even be spaced; and no HTTP server answers within a
/// thousandth of that. A rate above it (`1e12`) is a typo, not a load.
pub const MAX_RATE_PER_S: f64 = 1e9;

/// Parses a request rate per second (`--rate`): a count more than zero, at
/// most [`MAX_RATE_PER_S`].
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate = parse_count(text)?;
    if rate <= 0.0 {
        return Err("must be more than zero".to_owned());
    }
    if rate > MAX_RATE_PER_S {
        return Err(format!(
            "more than {MAX_RATE_PER_S:e} requests/s, one a nanosecond, the resolution of \
             the schedule's clock"
        ));
    }
    Ok(rate)
}

/// Parses `--body-bytes`: a whole number of bytes (`65536`, `1M`), at most
/// the worker's bound on a request body (`cluster::service::MAX_BODY_BYTES`,
/// 64 MiB): beyond it the worker answers 413, so a run would measure
/// refusals.
pub fn parse_body_bytes(text: &str) -> Result<u64, String> {
    let bytes = parse_count(text)?;
    let most = cluster::service::MAX_BODY_BYTES;
    if bytes.fract() != 0.0 {
        return Err(format!("{text:?} must be a whole number of bytes"));
    }
    if bytes > most as f64 {
        return Err(format!(
            "{text:?} is more than {most} bytes (64 MiB), the most a worker reads of a \
             request body (it answers 413 beyond)"
        ));
    }
    Ok(bytes as u64)
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

    /// `--body-bytes`: whole bytes from 0 up to the worker's 64 MiB.
    #[test]
    fn parses_body_bytes_up_to_the_workers_bound() {
        assert_eq!(parse_body_bytes("0"), Ok(0));
        assert_eq!(parse_body_bytes("65536"), Ok(65536));
        assert_eq!(parse_body_bytes("64k"), Ok(64_000));
        assert_eq!(parse_body_bytes("67108864"), Ok(64 * 1024 * 1024));
        for bad in ["67108865", "1e9", "1.5", "-1", "x"] {
            assert!(parse_body_bytes(bad).is_err(), "{bad}");
        }
    }

    /// Counts with `k` and `M` suffixes, fractions, underscores.
    #[test]
    fn counts() {
        assert_eq!(parse_count("5k"), Ok(5000.0));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000.0));
        assert_eq!(parse_count("20_000"), Ok(20_000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert_eq!(parse_rate("1e9"), Ok(MAX_RATE_PER_S));
        assert_eq!(parse_rate("1000M"), Ok(MAX_RATE_PER_S));
        assert!(parse_rate("1.000001e9").is_err());
        assert!(parse_rate("1e12").is_err());
        assert!(parse_count("many").is_err());
        assert!(parse_count("-3").is_err());
        assert_eq!(parse_positive_integer("10k"), Ok(10_000));
        assert!(parse_positive_integer("1.5").is_err());
        assert!(parse_positive_integer("0").is_err());
    }
}
