//! Remote port forwards on a jump host (OpenSSH's `ssh -R`, RFC 4254 §7.1): the last hop listens
//! on an address of its own that the hosts behind it reach, and hands each connection to it
//! back to ecfleet as a `forwarded-tcpip` channel. Host pull uses one so that a WinRM host
//! behind a bastion can fetch files from the controller it cannot reach. A connection for a
//! port nobody asked for is refused. The forward is cancelled when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use russh::client::Msg;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::SshConnector;
use super::jump::Hop;
use crate::inventory::JumpHop;
use crate::transport::{ErrorKind, SecretCache, TransportError};

/// Connections waiting to be taken, per forward.
const BACKLOG: usize = 64;

/// A connection that reached the jump host's forwarded port.
pub struct Forwarded {
    pub stream: russh::ChannelStream<Msg>,
    /// Who connected, as the jump host saw it.
    pub originator: Option<IpAddr>,
}

impl Forwarded {
    /// An accepted channel from `originator` (as the jump host wrote it).
    pub(super) fn new(channel: russh::Channel<Msg>, originator: &str) -> Forwarded {
        Forwarded {
            stream: channel.into_stream(),
            originator: originator.parse().ok(),
        }
    }
}

/// Where one SSH connection's forwarded channels go, by the port they arrived on.
#[derive(Clone, Default)]
pub(super) struct Forwards(Arc<Mutex<HashMap<u32, mpsc::Sender<Forwarded>>>>);

impl Forwards {
    /// Where a channel that arrived on `port` goes, if this controller asked for the port.
    pub(super) fn route(&self, port: u32) -> Option<mpsc::Sender<Forwarded>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&port)
            .cloned()
    }

    fn add(&self, port: u32, route: mpsc::Sender<Forwarded>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port, route);
    }

    fn remove(&self, port: u32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&port);
    }
}

/// A port the last jump host listens on for this controller; cancelled when dropped.
pub struct RemoteForward {
    /// The address and port the hosts connect to.
    pub address: String,
    pub port: u16,
    /// The connections, as they come.
    pub incoming: mpsc::Receiver<Forwarded>,
    hop: Arc<Hop>,
}

impl RemoteForward {
    /// Whether the jump host's connection that carries the forward is gone (then the forward
    /// is gone with it, and a new one is needed).
    pub fn liveness(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let hop = self.hop.clone();
        move || !hop.handle.is_closed()
    }
}

impl Drop for RemoteForward {
    fn drop(&mut self) {
        self.hop.forwards.remove(u32::from(self.port));
        let (hop, address, port) = (self.hop.clone(), self.address.clone(), self.port);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = hop
                    .handle
                    .cancel_tcpip_forward(address, u32::from(port))
                    .await;
            });
        }
    }
}

impl SshConnector {
    /// Asks the last of `hops` to listen on `address` (a port of its choosing) and forward
    /// what connects there to this controller, before `deadline`.
    pub(crate) async fn remote_forward(
        &self,
        hops: &[JumpHop],
        secrets: &SecretCache,
        address: &str,
        deadline: Instant,
    ) -> Result<RemoteForward, TransportError> {
        let hop = self.hop_session(hops, secrets, deadline).await?;
        let name = hops.last().map(JumpHop::label).unwrap_or_default();
        let asked = hop.handle.tcpip_forward(address, 0);
        let port = match tokio::time::timeout_at(deadline, asked).await {
            Err(_) => {
                return Err(TransportError::new(
                    ErrorKind::Timeout,
                    format!("jump host {name} did not answer a request to forward a port"),
                ));
            }
            Ok(Err(russh::Error::RequestDenied)) => {
                return Err(TransportError::new(
                    ErrorKind::Refused,
                    format!(
                        "jump host {name} refused to listen on {address} for this controller: its sshd needs AllowTcpForwarding yes (or remote) and GatewayPorts clientspecified"
                    ),
                ));
            }
            Ok(Err(e)) => {
                return Err(TransportError::new(
                    ErrorKind::Unreachable,
                    format!("jump host {name}: a port forward failed: {e}"),
                ));
            }
            Ok(Ok(port)) => port,
        };
        let port16 = match u16::try_from(port) {
            Ok(p) if p != 0 => p,
            _ => {
                // Granted, but unusable: given back at once.
                let _ = hop.handle.cancel_tcpip_forward(address, port).await;
                return Err(TransportError::new(
                    ErrorKind::Protocol,
                    format!("jump host {name} answered a forward with port {port}"),
                ));
            }
        };
        let (route, incoming) = mpsc::channel(BACKLOG);
        hop.forwards.add(port, route);
        Ok(RemoteForward {
            address: address.to_string(),
            port: port16,
            incoming,
            hop,
        })
    }
}
