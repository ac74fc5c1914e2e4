//! The two requests that read many groups' committed offsets in a few
//! round trips, encoded and decoded by hand (pure): FindCoordinator v4
//! (KIP-699: every group's coordinator in one request) and OffsetFetch v8
//! (KIP-709: many groups in one request). Both are flexible versions
//! (compact strings, tagged fields). librdkafka's Admin API sends one
//! OffsetFetch per group.

use super::wire::{self, Malformed, Reader};

pub const OFFSET_FETCH: i16 = 9;
pub const FIND_COORDINATOR: i16 = 10;
/// The versions sent: the first that batch groups.
pub const OFFSET_FETCH_VERSION: i16 = 8;
pub const FIND_COORDINATOR_VERSION: i16 = 4;

/// Kafka error codes that mean "ask the coordinator again": the group
/// moved or its coordinator is loading.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;

/// Whether error `code` goes away by looking the coordinator up again.
pub fn coordinator_moved(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// A Kafka error code in words, as librdkafka says the common ones.
pub fn error_text(code: i16) -> String {
    let text = match code {
        14 => "Coordinator load in progress",
        15 => "Coordinator not available",
        16 => "Not coordinator",
        30 => "Group authorization failed",
        29 => "Topic authorization failed",
        69 => "Group id not found",
        88 => "Unstable offset commit",
        _ => return format!("Broker: error code {code}"),
    };
    format!("Broker: {text}")
}

/// FindCoordinator v4's body: the coordinators of `groups`.
pub fn find_coordinators(groups: &[&str]) -> Vec<u8> {
    let mut b = vec![0u8]; // key type 0: a group
    wire::put_compact_len(&mut b, groups.len());
    for g in groups {
        wire::put_compact_str(&mut b, g);
    }
    b.push(0);
    b
}

/// A group's coordinator, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub group: String,
    pub node: i32,
    pub host: String,
    pub port: u16,
    pub error: i16,
}

/// FindCoordinator v4's answer, a coordinator per group asked.
pub fn find_coordinators_response(body: &[u8]) -> Result<Vec<Coordinator>, Malformed> {
    let mut r = Reader::new(body, "FindCoordinator");
    let _throttle = r.i32()?;
    let n = r.compact_len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let group = r.compact_str()?;
        let node = r.i32()?;
        let host = r.compact_str()?;
        let port = r.i32()?;
        let error = r.i16()?;
        let _message = r.compact_nullable_str()?;
        r.tags()?;
        // A coordinator's port is a port; an error's is -1.
        let port = match u16::try_from(port) {
            Ok(p) => p,
            Err(_) if error != 0 => 0,
            Err(_) => return Err(r.malformed()),
        };
        out.push(Coordinator {
            group,
            node,
            host,
            port,
            error,
        });
    }
    r.tags()?;
    Ok(out)
}

/// OffsetFetch v8's body: every committed offset of each of `groups`
/// (topics null: all of them), unstable offsets allowed (as
/// librdkafka's Admin API asks).
pub fn offset_fetch(groups: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    wire::put_compact_len(&mut b, groups.len());
    for g in groups {
        wire::put_compact_str(&mut b, g);
        b.push(0); // topics: null
        b.push(0); // tagged fields
    }
    b.push(0); // require_stable: false
    b.push(0);
    b
}

/// One group's part of an OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub group: String,
    pub error: i16,
    /// (topic, partition, offset) of the partitions with a commit and no
    /// error.
    pub offsets: Vec<(String, i32, i64)>,
}

/// OffsetFetch v8's answer.
pub fn offset_fetch_response(body: &[u8]) -> Result<Vec<Fetched>, Malformed> {
    let mut r = Reader::new(body, "OffsetFetch");
    let _throttle = r.i32()?;
    let groups = r.compact_len()?;
    let mut out = Vec::with_capacity(groups);
    for _ in 0..groups {
        let group = r.compact_str()?;
        let mut offsets = Vec::new();
        for _ in 0..r.compact_len()? {
            let topic = r.compact_str()?;
            for _ in 0..r.compact_len()? {
                let partition = r.i32()?;
                let offset = r.i64()?;
                let _leader_epoch = r.i32()?;
                let _metadata = r.compact_nullable_str()?;
                let error = r.i16()?;
                r.tags()?;
                // -1: no commit; an error: nothing known either.
                if error == 0 && offset >= 0 {
                    offsets.push((topic.clone(), partition, offset));
                }
            }
            r.tags()?;
        }
        let error = r.i16()?;
        r.tags()?;
        out.push(Fetched {
            group,
            error,
            offsets,
        });
    }
    r.tags()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{put_compact_len, put_compact_str};

    fn coordinators_body(c: &[(&str, i32, &str, i32, i16)]) -> Vec<u8> {
        let mut b = 0i32.to_be_bytes().to_vec();
        put_compact_len(&mut b, c.len());
        for (key, node, host, port, error) in c {
            put_compact_str(&mut b, key);
            b.extend_from_slice(&node.to_be_bytes());
            put_compact_str(&mut b, host);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&error.to_be_bytes());
            b.push(0); // message: null
            b.extend_from_slice(&[1, 7, 1, 0]); // one tagged field
        }
        b.push(0);
        b
    }

    #[test]
    fn find_coordinators_asks_for_every_group_and_reads_each_answer() {
        let req = find_coordinators(&["a", "bc"]);
        assert_eq!(req, vec![0, 3, 2, b'a', 3, b'b', b'c', 0]);
        let b = coordinators_body(&[("a", 2, "k2", 9092, 0), ("bc", -1, "", -1, 30)]);
        assert_eq!(
            find_coordinators_response(&b).unwrap(),
            vec![
                Coordinator {
                    group: "a".into(),
                    node: 2,
                    host: "k2".into(),
                    port: 9092,
                    error: 0
                },
                Coordinator {
                    group: "bc".into(),
                    node: -1,
                    host: "".into(),
                    port: 0,
                    error: 30
                },
            ]
        );
        // A coordinator without an error must have a port.
        let b = coordinators_body(&[("a", 2, "k2", -1, 0)]);
        assert!(find_coordinators_response(&b).is_err());
    }

    /// A topic and (partition, offset, error) of its partitions.
    type Topic<'a> = (&'a str, &'a [(i32, i64, i16)]);

    fn offsets_body(groups: &[(&str, &[Topic], i16)]) -> Vec<u8> {
        let mut b = 0i32.to_be_bytes().to_vec();
        put_compact_len(&mut b, groups.len());
        for (group, topics, error) in groups {
            put_compact_str(&mut b, group);
            put_compact_len(&mut b, topics.len());
            for (topic, partitions) in topics.iter() {
                put_compact_str(&mut b, topic);
                put_compact_len(&mut b, partitions.len());
                for (p, offset, error) in partitions.iter() {
                    b.extend_from_slice(&p.to_be_bytes());
                    b.extend_from_slice(&offset.to_be_bytes());
                    b.extend_from_slice(&(-1i32).to_be_bytes());
                    put_compact_str(&mut b, "");
                    b.extend_from_slice(&error.to_be_bytes());
                    b.push(0);
                }
                b.push(0);
            }
            b.extend_from_slice(&error.to_be_bytes());
            b.push(0);
        }
        b.push(0);
        b
    }

    #[test]
    fn offset_fetch_reads_each_groups_commits_and_errors() {
        let req = offset_fetch(&["g"]);
        assert_eq!(req, vec![2, 2, b'g', 0, 0, 0, 0]);
        let b = offsets_body(&[
            (
                "g1",
                &[
                    ("t", &[(0, 42, 0), (1, -1, 0), (2, 7, 88)]),
                    ("u", &[(3, 0, 0)]),
                ],
                0,
            ),
            ("g2", &[], 30),
        ]);
        assert_eq!(
            offset_fetch_response(&b).unwrap(),
            vec![
                Fetched {
                    group: "g1".into(),
                    error: 0,
                    offsets: vec![("t".into(), 0, 42), ("u".into(), 3, 0)],
                },
                Fetched {
                    group: "g2".into(),
                    error: 30,
                    offsets: vec![],
                },
            ]
        );
    }

    #[test]
    fn a_truncated_answer_is_malformed_not_a_panic() {
        let b = offsets_body(&[("g1", &[("t", &[(0, 42, 0)])], 0)]);
        for cut in 0..b.len() {
            assert!(offset_fetch_response(&b[..cut]).is_err(), "cut at {cut}");
        }
        let b = coordinators_body(&[("a", 2, "k2", 9092, 0)]);
        for cut in 0..b.len() {
            assert!(
                find_coordinators_response(&b[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn errors_read_as_librdkafka_says_them() {
        assert_eq!(error_text(30), "Broker: Group authorization failed");
        assert_eq!(error_text(1000), "Broker: error code 1000");
        assert!(coordinator_moved(NOT_COORDINATOR));
        assert!(!coordinator_moved(30));
    }
}
