//! What each of slaprobe's Kafka clients asks of each broker, from
//! librdkafka's statistics (`slaprobe_kafka_requests_total`: the cost of
//! probing, in requests, per client role), and what the cluster refused
//! it, by class (`slaprobe_kafka_errors_total`: credentials, TLS, ACLs,
//! brokers unreachable), each class logged at most every 10 s with a
//! count.
//!
//! [`RequestStats`] is also the client context of the clients that need
//! nothing else (the shared consumers and the lag readers): librdkafka
//! hands it every statistics report and every error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

use super::{IntCounter, Metrics};
use crate::kafka::ClientError;
use crate::util::Throttle;

/// Counts the requests one client sends, per broker and request type,
/// from librdkafka's statistics (`slaprobe_kafka_requests_total`).
pub struct RequestStats {
    metrics: Metrics,
    cluster: String,
    client: &'static str,
    /// Per (broker entry, request type): the client's last total and the
    /// counter it goes to.
    seen: Mutex<HashMap<(String, String), (i64, IntCounter)>>,
    /// Per error class, its counter (every class present, at 0) and its
    /// log throttle.
    errors: Vec<(ClientError, IntCounter, Mutex<Throttle>)>,
}

impl RequestStats {
    pub fn new(metrics: &Metrics, cluster: &str, client: &'static str) -> RequestStats {
        RequestStats {
            metrics: metrics.clone(),
            cluster: cluster.to_string(),
            client,
            seen: Mutex::default(),
            errors: ClientError::ALL
                .iter()
                .map(|c| {
                    let counter = metrics.client_errors(cluster, client, c.label());
                    (*c, counter, Mutex::default())
                })
                .collect(),
        }
    }

    /// An error the client got (librdkafka's error callback, a failed
    /// metadata request): counted by class, and logged at most every 10 s
    /// per class with the count since.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let class = ClientError::of(error);
        let Some((_, counter, log)) = self.errors.iter().find(|(c, _, _)| *c == class) else {
            return;
        };
        counter.inc();
        let due = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(1, Instant::now());
        if let Some(errors) = due {
            tracing::warn!(kafka_cluster = %self.cluster, client = self.client,
                class = class.label(), error = %error, reason, errors,
                "Kafka client error (counted in slaprobe_kafka_errors_total; errors: how many of this class since the last line)");
        }
    }

    /// A request sent on a connection of slaprobe's own (not librdkafka's,
    /// so not in its statistics): counted as those are.
    pub fn sent(&self, broker: &str, request: &str) {
        self.metrics
            .client_requests(&self.cluster, self.client, broker, request)
            .inc();
    }

    /// One statistics report (JSON): what each broker got since the last.
    pub fn record(&self, json: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Stats {
            #[serde(default)]
            brokers: HashMap<String, Broker>,
        }
        #[derive(serde::Deserialize)]
        struct Broker {
            nodeid: i32,
            #[serde(default)]
            req: HashMap<String, i64>,
        }
        let Ok(stats) = serde_json::from_slice::<Stats>(json) else {
            return;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (entry, b) in stats.brokers {
            // Bootstrap addresses (and the internal broker) have no id.
            let broker = if b.nodeid >= 0 {
                b.nodeid.to_string()
            } else {
                "bootstrap".to_string()
            };
            for (request, total) in b.req {
                if total <= 0 {
                    continue;
                }
                let (last, counter) =
                    seen.entry((entry.clone(), request.clone()))
                        .or_insert_with(|| {
                            let c = self.metrics.client_requests(
                                &self.cluster,
                                self.client,
                                &broker,
                                &request,
                            );
                            (0, c)
                        });
                counter.inc_by(total.saturating_sub(*last).max(0) as u64);
                *last = total;
            }
        }
    }
}

impl ClientContext for RequestStats {
    fn stats_raw(&self, statistics: &[u8]) {
        self.record(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        RequestStats::error(self, &error, reason);
    }
}

impl ConsumerContext for RequestStats {}
