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
pub mod keytab;
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
    let started = tokio::time::Instant::now();
    let password = match &host.password {
        Some(reference) => Some(secrets.resolve(reference, limit).await.map_err(|e| {
            TransportError::new(ErrorKind::Credential, format!("{}: {e}", host.name))
        })?),
        None => None,
    };
    let password = password.as_ref().map(|p| p.expose());
    let kerberos = kerberos_login(host, settings, password, secrets, limit).await?;
    let no_password = || {
        TransportError::new(
            ErrorKind::Credential,
            format!(
                "{}: a WinRM host needs password = {{ env | file | command }} (a keytab serves Kerberos only)",
                host.name
            ),
        )
    };
    let credentials = match (settings.auth, kerberos) {
        (WinRmAuth::Basic, _) => {
            http::Credentials::basic(&host.user, password.ok_or_else(no_password)?)
        }
        (WinRmAuth::Ntlm, _) | (WinRmAuth::Negotiate, None) => {
            ntlm::Identity::new(&host.user, password.ok_or_else(no_password)?).into()
        }
        (WinRmAuth::Negotiate, Some(login)) => http::Credentials::Kerberos {
            login,
            ntlm: password.map(|p| ntlm::Identity::new(&host.user, p)),
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
/// no SPN; Windows' Negotiate uses NTLM for it too). The account is proven by its keytab key
/// when the host has a keytab, else by its password; with neither there is no Kerberos.
async fn kerberos_login(
    host: &Host,
    settings: &WinRmSettings,
    password: Option<&str>,
    secrets: &SecretCache,
    limit: Duration,
) -> Result<Option<kerberos::Login>, TransportError> {
    let Some(k) = settings.kerberos.as_ref() else {
        return Ok(None);
    };
    let spn = match &k.spn {
        Some(spn) => spn.clone(),
        None if host.address.parse::<std::net::IpAddr>().is_ok() => return Ok(None),
        None => format!("HTTP/{}", host.address),
    };
    let secret = match (&k.keytab, password) {
        (Some(file), _) => {
            let failed = |e: String| {
                TransportError::new(ErrorKind::Credential, format!("{}: {e}", host.name))
            };
            let keytab = secrets.keytab(file, limit).await.map_err(failed)?;
            let account = kerberos::account(&host.user);
            let entry = keytab
                .key_for(account, &k.realm)
                .map_err(|e| failed(format!("the keytab {} {e}", file.display())))?;
            kerberos::LoginSecret::Keytab {
                entry: Box::new(entry.clone()),
                file: file.clone(),
            }
        }
        (None, Some(p)) => kerberos::LoginSecret::Password(p.to_string()),
        (None, None) => return Ok(None),
    };
    Ok(Some(kerberos::Login {
        user: host.user.clone(),
        secret,
        realm: k.realm.clone(),
        kdc: k.kdc.clone(),
        spn,
    }))
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
