//! How slaprobe shows numbers, durations, instants and URLs to people: the
//! plan, the status API, the generated rules and alerts all use these, so
//! one value reads the same everywhere.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Compact duration: `250ms`, `30s`, `1h30m`, `30d`. (humantime's own
/// formatter writes `30days`, and `d` is what people type in the config.)
pub fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut ns = d.as_nanos();
    let mut out = String::new();
    for (unit, size) in UNITS {
        let q = ns / size;
        if q > 0 {
            let _ = write!(out, "{q}{unit}");
            ns %= size;
        }
    }
    out
}

/// A number without float noise or trailing zeros, rounded to `decimals`:
/// `14.4`, `6`, `0.23`.
pub fn number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A ratio as a percentage: `0.9995` -> `99.95%`.
pub fn percent(ratio: f64) -> String {
    format!("{}%", number(ratio * 100.0, 6))
}

/// Unix seconds as RFC 3339 (`2026-11-23T13:25:10Z`).
pub fn rfc3339(unix_secs: u64) -> String {
    rfc3339_at(UNIX_EPOCH + Duration::from_secs(unix_secs))
}

/// An instant as RFC 3339 to the second.
pub fn rfc3339_at(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An instant as RFC 3339 to the millisecond (when a canary was declared
/// lost: close events stay apart).
pub fn rfc3339_millis_at(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now as Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An error and every cause under it, `outer: cause: root cause`: what a
/// log line or an exit message shows, so the root cause is never lost.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}

/// What a redacted secret reads as wherever configuration is shown.
pub const REDACTED: &str = "<redacted>";

/// `url` without the `user:pass@` of its authority (for links people click:
/// the browser asks for credentials itself).
pub fn strip_userinfo(url: &str) -> String {
    let redacted = redact_url(url);
    match redacted.split_once(&format!("{REDACTED}@")) {
        Some((scheme, rest)) if redacted != url => format!("{scheme}{rest}"),
        _ => url.to_string(),
    }
}

/// `user:pass@` in a URL's authority becomes `<redacted>@`. Works on any
/// string, parsable or not, so an invalid URL in an error message leaks
/// nothing either.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!(
            "{}{REDACTED}{}",
            &url[..authority_start],
            &url[authority_start + at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_redacted_or_stripped() {
        let u = "https://u:p%40ss@slaprobe.example:8443/x?y#z";
        assert_eq!(
            redact_url(u),
            "https://<redacted>@slaprobe.example:8443/x?y#z"
        );
        assert_eq!(strip_userinfo(u), "https://slaprobe.example:8443/x?y#z");
        assert_eq!(strip_userinfo("http://plain:80/a@b"), "http://plain:80/a@b");
        assert_eq!(strip_userinfo("not a url"), "not a url");
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(duration(Duration::ZERO), "0s");
    }

    #[test]
    fn url_userinfo_is_redacted() {
        assert_eq!(
            redact_url("https://bob:s3cr@t@am:9093/path@x"),
            "https://<redacted>@am:9093/path@x"
        );
        assert_eq!(redact_url("http://am:9093"), "http://am:9093");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn numbers_and_percentages() {
        assert_eq!(percent(0.9995), "99.95%");
        assert_eq!(percent(0.99), "99%");
        assert_eq!(number(14.4, 2), "14.4");
        assert_eq!(number(6.0, 2), "6");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn error_chains_name_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 127.0.0.1:1")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "address in use",
        ));
        assert_eq!(
            error_chain(&e),
            "cannot listen on 127.0.0.1:1: address in use"
        );
    }
}
