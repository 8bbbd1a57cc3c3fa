use hypersock_core::tls::{generate_certificate, CertificateOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::{Fail, OrThrow};

/// Options of `generateCertificate`, validated by the TS layer.
#[napi(object)]
pub struct BindingCertificateOptions {
    pub common_name: Option<String>,
    pub subject_alt_names: Option<Vec<String>>,
    pub is_ca: Option<bool>,
    pub ca_cert: Option<String>,
    pub ca_key: Option<String>,
    /// Seconds since the Unix epoch.
    pub not_before: Option<f64>,
    /// Seconds since the Unix epoch.
    pub not_after: Option<f64>,
}

/// A generated certificate and key, PEM.
#[napi(object)]
pub struct BindingCertificate {
    pub cert: String,
    pub key: String,
}

/// Generates an ECDSA P-256 certificate with rcgen (self-signed or signed by a CA).
#[napi]
pub fn generate_certificate_native(
    env: &Env,
    options: BindingCertificateOptions,
) -> Result<BindingCertificate> {
    let issuer = match (options.ca_cert, options.ca_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(Fail::invalid_arg("ca.cert and ca.key must be given together").throw(env)),
    };
    let generated = generate_certificate(&CertificateOptions {
        common_name: options.common_name,
        subject_alt_names: options.subject_alt_names,
        is_ca: options.is_ca.unwrap_or(false),
        issuer,
        not_before: options.not_before.map(|s| s as i64),
        not_after: options.not_after.map(|s| s as i64),
    })
    .or_throw(env)?;
    Ok(BindingCertificate {
        cert: generated.cert,
        key: generated.key,
    })
}
