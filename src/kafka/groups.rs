//! Reading consumer groups without joining them: their members (ListGroups
//! and DescribeGroups, rdkafka's safe `fetch_group_list`), their committed
//! offsets (the Admin API's ListConsumerGroupOffsets, which rdkafka 0.39
//! does not wrap: called through the `rdkafka-admin-ext` crate)
//! and the high watermarks of their partitions (ListOffsets for the latest
//! offset, batched per leader, through `offsets_for_times`).
//!
//! Every function blocks up to its timeout: call them off the async
//! runtime.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

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
