//! The HTTP side of WinRM. Over HTTP (5985): NTLM inside the Negotiate scheme, then every
//! envelope sealed with MS-WSMV message encryption ([`framing`], [`ntlm`]). Over HTTPS (5986,
//! [`tls`]): TLS protects the envelopes, which go plain; NTLM carries the connection's channel
//! binding, or Basic sends the account with every request. Authentication is bound to the TCP
//! connection on Windows (HTTP.sys), and so is the sealing state, so this owns exactly one
//! connection (hyper's HTTP/1.1 client on a tokio TCP stream, TCP_NODELAY) and sends on it
//! strictly one request at a time. A 401 on an established connection (the context was lost)
//! or a dropped connection means a new connection and a new handshake; the request is sent
//! again only where that cannot do anything twice (a 401 means it was not processed; a Receive
//! or a Delete may repeat). Every request has a deadline; replies are capped in size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::framing;
use super::kerberos;
use super::ntlm::{self, Identity};
use super::response::Operation;
use super::shell::{Exchange, ExchangeError};
use super::tls::Tls;
use crate::error::ErrorKind;
use crate::transport::dial::Dialer;

/// Where the WinRM service listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub https: bool,
}

impl Endpoint {
    /// `host:port`, an IPv6 address in brackets.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/wsman", self.authority())
    }
}

/// How requests are authenticated. Deliberately not `Debug`: they hold the password.
pub enum Credentials {
    /// NTLM inside Negotiate, once per connection.
    Ntlm(Identity),
    /// Kerberos inside Negotiate, once per connection; with `ntlm`, NTLM when Kerberos cannot
    /// be had (no KDC answer, no such service principal, a host that does not take it), as
    /// Windows' Negotiate does; without, never.
    Kerberos {
        login: kerberos::Login,
        ntlm: Option<Identity>,
    },
    /// `Authorization: Basic …` on every request (HTTPS only).
    Basic { header: String },
}

impl Credentials {
    pub fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            header: format!(
                "Basic {}",
                data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes())
            ),
        }
    }
}

impl From<Identity> for Credentials {
    fn from(id: Identity) -> Credentials {
        Credentials::Ntlm(id)
    }
}

/// The Content-Type of a plain envelope (over HTTPS).
const SOAP: &str = "application/soap+xml;charset=UTF-8";

/// The largest reply read: far above any envelope quota.
const MAX_REPLY: usize = 16 << 20;

/// One authenticated connection; sealed over HTTP.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    sealing: Option<Sealing>,
}

/// A connection's message security, by the scheme that authenticated it.
enum Sealing {
    /// Both boxed: an NTLM sealing holds two RC4 states, an sspi context is larger still.
    Ntlm(Box<ntlm::Sealing>),
    Kerberos(Box<kerberos::Sealing>),
}

impl Sealing {
    /// (the signature or wrap token header, the sealed bytes).
    fn seal(&mut self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ExchangeError> {
        match self {
            Sealing::Ntlm(s) => {
                let (signature, sealed) = s.seal(message);
                Ok((signature.to_vec(), sealed))
            }
            Sealing::Kerberos(s) => s.seal(message).map_err(|e| fail(ErrorKind::Protocol, e)),
        }
    }

    fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ExchangeError> {
        match self {
            Sealing::Ntlm(s) => s
                .unseal(signature, sealed)
                .map_err(|e| fail(ErrorKind::Protocol, e.to_string())),
            Sealing::Kerberos(s) => s
                .unseal(signature, sealed)
                .map_err(|e| fail(ErrorKind::Protocol, e)),
        }
    }
}

/// A connection before authentication.
struct Transported {
    sender: SendRequest<Full<Bytes>>,
    channel_binding: Option<Vec<u8>>,
    local: Option<std::net::IpAddr>,
    peer: Option<std::net::IpAddr>,
}

/// A connection as [`HttpExchange::connect`] makes it, and the controller's address on it.
struct Opened {
    conn: Conn,
    local: Option<std::net::IpAddr>,
    peer: Option<std::net::IpAddr>,
}

pub struct HttpExchange {
    endpoint: Endpoint,
    credentials: Credentials,
    /// Over HTTPS.
    tls: Option<Tls>,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// Directly, or through the host's jump hosts.
    dialer: Dialer,
    /// Negotiate found Kerberos unavailable for this host once: later connections go NTLM.
    kerberos_unavailable: std::sync::atomic::AtomicBool,
    conn: Option<Conn>,
    /// The controller's address on the latest connection (where the host reaches it).
    local: Option<std::net::IpAddr>,
    /// The host's address on the latest connection.
    peer: Option<std::net::IpAddr>,
}

fn fail(kind: ErrorKind, message: impl Into<String>) -> ExchangeError {
    ExchangeError::new(kind, message)
}

impl HttpExchange {
    /// `request_timeout` must exceed the envelopes' OperationTimeout (a Receive is held that
    /// long by the service).
    pub fn new(
        endpoint: Endpoint,
        credentials: Credentials,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> HttpExchange {
        HttpExchange {
            endpoint,
            credentials,
            tls: None,
            local: None,
            peer: None,
            connect_timeout,
            request_timeout,
            dialer: Dialer::direct(),
            kerberos_unavailable: std::sync::atomic::AtomicBool::new(false),
            conn: None,
        }
    }

    /// Reaches the host as `dialer` does (through its jump hosts), every connection.
    pub fn through(mut self, dialer: Dialer) -> HttpExchange {
        self.dialer = dialer;
        self
    }

    /// The last jump host on the way, when the host is reached through one.
    pub fn last_hop(&self) -> Option<String> {
        self.dialer.last_hop()
    }

    /// How the host is reached (its jump hosts).
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Speaks HTTPS, with `tls`'s certificate policy (the endpoint must say `https`).
    pub fn over_tls(mut self, tls: Tls) -> HttpExchange {
        self.tls = Some(tls);
        self
    }

    /// Connects and authenticates now (otherwise the first request does).
    pub async fn open(&mut self) -> Result<(), ExchangeError> {
        if self.conn.is_none() {
            let opened = self.connect().await?;
            self.local = opened.local;
            self.peer = opened.peer;
            self.conn = Some(opened.conn);
        }
        Ok(())
    }

    /// The controller's address on the connection to the host (the address the host reaches
    /// the controller at, unless something translates it).
    pub fn local_address(&self) -> Option<std::net::IpAddr> {
        self.local
    }

    /// The host's address on that connection: where its fetches of offered files must come
    /// from ([`super::pull`]).
    pub fn peer_address(&self) -> Option<std::net::IpAddr> {
        self.peer
    }

    /// A request with `auth` (a handshake step), else Basic's header where that is the scheme,
    /// and `body` with its Content-Type.
    fn request(
        &self,
        auth: Option<String>,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Request<Full<Bytes>> {
        let mut r = Request::post("/wsman")
            .header("Host", self.endpoint.authority())
            .header("User-Agent", "ecfleet")
            .header("Accept-Encoding", "identity");
        let auth = auth.or_else(|| match &self.credentials {
            Credentials::Basic { header } => Some(header.clone()),
            Credentials::Ntlm(_) | Credentials::Kerberos { .. } => None,
        });
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let body = match body {
            Some((b, content_type)) => {
                r = r.header("Content-Type", content_type);
                b
            }
            None => Vec::new(),
        };
        r.header("Content-Length", body.len())
            .body(Full::new(Bytes::from(body)))
            .expect("a request of fixed, valid parts")
    }

    /// A connection (through the dialer, TLS over HTTPS) and its channel binding.
    async fn transport(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Transported, ExchangeError> {
        let dialed = self
            .dialer
            .dial(&self.endpoint.host, self.endpoint.port, deadline)
            .await
            .map_err(|e| fail(e.kind, format!("{}: {}", self.endpoint.url(), e.message)))?;
        let url = self.endpoint.url();
        let (sender, channel_binding) = match &self.tls {
            Some(tls) => {
                let connected =
                    tokio::time::timeout(self.connect_timeout, tls.handshake(dialed.stream, &url))
                        .await
                        .map_err(|_| {
                            fail(
                                ErrorKind::Timeout,
                                format!(
                                    "{url}: no TLS handshake within {:?}",
                                    self.connect_timeout
                                ),
                            )
                        })??;
                (
                    http1(connected.stream).await?,
                    Some(connected.channel_binding),
                )
            }
            None => (http1(dialed.stream).await?, None),
        };
        Ok(Transported {
            sender,
            channel_binding,
            local: dialed.local,
            peer: dialed.peer,
        })
    }

    async fn connect(&self) -> Result<Opened, ExchangeError> {
        use std::sync::atomic::Ordering::Relaxed;
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let mut t = self.transport(deadline).await?;
        let sealing = match &self.credentials {
            // Checked by the first request.
            Credentials::Basic { .. } => None,
            Credentials::Ntlm(identity) => Some(Sealing::Ntlm(Box::new(
                self.ntlm_login(&mut t.sender, identity, t.channel_binding.as_deref())
                    .await?,
            ))),
            Credentials::Kerberos { login, ntlm } => {
                let tried = if self.kerberos_unavailable.load(Relaxed) {
                    None
                } else {
                    Some(self.kerberos_login(&mut t.sender, login, deadline).await)
                };
                match (tried, ntlm) {
                    (Some(Ok(sealing)), _) => Some(Sealing::Kerberos(Box::new(sealing))),
                    (Some(Err(e)), Some(identity)) if e.ntlm_may_follow => {
                        tracing::warn!(
                            "{}: Kerberos cannot be had ({}); NTLM instead, as Negotiate does",
                            self.endpoint.url(),
                            e.error.message
                        );
                        self.kerberos_unavailable.store(true, Relaxed);
                        // The host's half of the failed context stays with the old connection.
                        t = self.transport(deadline).await?;
                        Some(Sealing::Ntlm(Box::new(
                            self.ntlm_login(&mut t.sender, identity, t.channel_binding.as_deref())
                                .await?,
                        )))
                    }
                    (Some(Err(e)), _) => return Err(fail(e.error.kind, e.error.message)),
                    (None, Some(identity)) => Some(Sealing::Ntlm(Box::new(
                        self.ntlm_login(&mut t.sender, identity, t.channel_binding.as_deref())
                            .await?,
                    ))),
                    (None, None) => unreachable!("set only when NTLM may follow"),
                }
            }
        };
        // Over TLS the envelopes go plain (as Windows and pywinrm do).
        let sealing = if self.tls.is_some() { None } else { sealing };
        Ok(Opened {
            conn: Conn {
                sender: t.sender,
                sealing,
            },
            local: t.local,
            peer: t.peer,
        })
    }

    /// NTLM inside Negotiate on `sender`: the session's sealing.
    async fn ntlm_login(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        identity: &Identity,
        channel_binding: Option<&[u8]>,
    ) -> Result<ntlm::Sealing, ExchangeError> {
        let negotiate = ntlm::negotiate_message();
        let first = self.request(
            Some(format!(
                "Negotiate {}",
                data_encoding::BASE64.encode(&negotiate)
            )),
            None,
        );
        let (status, headers, _) = self.exchange(sender, first).await?;
        let challenge = headers
            .iter()
            .find_map(|v| v.strip_prefix("Negotiate "))
            .filter(|_| status == StatusCode::UNAUTHORIZED)
            .ok_or_else(|| {
                fail(
                    ErrorKind::Auth,
                    format!(
                        "{} does not offer Negotiate (NTLM) authentication (HTTP {status}); enable it on the WinRM service",
                        self.endpoint.url()
                    ),
                )
            })?;
        let challenge = data_encoding::BASE64
            .decode(challenge.trim().as_bytes())
            .map_err(|_| fail(ErrorKind::Protocol, "the NTLM challenge is not base64"))
            .and_then(|bytes| {
                ntlm::Challenge::parse(&bytes).map_err(|e| fail(ErrorKind::Protocol, e.to_string()))
            })?;
        let (answer, sealing) = ntlm::authenticate(
            identity,
            &negotiate,
            &challenge,
            &ntlm::Randomness::fresh(),
            channel_binding,
        )
        .map_err(|e| fail(ErrorKind::Auth, e.to_string()))?;
        let second = self.request(
            Some(format!(
                "Negotiate {}",
                data_encoding::BASE64.encode(&answer)
            )),
            None,
        );
        let (status, _, _) = self.exchange(sender, second).await?;
        if status != StatusCode::OK {
            return Err(fail(
                ErrorKind::Auth,
                format!(
                    "{} refused the credentials (HTTP {status}): check the account and its password (local accounts: LocalAccountTokenFilterPolicy; a host that refuses NTLM needs Kerberos, docs/winrm.md)",
                    self.endpoint.url()
                ),
            ));
        }
        Ok(sealing)
    }

    /// Kerberos inside Negotiate on `sender`, with mutual authentication: the session's
    /// sealing.
    async fn kerberos_login(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        login: &kerberos::Login,
        deadline: tokio::time::Instant,
    ) -> Result<kerberos::Sealing, kerberos::KerberosError> {
        let url = self.endpoint.url();
        let http = |e: ExchangeError| kerberos::KerberosError {
            error: crate::transport::TransportError::new(e.kind, e.message),
            ntlm_may_follow: false,
        };
        let mut handshake = kerberos::Handshake::new(login)?;
        let (mut token, mut done) = handshake.step(None, &self.dialer, deadline).await?;
        for _ in 0..4 {
            let request = self.request(
                Some(format!(
                    "Negotiate {}",
                    data_encoding::BASE64.encode(&token)
                )),
                None,
            );
            let (status, headers, _) = self.exchange(sender, request).await.map_err(http)?;
            let answer = headers
                .iter()
                .find_map(|v| v.strip_prefix("Negotiate "))
                .and_then(|t| data_encoding::BASE64.decode(t.trim().as_bytes()).ok());
            match (status, answer) {
                (StatusCode::OK, answer) => {
                    if let Some(answer) = answer {
                        (_, done) = handshake
                            .step(Some(&answer), &self.dialer, deadline)
                            .await?;
                    }
                    if !done {
                        return Err(kerberos::KerberosError {
                            error: crate::transport::TransportError::new(
                                ErrorKind::Auth,
                                format!(
                                    "{url} accepted the ticket without proving itself (no mutual authentication): refused, it may not be the host"
                                ),
                            ),
                            ntlm_may_follow: false,
                        });
                    }
                    return Ok(handshake.into_sealing());
                }
                (StatusCode::UNAUTHORIZED, Some(answer)) if !done => {
                    (token, done) = handshake
                        .step(Some(&answer), &self.dialer, deadline)
                        .await?;
                }
                (status, _) => {
                    // Over HTTPS one more cause: ecfleet's Kerberos carries no channel binding
                    // (kerberos::Handshake::new says why).
                    let strict = if self.tls.is_some() {
                        "; over HTTPS also: the service requires channel binding (CbtHardeningLevel Strict), which ecfleet's Kerberos does not send yet: set it to Relaxed, or use auth = \"ntlm\", which carries it (docs/winrm.md)"
                    } else {
                        ""
                    };
                    return Err(kerberos::KerberosError {
                        error: crate::transport::TransportError::new(
                            ErrorKind::Auth,
                            format!(
                                "{url} refused the Kerberos ticket for {} (HTTP {status}): the host's WinRM service does not take Kerberos, the SPN names another machine (set spn on the host), or the host's clock and the KDC's differ by more than 5 minutes{strict}",
                                login.spn
                            ),
                        ),
                        ntlm_may_follow: true,
                    });
                }
            }
        }
        Err(kerberos::KerberosError {
            error: crate::transport::TransportError::new(
                ErrorKind::Protocol,
                format!("{url}: the Kerberos handshake did not end in four rounds"),
            ),
            ntlm_may_follow: false,
        })
    }

    /// Sends one request on the connection and reads the reply (status, WWW-Authenticate
    /// values, Content-Type and body).
    async fn exchange(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Vec<String>, (String, Bytes)), ExchangeError> {
        let run = async {
            sender.ready().await.map_err(|e| {
                fail(
                    ErrorKind::Unreachable,
                    format!("the connection closed: {e}"),
                )
            })?;
            let response = sender.send_request(request).await.map_err(|e| {
                fail(
                    ErrorKind::Unreachable,
                    format!("the connection dropped: {e}"),
                )
            })?;
            let status = response.status();
            let auth: Vec<String> = response
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            let ctype = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| {
                    fail(
                        ErrorKind::Protocol,
                        format!("the reply could not be read: {e}"),
                    )
                })?
                .to_bytes();
            Ok((status, auth, (ctype, body)))
        };
        tokio::time::timeout(self.request_timeout, run)
            .await
            .map_err(|_| {
                fail(
                    ErrorKind::Timeout,
                    format!(
                        "{} did not answer within {:?}",
                        self.endpoint.url(),
                        self.request_timeout
                    ),
                )
            })?
    }

    /// One request on the current connection, sealed over HTTP.
    async fn send(&mut self, envelope: &str) -> Result<Sent, ExchangeError> {
        self.open().await?;
        let conn = self.conn.as_mut().expect("connected above");
        let body = match conn.sealing.as_mut() {
            Some(sealing) => {
                let (signature, sealed) = sealing.seal(envelope.as_bytes())?;
                (
                    framing::frame(envelope.len(), &signature, &sealed),
                    framing::CONTENT_TYPE,
                )
            }
            None => (envelope.as_bytes().to_vec(), SOAP),
        };
        let request = self.request(None, Some(body));
        let mut sender = self.conn.take().expect("connected above");
        let result = self.exchange(&mut sender.sender, request).await;
        let (status, _, (ctype, body)) = match result {
            Ok(r) => r,
            Err(e) => return Ok(Sent::Dropped(e)),
        };
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Sent::Unauthorized);
        }
        let plain = if ctype.starts_with("multipart/encrypted") {
            let sealing = sender.sealing.as_mut().ok_or_else(|| {
                fail(
                    ErrorKind::Protocol,
                    "an encrypted reply on a connection without message encryption",
                )
            })?;
            let framed =
                framing::unframe(&body).map_err(|e| fail(ErrorKind::Protocol, e.to_string()))?;
            let plain = sealing.unseal(framed.signature, framed.sealed)?;
            if plain.len() != framed.length {
                return Err(fail(
                    ErrorKind::Protocol,
                    "an encrypted reply's length is not the one it states",
                ));
            }
            plain
        } else if sender.sealing.is_some() {
            // Whatever its status: on a sealed connection only a sealed, verified reply is the
            // service's word. A plain one could have been written by anyone on the path.
            return Err(fail(
                ErrorKind::Protocol,
                if body.is_empty() {
                    format!(
                        "{} answered HTTP {status} with no envelope",
                        self.endpoint.url()
                    )
                } else {
                    format!(
                        "a plain (unencrypted) HTTP {status} reply on a sealed connection: refused as a possible forgery, nothing in it was read"
                    )
                },
            ));
        } else {
            body.to_vec()
        };
        self.conn = Some(sender);
        if status != StatusCode::OK && status != StatusCode::INTERNAL_SERVER_ERROR {
            return Err(fail(
                ErrorKind::Protocol,
                format!("{} answered HTTP {status}", self.endpoint.url()),
            ));
        }
        if plain.is_empty() {
            return Err(fail(
                ErrorKind::Protocol,
                format!(
                    "{} answered HTTP {status} with no envelope",
                    self.endpoint.url()
                ),
            ));
        }
        Ok(Sent::Reply(plain))
    }
}

/// hyper's HTTP/1.1 client on `io`, its connection driven by its own task.
async fn http1<T>(io: T) -> Result<SendRequest<Full<Bytes>>, ExchangeError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| fail(ErrorKind::Protocol, format!("HTTP: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

enum Sent {
    Reply(Vec<u8>),
    /// The service no longer knows the connection's context: not processed.
    Unauthorized,
    /// The connection failed; the request may or may not have been processed.
    Dropped(ExchangeError),
}

impl Exchange for HttpExchange {
    async fn post(
        &mut self,
        envelope: String,
        operation: Operation,
    ) -> Result<Vec<u8>, ExchangeError> {
        let repeatable = matches!(
            operation,
            Operation::Receive | Operation::Delete | Operation::Signal | Operation::GetConfig
        );
        let mut tries = 0;
        loop {
            tries += 1;
            match self.send(&envelope).await? {
                Sent::Reply(bytes) => return Ok(bytes),
                Sent::Unauthorized if matches!(self.credentials, Credentials::Basic { .. }) => {
                    self.conn = None;
                    return Err(fail(
                        ErrorKind::Auth,
                        format!(
                            "{} refused the credentials (HTTP 401, Basic): check the account and its password; Basic takes local accounts only and must be allowed on the service (docs/winrm.md)",
                            self.endpoint.url()
                        ),
                    ));
                }
                Sent::Unauthorized if tries < 2 => self.conn = None,
                Sent::Unauthorized => {
                    return Err(fail(
                        ErrorKind::Auth,
                        format!(
                            "{} refused the session's authentication twice",
                            self.endpoint.url()
                        ),
                    ));
                }
                Sent::Dropped(_) if repeatable && tries < 2 => self.conn = None,
                Sent::Dropped(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }
}
