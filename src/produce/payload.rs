//! What a canary's record holds: the heartbeat payload or a pipeline's
//! templates rendered for one canary, its id and send-time headers, its
//! key.

use crate::canary::template::{Template, Values};
use crate::canary::Canary;
use crate::config::PipelineInput;

/// What a canary's key, value and extra headers are.
pub(crate) enum Payload {
    /// The heartbeat JSON object, keyed by the id.
    Heartbeat,
    /// A pipeline probe's templates.
    Template {
        payload: Template,
        /// `None`: the id.
        key: Option<Template>,
        headers: Vec<(String, String)>,
    },
}

/// What a canary's record carries besides its payload: the id (also the
/// `slaprobe-id` header), the send time (the `slaprobe-sent-ns` header)
/// and the key.
pub(crate) struct CanaryRecord {
    pub(crate) id: String,
    pub(crate) sent: String,
    pub(crate) key: String,
}

impl Payload {
    /// Canary `c`'s record: its payload written into `buf` (reused from
    /// canary to canary), the rest returned.
    pub(crate) fn record(
        &self,
        c: &Canary<'_>,
        payload_bytes: usize,
        buf: &mut String,
    ) -> CanaryRecord {
        let id = c.id().to_string();
        let sent = c.sent_ns.to_string();
        let key = match self {
            Payload::Heartbeat => {
                c.write_heartbeat_payload(payload_bytes, buf);
                id.clone()
            }
            Payload::Template { payload, key, .. } => {
                let run = c.run.to_string();
                let values = Values {
                    id: &id,
                    probe: c.probe,
                    run: &run,
                    seq: c.seq,
                    partition: c.partition,
                    sent_ns: c.sent_ns,
                };
                *buf = payload.render(&values, payload_bytes);
                key.as_ref()
                    .map_or_else(|| id.clone(), |k| k.render(&values, 0))
            }
        };
        CanaryRecord { id, sent, key }
    }

    /// The configured extra headers (pipeline probes).
    pub(crate) fn extra_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let extra: &[(String, String)] = match self {
            Payload::Heartbeat => &[],
            Payload::Template { headers, .. } => headers,
        };
        extra.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn template(input: &PipelineInput) -> Result<Payload, String> {
        Ok(Payload::Template {
            payload: Template::parse(&input.payload)?,
            key: input.key.as_deref().map(Template::parse).transpose()?,
            headers: input
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}
