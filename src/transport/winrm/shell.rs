//! One command in a WinRS shell, start to finish: Create the shell, start the Command, Send its
//! stdin in envelope-sized pieces, Receive until it is done (the timeout fault is a keep-alive:
//! asked again silently; output split over many Receives is put back together, capped), then
//! Signal it terminated and Delete the shell — also after an error or at the deadline, so no
//! shell is left on the host. Every wait has the caller's deadline: WinRM's OperationTimeout
//! only bounds one Receive. The HTTP side (authentication, encryption) is behind [`Exchange`].

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::envelope::{self, Session, ShellOptions};
use super::ns;
use super::response::{self, Body, Fault, Operation, Output};

/// Posts one envelope and returns the reply's body (a SOAP fault body too: HTTP 500 carries
/// one). Implemented over HTTP by the transport, and by recordings in tests.
pub trait Exchange: Send {
    fn post(
        &mut self,
        envelope: String,
        operation: Operation,
    ) -> impl Future<Output = Result<Vec<u8>, ExchangeError>> + Send;
}

/// The HTTP side failed (connection, authentication, a status without a SOAP body).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct ExchangeError {
    pub kind: crate::error::ErrorKind,
    pub message: String,
}

impl ExchangeError {
    pub fn new(kind: crate::error::ErrorKind, message: impl Into<String>) -> Self {
        ExchangeError {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ShellError {
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{operation:?}: {}", fault.describe())]
    Fault { operation: Operation, fault: Fault },
    #[error("{0}")]
    Reply(String),
    #[error("the command did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the command's output passed {0} bytes")]
    TooMuchOutput(usize),
    #[error(transparent)]
    TooLong(#[from] envelope::TooLong),
}

/// What one command gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: Option<i64>,
    /// Receives answered by the timeout fault (the command was quiet that long).
    pub keep_alives: u32,
}

/// What a command reads on stdin. The bytes are borrowed, never copied whole: a file sent to
/// many hosts stays one buffer on the controller, and each Send encodes only its piece.
#[derive(Debug, Clone, Copy)]
pub enum Stdin<'a> {
    /// The bytes as they are.
    Raw(&'a [u8]),
    /// The bytes as base64 lines, for a PowerShell reader (`$input` yields lines).
    Base64Lines(&'a [u8]),
}

/// Raw bytes per base64 line (76 characters a line, as MIME writes them, times 64).
const LINE_BYTES: usize = 57 * 64;

/// `data` as base64 lines of [`LINE_BYTES`] each, CRLF-terminated.
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 * 4 + data.len() / 1000 + 8);
    for chunk in data.chunks(LINE_BYTES) {
        out.extend_from_slice(data_encoding::BASE64.encode(chunk).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl<'a> Stdin<'a> {
    /// The pieces to send, each encoded to at most `piece` bytes.
    fn pieces(self, piece: usize) -> Box<dyn Iterator<Item = Cow<'a, [u8]>> + Send + 'a> {
        match self {
            Stdin::Raw(data) => Box::new(data.chunks(piece).map(Cow::Borrowed)),
            Stdin::Base64Lines(data) => {
                let encoded_line = LINE_BYTES / 3 * 4 + 2;
                let raw = (piece / encoded_line).max(1) * LINE_BYTES;
                Box::new(data.chunks(raw).map(|c| Cow::Owned(base64_lines(c))))
            }
        }
    }
}

/// How one command runs.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub command: &'a str,
    pub arguments: &'a [&'a str],
    pub skip_cmd_shell: bool,
    pub stdin: Option<Stdin<'a>>,
    /// Stop reading (and fail) when stdout and stderr together pass this.
    pub max_output: usize,
    /// The service's envelope quota in bytes (sizes the Sends).
    pub envelope_quota: usize,
}

/// Runs `run` in a new shell and deletes the shell, within `limit`.
pub async fn run<E: Exchange>(
    exchange: &mut E,
    session: &Session,
    shell: &ShellOptions,
    run: &Run<'_>,
    limit: Duration,
) -> Result<Finished, ShellError> {
    let deadline = Instant::now() + limit;
    let within = |d: Instant| d.saturating_duration_since(Instant::now());
    let created = tokio::time::timeout(within(deadline), create(exchange, session, shell)).await;
    let shell_id = match created {
        Ok(r) => r?,
        Err(_) => return Err(ShellError::Timeout(limit)),
    };
    let mut command_id = None;
    let result = tokio::time::timeout(
        within(deadline),
        command_in(exchange, session, &shell_id, run, &mut command_id),
    )
    .await
    .unwrap_or(Err(ShellError::Timeout(limit)));
    // Clean up whatever happened: bounded, so a dead host cannot hold the caller.
    let cleanup = async {
        if let Some(id) = &command_id {
            let _ = request(
                exchange,
                Operation::Signal,
                envelope::signal(session, Uuid::new_v4(), &shell_id, id, ns::SIGNAL_TERMINATE),
            )
            .await;
        }
        let _ = request(
            exchange,
            Operation::Delete,
            envelope::delete(session, Uuid::new_v4(), &shell_id),
        )
        .await;
    };
    let _ = tokio::time::timeout(CLEANUP_LIMIT, cleanup).await;
    result
}

/// The service's configuration (needs an administrator; a fault means: assume the defaults).
pub async fn config<E: Exchange>(
    exchange: &mut E,
    session: &Session,
) -> Result<response::Config, ShellError> {
    match request(
        exchange,
        Operation::GetConfig,
        envelope::get_config(session, Uuid::new_v4()),
    )
    .await?
    {
        Body::Config(c) => Ok(c),
        other => Err(unexpected(Operation::GetConfig, &other)),
    }
}

/// How long deleting the shell may take after the command, also past the caller's deadline.
const CLEANUP_LIMIT: Duration = Duration::from_secs(10);

async fn create<E: Exchange>(
    exchange: &mut E,
    session: &Session,
    shell: &ShellOptions,
) -> Result<String, ShellError> {
    match request(
        exchange,
        Operation::Create,
        envelope::create_shell(session, Uuid::new_v4(), shell),
    )
    .await?
    {
        Body::ShellCreated { shell_id } => Ok(shell_id),
        other => Err(unexpected(Operation::Create, &other)),
    }
}

async fn command_in<E: Exchange>(
    exchange: &mut E,
    session: &Session,
    shell_id: &str,
    run: &Run<'_>,
    command_id: &mut Option<String>,
) -> Result<Finished, ShellError> {
    let line = envelope::command(
        session,
        Uuid::new_v4(),
        shell_id,
        run.command,
        run.arguments,
        run.skip_cmd_shell,
    )?;
    let id = match request(exchange, Operation::Command, line).await? {
        Body::CommandStarted { command_id } => command_id,
        other => return Err(unexpected(Operation::Command, &other)),
    };
    *command_id = Some(id.clone());
    if let Some(stdin) = run.stdin {
        let piece = envelope::max_send_bytes(session, run.envelope_quota).max(1);
        let mut chunks = stdin.pieces(piece).peekable();
        if chunks.peek().is_none() {
            send(exchange, session, shell_id, &id, &[], true).await?;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            send(exchange, session, shell_id, &id, &chunk, last).await?;
        }
    }
    let mut finished = Finished::default();
    loop {
        let envelope = envelope::receive(session, Uuid::new_v4(), shell_id, &id);
        let output: Output = match request_raw(exchange, Operation::Receive, envelope).await? {
            Body::Output(o) => o,
            Body::Fault(f) if f.is_operation_timeout() => {
                finished.keep_alives += 1;
                continue;
            }
            Body::Fault(fault) => {
                return Err(ShellError::Fault {
                    operation: Operation::Receive,
                    fault,
                });
            }
            other => return Err(unexpected(Operation::Receive, &other)),
        };
        finished.stdout.extend_from_slice(&output.stdout);
        finished.stderr.extend_from_slice(&output.stderr);
        if finished.stdout.len() + finished.stderr.len() > run.max_output {
            return Err(ShellError::TooMuchOutput(run.max_output));
        }
        if output.done {
            finished.exit_code = output.exit_code;
            return Ok(finished);
        }
    }
}

async fn send<E: Exchange>(
    exchange: &mut E,
    session: &Session,
    shell_id: &str,
    command_id: &str,
    data: &[u8],
    end: bool,
) -> Result<(), ShellError> {
    let envelope = envelope::send(session, Uuid::new_v4(), shell_id, command_id, data, end);
    request(exchange, Operation::Send, envelope).await.map(drop)
}

/// Posts and reads the reply; a fault is an error.
async fn request<E: Exchange>(
    exchange: &mut E,
    operation: Operation,
    envelope: String,
) -> Result<Body, ShellError> {
    match request_raw(exchange, operation, envelope).await? {
        Body::Fault(fault) => Err(ShellError::Fault { operation, fault }),
        body => Ok(body),
    }
}

/// Posts and reads the reply, which must relate to this request.
async fn request_raw<E: Exchange>(
    exchange: &mut E,
    operation: Operation,
    envelope: String,
) -> Result<Body, ShellError> {
    let message_id = message_id_of(&envelope);
    let bytes = exchange.post(envelope, operation).await?;
    let reply = response::parse(&bytes, operation)
        .map_err(|e| ShellError::Reply(format!("{operation:?}: {e}")))?;
    match (&message_id, &reply.relates_to) {
        (Some(sent), Some(relates)) if !sent.eq_ignore_ascii_case(relates) => {
            return Err(ShellError::Reply(format!(
                "{operation:?}: the reply relates to {relates}, not to the request {sent}"
            )));
        }
        // Every reply must say which request it answers (WS-Addressing RelatesTo).
        (Some(sent), None) => {
            return Err(ShellError::Reply(format!(
                "{operation:?}: the reply does not say which request it answers (no RelatesTo for {sent}): refused"
            )));
        }
        _ => {}
    }
    Ok(reply.body)
}

/// The MessageID we put in an envelope we built (between its tags; no parsing needed).
fn message_id_of(envelope: &str) -> Option<String> {
    let start = envelope.find("<wsa:MessageID>")? + "<wsa:MessageID>".len();
    let end = envelope[start..].find('<')? + start;
    Some(envelope[start..end].to_string())
}

fn unexpected(operation: Operation, body: &Body) -> ShellError {
    ShellError::Reply(format!(
        "{operation:?}: an unexpected reply ({})",
        match body {
            Body::ShellCreated { .. } => "a shell was created",
            Body::CommandStarted { .. } => "a command started",
            Body::Output(_) => "output",
            Body::Done => "an empty answer",
            Body::Config(_) => "the configuration",
            Body::Fault(_) => "a fault",
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pieces_fit_the_send_and_decode_to_the_bytes() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let piece = 10_000;
        let pieces: Vec<Cow<'_, [u8]>> = Stdin::Base64Lines(&data).pieces(piece).collect();
        assert!(pieces.len() > 1 && pieces.iter().all(|p| p.len() <= piece));
        let decoded: Vec<u8> = pieces
            .iter()
            .flat_map(|p| {
                String::from_utf8(p.to_vec())
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .flat_map(|l| data_encoding::BASE64.decode(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(decoded, data);
        let raw: Vec<Cow<'_, [u8]>> = Stdin::Raw(&data).pieces(piece).collect();
        assert!(
            raw.iter().all(|p| matches!(p, Cow::Borrowed(_))),
            "raw bytes are not copied"
        );
    }
}
