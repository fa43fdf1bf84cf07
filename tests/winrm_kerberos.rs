//! Kerberos for WinRM against real parts: an MIT Kerberos KDC from Debian's packages on
//! loopback (its own realm and database, tests/common/kdc.rs) and the project's WinRM test
//! endpoint accepting Kerberos through pyspnego and Debian's python3-gssapi (MIT's GSS-API),
//! with a keytab for `HTTP/<name>`, message encryption, and NTLM refused where a hardened host
//! refuses it. Stands in: Windows and Active Directory (MIT plays the KDC).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ecfleet::error::ErrorKind;
use ecfleet::transport::winrm::envelope::{Session, ShellOptions};
use ecfleet::transport::winrm::http::{Credentials, Endpoint, HttpExchange};
use ecfleet::transport::winrm::kerberos::Login;
use ecfleet::transport::winrm::shell::{self, Run, ShellError};

mod common;

use common::kdc::{Kdc, REALM};
use common::winrm::{PASSWORD, Service, USER, kerberos_python, service_by};

/// The name the endpoint plays (its SPN is `HTTP/<NAME>`).
const NAME: &str = "ec1.ecfleet.test";

/// An endpoint taking Kerberos for `HTTP/<name>` (a keytab from `kdc`); `refuse_ntlm` plays a
/// host hardened against NTLM. Every completed login is logged to the returned file.
fn kerberos_endpoint(kdc: &Kdc, name: &str, refuse_ntlm: bool) -> (Service, std::path::PathBuf) {
    let keytab = kdc.add_service(name);
    let log = kdc.dir.path().join(format!("{name}.auth.log"));
    let mut python = Command::new(kerberos_python());
    python.env("KRB5_CONFIG", kdc.krb5_conf());
    let mut args = vec![
        "--keytab".to_string(),
        keytab.display().to_string(),
        "--auth-log".to_string(),
        log.display().to_string(),
    ];
    if refuse_ntlm {
        args.push("--refuse-ntlm".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (service_by(python, &args), log)
}

fn login(kdc: &Kdc, password: &str, spn: &str) -> Login {
    Login {
        user: USER.into(),
        password: password.into(),
        realm: REALM.into(),
        kdc: ("127.0.0.1".into(), kdc.port),
        spn: spn.into(),
    }
}

fn exchange(port: u16, credentials: Credentials) -> HttpExchange {
    HttpExchange::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            https: false,
        },
        credentials,
        Duration::from_secs(5),
        Duration::from_secs(8),
    )
}

fn session(port: u16) -> Session {
    Session {
        to: format!("http://127.0.0.1:{port}/wsman"),
        max_envelope_size: 153_600,
        operation_timeout_secs: 5,
        session_id: uuid::Uuid::new_v4(),
    }
}

/// `echo TEXT` run through `exchange`: its stdout, or the kind of its failure (with the message).
async fn echo(
    exchange: &mut HttpExchange,
    port: u16,
    text: &str,
) -> Result<String, (ErrorKind, String)> {
    let line = ["/bin/echo", text];
    let run = Run {
        command: line[0],
        arguments: &line[1..],
        skip_cmd_shell: false,
        stdin: None,
        max_output: 1 << 20,
        envelope_quota: 150 << 10,
    };
    match shell::run(
        exchange,
        &session(port),
        &ShellOptions::default(),
        &run,
        Duration::from_secs(10),
    )
    .await
    {
        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(ShellError::Exchange(e)) => Err((e.kind, e.message)),
        Err(e) => Err((ErrorKind::Protocol, e.to_string())),
    }
}

fn logins(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_logs_in_where_ntlm_is_refused_and_seals_every_message() {
    let kdc = Kdc::start(None);
    kdc.add_user(USER, PASSWORD);
    let (endpoint, log) = kerberos_endpoint(&kdc, NAME, true);

    let mut kerberos = exchange(
        endpoint.port,
        Credentials::Kerberos {
            login: login(&kdc, PASSWORD, &format!("HTTP/{NAME}")),
            ntlm: None,
        },
    );
    let said = echo(&mut kerberos, endpoint.port, "sealed both ways").await;
    assert_eq!(said, Ok("sealed both ways\n".to_string()));
    assert_eq!(logins(&log), vec![format!("kerberos {USER}@{REALM}")]);

    // The same host refuses NTLM: the refusal the test relies on is real.
    let mut ntlm = exchange(
        endpoint.port,
        ecfleet::transport::winrm::ntlm::Identity::new(USER, PASSWORD).into(),
    );
    let refused = echo(&mut ntlm, endpoint.port, "x").await;
    assert_eq!(refused.map_err(|e| e.0), Err(ErrorKind::Auth));
}
