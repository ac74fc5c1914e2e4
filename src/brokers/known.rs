//! The brokers each listener advertised, remembered: a broker that stops
//! leaves the cluster's metadata (KRaft fences it), yet it is the one to
//! check. Kept for [`FORGET_AFTER`] after it was last advertised, and in
//! `state_dir` ([`BROKERS_FILE`]) so a restart while a broker is down does
//! not resolve its alert.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::warn;

use super::wire::Broker;
use crate::metrics::IntGaugeVec;
use crate::state::StateDir;

/// The `broker` label of the bootstrap addresses, checked while no broker
/// is known.
pub const BOOTSTRAP: &str = "bootstrap";

/// A broker out of the listener's metadata this long is no longer checked
/// (decommissioned, or renumbered).
pub const FORGET_AFTER: u64 = 86_400;

/// The known brokers are saved when they change, and this often anyway
/// (their last-seen times).
const SAVE_EVERY: u64 = 3_600;

/// The file in `state_dir` that keeps the known brokers.
pub const BROKERS_FILE: &str = "slaprobe.state.brokers";

/// What one check connects to: a broker (its id as label) or the
/// bootstrap addresses, tried in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub label: String,
    pub addresses: Vec<(String, u16)>,
}

/// A broker and when a listener last advertised it (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub broker: Broker,
    pub last_seen: u64,
}

/// One listener's brokers.
#[derive(Debug, Default)]
pub struct Known {
    brokers: BTreeMap<i32, Seen>,
    /// Each target's last result, for logging changes only.
    up: BTreeMap<String, bool>,
    /// The `broker_info` labels set, by broker.
    exported: BTreeMap<i32, [String; 2]>,
    saved_at: u64,
}

impl Known {
    pub fn is_empty(&self) -> bool {
        self.brokers.is_empty()
    }

    /// What to check: every known broker, or the bootstrap addresses while
    /// none is known.
    pub fn targets(&self, bootstrap: &[(String, u16)]) -> Vec<Target> {
        if self.brokers.is_empty() {
            return vec![Target {
                label: BOOTSTRAP.to_string(),
                addresses: bootstrap.to_vec(),
            }];
        }
        self.brokers
            .iter()
            .map(|(id, s)| Target {
                label: id.to_string(),
                addresses: vec![(s.broker.host.clone(), s.broker.port)],
            })
            .collect()
    }

    /// Takes in the brokers a listener advertised at `now`; whether a
    /// broker is new or moved.
    pub fn learn(&mut self, brokers: &[Broker], now: u64) -> bool {
        let mut changed = false;
        for b in brokers {
            match self.brokers.get_mut(&b.id) {
                Some(s) => {
                    changed |= s.broker != *b;
                    s.broker = b.clone();
                    s.last_seen = now;
                }
                None => {
                    changed = true;
                    self.brokers.insert(
                        b.id,
                        Seen {
                            broker: b.clone(),
                            last_seen: now,
                        },
                    );
                }
            }
        }
        changed
    }

    /// Drops the brokers not advertised for [`FORGET_AFTER`]; their labels.
    pub fn forget(&mut self, now: u64) -> Vec<String> {
        let gone: Vec<i32> = self
            .brokers
            .iter()
            .filter(|(_, s)| s.last_seen + FORGET_AFTER < now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.brokers.remove(id);
            self.up.remove(&id.to_string());
        }
        gone.iter().map(i32::to_string).collect()
    }

    /// Whether it is time to save the last-seen times again (then it is
    /// taken as saved).
    pub fn save_due(&mut self, now: u64) -> bool {
        if now >= self.saved_at + SAVE_EVERY {
            self.saved_at = now;
            return true;
        }
        false
    }

    /// Notes `target`'s result; returns its previous one.
    pub fn set_up(&mut self, target: &str, ok: bool) -> Option<bool> {
        self.up.insert(target.to_string(), ok)
    }

    /// `slaprobe_broker_info` for the known brokers (a moved broker's old
    /// series and a forgotten one's go).
    pub fn export_info(&mut self, info: &IntGaugeVec, cluster: &str, listener: &str) {
        let now: BTreeMap<i32, [String; 2]> = self
            .brokers
            .iter()
            .map(|(id, s)| {
                let b = &s.broker;
                (
                    *id,
                    [address(&b.host, b.port), b.rack.clone().unwrap_or_default()],
                )
            })
            .collect();
        for (id, old) in &self.exported {
            if now.get(id) != Some(old) {
                info.remove(&[cluster, listener, &id.to_string(), &old[0], &old[1]]);
            }
        }
        for (id, [address, rack]) in &now {
            info.with_label_values(&[cluster, listener, &id.to_string(), address, rack])
                .set(1);
        }
        self.exported = now;
    }

    /// The broker labelled `label`, if known.
    pub fn broker(&self, label: &str) -> Option<&Broker> {
        let id: i32 = label.parse().ok()?;
        self.brokers.get(&id).map(|s| &s.broker)
    }

    fn saved(&self) -> Vec<Seen> {
        self.brokers.values().cloned().collect()
    }
}

/// `host:port` (`[host]:port` for an IPv6 address).
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// [`BROKERS_FILE`]'s content.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnownFile {
    pub written_at: u64,
    pub listeners: Vec<SavedListener>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedListener {
    pub cluster: String,
    pub listener: String,
    pub brokers: Vec<Seen>,
}

/// One writer at a time: each cluster's task rewrites its own part.
static WRITING: Mutex<()> = Mutex::new(());

/// What [`BROKERS_FILE`] holds (an unreadable file is logged and read as
/// empty: the brokers are learnt again from the metadata).
pub fn load(dir: &StateDir) -> KnownFile {
    match dir.load_named::<KnownFile>(BROKERS_FILE) {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            warn!(error = %e, "cannot read the known brokers; they are learnt again from the clusters' metadata");
            KnownFile::default()
        }
    }
}

impl KnownFile {
    /// The brokers saved for `listener` of `cluster`.
    pub fn restore(&self, cluster: &str, listener: &str) -> Known {
        let mut k = Known::default();
        for l in &self.listeners {
            if l.cluster == cluster && l.listener == listener {
                for s in &l.brokers {
                    k.brokers.insert(s.broker.id, s.clone());
                }
            }
        }
        k
    }

    /// Replaces `cluster`'s part of the file in `dir` with `listeners`.
    pub fn update(
        dir: &StateDir,
        cluster: &str,
        listeners: &[(String, &Known)],
    ) -> std::io::Result<()> {
        let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = load(dir);
        f.listeners.retain(|l| l.cluster != cluster);
        for (name, k) in listeners {
            f.listeners.push(SavedListener {
                cluster: cluster.to_string(),
                listener: name.clone(),
                brokers: k.saved(),
            });
        }
        f.written_at = crate::util::format::unix_now();
        dir.save_named(BROKERS_FILE, &f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32, host: &str) -> Broker {
        Broker {
            id,
            host: host.into(),
            port: 9092,
            rack: None,
        }
    }

    #[test]
    fn the_bootstrap_is_checked_until_brokers_are_known_then_each_broker() {
        let boot = vec![("seed".to_string(), 9092)];
        let mut k = Known::default();
        assert_eq!(k.targets(&boot)[0].label, BOOTSTRAP);
        assert!(k.learn(&[broker(1, "k1"), broker(2, "k2")], 100));
        let labels: Vec<String> = k.targets(&boot).into_iter().map(|t| t.label).collect();
        assert_eq!(labels, ["1", "2"]);
        assert!(!k.learn(&[broker(1, "k1")], 200), "nothing new");
        assert!(k.learn(&[broker(1, "k1-moved")], 300), "moved");
    }

    /// Broker 2 stops: the metadata no longer names it, and it is checked
    /// for a day more (its alert fires), then forgotten.
    #[test]
    fn a_broker_out_of_the_metadata_is_checked_for_a_day() {
        let boot = vec![];
        let mut k = Known::default();
        k.learn(&[broker(1, "k1"), broker(2, "k2")], 0);
        for t in (60..FORGET_AFTER).step_by(3_600) {
            k.learn(&[broker(1, "k1")], t);
            assert!(k.forget(t).is_empty());
            assert_eq!(k.targets(&boot).len(), 2);
        }
        k.learn(&[broker(1, "k1")], FORGET_AFTER + 1);
        assert_eq!(k.forget(FORGET_AFTER + 1), ["2"]);
        assert_eq!(k.targets(&boot).len(), 1);
    }

    #[test]
    fn the_saved_brokers_come_back_per_cluster_and_listener() {
        let mut k = Known::default();
        k.learn(&[broker(7, "k7")], 5);
        let f = KnownFile {
            written_at: 5,
            listeners: vec![SavedListener {
                cluster: "c".into(),
                listener: "default".into(),
                brokers: k.saved(),
            }],
        };
        let back: KnownFile = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back.restore("c", "default").saved(), k.saved());
        assert!(back.restore("c", "other").is_empty());
        assert!(back.restore("d", "default").is_empty());
    }
}
