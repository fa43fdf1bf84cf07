//! How bytes reach a host's port: a TCP connection from this machine, or a direct-tcpip
//! channel through the host's chain of jump hosts ([`crate::inventory::JumpHop`]). SSH and
//! WinRM (HTTP or TLS) run on either the same way, end to end: a tunnel changes the path, never
//! the host-key, certificate or channel-binding checks on it.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::ssh::SshConnector;
use super::{ErrorKind, SecretCache, TransportError};
use crate::inventory::JumpHop;

/// A byte stream to a host's port.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// A connected stream, whichever way it went.
pub struct Dialed {
    pub stream: Box<dyn ByteStream>,
    /// This machine's and the host's addresses on a direct TCP connection; `None` through a
    /// tunnel (the host sees the last hop, not this machine).
    pub local: Option<IpAddr>,
    pub peer: Option<IpAddr>,
}

/// Dials a host's port: directly, or through its jump hosts (shared SSH connections held by
/// the run's [`SshConnector`]).
#[derive(Clone, Default)]
pub struct Dialer {
    through: Option<Through>,
}

#[derive(Clone)]
struct Through {
    ssh: Arc<SshConnector>,
    secrets: Arc<SecretCache>,
    hops: Vec<JumpHop>,
}

impl Dialer {
    /// Straight from this machine.
    pub fn direct() -> Dialer {
        Dialer::default()
    }

    /// Through `hops` (directly when there are none).
    pub fn through(ssh: Arc<SshConnector>, secrets: Arc<SecretCache>, hops: &[JumpHop]) -> Dialer {
        if hops.is_empty() {
            return Dialer::direct();
        }
        Dialer {
            through: Some(Through {
                ssh,
                secrets,
                hops: hops.to_vec(),
            }),
        }
    }

    /// The last hop (`user@bastion:22`), when the host is reached through jump hosts.
    pub fn last_hop(&self) -> Option<String> {
        self.through
            .as_ref()
            .and_then(|t| t.hops.last())
            .map(JumpHop::label)
    }

    /// A stream to `address:port` before `deadline`; a failure names the hop it happened at.
    pub async fn dial(
        &self,
        address: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<Dialed, TransportError> {
        match &self.through {
            None => tcp(address, port, deadline).await,
            Some(t) => {
                let stream = t
                    .ssh
                    .tunnel(&t.hops, &t.secrets, address, port, deadline)
                    .await?;
                Ok(Dialed {
                    stream: Box::new(stream),
                    local: None,
                    peer: None,
                })
            }
        }
    }
}

/// `address:port` as messages show it (an IPv6 address in brackets).
pub fn endpoint(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// A TCP connection (TCP_NODELAY) from this machine before `deadline`.
pub async fn tcp(address: &str, port: u16, deadline: Instant) -> Result<Dialed, TransportError> {
    let shown = endpoint(address, port);
    let limit = deadline.saturating_duration_since(Instant::now());
    let stream = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect((address, port)))
        .await
        .map_err(|_| TransportError::timeout(&format!("connecting to {shown}"), limit))?
        .map_err(|e| {
            // Out of file handles is the controller's problem, not the host's.
            let hint = if e.raw_os_error() == Some(libc::EMFILE) {
                " (this controller ran out of open files: lower --concurrency or raise ulimit -n)"
            } else {
                ""
            };
            TransportError::new(
                ErrorKind::Unreachable,
                format!("cannot connect to {shown}: {e}{hint}"),
            )
        })?;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok().map(|a| a.ip());
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    Ok(Dialed {
        stream: Box::new(stream),
        local,
        peer,
    })
}
