//! Human sizes (`500K`, `1M`, `10G`) and durations (`90s`, `12h`, `30d`).

use std::time::Duration;

use anyhow::{bail, Result};

pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {text:?}: expected e.g. 500K, 1M, 10G"))?;
    let factor: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => bail!("invalid size {text:?}: unknown unit {unit:?} (use K, M, G or T)"),
    };
    if value < 0.0 || !value.is_finite() {
        bail!("invalid size {text:?}: must be a positive number");
    }
    Ok((value * factor as f64) as u64)
}

pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {text:?}: expected e.g. 90s, 12h, 30d"))?;
    let seconds = match unit {
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => bail!("invalid duration {text:?}: unknown unit {unit:?} (use s, m, h, d or w)"),
    };
    if value < 0.0 || !value.is_finite() {
        bail!("invalid duration {text:?}: must be a positive number");
    }
    Ok(Duration::from_secs_f64(value * seconds))
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn human_age(ns: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let secs = now.saturating_sub(ns) / 1_000_000_000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("500K").unwrap(), 500 << 10);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("10X").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("3 fortnights").is_err());
    }
}
