//! Canary key/payload templates: parsing, validation and
//! rendering.
//!
//! The syntax lives here, next to the loader, so that what `check` accepts
//! and what the producer renders can never disagree: a placeholder is `{{`,
//! a name made of letters, digits and `_` (optionally padded with spaces),
//! and `}}`. Any other `{{` is literal text (JSON payloads may contain it).
//! An unknown name is an error, not literal text, because a typo like
//! `{{ids}}` would otherwise silently break matching.

use std::time::{Duration, UNIX_EPOCH};

/// A template placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The canary id `<probe>/<run>/<partition>/<seq>`.
    Id,
    Probe,
    /// The process's random 64-bit run id, 16 hex digits.
    Run,
    Seq,
    Partition,
    /// Send time, Unix nanoseconds (wall clock).
    SentNs,
    /// Send time, RFC 3339 with nanoseconds, UTC.
    SentRfc3339,
    /// Filler that brings the rendering up to `payload_bytes`.
    Pad,
}

impl Placeholder {
    pub const ALL: [Placeholder; 8] = [
        Placeholder::Id,
        Placeholder::Probe,
        Placeholder::Run,
        Placeholder::Seq,
        Placeholder::Partition,
        Placeholder::SentNs,
        Placeholder::SentRfc3339,
        Placeholder::Pad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Id => "id",
            Placeholder::Probe => "probe",
            Placeholder::Run => "run",
            Placeholder::Seq => "seq",
            Placeholder::Partition => "partition",
            Placeholder::SentNs => "sent_ns",
            Placeholder::SentRfc3339 => "sent_rfc3339",
            Placeholder::Pad => "pad",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// `{{id}}, {{probe}}, ...` for error messages.
pub fn valid_placeholders() -> String {
    Placeholder::ALL
        .iter()
        .map(|p| format!("{{{{{}}}}}", p.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// The values a template is rendered with.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    pub id: &'a str,
    pub probe: &'a str,
    pub run: &'a str,
    pub seq: u64,
    pub partition: i32,
    pub sent_ns: u64,
}

/// The filler byte for `{{pad}}`: safe inside JSON strings, headers and keys.
pub const PAD_BYTE: u8 = b'x';

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut pads = 0;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let candidate = after.find("}}").map(|end| (end, after[..end].trim()));
            match candidate {
                Some((end, name))
                    if !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    let Some(p) = Placeholder::from_name(name) else {
                        return Err(format!(
                            "unknown placeholder `{{{{{name}}}}}`; valid placeholders are {}",
                            valid_placeholders()
                        ));
                    };
                    if p == Placeholder::Pad {
                        pads += 1;
                        if pads > 1 {
                            return Err("`{{pad}}` may appear at most once".to_string());
                        }
                    }
                    literal.push_str(&rest[..start]);
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Placeholder(p));
                    rest = &after[end + 2..];
                }
                _ => {
                    literal.push_str(&rest[..start + 2]);
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template { segments })
    }

    pub fn contains(&self, p: Placeholder) -> bool {
        self.segments.contains(&Segment::Placeholder(p))
    }

    /// Render; `{{pad}}` expands to as many [`PAD_BYTE`]s as bring the
    /// result to `target_len` bytes (none if it is already that long).
    pub fn render(&self, v: &Values<'_>, target_len: usize) -> String {
        let mut out = String::with_capacity(target_len);
        let mut pad_at = None;
        for seg in &self.segments {
            match seg {
                Segment::Literal(s) => out.push_str(s),
                Segment::Placeholder(p) => match p {
                    Placeholder::Id => out.push_str(v.id),
                    Placeholder::Probe => out.push_str(v.probe),
                    Placeholder::Run => out.push_str(v.run),
                    Placeholder::Seq => out.push_str(&v.seq.to_string()),
                    Placeholder::Partition => out.push_str(&v.partition.to_string()),
                    Placeholder::SentNs => out.push_str(&v.sent_ns.to_string()),
                    Placeholder::SentRfc3339 => {
                        let t = UNIX_EPOCH + Duration::from_nanos(v.sent_ns);
                        out.push_str(&humantime::format_rfc3339_nanos(t).to_string());
                    }
                    Placeholder::Pad => pad_at = Some(out.len()),
                },
            }
        }
        if let Some(at) = pad_at {
            let n = target_len.saturating_sub(out.len());
            out.insert_str(at, &String::from_utf8_lossy(&vec![PAD_BYTE; n]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            id: "p/0123456789abcdef/0/7",
            probe: "p",
            run: "0123456789abcdef",
            seq: 7,
            partition: 0,
            sent_ns: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn renders_all_placeholders_and_pads_to_size() {
        let t = Template::parse(
            "{{id}}|{{probe}}|{{run}}|{{seq}}|{{ partition }}|{{sent_ns}}|{{sent_rfc3339}}|{{pad}}|",
        )
        .unwrap();
        let s = t.render(&values(), 120);
        assert!(s.starts_with(
            "p/0123456789abcdef/0/7|p|0123456789abcdef|7|0|1700000000000000000|2023-11-14T22:13:20.000000000Z|x"
        ));
        assert_eq!(s.len(), 120);
        assert!(s.ends_with("x|"));
    }

    #[test]
    fn other_braces_are_literal() {
        let t = Template::parse(r#"{"a":{"b":"{{id}}"}}{{"#).unwrap();
        assert_eq!(
            t.render(&values(), 0),
            r#"{"a":{"b":"p/0123456789abcdef/0/7"}}{{"#
        );
    }

    #[test]
    fn unknown_and_repeated_pad_are_errors() {
        let e = Template::parse("{{ids}}").unwrap_err();
        assert!(e.starts_with("unknown placeholder `{{ids}}`; valid placeholders are {{id}}, "));
        assert_eq!(
            Template::parse("{{pad}}{{pad}}").unwrap_err(),
            "`{{pad}}` may appear at most once"
        );
    }
}
