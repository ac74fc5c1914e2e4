//! Reading consumer groups without joining them: their members (ListGroups
//! and DescribeGroups, rdkafka's safe `fetch_group_list`), their committed
//! offsets (the Admin API's ListConsumerGroupOffsets, which rdkafka 0.39
//! does not wrap: the one place slaprobe calls librdkafka's C API itself)
//! and the high watermarks of their partitions (ListOffsets for the latest
//! offset, batched per leader, through `offsets_for_times`).
//!
//! Every function blocks up to its timeout: call them off the async
//! runtime.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

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
/// out), or why they could not be read. One ListConsumerGroupOffsets per
/// group (librdkafka takes one group per request), all in flight at once;
/// groups that did not answer within `timeout` get a timeout error.
pub fn committed<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    timeout: Duration,
) -> HashMap<String, Result<Vec<Committed>, String>> {
    let mut out: HashMap<String, Result<Vec<Committed>, String>> = HashMap::new();
    if groups.is_empty() {
        return out;
    }
    let names: Vec<CString> = groups
        .iter()
        .filter_map(|g| match CString::new(g.as_str()) {
            Ok(c) => Some(c),
            Err(_) => {
                out.insert(g.clone(), Err("group name contains a NUL byte".into()));
                None
            }
        })
        .collect();
    let answered = ffi::list_consumer_group_offsets(client, &names, timeout);
    for (group, result) in answered {
        out.insert(group, result);
    }
    for g in groups {
        out.entry(g.clone())
            .or_insert_with(|| Err(format!("no answer within {timeout:?}")));
    }
    out
}

/// The high watermark (the offset the next record will get) of each
/// partition, from one ListOffsets per leader. Partitions whose leader did
/// not answer are left out.
pub fn high_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<HashMap<(String, i32), i64>, KafkaError> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        // A timestamp of -1 (Offset::End) asks for the latest offset.
        tpl.add_partition_offset(topic, *partition, Offset::End)?;
    }
    if tpl.count() == 0 {
        return Ok(HashMap::new());
    }
    let answer = consumer.offsets_for_times(tpl, timeout)?;
    Ok(answer
        .elements()
        .iter()
        .filter(|e| e.error().is_ok())
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

/// How long to wait for the next result, at least a millisecond.
fn remaining(deadline: Instant) -> i32 {
    let left = deadline.saturating_duration_since(Instant::now());
    left.as_millis().clamp(1, i32::MAX as u128) as i32
}

/// The C calls, and nothing else. Every pointer librdkafka hands out is
/// released on every path: the request objects after the call (librdkafka
/// copies them), the options and queue at the end, each event after it has
/// been read; strings are copied out before their event is destroyed.
#[allow(unsafe_code)]
mod ffi {
    use super::*;
    use rdkafka::bindings as rd;

    /// A result queue of our own, destroyed on drop.
    struct Queue(*mut rd::rd_kafka_queue_t);

    impl Drop for Queue {
        fn drop(&mut self) {
            // SAFETY: created by rd_kafka_queue_new, destroyed once.
            unsafe { rd::rd_kafka_queue_destroy(self.0) }
        }
    }

    struct Options(*mut rd::rd_kafka_AdminOptions_t);

    impl Drop for Options {
        fn drop(&mut self) {
            // SAFETY: created by rd_kafka_AdminOptions_new, destroyed once.
            unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) }
        }
    }

    struct Event(*mut rd::rd_kafka_event_t);

    impl Drop for Event {
        fn drop(&mut self) {
            // SAFETY: returned by rd_kafka_queue_poll, destroyed once.
            unsafe { rd::rd_kafka_event_destroy(self.0) }
        }
    }

    /// A C string librdkafka owns, copied; "" for NULL.
    ///
    /// SAFETY: `p` is NULL or a valid NUL-terminated string.
    unsafe fn text(p: *const std::os::raw::c_char) -> String {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    pub(super) fn list_consumer_group_offsets<C: ClientContext>(
        client: &Client<C>,
        groups: &[CString],
        timeout: Duration,
    ) -> Vec<(String, Result<Vec<Committed>, String>)> {
        let deadline = Instant::now() + timeout;
        let rk = client.native_ptr();
        let mut out = Vec::with_capacity(groups.len());
        // SAFETY: `rk` is a live client handle for the whole call (borrowed
        // from `client`); every object created here is freed by its guard.
        unsafe {
            let queue = Queue(rd::rd_kafka_queue_new(rk));
            let options = Options(rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
            ));
            if queue.0.is_null() || options.0.is_null() {
                return out;
            }
            let mut errstr = [0 as std::os::raw::c_char; 256];
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options.0,
                remaining(deadline),
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            for g in groups {
                // NULL partitions: every partition the group committed.
                let mut request =
                    rd::rd_kafka_ListConsumerGroupOffsets_new(g.as_ptr(), std::ptr::null());
                rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut request, 1, options.0, queue.0);
                rd::rd_kafka_ListConsumerGroupOffsets_destroy(request);
            }
            while out.len() < groups.len() && Instant::now() < deadline {
                let ev = rd::rd_kafka_queue_poll(queue.0, remaining(deadline));
                if ev.is_null() {
                    continue;
                }
                let ev = Event(ev);
                if rd::rd_kafka_event_type(ev.0)
                    != rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT
                {
                    continue;
                }
                let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(ev.0);
                if rd::rd_kafka_event_error(ev.0)
                    != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    || result.is_null()
                {
                    // A request-level error names no group: it is the
                    // answer for the one group of that request, which the
                    // caller reports as unanswered, with this message.
                    let message = text(rd::rd_kafka_event_error_string(ev.0));
                    tracing::debug!(%message, "ListConsumerGroupOffsets failed");
                    out.push((String::new(), Err(message)));
                    continue;
                }
                let mut n = 0usize;
                let results = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n);
                for i in 0..n {
                    let g = *results.add(i);
                    let name = text(rd::rd_kafka_group_result_name(g));
                    let error = rd::rd_kafka_group_result_error(g);
                    if !error.is_null() {
                        out.push((name, Err(text(rd::rd_kafka_error_string(error)))));
                        continue;
                    }
                    let list = rd::rd_kafka_group_result_partitions(g);
                    let mut committed = Vec::new();
                    if !list.is_null() {
                        let list = &*list;
                        for j in 0..usize::try_from(list.cnt).unwrap_or(0) {
                            let p = &*list.elems.add(j);
                            // No commit: offset -1 (RD_KAFKA_OFFSET_INVALID).
                            if p.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                                && p.offset >= 0
                            {
                                committed.push((text(p.topic), p.partition, p.offset));
                            }
                        }
                    }
                    out.push((name, Ok(committed)));
                }
            }
        }
        // Request-level failures carry no name: give their message to the
        // groups that got no answer.
        let failures: Vec<String> = out
            .iter()
            .filter(|(n, _)| n.is_empty())
            .filter_map(|(_, r)| r.as_ref().err().cloned())
            .collect();
        out.retain(|(n, _)| !n.is_empty());
        if let Some(message) = failures.first() {
            for g in groups {
                let name = g.to_string_lossy().into_owned();
                if !out.iter().any(|(n, _)| *n == name) {
                    out.push((name, Err(message.clone())));
                }
            }
        }
        out
    }
}
