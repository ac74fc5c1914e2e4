//! [`GroupOffsets`] against fake brokers on loopback: plaintext
//! listeners that answer ApiVersions, FindCoordinator v4 and OffsetFetch
//! v8 as a test says, and log what they were asked.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::brokers::wire::{put_compact_len, put_compact_str, Reader};

/// What a fake broker answers for one group.
#[derive(Clone)]
enum Answer {
    /// Its coordinator is broker `.0` (an index into the test's brokers).
    At(usize),
    /// A Kafka error code.
    Error(i16),
}

#[derive(Default)]
struct Script {
    /// FindCoordinator: each group's answer, popped per lookup (the last
    /// stays).
    coordinators: HashMap<String, Vec<Answer>>,
    /// OffsetFetch on broker i: each group's error code, popped per
    /// fetch (the last stays); absent: committed at offset 7 of `t/0`.
    fetch_errors: HashMap<(usize, String), Vec<i16>>,
    /// The highest OffsetFetch version the brokers serve.
    max_fetch: i16,
    /// Brokers that close each connection after an OffsetFetch answer.
    close_after_fetch: Vec<usize>,
    /// (broker, api key, groups asked), in order.
    asked: Vec<(usize, i16, Vec<String>)>,
    ports: Vec<u16>,
}

type Shared = Arc<Mutex<Script>>;

fn pop<T: Clone>(v: &mut Vec<T>) -> Option<T> {
    if v.len() > 1 {
        Some(v.remove(0))
    } else {
        v.first().cloned()
    }
}

/// `n` fake brokers; their listener is the first's.
fn brokers(n: usize, script: Script) -> (Listener, Shared) {
    let shared = Arc::new(Mutex::new(script));
    for i in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        shared
            .lock()
            .unwrap()
            .ports
            .push(l.local_addr().unwrap().port());
        let shared = shared.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(i, conn, shared));
            }
        });
    }
    let port = shared.lock().unwrap().ports[0];
    let listener =
        Listener::new("default", &format!("127.0.0.1:{port}"), &BTreeMap::new()).expect("listener");
    (listener, shared)
}

fn serve(me: usize, mut conn: TcpStream, shared: Shared) {
    loop {
        let mut size = [0u8; 4];
        if conn.read_exact(&mut size).is_err() {
            return;
        }
        let mut frame = vec![0; i32::from_be_bytes(size) as usize];
        if conn.read_exact(&mut frame).is_err() {
            return;
        }
        let mut r = Reader::new(&frame, "request");
        let (api, version, correlation) = (r.i16().unwrap(), r.i16().unwrap(), r.i32().unwrap());
        let id = r.i16().unwrap();
        let mut rest = &frame[10 + id as usize..];
        let flexible = api == g::FIND_COORDINATOR || api == g::OFFSET_FETCH;
        if flexible {
            rest = &rest[1..]; // no tagged fields
        }
        let (body, close) = answer(me, api, version, rest, &shared);
        let mut out = correlation.to_be_bytes().to_vec();
        if flexible {
            out.push(0);
        }
        out.extend_from_slice(&body);
        let mut framed = (out.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&out);
        if conn.write_all(&framed).is_err() || close {
            return;
        }
    }
}

fn groups_asked(api: i16, body: &[u8]) -> Vec<String> {
    // FindCoordinator's key type (a byte) comes first.
    let body = if api == g::FIND_COORDINATOR {
        &body[1..]
    } else {
        body
    };
    let mut r = Reader::new(body, "request");
    let n = r.compact_len().unwrap();
    (0..n)
        .map(|_| {
            let group = r.compact_str().unwrap();
            if api == g::OFFSET_FETCH {
                assert_eq!(r.uvarint().unwrap(), 0, "topics: null (all)");
                r.tags().unwrap();
            }
            group
        })
        .collect()
}

fn answer(me: usize, api: i16, version: i16, body: &[u8], shared: &Shared) -> (Vec<u8>, bool) {
    let mut s = shared.lock().unwrap();
    let mut b = Vec::new();
    match api {
        wire::API_VERSIONS => {
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&2i32.to_be_bytes());
            for (k, max) in [(g::OFFSET_FETCH, s.max_fetch), (g::FIND_COORDINATOR, 4)] {
                for v in [k, 0, max] {
                    b.extend_from_slice(&v.to_be_bytes());
                }
            }
            (b, false)
        }
        wire::SASL_HANDSHAKE => {
            // Only SCRAM-SHA-512 here.
            s.asked.push((me, api, Vec::new()));
            b.extend_from_slice(&wire::UNSUPPORTED_SASL_MECHANISM.to_be_bytes());
            b.extend_from_slice(&1i32.to_be_bytes());
            let m = "SCRAM-SHA-512";
            b.extend_from_slice(&(m.len() as i16).to_be_bytes());
            b.extend_from_slice(m.as_bytes());
            (b, false)
        }
        g::FIND_COORDINATOR => {
            assert_eq!(version, g::FIND_COORDINATOR_VERSION);
            let asked = groups_asked(api, body);
            s.asked.push((me, api, asked.clone()));
            b.extend_from_slice(&0i32.to_be_bytes());
            put_compact_len(&mut b, asked.len());
            for group in asked {
                let a = s
                    .coordinators
                    .get_mut(&group)
                    .and_then(pop)
                    .unwrap_or(Answer::Error(15));
                put_compact_str(&mut b, &group);
                let (node, port, error) = match a {
                    Answer::At(i) => (i as i32, i32::from(s.ports[i]), 0i16),
                    Answer::Error(e) => (-1, -1, e),
                };
                b.extend_from_slice(&node.to_be_bytes());
                put_compact_str(&mut b, if error == 0 { "127.0.0.1" } else { "" });
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&error.to_be_bytes());
                b.push(0);
                b.push(0);
            }
            b.push(0);
            (b, false)
        }
        g::OFFSET_FETCH => {
            assert_eq!(version, g::OFFSET_FETCH_VERSION);
            let asked = groups_asked(api, body);
            s.asked.push((me, api, asked.clone()));
            b.extend_from_slice(&0i32.to_be_bytes());
            put_compact_len(&mut b, asked.len());
            for group in asked {
                let error = s
                    .fetch_errors
                    .get_mut(&(me, group.clone()))
                    .and_then(pop)
                    .unwrap_or(0);
                put_compact_str(&mut b, &group);
                if error == 0 {
                    put_compact_len(&mut b, 1);
                    put_compact_str(&mut b, "t");
                    put_compact_len(&mut b, 1);
                    b.extend_from_slice(&0i32.to_be_bytes());
                    b.extend_from_slice(&7i64.to_be_bytes());
                    b.extend_from_slice(&(-1i32).to_be_bytes());
                    b.push(1); // metadata ""
                    b.extend_from_slice(&0i16.to_be_bytes());
                    b.push(0);
                    b.push(0);
                } else {
                    put_compact_len(&mut b, 0);
                }
                b.extend_from_slice(&error.to_be_bytes());
                b.push(0);
            }
            b.push(0);
            (b, s.close_after_fetch.contains(&me))
        }
        other => panic!("unexpected request {other}"),
    }
}

/// Requests counted per (broker, request).
type Counts = Arc<Mutex<BTreeMap<(String, String), u32>>>;

fn counter() -> (Counts, impl Fn(&str, &str) + Sync) {
    let counts: Counts = Arc::default();
    let c = counts.clone();
    let count = move |broker: &str, request: &str| {
        *c.lock()
            .unwrap()
            .entry((broker.to_string(), request.to_string()))
            .or_default() += 1;
    };
    (counts, count)
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

const T: Duration = Duration::from_secs(5);

#[test]
fn one_lookup_then_one_fetch_per_coordinator_and_a_moved_group_asked_again() {
    let mut script = Script {
        max_fetch: 9,
        ..Script::default()
    };
    for (group, answers) in [
        ("a", vec![Answer::At(0)]),
        ("b", vec![Answer::At(0), Answer::At(1)]),
        ("c", vec![Answer::At(1)]),
        ("denied", vec![Answer::Error(30)]),
    ] {
        script.coordinators.insert(group.into(), answers);
    }
    // b moved to broker 1 between the lookup and the fetch.
    script.fetch_errors.insert((0, "b".into()), vec![16, 0]);
    let (listener, shared) = brokers(2, script);
    let reader = GroupOffsets::new(listener).expect("plaintext");
    let (counts, count) = counter();
    let groups = names(&["a", "b", "c", "denied"]);
    let got = reader.committed(&groups, T, &count).expect("batched");
    for g in ["a", "b", "c"] {
        assert_eq!(got[g], Ok(vec![("t".to_string(), 0, 7)]), "{g}");
    }
    assert_eq!(
        got["denied"],
        Err("Broker: Group authorization failed".into())
    );
    let asked = shared.lock().unwrap().asked.clone();
    let finds: Vec<_> = asked
        .iter()
        .filter(|(_, api, _)| *api == g::FIND_COORDINATOR)
        .map(|(_, _, groups)| groups.len())
        .collect();
    assert_eq!(finds, vec![4, 1], "every group in one lookup, then b again");
    let fetches = |asked: &[(usize, i16, Vec<String>)], broker: usize| {
        asked
            .iter()
            .filter(|(b, api, _)| *b == broker && *api == g::OFFSET_FETCH)
            .count()
    };
    assert_eq!((fetches(&asked, 0), fetches(&asked, 1)), (1, 2));

    // The next read: no lookup, one fetch per coordinator, on the same
    // connections.
    shared.lock().unwrap().asked.clear();
    let got = reader.committed(&groups, T, &count).expect("batched");
    assert!(got["b"].is_ok() && got["c"].is_ok());
    let asked = shared.lock().unwrap().asked.clone();
    assert_eq!(
        asked.len(),
        2 + 1,
        "{asked:?}: a fetch each, denied looked up"
    );
    assert_eq!((fetches(&asked, 0), fetches(&asked, 1)), (1, 1));
    let counts = counts.lock().unwrap();
    assert_eq!(counts[&("0".into(), "OffsetFetch".into())], 2);
    assert_eq!(counts[&("bootstrap".into(), "ApiVersion".into())], 1);
    assert_eq!(counts[&("1".into(), "ApiVersion".into())], 1);
}

#[test]
fn a_connection_the_broker_closed_is_opened_again_within_the_read() {
    let mut script = Script {
        max_fetch: 8,
        close_after_fetch: vec![0],
        ..Script::default()
    };
    script.coordinators.insert("a".into(), vec![Answer::At(0)]);
    let (listener, _shared) = brokers(1, script);
    let reader = GroupOffsets::new(listener).expect("plaintext");
    let (_, count) = counter();
    for read in 0..3 {
        let got = reader
            .committed(&names(&["a"]), T, &count)
            .expect("batched");
        assert_eq!(got["a"], Ok(vec![("t".to_string(), 0, 7)]), "read {read}");
    }
}

#[test]
fn brokers_without_the_batched_versions_are_left_to_librdkafka() {
    let mut script = Script {
        max_fetch: 6,
        ..Script::default()
    };
    script.coordinators.insert("a".into(), vec![Answer::At(0)]);
    let (listener, shared) = brokers(1, script);
    let reader = GroupOffsets::new(listener).expect("plaintext");
    let (_, count) = counter();
    assert!(reader.committed(&names(&["a"]), T, &count).is_none());
    assert!(reader.unsupported().is_some());
    assert!(reader.committed(&names(&["a"]), T, &count).is_none());
    assert!(shared.lock().unwrap().asked.is_empty(), "nothing asked");
}

#[test]
fn a_cluster_that_cannot_be_reached_gives_each_group_an_error() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listener =
        Listener::new("default", &format!("127.0.0.1:{port}"), &BTreeMap::new()).unwrap();
    let reader = GroupOffsets::new(listener).expect("plaintext");
    let (_, count) = counter();
    let got = reader
        .committed(&names(&["a", "b"]), T, &count)
        .expect("not known to be unsupported");
    assert_eq!(got.len(), 2);
    for g in ["a", "b"] {
        let e = got[g].as_ref().expect_err(g);
        assert!(e.contains("tcp failed"), "{g}: {e}");
    }
}

#[test]
fn a_failed_tls_or_sasl_stage_leaves_the_cluster_to_librdkafka() {
    // The broker does not take PLAIN: slaprobe's own SASL stage fails
    // where librdkafka, reading the same options, may get in.
    let mut script = Script {
        max_fetch: 8,
        ..Script::default()
    };
    script.coordinators.insert("a".into(), vec![Answer::At(0)]);
    let (_, shared) = brokers(1, script);
    let port = shared.lock().unwrap().ports[0];
    let options: BTreeMap<String, String> = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanisms", "PLAIN"),
        ("sasl.username", "u"),
        ("sasl.password", "p"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let listener = Listener::new("default", &format!("127.0.0.1:{port}"), &options).unwrap();
    let reader = GroupOffsets::new(listener).expect("PLAIN is spoken");
    let (_, count) = counter();
    assert!(reader.committed(&names(&["a"]), T, &count).is_none());
    let why = reader.unsupported().expect("why");
    assert!(why.contains("sasl failed"), "{why}");
    let asked = shared.lock().unwrap().asked.clone();
    assert_eq!(asked.len(), 1, "the handshake only: {asked:?}");
    assert_eq!(asked[0].1, wire::SASL_HANDSHAKE);
}
