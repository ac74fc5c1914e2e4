//! A probe's hot path without a broker: what slaprobe itself spends on a
//! canary between librdkafka calls. Each canary is sent (tracker, the
//! record's id, key, headers and payload), acked, matched from its
//! headers as the consumer does, and arrives; the expiry tick runs every
//! hundred canaries. The same code as `slaprobe run`, only the produce and
//! consume calls are left out.
//!
//! `examples/hot_path.rs` runs it under callgrind to guard its instruction
//! count (`scripts/callgrind-guard.sh`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::canary::{Canary, Matcher, RunId, ID_HEADER, SENT_HEADER};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outcome::{Journal, Readiness, Shared, Sinks};
use crate::produce::payload::{CanaryRecord, Payload};

/// The probe the hot path runs: the first of `config` (its first output).
pub struct HotPath {
    shared: Arc<Shared>,
    matcher: Matcher,
    payload: Payload,
    payload_bytes: usize,
    partitions: i32,
    start: Instant,
    sent: u64,
    buf: String,
}

impl HotPath {
    /// The first probe of `config` over `partitions` partitions, with
    /// fresh metrics; `None` without a probe.
    pub fn new(config: &Config, partitions: i32) -> Option<HotPath> {
        let probe = config.probes.first()?;
        let run = RunId(0x5eed_5eed_5eed_5eed);
        let sinks = Sinks {
            metrics: Metrics::new(&[]),
            readiness: Arc::new(Readiness::new(Vec::<&str>::new(), [probe.name.as_str()])),
            journal: Arc::new(Journal::default()),
            memory: crate::outcome::tracker::Memory::new(crate::outcome::tracker::RESOLVED_MEMORY),
        };
        let shared = Shared::build(probe, run, Vec::new(), &sinks);
        let matcher = Matcher::new(
            probe.outputs().first()?.match_rule.clone(),
            &probe.name,
            run,
        );
        let payload = match &probe.kind {
            crate::config::ProbeKind::Heartbeat(_) => Payload::Heartbeat,
            crate::config::ProbeKind::Pipeline(p) => Payload::template(&p.input).ok()?,
        };
        Some(HotPath {
            shared,
            matcher,
            payload,
            payload_bytes: probe.payload_bytes,
            partitions: partitions.max(1),
            start: Instant::now(),
            sent: 0,
            buf: String::new(),
        })
    }

    /// Sends, acks and receives `canaries` more canaries, 100 µs apart and
    /// each arriving 5 ms after its send; returns how many were delivered
    /// so far.
    pub fn run(&mut self, canaries: u64) -> u64 {
        for _ in 0..canaries {
            let i = self.sent;
            self.sent += 1;
            let partition = (i % self.partitions as u64) as i32;
            let now = self.start + Duration::from_micros(i * 100);
            let seq = self.shared.send(partition, now);
            let c = Canary {
                probe: &self.shared.name,
                run: self.shared.run,
                partition,
                seq,
                sent_ns: 1_700_000_000_000_000_000 + i * 100_000,
            };
            let CanaryRecord { id, sent, key } =
                self.payload.record(&c, self.payload_bytes, &mut self.buf);
            self.shared.ack(partition, seq, now, Ok(()));
            let headers = [
                (ID_HEADER, Some(id.as_bytes())),
                (SENT_HEADER, Some(sent.as_bytes())),
            ];
            let matched = self.matcher.classify(
                Some(key.as_bytes()),
                Some(self.buf.as_bytes()),
                headers.into_iter().chain(
                    self.payload
                        .extra_headers()
                        .map(|(k, v)| (k, Some(v.as_bytes()))),
                ),
            );
            let arrived = now + Duration::from_millis(5);
            self.shared.arrival(
                0,
                matched,
                (partition, (seq + 1) as i64),
                crate::canary::parse_sent_ns(sent.as_bytes()),
                arrived,
                Some(arrived),
            );
            if i % 100 == 99 {
                self.shared.expire(arrived, false);
            }
        }
        self.delivered()
    }

    /// Canaries delivered so far (every one, when the path works).
    pub fn delivered(&self) -> u64 {
        self.shared.delivered(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canary_of_the_hot_path_is_delivered() {
        let config = crate::config::load_str(
            "hot.yaml",
            "clusters: { c: { bootstrap: '127.0.0.1:9092' } }\n\
             probes: [ { name: hb, type: heartbeat, cluster: c, topic: t } ]\n",
            &|_| None,
        )
        .expect("config");
        let mut h = HotPath::new(&config, 6).expect("a probe");
        assert_eq!(h.run(1_000), 1_000);
        assert_eq!(h.run(500), 1_500);
        assert_eq!(h.shared.in_flight(), 0);
        assert_eq!(h.shared.lost(0), 0);
    }
}
