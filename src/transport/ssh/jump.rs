//! Jump hosts (OpenSSH's ProxyJump): one authenticated SSH connection per hop of a chain,
//! shared by every host behind it for the whole run and opened again when it drops, and
//! direct-tcpip channels through the last hop to a host's port. Each hop is checked against its
//! own known_hosts and has its own deadline. A hop that fails is remembered for a short while,
//! so the hosts behind it get one error naming the hop instead of each waiting on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelOpenFailure;
use russh::client::{Handle, Msg};
use tokio::time::Instant;

use super::forward::Forwards;
use super::{SshConnector, SshTarget, Verifier};
use crate::inventory::JumpHop;
use crate::transport::dial::{self, endpoint};
use crate::transport::{ErrorKind, SecretCache, TransportError};

/// How long a hop's failure answers for it: the hosts queued behind a dead bastion fail at
/// once with its error; a later wave tries it again.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

type Session = Arc<Hop>;

/// One open hop: its SSH connection and the remote forwards asked of it.
pub(super) struct Hop {
    pub(super) handle: Handle<Verifier>,
    pub(super) forwards: Forwards,
}

/// The open hop connections of one run, by chain prefix (hop 2 reached through hop 1 is not
/// the same connection as hop 2 reached directly).
#[derive(Default)]
pub(super) struct JumpPool {
    slots: Mutex<HashMap<Vec<JumpHop>, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Default)]
struct Slot {
    session: Option<Session>,
    failed: Option<(Instant, TransportError)>,
}

impl JumpPool {
    fn slot(&self, chain: &[JumpHop]) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(chain.to_vec()).or_default().clone()
    }
}

/// `jump host ops@bastion:22` or, in a chain, `jump host ops@inner:22 (hop 2 of 2)`.
fn hop_name(hops: &[JumpHop], i: usize) -> String {
    if hops.len() == 1 {
        format!("jump host {}", hops[i].label())
    } else {
        format!(
            "jump host {} (hop {} of {})",
            hops[i].label(),
            i + 1,
            hops.len()
        )
    }
}

impl SshConnector {
    /// A direct-tcpip channel to `address:port` through `hops` (at least one), before
    /// `deadline`.
    pub(crate) async fn tunnel(
        &self,
        hops: &[JumpHop],
        secrets: &SecretCache,
        address: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<russh::ChannelStream<Msg>, TransportError> {
        let name = hop_name(hops, hops.len() - 1);
        let last = self.hop_session(hops, secrets, deadline).await?;
        match forward(&last, &name, address, port, deadline).await {
            // The shared connection dropped under us (the bastion restarted, a NAT forgot
            // it): opened again, once.
            Err(_) if last.handle.is_closed() => {
                let last = self.hop_session(hops, secrets, deadline).await?;
                forward(&last, &name, address, port, deadline).await
            }
            done => done,
        }
    }

    /// The last hop's connection, opening (or re-opening) each hop on the way.
    pub(super) async fn hop_session(
        &self,
        hops: &[JumpHop],
        secrets: &SecretCache,
        deadline: Instant,
    ) -> Result<Session, TransportError> {
        let mut previous: Option<Session> = None;
        for (i, hop) in hops.iter().enumerate() {
            let name = hop_name(hops, i);
            let started = Instant::now();
            let hop_deadline = deadline.min(started + hop.connect_timeout);
            let slot = self.jumps.slot(&hops[..=i]);
            let opening = async {
                let mut slot = slot.lock().await;
                if let Some(session) = &slot.session
                    && !session.handle.is_closed()
                {
                    return Ok(session.clone());
                }
                if let Some((at, e)) = &slot.failed
                    && at.elapsed() < FAILURE_MEMORY
                {
                    return Err(e.clone());
                }
                let opened = self
                    .open_hop(
                        hop,
                        &name,
                        previous.as_ref(),
                        hops,
                        i,
                        secrets,
                        hop_deadline,
                    )
                    .await
                    .map_err(|e| match e.kind {
                        ErrorKind::Timeout => hung(&name, hop, hop_deadline - started),
                        _ => e,
                    });
                match opened {
                    Ok(session) => {
                        *slot = Slot {
                            session: Some(session.clone()),
                            failed: None,
                        };
                        Ok(session)
                    }
                    Err(e) => {
                        slot.failed = Some((Instant::now(), e.clone()));
                        Err(e)
                    }
                }
            };
            let session = match tokio::time::timeout_at(hop_deadline, opening).await {
                Ok(r) => r?,
                Err(_) => {
                    let e = hung(&name, hop, hop_deadline - started);
                    // Remembered unless another host of the run got there first.
                    if let Ok(mut s) = slot.try_lock()
                        && s.session.is_none()
                    {
                        s.failed = Some((Instant::now(), e.clone()));
                    }
                    return Err(e);
                }
            };
            previous = Some(session);
        }
        Ok(previous.expect("a chain has at least one hop"))
    }

    #[allow(clippy::too_many_arguments)]
    async fn open_hop(
        &self,
        hop: &JumpHop,
        name: &str,
        previous: Option<&Session>,
        hops: &[JumpHop],
        i: usize,
        secrets: &SecretCache,
        deadline: Instant,
    ) -> Result<Session, TransportError> {
        let named =
            |e: TransportError| TransportError::new(e.kind, format!("{name}: {}", e.message));
        let stream: Box<dyn dial::ByteStream> = match previous {
            None => {
                dial::tcp(&hop.address, hop.port, deadline)
                    .await
                    .map_err(named)?
                    .stream
            }
            Some(before) => Box::new(
                forward(
                    before,
                    &hop_name(hops, i - 1),
                    &hop.address,
                    hop.port,
                    deadline,
                )
                .await?,
            ),
        };
        let target = SshTarget {
            name: name.to_string(),
            address: hop.address.clone(),
            port: hop.port,
            user: hop.user.clone(),
            identity_file: hop.identity_file.clone(),
            password: hop.password.clone(),
            known_hosts: hop.known_hosts.clone(),
            endpoint: endpoint(&hop.address, hop.port),
            jump: Vec::new(),
        };
        let forwards = Forwards::default();
        let handle = self
            .session_over(stream, &target, secrets, Some(forwards.clone()), deadline)
            .await
            .map_err(|e| {
                // Host-key and authentication messages already name the hop.
                if e.message.contains(name) {
                    e
                } else {
                    named(e)
                }
            })?;
        Ok(Arc::new(Hop { handle, forwards }))
    }
}

/// A hop that did not finish connecting (TCP, key exchange, authentication) in `waited`.
fn hung(name: &str, hop: &JumpHop, waited: Duration) -> TransportError {
    TransportError::new(
        ErrorKind::Timeout,
        format!(
            "{name} did not complete the SSH connection within its deadline ({} s); check that it is up and answering SSH on port {}",
            waited.as_millis().div_ceil(1000),
            hop.port
        ),
    )
}

/// A direct-tcpip channel from `via` (named `via_name`) to `address:port`.
async fn forward(
    via: &Session,
    via_name: &str,
    address: &str,
    port: u16,
    deadline: Instant,
) -> Result<russh::ChannelStream<Msg>, TransportError> {
    let to = endpoint(address, port);
    let limit = deadline.saturating_duration_since(Instant::now());
    let open = via
        .handle
        .channel_open_direct_tcpip(address, u32::from(port), "127.0.0.1", 0);
    let channel = match tokio::time::timeout_at(deadline, open).await {
        Err(_) => {
            return Err(TransportError::timeout(
                &format!("{via_name}: opening a tunnel to {to}"),
                limit,
            ));
        }
        Ok(Ok(channel)) => channel,
        Ok(Err(russh::Error::ChannelOpenFailure(why))) => {
            return Err(match why {
                ChannelOpenFailure::AdministrativelyProhibited => TransportError::new(
                    ErrorKind::Refused,
                    format!(
                        "{via_name} refused to forward to {to} (administratively prohibited): its sshd forbids TCP forwarding for this account (AllowTcpForwarding, PermitOpen); ask its administrator to allow forwarding to {to}"
                    ),
                ),
                ChannelOpenFailure::ConnectFailed => TransportError::new(
                    ErrorKind::Unreachable,
                    format!(
                        "{via_name} could not connect to {to}: check the address and port, and that the host is up and reachable from the jump host"
                    ),
                ),
                other => TransportError::new(
                    ErrorKind::Protocol,
                    // Debug escapes whatever the jump host put in its reason.
                    format!("{via_name} refused a tunnel to {to}: {other:?}"),
                ),
            });
        }
        Ok(Err(e)) => {
            return Err(TransportError::new(
                ErrorKind::Unreachable,
                format!("{via_name}: the connection failed while opening a tunnel to {to}: {e}"),
            ));
        }
    };
    Ok(channel.into_stream())
}
