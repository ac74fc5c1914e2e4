//! librdkafka Admin API calls that rdkafka 0.39 does not wrap, behind a safe
//! API: the committed offsets of consumer groups (ListConsumerGroupOffsets,
//! which Kafka answers from each group's coordinator with an OffsetFetch),
//! and the partitions and leaders of many topics in one request
//! ([`describe_topics`]: DescribeTopics).
//!
//! This crate is the only place slaprobe calls librdkafka's C API itself;
//! the application crate forbids `unsafe`. Every unsafe block here is one
//! C call (or one read of memory a C call handed out) with its own
//! justification. Every object librdkafka allocates for us is checked for
//! NULL before it is wrapped in a guard that releases it exactly once, and
//! every string and list librdkafka owns is copied out before the event
//! holding it is destroyed.
//!
//! The calls block up to their timeout: call them off an async runtime.
#![deny(unsafe_op_in_unsafe_fn)]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

mod topics;
pub use topics::{describe_topics, DescribeError, DescribedTopics, Partitions};

/// A group's committed offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// The offset of the next record the group will read.
    pub offset: i64,
}

/// Why a group's committed offsets could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetsError {
    /// A group name with a NUL byte cannot be passed to librdkafka.
    #[error("the group name contains a NUL byte")]
    NulInName,
    /// The request did not complete within the timeout.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// librdkafka could not allocate what the request needs.
    #[error("librdkafka could not create the {0}")]
    Setup(&'static str),
    /// The cluster (or librdkafka on its behalf) answered with an error:
    /// not authorized, coordinator not available, ...
    #[error("{0}")]
    Failed(String),
}

/// A group's committed offsets (partitions without a commit are left out),
/// sorted by topic and partition, or why they could not be read.
pub type GroupOffsets = Result<Vec<CommittedOffset>, OffsetsError>;

/// Each of `groups`' committed offsets. One ListConsumerGroupOffsets request
/// per group (librdkafka takes one group per request), all in flight at
/// once, each tagged with its group so that a failed request is reported
/// for its own group; groups without an answer within `timeout` get
/// [`OffsetsError::NoAnswer`]. Every group of `groups` has an entry.
/// Blocks up to `timeout`.
pub fn list_consumer_group_offsets<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    timeout: Duration,
) -> HashMap<String, GroupOffsets> {
    let deadline = Instant::now() + timeout;
    let mut out: HashMap<String, GroupOffsets> = HashMap::with_capacity(groups.len());
    let rk = client.native_ptr();
    let queue = Queue::new(rk);
    let mut pending = 0usize;
    for (index, group) in groups.iter().enumerate() {
        let Ok(name) = CString::new(group.as_str()) else {
            out.insert(group.clone(), Err(OffsetsError::NulInName));
            continue;
        };
        let sent = queue
            .as_ref()
            .ok_or(OffsetsError::Setup("result queue"))
            .and_then(|q| {
                let options = Options::new(
                    rk,
                    rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
                    index,
                    remaining(deadline),
                )
                .ok_or(OffsetsError::Setup("admin options"))?;
                let request = Request::new(&name)?;
                request.send(rk, &options, q);
                Ok(())
            });
        match sent {
            Ok(()) => pending += 1,
            Err(e) => {
                out.insert(group.clone(), Err(e));
            }
        }
    }
    if let Some(queue) = &queue {
        while pending > 0 && Instant::now() < deadline {
            let Some(event) = queue.poll(remaining(deadline)) else {
                continue;
            };
            if event.kind() != rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT {
                continue;
            }
            let Some(group) = groups.get(event.opaque()) else {
                continue;
            };
            pending -= 1;
            out.insert(group.clone(), event.offsets(group));
        }
    }
    for g in groups {
        out.entry(g.clone())
            .or_insert(Err(OffsetsError::NoAnswer(timeout)));
    }
    out
}

/// How long to wait for the next result: at least a millisecond.
fn remaining(deadline: Instant) -> i32 {
    let left = deadline.saturating_duration_since(Instant::now());
    left.as_millis().clamp(1, i32::MAX as u128) as i32
}

/// A C string librdkafka owns, copied; "" for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for
/// the duration of this call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: not NULL, and valid and NUL-terminated by the caller's
    // contract; copied out before returning.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A result queue of our own.
struct Queue(NonNull<rd::rd_kafka_queue_t>);

impl Queue {
    fn new(rk: *mut rd::rd_kafka_t) -> Option<Queue> {
        // SAFETY: `rk` is the live handle of a client the caller borrows
        // for the whole request; the call allocates a new queue (or
        // returns NULL).
        let q = unsafe { rd::rd_kafka_queue_new(rk) };
        NonNull::new(q).map(Queue)
    }

    /// The next event, waiting up to `timeout_ms`.
    fn poll(&self, timeout_ms: i32) -> Option<Event> {
        // SAFETY: the queue is live (destroyed only on drop); the call
        // returns an event we now own, or NULL on timeout.
        let ev = unsafe { rd::rd_kafka_queue_poll(self.0.as_ptr(), timeout_ms) };
        NonNull::new(ev).map(Event)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new, not NULL, destroyed once,
        // here. librdkafka keeps its own reference for requests still in
        // flight and drops their late results.
        unsafe { rd::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// A request's options: its timeout, and an index (e.g. its group's) as the
/// opaque value its result event carries back.
struct Options(NonNull<rd::rd_kafka_AdminOptions_t>);

impl Options {
    /// `None` when librdkafka could not allocate them.
    fn new(
        rk: *mut rd::rd_kafka_t,
        op: rd::rd_kafka_admin_op_t,
        index: usize,
        timeout_ms: i32,
    ) -> Option<Options> {
        // SAFETY: `rk` is a live client handle (see `Queue::new`); the call
        // allocates new options (or returns NULL).
        let raw = unsafe { rd::rd_kafka_AdminOptions_new(rk, op) };
        let options = Options(NonNull::new(raw)?);
        let mut errstr = [0 as c_char; 256];
        // SAFETY: live options; `errstr` is a writable buffer of the length
        // passed. A timeout out of range is refused with an error code and
        // leaves librdkafka's default: harmless, so the code is not read.
        unsafe {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options.0.as_ptr(),
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        // SAFETY: live options; the opaque is an integer librdkafka never
        // dereferences, only hands back in the result event.
        unsafe {
            rd::rd_kafka_AdminOptions_set_opaque(
                options.0.as_ptr(),
                std::ptr::without_provenance_mut::<c_void>(index),
            )
        };
        Some(options)
    }
}

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AdminOptions_new, not NULL, destroyed
        // once, here (librdkafka copied it into any request sent with it).
        unsafe { rd::rd_kafka_AdminOptions_destroy(self.0.as_ptr()) }
    }
}

/// One group's ListConsumerGroupOffsets request.
struct Request(NonNull<rd::rd_kafka_ListConsumerGroupOffsets_t>);

impl Request {
    fn new(group: &CStr) -> Result<Request, OffsetsError> {
        // SAFETY: `group` is a valid NUL-terminated string (librdkafka
        // copies it); NULL partitions ask for every partition the group
        // committed. Returns a new request, or NULL.
        let raw =
            unsafe { rd::rd_kafka_ListConsumerGroupOffsets_new(group.as_ptr(), std::ptr::null()) };
        NonNull::new(raw)
            .map(Request)
            .ok_or(OffsetsError::Setup("request"))
    }

    /// Sends it; the result arrives on `queue` as one event.
    fn send(&self, rk: *mut rd::rd_kafka_t, options: &Options, queue: &Queue) {
        let mut requests = [self.0.as_ptr()];
        // SAFETY: live client handle, options and queue; an array of one
        // live request, which librdkafka copies (ours is destroyed on drop).
        unsafe {
            rd::rd_kafka_ListConsumerGroupOffsets(
                rk,
                requests.as_mut_ptr(),
                requests.len(),
                options.0.as_ptr(),
                queue.0.as_ptr(),
            )
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_ListConsumerGroupOffsets_new, not
        // NULL, destroyed once, here.
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_destroy(self.0.as_ptr()) }
    }
}

/// An event polled from our queue. Everything read from it is copied out
/// while it lives.
struct Event(NonNull<rd::rd_kafka_event_t>);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: returned by rd_kafka_queue_poll, not NULL, destroyed
        // once, here.
        unsafe { rd::rd_kafka_event_destroy(self.0.as_ptr()) }
    }
}

impl Event {
    /// The event's type (`rd::RD_KAFKA_EVENT_…`).
    fn kind(&self) -> i32 {
        // SAFETY: live event.
        unsafe { rd::rd_kafka_event_type(self.0.as_ptr()) }
    }

    /// The request's error, as (code, message), when it failed as a whole.
    fn error(&self) -> Option<(rd::rd_kafka_resp_err_t, String)> {
        let ev = self.0.as_ptr();
        // SAFETY: live event.
        let code = unsafe { rd::rd_kafka_event_error(ev) };
        if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        // SAFETY: live event; the string (or NULL) is the event's, copied by
        // `text` before the event is destroyed.
        Some((code, unsafe { text(rd::rd_kafka_event_error_string(ev)) }))
    }

    /// The index of the group its request was for (see [`Options::new`]).
    fn opaque(&self) -> usize {
        // SAFETY: live event; the opaque is the integer we set, read back
        // as an address and never dereferenced.
        unsafe { rd::rd_kafka_event_opaque(self.0.as_ptr()) }.addr()
    }

    /// The offsets this result holds for `group`.
    fn offsets(&self, group: &str) -> GroupOffsets {
        let ev = self.0.as_ptr();
        if let Some((_, message)) = self.error() {
            return Err(OffsetsError::Failed(message));
        }
        // SAFETY: live event of this type (checked by the caller); the
        // result is the event's (or NULL).
        let result = unsafe { rd::rd_kafka_event_ListConsumerGroupOffsets_result(ev) };
        if result.is_null() {
            return Err(OffsetsError::Failed("an empty result".into()));
        }
        let mut n = 0usize;
        // SAFETY: a live result; `n` receives the array's length.
        let array = unsafe { rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n) };
        let results: &[*const rd::rd_kafka_group_result_t] = if array.is_null() || n == 0 {
            &[]
        } else {
            // SAFETY: librdkafka returns an array of `n` group results,
            // owned by the event, which outlives this slice.
            unsafe { std::slice::from_raw_parts(array, n) }
        };
        // One group per request, so one result: the one named `group` (or
        // the only one).
        let mut found = None;
        for &g in results.iter().filter(|g| !g.is_null()) {
            // SAFETY: a live group result of this event; its name is copied.
            let name = unsafe { text(rd::rd_kafka_group_result_name(g)) };
            if name == group || found.is_none() {
                found = Some(g);
            }
        }
        let Some(g) = found else {
            return Err(OffsetsError::Failed("no result for the group".into()));
        };
        // SAFETY: a live group result; its error (or NULL) is the event's.
        let error = unsafe { rd::rd_kafka_group_result_error(g) };
        if !error.is_null() {
            // SAFETY: a live error object of this event; its string is
            // copied by `text`.
            let message = unsafe { text(rd::rd_kafka_error_string(error)) };
            return Err(OffsetsError::Failed(message));
        }
        // SAFETY: a live group result; the list (or NULL) is the event's.
        let list = unsafe { rd::rd_kafka_group_result_partitions(g) };
        let mut committed = Vec::new();
        if !list.is_null() {
            // SAFETY: not NULL, a partition list owned by the event.
            let list = unsafe { &*list };
            let count = usize::try_from(list.cnt).unwrap_or(0);
            let elems: &[rd::rd_kafka_topic_partition_t] = if list.elems.is_null() || count == 0 {
                &[]
            } else {
                // SAFETY: `elems` points to `cnt` partitions, owned by the
                // event, which outlives this slice.
                unsafe { std::slice::from_raw_parts(list.elems, count) }
            };
            for p in elems {
                // No commit: offset -1 (RD_KAFKA_OFFSET_INVALID); a
                // partition-level error: nothing known either.
                if p.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || p.offset < 0 {
                    continue;
                }
                committed.push(CommittedOffset {
                    // SAFETY: the partition's topic name, NUL-terminated,
                    // owned by the event; copied.
                    topic: unsafe { text(p.topic) },
                    partition: p.partition,
                    offset: p.offset,
                });
            }
        }
        committed.sort();
        Ok(committed)
    }
}
