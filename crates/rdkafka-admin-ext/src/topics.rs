//! The partitions and leaders of many topics in one request: DescribeTopics
//! (a Metadata request naming the topics, which never creates one).

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;

use super::{remaining, text, Event, Options, Queue};

/// A topic's partitions as (partition, leader; `None` when leaderless),
/// sorted by partition.
pub type Partitions = Vec<(i32, Option<i32>)>;

/// What [`describe_topics`] read: each topic the cluster answered for, with
/// its partitions or the error it gave for that topic (e.g.
/// `UnknownTopicOrPartition`). A topic asked for may be missing when the
/// cluster left it out of its answer.
pub type DescribedTopics = HashMap<String, Result<Partitions, RDKafkaErrorCode>>;

/// Why [`describe_topics`] read nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescribeError {
    /// A topic name with a NUL byte cannot be passed to librdkafka.
    #[error("a topic name contains a NUL byte")]
    NulInName,
    /// The request did not complete within the timeout.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// librdkafka could not allocate what the requests need.
    #[error("librdkafka could not create the {0}")]
    Setup(&'static str),
    /// The request failed as a whole (no broker reachable, ...).
    #[error("{message}")]
    Failed {
        code: RDKafkaErrorCode,
        message: String,
    },
}

/// The partitions and leaders of `topics`, from one DescribeTopics request.
/// Blocks up to `timeout`; no request for no topics.
pub fn describe_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    timeout: Duration,
) -> Result<DescribedTopics, DescribeError> {
    if topics.is_empty() {
        return Ok(HashMap::new());
    }
    let deadline = Instant::now() + timeout;
    let rk = client.native_ptr();
    let names = topics
        .iter()
        .map(|t| CString::new(t.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| DescribeError::NulInName)?;
    let queue = Queue::new(rk).ok_or(DescribeError::Setup("result queue"))?;
    let collection = Collection::new(&names)?;
    let options = Options::new(
        rk,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        0,
        remaining(deadline),
    )
    .ok_or(DescribeError::Setup("admin options"))?;
    // SAFETY: live client handle, collection, options and queue; librdkafka
    // copies the collection and the options.
    unsafe {
        rd::rd_kafka_DescribeTopics(
            rk,
            collection.0.as_ptr(),
            options.0.as_ptr(),
            queue.0.as_ptr(),
        )
    };
    while Instant::now() < deadline {
        let Some(event) = queue.poll(remaining(deadline)) else {
            continue;
        };
        if event.kind() != rd::RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT {
            continue;
        }
        if let Some((code, message)) = event.error() {
            return Err(DescribeError::Failed {
                code: code.into(),
                message,
            });
        }
        return Ok(event.described_topics());
    }
    Err(DescribeError::NoAnswer(timeout))
}

/// The topic names of a DescribeTopics request.
struct Collection(NonNull<rd::rd_kafka_TopicCollection_t>);

impl Collection {
    fn new(names: &[CString]) -> Result<Collection, DescribeError> {
        let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: an array of `len` valid NUL-terminated strings, which
        // librdkafka copies; returns a new collection, or NULL.
        let raw = unsafe {
            rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len())
        };
        NonNull::new(raw)
            .map(Collection)
            .ok_or(DescribeError::Setup("topic collection"))
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_TopicCollection_of_topic_names, not
        // NULL, destroyed once, here.
        unsafe { rd::rd_kafka_TopicCollection_destroy(self.0.as_ptr()) }
    }
}

/// The `n` elements of a C array owned by a live event; empty for NULL.
///
/// # Safety
/// `array` is NULL or points to `n` elements that outlive the slice.
unsafe fn elements<'a, T>(array: *mut *const T, n: usize) -> &'a [*const T] {
    if array.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: by the caller's contract.
    unsafe { std::slice::from_raw_parts(array, n) }
}

impl Event {
    /// A DescribeTopics result's topics (the caller checked the type and
    /// that the request as a whole succeeded).
    fn described_topics(&self) -> DescribedTopics {
        let mut out = HashMap::new();
        // SAFETY: live event of this type; the result is the event's (or NULL).
        let result = unsafe { rd::rd_kafka_event_DescribeTopics_result(self.0.as_ptr()) };
        if result.is_null() {
            return out;
        }
        let mut n = 0usize;
        // SAFETY: a live result; `n` receives the array's length; the array
        // and every description in it are the event's.
        let topics =
            unsafe { elements(rd::rd_kafka_DescribeTopics_result_topics(result, &mut n), n) };
        for &t in topics.iter().filter(|t| !t.is_null()) {
            // SAFETY: a live description of this event; its name is copied.
            let name = unsafe { text(rd::rd_kafka_TopicDescription_name(t)) };
            // SAFETY: a live description; the error (or NULL) is the event's.
            let error = unsafe { rd::rd_kafka_TopicDescription_error(t) };
            if !error.is_null() {
                // SAFETY: a live error object of this event.
                let code = unsafe { rd::rd_kafka_error_code(error) };
                out.insert(name, Err(code.into()));
                continue;
            }
            let mut n = 0usize;
            // SAFETY: a live description; the array and its partitions are
            // the event's.
            let partitions =
                unsafe { elements(rd::rd_kafka_TopicDescription_partitions(t, &mut n), n) };
            let mut layout: Partitions = partitions
                .iter()
                .filter(|p| !p.is_null())
                .map(|&p| {
                    // SAFETY: a live partition of this event.
                    let id = unsafe { rd::rd_kafka_TopicPartitionInfo_partition(p) };
                    // SAFETY: a live partition; its leader node (NULL when
                    // leaderless) is the event's.
                    let leader = unsafe { rd::rd_kafka_TopicPartitionInfo_leader(p) };
                    // SAFETY: a live node of this event.
                    (
                        id,
                        (!leader.is_null()).then(|| unsafe { rd::rd_kafka_Node_id(leader) }),
                    )
                })
                .collect();
            layout.sort_unstable();
            out.insert(name, Ok(layout));
        }
        out
    }
}
