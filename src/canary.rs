//! The canary codec (SPEC §3): identity, headers and heartbeat payloads
//! (pipeline payload templates are in `template`).
//!
//! Encoding happens once per canary on the produce path and decoding once per
//! record on every consumed topic, most of which may be foreign traffic; the
//! decoder therefore rejects foreign records by looking at one header and a
//! few bytes, allocates nothing, and never panics on arbitrary input.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// Header carrying the canary id.
pub const ID_HEADER: &str = "slaprobe-id";
/// Header carrying the send time, Unix nanoseconds (wall clock), decimal.
pub const SENT_HEADER: &str = "slaprobe-sent-ns";

/// A random 64-bit value drawn at process start; it tells this process'
/// canaries from those of other instances and earlier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId(pub u64);

impl RunId {
    pub fn random() -> RunId {
        RunId(rand::random())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A canary id, `<probe>/<run>/<partition>/<seq>`, borrowed from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryId<'a> {
    pub probe: &'a str,
    pub run: RunId,
    pub partition: i32,
    pub seq: u64,
}

impl fmt::Display for CanaryId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.probe, self.run, self.partition, self.seq
        )
    }
}

/// Longest id we accept: probe names are bounded by config validation, this
/// only stops us from scanning large foreign header values.
const MAX_ID_LEN: usize = 512;

impl<'a> CanaryId<'a> {
    /// Parses an id; `None` for anything that is not exactly one.
    pub fn parse(bytes: &'a [u8]) -> Option<CanaryId<'a>> {
        if bytes.len() > MAX_ID_LEN {
            return None;
        }
        let s = std::str::from_utf8(bytes).ok()?;
        let mut it = s.rsplitn(4, '/');
        let seq = parse_decimal(it.next()?)?;
        let partition = i32::try_from(parse_decimal(it.next()?)?).ok()?;
        let run = it.next()?;
        let probe = it.next()?;
        if probe.is_empty() || probe.contains('/') || run.len() != 16 {
            return None;
        }
        if !run.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let run = RunId(u64::from_str_radix(run, 16).ok()?);
        Some(CanaryId {
            probe,
            run,
            partition,
            seq,
        })
    }
}

/// Strict unsigned decimal: no sign, no leading `+`, at least one digit.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the `slaprobe-sent-ns` header value.
pub fn parse_sent_ns(bytes: &[u8]) -> Option<u64> {
    parse_decimal(std::str::from_utf8(bytes).ok()?)
}

/// Unix time in nanoseconds; 0 if the clock is before 1970.
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Everything the codec needs to know about one canary being sent.
#[derive(Debug, Clone, Copy)]
pub struct Canary<'a> {
    pub probe: &'a str,
    pub run: RunId,
    pub partition: i32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Canary<'_> {
    pub fn id(&self) -> CanaryId<'_> {
        CanaryId {
            probe: self.probe,
            run: self.run,
            partition: self.partition,
            seq: self.seq,
        }
    }

    /// Writes the heartbeat payload into `out` (cleared first): a JSON object
    /// with the id and send time, padded with `x` to `payload_bytes` (the
    /// payload is longer when the fixed part alone exceeds it).
    pub fn write_heartbeat_payload(&self, payload_bytes: usize, out: &mut String) {
        out.clear();
        // Ids contain only [A-Za-z0-9._-/] (probe names are validated), so no
        // JSON escaping is needed.
        let _ = write!(
            out,
            r#"{{"slaprobe":1,"id":"{}","sent_ns":{},"pad":""#,
            self.id(),
            self.sent_ns
        );
        let fixed = out.len() + 2; // the closing `"}`
        for _ in fixed..payload_bytes {
            out.push('x');
        }
        out.push_str("\"}");
    }
}

/// A canary decoded from a record's headers, or why the record is foreign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    Canary {
        id: CanaryId<'a>,
        sent_ns: Option<u64>,
    },
    /// No `slaprobe-id` header: ordinary traffic.
    NotCanary,
    /// A `slaprobe-id` header that is not a valid id.
    Malformed,
}

/// Decodes a record by its headers. `headers` yields (name, value) pairs.
pub fn decode_headers<'a, I>(headers: I) -> Decoded<'a>
where
    I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    let mut id = None;
    let mut sent_ns = None;
    for (name, value) in headers {
        if name == ID_HEADER {
            id = Some(value);
        } else if name == SENT_HEADER {
            sent_ns = value.and_then(parse_sent_ns);
        }
    }
    match id {
        None => Decoded::NotCanary,
        Some(value) => match value.and_then(CanaryId::parse) {
            Some(id) => Decoded::Canary { id, sent_ns },
            None => Decoded::Malformed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Canary<'static> {
        Canary {
            probe: "hb-1",
            run: RunId(0x0123_4567_89ab_cdef),
            partition: 3,
            seq: 42,
            sent_ns: 1_700_000_000_123_456_789,
        }
    }

    #[test]
    fn id_round_trips() {
        let c = canary();
        let text = c.id().to_string();
        assert_eq!(text, "hb-1/0123456789abcdef/3/42");
        assert_eq!(CanaryId::parse(text.as_bytes()), Some(c.id()));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            &b""[..],
            b"hb",
            b"hb/0123456789abcdef/3",
            b"/0123456789abcdef/3/42",
            b"hb/0123456789abcdeg/3/42",
            b"hb/0123456789abcde/3/42",
            b"hb/0123456789abcdef/-3/42",
            b"hb/0123456789abcdef/3/+42",
            b"hb/0123456789abcdef/3/",
            b"hb/0123456789abcdef/99999999999/42",
            b"hb/0123456789abcdef/3/99999999999999999999999",
            b"\xff\xfe/0123456789abcdef/3/42",
        ] {
            assert_eq!(
                CanaryId::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'a'; 10_000];
        assert_eq!(CanaryId::parse(&long), None);
    }

    #[test]
    fn heartbeat_payload_is_padded_json() {
        let mut out = String::new();
        canary().write_heartbeat_payload(256, &mut out);
        assert_eq!(out.len(), 256);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["id"], "hb-1/0123456789abcdef/3/42");
        assert_eq!(v["sent_ns"], 1_700_000_000_123_456_789u64);
        // Smaller than the fixed part: not truncated, just unpadded.
        canary().write_heartbeat_payload(10, &mut out);
        assert!(out.len() > 10);
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    }

    #[test]
    fn headers_decode_and_reject_foreign() {
        let id = b"hb-1/0123456789abcdef/3/42";
        let decoded = decode_headers([
            ("trace", Some(&b"x"[..])),
            (ID_HEADER, Some(&id[..])),
            (SENT_HEADER, Some(&b"123"[..])),
        ]);
        assert_eq!(
            decoded,
            Decoded::Canary {
                id: canary().id(),
                sent_ns: Some(123)
            }
        );
        assert_eq!(
            decode_headers([("trace", Some(&b"x"[..]))]),
            Decoded::NotCanary
        );
        assert_eq!(decode_headers(Vec::new()), Decoded::NotCanary);
        assert_eq!(decode_headers([(ID_HEADER, None)]), Decoded::Malformed);
        assert_eq!(
            decode_headers([(ID_HEADER, Some(&b"garbage"[..]))]),
            Decoded::Malformed
        );
        // A bad sent header does not make a canary foreign; it is just unknown.
        assert_eq!(
            decode_headers([(ID_HEADER, Some(&id[..])), (SENT_HEADER, Some(&b"-1"[..]))]),
            Decoded::Canary {
                id: canary().id(),
                sent_ns: None
            }
        );
    }
}
