//! WinRM over HTTPS (5986): one fleet where every certificate case is a host of its own, next
//! to an SSH host, audited in one run. Real: TLS from rustls to Python's `ssl` over loopback,
//! certificates made here with rcgen (a test authority trusted through `SSL_CERT_FILE`),
//! NTLM with its channel binding checked by pyspnego (the endpoint's `--require-cbt`), Basic,
//! the lab hosts' agents. Stands in: Windows (the project's endpoint, commands under /bin/sh).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, date_time_ymd,
};
use sha2::Digest;

mod common;

use common::winrm::{PASSWORD, Service, lab_up, over_winrm, service};

/// A certificate and its key, written as PEM files, and its SHA-256 (what `cert_sha256` pins).
struct Cert {
    cert: String,
    key: String,
    sha256: String,
}

fn write(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Cert {
    let cert_file = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    Cert {
        cert: cert_file.display().to_string(),
        key: key_file.display().to_string(),
        sha256: data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(cert.der())),
    }
}

fn leaf(expired: bool) -> CertificateParams {
    let mut p = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "winrm endpoint on 127.0.0.1");
    if expired {
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    }
    p
}

/// A test authority (written to `ca.pem`), two certificates it signed for 127.0.0.1 (one
/// current, one expired) and a self-signed one (ECDSA P-384: its channel binding is SHA-384).
fn certificates(dir: &Path) -> (Cert, Cert, Cert) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "ecfleet test authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let good_key = KeyPair::generate().unwrap();
    let good = write(
        dir,
        "good",
        &leaf(false).signed_by(&good_key, &issuer).unwrap(),
        &good_key,
    );
    let old_key = KeyPair::generate().unwrap();
    let expired = write(
        dir,
        "expired",
        &leaf(true).signed_by(&old_key, &issuer).unwrap(),
        &old_key,
    );
    let own_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let own = write(
        dir,
        "self-signed",
        &leaf(false).self_signed(&own_key).unwrap(),
        &own_key,
    );
    (good, expired, own)
}

fn tls_service(cert: &Cert) -> Service {
    service(&[
        "--tls-cert",
        &cert.cert,
        "--tls-key",
        &cert.key,
        "--require-cbt",
    ])
}

fn keys(pairs: &[(&str, toml::Value)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn https_hosts_are_reached_only_with_a_certificate_that_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let (good, expired, own) = certificates(dir.path());
    let good_ntlm = tls_service(&good);
    let good_basic = tls_service(&good);
    let old = tls_service(&expired);
    let unknown = tls_service(&own);
    let pinned = tls_service(&own);
    let wrong_pin = tls_service(&own);
    let insecure = tls_service(&own);
    // Accepts TCP (the kernel's backlog) and never says a word: the TLS handshake must not hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let lab = lab_up(dir.path(), 9, 0, &[]);
    let names = common::winrm::host_names(&dir.path().join("inventory.toml"));
    let https = |port: u16, more: &[(&str, toml::Value)]| {
        let mut k = keys(more);
        k.insert("https".into(), true.into());
        Some((port, k))
    };
    let inventory = over_winrm(
        &dir.path().join("inventory.toml"),
        &[
            None,
            https(good_ntlm.port, &[]),
            https(good_basic.port, &[("auth", "basic".into())]),
            https(old.port, &[]),
            https(unknown.port, &[]),
            https(
                pinned.port,
                &[("cert_sha256", own.sha256.to_uppercase().into())],
            ),
            https(
                wrong_pin.port,
                &[("cert_sha256", good.sha256.clone().into())],
            ),
            https(insecure.port, &[("insecure", true.into())]),
            https(silent_port, &[("connect_timeout", 2.into())]),
        ],
    );
    let out = common::ecfleet()
        .args(["audit", "--format", "json", "--as-of", "2026-11-24", "-vv"])
        .arg("--agent-dir")
        .arg(common::agent_dir())
        .arg("-i")
        .arg(&inventory)
        .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
        .env("EC_TEST_WINRM_PASSWORD", PASSWORD)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    drop(lab);
    let (report, stderr) = common::json_of(&out);
    let host = |i: usize| common::host(&report, &names[i]).clone();
    // Reached: the SSH host, NTLM with channel binding to a trusted certificate, Basic, the
    // pinned self-signed certificate (its binding SHA-384), and the insecure host.
    for i in [0, 1, 2, 5, 7] {
        let h = host(i);
        assert_eq!(
            h["reachable"], true,
            "{}: {}\n{stderr}",
            names[i], h["error"]
        );
    }
    let refused = |i: usize, says: &str, fingerprint: &str| {
        let h = host(i);
        let e = h["error"].as_str().unwrap_or_default();
        assert_eq!(h["reachable"], false, "{}", names[i]);
        assert_eq!(h["error_kind"], "host-key", "{}: {e}", names[i]);
        assert!(
            e.contains(says) && e.contains(fingerprint),
            "{}: {e}",
            names[i]
        );
    };
    refused(3, "expired", &expired.sha256);
    refused(
        4,
        &format!("pin it: cert_sha256 = \"{}\"", own.sha256),
        &own.sha256,
    );
    refused(6, "not the pinned one", &own.sha256);
    let h = host(8);
    assert_eq!(h["error_kind"], "timeout", "{h:#}");
    assert!(h["duration_ms"].as_u64().unwrap() < 10_000, "{h:#}");
    drop(silent);
    // insecure is said out loud; no secret anywhere, even at trace level.
    assert!(
        stderr.contains(&format!("{}: insecure = true", names[7])),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD) && !report.to_string().contains(PASSWORD));
    let basic =
        data_encoding::BASE64.encode(format!("{}:{PASSWORD}", common::winrm::USER).as_bytes());
    assert!(!stderr.contains(&basic));
}

/// pywinrm, an independent client, against the endpoint's TLS listener: NTLM with its channel
/// binding (the endpoint requires it) and Basic, plain envelopes inside TLS. So the endpoint the
/// test above trusts speaks HTTPS WinRM as a real client expects.
#[test]
fn pywinrm_cross_checks_the_endpoint_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _, _) = certificates(dir.path());
    let s = tls_service(&good);
    let script = format!(
        r#"
import winrm
url = 'https://127.0.0.1:{port}/wsman'
for transport in ('ntlm', 'basic'):
    s = winrm.Session(url, auth=('{user}', '{password}'), transport=transport,
                      server_cert_validation='validate', ca_trust_path='{ca}')
    r = s.run_cmd('echo over-tls; exit 3')
    print(transport, r.status_code, r.std_out)
"#,
        port = s.port,
        user = common::winrm::USER,
        password = PASSWORD,
        ca = dir.path().join("ca.pem").display(),
    );
    let text = common::winrm::pywinrm(&script);
    assert!(text.contains("ntlm 3 b'over-tls\\n'"), "{text}");
    assert!(text.contains("basic 3 b'over-tls\\n'"), "{text}");
}
