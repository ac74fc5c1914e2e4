//! The ticker: each interval one canary per partition of the input topic,
//! spread evenly, round-robin; each one registered with the probe's
//! accounting, rendered and handed to the producer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _};
use tokio_util::sync::CancellationToken;

use super::delivery::{Delivery, Producer, ProducerSlot};
use super::payload::{CanaryRecord, Payload};
use crate::canary::{self, Canary, ID_HEADER, SENT_HEADER};
use crate::kafka;
use crate::outcome::{ProduceFailure, Shared};

/// The partitions canaries go to, replaced as the input topic's layout
/// changes.
pub(crate) type Partitions = Arc<RwLock<Arc<Vec<i32>>>>;

/// The most a ticker catches up at once when it is behind by less than an
/// interval: several timer wakes' worth (tokio's timer has a 1 ms grain).
const CATCH_UP: Duration = Duration::from_millis(5);

/// What a ticker wake `late` past its next send time does, with a canary
/// every `slot` and a round every `interval`: how many canaries it sends
/// (every one whose time has come: the timer wakes about once a
/// millisecond, and a slot can be much shorter), and how much of the
/// schedule it skips (after a stall longer than a round or [`CATCH_UP`],
/// rather than bursting).
fn due(late: Duration, slot: Duration, interval: Duration) -> (u64, Duration) {
    let caught_up = late.min(interval.max(CATCH_UP));
    let count = (caught_up.as_nanos() / slot.as_nanos().max(1)) as u64 + 1;
    (count, late - caught_up)
}

/// One probe's sending loop and what it needs (made by
/// [`super::Input::ticker`]).
pub(crate) struct Ticker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) producer: Arc<ProducerSlot>,
    pub(crate) partitions: Partitions,
    pub(crate) payload: Arc<Payload>,
    pub(crate) topic: String,
    pub(crate) interval: Duration,
    pub(crate) payload_bytes: usize,
}

impl Ticker {
    /// Sends canaries until `stop`: each interval one per partition, spread
    /// evenly, round-robin. When it falls behind by more than a round (or
    /// [`CATCH_UP`]) it skips ahead rather than bursting.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let Ticker {
            shared,
            producer,
            partitions,
            payload,
            topic,
            interval,
            payload_bytes,
        } = self;
        let mut buf = String::with_capacity(payload_bytes + 128);
        let mut next = tokio::time::Instant::now();
        let mut rr = 0usize;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            producer.recover().await;
            let client = producer.get();
            let parts = partitions.read().unwrap_or_else(|e| e.into_inner()).clone();
            if parts.is_empty() {
                next += interval;
                continue;
            }
            let slot = (interval / parts.len() as u32).max(Duration::from_nanos(1));
            let now = tokio::time::Instant::now();
            let Some(late) = now.checked_duration_since(next) else {
                continue;
            };
            let (count, skipped) = due(late, slot, interval);
            next += skipped;
            for _ in 0..count {
                let partition = parts[rr % parts.len()];
                rr = rr.wrapping_add(1);
                send_one(
                    &shared,
                    &client,
                    &payload,
                    &topic,
                    partition,
                    payload_bytes,
                    &mut buf,
                );
                next += slot;
            }
        }
    }
}

/// Registers, renders and produces one canary; a produce the client
/// refuses at once is settled as a failed produce here.
fn send_one(
    shared: &Arc<Shared>,
    producer: &Producer,
    payload: &Payload,
    topic: &str,
    partition: i32,
    payload_bytes: usize,
    buf: &mut String,
) {
    let now = Instant::now();
    let sent_ns = canary::unix_ns(SystemTime::now());
    let seq = shared.send(partition, now);
    let c = Canary {
        probe: &shared.name,
        run: shared.run,
        partition,
        seq,
        sent_ns,
    };
    let CanaryRecord { id, sent, key } = payload.record(&c, payload_bytes, buf);
    let mut headers = OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: ID_HEADER,
            value: Some(&id),
        })
        .insert(Header {
            key: SENT_HEADER,
            value: Some(&sent),
        });
    for (k, v) in payload.extra_headers() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    let delivery = Box::new(Delivery {
        shared: shared.clone(),
        partition,
        seq,
        sent: now,
    });
    let record = BaseRecord::with_opaque_to(topic, delivery)
        .partition(partition)
        .key(&key)
        .payload(buf.as_str())
        .timestamp((sent_ns / 1_000_000) as i64)
        .headers(headers);
    if let Err((e, _)) = producer.send(record) {
        if kafka::is_fatal(&e) {
            producer.context().fatal.store(true, Ordering::Relaxed);
        }
        shared.ack(partition, seq, now, Err(ProduceFailure::of(&e)));
    }
}

#[cfg(test)]
mod tests {
    use super::due;
    use std::time::Duration;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// 10,000/s over 6 partitions: a canary every 100 µs. A wake 1 ms late
    /// sends the ten due since and the one due now; one round per wake
    /// (6) kept 4,800/s of 10,000.
    #[test]
    fn a_wake_sends_every_canary_due_since_the_last() {
        assert_eq!(due(us(1_000), us(100), us(600)), (11, Duration::ZERO));
        assert_eq!(due(Duration::ZERO, us(100), us(600)), (1, Duration::ZERO));
        // Slow rates: one per wake.
        assert_eq!(due(us(300), us(10_000), us(60_000)), (1, Duration::ZERO));
    }

    /// After a stall the schedule skips ahead: at most a round (or 5 ms)
    /// of canaries at once.
    #[test]
    fn a_stall_is_skipped_not_burst() {
        let (count, skipped) = due(Duration::from_secs(2), us(10_000), us(60_000));
        assert_eq!(count, 7);
        assert_eq!(skipped, Duration::from_secs(2) - us(60_000));
        let (count, skipped) = due(Duration::from_millis(50), us(100), us(600));
        assert_eq!((count, skipped), (51, Duration::from_millis(45)));
    }
}
