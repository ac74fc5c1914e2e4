//! The canary codec: identity, headers, heartbeat payloads and the matcher
//! that finds a canary id in an output record (pipeline payload templates
//! are in [`template`]).
//!
//! Encoding happens once per canary on the produce path and decoding once per
//! record on every consumed topic, most of which may be foreign traffic; the
//! decoder therefore rejects foreign records by looking at one header and a
//! few bytes, allocates nothing, and never panics on arbitrary input.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod template;

/// Where the canary id is found on an output record.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchRule {
    /// A header of this name holds the id.
    Header(String),
    /// The record key is the id.
    Key,
    /// A JSON pointer (RFC 6901) into the value.
    Json(String),
}

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
/// Heartbeat payload padding, appended in chunks (a byte at a time was 7% of
/// a canary's instructions).
const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

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
        let mut pad = payload_bytes.saturating_sub(fixed);
        out.reserve(pad + 2);
        while pad > 0 {
            let n = pad.min(PAD.len());
            out.push_str(&PAD[..n]);
            pad -= n;
        }
        out.push_str("\"}");
    }
}

/// How a consumed record was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// One of this probe's canaries from this run.
    Ours { partition: i32, seq: u64 },
    /// Anything else; the reason is for debug logs only (all are counted as
    /// foreign).
    Foreign(Foreign),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// The match rule finds no id (no such header, no key, no such field).
    NoId,
    /// The value is not JSON (JSON-pointer rule).
    NotJson,
    /// Something is there but it is not a canary id.
    Malformed,
    OtherProbe,
    /// Another slaprobe instance, or an earlier run of this one.
    OtherRun,
}

/// Finds a probe's canaries among the records of one output, by that
/// output's match rule (the config's `match`).
#[derive(Debug, Clone)]
pub struct Matcher {
    rule: MatchRule,
    probe: String,
    run: RunId,
    /// The run id as it appears inside every id: records whose value lacks
    /// it are foreign without parsing any JSON.
    run_hex: [u8; 16],
}

impl Matcher {
    pub fn new(rule: MatchRule, probe: &str, run: RunId) -> Matcher {
        let mut run_hex = [0u8; 16];
        run_hex.copy_from_slice(run.to_string().as_bytes());
        Matcher {
            rule,
            probe: probe.to_string(),
            run,
            run_hex,
        }
    }

    /// Classifies a record from its key, value and headers (name, value).
    pub fn classify<'h>(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Matched {
        match &self.rule {
            MatchRule::Header(name) => {
                let found = headers.into_iter().find(|(n, _)| n == name);
                self.judge(found.and_then(|(_, v)| v))
            }
            MatchRule::Key => self.judge(key),
            MatchRule::Json(pointer) => {
                let Some(value) = value else {
                    return Matched::Foreign(Foreign::NoId);
                };
                if !value.windows(self.run_hex.len()).any(|w| w == self.run_hex) {
                    return Matched::Foreign(Foreign::OtherRun);
                }
                let Ok(json) = serde_json::from_slice::<serde_json::Value>(value) else {
                    return Matched::Foreign(Foreign::NotJson);
                };
                match json.pointer(pointer) {
                    Some(serde_json::Value::String(id)) => self.judge(Some(id.as_bytes())),
                    Some(_) => Matched::Foreign(Foreign::Malformed),
                    None => Matched::Foreign(Foreign::NoId),
                }
            }
        }
    }

    fn judge(&self, id: Option<&[u8]>) -> Matched {
        let Some(bytes) = id else {
            return Matched::Foreign(Foreign::NoId);
        };
        match CanaryId::parse(bytes) {
            None => Matched::Foreign(Foreign::Malformed),
            Some(id) if id.probe != self.probe => Matched::Foreign(Foreign::OtherProbe),
            Some(id) if id.run != self.run => Matched::Foreign(Foreign::OtherRun),
            Some(id) => Matched::Ours {
                partition: id.partition,
                seq: id.seq,
            },
        }
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
        // Padding in several chunks, up to the 1 MiB limit.
        for size in [241, 242, 1_000, 65_536, 1_048_576] {
            canary().write_heartbeat_payload(size, &mut out);
            assert_eq!(out.len(), size);
            let v: serde_json::Value = serde_json::from_str(&out).expect("json");
            assert!(v["pad"]
                .as_str()
                .is_some_and(|p| p.bytes().all(|b| b == b'x')));
        }
    }

    fn matcher(rule: MatchRule) -> Matcher {
        Matcher::new(rule, "hb-1", RunId(0x0123_4567_89ab_cdef))
    }

    const ID: &[u8] = b"hb-1/0123456789abcdef/3/42";
    const OURS: Matched = Matched::Ours {
        partition: 3,
        seq: 42,
    };

    #[test]
    fn header_rule() {
        let m = matcher(MatchRule::Header(ID_HEADER.into()));
        let hs = |v: &'static [u8]| vec![("trace", Some(&b"x"[..])), (ID_HEADER, Some(v))];
        assert_eq!(m.classify(None, None, hs(ID)), OURS);
        assert_eq!(
            m.classify(None, None, vec![("trace", Some(&b"x"[..]))]),
            Matched::Foreign(Foreign::NoId)
        );
        assert_eq!(
            m.classify(None, None, vec![(ID_HEADER, None)]),
            Matched::Foreign(Foreign::NoId)
        );
        assert_eq!(
            m.classify(None, None, hs(b"garbage")),
            Matched::Foreign(Foreign::Malformed)
        );
        assert_eq!(
            m.classify(None, None, hs(b"other/0123456789abcdef/3/42")),
            Matched::Foreign(Foreign::OtherProbe)
        );
        assert_eq!(
            m.classify(None, None, hs(b"hb-1/00000000000000ff/3/42")),
            Matched::Foreign(Foreign::OtherRun)
        );
    }

    #[test]
    fn key_rule() {
        let m = matcher(MatchRule::Key);
        assert_eq!(m.classify(Some(ID), None, Vec::new()), OURS);
        assert_eq!(
            m.classify(None, Some(ID), Vec::new()),
            Matched::Foreign(Foreign::NoId)
        );
        assert_eq!(
            m.classify(Some(b"\xff\x00"), None, Vec::new()),
            Matched::Foreign(Foreign::Malformed)
        );
    }

    #[test]
    fn json_pointer_rule() {
        let m = matcher(MatchRule::Json("/order/id".into()));
        let v = br#"{"order":{"id":"hb-1/0123456789abcdef/3/42"},"amount":1}"#;
        assert_eq!(m.classify(None, Some(v), Vec::new()), OURS);
        // Not JSON, but mentions our run: parsed and rejected, no panic.
        assert_eq!(
            m.classify(None, Some(b"0123456789abcdef {"), Vec::new()),
            Matched::Foreign(Foreign::NotJson)
        );
        // Ordinary traffic never reaches the JSON parser.
        assert_eq!(
            m.classify(None, Some(b"\x00\x01 not json"), Vec::new()),
            Matched::Foreign(Foreign::OtherRun)
        );
        assert_eq!(
            m.classify(None, None, Vec::new()),
            Matched::Foreign(Foreign::NoId)
        );
        let missing = br#"{"order":{"ref":"hb-1/0123456789abcdef/3/42"}}"#;
        assert_eq!(
            m.classify(None, Some(missing), Vec::new()),
            Matched::Foreign(Foreign::NoId)
        );
        let number = br#"{"order":{"id":7},"x":"0123456789abcdef"}"#;
        assert_eq!(
            m.classify(None, Some(number), Vec::new()),
            Matched::Foreign(Foreign::Malformed)
        );
        // The id in a header does not count for a JSON rule.
        assert_eq!(
            m.classify(Some(ID), Some(b"{}"), vec![(ID_HEADER, Some(ID))]),
            Matched::Foreign(Foreign::OtherRun)
        );
    }
}
