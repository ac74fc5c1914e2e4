//! Series split by the broker that led a canary's partition when it was
//! sent: the `broker` label of a heartbeat probe's outcomes, latency and SLI
//! events. A pipeline's series are not split (the label is left out).
//!
//! A split is shared by everyone who reads or counts its series (the
//! recorder, the status page, the SLO evaluator), so the sums they read are
//! those of the very series Prometheus scrapes, however many brokers there
//! are. Bounded by the brokers that led the probe's partitions (and
//! `unknown`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::registry::IntCounterVec;
use super::IntCounter;
use crate::config::Sli;

/// The key of series without the `broker` label.
const UNSPLIT: i32 = i32::MIN;
/// The key of a canary whose partition's leader was not known.
const UNKNOWN: i32 = -1;

/// The `broker` label of a key: the broker id, `unknown`, or none (empty:
/// not written).
fn label(key: i32) -> String {
    match key {
        UNSPLIT => String::new(),
        UNKNOWN => "unknown".to_string(),
        b => b.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Series of type `T` per broker.
pub struct Split<T> {
    attributed: bool,
    series: Mutex<BTreeMap<i32, T>>,
}

/// One SLI's (good, bad) counters of one broker.
pub type SliPair = (IntCounter, IntCounter);

impl<T> Split<T> {
    fn new(attributed: bool) -> Split<T> {
        Split {
            attributed,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn key(&self, broker: Option<i32>) -> i32 {
        if self.attributed {
            broker.unwrap_or(UNKNOWN)
        } else {
            UNSPLIT
        }
    }

    /// `f` on the series of `broker` (made with its label by `make` the
    /// first time).
    fn with<R>(
        &self,
        broker: Option<i32>,
        make: impl FnOnce(&str) -> T,
        f: impl FnOnce(&T) -> R,
    ) -> R {
        let key = self.key(broker);
        let mut s = lock(&self.series);
        f(s.entry(key).or_insert_with(|| make(&label(key))))
    }

    /// The sum of `value` over every broker's series.
    pub fn sum(&self, value: impl Fn(&T) -> u64) -> u64 {
        lock(&self.series).values().map(value).sum()
    }

    /// `value` per broker label, for the brokers that have series.
    fn by_broker(&self, value: impl Fn(&T) -> u64) -> Vec<(String, u64)> {
        lock(&self.series)
            .iter()
            .map(|(k, t)| (label(*k), value(t)))
            .collect()
    }
}

/// One user's handles of a split's series, by broker: counting an event
/// takes no lock (the series are shared atomics; the split is locked only
/// to make or find a broker's series the first time).
pub struct Cached<T> {
    split: Arc<Split<T>>,
    local: Vec<(i32, T)>,
}

impl<T: Clone> Cached<T> {
    pub fn new(split: Arc<Split<T>>) -> Cached<T> {
        Cached {
            split,
            local: Vec::new(),
        }
    }

    /// The series of `broker` (made with its label by `make` the first
    /// time anyone asks).
    pub fn get(&mut self, broker: Option<i32>, make: impl FnOnce(&str) -> T) -> &T {
        let key = self.split.key(broker);
        let i = match self.local.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let t = self.split.with(broker, make, T::clone);
                self.local.push((key, t));
                self.local.len() - 1
            }
        };
        &self.local[i].1
    }

    /// The split, for sums over every broker.
    pub fn split(&self) -> &Split<T> {
        &self.split
    }
}

/// One SLI's good and bad events of one (probe, output), per broker.
pub struct SliSplit {
    split: Arc<Split<SliPair>>,
    family: IntCounterVec,
    labels: [String; 3],
}

impl SliSplit {
    /// Its counters of `broker`, made the first time.
    fn make(&self, broker: &str) -> SliPair {
        let [probe, output, sli] = &self.labels;
        let c = |outcome: &str| {
            self.family
                .with_label_values(&[probe, output, sli, outcome, broker])
        };
        (c("good"), c("bad"))
    }

    /// (good, bad) over every broker.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.split.sum(|(g, _)| g.get()),
            self.split.sum(|(_, b)| b.get()),
        )
    }

    /// Bad events so far per broker label.
    pub fn bad_by_broker(&self) -> Vec<(String, u64)> {
        self.split.by_broker(|(_, b)| b.get())
    }

    /// Whether the events are split by broker.
    pub fn attributed(&self) -> bool {
        self.split.attributed
    }

    /// A lock-free counting handle of this SLI's events.
    pub fn cached(self: &Arc<Self>) -> SliEvents {
        SliEvents {
            events: self.clone(),
            cache: Cached::new(self.split.clone()),
        }
    }

    /// The good (or bad) counter of `broker`: for tests and benchmarks that
    /// count events by hand.
    pub fn counter(&self, broker: Option<i32>, good: bool) -> IntCounter {
        self.split.with(
            broker,
            |b| self.make(b),
            |(g, b)| if good { g.clone() } else { b.clone() },
        )
    }
}

/// One user's counting handle of an SLI's events ([`SliSplit::cached`]).
pub struct SliEvents {
    events: Arc<SliSplit>,
    cache: Cached<SliPair>,
}

impl SliEvents {
    /// One event of a canary sent to a partition `broker` led.
    pub fn event(&mut self, broker: Option<i32>, good: bool) {
        let events = &self.events;
        let (g, b) = self.cache.get(broker, |label| events.make(label));
        if good {
            g.inc()
        } else {
            b.inc()
        }
    }

    /// The series of `broker`, at 0 until its first event.
    pub fn touch(&mut self, broker: Option<i32>) {
        let events = &self.events;
        self.cache.get(broker, |label| events.make(label));
    }
}

/// Every SLI split, by (probe, output, sli): the probes count into them,
/// the evaluator reads them.
#[derive(Clone, Default)]
pub struct SliSplits(Arc<Mutex<HashMap<[String; 3], Arc<SliSplit>>>>);

impl SliSplits {
    /// The split of (probe, output, sli), made (split by broker when
    /// `attributed`) the first time.
    pub fn get(
        &self,
        family: &IntCounterVec,
        probe: &str,
        output: &str,
        sli: Sli,
        attributed: bool,
    ) -> Arc<SliSplit> {
        let key = [probe.to_string(), output.to_string(), sli.to_string()];
        lock(&self.0)
            .entry(key.clone())
            .or_insert_with(|| {
                let s = Arc::new(SliSplit {
                    split: Arc::new(Split::new(attributed)),
                    family: family.clone(),
                    labels: key,
                });
                // At 0 from the start (`unknown` where split).
                s.split.with(None, |b| s.make(b), |_| ());
                s
            })
            .clone()
    }
}

/// Every output's outcome split, by (probe, output): the recorder counts
/// into them, the status page reads their sums.
pub(super) struct OutcomeSplits<T>(Mutex<HashMap<[String; 2], Arc<Split<T>>>>);

impl<T> Default for OutcomeSplits<T> {
    fn default() -> Self {
        OutcomeSplits(Mutex::new(HashMap::new()))
    }
}

impl<T> OutcomeSplits<T> {
    pub(super) fn get(&self, probe: &str, output: &str, attributed: bool) -> Arc<Split<T>> {
        lock(&self.0)
            .entry([probe.to_string(), output.to_string()])
            .or_insert_with(|| Arc::new(Split::new(attributed)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::registry::Registry;

    #[test]
    fn a_split_sums_its_brokers_and_an_unsplit_one_has_no_broker_label() {
        let r = Registry::default();
        let family = r.counter_vec(
            "t_sli_events",
            "h",
            &["probe", "output", "sli", "outcome", "broker"],
        );
        let splits = SliSplits::default();
        let mut hb = splits
            .get(&family, "hb", "heartbeat", Sli::Delivery, true)
            .cached();
        hb.event(Some(1), true);
        hb.event(Some(2), false);
        hb.event(Some(2), false);
        hb.event(None, true);
        // The same split for whoever asks (the evaluator after the probe).
        let again = splits.get(&family, "hb", "heartbeat", Sli::Delivery, false);
        assert!(again.attributed());
        assert_eq!(again.totals(), (2, 2));
        assert_eq!(
            again.bad_by_broker(),
            vec![
                ("unknown".to_string(), 0),
                ("1".to_string(), 0),
                ("2".to_string(), 2)
            ],
            "unknown from the start"
        );
        let pipe = splits.get(&family, "p", "out", Sli::Delivery, false);
        pipe.cached().event(Some(3), false);
        assert_eq!(pipe.totals(), (0, 1));
        let text = r.render();
        assert!(
            text.contains(
                "t_sli_events_total{probe=\"hb\",output=\"heartbeat\",sli=\"delivery\",outcome=\"bad\",broker=\"2\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "t_sli_events_total{probe=\"p\",output=\"out\",sli=\"delivery\",outcome=\"bad\"} 1\n"
            ),
            "no broker label off heartbeats: {text}"
        );
    }
}
