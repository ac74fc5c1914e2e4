//! The client side of the SASL mechanisms a connection check can
//! authenticate with: PLAIN and SCRAM-SHA-256/512 (RFC 5802, RFC 7677),
//! the hashes from OpenSSL. GSSAPI and OAUTHBEARER need a ticket or a
//! token provider the check does not have: their listeners are checked up
//! to ApiVersions.

use openssl::base64::{decode_block, encode_block};
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// A mechanism the check can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// The mechanism named `name` (librdkafka's `sasl.mechanisms`), if the
    /// check can run it.
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Mechanism::ScramSha512 => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        }
    }
}

/// Why an exchange could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The server's message is not SCRAM, or its nonce is not ours.
    #[error("the broker's SCRAM message is not valid: {0}")]
    Protocol(String),
    /// The server's final message refused us (`e=`).
    #[error("the broker refused the SCRAM proof: {0}")]
    Refused(String),
    /// The server could not prove it knows the password.
    #[error(
        "the broker's SCRAM signature does not verify (not the server that holds the credentials)"
    )]
    ServerUnverified,
}

/// PLAIN's one message.
pub fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// One SCRAM exchange: [`Scram::first`], then [`Scram::last`] with the
/// server's first message, then [`Scram::verify`] with its final one.
pub struct Scram {
    mechanism: Mechanism,
    password: String,
    first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

fn crypto(e: openssl::error::ErrorStack) -> SaslError {
    SaslError::Protocol(format!("OpenSSL: {e}"))
}

impl Scram {
    /// Starts an exchange for `user` with client nonce `nonce`.
    pub fn new(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> Scram {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            mechanism,
            password: password.to_string(),
            first_bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_string(),
            server_signature: Vec::new(),
        }
    }

    /// The client's first message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client's final message, from the server's first (which may
    /// ask for at most `max_iterations`).
    pub fn last(
        &mut self,
        server_first: &[u8],
        max_iterations: usize,
    ) -> Result<Vec<u8>, SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| SaslError::Protocol("not UTF-8".into()))?;
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .ok_or_else(|| SaslError::Protocol(format!("no `{k}` in its first message")))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::Protocol("its nonce does not extend ours".into()));
        }
        let salt = decode_block(field("s=")?)
            .map_err(|_| SaslError::Protocol("salt not base64".into()))?;
        let iterations: usize = field("i=")?
            .parse()
            .map_err(|_| SaslError::Protocol("iteration count not a number".into()))?;
        if iterations == 0 || iterations > max_iterations {
            return Err(SaslError::Protocol(format!(
                "{iterations} iterations (at most {max_iterations})"
            )));
        }
        let md = self.mechanism.digest();
        let mut salted = vec![0; md.size()];
        openssl::pkcs5::pbkdf2_hmac(self.password.as_bytes(), &salt, iterations, md, &mut salted)
            .map_err(crypto)?;
        let client_key = self.hmac(&salted, b"Client Key")?;
        let stored_key = hash(md, &client_key).map_err(crypto)?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = self.hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key")?;
        self.server_signature = self.hmac(&server_key, auth_message.as_bytes())?;
        Ok(format!("{without_proof},p={}", encode_block(&proof)).into_bytes())
    }

    /// Checks the server's final message.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let s = String::from_utf8_lossy(server_final);
        if let Some(e) = s.strip_prefix("e=") {
            return Err(SaslError::Refused(e.to_string()));
        }
        let v = s
            .strip_prefix("v=")
            .and_then(|v| decode_block(v.split(',').next().unwrap_or("")).ok())
            .ok_or_else(|| SaslError::Protocol("no `v=` in its final message".into()))?;
        if v.is_empty() || !openssl::memcmp::eq(&v, &self.server_signature) {
            return Err(SaslError::ServerUnverified);
        }
        Ok(())
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
        let key = PKey::hmac(key).map_err(crypto)?;
        let mut s = Signer::new(self.mechanism.digest(), &key).map_err(crypto)?;
        s.update(data).map_err(crypto)?;
        s.sign_to_vec().map_err(crypto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange.
    #[test]
    fn scram_sha_256_follows_rfc_7677s_example() {
        let mut s = Scram::new(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(s.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = s.last(server_first, 4096).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            s.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(())
        );
        assert_eq!(
            s.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslError::ServerUnverified)
        );
        assert!(matches!(
            s.verify(b"e=invalid-proof"),
            Err(SaslError::Refused(_))
        ));
    }

    #[test]
    fn a_server_that_does_not_extend_our_nonce_is_refused() {
        let mut s = Scram::new(Mechanism::ScramSha512, "a,b=c", "p", "abc");
        assert_eq!(s.first(), b"n,,n=a=2Cb=3Dc,r=abc");
        for bad in [
            &b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"[..],
            b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=abcd,s=***,i=4096",
            b"r=abcd,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many",
            b"r=abcd,i=1",
            b"r=abcd,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4097",
        ] {
            assert!(
                matches!(s.last(bad, 4096), Err(SaslError::Protocol(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn mechanisms_are_named_as_librdkafka_names_them() {
        assert_eq!(
            Mechanism::parse("scram-sha-512"),
            Some(Mechanism::ScramSha512)
        );
        assert_eq!(Mechanism::parse("PLAIN"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse("GSSAPI"), None);
        assert_eq!(plain("u", "p"), b"\0u\0p");
    }
}
