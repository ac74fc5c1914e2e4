//! Reading consumer groups without joining them: their members (ListGroups
//! and DescribeGroups, rdkafka's safe `fetch_group_list`), their committed
//! offsets (the Admin API's ListConsumerGroupOffsets, which rdkafka 0.39
//! does not wrap: called through the `rdkafka-admin-ext` crate)
//! the high watermarks of their partitions (ListOffsets for the latest
//! offset, batched per leader, through `offsets_for_times`) and the
//! timestamps of the records at committed offsets (a fetch from each).
//!
//! Every function blocks up to its timeout: call them off the async
//! runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

/// A group as ListGroups and DescribeGroups show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, `Dead`, ...
    pub state: String,
    /// `None` when its coordinator could not describe it (no state came
    /// back): the group may well have members.
    pub members: Option<usize>,
}

/// Every group the cluster's coordinators know, with its members (one
/// ListGroups per broker and a DescribeGroups for the groups found).
pub fn list<C: ClientContext>(
    client: &Client<C>,
    timeout: Duration,
) -> Result<Vec<GroupInfo>, KafkaError> {
    let list = client.fetch_group_list(None, timeout)?;
    Ok(list
        .groups()
        .iter()
        .map(|g| GroupInfo {
            name: g.name().to_string(),
            state: g.state().to_string(),
            members: (!g.state().is_empty()).then(|| g.members().len()),
        })
        .collect())
}

/// A committed offset: (topic, partition, offset).
pub type Committed = (String, i32, i64);

/// Each group's committed offsets (partitions without a commit are left
/// out), or why they could not be read: one ListConsumerGroupOffsets per
/// group, all in flight at once ([`rdkafka_admin_ext`], the one crate that
/// calls librdkafka's C API); groups that did not answer within `timeout`
/// get a timeout error.
pub fn committed<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    timeout: Duration,
) -> HashMap<String, Result<Vec<Committed>, String>> {
    rdkafka_admin_ext::list_consumer_group_offsets(client, groups, timeout)
        .into_iter()
        .map(|(group, result)| {
            let result = result
                .map(|offsets| {
                    offsets
                        .into_iter()
                        .map(|c| (c.topic, c.partition, c.offset))
                        .collect()
                })
                .map_err(|e| e.to_string());
            (group, result)
        })
        .collect()
}

/// Partitions' high watermarks, and the partitions whose answer was an
/// error (an ACL, a leader gone), with it.
pub type Watermarks = (
    HashMap<(String, i32), i64>,
    Vec<((String, i32), KafkaError)>,
);

/// The high watermark (the offset the next record will get) of each
/// partition, from one ListOffsets per leader. Partitions whose leader did
/// not answer are left out; those answered with an error are returned
/// apart.
pub fn high_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<Watermarks, KafkaError> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        // A timestamp of -1 (Offset::End) asks for the latest offset.
        tpl.add_partition_offset(topic, *partition, Offset::End)?;
    }
    if tpl.count() == 0 {
        return Ok((HashMap::new(), Vec::new()));
    }
    let answer = consumer.offsets_for_times(tpl, timeout)?;
    let mut high = HashMap::new();
    let mut failed = Vec::new();
    for e in answer.elements() {
        let tp = (e.topic().to_string(), e.partition());
        match (e.error(), e.offset()) {
            (Err(error), _) => failed.push((tp, error)),
            (Ok(()), Offset::Offset(o)) => {
                high.insert(tp, o);
            }
            (Ok(()), _) => {}
        }
    }
    Ok((high, failed))
}

/// A record position: ((topic, partition), offset).
pub type At = ((String, i32), i64);

/// The most partitions [`record_times`] fetches from at once.
pub const TURN_PARTITIONS: usize = 100;

/// The timestamp (Unix seconds) of the record at each of `at`, or of the
/// first after it where it is gone (a transaction marker, compacted or
/// deleted by retention): `consumer` is assigned those offsets and polled
/// until each partition gave its first record or `timeout` is over;
/// positions that gave none are left out. A partition asked at several
/// offsets (several groups) is read once per offset, in turns of at most
/// [`TURN_PARTITIONS`] partitions (what is fetched at once: each
/// partition's first batch, at most about `max.partition.fetch.bytes`,
/// is held until the turn ends). An error
/// (e.g. no `Read` ACL on a topic) ends it, returned with what was read.
/// The consumer's assignment is its own while this runs: callers that
/// share it must not run two at once.
pub fn record_times<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    at: &[At],
    timeout: Duration,
) -> (HashMap<At, f64>, Option<KafkaError>) {
    let deadline = Instant::now() + timeout;
    let mut out = HashMap::new();
    let mut failed = None;
    // Round k asks each partition at its k-th offset, in turns of at most
    // TURN_PARTITIONS.
    let mut rounds: Vec<Vec<&At>> = Vec::new();
    let mut asked: HashMap<&(String, i32), usize> = HashMap::new();
    for a in at {
        let k = asked.entry(&a.0).or_default();
        if rounds.len() <= *k {
            rounds.push(Vec::new());
        }
        rounds[*k].push(a);
        *k += 1;
    }
    let turns = rounds
        .iter()
        .flat_map(|round| round.chunks(TURN_PARTITIONS).map(<[&At]>::to_vec));
    for turn in turns {
        let mut tpl = TopicPartitionList::with_capacity(turn.len());
        for ((topic, partition), offset) in &turn {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        if let Err(e) = consumer.assign(&tpl) {
            failed = Some(e);
            break;
        }
        let mut pending: HashMap<(String, i32), i64> =
            turn.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let m = match consumer.poll(left.min(Duration::from_millis(100))) {
                None => continue,
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
            };
            let tp = (m.topic().to_string(), m.partition());
            let Some(&offset) = pending.get(&tp) else {
                continue;
            };
            if m.offset() < offset {
                continue;
            }
            if let Some(ms) = m.timestamp().to_millis() {
                out.insert((tp.clone(), offset), ms as f64 / 1000.0);
            }
            pending.remove(&tp);
        }
        let _ = consumer.unassign();
        if failed.is_some() || Instant::now() >= deadline {
            break;
        }
    }
    (out, failed)
}
