//! TLS for WinRM over HTTPS (5986), on rustls: which certificates a host may present, and what
//! the NTLM channel binding (CBT) of a connection is. Three policies, one per host
//! (docs/winrm.md):
//! - **validate** (the default): the system's trusted roots (`SSL_CERT_FILE` / `SSL_CERT_DIR`
//!   name others), a current certificate, the name or IP the inventory dials;
//! - **pin** (`cert_sha256`): exactly that certificate (its DER's SHA-256), whoever signed it —
//!   the answer for self-signed listeners, which most WinRM listeners are;
//! - **insecure**: any certificate (explicit in the inventory, and warned about once per host).
//!
//! The handshake's own signatures are checked in every policy. When a certificate is refused,
//! the error carries its SHA-256 so the operator can compare it with the host's and pin it.

use std::sync::{Arc, Mutex, OnceLock};

use crate::transport::dial::ByteStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio_rustls::client::TlsStream;

use super::shell::ExchangeError;
use crate::error::ErrorKind;

/// Which certificates a host may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertPolicy {
    Validate,
    /// The certificate's SHA-256, lower-case hex.
    Pin(String),
    Insecure,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The system's trusted roots, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system TLS roots");
            Arc::new(roots)
        })
        .clone()
}

/// SHA-256 of a certificate's DER, lower-case hex (what `cert_sha256` holds).
pub fn fingerprint(cert: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(cert))
}

/// What the verifier saw when it refused a certificate.
#[derive(Debug, Clone)]
struct Refusal {
    fingerprint: String,
    reason: String,
}

#[derive(Debug)]
struct Verifier {
    policy: CertPolicy,
    /// For [`CertPolicy::Validate`].
    webpki: Option<Arc<dyn ServerCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    refused: Arc<Mutex<Option<Refusal>>>,
}

impl Verifier {
    fn refuse(&self, cert: &[u8], reason: String) -> rustls::Error {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(Refusal {
            fingerprint: fingerprint(cert),
            reason: reason.clone(),
        });
        rustls::Error::General(reason)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.policy {
            CertPolicy::Insecure => Ok(ServerCertVerified::assertion()),
            CertPolicy::Pin(pin) => {
                let seen = fingerprint(end_entity);
                if &seen == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(self.refuse(
                        end_entity,
                        format!("its certificate is not the pinned one (cert_sha256 = \"{pin}\")"),
                    ))
                }
            }
            CertPolicy::Validate => {
                let webpki = self.webpki.as_ref().expect("validate has a verifier");
                webpki
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                    .map_err(|e| {
                        let reason = match &e {
                            rustls::Error::InvalidCertificate(c) => describe(c),
                            other => other.to_string(),
                        };
                        self.refuse(end_entity, reason)
                    })
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn describe(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::Expired | C::ExpiredContext { .. } => "its certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "its certificate is not valid yet".into(),
        C::UnknownIssuer => {
            "its certificate is not signed by a trusted authority (self-signed?)".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "its certificate is for another name than the inventory's address".into()
        }
        C::Revoked => "its certificate is revoked".into(),
        other => format!("its certificate is refused ({other:?})"),
    }
}

/// The TLS side of one host: its policy, the name it is dialled by, and what a refusal saw.
pub struct Tls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    policy: CertPolicy,
    refused: Arc<Mutex<Option<Refusal>>>,
}

/// A TLS connection and its `tls-server-end-point` channel binding (RFC 5929).
pub struct Connected {
    pub stream: TlsStream<Box<dyn ByteStream>>,
    pub channel_binding: Vec<u8>,
}

impl Tls {
    pub fn new(host: &str, policy: CertPolicy) -> Result<Tls, ExchangeError> {
        let server_name = ServerName::try_from(host.to_string()).map_err(|_| {
            ExchangeError::new(
                ErrorKind::Unsupported,
                format!("`{host}` is not a name or an IP address TLS can check"),
            )
        })?;
        let provider = provider();
        let webpki: Option<Arc<dyn ServerCertVerifier>> = match policy {
            CertPolicy::Validate => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    system_roots(),
                    provider.clone(),
                )
                .build()
                .map_err(|e| {
                    ExchangeError::new(
                        ErrorKind::HostKey,
                        format!(
                            "no trusted TLS roots on this machine ({e}): install ca-certificates, set SSL_CERT_FILE, or pin the host's certificate with cert_sha256"
                        ),
                    )
                })?,
            ),
            _ => None,
        };
        let refused = Arc::new(Mutex::new(None));
        let verifier = Arc::new(Verifier {
            policy: policy.clone(),
            webpki,
            algorithms: provider.signature_verification_algorithms,
            refused: refused.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExchangeError::new(ErrorKind::Protocol, format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
            server_name,
            policy,
            refused,
        })
    }

    /// The TLS handshake on `tcp`; a refused certificate is a [`ErrorKind::HostKey`] error
    /// naming the fix and the certificate's SHA-256.
    pub async fn handshake(
        &self,
        tcp: Box<dyn ByteStream>,
        url: &str,
    ) -> Result<Connected, ExchangeError> {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let stream = match connector.connect(self.server_name.clone(), tcp).await {
            Ok(s) => s,
            Err(e) => {
                let refusal = self
                    .refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                return Err(match refusal {
                    Some(r) => {
                        ExchangeError::new(ErrorKind::HostKey, self.refused_message(url, &r))
                    }
                    None => ExchangeError::new(
                        ErrorKind::Protocol,
                        format!("{url}: the TLS handshake failed: {e}"),
                    ),
                });
            }
        };
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| {
                ExchangeError::new(ErrorKind::Protocol, format!("{url}: no TLS certificate"))
            })?;
        let channel_binding = channel_binding(cert);
        Ok(Connected {
            stream,
            channel_binding,
        })
    }

    fn refused_message(&self, url: &str, r: &Refusal) -> String {
        match &self.policy {
            CertPolicy::Pin(_) => format!(
                "{url}: {}; it presented SHA-256 {}. The listener's certificate changed, or this is not the host: compare with the host's certificate before changing cert_sha256 (docs/winrm.md)",
                r.reason, r.fingerprint
            ),
            _ => format!(
                "{url}: {}; it presented SHA-256 {}. Give the listener a certificate from a trusted authority (or add the authority via SSL_CERT_FILE), or, after comparing that SHA-256 with the host's certificate, pin it: cert_sha256 = \"{}\" (docs/winrm.md)",
                r.reason, r.fingerprint, r.fingerprint
            ),
        }
    }
}

/// RFC 5929 `tls-server-end-point`: the certificate's hash with the hash of its signature
/// algorithm, SHA-256 for MD5 and SHA-1 (and when the algorithm is not recognised).
pub fn channel_binding(cert: &[u8]) -> Vec<u8> {
    let digest: Vec<u8> = match signature_hash(cert) {
        SignatureHash::Sha384 => sha2::Sha384::digest(cert).to_vec(),
        SignatureHash::Sha512 => sha2::Sha512::digest(cert).to_vec(),
        SignatureHash::Sha256 => sha2::Sha256::digest(cert).to_vec(),
    };
    let mut out = b"tls-server-end-point:".to_vec();
    out.extend_from_slice(&digest);
    out
}

#[derive(Debug, PartialEq, Eq)]
enum SignatureHash {
    Sha256,
    Sha384,
    Sha512,
}

/// The hash of a DER certificate's `signatureAlgorithm` (the second element of the outer
/// SEQUENCE), read with a minimal DER walk.
fn signature_hash(cert: &[u8]) -> SignatureHash {
    /// (tag, contents, rest) of the DER element at the start of `b`.
    fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let len = b[..n]
                .iter()
                .fold(0usize, |a, x| (a << 8) | usize::from(*x));
            b = &b[n..];
            len
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let oid = (|| {
        let (_, outer, _) = element(cert)?;
        let (_, _, rest) = element(outer)?; // tbsCertificate
        let (_, algorithm, _) = element(rest)?;
        let (tag, oid, _) = element(algorithm)?;
        (tag == 0x06).then_some(oid)
    })();
    // sha384WithRSAEncryption 1.2.840.113549.1.1.12, sha512WithRSAEncryption …1.13,
    // ecdsa-with-SHA384 1.2.840.10045.4.3.3, ecdsa-with-SHA512 …4.3.4.
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    match oid {
        Some(o) if o == [RSA, &[12]].concat() || o == [ECDSA, &[3]].concat() => {
            SignatureHash::Sha384
        }
        Some(o) if o == [RSA, &[13]].concat() || o == [ECDSA, &[4]].concat() => {
            SignatureHash::Sha512
        }
        _ => SignatureHash::Sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        rcgen::CertificateParams::new(vec!["host.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn the_channel_binding_hash_follows_the_certificate_s_signature() {
        let p256 = cert(&rcgen::PKCS_ECDSA_P256_SHA256);
        let p384 = cert(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(signature_hash(&p256), SignatureHash::Sha256);
        assert_eq!(signature_hash(&p384), SignatureHash::Sha384);
        let b = channel_binding(&p384);
        assert_eq!(&b[..21], b"tls-server-end-point:");
        assert_eq!(&b[21..], sha2::Sha384::digest(&p384).as_slice());
        // Not a certificate: SHA-256, no panic.
        assert_eq!(signature_hash(&[0x30, 0x82, 0xff]), SignatureHash::Sha256);
    }
}
