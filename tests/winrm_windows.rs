//! Against a real Windows host: ignored unless asked for (docs/winrm.md). Point it at one with
//!
//!     ECFLEET_WINDOWS_HOST=ec1.contoso.example ECFLEET_WINDOWS_USER='CONTOSO\svc' \
//!     ECFLEET_WINDOWS_PASSWORD=… cargo test --test winrm_windows -- --ignored
//!
//! (HTTP 5985 with NTLM message encryption; `ECFLEET_WINDOWS_PORT` for another port;
//! `ECFLEET_WINDOWS_HTTPS=1` for HTTPS 5986 with NTLM and channel binding, the certificate
//! validated, or pinned with `ECFLEET_WINDOWS_CERT_SHA256`). Nothing stands in: this is the
//! check that the recordings and the test endpoints cannot give.

use std::time::Duration;

use ecfleet::transport::winrm::envelope::{Session, ShellOptions};
use ecfleet::transport::winrm::http::{Endpoint, HttpExchange};
use ecfleet::transport::winrm::ntlm::Identity;
use ecfleet::transport::winrm::shell::{self, Run, Stdin};
use ecfleet::transport::winrm::tls::{CertPolicy, Tls};

fn host() -> (HttpExchange, Session) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("set {name} (see this file's header)"))
    };
    let https = std::env::var("ECFLEET_WINDOWS_HTTPS").is_ok_and(|v| v == "1");
    let port: u16 = std::env::var("ECFLEET_WINDOWS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(if https { 5986 } else { 5985 });
    let endpoint = Endpoint {
        host: var("ECFLEET_WINDOWS_HOST"),
        port,
        https,
    };
    let session = Session {
        to: endpoint.url(),
        max_envelope_size: 153_600,
        operation_timeout_secs: 20,
        session_id: uuid::Uuid::new_v4(),
    };
    let identity = Identity::new(
        &var("ECFLEET_WINDOWS_USER"),
        &var("ECFLEET_WINDOWS_PASSWORD"),
    );
    let host = endpoint.host.clone();
    let mut exchange = HttpExchange::new(
        endpoint,
        identity.into(),
        Duration::from_secs(10),
        Duration::from_secs(30),
    );
    if https {
        let policy = match std::env::var("ECFLEET_WINDOWS_CERT_SHA256") {
            Ok(pin) => CertPolicy::Pin(pin.replace(':', "").to_ascii_lowercase()),
            Err(_) => CertPolicy::Validate,
        };
        exchange = exchange.over_tls(Tls::new(&host, policy).unwrap());
    }
    (exchange, session)
}

fn utf8() -> ShellOptions {
    ShellOptions {
        codepage: Some(65001),
        no_profile: Some(true),
        ..ShellOptions::default()
    }
}

#[tokio::test]
#[ignore = "needs a Windows host: see the file's header"]
async fn a_windows_host_runs_cmd_and_powershell_over_winrm() {
    let (mut x, session) = host();
    let run = Run {
        command: "ver",
        arguments: &[],
        skip_cmd_shell: false,
        stdin: None,
        max_output: 1 << 20,
        envelope_quota: 150 << 10,
    };
    let done = shell::run(&mut x, &session, &utf8(), &run, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.exit_code, Some(0));
    assert!(String::from_utf8_lossy(&done.stdout).contains("Windows"));
    // A PowerShell reader of stdin, as file transfers use it.
    let script = "$n=0; foreach($l in $input){ $n += $l.Length }; $n";
    let encoded: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let line = format!(
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand {}",
        data_encoding::BASE64.encode(&encoded)
    );
    let stdin = b"abc\r\ndefg\r\n";
    let run = Run {
        command: &line,
        stdin: Some(Stdin::Raw(stdin)),
        ..run
    };
    let done = shell::run(&mut x, &session, &utf8(), &run, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), "7");
}
