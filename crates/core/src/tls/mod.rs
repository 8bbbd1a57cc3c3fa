//! TLS for the client and the server, on rustls with the `ring` provider.
//!
//! - [`client_config`] builds a client configuration from [`ClientTlsOptions`]: webpki roots by
//!   default, custom CAs, client certificates (mTLS), a minimum version, ALPN, and
//!   `reject_unauthorized: false` only when asked.
//! - [`server_config`] / [`server_config_sni`] build a server configuration from PEM, with several
//!   certificates chosen by SNI and optional client-certificate verification.
//! - [`TlsInfo`] / [`PeerCertificate`] describe a finished handshake.
//! - [`generate_certificate`] makes certificates with rcgen, for tests.
//!
//! Handshake failures become [`Error::Tls`] with a [`TlsFailure`] kind, one stable code each.

use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result, TlsFailure};

pub(crate) mod info;
mod server;
mod testcert;
mod verify;

pub use info::{PeerCertificate, TlsInfo};
pub use server::{server_config, server_config_sni, ServerTlsOptions, SniCertificate};
pub use testcert::{generate_certificate, CertificateOptions, GeneratedCertificate};

/// The lowest TLS version a connection may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 or 1.3 (the default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    /// Parses `"TLSv1.2"` / `"TLSv1.3"` (also `"1.2"` / `"1.3"`).
    pub fn parse(s: &str) -> Result<TlsVersion> {
        match s {
            "TLSv1.2" | "1.2" => Ok(TlsVersion::Tls12),
            "TLSv1.3" | "1.3" => Ok(TlsVersion::Tls13),
            other => Err(Error::InvalidArgument(format!(
                "unsupported TLS version {other:?} (use \"TLSv1.2\" or \"TLSv1.3\")"
            ))),
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::Tls12 => &BOTH,
            TlsVersion::Tls13 => &ONLY13,
        }
    }
}

/// TLS options of a client.
#[derive(Debug, Clone)]
pub struct ClientTlsOptions {
    /// Extra trusted CA certificates, PEM (one or more certificates per string).
    pub ca: Vec<String>,
    /// Trust the bundled webpki (Mozilla) roots as well as `ca`. Default true.
    pub webpki_roots: bool,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert: Option<String>,
    /// Private key (PEM) of `cert`.
    pub key: Option<String>,
    /// Verify the server's certificate and host name. Only an explicit `false` turns it off.
    pub reject_unauthorized: bool,
    /// Lowest protocol version accepted.
    pub min_version: TlsVersion,
    /// Highest protocol version offered (`None`: 1.3).
    pub max_version: Option<TlsVersion>,
    /// Name sent in SNI and checked against the certificate, instead of the URL's host.
    pub server_name: Option<String>,
}

impl Default for ClientTlsOptions {
    fn default() -> Self {
        ClientTlsOptions {
            ca: Vec::new(),
            webpki_roots: true,
            cert: None,
            key: None,
            reject_unauthorized: true,
            min_version: TlsVersion::Tls12,
            max_version: None,
            server_name: None,
        }
    }
}

/// The crypto provider used everywhere: rustls on `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls {
        kind: TlsFailure::Config,
        message: format!("{what}: {e}"),
    }
}

/// Parses every certificate of a PEM string.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config_error("invalid certificate PEM", e))?;
    if certs.is_empty() {
        return Err(config_error(
            "invalid certificate PEM",
            "no CERTIFICATE block found",
        ));
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM string.
pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| config_error("invalid key PEM", e))
}

fn versions(
    min: TlsVersion,
    max: Option<TlsVersion>,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion]> {
    match (min, max) {
        (TlsVersion::Tls13, Some(TlsVersion::Tls12)) => Err(Error::InvalidArgument(
            "minVersion is above maxVersion".into(),
        )),
        (TlsVersion::Tls12, Some(TlsVersion::Tls12)) => {
            static ONLY12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
            Ok(&ONLY12)
        }
        (min, _) => Ok(min.versions()),
    }
}

/// Builds a client configuration. `alpn` lists the protocols offered, most preferred first
/// (e.g. `[b"h2", b"http/1.1"]`).
pub fn client_config(opts: &ClientTlsOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(opts.min_version, opts.max_version)?)
        .map_err(|e| config_error("TLS versions", e))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if opts.reject_unauthorized
    {
        let mut roots = RootCertStore::empty();
        if opts.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for pem in &opts.ca {
            for cert in parse_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| config_error("invalid CA certificate", e))?;
            }
        }
        Arc::new(verify::Verifier::new(roots, provider.clone())?)
    } else {
        Arc::new(verify::AcceptAny::new(provider.clone()))
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(parse_certs(cert)?, parse_key(key)?)
            .map_err(|e| config_error("client certificate", e))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::InvalidArgument(
                "tls.cert and tls.key must be given together".into(),
            ))
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Classifies an I/O error that came out of a TLS handshake (tokio-rustls wraps the rustls
/// error in the `io::Error`). Other I/O errors are returned as `Err` unchanged.
pub fn classify_io(e: io::Error) -> std::result::Result<Error, io::Error> {
    let Some(inner) = e.get_ref() else {
        return Err(e);
    };
    let Some(tls) = inner.downcast_ref::<rustls::Error>() else {
        return Err(e);
    };
    Ok(verify::classify(tls))
}

/// The TLS error behind an I/O error that lost its rustls cause on the way and kept only its
/// text (HTTP/2 does that): a fatal alert from the peer. `None` for any other error.
pub fn classify_alert_text(e: &io::Error) -> Option<Error> {
    verify::classify_alert_text(e)
}

/// Maps a rustls error (a failed handshake, or an alert from the peer) to the engine's error.
pub fn classify_rustls(e: &rustls::Error) -> Error {
    verify::classify(e)
}

/// A TLS server configuration handle, as the server module uses it.
pub type ServerConfigRef = Arc<ServerConfig>;

#[cfg(test)]
mod tests;
