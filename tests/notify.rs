//! Messages when the night ends (issue 19 §2; docs/notify.md), against real parts: a lab upgrade
//! night run by the real binary, and webhook receivers on loopback (plain HTTP/1.1 servers
//! written here) that record what they are sent: one that takes everything, one that answers
//! 429 with Retry-After, one that never answers. Stands in: Teams' and Slack's services (their
//! payload shapes are checked as Microsoft's and Slack's documentation give them).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ecfleet, json_of};

/// What a receiver got: the path and the JSON body, and when.
#[derive(Clone)]
struct Received {
    path: String,
    body: serde_json::Value,
    at: Instant,
}

/// A webhook receiver on loopback: `/ok/…` answers 202, `/busy/…` 429 with `Retry-After: 1`,
/// `/hang/…` reads the request and never answers.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve(stream, &record));
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn at(&self, prefix: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

fn serve(stream: TcpStream, record: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    record.lock().unwrap().push(Received {
        path: path.clone(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        at: Instant::now(),
    });
    let mut stream = stream;
    let answer = if path.starts_with("/hang") {
        std::thread::sleep(Duration::from_secs(60));
        return;
    } else if path.starts_with("/busy") {
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    } else {
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    };
    let _ = stream.write_all(answer.as_bytes());
}

/// The lab's inventory with `[notify]` for the fleet (Teams and Slack that take it, a webhook
/// that hangs, 3 s deadline) and for tenant02 (a webhook that answers 429), its contacts set.
fn with_notify(text: &str) -> String {
    let tenant02 = "name = \"tenant02\"\n";
    assert!(text.contains(tenant02), "{text}");
    let text = text.replace(
        tenant02,
        "name = \"tenant02\"\ncontacts = [\"ops@tenant02.example\"]\nnotify = { webhook = { env = \"NOTIFY_BUSY\" } }\n",
    );
    format!(
        "{text}\n[notify]\nteams = {{ env = \"NOTIFY_TEAMS\" }}\nslack = {{ env = \"NOTIFY_SLACK\" }}\nwebhook = {{ env = \"NOTIFY_HANG\" }}\ntimeout = 3\n"
    )
}

#[test]
fn a_night_tells_teams_slack_and_webhooks_and_a_stuck_one_costs_only_its_deadline() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab = common::winrm::lab_up(&lab_dir, 3, 0, &[]);
    let inventory = lab_dir.join("notify.toml");
    let text = std::fs::read_to_string(lab_dir.join("inventory.toml")).unwrap();
    std::fs::write(&inventory, with_notify(&text)).unwrap();
    let secret = "SECRET-TOKEN-7f3a";
    let fleet = |args: &[&str]| {
        ecfleet()
            .args(args)
            .arg("--agent-dir")
            .arg(common::agent_dir())
            .arg("-i")
            .arg(&inventory)
            .env("NOTIFY_TEAMS", receiver.url(&format!("/ok/teams/{secret}")))
            .env("NOTIFY_SLACK", receiver.url(&format!("/ok/slack/{secret}")))
            .env("NOTIFY_HANG", receiver.url(&format!("/hang/{secret}")))
            .env("NOTIFY_BUSY", receiver.url(&format!("/busy/{secret}")))
            .output()
            .unwrap()
    };
    let out = ecfleet()
        .args(["inventory", "check", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = common::plan_and_run(dir.path(), &lab_dir, &fleet, &[]);
    let ended = Instant::now();
    drop(lab);
    let (run, stderr) = json_of(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stderr.contains(secret) && !stdout.contains(secret),
        "a webhook URL shown: {stderr}"
    );

    // Teams: an Adaptive Card in a message, as the Workflows webhook takes it.
    let teams = receiver.at("/ok/teams");
    assert_eq!(teams.len(), 1, "{stderr}");
    let card = &teams[0].body;
    assert_eq!(card["type"], "message");
    let attachment = &card["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert_eq!(attachment["content"]["version"], "1.4");
    let body = attachment["content"]["body"].as_array().unwrap();
    assert!(
        body[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Entra Connect upgrade night finished"),
        "{card:#}"
    );
    let verified = run["summary"]["verified"].as_u64().unwrap();
    assert!(
        body.iter().any(|b| b["type"] == "FactSet"
            && b["facts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["title"] == "Verified"
                    && f["value"].as_str() == Some(verified.to_string().as_str()))),
        "{card:#}"
    );

    // Slack: blocks with a header, and the fallback text.
    let slack = receiver.at("/ok/slack");
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0].body["blocks"][0]["type"], "header");
    assert_eq!(slack[0].body["text"], body[0]["text"]);

    // The tenant's own channel: only its servers, its contacts; 429 tried again, then given up.
    let busy = receiver.at("/busy");
    assert_eq!(busy.len(), 3, "three tries: {stderr}");
    let message = &busy[0].body;
    assert_eq!(message["event"], "run-finished");
    assert_eq!(message["tenant"], "tenant02");
    assert_eq!(
        message["contacts"],
        serde_json::json!(["ops@tenant02.example"])
    );
    assert!(message["title"].as_str().unwrap().contains("for tenant02"));
    assert!(
        busy[1].at.duration_since(busy[0].at) >= Duration::from_millis(900),
        "Retry-After honoured"
    );

    // The hanging one: its 3 s deadline, not longer; all channels went at once.
    let hang = receiver.at("/hang");
    assert_eq!(hang.len(), 1);
    let waited = ended.duration_since(hang[0].at);
    assert!(
        waited < Duration::from_secs(5),
        "the stuck webhook held the run {waited:?}"
    );
    assert!(
        stderr.contains("notified: teams (environment variable NOTIFY_TEAMS): sent (HTTP 202)"),
        "{stderr}"
    );
    assert!(stderr.contains("warning: notification not delivered: webhook (environment variable NOTIFY_HANG): no answer within 3 s"), "{stderr}");
    assert!(stderr.contains("warning: notification not delivered: webhook of tenant tenant02 (environment variable NOTIFY_BUSY): HTTP 429 after 3 tries"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "a failed notification never fails the run: {stderr}"
    );

    // The ledger keeps what was delivered and what was not.
    let ledger = std::path::Path::new(run["ledger"].as_str().unwrap());
    let ledger = if ledger.is_absolute() {
        ledger.to_path_buf()
    } else {
        lab_dir.join("share").join(ledger)
    };
    let record: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(ledger.join("notifications.json"))
            .unwrap_or_else(|e| panic!("{e}: {}", ledger.display())),
    )
    .unwrap();
    assert_eq!(record.len(), 4);
    assert_eq!(record.iter().filter(|d| d["delivered"] == true).count(), 2);
    assert!(!serde_json::to_string(&record).unwrap().contains(secret));

    // The morning after, the two that failed are sent again, and only those.
    let report = |hang: &str, busy: &str| {
        ecfleet()
            .args(["report", "latest", "--notify", "--format", "json", "-i"])
            .arg(&inventory)
            .env("NOTIFY_TEAMS", receiver.url("/ok/teams-again"))
            .env("NOTIFY_SLACK", receiver.url("/ok/slack-again"))
            .env("NOTIFY_HANG", receiver.url(hang))
            .env("NOTIFY_BUSY", receiver.url(busy))
            .output()
            .unwrap()
    };
    let out = report("/ok/hook-again", "/ok/tenant-again");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(receiver.at("/ok/hook-again").len(), 1, "{said}");
    let tenant_again = receiver.at("/ok/tenant-again");
    assert_eq!(tenant_again.len(), 1, "{said}");
    assert_eq!(tenant_again[0].body["tenant"], "tenant02");
    assert!(receiver.at("/ok/teams-again").is_empty() && receiver.at("/ok/slack-again").is_empty());
    let record: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(ledger.join("notifications.json")).unwrap()).unwrap();
    assert_eq!(record.len(), 6);
    let out = report("/ok/hook-third", "/ok/tenant-third");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to send again"));
    assert!(receiver.at("/ok/hook-third").is_empty());
}

#[test]
fn an_audit_tells_of_a_server_that_became_unsupported_since_the_last_snapshot() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let _lab = common::winrm::lab_up(&lab_dir, 3, 0, &[]);
    let inventory = lab_dir.join("notify.toml");
    let text = std::fs::read_to_string(lab_dir.join("inventory.toml")).unwrap();
    std::fs::write(
        &inventory,
        format!("{text}\n[notify]\nwebhook = {{ env = \"NOTIFY_HOOK\" }}\n"),
    )
    .unwrap();
    let audit = |as_of: &str| {
        ecfleet()
            .args(["audit", "--as-of", as_of, "--agent-dir"])
            .arg(common::agent_dir())
            .arg("-i")
            .arg(&inventory)
            .env("NOTIFY_HOOK", receiver.url("/ok/hook"))
            .output()
            .unwrap()
    };
    // The first audit has nothing to compare with: no message.
    let out = audit("2026-11-24");
    assert!(out.status.code().is_some_and(|c| c <= 1));
    assert!(receiver.at("/ok/hook").is_empty());
    // The same audit again: nothing new, no message.
    audit("2026-11-24");
    assert!(receiver.at("/ok/hook").is_empty());
    // Past the end of t02-behind's build (2027-09-16): new and critical.
    let out = audit("2027-10-01");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let got = receiver.at("/ok/hook");
    assert_eq!(got.len(), 1, "{stderr}");
    let m = &got[0].body;
    assert_eq!(m["event"], "audit-new-findings");
    assert!(
        m["title"]
            .as_str()
            .unwrap()
            .starts_with("Entra Connect audit: new critical findings"),
        "{m:#}"
    );
    let hosts: Vec<&str> = m["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert!(hosts.contains(&"t02-behind"), "{m:#}");
    assert!(!hosts.contains(&"t01-current"), "{m:#}");
    assert!(stderr.contains("notified: webhook"), "{stderr}");
}

/// An operator hand-off that waits longer than the tenant's `handoff_after` is told about once,
/// on the tenant's channel, naming the server and its contacts; a hand-off that ends sooner is
/// not (its timer is cancelled). The message is said in the run's output and kept in the
/// ledger; it does not count as the night's message for `report --notify`.
#[test]
fn a_hand_off_that_waits_too_long_is_told_about_and_a_quick_one_is_not() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab = common::winrm::lab_up(&lab_dir, 3, 0, &[]);
    // The operator starts on t02-behind 20 real seconds after the hand-off (the lab's clock
    // runs 120 times faster); on t02-staging after one second, as the lab's operator does.
    let machine = lab_dir.join("hosts/t02-behind/machine.toml");
    let text = std::fs::read_to_string(&machine).unwrap();
    assert!(text.contains("delay_seconds = 120"), "{text}");
    std::fs::write(
        &machine,
        text.replacen("delay_seconds = 120", "delay_seconds = 2400", 1),
    )
    .unwrap();
    // tenant02's channel hears of hand-offs waiting more than 9 seconds (0.15 minutes).
    let inventory = lab_dir.join("notify.toml");
    let text = std::fs::read_to_string(lab_dir.join("inventory.toml")).unwrap();
    let text = text.replace(
        "name = \"tenant02\"\n",
        "name = \"tenant02\"\ncontacts = [\"ops@tenant02.example\"]\nnotify = { webhook = { env = \"NOTIFY_TENANT\" }, handoff_after = 0.15 }\n",
    );
    std::fs::write(&inventory, text).unwrap();
    let fleet = |args: &[&str]| {
        ecfleet()
            .args(args)
            .arg("--agent-dir")
            .arg(common::agent_dir())
            .arg("-i")
            .arg(&inventory)
            .env("NOTIFY_TENANT", receiver.url("/ok/tenant02"))
            .output()
            .unwrap()
    };
    let out = common::plan_and_run(dir.path(), &lab_dir, &fleet, &[]);
    drop(lab);
    let (run, stderr) = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for host in ["t02-staging", "t02-behind"] {
        let h = run["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap();
        assert_eq!(h["outcome"], "verified", "{h:#}");
    }

    let got = receiver.at("/ok/tenant02");
    let waiting: Vec<&Received> = got
        .iter()
        .filter(|r| r.body["event"] == "handoff-waiting")
        .collect();
    assert_eq!(waiting.len(), 1, "one hand-off waited too long: {stderr}");
    let message = &waiting[0].body;
    assert_eq!(message["tenant"], "tenant02");
    assert_eq!(
        message["title"],
        "t02-behind (tenant02): the upgrade has waited 9 s for the operator"
    );
    assert_eq!(message["hosts"][0]["host"], "t02-behind");
    assert_eq!(
        message["contacts"],
        serde_json::json!(["ops@tenant02.example"])
    );
    assert!(
        stderr.contains(
            "notified: webhook of tenant tenant02 (environment variable NOTIFY_TENANT): sent (HTTP 202)"
        ),
        "{stderr}"
    );
    // The night's own message came too, after it.
    let ended: Vec<&Received> = got
        .iter()
        .filter(|r| r.body["event"] == "run-finished")
        .collect();
    assert_eq!(ended.len(), 1, "{stderr}");
    assert!(ended[0].at > waiting[0].at);

    // The ledger has both; `report --notify` finds nothing of the night's left to send.
    let ledger = lab_dir.join("share").join(run["ledger"].as_str().unwrap());
    let record: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(ledger.join("notifications.json")).unwrap()).unwrap();
    let events: Vec<&str> = record
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["handoff-waiting", "run-finished"], "{record:#?}");
    let out = ecfleet()
        .args(["report", "latest", "--notify", "-i"])
        .arg(&inventory)
        .env("NOTIFY_TENANT", receiver.url("/ok/again"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to send again"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(receiver.at("/ok/again").is_empty());
}
