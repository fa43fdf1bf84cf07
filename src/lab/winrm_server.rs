//! The in-process lab WinRM server (`ecfleet lab up --winrm N`): one loopback listener per
//! simulated host speaking WS-Management as a Windows host's WinRM service does over HTTP —
//! NTLM (ecfleet's acceptor, one account), MS-WSMV message encryption (unencrypted requests are
//! refused), and WinRS shells whose commands run as real processes (`sh -c`, in the host's
//! directory, a process group each). It serves the controller exactly as a real host would; only
//! the commands' interpreter differs, as on the lab's SSH server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};

use crate::transport::winrm::ntlm::{self, Acceptor, Identity, Sealing};
use crate::transport::winrm::response::{FAULT_OPERATION_TIMEOUT, FAULT_UNKNOWN_ID};
use crate::transport::winrm::xml::{self, Element};
use crate::transport::winrm::{framing, ns};

/// One simulated host served over WinRM.
pub struct WinRmHost {
    pub dir: PathBuf,
    pub listener: TcpListener,
}

/// The largest request accepted (the service's MaxEnvelopeSizekb, 500 KiB, with room for the
/// encryption's framing).
const MAX_REQUEST: usize = 600 << 10;
/// How long a client may take to send one request's head, and its body.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// What one Receive returns at most.
const MAX_CHUNK: usize = 256 << 10;

/// A running command's output and state, shared with the tasks that read its pipes.
#[derive(Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    open_pipes: u8,
    exit: Option<i64>,
}

struct Command {
    stdin: Option<tokio::process::ChildStdin>,
    output: Arc<std::sync::Mutex<Output>>,
    changed: Arc<Notify>,
    pid: Option<u32>,
}

impl Drop for Command {
    fn drop(&mut self) {
        super::server::kill_group(self.pid);
    }
}

/// A host's shells: id → (the connection that made it, its commands). A shell goes when its
/// connection closes (the lab keeps no orphans; Windows would keep it until its idle timeout).
type Shells = Arc<Mutex<HashMap<String, Shell>>>;

struct Shell {
    owner: u64,
    commands: HashMap<String, Command>,
}

/// Serves `hosts` until `shutdown`, accepting `account` on each.
pub async fn serve(
    hosts: Vec<WinRmHost>,
    account: Arc<Identity>,
    shutdown: impl Future<Output = ()>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for host in hosts {
        let account = account.clone();
        let dir = Arc::new(host.dir);
        let shells: Shells = Arc::default();
        tasks.spawn(async move {
            loop {
                let Ok((tcp, _)) = host.listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (account, dir, shells) = (account.clone(), dir.clone(), shells.clone());
                let owner = NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    let state = Arc::new(Mutex::new(Connection {
                        owner,
                        ..Connection::default()
                    }));
                    let held = shells.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let (state, account, dir, shells) =
                            (state.clone(), account.clone(), dir.clone(), shells.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(req, &state, &account, &dir, &shells).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(REQUEST_DEADLINE)
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                    held.lock().await.retain(|_, shell| shell.owner != owner);
                });
            }
        });
    }
    shutdown.await;
    tasks.abort_all();
}

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One TCP connection's security context (connection-bound, as HTTP.sys keeps it).
#[derive(Default)]
struct Connection {
    owner: u64,
    acceptor: Option<Acceptor>,
    sealing: Option<Sealing>,
}

fn empty(status: StatusCode, negotiate: Option<String>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    r = r.header(
        "WWW-Authenticate",
        negotiate.map_or("Negotiate".to_string(), |t| format!("Negotiate {t}")),
    );
    r.header("Content-Length", "0")
        .body(Full::new(Bytes::new()))
        .expect("fixed parts")
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: &Mutex<Connection>,
    account: &Identity,
    dir: &std::path::Path,
    shells: &Shells,
) -> Response<Full<Bytes>> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let read = Limited::new(req.into_body(), MAX_REQUEST).collect();
    let body = match tokio::time::timeout(REQUEST_DEADLINE, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return empty(StatusCode::PAYLOAD_TOO_LARGE, None),
        Err(_) => return empty(StatusCode::REQUEST_TIMEOUT, None),
    };
    let body = body.to_bytes();
    let mut conn = state.lock().await;
    if let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Negotiate ")) {
        let Ok(token) = data_encoding::BASE64.decode(token.trim().as_bytes()) else {
            return empty(StatusCode::BAD_REQUEST, None);
        };
        if token.get(8) == Some(&1) {
            let acceptor = Acceptor::new(&token, random8(), ntlm::filetime_now());
            let challenge = data_encoding::BASE64.encode(acceptor.challenge());
            conn.acceptor = Some(acceptor);
            conn.sealing = None;
            return empty(StatusCode::UNAUTHORIZED, Some(challenge));
        }
        let accepted = conn.acceptor.take().map(|a| a.accept(account, &token));
        match accepted {
            Some(Ok(sealing)) => conn.sealing = Some(sealing),
            _ => return empty(StatusCode::UNAUTHORIZED, None),
        }
        if body.is_empty() {
            return Response::new(Full::new(Bytes::new()));
        }
    }
    let Some(sealing) = conn.sealing.as_mut() else {
        return empty(StatusCode::UNAUTHORIZED, None);
    };
    let Ok(framed) = framing::unframe(&body) else {
        // Unencrypted traffic is refused, as with AllowUnencrypted = false.
        return empty(StatusCode::UNAUTHORIZED, None);
    };
    let Ok(plain) = sealing.unseal(framed.signature, framed.sealed) else {
        return empty(StatusCode::BAD_REQUEST, None);
    };
    let owner = conn.owner;
    drop(conn);
    let (status, reply) = envelope_reply(&plain, owner, dir, shells).await;
    let mut conn = state.lock().await;
    let Some(sealing) = conn.sealing.as_mut() else {
        return empty(StatusCode::UNAUTHORIZED, None);
    };
    let (signature, sealed) = sealing.seal(reply.as_bytes());
    let framed = framing::frame(reply.len(), &signature, &sealed);
    Response::builder()
        .status(status)
        .header("Content-Type", framing::CONTENT_TYPE)
        .header("Content-Length", framed.len())
        .body(Full::new(Bytes::from(framed)))
        .expect("fixed parts")
}

fn random8() -> [u8; 8] {
    let mut b = [0; 8];
    b.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    b
}

struct Fault(u64, &'static str, String);

fn reply(action: &str, relates_to: &str, body: &str) -> String {
    format!(
        r#"<s:Envelope xml:lang="en-US" xmlns:s="{}" xmlns:a="{}" xmlns:x="{}" xmlns:w="{}" xmlns:rsp="{}"><s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{}</a:MessageID><a:To>{}</a:To><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        ns::SOAP,
        ns::ADDRESSING,
        ns::TRANSFER,
        ns::WSMAN,
        ns::SHELL,
        uuid::Uuid::new_v4()
            .as_hyphenated()
            .to_string()
            .to_uppercase(),
        ns::ANONYMOUS
    )
}

fn fault_reply(relates_to: &str, f: &Fault) -> String {
    let text = quick_xml::escape::escape(f.2.as_str());
    format!(
        r#"<s:Envelope xml:lang="en-US" xmlns:s="{}" xmlns:a="{}" xmlns:w="{}"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:{}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="{}" Code="{}" Machine="ecfleet-lab"><f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#,
        ns::SOAP,
        ns::ADDRESSING,
        ns::WSMAN,
        f.1,
        ns::FAULT,
        f.0
    )
}

async fn envelope_reply(
    plain: &[u8],
    owner: u64,
    dir: &std::path::Path,
    shells: &Shells,
) -> (StatusCode, String) {
    let Ok(root) = xml::parse(plain) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let header = |name: &str, ns_: &str| {
        root.child(ns::SOAP, "Header")
            .and_then(|h| h.child(ns_, name))
            .map(|e| e.trimmed_text().to_string())
            .unwrap_or_default()
    };
    let action = header("Action", ns::ADDRESSING);
    let message_id = header("MessageID", ns::ADDRESSING);
    let timeout = header("OperationTimeout", ns::WSMAN)
        .trim_start_matches("PT")
        .trim_end_matches('S')
        .parse::<f64>()
        .unwrap_or(20.0)
        .clamp(0.0, 60.0);
    let shell_id = root
        .find(ns::WSMAN, "Selector")
        .map(|s| s.trimmed_text().to_string())
        .unwrap_or_default();
    let body = root.child(ns::SOAP, "Body");
    match operate(&action, &shell_id, body, timeout, owner, dir, shells).await {
        Ok(b) => (
            StatusCode::OK,
            reply(&format!("{action}Response"), &message_id, &b),
        ),
        Err(f) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            fault_reply(&message_id, &f),
        ),
    }
}

/// `f` on the commands of the shell `shell_id`, or the fault for an unknown shell.
async fn with_shell<T>(
    shells: &Shells,
    shell_id: &str,
    f: impl FnOnce(&mut HashMap<String, Command>) -> T,
) -> Result<T, Fault> {
    let mut all = shells.lock().await;
    let shell = all.get_mut(shell_id).ok_or_else(|| unknown("shell"))?;
    Ok(f(&mut shell.commands))
}

/// `f` on the command `command_id` of the shell `shell_id`, or the fault for whichever is unknown.
async fn with_command<T>(
    shells: &Shells,
    shell_id: &str,
    command_id: &str,
    f: impl FnOnce(&mut Command) -> T,
) -> Result<T, Fault> {
    with_shell(shells, shell_id, |commands| {
        commands
            .get_mut(command_id)
            .map(f)
            .ok_or_else(|| unknown("command"))
    })
    .await?
}

fn unknown(what: &str) -> Fault {
    Fault(
        FAULT_UNKNOWN_ID,
        "InvalidSelectors",
        format!("The request contained an unknown {what}."),
    )
}

async fn operate(
    action: &str,
    shell_id: &str,
    body: Option<&Element>,
    timeout: f64,
    owner: u64,
    dir: &std::path::Path,
    shells: &Shells,
) -> Result<String, Fault> {
    let body = body.ok_or_else(|| unknown("body"))?;
    match action {
        ns::ACTION_CREATE => {
            let id = uuid::Uuid::new_v4()
                .as_hyphenated()
                .to_string()
                .to_uppercase();
            shells.lock().await.insert(
                id.clone(),
                Shell {
                    owner,
                    commands: HashMap::new(),
                },
            );
            Ok(format!(
                r#"<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>{}</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"#,
                ns::RESOURCE_CMD
            ))
        }
        ns::ACTION_DELETE => shells
            .lock()
            .await
            .remove(shell_id)
            .map(|_| String::new())
            .ok_or_else(|| unknown("shell")),
        ns::ACTION_GET => Ok(format!(
            r#"<cfg:Config xmlns:cfg="{}"><cfg:MaxEnvelopeSizekb>500</cfg:MaxEnvelopeSizekb><cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms></cfg:Config>"#,
            ns::CONFIG
        )),
        ns::ACTION_COMMAND => {
            let line = body
                .child(ns::SHELL, "CommandLine")
                .ok_or_else(|| unknown("command line"))?;
            let mut text = line
                .child(ns::SHELL, "Command")
                .map(|c| c.text.clone())
                .unwrap_or_default();
            for a in line.children_named(ns::SHELL, "Arguments") {
                text.push(' ');
                text.push_str(&a.text);
            }
            let command = start(&text, dir).map_err(|e| {
                Fault(
                    2_147_942_402,
                    "InternalError",
                    format!("cannot run the command: {e}"),
                )
            })?;
            let id = uuid::Uuid::new_v4()
                .as_hyphenated()
                .to_string()
                .to_uppercase();
            with_shell(shells, shell_id, |commands| {
                commands.insert(id.clone(), command)
            })
            .await?;
            Ok(format!(
                "<rsp:CommandResponse><rsp:CommandId>{id}</rsp:CommandId></rsp:CommandResponse>"
            ))
        }
        ns::ACTION_SEND => {
            let stream = body
                .find(ns::SHELL, "Stream")
                .ok_or_else(|| unknown("stream"))?;
            let command_id = stream.attr("CommandId").unwrap_or_default().to_string();
            let data = data_encoding::BASE64
                .decode(stream.trimmed_text().as_bytes())
                .map_err(|_| Fault(2_150_858_817, "EncodingLimit", "stdin is not base64".into()))?;
            let end = stream
                .attr("End")
                .is_some_and(|e| e.eq_ignore_ascii_case("true"));
            // Take stdin out while writing, so that a slow reader holds no lock.
            let mut stdin = with_command(shells, shell_id, &command_id, |c| c.stdin.take()).await?;
            if let Some(s) = stdin.as_mut()
                && s.write_all(&data).await.is_err()
            {
                stdin = None;
            }
            if !end && let Some(s) = stdin {
                // Gone meanwhile (signalled): nothing to give it back to.
                let _ = with_command(shells, shell_id, &command_id, |c| c.stdin = Some(s)).await;
            }
            Ok("<rsp:SendResponse/>".into())
        }
        ns::ACTION_RECEIVE => {
            let command_id = body
                .find(ns::SHELL, "DesiredStream")
                .and_then(|d| d.attr("CommandId"))
                .unwrap_or_default()
                .to_string();
            let (output, changed) = with_command(shells, shell_id, &command_id, |c| {
                (c.output.clone(), c.changed.clone())
            })
            .await?;
            receive(&command_id, &output, &changed, timeout).await
        }
        ns::ACTION_SIGNAL => {
            let command_id = body
                .child(ns::SHELL, "Signal")
                .and_then(|s| s.attr("CommandId"))
                .unwrap_or_default();
            with_shell(shells, shell_id, |commands| commands.remove(command_id))
                .await?
                .map(|_| "<rsp:SignalResponse/>".to_string())
                .ok_or_else(|| unknown("command"))
        }
        other => Err(Fault(
            2_150_858_853,
            "ActionNotSupported",
            format!("The action is not supported: {other}"),
        )),
    }
}

fn start(line: &str, dir: &std::path::Path) -> std::io::Result<Command> {
    let mut child = super::own_group(
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true),
    )
    .spawn()?;
    let output = Arc::new(std::sync::Mutex::new(Output {
        open_pipes: 2,
        ..Output::default()
    }));
    let changed = Arc::new(Notify::new());
    let pid = child.id();
    let stdin = child.stdin.take();
    for (is_err, pipe) in [
        (
            false,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            true,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let (output, changed) = (output.clone(), changed.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            if let Some(mut pipe) = pipe {
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut o = output.lock().expect("not poisoned");
                    if is_err { &mut o.stderr } else { &mut o.stdout }.extend_from_slice(&buf[..n]);
                    drop(o);
                    changed.notify_waiters();
                }
            }
            output.lock().expect("not poisoned").open_pipes -= 1;
            changed.notify_waiters();
        });
    }
    {
        let (output, changed) = (output.clone(), changed.clone());
        tokio::spawn(async move {
            let code = child
                .wait()
                .await
                .ok()
                .and_then(|s| s.code())
                .unwrap_or(255);
            output.lock().expect("not poisoned").exit = Some(i64::from(code));
            changed.notify_waiters();
        });
    }
    Ok(Command {
        stdin,
        output,
        changed,
        pid,
    })
}

async fn receive(
    command_id: &str,
    output: &std::sync::Mutex<Output>,
    changed: &Notify,
    timeout: f64,
) -> Result<String, Fault> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let notified = changed.notified();
        {
            let mut guard = output.lock().expect("not poisoned");
            let o = &mut *guard;
            let finished = o.exit.is_some() && o.open_pipes == 0;
            if !o.stdout.is_empty() || !o.stderr.is_empty() || finished {
                let mut streams = String::new();
                let mut room = MAX_CHUNK;
                for (name, buf) in [("stdout", &mut o.stdout), ("stderr", &mut o.stderr)] {
                    let take = buf.len().min(room);
                    if take > 0 {
                        let chunk: Vec<u8> = buf.drain(..take).collect();
                        room -= take;
                        streams.push_str(&format!(
                            r#"<rsp:Stream Name="{name}" CommandId="{command_id}">{}</rsp:Stream>"#,
                            data_encoding::BASE64.encode(&chunk)
                        ));
                    }
                }
                let done = finished && o.stdout.is_empty() && o.stderr.is_empty();
                let state = if done {
                    format!(
                        r#"<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream><rsp:CommandState CommandId="{command_id}" State="{}"><rsp:ExitCode>{}</rsp:ExitCode></rsp:CommandState>"#,
                        ns::STATE_DONE,
                        o.exit.unwrap_or(0)
                    )
                } else {
                    format!(
                        r#"<rsp:CommandState CommandId="{command_id}" State="{}/CommandState/Running"/>"#,
                        ns::SHELL
                    )
                };
                return Ok(format!(
                    "<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>"
                ));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(Fault(
                FAULT_OPERATION_TIMEOUT,
                "TimedOut",
                "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.".into(),
            ));
        }
    }
}
