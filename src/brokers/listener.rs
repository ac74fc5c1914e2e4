//! A listener to check, read from the same librdkafka options slaprobe's
//! clients use (`security.protocol`, `ssl.*`, `sasl.*`): one source of
//! truth for how the cluster is reached. The TLS context is made from them
//! with OpenSSL, as librdkafka makes its own.

use std::collections::BTreeMap;
use std::path::Path;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::X509;

use super::sasl::Mechanism;

/// A `bootstrap.servers` entry as librdkafka reads it:
/// `[protocol://]host[:port]` (port 9092 when left out; `[v6]:port`).
fn address(entry: &str) -> Option<(String, u16)> {
    let e = entry.trim();
    let e = e.split_once("://").map_or(e, |(_, rest)| rest);
    if e.is_empty() {
        return None;
    }
    match e.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.ends_with(']')) => {
            Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?))
        }
        _ => Some((e.trim_matches(['[', ']']).to_string(), 9092)),
    }
}

/// How a listener authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Sasl {
    /// A mechanism the check runs, with the credentials the clients use.
    Run {
        mechanism: Mechanism,
        user: String,
        password: String,
    },
    /// GSSAPI, OAUTHBEARER: checked up to ApiVersions.
    NotChecked(String),
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sasl::Run {
                mechanism, user, ..
            } => write!(f, "{} as {user}", mechanism.name()),
            Sasl::NotChecked(m) => write!(f, "{m} (not checked)"),
        }
    }
}

/// One listener: where it is, TLS or not, which SASL mechanism.
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub bootstrap: Vec<(String, u16)>,
    /// The librdkafka options TLS is made from (`ssl.*` and the
    /// verification switches), when the protocol is SSL or SASL_SSL.
    pub tls: Option<BTreeMap<String, String>>,
    pub sasl: Option<Sasl>,
}

impl Listener {
    /// The listener of `bootstrap` reached with librdkafka options
    /// `options`; an error names the option that is wrong.
    pub fn new(
        name: &str,
        bootstrap: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Listener, String> {
        let bootstrap = bootstrap.split(',').filter_map(address).collect();
        let get = |k: &str| options.get(k).map(|v| v.trim().to_string());
        let protocol = get("security.protocol")
            .unwrap_or_else(|| "plaintext".into())
            .to_ascii_lowercase();
        let (tls, sasl) = match protocol.as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => {
                return Err(format!(
                    "security.protocol `{other}` is not one of plaintext, ssl, sasl_plaintext, sasl_ssl"
                ))
            }
        };
        let sasl = if sasl {
            // librdkafka's default mechanism is GSSAPI.
            let name = get("sasl.mechanisms")
                .or_else(|| get("sasl.mechanism"))
                .unwrap_or_else(|| "GSSAPI".into());
            Some(match Mechanism::parse(&name) {
                Some(mechanism) => Sasl::Run {
                    mechanism,
                    user: get("sasl.username")
                        .ok_or_else(|| format!("sasl.mechanisms {name} needs sasl.username"))?,
                    password: options.get("sasl.password").cloned().unwrap_or_default(),
                },
                None => Sasl::NotChecked(name),
            })
        } else {
            None
        };
        let tls = tls.then(|| {
            options
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("ssl.") || *k == "enable.ssl.certificate.verification"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        let l = Listener {
            name: name.to_string(),
            bootstrap,
            tls,
            sasl,
        };
        // Files that cannot be read now are an error at start; later (a
        // rotation gone wrong) a check's `tls_config` error.
        l.connector()?;
        Ok(l)
    }

    /// The TLS connector and whether host names are verified; `None` on
    /// a listener without TLS.
    pub fn connector(&self) -> Result<Option<(SslConnector, bool)>, String> {
        let Some(o) = &self.tls else {
            return Ok(None);
        };
        let get = |k: &str| o.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let e = |k: &'static str| move |err: openssl::error::ErrorStack| format!("{k}: {err}");
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(e("TLS"))?;
        match (get("ssl.ca.location"), get("ssl.ca.pem")) {
            (Some(loc), _) if !loc.eq_ignore_ascii_case("probe") => {
                if Path::new(loc).is_dir() {
                    b.load_verify_locations(None, Some(Path::new(loc)))
                } else {
                    b.load_verify_locations(Some(Path::new(loc)), None)
                }
                .map_err(|err| format!("ssl.ca.location `{loc}`: {err}"))?;
            }
            (_, Some(pem)) => {
                let certs = X509::stack_from_pem(pem.as_bytes()).map_err(e("ssl.ca.pem"))?;
                if certs.is_empty() {
                    return Err("ssl.ca.pem: no PEM certificate in it".into());
                }
                for c in certs {
                    b.cert_store_mut().add_cert(c).map_err(e("ssl.ca.pem"))?;
                }
            }
            // The system's trust store (SslConnector's default).
            _ => {}
        }
        client_identity(&mut b, &get)?;
        let verify = get("enable.ssl.certificate.verification")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        if !verify {
            b.set_verify(SslVerifyMode::NONE);
        }
        let hostname = verify
            && get("ssl.endpoint.identification.algorithm")
                .is_none_or(|v| !v.eq_ignore_ascii_case("none"));
        Ok(Some((b.build(), hostname)))
    }
}

/// The client's certificate and key (mutual TLS), from PEM files, PEM
/// strings or a PKCS#12 keystore, as librdkafka reads them.
fn client_identity<'a>(
    b: &mut SslConnectorBuilder,
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(), String> {
    let read = |k: &str, path: &str| std::fs::read(path).map_err(|e| format!("{k} `{path}`: {e}"));
    let password = get("ssl.key.password");
    let key = |k: &str, pem: &[u8]| -> Result<PKey<Private>, String> {
        match password {
            Some(p) => PKey::private_key_from_pem_passphrase(pem, p.as_bytes()),
            None => PKey::private_key_from_pem(pem),
        }
        .map_err(|e| format!("{k}: {e}"))
    };
    if let Some(path) = get("ssl.keystore.location") {
        let der = read("ssl.keystore.location", path)?;
        let p = Pkcs12::from_der(&der)
            .and_then(|p| p.parse2(get("ssl.keystore.password").unwrap_or("")))
            .map_err(|e| format!("ssl.keystore.location `{path}`: {e}"))?;
        if let Some(c) = p.cert {
            b.set_certificate(&c)
                .map_err(|e| format!("ssl.keystore.location: {e}"))?;
        }
        if let Some(k) = p.pkey {
            b.set_private_key(&k)
                .map_err(|e| format!("ssl.keystore.location: {e}"))?;
        }
        for c in p.ca.into_iter().flatten() {
            b.add_extra_chain_cert(c)
                .map_err(|e| format!("ssl.keystore.location: {e}"))?;
        }
        return Ok(());
    }
    if let Some(path) = get("ssl.certificate.location") {
        b.set_certificate_chain_file(path)
            .map_err(|e| format!("ssl.certificate.location `{path}`: {e}"))?;
    } else if let Some(pem) = get("ssl.certificate.pem") {
        let c = X509::from_pem(pem.as_bytes()).map_err(|e| format!("ssl.certificate.pem: {e}"))?;
        b.set_certificate(&c)
            .map_err(|e| format!("ssl.certificate.pem: {e}"))?;
    }
    if let Some(path) = get("ssl.key.location") {
        if password.is_none() {
            b.set_private_key_file(path, SslFiletype::PEM)
                .map_err(|e| format!("ssl.key.location `{path}`: {e}"))?;
        } else {
            let k = key("ssl.key.location", &read("ssl.key.location", path)?)?;
            b.set_private_key(&k)
                .map_err(|e| format!("ssl.key.location: {e}"))?;
        }
    } else if let Some(pem) = get("ssl.key.pem") {
        let k = key("ssl.key.pem", pem.as_bytes())?;
        b.set_private_key(&k)
            .map_err(|e| format!("ssl.key.pem: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_clients_options_say_how_a_listener_is_reached() {
        let l = Listener::new("default", "k1:9092, [::1]:9093", &BTreeMap::new()).unwrap();
        assert_eq!(
            l.bootstrap,
            vec![("k1".to_string(), 9092), ("::1".to_string(), 9093)]
        );
        assert!(l.tls.is_none() && l.sasl.is_none());
        let l = Listener::new(
            "scram",
            "k:9093",
            &opts(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", "u"),
                ("sasl.password", "secret"),
            ]),
        )
        .unwrap();
        assert!(matches!(
            l.sasl,
            Some(Sasl::Run {
                mechanism: Mechanism::ScramSha512,
                ..
            })
        ));
        assert!(l.connector().unwrap().is_some_and(|(_, hostname)| hostname));
        assert!(!format!("{l:?}").contains("secret"), "{l:?}");
        let l = Listener::new(
            "k",
            "k:9093",
            &opts(&[("security.protocol", "sasl_plaintext")]),
        )
        .unwrap();
        assert_eq!(l.sasl, Some(Sasl::NotChecked("GSSAPI".into())));
    }

    #[test]
    fn bootstrap_entries_are_read_as_librdkafka_reads_them() {
        let l = Listener::new(
            "default",
            "SASL_SSL://k1:9093, k2 ,[::1]:9094,PLAINTEXT://k3,",
            &opts(&[]),
        )
        .unwrap();
        let want = [("k1", 9093), ("k2", 9092), ("::1", 9094), ("k3", 9092)];
        let want: Vec<(String, u16)> = want.iter().map(|(h, p)| (h.to_string(), *p)).collect();
        assert_eq!(l.bootstrap, want);
    }

    #[test]
    fn a_wrong_option_is_named() {
        let err = |kv: &[(&str, &str)]| Listener::new("x", "k:1", &opts(kv)).unwrap_err();
        assert!(err(&[("security.protocol", "tls")]).contains("security.protocol `tls`"));
        assert!(err(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "PLAIN")
        ])
        .contains("sasl.username"));
        assert!(err(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", "/nonexistent/ca.pem")
        ])
        .contains("ssl.ca.location `/nonexistent/ca.pem`"));
        assert!(
            err(&[("security.protocol", "SSL"), ("ssl.ca.pem", "not a pem")])
                .contains("ssl.ca.pem")
        );
    }
}
