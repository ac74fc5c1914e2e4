//! The few Kafka requests slaprobe's own connections send, encoded and
//! decoded by hand (pure): ApiVersions v0, SaslHandshake v1,
//! SaslAuthenticate v1 and Metadata v4 (the oldest versions Kafka 4 still
//! serves, none of them "flexible", so no tagged fields) for the
//! connection checks — librdkafka cannot be asked how long each stage of
//! its connections took, nor for a broker's certificate — and the
//! primitives of flexible versions (unsigned varints, compact strings and
//! arrays, tagged fields) for the batched group requests of
//! [`super::groups`].
//!
//! A frame is a big-endian `i32` size and that many bytes; a request's
//! header is (api key, version, correlation id, client id) and, in a
//! flexible version, tagged fields; a response's the correlation id and,
//! in a flexible version, tagged fields.

/// The client id the checks send (brokers log it).
pub const CLIENT_ID: &str = "slaprobe-connection-check";

/// The largest response a check reads: a Metadata response of a cluster
/// of thousands of brokers fits; a non-Kafka peer's "size" does not make
/// slaprobe allocate gigabytes.
pub const MAX_RESPONSE: usize = 16 << 20;

pub const API_VERSIONS: i16 = 18;
pub const SASL_HANDSHAKE: i16 = 17;
pub const SASL_AUTHENTICATE: i16 = 36;
pub const METADATA: i16 = 3;

/// Kafka error codes the checks tell apart.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// A response that is not what the request asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0} response")]
pub struct Malformed(pub &'static str);

/// A request's header: what it is, and how its header is written.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub api_key: i16,
    pub version: i16,
    pub client_id: &'static str,
    /// A flexible version: header v2 (tagged fields after the client id)
    /// and response header v1 (tagged fields after the correlation id).
    pub flexible: bool,
}

impl Header {
    /// A non-flexible request of the connection checks.
    pub fn check(api_key: i16, version: i16) -> Header {
        Header {
            api_key,
            version,
            client_id: CLIENT_ID,
            flexible: false,
        }
    }
}

/// A request frame (with its size prefix).
pub fn request(h: Header, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(15 + h.client_id.len() + body.len());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&h.api_key.to_be_bytes());
    b.extend_from_slice(&h.version.to_be_bytes());
    b.extend_from_slice(&correlation.to_be_bytes());
    put_str(&mut b, h.client_id);
    if h.flexible {
        b.push(0); // no tagged fields
    }
    b.extend_from_slice(body);
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    b
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as i16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// An unsigned varint (flexible versions' lengths and counts).
pub fn put_uvarint(b: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

/// A compact string: its length plus one as an unsigned varint, then its
/// bytes.
pub fn put_compact_str(b: &mut Vec<u8>, s: &str) {
    put_uvarint(b, s.len() as u32 + 1);
    b.extend_from_slice(s.as_bytes());
}

/// A compact array's length (plus one).
pub fn put_compact_len(b: &mut Vec<u8>, n: usize) {
    put_uvarint(b, n as u32 + 1);
}

/// SaslHandshake v1's body.
pub fn sasl_handshake(mechanism: &str) -> Vec<u8> {
    let mut b = Vec::new();
    put_str(&mut b, mechanism);
    b
}

/// SaslAuthenticate v1's body.
pub fn sasl_authenticate(auth: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + auth.len());
    b.extend_from_slice(&(auth.len() as i32).to_be_bytes());
    b.extend_from_slice(auth);
    b
}

/// Metadata v4's body: no topics (brokers only), no topic creation.
pub fn metadata_brokers() -> Vec<u8> {
    let mut b = 0i32.to_be_bytes().to_vec();
    b.push(0);
    b
}

/// A cursor over a response's body.
pub struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { b, what }
    }
    pub fn malformed(&self) -> Malformed {
        Malformed(self.what)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.b.len() < n {
            return Err(Malformed(self.what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn i16(&mut self) -> Result<i16, Malformed> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    pub fn i32(&mut self) -> Result<i32, Malformed> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub fn i64(&mut self) -> Result<i64, Malformed> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_be_bytes(a))
    }
    /// An unsigned varint of at most 32 bits.
    pub fn uvarint(&mut self) -> Result<u32, Malformed> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let byte = self.take(1)?[0];
            v |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed(self.what))
    }
    /// A compact array's length (null read as empty), bounded by what is
    /// left as [`Reader::len`] is.
    pub fn compact_len(&mut self) -> Result<usize, Malformed> {
        let n = self.uvarint()? as usize;
        if n > self.b.len() + 1 {
            return Err(Malformed(self.what));
        }
        Ok(n.saturating_sub(1))
    }
    pub fn compact_nullable_str(&mut self) -> Result<Option<String>, Malformed> {
        let n = self.uvarint()? as usize;
        if n == 0 {
            return Ok(None);
        }
        let s = self.take(n - 1)?;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }
    pub fn compact_str(&mut self) -> Result<String, Malformed> {
        self.compact_nullable_str()?.ok_or(Malformed(self.what))
    }
    /// Tagged fields: none is read, each is skipped.
    pub fn tags(&mut self) -> Result<(), Malformed> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
    /// An array's length (-1: null, read as empty).
    fn len(&mut self) -> Result<usize, Malformed> {
        let n = self.i32()?;
        // Each element takes at least a byte: a count beyond what is left
        // is a lie, not an allocation.
        if n > self.b.len() as i32 {
            return Err(Malformed(self.what));
        }
        Ok(n.max(0) as usize)
    }
    fn nullable_str(&mut self) -> Result<Option<String>, Malformed> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let s = self.take(n as usize)?;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }
    fn str(&mut self) -> Result<String, Malformed> {
        self.nullable_str()?.ok_or(Malformed(self.what))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(&[]);
        }
        self.take(n as usize)
    }
}

/// The body of response frame `frame` (without its size) to request
/// `correlation` (`flexible`: response header v1).
pub fn response_body<'a>(
    frame: &'a [u8],
    correlation: i32,
    flexible: bool,
    what: &'static str,
) -> Result<&'a [u8], Malformed> {
    let mut r = Reader { b: frame, what };
    if r.i32()? != correlation {
        return Err(Malformed(what));
    }
    if flexible {
        r.tags()?;
    }
    Ok(r.b)
}

/// The versions a broker serves of each API: (api key, min, max).
pub type ApiRanges = Vec<(i16, i16, i16)>;

/// Whether `ranges` include version `version` of `api_key`.
pub fn serves(ranges: &ApiRanges, api_key: i16, version: i16) -> bool {
    ranges
        .iter()
        .any(|&(k, min, max)| k == api_key && (min..=max).contains(&version))
}

/// ApiVersions v0: the error code and the versions the broker serves.
pub fn api_versions(body: &[u8]) -> Result<(i16, ApiRanges), Malformed> {
    let mut r = Reader {
        b: body,
        what: "ApiVersions",
    };
    let error = r.i16()?;
    let n = r.len()?;
    let ranges = (0..n)
        .map(|_| Ok((r.i16()?, r.i16()?, r.i16()?)))
        .collect::<Result<_, _>>()?;
    Ok((error, ranges))
}

/// SaslHandshake v1: the error code and the mechanisms the listener
/// enables.
pub fn sasl_handshake_response(body: &[u8]) -> Result<(i16, Vec<String>), Malformed> {
    let mut r = Reader {
        b: body,
        what: "SaslHandshake",
    };
    let error = r.i16()?;
    let n = r.len()?;
    let mechanisms = (0..n).map(|_| r.str()).collect::<Result<_, _>>()?;
    Ok((error, mechanisms))
}

/// SaslAuthenticate v1: the error code, the broker's message and its
/// authentication bytes.
pub fn sasl_authenticate_response(
    body: &[u8],
) -> Result<(i16, Option<String>, Vec<u8>), Malformed> {
    let mut r = Reader {
        b: body,
        what: "SaslAuthenticate",
    };
    let error = r.i16()?;
    let message = r.nullable_str()?;
    let auth = r.bytes()?.to_vec();
    Ok((error, message, auth))
}

/// A broker in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: u16,
    /// `broker.rack`, where the cluster sets it.
    pub rack: Option<String>,
}

/// Metadata v4's brokers (the rest of the response is not read).
pub fn metadata_response(body: &[u8]) -> Result<Vec<Broker>, Malformed> {
    let mut r = Reader {
        b: body,
        what: "Metadata",
    };
    let _throttle = r.i32()?;
    let n = r.len()?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.i32()?;
        let host = r.str()?;
        let port = u16::try_from(r.i32()?).map_err(|_| Malformed("Metadata"))?;
        let rack = r.nullable_str()?;
        brokers.push(Broker {
            id,
            host,
            port,
            rack,
        });
    }
    Ok(brokers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_frame_says_its_size_and_header() {
        let f = request(Header::check(API_VERSIONS, 0), 7, &[]);
        assert_eq!(&f[..4], &((f.len() - 4) as i32).to_be_bytes());
        assert_eq!(&f[4..6], &18i16.to_be_bytes());
        assert_eq!(&f[6..8], &0i16.to_be_bytes());
        assert_eq!(&f[8..12], &7i32.to_be_bytes());
        assert_eq!(&f[12..14], &(CLIENT_ID.len() as i16).to_be_bytes());
        assert_eq!(&f[14..], CLIENT_ID.as_bytes());
    }

    fn metadata_body(brokers: &[(i32, &str, i32, Option<&str>)]) -> Vec<u8> {
        let mut b = 0i32.to_be_bytes().to_vec();
        b.extend_from_slice(&(brokers.len() as i32).to_be_bytes());
        for (id, host, port, rack) in brokers {
            b.extend_from_slice(&id.to_be_bytes());
            put_str(&mut b, host);
            b.extend_from_slice(&port.to_be_bytes());
            match rack {
                Some(r) => put_str(&mut b, r),
                None => b.extend_from_slice(&(-1i16).to_be_bytes()),
            }
        }
        b.extend_from_slice(&(-1i16).to_be_bytes()); // cluster id
        b.extend_from_slice(&1i32.to_be_bytes()); // controller
        b.extend_from_slice(&0i32.to_be_bytes()); // topics
        b
    }

    #[test]
    fn metadata_gives_each_broker_with_its_rack() {
        let b = metadata_body(&[(1, "k1", 9092, Some("az-a")), (2, "k2", 9093, None)]);
        assert_eq!(
            metadata_response(&b).unwrap(),
            vec![
                Broker {
                    id: 1,
                    host: "k1".into(),
                    port: 9092,
                    rack: Some("az-a".into())
                },
                Broker {
                    id: 2,
                    host: "k2".into(),
                    port: 9093,
                    rack: None
                },
            ]
        );
    }

    #[test]
    fn a_truncated_or_lying_response_is_malformed_not_a_panic() {
        let b = metadata_body(&[(1, "k1", 9092, Some("az-a"))]);
        for cut in 0..b.len() - 10 {
            assert!(metadata_response(&b[..cut]).is_err(), "cut at {cut}");
        }
        // A count of 2^31 - 1 elements in 4 bytes.
        let mut lie = 0i16.to_be_bytes().to_vec();
        lie.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(api_versions(&lie), Err(Malformed("ApiVersions")));
        assert!(sasl_handshake_response(&lie).is_err());
        let mut port = metadata_body(&[(1, "k1", 70_000, None)]);
        port.truncate(port.len());
        assert!(metadata_response(&port).is_err());
        assert!(response_body(&[0, 0, 0, 8], 7, false, "x").is_err());
        // A flexible header's tagged fields cut short.
        assert!(response_body(&[0, 0, 0, 7, 1, 0], 7, true, "x").is_err());
    }

    #[test]
    fn varints_and_compact_strings_read_back_what_was_written() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut r = Reader::new(&b, "x");
            assert_eq!(r.uvarint(), Ok(v), "{v}");
            assert!(r.b.is_empty());
        }
        let mut b = Vec::new();
        put_compact_str(&mut b, "group-é");
        b.push(0); // a null compact string
        put_compact_len(&mut b, 0);
        // Tagged fields: two, of 1 and 3 bytes.
        b.extend_from_slice(&[2, 0, 1, 9, 5, 3, 1, 2, 3]);
        let mut r = Reader::new(&b, "x");
        assert_eq!(r.compact_str().unwrap(), "group-é");
        assert_eq!(r.compact_nullable_str().unwrap(), None);
        assert_eq!(r.compact_len().unwrap(), 0);
        r.tags().unwrap();
        assert!(r.b.is_empty());
        // A varint that never ends, a count beyond the bytes left.
        assert!(Reader::new(&[0xff; 6], "x").uvarint().is_err());
        assert!(Reader::new(&[0xff, 0x7f], "x").compact_len().is_err());
    }

    #[test]
    fn api_versions_gives_the_range_of_each_api() {
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend_from_slice(&2i32.to_be_bytes());
        for (k, min, max) in [(9i16, 1i16, 9i16), (10, 0, 3)] {
            for v in [k, min, max] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        let (error, ranges) = api_versions(&b).unwrap();
        assert_eq!(error, 0);
        assert!(serves(&ranges, 9, 8));
        assert!(!serves(&ranges, 10, 4));
        assert!(!serves(&ranges, 11, 0));
    }

    #[test]
    fn sasl_responses_read_their_error_message_and_bytes() {
        let mut b = SASL_AUTHENTICATION_FAILED.to_be_bytes().to_vec();
        put_str(&mut b, "Authentication failed");
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(
            sasl_authenticate_response(&b).unwrap(),
            (58, Some("Authentication failed".into()), Vec::new())
        );
        let mut h = 0i16.to_be_bytes().to_vec();
        h.extend_from_slice(&2i32.to_be_bytes());
        put_str(&mut h, "PLAIN");
        put_str(&mut h, "SCRAM-SHA-512");
        assert_eq!(
            sasl_handshake_response(&h).unwrap(),
            (0, vec!["PLAIN".to_string(), "SCRAM-SHA-512".to_string()])
        );
    }
}
