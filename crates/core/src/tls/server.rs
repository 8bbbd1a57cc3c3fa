//! Server configurations: one certificate, or several chosen by SNI; optional client-certificate
//! verification (mTLS); ALPN.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use super::{config_error, parse_certs, parse_key, provider, versions, TlsVersion};
use crate::error::{Error, Result};

/// One certificate of an SNI server, with the host names it serves.
#[derive(Debug, Clone)]
pub struct SniCertificate {
    /// Host names this certificate is chosen for (`example.com`, `*.example.com`).
    pub server_names: Vec<String>,
    /// Certificate chain, PEM, leaf first.
    pub cert: String,
    /// Private key, PEM.
    pub key: String,
}

/// Options of [`server_config_sni`].
#[derive(Debug, Clone, Default)]
pub struct ServerTlsOptions {
    /// The certificates. The first one is also served to clients that send no SNI or an unknown
    /// name.
    pub certificates: Vec<SniCertificate>,
    /// ALPN protocols offered, most preferred first (e.g. `h2`, `http/1.1`).
    pub alpn: Vec<Vec<u8>>,
    /// CA certificates (PEM) that client certificates must chain to; empty: no client auth.
    pub client_ca: Vec<String>,
    /// With `client_ca`: refuse clients that send no certificate. Default false.
    pub require_client_cert: bool,
    /// Lowest protocol version accepted.
    pub min_version: TlsVersion,
}

/// Builds a server configuration for one certificate chain and key (PEM) with the given ALPN
/// protocols, most preferred first.
pub fn server_config(
    cert_chain_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    server_config_sni(&ServerTlsOptions {
        certificates: vec![SniCertificate {
            server_names: Vec::new(),
            cert: cert_chain_pem.to_string(),
            key: key_pem.to_string(),
        }],
        alpn: alpn.iter().map(|p| p.to_vec()).collect(),
        ..ServerTlsOptions::default()
    })
}

/// Builds a server configuration that picks a certificate by the SNI name of each client.
pub fn server_config_sni(opts: &ServerTlsOptions) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let mut resolver = SniResolver::default();
    for entry in &opts.certificates {
        let chain = parse_certs(&entry.cert)?;
        let key = provider
            .key_provider
            .load_private_key(parse_key(&entry.key)?)
            .map_err(|e| config_error("unsupported private key", e))?;
        let certified = Arc::new(CertifiedKey::new(chain, key));
        if resolver.default.is_none() {
            resolver.default = Some(certified.clone());
        }
        for name in &entry.server_names {
            resolver.by_name.insert(
                name.trim_end_matches('.').to_ascii_lowercase(),
                certified.clone(),
            );
        }
    }
    if resolver.default.is_none() {
        return Err(Error::InvalidArgument(
            "a TLS server needs at least one certificate".into(),
        ));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(opts.min_version, None)?)
        .map_err(|e| config_error("TLS versions", e))?;
    let builder = if opts.client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for pem in &opts.client_ca {
            for cert in parse_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| config_error("invalid client CA certificate", e))?;
            }
        }
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if !opts.require_client_cert {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier
            .build()
            .map_err(|e| config_error("client certificate verifier", e))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = opts.alpn.clone();
    Ok(Arc::new(config))
}

/// Exact names first, then a `*.` wildcard one label deep, then the first certificate.
#[derive(Debug, Default)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(found) = self.by_name.get(&name) {
                return Some(found.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(found) = self.by_name.get(&format!("*.{parent}")) {
                    return Some(found.clone());
                }
            }
        }
        self.default.clone()
    }
}
