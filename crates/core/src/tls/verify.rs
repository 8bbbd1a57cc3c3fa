//! Server-certificate verification: webpki with a finer classification of failures, and the
//! accept-anything verifier behind `reject_unauthorized: false`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::{Error, Result, TlsFailure};

/// Marker carried in `CertificateError::Other` when the end-entity certificate signed itself.
#[derive(Debug)]
struct SelfSigned;

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-signed certificate")
    }
}

impl std::error::Error for SelfSigned {}

/// webpki verification that tells a self-signed certificate apart from an unknown CA.
#[derive(Debug)]
pub(super) struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl Verifier {
    pub(super) fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Result<Verifier> {
        if roots.is_empty() {
            return Err(Error::InvalidArgument(
                "no trusted roots: give tls.ca or keep the default roots".into(),
            ));
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::Tls {
                kind: TlsFailure::Config,
                message: format!("certificate verifier: {e}"),
            })?;
        Ok(Verifier { inner })
    }
}

fn is_self_signed(cert: &CertificateDer<'_>) -> bool {
    match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, parsed)) => parsed.subject().as_raw() == parsed.issuer().as_raw(),
        Err(_) => false,
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    if intermediates.is_empty() && is_self_signed(end_entity) =>
                {
                    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                        Arc::new(SelfSigned),
                    )))
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate and any host name (`reject_unauthorized: false`), while still checking
/// that the peer holds the key of the certificate it sent.
#[derive(Debug)]
pub(super) struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl AcceptAny {
    pub(super) fn new(provider: Arc<CryptoProvider>) -> AcceptAny {
        AcceptAny { provider }
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Maps a rustls error to the engine's TLS error, one kind per cause.
pub(super) fn classify(e: &rustls::Error) -> Error {
    use CertificateError as C;
    let kind = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::Expired | C::ExpiredContext { .. } => TlsFailure::CertExpired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsFailure::CertNotYetValid,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::CertHostname,
            C::UnknownIssuer => TlsFailure::CertUnknownCa,
            C::Other(other) if other.0.downcast_ref::<SelfSigned>().is_some() => {
                TlsFailure::CertSelfSigned
            }
            _ => TlsFailure::CertInvalid,
        },
        _ => TlsFailure::Handshake,
    };
    let message = match kind {
        TlsFailure::CertExpired => format!("the server's certificate has expired ({e})"),
        TlsFailure::CertNotYetValid => format!("the server's certificate is not valid yet ({e})"),
        TlsFailure::CertHostname => format!(
            "the server's certificate is not valid for the requested host name ({e})"
        ),
        TlsFailure::CertUnknownCa => format!(
            "the server's certificate is signed by an unknown authority; pass its CA in tls.ca ({e})"
        ),
        TlsFailure::CertSelfSigned => {
            "the server's certificate is self-signed; pass it in tls.ca to trust it".to_string()
        }
        TlsFailure::CertInvalid => format!("the server's certificate is not valid ({e})"),
        _ => handshake_message(&e.to_string()),
    };
    Error::Tls { kind, message }
}

/// What a failed handshake says, with the fix when the server wanted a client certificate
/// (over TLS 1.3 that refusal arrives as an alert on the first read after the handshake).
fn handshake_message(e: &str) -> String {
    if e.ends_with("alert: CertificateRequired") {
        format!("TLS handshake failed: {e} (the server requires a client certificate: give tls.cert and tls.key)")
    } else {
        format!("TLS handshake failed: {e}")
    }
}

/// The TLS error behind an I/O error whose rustls cause was turned into text on the way (the
/// HTTP/2 layer keeps an I/O error's kind and message only): a fatal alert from the peer.
pub(super) fn classify_alert_text(e: &std::io::Error) -> Option<Error> {
    let text = e.to_string();
    text.starts_with("received fatal alert: ")
        .then(|| Error::Tls {
            kind: TlsFailure::Handshake,
            message: handshake_message(&text),
        })
}
