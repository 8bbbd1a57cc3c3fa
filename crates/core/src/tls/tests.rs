//! Real handshakes over loopback with certificates made by [`generate_certificate`].

use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

fn ca() -> GeneratedCertificate {
    generate_certificate(&CertificateOptions {
        is_ca: true,
        ..Default::default()
    })
    .expect("CA")
}

fn leaf(ca: &GeneratedCertificate, opts: CertificateOptions) -> GeneratedCertificate {
    generate_certificate(&CertificateOptions {
        issuer: Some((ca.cert.clone(), ca.key.clone())),
        ..opts
    })
    .expect("leaf")
}

/// Serves one TLS connection that answers `ping` with `pong`; returns the port.
async fn serve_once(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut tls) = TlsAcceptor::from(config).accept(tcp).await else {
            return;
        };
        let mut buf = [0u8; 4];
        if tls.read_exact(&mut buf).await.is_ok() {
            let _ = tls.write_all(b"pong").await;
            let _ = tls.flush().await;
        }
    });
    port
}

async fn connect(port: u16, host: &str, opts: &ClientTlsOptions) -> Result<TlsInfo> {
    let config = client_config(opts, &[b"h2", b"http/1.1"])?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| classify_io(e).unwrap_or_else(Error::Io))?;
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf)
        .await
        .map_err(|e| classify_io(e).unwrap_or_else(Error::Io))?;
    assert_eq!(&buf, b"pong");
    Ok(TlsInfo::from_connection(tls.get_ref().1))
}

fn trusting(ca: &GeneratedCertificate) -> ClientTlsOptions {
    ClientTlsOptions {
        ca: vec![ca.cert.clone()],
        ..Default::default()
    }
}

#[tokio::test]
async fn handshake_with_custom_ca_reports_peer_certificate() {
    let ca = ca();
    let cert = leaf(&ca, CertificateOptions::default());
    let port = serve_once(server_config(&cert.cert, &cert.key, &[b"h2"]).expect("config")).await;
    let info = connect(port, "localhost", &trusting(&ca))
        .await
        .expect("handshake");
    assert_eq!(info.protocol, "TLSv1.3");
    assert_eq!(info.alpn_protocol.as_deref(), Some("h2"));
    assert!(info.cipher.starts_with("TLS13_"), "{}", info.cipher);
    let peer = info.peer_certificate().expect("peer certificate");
    assert_eq!(peer.subject, "CN=localhost");
    assert_eq!(peer.issuer, "CN=hypersock test CA");
    assert!(peer
        .subject_alt_names
        .contains(&"DNS:localhost".to_string()));
    assert!(peer.subject_alt_names.contains(&"IP:127.0.0.1".to_string()));
    assert_eq!(peer.fingerprint256.len(), 32 * 3 - 1);
    assert!(!peer.is_ca);
}

#[tokio::test]
async fn failures_have_distinct_codes() {
    let ca = ca();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cases = [
        (
            leaf(
                &ca,
                CertificateOptions {
                    not_before: Some(now - 10 * 86400),
                    not_after: Some(now - 86400),
                    ..Default::default()
                },
            ),
            "localhost",
            trusting(&ca),
            "ERR_TLS_CERT_EXPIRED",
        ),
        (
            leaf(&ca, CertificateOptions::default()),
            "other.example",
            trusting(&ca),
            "ERR_TLS_CERT_HOSTNAME",
        ),
        (
            generate_certificate(&CertificateOptions::default()).expect("self-signed"),
            "localhost",
            trusting(&ca),
            "ERR_TLS_CERT_SELF_SIGNED",
        ),
        (
            leaf(&ca, CertificateOptions::default()),
            "localhost",
            trusting(
                &generate_certificate(&CertificateOptions {
                    is_ca: true,
                    common_name: Some("another CA".into()),
                    ..Default::default()
                })
                .expect("other CA"),
            ),
            "ERR_TLS_CERT_UNKNOWN_CA",
        ),
    ];
    for (cert, host, opts, code) in cases {
        let port = serve_once(server_config(&cert.cert, &cert.key, &[]).expect("config")).await;
        let err = connect(port, host, &opts).await.expect_err(code);
        assert_eq!(err.code(), code, "{err}");
    }
}

#[tokio::test]
async fn reject_unauthorized_false_accepts_a_self_signed_certificate() {
    let cert = generate_certificate(&CertificateOptions::default()).expect("cert");
    let port = serve_once(server_config(&cert.cert, &cert.key, &[]).expect("config")).await;
    let opts = ClientTlsOptions {
        reject_unauthorized: false,
        ..Default::default()
    };
    let info = connect(port, "wrong.name", &opts).await.expect("accepted");
    assert_eq!(info.chain.len(), 1);
}

#[tokio::test]
async fn min_and_max_version_are_applied() {
    let ca = ca();
    let cert = leaf(&ca, CertificateOptions::default());
    let port = serve_once(server_config(&cert.cert, &cert.key, &[]).expect("config")).await;
    let opts = ClientTlsOptions {
        max_version: Some(TlsVersion::Tls12),
        ..trusting(&ca)
    };
    let info = connect(port, "localhost", &opts).await.expect("TLS 1.2");
    assert_eq!(info.protocol, "TLSv1.2");
    assert!(TlsVersion::parse("TLSv1.1").is_err());
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let ca = ca();
    let server_cert = leaf(&ca, CertificateOptions::default());
    let client_cert = leaf(
        &ca,
        CertificateOptions {
            common_name: Some("client".into()),
            subject_alt_names: Some(vec!["client.local".into()]),
            ..Default::default()
        },
    );
    let server = ServerTlsOptions {
        certificates: vec![SniCertificate {
            server_names: vec![],
            cert: server_cert.cert.clone(),
            key: server_cert.key.clone(),
        }],
        client_ca: vec![ca.cert.clone()],
        require_client_cert: true,
        ..Default::default()
    };
    let config = server_config_sni(&server).expect("config");
    let port = serve_once(config.clone()).await;
    let err = connect(port, "localhost", &trusting(&ca))
        .await
        .expect_err("no client cert");
    assert_eq!(err.code(), "ERR_TLS_HANDSHAKE");
    let port = serve_once(config).await;
    let opts = ClientTlsOptions {
        cert: Some(client_cert.cert),
        key: Some(client_cert.key),
        ..trusting(&ca)
    };
    connect(port, "localhost", &opts).await.expect("mTLS");
}

#[tokio::test]
async fn sni_picks_the_certificate_for_each_name() {
    let ca = ca();
    let a = leaf(
        &ca,
        CertificateOptions {
            common_name: Some("a.test".into()),
            subject_alt_names: Some(vec!["a.test".into()]),
            ..Default::default()
        },
    );
    let b = leaf(
        &ca,
        CertificateOptions {
            common_name: Some("b.test".into()),
            subject_alt_names: Some(vec!["*.b.test".into()]),
            ..Default::default()
        },
    );
    let opts = ServerTlsOptions {
        certificates: vec![
            SniCertificate {
                server_names: vec!["a.test".into()],
                cert: a.cert,
                key: a.key,
            },
            SniCertificate {
                server_names: vec!["*.b.test".into()],
                cert: b.cert,
                key: b.key,
            },
        ],
        ..Default::default()
    };
    let config = server_config_sni(&opts).expect("config");
    for (host, cn) in [("a.test", "CN=a.test"), ("x.b.test", "CN=b.test")] {
        let port = serve_once(config.clone()).await;
        let info = connect(port, host, &trusting(&ca)).await.expect(host);
        assert_eq!(
            info.peer_certificate().map(|c| c.subject.as_str()),
            Some(cn)
        );
    }
}

#[test]
fn bad_pem_is_a_config_error() {
    assert_eq!(parse_certs("nope").unwrap_err().code(), "ERR_TLS_CONFIG");
    assert_eq!(parse_key("nope").unwrap_err().code(), "ERR_TLS_CONFIG");
}
