//! What `/readyz` waits for, set by the probes as they get there: every
//! cluster has answered a metadata request and every probe has matched a
//! canary.

use std::sync::atomic::{AtomicBool, Ordering};

/// Readiness flags, one per used cluster and per probe.
#[derive(Debug, Default)]
pub struct Readiness {
    clusters: Vec<(String, AtomicBool)>,
    probes: Vec<(String, AtomicBool)>,
}

impl Readiness {
    pub fn new<'a>(
        clusters: impl IntoIterator<Item = &'a str>,
        probes: impl IntoIterator<Item = &'a str>,
    ) -> Readiness {
        let flags = |names: &mut dyn Iterator<Item = &'a str>| {
            names
                .map(|n| (n.to_string(), AtomicBool::new(false)))
                .collect()
        };
        Readiness {
            clusters: flags(&mut clusters.into_iter()),
            probes: flags(&mut probes.into_iter()),
        }
    }

    fn set(list: &[(String, AtomicBool)], name: &str) {
        if let Some((_, flag)) = list.iter().find(|(n, _)| n == name) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    pub fn cluster_has_metadata(&self, cluster: &str) {
        Self::set(&self.clusters, cluster);
    }

    /// Marks `cluster` as answering when a metadata request to it got an
    /// answer: a layout, or word that the topic does not exist.
    pub fn note_metadata(
        &self,
        cluster: &str,
        result: &Result<crate::kafka::TopicLayout, crate::kafka::MetadataError>,
    ) {
        if result
            .as_ref()
            .err()
            .is_none_or(crate::kafka::MetadataError::cluster_answered)
        {
            self.cluster_has_metadata(cluster);
        }
    }

    pub fn probe_matched(&self, probe: &str) {
        Self::set(&self.probes, probe);
    }

    /// Names of what is not ready yet, as `cluster:NAME` / `probe:NAME`.
    pub fn waiting_for(&self) -> Vec<String> {
        let pending = |kind: &str, list: &[(String, AtomicBool)]| {
            list.iter()
                .filter(|(_, f)| !f.load(Ordering::Relaxed))
                .map(|(n, _)| format!("{kind}:{n}"))
                .collect::<Vec<_>>()
        };
        let mut v = pending("cluster", &self.clusters);
        v.extend(pending("probe", &self.probes));
        v
    }
}
