//! WinRM (WS-Management remote shells, MS-WSMV) for Windows hosts without OpenSSH: the
//! envelopes ecfleet sends ([`envelope`]), the replies it reads ([`response`]) through a
//! namespace-resolved XML tree ([`xml`]), with the protocol's names in [`ns`]. docs/winrm.md
//! says what is built and what was verified only against stand-ins.

pub mod connection;
pub mod envelope;
pub mod framing;
pub mod http;
pub mod ns;
pub mod ntlm;
pub mod response;
pub mod shell;
pub mod xml;

use std::time::Duration;

use crate::error::ErrorKind;
use crate::inventory::{Host, WinRmAuth, WinRmSettings};
use crate::transport::{SecretCache, TransportError};

/// How long the service may hold one Receive (a keep-alive, not a deadline).
const OPERATION_TIMEOUT_SECS: u32 = 20;

/// Opens a WinRM connection to `host`: reads its password (once per run for a shared
/// reference), then connects and authenticates within `limit`.
pub async fn connect(
    host: &Host,
    settings: &WinRmSettings,
    secrets: &SecretCache,
    limit: Duration,
) -> Result<connection::WinRmConnection, TransportError> {
    if settings.https || settings.auth == WinRmAuth::Basic {
        return Err(TransportError::new(
            ErrorKind::Unsupported,
            format!(
                "{}: WinRM over HTTPS (and Basic, which needs it) is not built yet; use https = false: HTTP on 5985 with NTLM message encryption (docs/winrm.md)",
                host.name
            ),
        ));
    }
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
    let identity = ntlm::Identity::new(&host.user, secret.expose());
    let endpoint = http::Endpoint {
        host: host.address.clone(),
        port: host.port,
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
        identity,
        connect_timeout,
        Duration::from_secs(u64::from(OPERATION_TIMEOUT_SECS) + 10),
    );
    tokio::time::timeout(connect_timeout, exchange.open())
        .await
        .map_err(|_| TransportError::timeout(&format!("{}: connecting", host.name), limit))?
        .map_err(|e| TransportError::new(e.kind, format!("{}: {}", host.name, e.message)))?;
    Ok(connection::WinRmConnection::new(
        host.name.clone(),
        exchange,
        session,
    ))
}
