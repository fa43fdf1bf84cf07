//! Host pull (WINRM.md §3.3): the controller serves a file over HTTPS of its own and the host
//! fetches it at LAN speed, instead of the file crawling through WinRS stdin. One listener per
//! controller address that hosts reach (the local address of their WinRM connections), on a
//! random port, with a certificate made for this process (RSA 2048, for old Schannel) that the
//! host's script pins. Hosts behind a jump host reach a port their last hop forwards back to
//! the controller instead (`pull_address`, one forward per chain; docs/jump-hosts.md). Each
//! [`Offer`] is one file for one host under a one-time token: the first request takes it, a
//! resumed download needs a new offer. A listener lives while any of its offers does. Requests
//! and connections have deadlines; nothing else is served.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::Digest;

use crate::inventory::JumpHop;
use crate::transport::dial::Dialer;
use crate::transport::ssh::RemoteForward;

/// How long a host has for the TLS handshake and the request's head.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(15);
/// The longest one download may take (the put's own deadline is shorter in practice).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(3600);

/// One HTTPS listener: on a controller address, or on a jump host's forwarded port.
pub struct PullServer {
    /// `https://<address>:<port>` as the hosts reach it.
    base: String,
    /// SHA-256 of the certificate's DER, lower-case hex (what the Windows script pins).
    cert_sha256: String,
    /// `sha256//<base64>` of the certificate's public key (what curl's `--pinnedpubkey` takes).
    pinned_public_key: String,
    offers: Arc<Mutex<HashMap<String, Offered>>>,
    accept: tokio::task::JoinHandle<()>,
    /// Whether the way in still stands (a jump host's forward dies with its connection).
    alive: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Drop for PullServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A file offered to one host under a one-time token; withdrawn when dropped.
pub struct Offer {
    server: Arc<PullServer>,
    token: String,
}

impl Offer {
    /// `https://<address>:<port>/<token>`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server.base, self.token)
    }

    pub fn cert_sha256(&self) -> &str {
        &self.server.cert_sha256
    }

    pub fn pinned_public_key(&self) -> &str {
        &self.server.pinned_public_key
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        self.server
            .offers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

/// How the hosts reach a listener: an address of this machine, or a jump chain's forward.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Reach {
    Local(IpAddr),
    Forwarded(Vec<JumpHop>),
}

fn registry() -> &'static Mutex<HashMap<Reach, Weak<PullServer>>> {
    static SERVERS: std::sync::OnceLock<Mutex<HashMap<Reach, Weak<PullServer>>>> =
        std::sync::OnceLock::new();
    SERVERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Offers `data` to the host at `peer` (its address on its WinRM connection) that reaches the
/// controller at `local`, under a new token. The token is in the host's command line, which
/// other processes there can read: only a fetch from `peer` is answered.
pub async fn offer(local: IpAddr, peer: IpAddr, data: Bytes) -> Result<Offer, String> {
    let server = server_for(Reach::Local(local), || start(local)).await?;
    offer_on(server, Some(peer), data)
}

/// Offers `data` to a host behind `dialer`'s jump hosts, through a port their last hop
/// forwards to this controller (its `pull_address`) before `deadline`. The fetch cannot be
/// matched to the host's address there (it reaches the jump host from an address of its own,
/// which the inventory does not give, and the jump host reports it), so the one-time 256-bit
/// token alone guards the file: the installer and the agent, neither of them secret.
pub async fn offer_through(
    dialer: &Dialer,
    data: Bytes,
    deadline: tokio::time::Instant,
) -> Result<Offer, String> {
    let hops = dialer.hops().to_vec();
    let server = server_for(Reach::Forwarded(hops), || async {
        let forward = dialer
            .remote_forward(deadline)
            .await
            .map_err(|e| e.message)?;
        start_forwarded(forward).await
    })
    .await?;
    offer_on(server, None, data)
}

fn offer_on(server: Arc<PullServer>, peer: Option<IpAddr>, data: Bytes) -> Result<Offer, String> {
    let token = token()?;
    server
        .offers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.clone(), Offered { data, peer });
    Ok(Offer { server, token })
}

/// A file on offer, and the only address it is served to (when that can be known).
struct Offered {
    data: Bytes,
    peer: Option<IpAddr>,
}

fn token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "no random token: the system's random source failed".to_string())?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}

async fn server_for<F, Fut>(reach: Reach, start: F) -> Result<Arc<PullServer>, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<PullServer, String>>,
{
    // A server whose way in is gone (its jump host's connection dropped) is not reused.
    let live = |s: &Arc<PullServer>| (s.alive)();
    if let Some(s) = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&reach)
        .and_then(Weak::upgrade)
        .filter(live)
    {
        return Ok(s);
    }
    let server = Arc::new(start().await?);
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    // Another host may have started one meanwhile: keep the first.
    if let Some(s) = map.get(&reach).and_then(Weak::upgrade).filter(live) {
        return Ok(s);
    }
    map.insert(reach, Arc::downgrade(&server));
    Ok(server)
}

/// The listener's certificate (for `name`, the address the hosts use) and TLS set-up.
struct Identity {
    acceptor: tokio_rustls::TlsAcceptor,
    cert_sha256: String,
    pinned_public_key: String,
}

async fn identity(name: String) -> Result<Identity, String> {
    // RSA key generation takes a while: not on the runtime's threads.
    let key = tokio::task::spawn_blocking(|| {
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
    })
    .await
    .map_err(|e| format!("no key for the file server: {e}"))?
    .map_err(|e| format!("no key for the file server: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![name])
        .map_err(|e| format!("no certificate for the file server: {e}"))?;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("no certificate for the file server: {e}"))?;
    let cert_der = cert.der().to_vec();
    let cert_sha256 = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&cert_der));
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let pinned_public_key = format!(
        "sha256//{}",
        data_encoding::BASE64.encode(&sha2::Sha256::digest(&spki))
    );
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| format!("the file server's certificate: {e}"))?;
    Ok(Identity {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert_sha256,
        pinned_public_key,
    })
}

/// A listener on `local`, a random port.
async fn start(local: IpAddr) -> Result<PullServer, String> {
    let identity = identity(local.to_string()).await?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|e| format!("cannot listen on {local} for host pull: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let offers: Arc<Mutex<HashMap<String, Offered>>> = Arc::default();
    let (acceptor, served) = (identity.acceptor.clone(), offers.clone());
    let accept = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: not a busy loop.
                    tracing::debug!("host pull: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve(
                acceptor.clone(),
                served.clone(),
                tcp,
                Some(peer.ip()),
            ));
        }
    });
    Ok(PullServer {
        base: format!(
            "https://{}",
            crate::transport::dial::endpoint(&local.to_string(), address.port())
        ),
        cert_sha256: identity.cert_sha256,
        pinned_public_key: identity.pinned_public_key,
        offers,
        accept,
        alive: Box::new(|| true),
    })
}

/// A listener on a jump host's forwarded port: each connection arrives as an SSH channel.
async fn start_forwarded(mut forward: RemoteForward) -> Result<PullServer, String> {
    let identity = identity(forward.address.clone()).await?;
    let base = format!(
        "https://{}",
        crate::transport::dial::endpoint(&forward.address, forward.port)
    );
    let offers: Arc<Mutex<HashMap<String, Offered>>> = Arc::default();
    let (acceptor, served) = (identity.acceptor.clone(), offers.clone());
    let alive = forward.liveness();
    let accept = tokio::spawn(async move {
        // The forward lives (and is cancelled on the jump host) with this task.
        while let Some(connection) = forward.incoming.recv().await {
            tokio::spawn(serve(
                acceptor.clone(),
                served.clone(),
                connection.stream,
                connection.originator,
            ));
        }
    });
    Ok(PullServer {
        base,
        cert_sha256: identity.cert_sha256,
        pinned_public_key: identity.pinned_public_key,
        offers,
        accept,
        alive: Box::new(alive),
    })
}

/// One connection: TLS, one request, within the deadlines.
async fn serve<S>(
    acceptor: tokio_rustls::TlsAcceptor,
    offers: Arc<Mutex<HashMap<String, Offered>>>,
    stream: S,
    peer: Option<IpAddr>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let serve = async {
        let tls = tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream))
            .await
            .ok()?
            .ok()?;
        let service = hyper::service::service_fn(move |r| {
            let offers = offers.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(&offers, &r, peer)) }
        });
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HANDSHAKE_DEADLINE)
            .keep_alive(false)
            .serve_connection(TokioIo::new(tls), service)
            .await
            .ok()
    };
    let _ = tokio::time::timeout(CONNECTION_DEADLINE, serve).await;
}

/// `GET /<token>`, with `Range: bytes=N-` for a resumed download; the token is spent.
fn answer(
    offers: &Mutex<HashMap<String, Offered>>,
    request: &Request<hyper::body::Incoming>,
    peer: Option<IpAddr>,
) -> Response<Full<Bytes>> {
    let status = |s: StatusCode| {
        Response::builder()
            .status(s)
            .body(Full::new(Bytes::new()))
            .expect("a fixed response")
    };
    if request.method() != hyper::Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let token = request.uri().path().trim_start_matches('/');
    let data = {
        let mut offers = offers.lock().unwrap_or_else(|p| p.into_inner());
        match offers.get(token) {
            None => {
                tracing::debug!(?peer, "host pull: an unknown or spent token");
                return status(StatusCode::NOT_FOUND);
            }
            // The token from elsewhere (another process that saw the host's command line, on
            // another machine): not served, and not spent, so the host can still fetch.
            Some(Offered {
                peer: Some(expected),
                ..
            }) if peer != Some(*expected) => {
                tracing::warn!(?peer, %expected, "host pull: a token presented from another address: refused");
                return status(StatusCode::FORBIDDEN);
            }
            Some(_) => match offers.remove(token) {
                Some(o) => o.data,
                None => return status(StatusCode::NOT_FOUND),
            },
        }
    };
    let from = match request.headers().get(hyper::header::RANGE) {
        None => None,
        Some(v) => match v
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.strip_suffix('-'))
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(n) if n < data.len() => Some(n),
            _ => return status(StatusCode::RANGE_NOT_SATISFIABLE),
        },
    };
    let total = data.len();
    let builder = Response::builder().header("Content-Type", "application/octet-stream");
    let response = match from {
        Some(n) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header("Content-Range", format!("bytes {n}-{}/{total}", total - 1))
            .body(Full::new(data.slice(n..))),
        None => builder.status(StatusCode::OK).body(Full::new(data)),
    };
    response.expect("a response of valid parts")
}
