//! The `librdkafka:` passthrough options, checked by librdkafka itself
//! without connecting: unknown properties and invalid values are
//! configuration errors that `slaprobe check` finds, not start-up failures.

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

/// Checks one option the way librdkafka will; the error is librdkafka's
/// own message.
pub fn check_option(key: &str, value: &str) -> Result<(), String> {
    ClientConfig::new()
        .set(key, value)
        .create_native_config()
        .map(|_| ())
        .map_err(|e| match e {
            KafkaError::ClientConfig(_, msg, _, _) => msg,
            other => other.to_string(),
        })
}
