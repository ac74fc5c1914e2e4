//! Many groups' committed offsets in a request per coordinator: one
//! FindCoordinator v4 for the groups whose coordinator is not known yet,
//! then one OffsetFetch v8 per coordinator (at most [`GROUPS_PER_FETCH`]
//! groups each), the coordinators asked in parallel. librdkafka's Admin
//! API sends an OffsetFetch (and often a FindCoordinator) per group.
//!
//! The connections are slaprobe's own ([`super::check::open`]: the
//! listener's TLS and SASL, as the connection checks make them), kept
//! open between reads. A cluster whose brokers do not serve both
//! versions (Kafka before 3.0, librdkafka's mock cluster), a listener
//! whose mechanism slaprobe does not speak (GSSAPI, OAUTHBEARER) and one
//! that refuses these connections' TLS or SASL are read through
//! librdkafka instead: [`GroupOffsets::committed`] says so.
//!
//! Blocking: call it off the async runtime.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::check::{self, Conn, Outcome};
use super::groups::{self as g, Coordinator, Fetched};
use super::listener::{Listener, Sasl};
use super::sasl::Mechanism;
use super::wire::{self, Header};

/// The log line that says a cluster's groups are read the other way.
pub const THROUGH_LIBRDKAFKA: &str =
    "consumer groups' offsets are read through librdkafka, a request per group";

/// The client id of these requests (brokers log it; quotas may name it).
pub const CLIENT_ID: &str = "slaprobe-lag";

/// The most groups in one OffsetFetch: its answer (each group's every
/// committed partition) stays well under the 16 MiB a response may take
/// up to groups of thousands of partitions each.
pub const GROUPS_PER_FETCH: usize = 64;

/// The most groups in one FindCoordinator.
const GROUPS_PER_FIND: usize = 1_000;

/// The most coordinators remembered (a group's is asked again after).
const MAX_REMEMBERED: usize = 100_000;

/// Each group's committed offsets, (topic, partition, offset) per
/// partition with a commit, or why they could not be read.
pub type Committed = HashMap<String, Result<Vec<(String, i32, i64)>, String>>;

/// Counts each request sent: (broker, request type), the broker a node id
/// or `bootstrap`, the type as librdkafka's statistics name it.
pub type Count<'a> = &'a (dyn Fn(&str, &str) + Sync);

type Addr = (String, u16);

/// An open connection and the broker its requests are counted under.
type Pooled = (Conn, String);

/// A cluster's group-offset reader.
pub struct GroupOffsets {
    listener: Listener,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Open connections, by address, with the broker label.
    conns: HashMap<Addr, Pooled>,
    /// Each group's coordinator: (node id, address).
    coordinators: HashMap<String, (i32, Addr)>,
    /// Why the cluster is read through librdkafka instead, once known.
    unsupported: Option<String>,
}

/// Why a connection gave no answer (the connection is gone).
enum ConnError {
    /// The network, the broker, the deadline: the groups are asked again,
    /// or get this as their error.
    Failed(String),
    /// Not this way: a broker that does not serve the batched versions,
    /// or a TLS or SASL stage that failed where librdkafka's connections,
    /// made from the same options, are the ones known to work: the
    /// cluster is read through librdkafka from now on.
    Unsupported(String),
}

impl GroupOffsets {
    /// The reader of the cluster `listener` reaches; `None` when its SASL
    /// mechanism is one slaprobe does not speak (logged).
    pub fn new(listener: Listener) -> Option<GroupOffsets> {
        if let Some(Sasl::NotChecked(mechanism)) = &listener.sasl {
            tracing::info!(reason = %format!("SASL mechanism {mechanism}"), "{THROUGH_LIBRDKAFKA}");
            return None;
        }
        Some(GroupOffsets {
            listener,
            state: Mutex::default(),
        })
    }

    /// Why the cluster is read through librdkafka, once known.
    pub fn unsupported(&self) -> Option<String> {
        self.lock().unsupported.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The committed offsets of `groups`, within `timeout`; `None` when
    /// the cluster does not serve the batched versions (read them through
    /// librdkafka). A group whose coordinator moved or whose connection
    /// failed is asked once more within the time left.
    pub fn committed(
        &self,
        groups: &[String],
        timeout: Duration,
        count: Count,
    ) -> Option<Committed> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        if state.unsupported.is_some() {
            return None;
        }
        let answer = self.read(&mut state, groups, deadline, count);
        if answer.is_none() {
            state.conns.clear();
            tracing::info!(
                reason = state.unsupported.as_deref().unwrap_or_default(),
                "{THROUGH_LIBRDKAFKA}"
            );
        }
        answer
    }

    fn read(
        &self,
        state: &mut State,
        groups: &[String],
        deadline: Instant,
        count: Count,
    ) -> Option<Committed> {
        let mut out = Committed::with_capacity(groups.len());
        let mut asking: Vec<String> = groups.to_vec();
        for attempt in 0..2 {
            let retry = self.read_once(state, &asking, deadline, count, &mut out)?;
            if retry.is_empty() || attempt == 1 || Instant::now() >= deadline {
                for (group, e) in retry {
                    out.insert(group, Err(e));
                }
                break;
            }
            asking = retry.into_keys().collect();
        }
        // Every group asked gets an answer (a fetch thread that panicked
        // gave none).
        for group in groups {
            out.entry(group.clone())
                .or_insert_with(|| Err("no answer".to_string()));
        }
        if state.coordinators.len() > MAX_REMEMBERED {
            state.coordinators.clear();
        }
        Some(out)
    }

    /// One pass: coordinators looked up where unknown, then an OffsetFetch
    /// per coordinator. Answers go to `out`; the groups worth asking again
    /// are returned with their error.
    fn read_once(
        &self,
        state: &mut State,
        groups: &[String],
        deadline: Instant,
        count: Count,
        out: &mut Committed,
    ) -> Option<HashMap<String, String>> {
        let mut retry = HashMap::new();
        let unknown: Vec<&str> = groups
            .iter()
            .filter(|g| !state.coordinators.contains_key(*g))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            match self.find(state, &unknown, deadline, count) {
                Ok(found) => {
                    for c in found {
                        if c.error == 0 {
                            state
                                .coordinators
                                .insert(c.group, (c.node, (c.host, c.port)));
                        } else if g::coordinator_moved(c.error) {
                            retry.insert(c.group, g::error_text(c.error));
                        } else {
                            out.insert(c.group, Err(g::error_text(c.error)));
                        }
                    }
                }
                Err(ConnError::Failed(e)) => {
                    for group in unknown {
                        retry.insert(group.to_string(), e.clone());
                    }
                    return Some(retry);
                }
                Err(ConnError::Unsupported(why)) => {
                    state.unsupported = Some(why);
                    return None;
                }
            }
        }
        // Per coordinator, its groups (those the lookup left unanswered
        // are neither here nor in `out` yet).
        let mut by_coordinator: HashMap<Addr, (i32, Vec<&str>)> = HashMap::new();
        for group in groups {
            if out.contains_key(group) || retry.contains_key(group) {
                continue;
            }
            match state.coordinators.get(group) {
                Some((node, addr)) => by_coordinator
                    .entry(addr.clone())
                    .or_insert_with(|| (*node, Vec::new()))
                    .1
                    .push(group),
                None => {
                    retry.insert(group.clone(), "the coordinator lookup left it out".into());
                }
            }
        }
        let jobs: Vec<(Addr, i32, Vec<&str>, Option<Pooled>)> = by_coordinator
            .into_iter()
            .map(|(addr, (node, groups))| {
                // Counted under the coordinator's id from now on (a
                // bootstrap address is often a broker's own).
                let conn = state
                    .conns
                    .remove(&addr)
                    .map(|(conn, _)| (conn, node.to_string()));
                (addr, node, groups, conn)
            })
            .collect();
        let done: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(addr, node, groups, conn)| {
                    s.spawn(move || {
                        let result = self.fetch(addr.clone(), node, conn, &groups, deadline, count);
                        (addr, groups, result)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (addr, groups, (conn, result)) in done {
            if let Some(conn) = conn {
                state.conns.insert(addr, conn);
            }
            match result {
                Ok(fetched) => {
                    for f in fetched {
                        if f.error == 0 {
                            out.insert(f.group, Ok(f.offsets));
                        } else if g::coordinator_moved(f.error) {
                            state.coordinators.remove(&f.group);
                            retry.insert(f.group, g::error_text(f.error));
                        } else {
                            out.insert(f.group, Err(g::error_text(f.error)));
                        }
                    }
                    for group in groups {
                        if !out.contains_key(group) && !retry.contains_key(group) {
                            retry.insert(
                                group.to_string(),
                                "not in its coordinator's answer".into(),
                            );
                        }
                    }
                }
                Err(ConnError::Failed(e)) => {
                    for group in groups {
                        state.coordinators.remove(group);
                        retry.insert(group.to_string(), e.clone());
                    }
                }
                Err(ConnError::Unsupported(why)) => {
                    state.unsupported = Some(why);
                    return None;
                }
            }
        }
        Some(retry)
    }

    /// The coordinators of `groups`, asked of any open connection, else
    /// of each bootstrap address in turn.
    fn find(
        &self,
        state: &mut State,
        groups: &[&str],
        deadline: Instant,
        count: Count,
    ) -> Result<Vec<Coordinator>, ConnError> {
        let mut last = "no bootstrap address".to_string();
        let open: Vec<Addr> = state.conns.keys().cloned().collect();
        let candidates = open
            .into_iter()
            .chain(self.listener.bootstrap.iter().cloned());
        for addr in candidates {
            let pooled = state.conns.remove(&addr);
            let (mut conn, broker) = match pooled {
                Some((mut conn, broker)) => {
                    conn.set_deadline(deadline);
                    (conn, broker)
                }
                None => match self.open(&addr, "bootstrap", deadline, count) {
                    Ok(c) => c,
                    Err(ConnError::Failed(e)) => {
                        last = e;
                        continue;
                    }
                    Err(unsupported) => return Err(unsupported),
                },
            };
            if !wire::serves(
                &conn.versions,
                g::FIND_COORDINATOR,
                g::FIND_COORDINATOR_VERSION,
            ) || !wire::serves(&conn.versions, g::OFFSET_FETCH, g::OFFSET_FETCH_VERSION)
            {
                return Err(ConnError::Unsupported(format!(
                    "{}:{} does not serve FindCoordinator v{} and OffsetFetch v{}",
                    addr.0,
                    addr.1,
                    g::FIND_COORDINATOR_VERSION,
                    g::OFFSET_FETCH_VERSION
                )));
            }
            let mut found = Vec::with_capacity(groups.len());
            let mut failed = None;
            for chunk in groups.chunks(GROUPS_PER_FIND) {
                let answer = ask(
                    &mut conn,
                    &broker,
                    count,
                    g::FIND_COORDINATOR,
                    g::FIND_COORDINATOR_VERSION,
                    &g::find_coordinators(chunk),
                    "FindCoordinator",
                )
                .and_then(|b| g::find_coordinators_response(&b).map_err(|m| m.to_string()));
                match answer {
                    Ok(c) => found.extend(c),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => {
                    state.conns.insert(addr, (conn, broker));
                    return Ok(found);
                }
                Some(e) => last = format!("{}:{}: {e}", addr.0, addr.1),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(ConnError::Failed(last))
    }

    /// The offsets of `groups` from their coordinator at `addr`: the
    /// connection (to keep) and the answer.
    fn fetch(
        &self,
        addr: Addr,
        node: i32,
        conn: Option<Pooled>,
        groups: &[&str],
        deadline: Instant,
        count: Count,
    ) -> (Option<Pooled>, Result<Vec<Fetched>, ConnError>) {
        let (mut conn, broker) = match conn {
            Some((mut conn, broker)) => {
                conn.set_deadline(deadline);
                (conn, broker)
            }
            None => match self.open(&addr, &node.to_string(), deadline, count) {
                Ok(c) => c,
                Err(e) => return (None, Err(e)),
            },
        };
        if !wire::serves(&conn.versions, g::OFFSET_FETCH, g::OFFSET_FETCH_VERSION) {
            let why = format!(
                "coordinator {node} ({}:{}) does not serve OffsetFetch v{}",
                addr.0,
                addr.1,
                g::OFFSET_FETCH_VERSION
            );
            return (None, Err(ConnError::Unsupported(why)));
        }
        let mut fetched = Vec::with_capacity(groups.len());
        for chunk in groups.chunks(GROUPS_PER_FETCH) {
            let answer = ask(
                &mut conn,
                &broker,
                count,
                g::OFFSET_FETCH,
                g::OFFSET_FETCH_VERSION,
                &g::offset_fetch(chunk),
                "OffsetFetch",
            )
            .and_then(|b| g::offset_fetch_response(&b).map_err(|m| m.to_string()));
            match answer {
                Ok(f) => fetched.extend(f),
                Err(e) => {
                    let e = format!("coordinator {node} ({}:{}): {e}", addr.0, addr.1);
                    return (None, Err(ConnError::Failed(e)));
                }
            }
        }
        (Some((conn, broker)), Ok(fetched))
    }

    /// A new connection to `addr`, through the listener's stages, its
    /// requests counted for `broker`. A TLS or SASL refusal (a
    /// certificate, a mechanism, credentials) is
    /// [`ConnError::Unsupported`]: librdkafka, given the same options, may
    /// read them differently (and if the broker refuses it as well, its
    /// clients say so); a connection cut or timed out on the way is not.
    fn open(
        &self,
        addr: &Addr,
        broker: &str,
        deadline: Instant,
        count: Count,
    ) -> Result<Pooled, ConnError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnError::Failed(format!(
                "{}:{}: no time left to connect",
                addr.0, addr.1
            )));
        }
        let nonce = format!("{:032x}", rand::random::<u128>());
        let mut outcome = Outcome::default();
        let conn = check::open(&self.listener, &addr.0, addr.1, left, &nonce, &mut outcome);
        let passed = |s| outcome.stages.iter().any(|(stage, _)| *stage == s);
        if passed(check::Stage::ApiVersions) {
            count(broker, "ApiVersion");
        }
        if passed(check::Stage::Sasl) {
            count(broker, "SaslHandshake");
            let steps = match &self.listener.sasl {
                Some(Sasl::Run {
                    mechanism: Mechanism::Plain,
                    ..
                }) => 1,
                Some(Sasl::Run { .. }) => 2,
                _ => 1,
            };
            for _ in 0..steps {
                count(broker, "SaslAuthenticate");
            }
        }
        match (conn, outcome.failure) {
            (Some(mut conn), _) => {
                conn.set_deadline(deadline);
                Ok((conn, broker.to_string()))
            }
            (None, Some(f)) => {
                let e = format!(
                    "{}:{}: {} failed: {}",
                    addr.0,
                    addr.1,
                    f.stage.label(),
                    f.message
                );
                // The network (a broker restarting mid-handshake) is asked
                // again; what the options decide is left to librdkafka.
                use check::ErrorClass as C;
                Err(match f.class {
                    C::TlsUntrusted
                    | C::TlsExpired
                    | C::TlsHostname
                    | C::TlsHandshake
                    | C::TlsConfig
                    | C::SaslAuthFailed
                    | C::SaslMechanism
                    | C::SaslServerUnverified => ConnError::Unsupported(e),
                    C::Dns
                    | C::Refused
                    | C::Timeout
                    | C::Unreachable
                    | C::Closed
                    | C::Io
                    | C::Protocol => ConnError::Failed(e),
                })
            }
            (None, None) => Err(ConnError::Failed(format!(
                "{}:{}: cannot connect",
                addr.0, addr.1
            ))),
        }
    }
}

/// One flexible-version request on `conn`, counted for `broker`: the
/// response's body, or what went wrong.
fn ask(
    conn: &mut Conn,
    broker: &str,
    count: Count,
    api_key: i16,
    version: i16,
    body: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, String> {
    count(broker, what);
    let header = Header {
        api_key,
        version,
        client_id: CLIENT_ID,
        flexible: true,
    };
    conn.round_trip(header, body, what).map_err(|(_, e)| e)
}

#[cfg(test)]
mod tests;
