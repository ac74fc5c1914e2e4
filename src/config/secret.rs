//! Which configuration values are secrets by their name.

/// librdkafka keys whose values must never be shown or logged.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "private.key",
        "oauthbearer.config",
        "jaas",
        "credential",
        ".pem",
        "key.pem",
    ]
    .iter()
    .any(|s| k.contains(s))
}
