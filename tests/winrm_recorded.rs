//! ecfleet's WS-Man envelopes and reply parsing against exchanges recorded with real Windows
//! hosts (pypsrp's recordings, MIT, in the project's shared fixtures; read from there, never
//! copied: `ECFLEET_WINRM_FIXTURES` points elsewhere). Real: Windows' own replies, with its
//! prefixes, extra elements and faults, and the requests real clients sent. Nothing stands in.

use std::path::PathBuf;
use std::time::Duration;

use ecfleet::transport::winrm::envelope::{self, Session, ShellOptions};
use ecfleet::transport::winrm::ns;
use ecfleet::transport::winrm::response::{self, Body, Operation};
use ecfleet::transport::winrm::xml::{self, Element};
use uuid::Uuid;
use yaml_rust2::YamlLoader;

fn fixtures() -> PathBuf {
    let candidates = [
        std::env::var_os("ECFLEET_WINRM_FIXTURES").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/winrm-recorded")),
        Some(PathBuf::from("/work/shared/fixtures/winrm-recorded")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("test_winrs_standard.yml").is_file())
        .expect(
            "the recorded WinRM exchanges: ../shared/fixtures/winrm-recorded next to the checkout, \
             or set ECFLEET_WINRM_FIXTURES to their folder",
        )
}

struct Message {
    request: String,
    response: String,
}

fn messages(file: &str) -> Vec<Message> {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    docs[0]["messages"]
        .as_vec()
        .unwrap_or_else(|| panic!("{file}: no messages"))
        .iter()
        .map(|m| Message {
            request: m["request"].as_str().unwrap().to_string(),
            response: m["response"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn recorded_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") && !n.starts_with('_'))
        .collect();
    files.sort();
    files
}

fn header<'a>(envelope: &'a Element, ns: &str, name: &str) -> Option<&'a Element> {
    envelope.child(ns::SOAP, "Header")?.child(ns, name)
}

fn operation(request: &Element) -> Operation {
    let action = header(request, ns::ADDRESSING, "Action")
        .unwrap()
        .trimmed_text();
    match action {
        ns::ACTION_CREATE => Operation::Create,
        ns::ACTION_COMMAND => Operation::Command,
        ns::ACTION_SEND => Operation::Send,
        ns::ACTION_RECEIVE => Operation::Receive,
        ns::ACTION_SIGNAL => Operation::Signal,
        ns::ACTION_DELETE => Operation::Delete,
        ns::ACTION_GET => Operation::GetConfig,
        other => panic!("an action the recordings were not expected to hold: {other}"),
    }
}

#[test]
fn every_recorded_reply_parses_and_relates_to_its_request() {
    let files = recorded_files();
    assert!(files.len() >= 25, "{files:?}");
    let mut replies = 0;
    for file in &files {
        for (i, m) in messages(file).iter().enumerate() {
            let request = xml::parse(m.request.as_bytes())
                .unwrap_or_else(|e| panic!("{file} #{i} request: {e}"));
            let op = operation(&request);
            let reply = response::parse(m.response.as_bytes(), op)
                .unwrap_or_else(|e| panic!("{file} #{i} {op:?}: {e}"));
            let id = header(&request, ns::ADDRESSING, "MessageID")
                .unwrap()
                .trimmed_text();
            assert_eq!(
                reply.relates_to.as_deref(),
                Some(id),
                "{file} #{i}: RelatesTo"
            );
            if let Body::Fault(f) = &reply.body {
                assert!(
                    f.code.is_some() && !f.message.is_empty(),
                    "{file} #{i}: {f:?}"
                );
            }
            replies += 1;
        }
    }
    assert!(replies > 150, "{replies}");
}

fn replies(file: &str) -> Vec<response::Reply> {
    messages(file)
        .iter()
        .map(|m| {
            let op = operation(&xml::parse(m.request.as_bytes()).unwrap());
            response::parse(m.response.as_bytes(), op).unwrap()
        })
        .collect()
}

#[test]
fn a_command_s_output_exit_code_and_ids_are_read() {
    let r = replies("test_winrs_standard.yml");
    assert_eq!(
        r[0].body,
        Body::ShellCreated {
            shell_id: "4283CBDC-3706-415B-88BD-B385F3E51A53".into()
        }
    );
    assert_eq!(
        r[1].body,
        Body::CommandStarted {
            command_id: "CF84C20A-0A35-43FA-AF78-0B4711DA5F30".into()
        }
    );
    let Body::Output(out) = &r[2].body else {
        panic!("{:?}", r[2].body)
    };
    assert_eq!(
        (out.stdout.as_slice(), out.done, out.exit_code),
        (&b"hi\r\n"[..], true, Some(0))
    );
    assert_eq!(r[3].body, Body::Done);
    assert_eq!(r[4].body, Body::Done);
}

#[test]
fn the_receive_timeout_is_a_keep_alive_and_other_faults_are_typed() {
    let timeouts: Vec<response::Fault> = replies("test_winrs_operation_timeout.yml")
        .into_iter()
        .filter_map(|r| match r.body {
            Body::Fault(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts.len(), 2);
    assert!(timeouts.iter().all(|f| f.is_operation_timeout()));
    let bad: Vec<response::Fault> = replies("test_winrs_bad_cmd_id.yml")
        .into_iter()
        .filter_map(|r| match r.body {
            Body::Fault(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].code, Some(response::FAULT_UNKNOWN_ID));
    assert!(!bad[0].is_operation_timeout());
    assert_eq!(bad[0].subcode.as_deref(), Some("w:InvalidSelectors"));
    let said = bad[0].describe();
    assert!(
        said.starts_with("WS-Man fault 2150858843 (0x8033805B): The Windows Remote Shell received"),
        "{said}"
    );
}

#[test]
fn the_envelope_quota_is_read_from_the_configuration() {
    for (file, kb) in [
        ("test_wsman_update_envelope_size_150.yml", 150),
        ("test_wsman_update_envelope_size_500.yml", 500),
        ("test_wsman_update_envelope_size_4096.yml", 4096),
    ] {
        let r = replies(file);
        let Body::Config(c) = &r[0].body else {
            panic!("{file}: {:?}", r[0].body)
        };
        assert_eq!(c.max_envelope_size_kb, Some(kb), "{file}");
    }
}

#[test]
fn output_split_across_receives_and_streams_is_put_back_together() {
    // A fetch: the file arrives base64-encoded on stdout over several Receive replies.
    let mut stdout = Vec::new();
    let mut receives = 0;
    for r in replies("test_winrs_send.yml") {
        if let Body::Output(o) = r.body {
            receives += 1;
            stdout.extend(o.stdout);
        }
    }
    assert!(receives >= 1);
    let text = String::from_utf8(stdout).unwrap();
    assert!(
        text.contains("output 1") && text.contains("output 2"),
        "{text}"
    );
}

// --- Our requests have the recorded shapes ---------------------------------------------------

/// The request as a comparable tree: the per-message values (MessageID, SessionId, To) blanked,
/// attributes in name order.
fn shape(xml_text: &str) -> Element {
    let mut root = xml::parse(xml_text.as_bytes()).unwrap();
    if let Some(h) = root.children.iter_mut().find(|c| c.is(ns::SOAP, "Header")) {
        for c in &mut h.children {
            if c.is(ns::ADDRESSING, "MessageID")
                || c.is(ns::WSMV, "SessionId")
                || c.is(ns::ADDRESSING, "To")
            {
                c.text.clear();
            }
        }
    }
    fn sort(e: &mut Element) {
        e.attrs
            .sort_by(|a, b| (&a.ns, &a.name).cmp(&(&b.ns, &b.name)));
        e.children.iter_mut().for_each(sort);
    }
    sort(&mut root);
    root
}

fn text_at<'a>(e: &'a Element, path: &[(&str, &str)]) -> &'a str {
    e.at(path).map(|x| x.text.as_str()).unwrap_or("")
}

fn selector(request: &Element) -> String {
    header(request, ns::WSMAN, "SelectorSet")
        .and_then(|s| s.child(ns::WSMAN, "Selector"))
        .map(|s| s.text.clone())
        .unwrap_or_default()
}

fn option(request: &Element, name: &str) -> Option<String> {
    header(request, ns::WSMAN, "OptionSet")?
        .children_named(ns::WSMAN, "Option")
        .find(|o| o.attr("Name") == Some(name))
        .map(|o| o.text.clone())
}

/// Builds our envelope for the same operation with the recorded request's values.
fn ours(recorded: &Element) -> Option<String> {
    let session = Session {
        to: String::new(),
        max_envelope_size: text_at(
            recorded,
            &[(ns::SOAP, "Header"), (ns::WSMAN, "MaxEnvelopeSize")],
        )
        .parse()
        .unwrap(),
        operation_timeout_secs: text_at(
            recorded,
            &[(ns::SOAP, "Header"), (ns::WSMAN, "OperationTimeout")],
        )
        .trim_start_matches("PT")
        .trim_end_matches('S')
        .parse()
        .ok()?,
        session_id: Uuid::nil(),
    };
    let id = Uuid::nil();
    let body = recorded.child(ns::SOAP, "Body").unwrap();
    let shell = selector(recorded);
    Some(match operation(recorded) {
        Operation::Create => {
            let s = body.child(ns::SHELL, "Shell")?;
            // Options we do not send (Lifetime, Name): not our shape to compare.
            if s.child(ns::SHELL, "Lifetime").is_some() || s.child(ns::SHELL, "Name").is_some() {
                return None;
            }
            let options = ShellOptions {
                codepage: option(recorded, "WINRS_CODEPAGE").and_then(|c| c.parse().ok()),
                no_profile: option(recorded, "WINRS_NOPROFILE").map(|v| v == "TRUE"),
                working_directory: s
                    .child(ns::SHELL, "WorkingDirectory")
                    .map(|d| d.text.clone()),
                environment: s
                    .child(ns::SHELL, "Environment")
                    .map(|env| {
                        env.children_named(ns::SHELL, "Variable")
                            .map(|v| (v.attr("Name").unwrap().to_string(), v.text.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                idle_timeout_secs: s.child(ns::SHELL, "IdleTimeOut").and_then(|t| {
                    t.text
                        .trim_start_matches("PT")
                        .trim_end_matches('S')
                        .parse()
                        .ok()
                }),
            };
            envelope::create_shell(&session, id, &options)
        }
        Operation::Command => {
            let line = body.child(ns::SHELL, "CommandLine")?;
            let args: Vec<&str> = line
                .children_named(ns::SHELL, "Arguments")
                .map(|a| a.text.as_str())
                .collect();
            envelope::command(
                &session,
                id,
                &shell,
                &line.child(ns::SHELL, "Command")?.text,
                &args,
                option(recorded, "WINRS_SKIP_CMD_SHELL").as_deref() == Some("True"),
            )
            .unwrap()
        }
        Operation::Send => {
            let stream = body.child(ns::SHELL, "Send")?.child(ns::SHELL, "Stream")?;
            let data = data_encoding::BASE64
                .decode(stream.text.trim().as_bytes())
                .unwrap();
            envelope::send(
                &session,
                id,
                &shell,
                stream.attr("CommandId")?,
                &data,
                stream.attr("End") == Some("True"),
            )
        }
        Operation::Receive => {
            let desired = body
                .child(ns::SHELL, "Receive")?
                .child(ns::SHELL, "DesiredStream")?;
            envelope::receive(&session, id, &shell, desired.attr("CommandId")?)
        }
        Operation::Signal => {
            let signal = body.child(ns::SHELL, "Signal")?;
            envelope::signal(
                &session,
                id,
                &shell,
                signal.attr("CommandId")?,
                &signal.child(ns::SHELL, "Code")?.text,
            )
        }
        Operation::Delete => envelope::delete(&session, id, &shell),
        Operation::GetConfig => envelope::get_config(&session, id),
    })
}

#[test]
fn our_requests_have_the_shapes_real_windows_answered() {
    let mut compared = 0;
    for file in recorded_files()
        .iter()
        .filter(|f| f.starts_with("test_winrs_") || f.starts_with("test_wsman_"))
    {
        for (i, m) in messages(file).iter().enumerate() {
            let recorded = xml::parse(m.request.as_bytes()).unwrap();
            let Some(built) = ours(&recorded) else {
                continue;
            };
            assert_eq!(
                shape(&built),
                shape(&m.request),
                "{file} #{i}:\nours:     {built}\nrecorded: {}",
                m.request
            );
            compared += 1;
        }
    }
    assert!(compared >= 50, "{compared}");
}

// --- A whole command, replayed against the recordings ------------------------------------------

use ecfleet::transport::winrm::shell::{self, Exchange, ExchangeError, Run, ShellError, Stdin};

/// Answers each request with the next recorded reply, after checking it is the same operation
/// as the recorded request; the reply's RelatesTo is made ours (as Windows would answer us).
struct Replay {
    file: String,
    script: std::collections::VecDeque<Message>,
    operations: Vec<Operation>,
}

impl Replay {
    fn of(file: &str) -> Replay {
        Replay {
            file: file.into(),
            script: messages(file).into(),
            operations: Vec::new(),
        }
    }
}

fn message_id(envelope: &str) -> String {
    let tree = xml::parse(envelope.as_bytes()).unwrap();
    header(&tree, ns::ADDRESSING, "MessageID")
        .unwrap()
        .trimmed_text()
        .to_string()
}

impl Exchange for Replay {
    async fn post(&mut self, envelope: String, op: Operation) -> Result<Vec<u8>, ExchangeError> {
        self.operations.push(op);
        let m = self
            .script
            .pop_front()
            .unwrap_or_else(|| panic!("{}: a request past the recording: {op:?}", self.file));
        let recorded = operation(&xml::parse(m.request.as_bytes()).unwrap());
        assert_eq!(op, recorded, "{}: {:?}", self.file, self.operations);
        let theirs = message_id(&m.request);
        Ok(m.response
            .replace(&theirs, &message_id(&envelope))
            .into_bytes())
    }
}

fn session() -> Session {
    Session {
        to: "http://192.168.56.11:5985/wsman".into(),
        max_envelope_size: 153_600,
        operation_timeout_secs: 20,
        session_id: Uuid::new_v4(),
    }
}

fn utf8_shell() -> ShellOptions {
    ShellOptions {
        codepage: Some(65001),
        no_profile: Some(true),
        ..ShellOptions::default()
    }
}

fn plain_run<'a>(command: &'a str, arguments: &'a [&'a str]) -> Run<'a> {
    Run {
        command,
        arguments,
        skip_cmd_shell: false,
        stdin: None,
        max_output: 1 << 20,
        envelope_quota: 150 << 10,
    }
}

#[tokio::test]
async fn a_command_runs_and_its_shell_is_deleted() {
    let mut replay = Replay::of("test_winrs_standard.yml");
    let done = shell::run(
        &mut replay,
        &session(),
        &utf8_shell(),
        &plain_run("cmd.exe", &["/c", "echo", "hi"]),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(
        (done.stdout.as_slice(), done.exit_code),
        (&b"hi\r\n"[..], Some(0))
    );
    assert_eq!(
        replay.operations,
        [
            Operation::Create,
            Operation::Command,
            Operation::Receive,
            Operation::Signal,
            Operation::Delete
        ]
    );
    assert!(replay.script.is_empty());
}

#[tokio::test]
async fn a_quiet_command_is_waited_for_through_receive_timeouts() {
    let mut replay = Replay::of("test_winrs_operation_timeout.yml");
    let done = shell::run(
        &mut replay,
        &session(),
        &utf8_shell(),
        &plain_run("powershell.exe", &["Start-Sleep", "-Seconds", "3"]),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(done.keep_alives, 2);
    assert!(done.exit_code.is_some());
    assert!(replay.script.is_empty(), "signalled and deleted");
}

#[tokio::test]
async fn a_fault_is_a_typed_error_and_the_shell_is_still_deleted() {
    let mut replay = Replay::of("test_winrs_bad_cmd_id.yml");
    let err = shell::run(
        &mut replay,
        &session(),
        &utf8_shell(),
        &plain_run("cmd.exe", &["/c", "echo", "hi"]),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    let ShellError::Fault { operation, fault } = &err else {
        panic!("{err}")
    };
    assert_eq!(*operation, Operation::Receive);
    assert_eq!(fault.code, Some(response::FAULT_UNKNOWN_ID));
    assert_eq!(
        replay.operations[3..],
        [Operation::Signal, Operation::Delete],
        "cleaned up after the fault"
    );
}

#[tokio::test]
async fn stdin_goes_in_envelope_sized_sends_and_the_last_one_ends_it() {
    let s = session();
    // A quota that gives 24-byte pieces: the recording's two Sends.
    let quota = (1000..20_000)
        .find(|q| envelope::max_send_bytes(&s, *q) == 24)
        .unwrap();
    let stdin = b"Write-Host \"output 1\";\nWrite-Host \"output 2\";";
    let mut replay = Replay::of("test_winrs_send.yml");
    let run = Run {
        stdin: Some(Stdin::Raw(stdin)),
        envelope_quota: quota,
        ..plain_run("powershell.exe", &["-"])
    };
    let done = shell::run(
        &mut replay,
        &s,
        &utf8_shell(),
        &run,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(replay.operations[2..4], [Operation::Send, Operation::Send]);
    assert!(String::from_utf8_lossy(&done.stdout).contains("output 2"));
}

/// Stands in for a host that stops answering mid-Receive (a hung HTTP request): the caller's
/// deadline ends the command, and the shell is still deleted.
struct Stuck {
    operations: Vec<Operation>,
    replies: Vec<Message>,
}

impl Exchange for Stuck {
    async fn post(&mut self, envelope: String, op: Operation) -> Result<Vec<u8>, ExchangeError> {
        self.operations.push(op);
        if op == Operation::Receive {
            std::future::pending::<()>().await;
        }
        let m = self
            .replies
            .iter()
            .find(|m| operation(&xml::parse(m.request.as_bytes()).unwrap()) == op)
            .unwrap();
        Ok(m.response
            .replace(&message_id(&m.request), &message_id(&envelope))
            .into_bytes())
    }
}

#[tokio::test(start_paused = true)]
async fn a_host_that_stops_answering_mid_receive_hits_the_deadline_and_the_shell_is_deleted() {
    let mut stuck = Stuck {
        operations: Vec::new(),
        replies: messages("test_winrs_standard.yml"),
    };
    let started = tokio::time::Instant::now();
    let err = shell::run(
        &mut stuck,
        &session(),
        &utf8_shell(),
        &plain_run("cmd.exe", &["/c", "echo", "hi"]),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert_eq!(err, ShellError::Timeout(Duration::from_secs(30)));
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(
        stuck.operations[stuck.operations.len() - 2..],
        [Operation::Signal, Operation::Delete]
    );
}

#[tokio::test]
async fn a_reply_to_another_request_is_refused() {
    struct Wrong(Vec<Message>);
    impl Exchange for Wrong {
        async fn post(&mut self, _: String, _: Operation) -> Result<Vec<u8>, ExchangeError> {
            Ok(self.0.remove(0).response.into_bytes())
        }
    }
    let err = shell::run(
        &mut Wrong(messages("test_winrs_standard.yml")),
        &session(),
        &utf8_shell(),
        &plain_run("cmd.exe", &["/c", "echo", "hi"]),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("relates to"), "{err}");
}
