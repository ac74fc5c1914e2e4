//! Each cluster's connection checks: `connection_check_interval` and
//! `listeners:`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{check_bootstrap, valid_name, At, Validator, NAME_CHARS};
use crate::config::model::*;
use crate::config::secret::is_secret_key;

/// `connection_check_interval`'s default.
pub(crate) const DEFAULT_CONNECTION_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// A check's timeout: this, or the interval when shorter.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks are never closer than this.
const MIN_CONNECTION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Validator<'_> {
    /// The connection checks of every cluster that has them on.
    pub(super) fn connection_checks(
        &mut self,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Vec<ConnectionChecks> {
        let mut out = Vec::new();
        for f in self.files {
            let Some(raw) = &f.raw.clusters else {
                continue;
            };
            for (name, rc) in raw {
                let Some(cluster) = clusters.get(name) else {
                    continue;
                };
                let at = At::root(f).child("clusters").child(name);
                let interval = match rc.connection_check_interval.as_deref().map(str::trim) {
                    Some("off") => continue,
                    None => DEFAULT_CONNECTION_CHECK_INTERVAL,
                    Some(s) => match self.duration(&at, "connection_check_interval", s) {
                        Some(d) if d >= MIN_CONNECTION_CHECK_INTERVAL => d,
                        Some(_) => {
                            self.err(at.at_val(
                                "connection_check_interval",
                                "must be at least 1s (each check opens a connection to every broker), or `off`",
                            ));
                            continue;
                        }
                        None => continue,
                    },
                };
                if let Err(msg) = check_security(&cluster.librdkafka) {
                    self.err(
                        at.child("librdkafka")
                            .here(unchecked(DEFAULT_LISTENER, &msg)),
                    );
                }
                let mut listeners = vec![ListenerConfig {
                    name: DEFAULT_LISTENER.to_string(),
                    bootstrap: cluster.bootstrap.clone(),
                    librdkafka: cluster.librdkafka.clone(),
                    secret_keys: cluster.secret_keys.clone(),
                }];
                let lat = at.child("listeners");
                for (i, rl) in rc.listeners.iter().enumerate() {
                    let la = lat.item(i);
                    if !valid_name(&rl.name) || rl.name == DEFAULT_LISTENER {
                        self.err(la.at_val(
                            "name",
                            format!(
                                "invalid listener name `{}`: {NAME_CHARS}, and not `{DEFAULT_LISTENER}` (the clients' own)",
                                rl.name
                            ),
                        ));
                    } else if listeners.iter().any(|l| l.name == rl.name) {
                        self.err(
                            la.at_val("name", format!("listener `{}` is named twice", rl.name)),
                        );
                    }
                    if let Err(msg) = check_bootstrap(&rl.bootstrap) {
                        self.err(la.at_val("bootstrap", msg));
                    }
                    let mut secret_keys = cluster.secret_keys.clone();
                    let oat = la.child("librdkafka");
                    let mut librdkafka = cluster.librdkafka.clone();
                    for (key, value) in &rl.librdkafka {
                        let secret = oat.is_from_file(key) || is_secret_key(key);
                        if oat.is_from_file(key) {
                            secret_keys.insert(key.clone());
                        }
                        if key == "bootstrap.servers" {
                            self.err(oat.at_key(key, "set the listener's `bootstrap` instead"));
                        } else if let Err(msg) = crate::config::check_option(key, value) {
                            let msg = if secret {
                                "librdkafka rejects this option's value (not shown: secret)"
                                    .to_string()
                            } else {
                                format!("librdkafka rejects this option: {msg}")
                            };
                            self.err(oat.at_key(key, msg));
                        }
                        librdkafka.insert(key.clone(), value.clone());
                    }
                    if let Err(msg) = check_security(&librdkafka) {
                        self.err(oat.here(unchecked(&rl.name, &msg)));
                    }
                    listeners.push(ListenerConfig {
                        name: rl.name.clone(),
                        bootstrap: rl.bootstrap.clone(),
                        librdkafka,
                        secret_keys,
                    });
                }
                out.push(ConnectionChecks {
                    cluster: name.clone(),
                    interval,
                    timeout: CHECK_TIMEOUT.min(interval),
                    listeners,
                });
            }
        }
        out
    }
}

fn unchecked(listener: &str, msg: &str) -> String {
    format!(
        "listener `{listener}` cannot be checked: {msg} (or set connection_check_interval: off)"
    )
}

/// What a check needs of the security options: a protocol it knows and,
/// for the SASL mechanisms it runs, a user.
fn check_security(o: &BTreeMap<String, String>) -> Result<(), String> {
    let get = |k: &str| o.get(k).map(|v| v.trim().to_ascii_uppercase());
    let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".into());
    if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&protocol.as_str()) {
        return Err(format!(
            "security.protocol `{protocol}` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
        ));
    }
    let mechanism = get("sasl.mechanisms").or_else(|| get("sasl.mechanism"));
    let runs = matches!(
        mechanism.as_deref(),
        Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512")
    );
    if protocol.starts_with("SASL") && runs && !o.contains_key("sasl.username") {
        return Err("sasl.mechanisms needs sasl.username".into());
    }
    Ok(())
}
