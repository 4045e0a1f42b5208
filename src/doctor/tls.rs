//! TLS handshakes made by the doctor itself, so that certificate and scheme problems can be
//! named precisely instead of surfacing as a client library's generic I/O error.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Which certificates the client under diagnosis trusts; the doctor must trust the same.
pub(crate) enum Roots {
    /// The system's store (what the Redis client uses).
    Native,
    /// The Mozilla roots compiled in (what the HTTP client uses).
    WebPki,
    /// Only the CA certificates of a PEM file.
    Pem(Vec<u8>),
    /// No verification at all.
    Insecure,
}

impl Roots {
    fn describe(&self) -> &'static str {
        match self {
            Roots::Native => "the system trust store",
            Roots::WebPki => "the built-in Mozilla roots",
            Roots::Pem(_) => "the configured CA file",
            Roots::Insecure => "nothing: verification is off",
        }
    }
}

/// How a dependency came to ask for TLS, for the words of a diagnosis.
pub(crate) struct Asked<'a> {
    /// E.g. "URL scheme says rediss://".
    pub by: &'a str,
    /// What to set when the server's CA is not trusted.
    pub ca_hint: &'a str,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config(roots: &Roots) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let mut store = RootCertStore::empty();
    match roots {
        Roots::Insecure => {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth())
        }
        Roots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::Native => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
        Roots::Pem(pem) => {
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the CA file is not valid PEM: {e}"))?;
            store.add_parsable_certificates(certs);
        }
    }
    if store.is_empty() {
        return Err(format!(
            "{} holds no usable CA certificate",
            roots.describe()
        ));
    }
    Ok(builder.with_root_certificates(store).with_no_client_auth())
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| format!("{host} is not a valid TLS name"))
}

/// Performs the TLS handshake on `stream` as the configured client would.
pub(crate) async fn handshake<S>(
    stream: S,
    host: &str,
    roots: &Roots,
    asked: &Asked<'_>,
) -> Result<(TlsStream<S>, String), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = TlsConnector::from(Arc::new(config(roots)?));
    let tls = connector
        .connect(server_name(host)?, stream)
        .await
        .map_err(|e| explain(&e, host, roots, asked))?;
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}").replace('_', "."))
        .unwrap_or_else(|| "TLS".into());
    let verified = match roots {
        Roots::Insecure => "certificate NOT verified".to_string(),
        other => format!("certificate verified against {}", other.describe()),
    };
    Ok((tls, format!("{version} established, {verified}")))
}

/// Whether something at `addr` completes a TLS handshake (any certificate): how a plaintext
/// URL pointed at a TLS-only port is recognised.
pub(crate) async fn speaks_tls(addr: SocketAddr, host: &str) -> bool {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let asked = Asked {
        by: "",
        ca_hint: "",
    };
    handshake(stream, host, &Roots::Insecure, &asked)
        .await
        .is_ok()
}

fn explain(e: &std::io::Error, host: &str, roots: &Roots, asked: &Asked<'_>) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => format!(
                "the server closed the connection during the TLS handshake: it does not speak \
                 TLS on this port, or refuses our TLS versions ({})",
                asked.by
            ),
            _ => format!("TLS handshake failed: {e}"),
        };
    };
    match tls {
        rustls::Error::InvalidMessage(_) => format!(
            "TLS mismatch: {} (TLS), server speaks plaintext (it answered the handshake with \
             non-TLS data)",
            asked.by
        ),
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "certificate problem: unknown issuer (signed by a CA not in {}): {}",
                roots.describe(),
                asked.ca_hint
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate problem: the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate problem: the server's certificate is not valid yet (clock skew?)"
                    .into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "certificate problem: name mismatch, the certificate is not valid for {host}: \
                     connect by a name it lists, or fix the certificate"
                )
            }
            other => format!("certificate problem: {other:?}: {}", asked.ca_hint),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server aborted the TLS handshake ({alert:?}): it may require a client \
             certificate or a TLS version we do not offer"
        ),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Accepts any certificate, still checking the handshake signatures: for `tls_insecure`,
/// PostgreSQL's `sslmode=require`, and probing whether a port speaks TLS at all.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(error: rustls::Error) -> String {
        let io = std::io::Error::new(ErrorKind::InvalidData, error);
        let asked = Asked {
            by: "URL scheme says rediss://",
            ca_hint: "set redis.tls_ca_file",
        };
        explain(&io, "cache.internal", &Roots::Native, &asked)
    }

    #[test]
    fn certificate_problems_are_named() {
        let unknown = explained(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert!(unknown.contains("unknown issuer") && unknown.contains("redis.tls_ca_file"));
        let expired = explained(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert!(expired.contains("expired"), "{expired}");
        let name = explained(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert!(
            name.contains("name mismatch") && name.contains("cache.internal"),
            "{name}"
        );
    }

    #[test]
    fn non_tls_answer_is_a_scheme_mismatch() {
        let plain = explained(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(
            plain.starts_with(
                "TLS mismatch: URL scheme says rediss:// (TLS), server speaks plaintext"
            ),
            "{plain}"
        );
    }
}
