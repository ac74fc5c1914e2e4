//! Thin adapters over rdkafka: the one place clients are made
//! ([`client`]), metadata, topic management, error classification, and
//! reading consumer groups ([`groups`]). Probing logic lives elsewhere.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::TopicManagement;

pub mod client;
pub mod groups;
mod layouts;
mod metadata;
mod offsets;

pub use client::{queue_bound, Admin, Role};
pub use layouts::{SharedLayouts, LAYOUT_REFRESH};
pub use metadata::{
    fetch_layout, fetch_layouts, fetch_layouts_counted, off_runtime, Layouts, MetadataError,
    TopicLayout, METADATA_TIMEOUT,
};
pub use offsets::offset_at;

/// librdkafka's version and the features it was built with
/// (`builtin.features`), e.g. `2.12.1 (gzip,snappy,ssl,sasl,…,zstd,…)`.
pub fn librdkafka_build() -> String {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .ok()
        .and_then(|c| c.get("builtin.features").ok())
        .unwrap_or_default();
    format!("{version} ({features})")
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(
        "creating topic {topic} ({partitions} partitions, replication factor {replication_factor})"
    )]
    Create {
        topic: String,
        partitions: usize,
        replication_factor: i32,
        #[source]
        error: KafkaError,
    },
    #[error("adding partitions to topic {topic} (from {from} to {to})")]
    Grow {
        topic: String,
        from: usize,
        to: usize,
        #[source]
        error: KafkaError,
    },
}

/// The partition count `topic_management` asks for on a cluster of `brokers`.
pub fn wanted_partitions(tm: &TopicManagement, brokers: usize) -> usize {
    brokers.max(1) * tm.partitions_per_broker as usize
}

/// Creates the topic (or grows it to the wanted partition count) as
/// `topic_management` says. Returns whether anything was changed.
pub async fn ensure_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    tm: &TopicManagement,
    brokers: usize,
    existing_partitions: Option<usize>,
) -> Result<bool, TopicError> {
    let wanted = wanted_partitions(tm, brokers);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match existing_partitions {
        None => {
            let rf = tm
                .replication_factor
                .map_or_else(|| brokers.clamp(1, 3) as i32, i32::from);
            let new = NewTopic::new(topic, wanted as i32, TopicReplication::Fixed(rf));
            let failed = |error| TopicError::Create {
                topic: topic.into(),
                partitions: wanted,
                replication_factor: rf,
                error,
            };
            let results = admin.create_topics([&new], &opts).await.map_err(failed)?;
            for r in results {
                match r {
                    Ok(_) => {}
                    // Someone else (another slaprobe) was quicker: fine.
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return Ok(false),
                    Err((_, code)) => return Err(failed(KafkaError::AdminOp(code))),
                }
            }
            Ok(true)
        }
        Some(have) if have < wanted => {
            let grow = NewPartitions::new(topic, wanted);
            let failed = |error| TopicError::Grow {
                topic: topic.into(),
                from: have,
                to: wanted,
                error,
            };
            let results = admin
                .create_partitions([&grow], &opts)
                .await
                .map_err(failed)?;
            for r in results {
                if let Err((_, code)) = r {
                    if code != RDKafkaErrorCode::InvalidPartitions {
                        return Err(failed(KafkaError::AdminOp(code)));
                    }
                }
            }
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// Produce failures, classified into a fixed small set (the `error` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProduceError {
    /// Not acked within the deadline (librdkafka's message timeout).
    Timeout,
    /// librdkafka's local queue is full: slaprobe skips rather than buffers.
    QueueFull,
    /// The topic or partition does not exist (any more).
    UnknownPartition,
    NotLeader,
    /// The principal may not write the topic (an ACL).
    Authorization,
    /// The cluster refused the client's credentials (SASL): every canary
    /// times out while it does.
    Authentication,
    /// The TLS handshake failed (an untrusted CA, a certificate that
    /// expired or names another host): every canary times out while it does.
    Tls,
    /// Brokers unreachable.
    Transport,
    MessageTooLarge,
    /// The producer hit a fatal error and is being replaced.
    Fatal,
    Other,
}

impl ProduceError {
    pub const ALL: [ProduceError; 11] = [
        ProduceError::Timeout,
        ProduceError::QueueFull,
        ProduceError::UnknownPartition,
        ProduceError::NotLeader,
        ProduceError::Authorization,
        ProduceError::Authentication,
        ProduceError::Tls,
        ProduceError::Transport,
        ProduceError::MessageTooLarge,
        ProduceError::Fatal,
        ProduceError::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ProduceError::Timeout => "timeout",
            ProduceError::QueueFull => "queue_full",
            ProduceError::UnknownPartition => "unknown_partition",
            ProduceError::NotLeader => "not_leader",
            ProduceError::Authorization => "authorization",
            ProduceError::Authentication => "authentication",
            ProduceError::Tls => "tls",
            ProduceError::Transport => "transport",
            ProduceError::MessageTooLarge => "message_too_large",
            ProduceError::Fatal => "fatal",
            ProduceError::Other => "other",
        }
    }
}

/// Consume failures, classified into a fixed small set (the `error` label
/// of `slaprobe_consume_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeError {
    /// Records the client cannot decode: a codec it was built without, a
    /// corrupt batch. Canaries in them are not seen: never silent.
    Decode,
    /// The position is gone (retention, a recreated topic).
    OffsetOutOfRange,
    /// The topic or partition does not exist (any more).
    UnknownPartition,
    /// The principal may not read the topic (an ACL).
    Authorization,
    /// The cluster refused the client's credentials (SASL).
    Authentication,
    /// The TLS handshake failed (an untrusted CA, a certificate that
    /// expired or names another host).
    Tls,
    /// Brokers unreachable.
    Transport,
    Other,
}

impl ConsumeError {
    pub const ALL: [ConsumeError; 8] = [
        ConsumeError::Decode,
        ConsumeError::OffsetOutOfRange,
        ConsumeError::UnknownPartition,
        ConsumeError::Authorization,
        ConsumeError::Authentication,
        ConsumeError::Tls,
        ConsumeError::Transport,
        ConsumeError::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConsumeError::Decode => "decode",
            ConsumeError::OffsetOutOfRange => "offset_out_of_range",
            ConsumeError::UnknownPartition => "unknown_partition",
            ConsumeError::Authorization => "authorization",
            ConsumeError::Authentication => "authentication",
            ConsumeError::Tls => "tls",
            ConsumeError::Transport => "transport",
            ConsumeError::Other => "other",
        }
    }

    /// The class of a consume error.
    pub fn of(error: &KafkaError) -> ConsumeError {
        use RDKafkaErrorCode as C;
        match error.rdkafka_error_code() {
            Some(
                C::BadMessage
                | C::BadCompression
                | C::InvalidMessage
                | C::InvalidRecord
                | C::NotImplemented
                | C::UnsupportedCompressionType,
            ) => ConsumeError::Decode,
            Some(C::OffsetOutOfRange | C::AutoOffsetReset) => ConsumeError::OffsetOutOfRange,
            Some(C::UnknownPartition | C::UnknownTopic | C::UnknownTopicOrPartition) => {
                ConsumeError::UnknownPartition
            }
            Some(C::TopicAuthorizationFailed | C::GroupAuthorizationFailed) => {
                ConsumeError::Authorization
            }
            Some(C::Authentication | C::SaslAuthenticationFailed) => ConsumeError::Authentication,
            Some(C::SSL) => ConsumeError::Tls,
            Some(C::BrokerTransportFailure | C::AllBrokersDown | C::NetworkException) => {
                ConsumeError::Transport
            }
            _ => ConsumeError::Other,
        }
    }
}

/// Why one of slaprobe's own clients could not do what it asked of the
/// cluster, classified into a fixed small set (the `error` label of
/// `slaprobe_kafka_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientError {
    /// The cluster refused the client's credentials (SASL).
    Authentication,
    /// The TLS handshake failed: an untrusted CA, a certificate that
    /// expired or names another host.
    Tls,
    /// An ACL refused the principal (topic, group or cluster).
    Authorization,
    /// Brokers unreachable, connections lost.
    Transport,
    /// A request got no answer in time.
    Timeout,
    Other,
}

impl ClientError {
    pub const ALL: [ClientError; 6] = [
        ClientError::Authentication,
        ClientError::Tls,
        ClientError::Authorization,
        ClientError::Transport,
        ClientError::Timeout,
        ClientError::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClientError::Authentication => "authentication",
            ClientError::Tls => "tls",
            ClientError::Authorization => "authorization",
            ClientError::Transport => "transport",
            ClientError::Timeout => "timeout",
            ClientError::Other => "other",
        }
    }

    /// The class of an error a client got.
    pub fn of(error: &KafkaError) -> ClientError {
        use RDKafkaErrorCode as C;
        match error.rdkafka_error_code() {
            Some(C::Authentication | C::SaslAuthenticationFailed) => ClientError::Authentication,
            Some(C::SSL) => ClientError::Tls,
            Some(
                C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
                | C::DelegationTokenAuthorizationFailed,
            ) => ClientError::Authorization,
            Some(
                C::BrokerTransportFailure | C::AllBrokersDown | C::NetworkException | C::Resolve,
            ) => ClientError::Transport,
            Some(C::RequestTimedOut | C::OperationTimedOut | C::MessageTimedOut) => {
                ClientError::Timeout
            }
            _ => ClientError::Other,
        }
    }
}

/// A delivery report for a message purged by the producer's own shutdown.
pub fn is_purge(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
    )
}

/// Whether the client is unusable for good (idempotent producers can hit
/// such errors, e.g. after an unclean leader election); only a new client
/// recovers.
pub fn is_fatal(error: &KafkaError) -> bool {
    matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal))
}

/// Why the client cannot talk to the cluster at all, when an error (from
/// librdkafka's error callback) says so: its credentials refused, or the
/// TLS handshake failed. Produces fail as timeouts meanwhile; this is
/// their cause.
pub fn connection_refusal(error: &KafkaError) -> Option<ProduceError> {
    match classify(error) {
        c @ (ProduceError::Authentication | ProduceError::Tls) => Some(c),
        _ => None,
    }
}

/// Maps a produce error onto the fixed `error` label set.
pub fn classify(error: &KafkaError) -> ProduceError {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::MessageTimedOut | C::RequestTimedOut) => ProduceError::Timeout,
        Some(C::QueueFull) => ProduceError::QueueFull,
        Some(C::UnknownPartition | C::UnknownTopic | C::UnknownTopicOrPartition) => {
            ProduceError::UnknownPartition
        }
        Some(C::NotLeaderForPartition) => ProduceError::NotLeader,
        Some(C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed) => {
            ProduceError::Authorization
        }
        Some(C::Authentication | C::SaslAuthenticationFailed) => ProduceError::Authentication,
        Some(C::SSL) => ProduceError::Tls,
        Some(C::BrokerTransportFailure | C::AllBrokersDown | C::NetworkException) => {
            ProduceError::Transport
        }
        Some(C::MessageSizeTooLarge) => ProduceError::MessageTooLarge,
        Some(C::Fatal) => ProduceError::Fatal,
        _ => ProduceError::Other,
    }
}

/// A record's headers as (name, value), skipping any whose name is not
/// UTF-8: rdkafka's header accessor panics on such a name, so each header
/// is read on its own and a bad one costs only itself, and the headers
/// after it (the canary id among them) are still read. Installs
/// [`silence_header_name_panics`] on first use.
pub fn headers(
    h: Option<&rdkafka::message::BorrowedHeaders>,
) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
    use rdkafka::message::Headers;
    silence_header_name_panics();
    let count = h.map_or(0, |h| h.count());
    (0..count).filter_map(move |i| {
        let h = h?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.try_get(i)))
            .ok()
            .flatten()
            .map(|header| (header.key, header.value))
    })
}

/// Keeps the panic that rdkafka's header accessor raises on a header name
/// that is not UTF-8 (caught in [`headers`]) out of stderr: a topic full of
/// such records would otherwise print a panic message per record. Only
/// that one (raised in rdkafka's `message.rs`, about a `Utf8Error`) is
/// silenced; every other panic reaches the previous hook unchanged.
/// Process-wide, set once.
pub fn silence_header_name_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let from_headers = info
                .location()
                .is_some_and(|l| l.file().contains("rdkafka") && l.file().ends_with("message.rs"))
                && is_utf8_panic(info.payload());
            if !from_headers {
                previous(info);
            }
        }));
    });
}

/// Whether a panic's payload is the `Utf8Error` of an `unwrap` on a
/// header name.
fn is_utf8_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    text.is_some_and(|t| t.contains("Utf8Error"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_header_name_panic_is_silenced() {
        let bytes = vec![b'a', 0xff];
        let utf8 = std::str::from_utf8(&bytes).unwrap_err();
        let message = format!("called `Result::unwrap()` on an `Err` value: {utf8:?}");
        assert!(super::is_utf8_panic(&message));
        assert!(!super::is_utf8_panic(&String::from("index out of bounds")));
        assert!(!super::is_utf8_panic(&"attempt to subtract with overflow"));
        assert!(!super::is_utf8_panic(&42));
    }

    /// Each class of refusal is told apart: credentials, TLS, ACLs, for
    /// every metric that classifies errors.
    #[test]
    fn refusals_are_classified_by_their_cause() {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
        let global = |c| KafkaError::Global(c);
        for (code, client, produce, consume) in [
            (
                C::Authentication,
                "authentication",
                "authentication",
                "authentication",
            ),
            (
                C::SaslAuthenticationFailed,
                "authentication",
                "authentication",
                "authentication",
            ),
            (C::SSL, "tls", "tls", "tls"),
            (
                C::TopicAuthorizationFailed,
                "authorization",
                "authorization",
                "authorization",
            ),
            (C::AllBrokersDown, "transport", "transport", "transport"),
            (C::MessageTimedOut, "timeout", "timeout", "other"),
        ] {
            assert_eq!(
                super::ClientError::of(&global(code)).label(),
                client,
                "{code:?}"
            );
            assert_eq!(super::classify(&global(code)).label(), produce, "{code:?}");
            assert_eq!(
                super::ConsumeError::of(&global(code)).label(),
                consume,
                "{code:?}"
            );
        }
        assert_eq!(
            super::connection_refusal(&global(C::SSL)),
            Some(super::ProduceError::Tls)
        );
        assert_eq!(super::connection_refusal(&global(C::AllBrokersDown)), None);
    }

    /// Every codec a pipeline's output may use, and every SASL mechanism
    /// users run, is built in: a codec missing here would turn a pipeline's
    /// canaries into decode errors, a false outage.
    #[test]
    #[cfg(feature = "codecs-and-mechanisms")]
    fn librdkafka_is_built_with_every_codec_and_mechanism() {
        let build = super::librdkafka_build();
        for feature in [
            "gzip",
            "snappy",
            "lz4",
            "zstd",
            "ssl",
            "sasl_gssapi",
            "sasl_plain",
            "sasl_scram",
            "sasl_oauthbearer",
            "http",
            "oidc",
        ] {
            assert!(
                build.split([' ', ',', '(', ')']).any(|f| f == feature),
                "librdkafka lacks {feature}: {build}"
            );
        }
    }
}
