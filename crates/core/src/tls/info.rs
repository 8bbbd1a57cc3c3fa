//! What a finished handshake negotiated and what the peer's certificates say.

use std::fmt::Write;
use std::sync::OnceLock;

use rustls::CommonState;
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One certificate of the peer, decoded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerCertificate {
    /// Subject distinguished name, e.g. `CN=example.com, O=Example`.
    pub subject: String,
    /// Common name of the subject, when there is one.
    pub subject_cn: Option<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject alternative names, `DNS:name` / `IP:addr` / `URI:...` / `email:...`.
    pub subject_alt_names: Vec<String>,
    /// Start of validity, RFC 3339 (UTC).
    pub valid_from: String,
    /// End of validity, RFC 3339 (UTC).
    pub valid_to: String,
    /// Serial number, upper-case hex.
    pub serial_number: String,
    /// SHA-256 of the DER, upper-case hex bytes joined by `:` (like Node's `fingerprint256`).
    pub fingerprint256: String,
    /// True for a CA certificate.
    pub is_ca: bool,
    /// The DER bytes, base64.
    pub raw: String,
}

/// What a TLS handshake negotiated.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: String,
    /// Cipher suite, IANA name (e.g. `TLS13_AES_128_GCM_SHA256`).
    pub cipher: String,
    /// Protocol chosen by ALPN (`h2`, `http/1.1`), when one was.
    pub alpn_protocol: Option<String>,
    /// The peer's certificate chain, leaf first. Empty when the peer sent none.
    pub chain: Vec<PeerCertificate>,
    #[serde(skip)]
    json: OnceLock<String>,
}

impl TlsInfo {
    /// Reads the negotiated parameters and the peer's certificates off a connection.
    pub fn from_connection(conn: &CommonState) -> TlsInfo {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or_default()
            .to_string();
        let alpn_protocol = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let chain = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .filter_map(|der| PeerCertificate::from_der(der.as_ref()))
            .collect();
        TlsInfo {
            protocol,
            cipher,
            alpn_protocol,
            chain,
            json: OnceLock::new(),
        }
    }

    /// The peer's leaf certificate.
    pub fn peer_certificate(&self) -> Option<&PeerCertificate> {
        self.chain.first()
    }

    /// This description as JSON (camelCase keys), computed once per connection.
    pub fn to_json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(self).unwrap_or_else(|_| "{}".into()))
    }
}

fn hex(bytes: &[u8], sep: &str) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn rfc3339(t: &x509_parser::time::ASN1Time) -> String {
    t.to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl PeerCertificate {
    /// Decodes one DER certificate; `None` when it does not parse.
    pub fn from_der(der: &[u8]) -> Option<PeerCertificate> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject_cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut subject_alt_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                subject_alt_names.push(match name {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => format!("IP:{}", std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
                        16 => {
                            let mut a = [0u8; 16];
                            a.copy_from_slice(ip);
                            format!("IP:{}", std::net::Ipv6Addr::from(a))
                        }
                        _ => format!("IP:{}", hex(ip, "")),
                    },
                    GeneralName::URI(u) => format!("URI:{u}"),
                    GeneralName::RFC822Name(m) => format!("email:{m}"),
                    other => format!("{other}"),
                });
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        Some(PeerCertificate {
            subject: cert.subject().to_string(),
            subject_cn,
            issuer: cert.issuer().to_string(),
            subject_alt_names,
            valid_from: rfc3339(&cert.validity().not_before),
            valid_to: rfc3339(&cert.validity().not_after),
            serial_number: hex(cert.raw_serial(), ""),
            fingerprint256: hex(digest.as_ref(), ":"),
            is_ca: cert.is_ca(),
            raw: base64(der),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
