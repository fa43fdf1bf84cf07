//! The SOAP envelopes ecfleet sends to a WinRM service: the WinRS shell operations (Create,
//! Command, Send, Receive, Signal, Delete) and the configuration Get that tells the envelope
//! quota. Shaped as pywinrm and pypsrp send them to real Windows hosts (the recorded exchanges
//! are the test: same elements, attributes and order). Every value is XML-escaped; command
//! lines are checked against cmd's limit before they are built.

use std::fmt::Write as _;

use quick_xml::escape::escape;
use uuid::Uuid;

use super::ns;

/// What every request of one session carries.
#[derive(Debug, Clone)]
pub struct Session {
    /// The endpoint URL (`http://host:5985/wsman`).
    pub to: String,
    /// The largest reply we accept, in bytes (`w:MaxEnvelopeSize`).
    pub max_envelope_size: u32,
    /// How long the service may hold a Receive before it answers with the timeout fault.
    pub operation_timeout_secs: u32,
    /// One per session (`p:SessionId`).
    pub session_id: Uuid,
}

/// What the shell is created with.
#[derive(Debug, Clone, Default)]
pub struct ShellOptions {
    /// `WINRS_CODEPAGE`: 65001 for UTF-8 output.
    pub codepage: Option<u32>,
    /// `WINRS_NOPROFILE`: do not load the user's profile.
    pub no_profile: Option<bool>,
    pub working_directory: Option<String>,
    pub environment: Vec<(String, String)>,
    pub idle_timeout_secs: Option<u32>,
}

/// A WS-Man option (`w:Option Name=… [MustComply="true"]`).
struct Option_<'a> {
    name: &'a str,
    value: String,
    must_comply: bool,
}

/// The longest command line cmd.exe runs (WINRM.md §1.6): longer ones fail or are cut.
pub const CMD_LINE_LIMIT: usize = 8191;
/// The longest command line CreateProcess takes (`WINRS_SKIP_CMD_SHELL`).
pub const PROCESS_LINE_LIMIT: usize = 32_767;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "the command line is {length} characters; the host runs at most {limit}: send the script over stdin"
)]
pub struct TooLong {
    pub length: usize,
    pub limit: usize,
}

fn uuid(id: Uuid) -> String {
    format!("uuid:{}", id.as_hyphenated().to_string().to_uppercase())
}

/// The envelope: headers in the order Windows clients send them, then `body` (empty: `<s:Body/>`).
fn envelope(
    s: &Session,
    message_id: Uuid,
    action: &str,
    resource_uri: &str,
    options: &[Option_<'_>],
    shell_id: Option<&str>,
    body: &str,
) -> String {
    let mut x = String::with_capacity(1500 + body.len());
    let _ = write!(
        x,
        r#"<s:Envelope xmlns:rsp="{}" xmlns:s="{}" xmlns:wsa="{}" xmlns:wsman="{}" xmlns:wsmv="{}"><s:Header>"#,
        ns::SHELL,
        ns::SOAP,
        ns::ADDRESSING,
        ns::WSMAN,
        ns::WSMV
    );
    let _ = write!(
        x,
        concat!(
            r#"<wsa:Action s:mustUnderstand="true">{action}</wsa:Action>"#,
            r#"<wsmv:DataLocale s:mustUnderstand="false" xml:lang="en-US" />"#,
            r#"<wsman:Locale s:mustUnderstand="false" xml:lang="en-US" />"#,
            r#"<wsman:MaxEnvelopeSize s:mustUnderstand="true">{max}</wsman:MaxEnvelopeSize>"#,
            r#"<wsa:MessageID>{id}</wsa:MessageID>"#,
            r#"<wsman:OperationTimeout>PT{timeout}S</wsman:OperationTimeout>"#,
            r#"<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">{anonymous}</wsa:Address></wsa:ReplyTo>"#,
            r#"<wsman:ResourceURI s:mustUnderstand="true">{resource}</wsman:ResourceURI>"#,
            r#"<wsmv:SessionId s:mustUnderstand="false">{session}</wsmv:SessionId>"#,
            r#"<wsa:To>{to}</wsa:To>"#,
        ),
        action = action,
        max = s.max_envelope_size,
        id = uuid(message_id),
        timeout = s.operation_timeout_secs,
        anonymous = ns::ANONYMOUS,
        resource = resource_uri,
        session = uuid(s.session_id),
        to = escape(s.to.as_str()),
    );
    if !options.is_empty() {
        x.push_str(r#"<wsman:OptionSet s:mustUnderstand="true">"#);
        for o in options {
            let comply = if o.must_comply {
                r#" MustComply="true""#
            } else {
                ""
            };
            let _ = write!(
                x,
                r#"<wsman:Option{comply} Name="{}">{}</wsman:Option>"#,
                o.name,
                escape(o.value.as_str())
            );
        }
        x.push_str("</wsman:OptionSet>");
    }
    if let Some(shell) = shell_id {
        let _ = write!(
            x,
            r#"<wsman:SelectorSet><wsman:Selector Name="ShellId">{}</wsman:Selector></wsman:SelectorSet>"#,
            escape(shell)
        );
    }
    x.push_str("</s:Header>");
    if body.is_empty() {
        x.push_str("<s:Body />");
    } else {
        let _ = write!(x, "<s:Body>{body}</s:Body>");
    }
    x.push_str("</s:Envelope>");
    x
}

/// Create a cmd shell with stdin, stdout and stderr.
pub fn create_shell(s: &Session, message_id: Uuid, shell: &ShellOptions) -> String {
    let mut options = Vec::new();
    if let Some(no_profile) = shell.no_profile {
        options.push(Option_ {
            name: "WINRS_NOPROFILE",
            value: if no_profile { "TRUE" } else { "FALSE" }.into(),
            must_comply: true,
        });
    }
    if let Some(codepage) = shell.codepage {
        options.push(Option_ {
            name: "WINRS_CODEPAGE",
            value: codepage.to_string(),
            must_comply: true,
        });
    }
    let mut body = String::from(
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>",
    );
    if let Some(idle) = shell.idle_timeout_secs {
        let _ = write!(body, "<rsp:IdleTimeOut>PT{idle}S</rsp:IdleTimeOut>");
    }
    if let Some(dir) = &shell.working_directory {
        let _ = write!(
            body,
            "<rsp:WorkingDirectory>{}</rsp:WorkingDirectory>",
            escape(dir.as_str())
        );
    }
    if !shell.environment.is_empty() {
        body.push_str("<rsp:Environment>");
        for (name, value) in &shell.environment {
            let _ = write!(
                body,
                r#"<rsp:Variable Name="{}">{}</rsp:Variable>"#,
                escape(name.as_str()),
                escape(value.as_str())
            );
        }
        body.push_str("</rsp:Environment>");
    }
    body.push_str("</rsp:Shell>");
    envelope(
        s,
        message_id,
        ns::ACTION_CREATE,
        ns::RESOURCE_CMD,
        &options,
        None,
        &body,
    )
}

/// Start `command` with `arguments` in the shell: through `cmd.exe /c` unless
/// `skip_cmd_shell` (then CreateProcess runs it directly, with its longer limit).
pub fn command(
    s: &Session,
    message_id: Uuid,
    shell_id: &str,
    command: &str,
    arguments: &[&str],
    skip_cmd_shell: bool,
) -> Result<String, TooLong> {
    let length = command.len() + arguments.iter().map(|a| a.len() + 1).sum::<usize>();
    let limit = if skip_cmd_shell {
        PROCESS_LINE_LIMIT
    } else {
        CMD_LINE_LIMIT
    };
    if length > limit {
        return Err(TooLong { length, limit });
    }
    let mut body = format!(
        "<rsp:CommandLine><rsp:Command>{}</rsp:Command>",
        escape(command)
    );
    for a in arguments {
        let _ = write!(body, "<rsp:Arguments>{}</rsp:Arguments>", escape(*a));
    }
    body.push_str("</rsp:CommandLine>");
    let options = [Option_ {
        name: "WINRS_SKIP_CMD_SHELL",
        value: if skip_cmd_shell { "True" } else { "False" }.into(),
        must_comply: false,
    }];
    Ok(envelope(
        s,
        message_id,
        ns::ACTION_COMMAND,
        ns::RESOURCE_CMD,
        &options,
        Some(shell_id),
        &body,
    ))
}

/// The bytes of envelope `send` adds around its data, beyond the base64 of the data itself:
/// what [`max_send_bytes`] subtracts from the quota.
fn send_overhead(s: &Session) -> usize {
    let id = "00000000-0000-0000-0000-000000000000";
    send(s, Uuid::nil(), id, id, &[], false).len()
}

/// The most raw bytes one Send may carry so that its envelope stays within the service's
/// `MaxEnvelopeSizekb` quota (`quota_bytes`), with 256 bytes of slack; base64 makes 3 bytes 4.
pub fn max_send_bytes(s: &Session, quota_bytes: usize) -> usize {
    let room = quota_bytes.saturating_sub(send_overhead(s) + 256);
    (room / 4) * 3
}

/// Send `data` to the command's stdin; `end` closes it.
pub fn send(
    s: &Session,
    message_id: Uuid,
    shell_id: &str,
    command_id: &str,
    data: &[u8],
    end: bool,
) -> String {
    let body = format!(
        r#"<rsp:Send><rsp:Stream CommandId="{}" End="{}" Name="stdin">{}</rsp:Stream></rsp:Send>"#,
        escape(command_id),
        if end { "True" } else { "False" },
        data_encoding::BASE64.encode(data)
    );
    envelope(
        s,
        message_id,
        ns::ACTION_SEND,
        ns::RESOURCE_CMD,
        &[],
        Some(shell_id),
        &body,
    )
}

/// Ask for the command's stdout and stderr (the service holds it up to OperationTimeout).
pub fn receive(s: &Session, message_id: Uuid, shell_id: &str, command_id: &str) -> String {
    let body = format!(
        r#"<rsp:Receive><rsp:DesiredStream CommandId="{}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#,
        escape(command_id)
    );
    let options = [Option_ {
        name: "WSMAN_CMDSHELL_OPTION_KEEPALIVE",
        value: "True".into(),
        must_comply: false,
    }];
    envelope(
        s,
        message_id,
        ns::ACTION_RECEIVE,
        ns::RESOURCE_CMD,
        &options,
        Some(shell_id),
        &body,
    )
}

/// Signal the command (`code`: [`ns::SIGNAL_TERMINATE`] frees it; [`ns::SIGNAL_CTRL_C`]).
pub fn signal(
    s: &Session,
    message_id: Uuid,
    shell_id: &str,
    command_id: &str,
    code: &str,
) -> String {
    let body = format!(
        r#"<rsp:Signal CommandId="{}"><rsp:Code>{}</rsp:Code></rsp:Signal>"#,
        escape(command_id),
        escape(code)
    );
    envelope(
        s,
        message_id,
        ns::ACTION_SIGNAL,
        ns::RESOURCE_CMD,
        &[],
        Some(shell_id),
        &body,
    )
}

/// Delete the shell.
pub fn delete(s: &Session, message_id: Uuid, shell_id: &str) -> String {
    envelope(
        s,
        message_id,
        ns::ACTION_DELETE,
        ns::RESOURCE_CMD,
        &[],
        Some(shell_id),
        "",
    )
}

/// Get the service's configuration (needs an administrator; its `MaxEnvelopeSizekb` sizes the
/// Sends).
pub fn get_config(s: &Session, message_id: Uuid) -> String {
    envelope(
        s,
        message_id,
        ns::ACTION_GET,
        ns::RESOURCE_CONFIG,
        &[],
        None,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            to: "http://ec01:5985/wsman".into(),
            max_envelope_size: 153_600,
            operation_timeout_secs: 20,
            session_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn a_command_line_over_the_limit_is_refused_before_it_is_built() {
        let s = session();
        let long = "x".repeat(CMD_LINE_LIMIT);
        let err = command(&s, Uuid::new_v4(), "S", "powershell.exe", &[&long], false).unwrap_err();
        assert_eq!(err.limit, CMD_LINE_LIMIT);
        assert!(command(&s, Uuid::new_v4(), "S", "powershell.exe", &[&long], true).is_ok());
    }

    #[test]
    fn values_are_escaped() {
        let s = session();
        let x = command(
            &s,
            Uuid::new_v4(),
            "S",
            "cmd.exe",
            &["/c", "echo <a&b>\""],
            false,
        )
        .unwrap();
        let tree = super::super::xml::parse(x.as_bytes()).unwrap();
        let args: Vec<&str> = tree
            .find(ns::SHELL, "CommandLine")
            .unwrap()
            .children_named(ns::SHELL, "Arguments")
            .map(|a| a.text.as_str())
            .collect();
        assert_eq!(args, ["/c", "echo <a&b>\""]);
    }

    #[test]
    fn a_full_send_stays_within_the_quota() {
        let s = session();
        for quota in [150 << 10, 500 << 10] {
            let n = max_send_bytes(&s, quota);
            let x = send(&s, Uuid::new_v4(), "S", "C", &vec![7u8; n], false);
            assert!(x.len() <= quota, "{} > {quota}", x.len());
            assert!(
                x.len() > quota - 1024,
                "room left unused: {}",
                quota - x.len()
            );
        }
    }
}
