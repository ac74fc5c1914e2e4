//! One connection check of one broker on one listener, stage by stage:
//! TCP connect, TLS handshake (the broker's certificate read on the way),
//! ApiVersions round trip, SASL authentication; then a Metadata request
//! on the same connection for the brokers the listener advertises. Each
//! stage is timed; the first that fails ends the check with an error
//! class.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::ssl::{HandshakeError, SslVerifyMode};

use super::listener::{Listener, Sasl};
use super::sasl::{self, Scram};
use super::wire::{self, Broker, Malformed};

/// A stage of a connection, as the `stage` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Tcp,
    Tls,
    ApiVersions,
    Sasl,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Tcp, Stage::Tls, Stage::ApiVersions, Stage::Sasl];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Tcp => "tcp",
            Stage::Tls => "tls",
            Stage::ApiVersions => "api_versions",
            Stage::Sasl => "sasl",
        }
    }
}

/// Why a stage failed: the `error` label, a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The host name does not resolve.
    Dns,
    /// Nothing listens on the port (the broker is down).
    Refused,
    /// No answer within the check's timeout.
    Timeout,
    /// No route to the host or network.
    Unreachable,
    /// The broker closed the connection (a TLS listener spoken to in
    /// plaintext, a broker shutting down, a proxy).
    Closed,
    /// Another socket error.
    Io,
    /// The certificate chain does not lead to a trusted CA.
    TlsUntrusted,
    /// The certificate has expired (or is not valid yet).
    TlsExpired,
    /// The certificate does not name the host slaprobe connected to.
    TlsHostname,
    /// Another handshake failure (no common protocol or cipher, the
    /// broker wants a client certificate).
    TlsHandshake,
    /// slaprobe's own TLS settings cannot be loaded (a CA or key file
    /// gone or unreadable).
    TlsConfig,
    /// The broker refused the credentials.
    SaslAuthFailed,
    /// The listener does not enable the mechanism.
    SaslMechanism,
    /// The broker could not prove it holds the credentials (SCRAM).
    SaslServerUnverified,
    /// A response that is not Kafka's answer to the request.
    Protocol,
}

impl ErrorClass {
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Dns => "dns",
            ErrorClass::Refused => "refused",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::Closed => "closed",
            ErrorClass::Io => "io",
            ErrorClass::TlsUntrusted => "tls_untrusted",
            ErrorClass::TlsExpired => "tls_expired",
            ErrorClass::TlsHostname => "tls_hostname",
            ErrorClass::TlsHandshake => "tls_handshake",
            ErrorClass::TlsConfig => "tls_config",
            ErrorClass::SaslAuthFailed => "sasl_auth_failed",
            ErrorClass::SaslMechanism => "sasl_mechanism",
            ErrorClass::SaslServerUnverified => "sasl_server_unverified",
            ErrorClass::Protocol => "protocol",
        }
    }

    fn of_io(e: &std::io::Error) -> ErrorClass {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => ErrorClass::Refused,
            K::TimedOut | K::WouldBlock => ErrorClass::Timeout,
            K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                ErrorClass::Unreachable
            }
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                ErrorClass::Closed
            }
            _ => ErrorClass::Io,
        }
    }
}

/// A failed stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub class: ErrorClass,
    pub message: String,
}

/// What one check found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The stages that completed, with how long each took.
    pub stages: Vec<(Stage, Duration)>,
    pub failure: Option<Failure>,
    /// The broker's certificate's end of validity (Unix seconds), when
    /// the handshake got that far.
    pub certificate_expiry: Option<i64>,
    /// The brokers the listener advertises (a check that passed every
    /// stage asks).
    pub brokers: Option<Vec<Broker>>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// The most SCRAM iterations a check computes: Kafka's are 4,096 to
/// 16,384; a server asking for billions would stall the check.
const MAX_SCRAM_ITERATIONS: usize = 100_000;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An open connection, through every stage the listener has: requests in
/// turn, each within the connection's deadline.
pub struct Conn {
    stream: Box<dyn Stream>,
    socket: TcpStream,
    deadline: Instant,
    correlation: i32,
    /// The versions the broker serves, from its ApiVersions answer.
    pub versions: wire::ApiRanges,
}

impl Conn {
    /// Requests from now on must be answered by `deadline`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Sends a request and reads its response's body.
    pub fn round_trip(
        &mut self,
        header: wire::Header,
        body: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, (ErrorClass, String)> {
        let io = |e: std::io::Error| (ErrorClass::of_io(&e), format!("{what}: {e}"));
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err((ErrorClass::Timeout, format!("{what}: no time left")));
        }
        self.socket.set_read_timeout(Some(left)).map_err(io)?;
        self.socket.set_write_timeout(Some(left)).map_err(io)?;
        self.correlation = self.correlation.wrapping_add(1);
        let frame = wire::request(header, self.correlation, body);
        self.stream.write_all(&frame).map_err(io)?;
        self.stream.flush().map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > wire::MAX_RESPONSE {
            return Err((
                ErrorClass::Protocol,
                format!("{what}: a response of {size} bytes (not a Kafka listener?)"),
            ));
        }
        let mut b = vec![0; size as usize];
        self.stream.read_exact(&mut b).map_err(io)?;
        wire::response_body(&b, self.correlation, header.flexible, what)
            .map(<[u8]>::to_vec)
            .map_err(malformed)
    }
}

fn malformed(m: Malformed) -> (ErrorClass, String) {
    (ErrorClass::Protocol, m.to_string())
}

/// Unix seconds of an ASN.1 time.
fn unix_seconds(t: &Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Checks `host:port` on `listener` within `timeout`; `nonce` is the SCRAM
/// client nonce (random per check).
pub fn check(
    listener: &Listener,
    host: &str,
    port: u16,
    timeout: Duration,
    nonce: &str,
) -> Outcome {
    let mut out = Outcome::default();
    let Some(mut conn) = open(listener, host, port, timeout, nonce, &mut out) else {
        return out;
    };
    // The brokers, for the next checks (not a stage: a failure here
    // leaves the known brokers as they are).
    if !matches!(listener.sasl, Some(Sasl::NotChecked(_))) {
        out.brokers = conn
            .round_trip(
                wire::Header::check(wire::METADATA, 4),
                &wire::metadata_brokers(),
                "Metadata",
            )
            .ok()
            .and_then(|b| wire::metadata_response(&b).ok());
    }
    out
}

/// Connects to `host:port` on `listener` within `timeout`, stage by
/// stage, each timed in `out`: the connection, when every stage passed
/// (else `out.failure` says which did not).
pub fn open(
    listener: &Listener,
    host: &str,
    port: u16,
    timeout: Duration,
    nonce: &str,
    out: &mut Outcome,
) -> Option<Conn> {
    let deadline = Instant::now() + timeout;
    let fail = |out: &mut Outcome, stage: Stage, (class, message): (ErrorClass, String)| {
        out.failure = Some(Failure {
            stage,
            class,
            message,
        });
    };
    // TCP.
    let started = Instant::now();
    let socket = match connect(host, port, timeout) {
        Ok(s) => s,
        Err(e) => {
            fail(out, Stage::Tcp, e);
            return None;
        }
    };
    out.stages.push((Stage::Tcp, started.elapsed()));
    let _ = socket.set_nodelay(true);
    let Ok(clone) = socket.try_clone() else {
        fail(
            out,
            Stage::Tcp,
            (ErrorClass::Io, "cannot clone the socket".into()),
        );
        return None;
    };
    // TLS.
    let stream: Box<dyn Stream> = match listener.connector() {
        Err(e) => {
            fail(out, Stage::Tls, (ErrorClass::TlsConfig, e));
            return None;
        }
        Ok(None) => Box::new(clone),
        Ok(Some((connector, verify_hostname))) => {
            let started = Instant::now();
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = socket.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let _ = socket.set_write_timeout(Some(left.max(Duration::from_millis(1))));
            match handshake(connector, verify_hostname, host, clone) {
                Ok((s, expiry)) => {
                    out.certificate_expiry = expiry;
                    out.stages.push((Stage::Tls, started.elapsed()));
                    s
                }
                Err((e, expiry)) => {
                    out.certificate_expiry = expiry;
                    fail(out, Stage::Tls, e);
                    return None;
                }
            }
        }
    };
    let mut conn = Conn {
        stream,
        socket,
        deadline,
        correlation: 0,
        versions: Vec::new(),
    };
    // ApiVersions.
    let started = Instant::now();
    let api = conn
        .round_trip(
            wire::Header::check(wire::API_VERSIONS, 0),
            &[],
            "ApiVersions",
        )
        .and_then(|b| wire::api_versions(&b).map_err(malformed))
        .and_then(|(error, ranges)| match (error, ranges) {
            (0, ranges) if !ranges.is_empty() => Ok(ranges),
            (e, _) => Err((
                ErrorClass::Protocol,
                format!("ApiVersions answered error {e}"),
            )),
        });
    match api {
        Ok(ranges) => conn.versions = ranges,
        Err(e) => {
            fail(out, Stage::ApiVersions, e);
            return None;
        }
    }
    out.stages.push((Stage::ApiVersions, started.elapsed()));
    // SASL.
    if let Some(Sasl::Run {
        mechanism,
        user,
        password,
    }) = &listener.sasl
    {
        let started = Instant::now();
        if let Err(e) = authenticate(&mut conn, *mechanism, user, password, nonce) {
            fail(out, Stage::Sasl, e);
            return None;
        }
        out.stages.push((Stage::Sasl, started.elapsed()));
    }
    Some(conn)
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, (ErrorClass, String)> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| (ErrorClass::Dns, format!("resolving {host}: {e}")))?
        .collect();
    let mut last = (ErrorClass::Dns, format!("{host} resolves to no address"));
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = (ErrorClass::of_io(&e), format!("connecting to {a}: {e}")),
        }
    }
    Err(last)
}

type TlsResult = Result<(Box<dyn Stream>, Option<i64>), ((ErrorClass, String), Option<i64>)>;

/// The handshake; the broker's certificate's expiry is read in the
/// verification callback, so a refused certificate still says when it
/// expires.
fn handshake(
    connector: openssl::ssl::SslConnector,
    verify_hostname: bool,
    host: &str,
    socket: TcpStream,
) -> TlsResult {
    let seen: Arc<Mutex<Option<i64>>> = Arc::default();
    let mut config = match connector.configure() {
        Ok(c) => c,
        Err(e) => return Err(((ErrorClass::TlsConfig, e.to_string()), None)),
    };
    config.set_verify_hostname(verify_hostname);
    let verifying = connector.context().verify_mode() != SslVerifyMode::NONE;
    let mode = if verifying {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    };
    let leaf = seen.clone();
    config.set_verify_callback(mode, move |ok, ctx| {
        // The chain's first certificate is the broker's own, whatever the
        // depth of the certificate being verified (an untrusted CA fails
        // at depth 1, before the leaf's turn).
        let expiry = match ctx.chain().and_then(|c| c.get(0)) {
            Some(c) => unix_seconds(c.not_after()),
            None if ctx.error_depth() == 0 => {
                ctx.current_cert().and_then(|c| unix_seconds(c.not_after()))
            }
            None => None,
        };
        if expiry.is_some() {
            *leaf.lock().unwrap_or_else(|e| e.into_inner()) = expiry;
        }
        ok
    });
    let expiry = || *seen.lock().unwrap_or_else(|e| e.into_inner());
    match config.connect(host, socket) {
        Ok(s) => {
            let from_peer = s
                .ssl()
                .peer_certificate()
                .and_then(|c| unix_seconds(c.not_after()));
            Ok((Box::new(s), from_peer.or_else(expiry)))
        }
        Err(HandshakeError::Failure(mid)) | Err(HandshakeError::WouldBlock(mid)) => {
            let verify = mid.ssl().verify_result();
            let class = match verify.as_raw() {
                0 => match mid.error().io_error() {
                    Some(e) => ErrorClass::of_io(e),
                    None => ErrorClass::TlsHandshake,
                },
                // X509_V_ERR_CERT_NOT_YET_VALID, _HAS_EXPIRED.
                9 | 10 => ErrorClass::TlsExpired,
                // X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH.
                62 | 64 => ErrorClass::TlsHostname,
                _ => ErrorClass::TlsUntrusted,
            };
            let message = if verify.as_raw() == 0 {
                mid.error().to_string()
            } else {
                verify.error_string().to_string()
            };
            Err(((class, format!("TLS handshake: {message}")), expiry()))
        }
        Err(HandshakeError::SetupFailure(e)) => {
            Err(((ErrorClass::TlsConfig, e.to_string()), expiry()))
        }
    }
}

/// SaslHandshake and SaslAuthenticate for `mechanism`.
fn authenticate(
    conn: &mut Conn,
    mechanism: sasl::Mechanism,
    user: &str,
    password: &str,
    nonce: &str,
) -> Result<(), (ErrorClass, String)> {
    let b = conn.round_trip(
        wire::Header::check(wire::SASL_HANDSHAKE, 1),
        &wire::sasl_handshake(mechanism.name()),
        "SaslHandshake",
    )?;
    let (error, enabled) = wire::sasl_handshake_response(&b).map_err(malformed)?;
    if error != 0 {
        let class = if error == wire::UNSUPPORTED_SASL_MECHANISM {
            ErrorClass::SaslMechanism
        } else {
            ErrorClass::Protocol
        };
        return Err((
            class,
            format!(
                "the listener does not take {} (it takes {})",
                mechanism.name(),
                enabled.join(", ")
            ),
        ));
    }
    let mut step = |auth: &[u8]| -> Result<Vec<u8>, (ErrorClass, String)> {
        let b = conn.round_trip(
            wire::Header::check(wire::SASL_AUTHENTICATE, 1),
            &wire::sasl_authenticate(auth),
            "SaslAuthenticate",
        )?;
        let (error, message, bytes) = wire::sasl_authenticate_response(&b).map_err(malformed)?;
        match error {
            0 => Ok(bytes),
            wire::SASL_AUTHENTICATION_FAILED => Err((
                ErrorClass::SaslAuthFailed,
                format!(
                    "{} as {user}: {}",
                    mechanism.name(),
                    message.unwrap_or_default()
                ),
            )),
            e => Err((
                ErrorClass::Protocol,
                format!("SaslAuthenticate answered error {e}"),
            )),
        }
    };
    let refused = |e: sasl::SaslError| {
        let class = match e {
            sasl::SaslError::Refused(_) => ErrorClass::SaslAuthFailed,
            sasl::SaslError::ServerUnverified => ErrorClass::SaslServerUnverified,
            sasl::SaslError::Protocol(_) => ErrorClass::Protocol,
        };
        (class, e.to_string())
    };
    match mechanism {
        sasl::Mechanism::Plain => step(&sasl::plain(user, password)).map(drop),
        _ => {
            let mut scram = Scram::new(mechanism, user, password, nonce);
            let server_first = step(&scram.first())?;
            let last = scram
                .last(&server_first, MAX_SCRAM_ITERATIONS)
                .map_err(refused)?;
            let server_final = step(&last)?;
            scram.verify(&server_final).map_err(refused)
        }
    }
}
