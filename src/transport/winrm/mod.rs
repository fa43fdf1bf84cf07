//! WinRM (WS-Management remote shells, MS-WSMV) for Windows hosts without OpenSSH: the
//! envelopes ecfleet sends ([`envelope`]), the replies it reads ([`response`]) through a
//! namespace-resolved XML tree ([`xml`]), with the protocol's names in [`ns`]. docs/winrm.md
//! says what is built and what was verified only against stand-ins.

pub mod connection;
pub mod envelope;
pub mod fetch;
pub mod framing;
pub mod http;
pub mod kerberos;
pub mod ns;
pub mod ntlm;
pub mod pull;
pub mod response;
pub mod shell;
pub mod tls;
pub mod xml;

use std::time::Duration;

use crate::error::ErrorKind;
use crate::inventory::{FileTransfer, Host, WinRmAuth, WinRmSettings};
use crate::transport::dial::Dialer;
use crate::transport::{SecretCache, TransportError};

/// How long the service may hold one Receive (a keep-alive, not a deadline).
const OPERATION_TIMEOUT_SECS: u32 = 20;

/// Opens a WinRM connection to `host` (directly or through its jump hosts, as `dialer` goes):
/// reads its password (once per run for a shared reference), then connects and authenticates
/// within `limit`.
pub async fn connect(
    host: &Host,
    settings: &WinRmSettings,
    secrets: &SecretCache,
    dialer: Dialer,
    limit: Duration,
) -> Result<connection::WinRmConnection, TransportError> {
    let reference = host.password.as_ref().ok_or_else(|| {
        TransportError::new(
            ErrorKind::Credential,
            format!(
                "{}: a WinRM host needs password = {{ env | file | command }}",
                host.name
            ),
        )
    })?;
    let started = tokio::time::Instant::now();
    let secret = secrets
        .resolve(reference, limit)
        .await
        .map_err(|e| TransportError::new(ErrorKind::Credential, format!("{}: {e}", host.name)))?;
    let ntlm = || ntlm::Identity::new(&host.user, secret.expose());
    let credentials = match (
        settings.auth,
        kerberos_login(host, settings, secret.expose()),
    ) {
        (WinRmAuth::Basic, _) => http::Credentials::basic(&host.user, secret.expose()),
        (WinRmAuth::Ntlm, _) | (WinRmAuth::Negotiate, None) => ntlm().into(),
        (WinRmAuth::Negotiate, Some(login)) => http::Credentials::Kerberos {
            login,
            ntlm: Some(ntlm()),
        },
        (WinRmAuth::Kerberos, Some(login)) => http::Credentials::Kerberos { login, ntlm: None },
        (WinRmAuth::Kerberos, None) => {
            return Err(TransportError::new(
                ErrorKind::Credential,
                format!(
                    "{}: auth = \"kerberos\" needs a realm, a KDC and an SPN: set realm and kdc, and spn when the address is an IP address (docs/winrm.md)",
                    host.name
                ),
            ));
        }
    };
    let endpoint = http::Endpoint {
        host: host.address.clone(),
        port: host.port,
        https: settings.https,
    };
    let session = envelope::Session {
        to: endpoint.url(),
        max_envelope_size: 153_600,
        operation_timeout_secs: OPERATION_TIMEOUT_SECS,
        session_id: uuid::Uuid::new_v4(),
    };
    let connect_timeout = limit.saturating_sub(started.elapsed());
    let mut exchange = http::HttpExchange::new(
        endpoint,
        credentials,
        connect_timeout,
        Duration::from_secs(u64::from(OPERATION_TIMEOUT_SECS) + 10),
    )
    .through(dialer);
    if settings.https {
        let policy = cert_policy(host, settings);
        exchange =
            exchange.over_tls(tls::Tls::new(&host.address, policy).map_err(|e| {
                TransportError::new(e.kind, format!("{}: {}", host.name, e.message))
            })?);
    }
    tokio::time::timeout(connect_timeout, exchange.open())
        .await
        .map_err(|_| TransportError::timeout(&format!("{}: connecting", host.name), limit))?
        .map_err(|e| TransportError::new(e.kind, format!("{}: {}", host.name, e.message)))?;
    Ok(connection::WinRmConnection::new(
        host.name.clone(),
        exchange,
        session,
        settings.file_transfer == FileTransfer::Pull,
    ))
}

/// The Kerberos login for `host` when its realm and KDC are known and it has a service name:
/// the inventory's `spn`, else `HTTP/<address>` when the address is a name (an IP address has
/// no SPN; Windows' Negotiate uses NTLM for it too).
fn kerberos_login(
    host: &Host,
    settings: &WinRmSettings,
    password: &str,
) -> Option<kerberos::Login> {
    let k = settings.kerberos.as_ref()?;
    let spn = match &k.spn {
        Some(spn) => spn.clone(),
        None if host.address.parse::<std::net::IpAddr>().is_ok() => return None,
        None => format!("HTTP/{}", host.address),
    };
    Some(kerberos::Login {
        user: host.user.clone(),
        password: password.to_string(),
        realm: k.realm.clone(),
        kdc: k.kdc.clone(),
        spn,
    })
}

/// The host's certificate policy; `insecure` is warned about once per host and process.
fn cert_policy(host: &Host, settings: &WinRmSettings) -> tls::CertPolicy {
    if let Some(pin) = &settings.cert_sha256 {
        return tls::CertPolicy::Pin(pin.clone());
    }
    if settings.insecure {
        static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if !warned.contains(&host.name) {
            warned.push(host.name.clone());
            tracing::warn!(
                "{}: insecure = true: its WinRM certificate is not checked, so anyone on the path can pose as the host and take the credentials; pin it with cert_sha256 instead (docs/winrm.md)",
                host.name
            );
        }
        return tls::CertPolicy::Insecure;
    }
    tls::CertPolicy::Validate
}
