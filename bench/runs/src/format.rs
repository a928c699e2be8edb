//! Numbers for people, shared by the run's summary and REPORT.md: `1,000`,
//! `412 µs`, `3.2 MiB`.

/// A latency in µs with a readable unit: `412 µs`, `1.21 ms`, `2.50 s`.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A size in bytes in KiB, MiB or GiB.
pub fn bytes(bytes: u64) -> String {
    let bytes = bytes as f64;
    if bytes < 1024.0 * 1024.0 {
        format!("{:.0} KiB", bytes / 1024.0)
    } else if bytes < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
    }
}

/// A count with thousands separators: `512,345`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate: whole with separators from 100 up, one decimal below.
pub fn count_f64(value: f64) -> String {
    if value >= 100.0 {
        count(value.round() as u64)
    } else {
        format!("{value:.1}")
    }
}

/// A rate per second: whole with separators from 100 up (`5,000`), three
/// significant digits below (`33.3`, `2.5`, `0.25`), so that an open loop
/// slower than one request a second reads as asked, not as `0`.
pub fn rate(value: f64) -> String {
    if value >= 100.0 {
        return count(value.round() as u64);
    }
    if value <= 0.0 || !value.is_finite() {
        return "0".to_owned();
    }
    // Decimals for three significant digits: 2 at 1 to 10, 3 at 0.1 to 1, ...
    let decimals = (2 - value.log10().floor() as i32).max(0) as usize;
    let text = format!("{value:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_owned(),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers read as a person expects.
    #[test]
    fn formats_numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(512_345), "512,345");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count_f64(0.5), "0.5");
        assert_eq!(count_f64(2000.4), "2,000");
        assert_eq!(micros(412.0), "412 µs");
        assert_eq!(micros(1210.0), "1.21 ms");
        assert_eq!(micros(2_500_000.0), "2.50 s");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
    }

    /// Regression (issue 10, item 8): a rate below 1/s reads as asked (it used
    /// to print as `0/s`); above 100 it is whole with separators.
    #[test]
    fn formats_rates_below_one_per_second() {
        assert_eq!(rate(0.25), "0.25");
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(0.125), "0.125");
        assert_eq!(rate(0.0333333), "0.0333");
        assert_eq!(rate(2.5), "2.5");
        assert_eq!(rate(4.0), "4");
        assert_eq!(rate(33.333), "33.3");
        assert_eq!(rate(99.96), "100");
        assert_eq!(rate(5000.4), "5,000");
        assert_eq!(rate(0.0), "0");
    }
}
