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

    /// The jump hosts, first hop first (empty: directly).
    pub fn hops(&self) -> &[JumpHop] {
        self.through
            .as_ref()
            .map(|t| t.hops.as_slice())
            .unwrap_or(&[])
    }

    /// Where hosts behind the last hop reach it (its `pull_address`), when it has one.
    pub fn pull_address(&self) -> Option<&str> {
        self.hops().last().and_then(|h| h.pull_address.as_deref())
    }

    /// A port on the last hop's `pull_address` forwarded back to this controller.
    pub async fn remote_forward(
        &self,
        deadline: Instant,
    ) -> Result<super::ssh::RemoteForward, TransportError> {
        let (Some(t), Some(address)) = (&self.through, self.pull_address()) else {
            return Err(TransportError::new(
                ErrorKind::Unsupported,
                "no jump host with a pull_address to forward through",
            ));
        };
        t.ssh
            .remote_forward(&t.hops, &t.secrets, address, deadline)
            .await
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

/// A TCP connection (TCP_NODELAY, [`QuickAck`]) from this machine before `deadline`.
pub async fn tcp(address: &str, port: u16, deadline: Instant) -> Result<Dialed, TransportError> {
    let (stream, local, peer) = tcp_stream(address, port, deadline).await?;
    Ok(Dialed {
        stream: Box::new(QuickAck::new(stream)),
        local,
        peer,
    })
}

/// [`tcp`]'s stream, unboxed.
async fn tcp_stream(
    address: &str,
    port: u16,
    deadline: Instant,
) -> Result<(tokio::net::TcpStream, Option<IpAddr>, Option<IpAddr>), TransportError> {
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
    Ok((stream, local, peer))
}

/// A TCP stream that acknowledges at once what it reads (Linux `TCP_QUICKACK`, re-armed after
/// every read, since the kernel clears it). Every connection the controller dials is one:
/// sshd sets no TCP_NODELAY on a connection without a terminal, so when it forwards two
/// small replies in a row, the second waits for the ACK of the first; a delayed ACK (40 ms)
/// then stalls every exchange of every host behind it. A host's own sshd does the same on a
/// direct connection. Measured: bench/jump.sh, docs/performance.md.
///
/// Reads are buffered: SSH reads a packet as its 4-byte length and then the rest, two system
/// calls each (and a re-arm after each); one read of up to [`READ_BUFFER`] takes every packet
/// that has arrived (a third of the system calls per host, measured: docs/performance.md).
pub struct QuickAck {
    stream: tokio::net::TcpStream,
    buffer: Box<[u8]>,
    /// The buffer's unread bytes: `buffer[start..end]`.
    start: usize,
    end: usize,
}

/// What one read from the socket takes at most.
const READ_BUFFER: usize = 16 << 10;

impl QuickAck {
    pub fn new(stream: tokio::net::TcpStream) -> Self {
        QuickAck {
            stream,
            buffer: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn arm(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let on: libc::c_int = 1;
            // SAFETY: a valid socket descriptor and a c_int option of the right size.
            unsafe {
                libc::setsockopt(
                    self.stream.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.start == this.end {
            // Nothing buffered: a read as large as the buffer goes straight to the caller.
            if buf.remaining() >= this.buffer.len() {
                let before = buf.filled().len();
                let polled = std::pin::Pin::new(&mut this.stream).poll_read(cx, buf);
                if buf.filled().len() > before {
                    this.arm();
                }
                return polled;
            }
            let mut fill = tokio::io::ReadBuf::new(&mut this.buffer);
            match std::pin::Pin::new(&mut this.stream).poll_read(cx, &mut fill) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            this.start = 0;
            this.end = fill.filled().len();
            if this.end == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.arm();
        }
        let n = buf.remaining().min(this.end - this.start);
        buf.put_slice(&this.buffer[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, data)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Small reads are served from one socket read, large ones go straight through, and the
    /// stream ends where the peer closed it: the bytes and their order are the peer's.
    #[tokio::test]
    async fn buffered_reads_give_the_peers_bytes_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let data = sent.clone();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            peer.write_all(&data).await.unwrap();
            peer.shutdown().await.unwrap();
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let mut dialed = tcp("127.0.0.1", port, deadline).await.unwrap();
        let mut got = Vec::new();
        // SSH's pattern: a 4-byte length, then the rest; then one read larger than the buffer.
        let mut length = [0u8; 4];
        dialed.stream.read_exact(&mut length).await.unwrap();
        got.extend_from_slice(&length);
        let mut rest = vec![0u8; 1000];
        dialed.stream.read_exact(&mut rest).await.unwrap();
        got.extend_from_slice(&rest);
        let mut large = vec![0u8; READ_BUFFER * 2];
        loop {
            let n = dialed.stream.read(&mut large).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&large[..n]);
        }
        server.await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the bytes differ from what the peer sent");
    }
}
