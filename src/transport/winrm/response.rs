//! What a WinRM service answers, read by namespace (whatever prefixes it uses) into typed
//! replies: the shell's id, the command's id, output (stdout and stderr decoded from base64,
//! however many chunks; the command's state and exit code), the configuration's quotas, or a
//! typed [`Fault`] with its WS-Man code and message. Everything in a reply is data from an
//! untrusted host: sizes are capped by the caller, text is shown escaped by the reports.

use super::ns;
use super::xml::{self, Element};

/// The operation a reply answers (what to look for in its body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Command,
    Send,
    Receive,
    Signal,
    Delete,
    GetConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `a:Action` of the reply.
    pub action: Option<String>,
    /// `a:RelatesTo`: the request's MessageID.
    pub relates_to: Option<String>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    ShellCreated {
        shell_id: String,
    },
    CommandStarted {
        command_id: String,
    },
    Output(Output),
    /// Send, Signal and Delete answer with nothing we need.
    Done,
    Config(Config),
    Fault(Fault),
}

/// One Receive's worth of a command's output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The command has ended (`CommandState/Done`).
    pub done: bool,
    /// Its exit code, once done (as Windows prints it: may exceed i32 for NTSTATUS codes).
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub max_envelope_size_kb: Option<u32>,
    pub max_timeout_ms: Option<u64>,
}

/// A SOAP fault from the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    /// `f:WSManFault/@Code`: a Win32 or WS-Man error number.
    pub code: Option<u64>,
    /// `s:Subcode/s:Value`, e.g. `w:TimedOut`.
    pub subcode: Option<String>,
    /// `s:Reason/s:Text`.
    pub reason: String,
    /// `f:Message` (with any provider fault's text).
    pub message: String,
    pub machine: Option<String>,
}

/// Receive produced nothing within OperationTimeout: ask again (a keep-alive, not an error).
pub const FAULT_OPERATION_TIMEOUT: u64 = 2_150_858_793;
/// The shell or command id is unknown (the shell expired, or the service restarted).
pub const FAULT_UNKNOWN_ID: u64 = 2_150_858_843;
/// The command line is too long for cmd.exe.
pub const FAULT_LINE_TOO_LONG: u64 = 2_147_942_606;
/// A quota was exceeded (shells per user, concurrent operations, memory per shell).
pub const FAULT_QUOTA: u64 = 2_150_859_174;

impl Fault {
    pub fn is_operation_timeout(&self) -> bool {
        self.code == Some(FAULT_OPERATION_TIMEOUT)
            || (self.code.is_none()
                && self
                    .subcode
                    .as_deref()
                    .is_some_and(|s| s.ends_with(":TimedOut")))
    }

    /// One line for an error message: code and the service's words.
    pub fn describe(&self) -> String {
        let text = if self.message.trim().is_empty() {
            self.reason.trim()
        } else {
            self.message.trim()
        };
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match self.code {
            Some(code) => format!("WS-Man fault {code} (0x{code:08X}): {text}"),
            None => format!(
                "WS-Man fault {}: {text}",
                self.subcode.as_deref().unwrap_or("without a code")
            ),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplyError {
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    #[error("the reply is not a SOAP envelope with a body")]
    NotAnEnvelope,
    #[error("the {0:?} reply lacks {1}")]
    Missing(Operation, &'static str),
    #[error("the {0:?} reply holds {1}")]
    Invalid(Operation, String),
}

/// Reads the reply to `operation`.
pub fn parse(bytes: &[u8], operation: Operation) -> Result<Reply, ReplyError> {
    let root = xml::parse(bytes)?;
    if !root.is(ns::SOAP, "Envelope") {
        return Err(ReplyError::NotAnEnvelope);
    }
    let header = root.child(ns::SOAP, "Header");
    let text_of = |name: &str| {
        header
            .and_then(|h| h.child(ns::ADDRESSING, name))
            .map(|e| e.trimmed_text().to_string())
    };
    let body = root
        .child(ns::SOAP, "Body")
        .ok_or(ReplyError::NotAnEnvelope)?;
    let body = match body.child(ns::SOAP, "Fault") {
        Some(fault) => Body::Fault(read_fault(fault)),
        None => read_body(body, operation)?,
    };
    Ok(Reply {
        action: text_of("Action"),
        relates_to: text_of("RelatesTo"),
        body,
    })
}

fn read_body(body: &Element, op: Operation) -> Result<Body, ReplyError> {
    match op {
        Operation::Create => {
            // The selector is in every version's reply; newer ones add rsp:Shell/rsp:ShellId.
            let selector = body
                .find(ns::WSMAN, "SelectorSet")
                .and_then(|set| {
                    set.children_named(ns::WSMAN, "Selector")
                        .find(|s| s.attr("Name") == Some("ShellId"))
                })
                .map(|s| s.trimmed_text().to_string())
                .or_else(|| {
                    body.find(ns::SHELL, "ShellId")
                        .map(|s| s.trimmed_text().to_string())
                });
            let shell_id = selector
                .filter(|s| !s.is_empty())
                .ok_or(ReplyError::Missing(op, "a ShellId"))?;
            Ok(Body::ShellCreated { shell_id })
        }
        Operation::Command => {
            let command_id = body
                .find(ns::SHELL, "CommandId")
                .map(|c| c.trimmed_text().to_string())
                .filter(|c| !c.is_empty())
                .ok_or(ReplyError::Missing(op, "a CommandId"))?;
            Ok(Body::CommandStarted { command_id })
        }
        Operation::Receive => read_receive(body).map(Body::Output),
        Operation::GetConfig => {
            let config = body
                .find(ns::CONFIG, "Config")
                .ok_or(ReplyError::Missing(op, "cfg:Config"))?;
            let number = |name: &str| {
                config
                    .child(ns::CONFIG, name)
                    .and_then(|e| e.trimmed_text().parse::<u64>().ok())
            };
            Ok(Body::Config(Config {
                max_envelope_size_kb: number("MaxEnvelopeSizekb")
                    .and_then(|n| u32::try_from(n).ok()),
                max_timeout_ms: number("MaxTimeoutms"),
            }))
        }
        Operation::Send | Operation::Signal | Operation::Delete => Ok(Body::Done),
    }
}

fn read_receive(body: &Element) -> Result<Output, ReplyError> {
    let op = Operation::Receive;
    let response = body
        .child(ns::SHELL, "ReceiveResponse")
        .ok_or(ReplyError::Missing(op, "rsp:ReceiveResponse"))?;
    let mut out = Output::default();
    for stream in response.children_named(ns::SHELL, "Stream") {
        let text: String = stream.text.split_whitespace().collect();
        if text.is_empty() {
            continue;
        }
        let bytes = data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|e| ReplyError::Invalid(op, format!("a stream that is not base64 ({e})")))?;
        match stream.attr("Name") {
            Some("stdout") => out.stdout.extend_from_slice(&bytes),
            Some("stderr") => out.stderr.extend_from_slice(&bytes),
            _ => {}
        }
    }
    if let Some(state) = response.child(ns::SHELL, "CommandState") {
        out.done = state.attr("State").is_some_and(|s| s.ends_with("/Done"));
        if let Some(code) = state.child(ns::SHELL, "ExitCode") {
            let text = code.trimmed_text();
            out.exit_code = Some(text.parse::<i64>().map_err(|_| {
                ReplyError::Invalid(op, format!("an exit code that is not a number: {text:?}"))
            })?);
        }
    }
    Ok(out)
}

fn all_text(el: &Element, into: &mut String) {
    into.push_str(&el.text);
    for c in &el.children {
        into.push(' ');
        all_text(c, into);
    }
}

fn read_fault(fault: &Element) -> Fault {
    let value = |path: &[(&str, &str)]| fault.at(path).map(|e| e.trimmed_text().to_string());
    let detail = fault.find(ns::FAULT, "WSManFault");
    let mut message = String::new();
    if let Some(m) = detail.and_then(|d| d.child(ns::FAULT, "Message")) {
        all_text(m, &mut message);
    }
    Fault {
        code: detail
            .and_then(|d| d.attr("Code"))
            .and_then(|c| c.trim().parse().ok()),
        subcode: value(&[
            (ns::SOAP, "Code"),
            (ns::SOAP, "Subcode"),
            (ns::SOAP, "Value"),
        ]),
        reason: value(&[(ns::SOAP, "Reason"), (ns::SOAP, "Text")]).unwrap_or_default(),
        message: message.trim().to_string(),
        machine: detail.and_then(|d| d.attr("Machine")).map(str::to_string),
    }
}
