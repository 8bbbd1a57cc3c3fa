//! Certificates made on the spot with rcgen, so that tests use real TLS without committed keys.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Options of [`generate_certificate`].
#[derive(Debug, Clone, Default)]
pub struct CertificateOptions {
    /// Subject common name. Default `localhost`.
    pub common_name: Option<String>,
    /// DNS names and IP addresses. Default: `localhost`, `127.0.0.1`, `::1` (none for a CA).
    pub subject_alt_names: Option<Vec<String>>,
    /// Make a CA certificate that can sign others.
    pub is_ca: bool,
    /// Sign with this CA (certificate PEM, key PEM) instead of self-signing.
    pub issuer: Option<(String, String)>,
    /// Start of validity, seconds since the Unix epoch. Default: one hour ago.
    pub not_before: Option<i64>,
    /// End of validity, seconds since the Unix epoch. Default: one year from now.
    pub not_after: Option<i64>,
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct GeneratedCertificate {
    /// The certificate, PEM.
    pub cert: String,
    /// Its PKCS#8 private key, PEM.
    pub key: String,
}

fn gen_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("cannot generate certificate: {e}"))
}

fn timestamp(secs: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(gen_error)
}

/// Generates an ECDSA P-256 certificate: self-signed, or signed by `issuer`.
pub fn generate_certificate(opts: &CertificateOptions) -> Result<GeneratedCertificate> {
    let sans = match &opts.subject_alt_names {
        Some(sans) => sans.clone(),
        None if opts.is_ca => Vec::new(),
        None => vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
    };
    let mut params = CertificateParams::new(sans).map_err(gen_error)?;
    let cn = opts.common_name.clone().unwrap_or_else(|| {
        if opts.is_ca {
            "hypersock test CA".into()
        } else {
            "localhost".into()
        }
    });
    params.distinguished_name.push(DnType::CommonName, cn);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    params.not_before = timestamp(opts.not_before.unwrap_or(now - 3600))?;
    params.not_after = timestamp(opts.not_after.unwrap_or(now + 365 * 86400))?;
    if opts.is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    } else {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = opts.issuer.is_some();
    }
    let key = KeyPair::generate().map_err(gen_error)?;
    let cert = match &opts.issuer {
        None => params.self_signed(&key).map_err(gen_error)?,
        Some((ca_cert, ca_key)) => {
            let ca_key = KeyPair::from_pem(ca_key).map_err(gen_error)?;
            let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key).map_err(gen_error)?;
            params.signed_by(&key, &issuer).map_err(gen_error)?
        }
    };
    Ok(GeneratedCertificate {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}
