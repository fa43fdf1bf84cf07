//! The HTTP side of WinRM over port 5985: NTLM inside the Negotiate scheme, then every envelope
//! sealed with MS-WSMV message encryption ([`framing`], [`ntlm`]). Authentication is bound to
//! the TCP connection on Windows (HTTP.sys), and so is the sealing state, so this owns exactly
//! one connection (hyper's HTTP/1.1 client on a tokio TCP stream, TCP_NODELAY) and sends on it
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
use super::ntlm::{self, Identity};
use super::response::Operation;
use super::shell::{Exchange, ExchangeError};
use crate::error::ErrorKind;

/// Where the WinRM service listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}/wsman", self.port)
    }
}

/// The largest reply read: far above any envelope quota.
const MAX_REPLY: usize = 16 << 20;

/// One authenticated, sealed connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    sealing: ntlm::Sealing,
}

pub struct HttpExchange {
    endpoint: Endpoint,
    identity: Identity,
    connect_timeout: Duration,
    request_timeout: Duration,
    conn: Option<Conn>,
}

fn fail(kind: ErrorKind, message: impl Into<String>) -> ExchangeError {
    ExchangeError::new(kind, message)
}

impl HttpExchange {
    /// `request_timeout` must exceed the envelopes' OperationTimeout (a Receive is held that
    /// long by the service).
    pub fn new(
        endpoint: Endpoint,
        identity: Identity,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> HttpExchange {
        HttpExchange {
            endpoint,
            identity,
            connect_timeout,
            request_timeout,
            conn: None,
        }
    }

    /// Connects and authenticates now (otherwise the first request does).
    pub async fn open(&mut self) -> Result<(), ExchangeError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        Ok(())
    }

    fn authority(&self) -> String {
        self.endpoint
            .url()
            .trim_start_matches("http://")
            .trim_end_matches("/wsman")
            .to_string()
    }

    fn request(&self, auth: Option<String>, body: Option<Vec<u8>>) -> Request<Full<Bytes>> {
        let mut r = Request::post("/wsman")
            .header("Host", self.authority())
            .header("User-Agent", "ecfleet")
            .header("Accept-Encoding", "identity");
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let body = match body {
            Some(b) => {
                r = r.header("Content-Type", framing::CONTENT_TYPE);
                b
            }
            None => Vec::new(),
        };
        r.header("Content-Length", body.len())
            .body(Full::new(Bytes::from(body)))
            .expect("a request of fixed, valid parts")
    }

    async fn connect(&self) -> Result<Conn, ExchangeError> {
        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(|_| {
            fail(
                ErrorKind::Timeout,
                format!(
                    "no connection to {} within {:?}",
                    self.endpoint.url(),
                    self.connect_timeout
                ),
            )
        })?
        .map_err(|e| {
            fail(
                ErrorKind::Unreachable,
                format!("{}: {e}", self.endpoint.url()),
            )
        })?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| fail(ErrorKind::Protocol, format!("HTTP: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let negotiate = ntlm::negotiate_message();
        let first = self.request(
            Some(format!(
                "Negotiate {}",
                data_encoding::BASE64.encode(&negotiate)
            )),
            None,
        );
        let (status, headers, _) = self.exchange(&mut sender, first).await?;
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
            &self.identity,
            &negotiate,
            &challenge,
            &ntlm::Randomness::fresh(),
        )
        .map_err(|e| fail(ErrorKind::Auth, e.to_string()))?;
        let second = self.request(
            Some(format!(
                "Negotiate {}",
                data_encoding::BASE64.encode(&answer)
            )),
            None,
        );
        let (status, _, _) = self.exchange(&mut sender, second).await?;
        if status != StatusCode::OK {
            return Err(fail(
                ErrorKind::Auth,
                format!(
                    "{} refused the credentials (HTTP {status}): check the account and its password (local accounts: LocalAccountTokenFilterPolicy, docs/winrm.md)",
                    self.endpoint.url()
                ),
            ));
        }
        Ok(Conn { sender, sealing })
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

    /// One sealed request on the current connection.
    async fn sealed(&mut self, envelope: &str) -> Result<Sent, ExchangeError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let (signature, sealed) = conn.sealing.seal(envelope.as_bytes());
        let body = framing::frame(envelope.len(), &signature, &sealed);
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
            let framed =
                framing::unframe(&body).map_err(|e| fail(ErrorKind::Protocol, e.to_string()))?;
            let plain = sender
                .sealing
                .unseal(framed.signature, framed.sealed)
                .map_err(|e| fail(ErrorKind::Protocol, e.to_string()))?;
            if plain.len() != framed.length {
                return Err(fail(
                    ErrorKind::Protocol,
                    "an encrypted reply's length is not the one it states",
                ));
            }
            plain
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
            match self.sealed(&envelope).await? {
                Sent::Reply(bytes) => return Ok(bytes),
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
