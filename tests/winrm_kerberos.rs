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
use ecfleet::transport::winrm::kerberos::{Login, LoginSecret};
use ecfleet::transport::winrm::shell::{self, Run, ShellError};

mod common;

use common::kdc::{Kdc, REALM};
use common::winrm::{PASSWORD, Service, USER, kerberos_python, service_by};

/// The name the endpoint plays (its SPN is `HTTP/<NAME>`).
const NAME: &str = "ec1.ecfleet.test";

/// An endpoint taking Kerberos for `HTTP/<name>` (a keytab from `kdc`); `refuse_ntlm` plays a
/// host hardened against NTLM. Every completed login is logged to the returned file.
fn kerberos_endpoint(kdc: &Kdc, name: &str, refuse_ntlm: bool) -> (Service, std::path::PathBuf) {
    kerberos_endpoint_at(kdc, name, refuse_ntlm, None)
}

/// [`kerberos_endpoint`] whose clock is `ahead` (libfaketime, e.g. `+10m`).
fn kerberos_endpoint_at(
    kdc: &Kdc,
    name: &str,
    refuse_ntlm: bool,
    ahead: Option<&str>,
) -> (Service, std::path::PathBuf) {
    let keytab = kdc.add_service(name);
    let log = kdc.dir.path().join(format!("{name}.auth.log"));
    let mut python = Command::new(kerberos_python());
    if let Some(offset) = ahead {
        common::kdc::clock_ahead(&mut python, offset);
    }
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
        secret: LoginSecret::Password(password.into()),
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

/// A Kerberos-only login to `endpoint` (NTLM never tried): the failure's kind and message.
async fn kerberos_failure(port: u16, login: Login) -> (ErrorKind, String) {
    let mut x = exchange(port, Credentials::Kerberos { login, ntlm: None });
    let started = std::time::Instant::now();
    let failed = echo(&mut x, port, "x")
        .await
        .expect_err("the login must fail");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "within the 5 s connect deadline: {:?}",
        started.elapsed()
    );
    assert!(!failed.1.contains(PASSWORD), "{}", failed.1);
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kerberos_failure_says_what_failed_and_what_to_do() {
    let kdc = Kdc::start(None);
    kdc.add_user(USER, PASSWORD);
    let (endpoint, _) = kerberos_endpoint(&kdc, NAME, true);
    let spn = format!("HTTP/{NAME}");
    let cases = [
        (
            login(&kdc, "not-the-password", &spn),
            ErrorKind::Auth,
            "refused the password of ECFLEET.TEST\\fleet (KDC_ERR_PREAUTH_FAILED)",
        ),
        (
            Login {
                user: "nobody".into(),
                ..login(&kdc, PASSWORD, &spn)
            },
            ErrorKind::Auth,
            "does not know the user ECFLEET.TEST\\nobody (KDC_ERR_C_PRINCIPAL_UNKNOWN)",
        ),
        (
            login(&kdc, PASSWORD, "HTTP/ec9.ecfleet.test"),
            ErrorKind::Auth,
            "knows no service principal HTTP/ec9.ecfleet.test (KDC_ERR_S_PRINCIPAL_UNKNOWN): the SPN is wrong",
        ),
    ];
    for (login, kind, says) in cases {
        let (got, message) = kerberos_failure(endpoint.port, login).await;
        assert_eq!(got, kind, "{message}");
        assert!(message.contains(says), "{message}");
    }

    // A KDC that takes the connection and never answers: the host's deadline, said as such.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (got, message) = kerberos_failure(
        endpoint.port,
        Login {
            kdc: ("127.0.0.1".into(), silent.local_addr().unwrap().port()),
            ..login(&kdc, PASSWORD, &spn)
        },
    )
    .await;
    assert_eq!(got, ErrorKind::Unreachable, "{message}");
    assert!(
        message.contains("no answer from the KDC 127.0.0.1:"),
        "{message}"
    );
}

/// This machine's clock 10 minutes behind the domain's (the KDC and the host agree): the KDC
/// answers the pre-authentication with KRB_AP_ERR_SKEW and its own time, and the client retries
/// with that time, as Windows' Kerberos client does (sspi follows it) — the login succeeds. A
/// host whose clock differs from its KDC's refuses the ticket, and the error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_clock_ten_minutes_off_is_corrected_and_a_skewed_host_is_named() {
    let kdc = Kdc::start(Some("+10m"));
    kdc.add_user(USER, PASSWORD);
    let (in_step, log) = kerberos_endpoint_at(&kdc, NAME, true, Some("+10m"));
    let mut x = exchange(
        in_step.port,
        Credentials::Kerberos {
            login: login(&kdc, PASSWORD, &format!("HTTP/{NAME}")),
            ntlm: None,
        },
    );
    assert_eq!(
        echo(&mut x, in_step.port, "on time").await,
        Ok("on time\n".to_string())
    );
    assert_eq!(logins(&log), vec![format!("kerberos {USER}@{REALM}")]);
    let kdc_log = std::fs::read_to_string(kdc.dir.path().join("kdc.log")).unwrap_or_default();
    assert!(kdc_log.contains("Clock skew too great"), "{kdc_log}");

    // A host on this machine's time, its KDC 10 minutes ahead: the ticket is not yet valid there.
    let (behind, _) = kerberos_endpoint_at(&kdc, "ec2.ecfleet.test", true, None);
    let (got, message) =
        kerberos_failure(behind.port, login(&kdc, PASSWORD, "HTTP/ec2.ecfleet.test")).await;
    assert_eq!(got, ErrorKind::Auth, "{message}");
    assert!(
        message.contains("refused the Kerberos ticket") && message.contains("clock"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_uses_ntlm_where_the_host_has_no_kerberos_and_kerberos_alone_does_not() {
    let kdc = Kdc::start(None);
    kdc.add_user(USER, PASSWORD);
    // A host that takes NTLM only (no keytab: pyspnego without Kerberos).
    let ntlm_host = common::winrm::service(&[]);
    kdc.add_service("ntlm-only.ecfleet.test");
    let spn = "HTTP/ntlm-only.ecfleet.test";
    let mut negotiate = exchange(
        ntlm_host.port,
        Credentials::Kerberos {
            login: login(&kdc, PASSWORD, spn),
            ntlm: Some(ecfleet::transport::winrm::ntlm::Identity::new(
                USER, PASSWORD,
            )),
        },
    );
    assert_eq!(
        echo(&mut negotiate, ntlm_host.port, "by NTLM").await,
        Ok("by NTLM\n".to_string())
    );
    let (got, message) = kerberos_failure(ntlm_host.port, login(&kdc, PASSWORD, spn)).await;
    assert_eq!(got, ErrorKind::Auth, "{message}");
    assert!(message.contains("refused the Kerberos ticket"), "{message}");
}

/// Kerberos over HTTPS: a host at CbtHardeningLevel Relaxed (the default) takes it, end to end
/// over TLS; a host at Strict (the endpoint asks MIT's GSS-API for the channel binding and
/// refuses a ticket without it) refuses it, and the error says that this is the likely cause
/// and what to do. (ecfleet sends no Kerberos channel binding: sspi 0.23 writes its AP options
/// as 2 bytes where MIT reads 4, and MIT then refuses every ticket; docs/winrm.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_over_https_reaches_a_relaxed_host_and_says_why_a_strict_one_refuses() {
    use ecfleet::transport::winrm::tls::{CertPolicy, Tls};
    use sha2::Digest;
    let kdc = Kdc::start(None);
    kdc.add_user(USER, PASSWORD);
    let keytab = kdc.add_service(NAME);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (
        kdc.dir.path().join("tls.pem"),
        kdc.dir.path().join("tls.key"),
    );
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let pin = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(cert.der()));
    let log = kdc.dir.path().join("tls.auth.log");
    let endpoint = |strict: bool| {
        let mut python = Command::new(kerberos_python());
        python.env("KRB5_CONFIG", kdc.krb5_conf());
        let mut args = vec![
            "--keytab".to_string(),
            keytab.display().to_string(),
            "--refuse-ntlm".into(),
            "--auth-log".into(),
            log.display().to_string(),
            "--tls-cert".into(),
            cert_file.display().to_string(),
            "--tls-key".into(),
            key_file.display().to_string(),
        ];
        if strict {
            args.push("--require-cbt".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        service_by(python, &args)
    };
    let over_https = |port: u16| {
        let exchange = HttpExchange::new(
            Endpoint {
                host: "127.0.0.1".into(),
                port,
                https: true,
            },
            Credentials::Kerberos {
                login: login(&kdc, PASSWORD, &format!("HTTP/{NAME}")),
                ntlm: None,
            },
            Duration::from_secs(5),
            Duration::from_secs(8),
        )
        .over_tls(Tls::new("127.0.0.1", CertPolicy::Pin(pin.clone())).unwrap());
        let mut session = session(port);
        session.to = format!("https://127.0.0.1:{port}/wsman");
        (exchange, session)
    };
    let run = |arguments: &'static [&'static str]| Run {
        command: "/bin/echo",
        arguments,
        skip_cmd_shell: false,
        stdin: None,
        max_output: 1 << 20,
        envelope_quota: 150 << 10,
    };

    let relaxed = endpoint(false);
    let (mut x, s) = over_https(relaxed.port);
    let out = shell::run(
        &mut x,
        &s,
        &ShellOptions::default(),
        &run(&["over tls"]),
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls\n");
    assert_eq!(logins(&log), vec![format!("kerberos {USER}@{REALM}")]);

    let strict = endpoint(true);
    let (mut x, s) = over_https(strict.port);
    let refused = shell::run(
        &mut x,
        &s,
        &ShellOptions::default(),
        &run(&["x"]),
        Duration::from_secs(10),
    )
    .await
    .err()
    .map(|e| e.to_string())
    .expect("a Strict host refuses a ticket without channel binding");
    assert!(
        refused.contains("refused the Kerberos ticket")
            && refused.contains("CbtHardeningLevel Strict")
            && refused.contains("auth = \"ntlm\""),
        "{refused}"
    );
}

/// Issue 18's acceptance for Kerberos: a 12-host lab fleet in which every third host is a
/// hardened WinRM host (Kerberos only, NTLM refused), every third a WinRM host that takes NTLM
/// only (Negotiate tries Kerberos, then NTLM), and the rest SSH: the same audit verdicts as all
/// over SSH, then a backup and an upgrade night that verifies every in-place host, Kerberos
/// hosts among them; no password in any output at -vv and RUST_LOG=trace.
#[test]
fn a_mixed_kerberos_ntlm_and_ssh_fleet_audits_backs_up_and_upgrades_as_all_over_ssh() {
    let kdc = Kdc::start(None);
    kdc.add_user(USER, PASSWORD);
    let (hardened, log) = kerberos_endpoint(&kdc, NAME, true);
    let ntlm_only = common::winrm::service(&[]);
    kdc.add_service("ntlm-only.ecfleet.test");
    let dir = tempfile::tempdir().unwrap();
    let lab = common::winrm::lab_up(dir.path(), 12, 0, &[]);
    let ssh_only = dir.path().join("inventory.toml");
    let keys = |auth: &str, spn: &str| {
        let mut t = toml::Table::new();
        t.insert("auth".into(), auth.into());
        t.insert("realm".into(), REALM.to_lowercase().into());
        t.insert("kdc".into(), kdc.address().into());
        t.insert("spn".into(), spn.into());
        t
    };
    let hosts: Vec<_> = (0..12)
        .map(|n| match n % 3 {
            1 => Some((hardened.port, keys("kerberos", &format!("HTTP/{NAME}")))),
            2 => Some((
                ntlm_only.port,
                keys("negotiate", "HTTP/ntlm-only.ecfleet.test"),
            )),
            _ => None,
        })
        .collect();
    let mixed = common::winrm::over_winrm(&ssh_only, &hosts);
    let (over_ssh, _) = common::winrm::audit(&ssh_only, &["--as-of", "2026-11-24"]);
    let (report, stderr) = common::winrm::audit(&mixed, &["--as-of", "2026-11-24", "-vv"]);
    assert_eq!(report["summary"]["reachable"], 12, "{stderr}\n{report:#}");
    assert_eq!(
        common::winrm::verdicts(&report),
        common::winrm::verdicts(&over_ssh)
    );
    let kerberos_logins = logins(&log).len();
    assert!(
        kerberos_logins >= 4 && logins(&log).iter().all(|l| l.starts_with("kerberos ")),
        "{:?}",
        logins(&log)
    );

    let done = common::winrm::night(dir.path(), &mixed);
    drop(lab);
    assert_eq!(done.backup_code, Some(0), "{}", done.stderr);
    let verified_kerberos_hosts = done.run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "in-place" && h["outcome"] == "verified")
        .filter(|h| {
            let n = common::winrm::host_names(&mixed)
                .iter()
                .position(|name| h["host"] == name.as_str())
                .unwrap();
            n % 3 == 1
        })
        .count();
    assert!(verified_kerberos_hosts >= 1, "{:#}", done.run);
    assert!(logins(&log).len() > kerberos_logins);
    for said in [&stderr, &done.stderr, &report.to_string()] {
        assert!(!said.contains(PASSWORD), "a password in the output");
        // sspi logs session keys and tickets at debug and trace; none of it is shown.
        assert!(
            !said.contains("sspi::"),
            "the Kerberos library's log in the output"
        );
    }
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "the audit ran at RUST_LOG=trace: {stderr}"
    );
}

/// Kerberos with no password anywhere: the user's key from a keytab (`kadmin ktadd
/// -norandkey`, as `ktpass` exports one), the realm and KDC from a krb5.conf the inventory
/// names. A keytab written before the account's password changed is that host's clear error.
#[test]
fn a_keytab_and_a_krb5_conf_reach_a_hardened_host_without_a_password() {
    let kdc = Kdc::start(None);
    kdc.add_user(USER, PASSWORD);
    kdc.add_user("stale", "old-password-1");
    let keytab = kdc.dir.path().join("fleet.keytab");
    kdc.kadmin(&format!("ktadd -k {} -norandkey {USER}", keytab.display()));
    let stale = kdc.dir.path().join("stale.keytab");
    kdc.kadmin(&format!("ktadd -k {} -norandkey stale", stale.display()));
    kdc.kadmin("cpw -pw new-password-2 stale");
    let (hardened, log) = kerberos_endpoint(&kdc, NAME, true);
    let dir = tempfile::tempdir().unwrap();
    let lab = common::winrm::lab_up(dir.path(), 3, 0, &[]);
    let ssh_only = dir.path().join("inventory.toml");
    let keys = |keytab: &Path, user: &str| {
        let mut t = toml::Table::new();
        t.insert(
            "krb5_conf".into(),
            kdc.krb5_conf().display().to_string().into(),
        );
        t.insert("keytab".into(), keytab.display().to_string().into());
        t.insert("spn".into(), format!("HTTP/{NAME}").into());
        t.insert("user".into(), user.into());
        t
    };
    let mixed = common::winrm::over_winrm(
        &ssh_only,
        &[
            None,
            Some((hardened.port, keys(&keytab, USER))),
            Some((hardened.port, keys(&stale, "stale"))),
        ],
    );
    // No password reference at all: the keytab is the credential.
    let text = std::fs::read_to_string(&mixed).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    for tenant in doc["tenant"].as_array_mut().unwrap() {
        for host in tenant["host"].as_array_mut().unwrap() {
            if host.get("keytab").is_some() {
                host.as_table_mut().unwrap().remove("password");
            }
        }
    }
    std::fs::write(&mixed, toml::to_string(&doc).unwrap()).unwrap();
    let names = common::winrm::host_names(&mixed);

    let (over_ssh, _) = common::winrm::audit(&ssh_only, &["--as-of", "2026-11-24"]);
    let (report, stderr) = common::winrm::audit(&mixed, &["--as-of", "2026-11-24", "-vv"]);
    drop(lab);
    let by_name = |n: &str| {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == n)
            .unwrap()
            .clone()
    };
    let expected: Vec<_> = common::winrm::verdicts(&over_ssh)
        .into_iter()
        .filter(|v| v.0 != names[2])
        .collect();
    let got: Vec<_> = common::winrm::verdicts(&report)
        .into_iter()
        .filter(|v| v.0 != names[2])
        .collect();
    assert_eq!(got, expected, "{stderr}");
    assert_eq!(logins(&log), vec![format!("kerberos {USER}@{REALM}")]);
    let failed = by_name(&names[2]).to_string();
    assert!(
        failed.contains("refused the key of ECFLEET.TEST\\\\stale from the keytab")
            && failed.contains("write the keytab again"),
        "{failed}"
    );
    for said in [&stderr, &report.to_string()] {
        let shown: Vec<&str> = said.lines().filter(|l| l.contains("sspi::")).collect();
        assert!(
            shown.is_empty(),
            "the Kerberos library's log shown: {shown:?}"
        );
    }
}
