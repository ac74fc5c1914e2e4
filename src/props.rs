//! Properties checked on arbitrary input: each function takes raw bytes,
//! builds its input from them and panics when a property fails. The
//! cargo-fuzz targets in `fuzz/` call them under libFuzzer; `cargo test`
//! runs them on the committed seed corpora and on seeded random inputs
//! (see the tests below), so CI checks the same properties without a
//! nightly toolchain.
//!
//! Only with `cfg(test)` or the `fuzzing` feature.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::canary::template::{Placeholder, Template, Values};
use crate::canary::{Canary, CanaryId, Foreign, MatchRule, Matched, Matcher, RunId};
use crate::outcome::tracker::{Arrival, Outcome, Tracker};
use crate::slo::windows::{SloWindows, WINDOWS};

/// Reads structured values off the input; past its end, zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, _| (v << 8) | u64::from(self.u8()))
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `max` bytes, the length taken from the input.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = (usize::from(self.u8()) % (max + 1)).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    pub fn string(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Canary ids: any bytes parse or not without panicking, what parses prints
/// back to the same id, and every id slaprobe writes parses back.
pub fn canary_id(data: &[u8]) {
    let mut i = Input::new(data);
    let raw = i.bytes(600);
    if let Some(id) = CanaryId::parse(raw) {
        let printed = id.to_string();
        assert_eq!(CanaryId::parse(printed.as_bytes()), Some(id), "{printed}");
    }
    let probe: String = i.string(64).replace('/', "_");
    let probe = if probe.is_empty() { "p".into() } else { probe };
    let id = CanaryId {
        probe: &probe,
        run: RunId(i.u64()),
        partition: (i.u64() % (i32::MAX as u64 + 1)) as i32,
        seq: i.u64(),
    };
    let printed = id.to_string();
    if printed.len() <= 512 {
        assert_eq!(CanaryId::parse(printed.as_bytes()), Some(id), "{printed}");
    }
}

/// The matcher: no input makes it panic; a record carrying a canary the way
/// slaprobe writes it is that canary; another probe's or run's never is.
pub fn matcher(data: &[u8]) {
    let mut i = Input::new(data);
    let rule = match i.u8() % 3 {
        0 => MatchRule::Header(i.string(32)),
        1 => MatchRule::Key,
        _ => MatchRule::Json(i.string(32)),
    };
    let probe = probe_name(&mut i);
    let run = RunId(i.u64());
    let m = Matcher::new(rule.clone(), &probe, run);
    // Arbitrary records.
    let key = i.bool().then(|| i.bytes(600));
    let value = i.bool().then(|| i.bytes(2000));
    let headers: Vec<(String, Option<Vec<u8>>)> = (0..i.u8() % 4)
        .map(|_| (i.string(20), i.bool().then(|| i.bytes(600).to_vec())))
        .collect();
    let _ = m.classify(
        key,
        value,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())),
    );
    // Records as slaprobe writes them.
    let canary = Canary {
        probe: &probe,
        run,
        partition: (i.u64() % (i32::MAX as u64 + 1)) as i32,
        seq: i.u64(),
        sent_ns: i.u64(),
    };
    let id = canary.id().to_string();
    if id.len() > 512 {
        return;
    }
    let mut payload = String::new();
    canary.write_heartbeat_payload(usize::from(i.u8()) * 4, &mut payload);
    let classify = |m: &Matcher, id: &str| -> Option<Matched> {
        Some(match &rule {
            MatchRule::Header(h) => {
                let junk: Vec<(String, Option<Vec<u8>>)> = headers.clone();
                m.classify(
                    None,
                    None,
                    junk.iter()
                        .filter(|(n, _)| n != h)
                        .map(|(n, v)| (n.as_str(), v.as_deref()))
                        .chain(std::iter::once((h.as_str(), Some(id.as_bytes())))),
                )
            }
            MatchRule::Key => m.classify(Some(id.as_bytes()), None, std::iter::empty()),
            MatchRule::Json(p) if p == "/id" => {
                m.classify(None, Some(payload.as_bytes()), std::iter::empty())
            }
            MatchRule::Json(_) => return None,
        })
    };
    let ours = Matched::Ours {
        partition: canary.partition,
        seq: canary.seq,
    };
    if let Some(got) = classify(&m, &id) {
        assert_eq!(got, ours, "rule {rule:?}, id {id}");
    }
    let other_probe = Matcher::new(rule.clone(), &format!("{probe}x"), run);
    if let Some(got) = classify(&other_probe, &id) {
        assert_eq!(got, Matched::Foreign(Foreign::OtherProbe), "{id}");
    }
    let other_run = Matcher::new(rule.clone(), &probe, RunId(run.0 ^ 1));
    if let Some(got) = classify(&other_run, &id) {
        assert_eq!(got, Matched::Foreign(Foreign::OtherRun), "{id}");
    }
}

/// The tracker under random send/ack/arrive/expire sequences: every
/// canary acked ends exactly once as delivered or lost; `in_flight` is
/// always the number of sent canaries without an outcome; at the end
/// nothing is in flight.
pub fn tracker(data: &[u8]) {
    let mut i = Input::new(data);
    let deadline = Duration::from_millis(100 + u64::from(i.u8()) * 10);
    let mut t = Tracker::new(deadline);
    let start = Instant::now();
    let mut now = start;
    let mut sent: Vec<(i32, u64)> = Vec::new();
    // Per canary: acked ok (report taken), resolved (outcome or failed ack).
    let mut acked_ok: BTreeMap<(i32, u64), bool> = BTreeMap::new();
    let mut ends: BTreeMap<(i32, u64), u32> = BTreeMap::new();
    let mut delivered = [0u64; 4];
    let mut resolved_without_outcome = 0usize;
    let mut outcomes: Vec<Outcome> = Vec::new();
    let settle = |outcomes: &mut Vec<Outcome>,
                  acked_ok: &BTreeMap<(i32, u64), bool>,
                  ends: &mut BTreeMap<(i32, u64), u32>,
                  delivered: &mut [u64; 4]| {
        for o in outcomes.drain(..) {
            match o {
                Outcome::Delivered {
                    partition, latency, ..
                } => {
                    assert!(latency < deadline);
                    delivered[partition as usize] += 1;
                }
                Outcome::Lost { partition, seq } => {
                    assert_eq!(
                        acked_ok.get(&(partition, seq)),
                        Some(&true),
                        "lost but never acked"
                    );
                    *ends.entry((partition, seq)).or_default() += 1;
                }
                Outcome::Unacknowledged { partition, seq } => {
                    assert!(
                        !acked_ok.contains_key(&(partition, seq)),
                        "unacknowledged after its report"
                    );
                    *ends.entry((partition, seq)).or_default() += 1;
                }
                Outcome::DeliveredUntimed { .. } => panic!("every arrival is timed here"),
                Outcome::Late { .. }
                | Outcome::Duplicate { .. }
                | Outcome::FailedButArrived { .. } => {}
                Outcome::LateOrDuplicate { .. } => panic!("forgotten within the memory's bound"),
                Outcome::Abandoned { .. } => panic!("abandoned without a restart"),
            }
        }
    };
    while !i.is_empty() {
        match i.u8() % 6 {
            0 | 1 => {
                let partition = i32::from(i.u8() % 4);
                let seq = t.on_send(partition, now);
                sent.push((partition, seq));
            }
            2 if !sent.is_empty() => {
                let (p, s) = sent[usize::from(i.u8()) % sent.len()];
                let ok = !i.u8().is_multiple_of(4);
                let mut out = |o| outcomes.push(o);
                if t.on_ack(p, s, ok, now, &mut out) {
                    acked_ok.insert((p, s), ok);
                    if !ok {
                        resolved_without_outcome += 1;
                    }
                }
            }
            3 if !sent.is_empty() => {
                let (p, s) = sent[usize::from(i.u8()) % sent.len()];
                let mut out = |o| outcomes.push(o);
                let arrival = t.on_arrival(p, s, now, &mut out);
                assert!(
                    !matches!(arrival, Arrival::Unknown | Arrival::Untracked),
                    "a sent canary is known"
                );
            }
            4 => now += Duration::from_millis(u64::from(i.u8()) * 4),
            _ => {
                let mut out = |o| outcomes.push(o);
                t.expire(now, &mut out);
            }
        }
        settle(&mut outcomes, &acked_ok, &mut ends, &mut delivered);
        let resolved =
            ends.len() + delivered.iter().sum::<u64>() as usize + resolved_without_outcome;
        assert_eq!(
            t.in_flight(),
            sent.len() - resolved,
            "in_flight = unresolved"
        );
    }
    // Long after every deadline and grace: everything has ended.
    now += deadline * 3 + crate::outcome::tracker::ACK_GRACE;
    let mut out = |o| outcomes.push(o);
    t.expire(now, &mut out);
    settle(&mut outcomes, &acked_ok, &mut ends, &mut delivered);
    assert_eq!(t.in_flight(), 0);
    assert!(
        ends.values().all(|n| *n == 1),
        "one end per canary: {ends:?}"
    );
    for p in 0..4 {
        let acked = acked_ok
            .iter()
            .filter(|((q, _), ok)| *q == p && **ok)
            .count() as u64;
        let lost = ends
            .keys()
            .filter(|(q, s)| *q == p && acked_ok.get(&(*q, *s)) == Some(&true))
            .count() as u64;
        assert_eq!(
            delivered[p as usize] + lost,
            acked,
            "partition {p}: acked = delivered + lost"
        );
    }
}

/// Templates: no text makes parsing or rendering panic; `{{pad}}` pads to
/// exactly the target length when shorter, and nothing else changes size.
pub fn template(data: &[u8]) {
    let mut i = Input::new(data);
    let text = i.string(200);
    let Ok(t) = Template::parse(&text) else {
        return;
    };
    let id = i.string(60);
    let probe = i.string(20);
    let run = i.string(16);
    let v = Values {
        id: &id,
        probe: &probe,
        run: &run,
        seq: i.u64(),
        partition: (i.u64() % (i32::MAX as u64 + 1)) as i32,
        sent_ns: i.u64() % 4_000_000_000_000_000_000,
    };
    let target = usize::from(i.u8()) * 16;
    let bare = t.render(&v, 0);
    let padded = t.render(&v, target);
    if t.contains(Placeholder::Pad) {
        assert_eq!(padded.len(), bare.len().max(target));
    } else {
        assert_eq!(padded, bare);
    }
    if t.contains(Placeholder::Id) {
        assert!(padded.contains(&id));
    }
}

/// SLO windows under clock jumps (backwards, and forward by days) against
/// brute-force sums over every event; a snapshot restored into fresh
/// windows gives the same sums.
pub fn slo_windows(data: &[u8]) {
    const OBJECTIVE: f64 = 0.99;
    const PERIOD_HOURS: u64 = 7 * 24;
    let period = Duration::from_secs(PERIOD_HOURS * 3600);
    let mut i = Input::new(data);
    let mut w = SloWindows::new(OBJECTIVE, period, 1);
    let mut t = 1_700_000_000 + (i.u64() % 1_000_000);
    // The rings' newest (minute, hour) buckets: they move on with time and
    // never back; an event at an earlier time lands in the newest bucket.
    let mut head = (0u64, 0u64);
    let mut max_t = 0u64;
    let mut events: Vec<(u64, u64, u64, u64)> = Vec::new();
    let sums = |events: &[(u64, u64, u64, u64)], head: (u64, u64), buckets: u64, hours: bool| {
        events
            .iter()
            .filter(|e| {
                let (b, h) = if hours { (e.1, head.1) } else { (e.0, head.0) };
                b + buckets > h
            })
            .fold((0, 0), |(g, n), e| (g + e.2, n + e.3))
    };
    let check = |w: &SloWindows, events: &[(u64, u64, u64, u64)], head: (u64, u64), t: u64| {
        for (k, (_, len)) in WINDOWS.iter().enumerate() {
            let c = w.counts(k);
            let want = sums(events, head, len.as_secs() / 60, false);
            assert_eq!((c.good, c.total), want, "window {k} at t={t}");
        }
        let (g, n) = sums(events, head, PERIOD_HOURS, true);
        let budget = if n == 0 {
            1.0
        } else {
            1.0 - ((n - g) as f64 / n as f64) / (1.0 - OBJECTIVE)
        };
        assert_eq!(w.budget_remaining(), budget, "budget at t={t}");
    };
    while !i.is_empty() {
        match i.u8() % 8 {
            0..=3 => t += u64::from(i.u8()),
            4 => t = t.saturating_sub(u64::from(i.u8()) * 60),
            5 => t += u64::from(i.u8()) * 1800,
            6 => {
                w.evaluate(t);
                head = (head.0.max(t / 60), head.1.max(t / 3600));
            }
            _ => {
                let good = u64::from(i.u8());
                let bad = u64::from(i.u8() % 8);
                w.record(t, good, bad);
                head = (head.0.max(t / 60), head.1.max(t / 3600));
                events.push((head.0, head.1, good, good + bad));
            }
        }
        max_t = max_t.max(t);
        if !events.is_empty() {
            check(&w, &events, head, t);
        }
    }
    if events.is_empty() {
        return;
    }
    let mut restored = SloWindows::new(OBJECTIVE, period, 1);
    restored.restore(&w.snapshot(), max_t);
    w.evaluate(max_t);
    restored.evaluate(max_t);
    head = (head.0.max(max_t / 60), head.1.max(max_t / 3600));
    check(&w, &events, head, max_t);
    check(&restored, &events, head, max_t);
}

/// Configuration: no text and environment make loading panic; what loads
/// renders its plan and generated files; and a secret, whatever its value,
/// appears in none of them.
pub fn config(data: &[u8]) {
    let mut i = Input::new(data);
    let var = i.string(40);
    let text = String::from_utf8_lossy(i.rest()).into_owned();
    let env = |_: &str| Some(var.clone());
    if let Ok(c) = crate::config::load_str("fuzz.yaml", &text, &env) {
        let _ = crate::generate::plan::plan(&c);
        let _ = crate::generate::render(&c);
    }
    // Secrets in every secret-bearing place of a valid config.
    if var.len() < 4 {
        return;
    }
    let secret = format!("S3cr3t{}", hex(var.as_bytes()));
    let quoted = serde_json::to_string(&format!("{secret}{var}")).unwrap_or_default();
    let text = format!(
        "server: {{ external_url: 'https://u:{secret}@x.example' }}\n\
         alertmanager: {{ url: 'https://u:{secret}@am:9093' }}\n\
         clusters:\n  c:\n    bootstrap: k:9092\n    librdkafka:\n      \
         sasl.password: {quoted}\n      sasl.oauthbearer.config: {quoted}\n      \
         ssl.key.password: {quoted}\n\
         probes:\n  - {{ name: hb, type: heartbeat, cluster: c, topic: t, slos: [{{ sli: delivery, objective: 99% }}] }}\n"
    );
    match crate::config::load_str("fuzz.yaml", &text, &|_| None) {
        Ok(c) => {
            let mut shown = crate::generate::plan::plan(&c);
            shown.push_str(&format!("{c:?}"));
            for f in crate::generate::render(&c) {
                shown.push_str(&f.content);
            }
            assert!(!shown.contains(&secret), "a secret is shown");
        }
        Err(e) => assert!(
            !e.to_string().contains(&secret),
            "a secret is in an error: {e}"
        ),
    }
}

/// A probe name as the configuration allows them: 1 to 40 of
/// `[A-Za-z0-9._-]`.
fn probe_name(i: &mut Input<'_>) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    let name: String = i
        .bytes(40)
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect();
    if name.is_empty() {
        "p".into()
    } else {
        name
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Runs `property` on every file of the seed corpus `fuzz/corpus/<name>`
    /// and on `random` seeded random inputs (mutations of the seeds and
    /// fresh bytes), printing how many it ran.
    fn run(name: &str, property: fn(&[u8]), random: usize) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(name);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
            .flatten()
            .map(|f| std::fs::read(f.path()).expect("seed"))
            .collect();
        assert!(!seeds.is_empty(), "seed corpus {} is empty", dir.display());
        seeds.sort();
        for s in &seeds {
            property(s);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0000 ^ name.len() as u64);
        for _ in 0..random {
            let mut input = if rng.random_bool(0.5) {
                seeds[rng.random_range(0..seeds.len())].clone()
            } else {
                Vec::new()
            };
            for _ in 0..rng.random_range(1..16) {
                match rng.random_range(0..3) {
                    0 if !input.is_empty() => {
                        let at = rng.random_range(0..input.len());
                        input[at] = rng.random();
                    }
                    1 => {
                        let at = rng.random_range(0..=input.len());
                        let n = rng.random_range(1..64);
                        let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                        input.splice(at..at, bytes);
                    }
                    _ if input.len() > 1 => {
                        let at = rng.random_range(0..input.len());
                        input.truncate(at.max(1));
                    }
                    _ => input.push(rng.random()),
                }
            }
            property(&input);
        }
        println!("{name}: {} seeds and {random} random inputs", seeds.len());
    }

    #[test]
    fn canary_id_property() {
        run("canary_id", canary_id, 20_000);
    }

    #[test]
    fn matcher_property() {
        run("matcher", matcher, 20_000);
    }

    #[test]
    fn tracker_property() {
        run("tracker", tracker, 5_000);
    }

    #[test]
    fn template_property() {
        run("template", template, 20_000);
    }

    #[test]
    fn slo_windows_property() {
        run("slo_windows", slo_windows, 300);
    }

    #[test]
    fn config_property() {
        run("config", config, 2_000);
    }
}
