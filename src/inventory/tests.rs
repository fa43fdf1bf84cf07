//! Inventory tests on the fixture files in `tests/fixtures/inventory/`.

use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inventory")
        .join(name)
}

fn errors_of(name: &str) -> Vec<InventoryError> {
    Inventory::load(&fixture(name), None).unwrap_err().0
}

#[test]
fn a_valid_inventory_applies_defaults_and_resolves_relative_paths() {
    let inv = Inventory::load(&fixture("valid.toml"), None).unwrap();
    assert_eq!(inv.host_count(), 3);
    assert_eq!(inv.concurrency, 32);
    let dir = fixture("");
    assert_eq!(inv.share.as_deref(), Some(dir.join("share").as_path()));
    let ec2 = inv.hosts().find(|h| h.name == "contoso-ec2").unwrap();
    assert_eq!(
        (ec2.port, ec2.role, ec2.os),
        (2222, Role::Staging, Some(RemoteOs::Windows))
    );
    let HostTransport::Ssh(ssh) = &ec2.transport else {
        panic!("ssh host")
    };
    assert_eq!(
        ssh.identity_file.as_deref(),
        Some(dir.join("keys/id_ed25519").as_path())
    );
    assert_eq!(ec2.connect_timeout, Duration::from_secs(5));
    assert_eq!(ec2.tenant, "contoso");
    let fab = inv.hosts().find(|h| h.name == "fabrikam-sync").unwrap();
    assert_eq!(fab.user, "svc-ecfleet");
    assert_eq!(
        fab.password,
        Some(SecretRef::Env("FABRIKAM_EC_PASSWORD".into()))
    );
    assert_eq!(
        fab.lab_root.as_deref(),
        Some("/srv/lab/hosts/fabrikam-sync")
    );
    assert_eq!(
        inv.tenants[0].maintenance_window.as_ref().map(|w| w.text()),
        Some("Sat 22:00-02:00 Europe/London")
    );
    assert_eq!(inv.tenants[0].min_os, None);
}

#[test]
fn every_mistake_is_reported_at_once_with_its_line_and_a_fix() {
    let errors = errors_of("bad-many.toml");
    let lines: Vec<(usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    let find = |needle: &str| {
        errors
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no error mentioning {needle:?} in {lines:?}"))
    };
    let typo = find("unknown key `concurency`");
    assert_eq!(
        (typo.line, typo.fix.as_str()),
        (6, "did you mean `concurrency`?")
    );
    assert_eq!(find("70000 is not a TCP port").line, 14);
    let dup = find("host `ec1` is listed twice");
    assert_eq!(dup.line, 17);
    assert!(dup.message.contains("first on line 11"), "{}", dup.message);
    assert!(find("no address").fix.contains("address ="));
    assert_eq!(find("unknown role `primary`").line, 22);
    let inline = find("password written into the inventory");
    assert_eq!(inline.line, 27);
    let window = find("`Europe/Londn` is not a time zone");
    assert_eq!(window.line, 31);
    assert_eq!(window.key, "tenant[1].maintenance_window");
    assert!(window.fix.contains("Sat 22:00-02:00 Europe/London"));
    assert_eq!(find("`2020` is not a Windows Server release").line, 32);
    assert!(errors.len() >= 8, "{lines:?}");
    // The inline secret itself never reaches a message.
    let all = InventoryErrors(errors).to_string();
    assert!(!all.contains("Winter2026"), "{all}");
    assert!(
        all.contains("bad-many.toml:6:1: defaults.concurency: unknown key"),
        "{all}"
    );
}

#[test]
fn wrong_types_and_values_name_the_key_and_the_fix() {
    let errors = errors_of("bad-types.toml");
    let text = InventoryErrors(errors).to_string();
    assert!(
        text.contains("defaults.port: expected a whole number, found string"),
        "{text}"
    );
    assert!(
        text.contains("tenant[0].host[0].transport: unknown transport `telnet`"),
        "{text}"
    );
    assert!(
        text.contains("`relative/dir` is not an absolute path"),
        "{text}"
    );
    assert!(text.contains("names more than one source"), "{text}");
}

#[test]
fn syntax_errors_point_at_the_line() {
    let errors = errors_of("bad-syntax.toml");
    assert_eq!(errors[0].line, 5, "{errors:?}");
    assert!(errors[0].message.starts_with("TOML syntax"), "{errors:?}");
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let errors = errors_of("does-not-exist.toml");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("cannot read the inventory"));
}

#[test]
fn winrm_hosts_get_their_port_auth_and_pin() {
    let inv = Inventory::load(&fixture("winrm.toml"), None).unwrap();
    let settings = |name: &str| {
        let h = inv.hosts().find(|h| h.name == name).unwrap();
        let HostTransport::WinRm(w) = &h.transport else {
            panic!("{name} is a WinRM host")
        };
        (h.port, w.clone())
    };
    let (port, http) = settings("ec-http");
    assert_eq!(port, 5985);
    assert_eq!(http, WinRmSettings::default());
    let (port, https) = settings("ec-https");
    assert_eq!((port, https.https, https.insecure), (5986, true, false));
    assert_eq!(
        https.cert_sha256.as_deref(),
        Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
    );
    let (port, basic) = settings("ec-basic");
    assert_eq!(
        (port, basic.auth, basic.insecure),
        (15986, WinRmAuth::Basic, true)
    );
    assert_eq!(https.file_transfer, FileTransfer::Pull);
    assert_eq!(basic.file_transfer, FileTransfer::Stdin);
}

#[test]
fn unsafe_or_impossible_winrm_settings_are_errors_with_their_fix() {
    let errors = errors_of("winrm-bad.toml");
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str, fix: &str| {
        assert!(
            text.iter().any(|t| t.contains(needle) && t.contains(fix)),
            "{needle} / {fix} not in {text:#?}"
        );
    };
    has("in the clear", "https = true");
    has("not a SHA-256 fingerprint", "64 hex digits");
    has("`insecure` is about the HTTPS certificate", "https = true");
    has(
        "auth = \"kerberos\" needs a realm and a KDC",
        "kdc = \"dc01.contoso.local:88\"",
    );
    has("no password for WinRM host no-password", "password = { env");
    has("`https` is a WinRM setting", "transport = \"winrm\"");
    has("unknown WinRM file transfer `smb`", "\"stdin\"");
    has("contradicts itself", "remove insecure");
    assert_eq!(errors.len(), 8, "{text:#?}");
    // Each names its line.
    assert!(errors.iter().all(|e| e.line > 0), "{text:#?}");
}

#[test]
fn winrm_keys_in_defaults_are_for_winrm_hosts_and_a_crossed_port_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let text = format!(
        r#"[defaults]
user = "ops"
password = {{ env = "EC_PASSWORD" }}
known_hosts = "{}"
https = true
auth = "basic"

[[tenant]]
name = "contoso"

[[tenant.host]]
name = "linux-lab"
address = "10.0.0.1"
role = "active"

[[tenant.host]]
name = "win-on-5985"
address = "10.0.0.2"
role = "active"
transport = "winrm"
port = 5985

[[tenant.host]]
name = "win-http-on-5986"
address = "10.0.0.3"
role = "staging"
transport = "winrm"
https = false
auth = "negotiate"
cert_sha256 = "3f2a9c0d5e61b7a8c4d2e0f19a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a09"
port = 5986
"#,
        known_hosts.display()
    );
    let path = dir.path().join("fleet.toml");
    // The SSH host takes nothing from the WinRM defaults (`auth = "basic"` would be an error
    // there); the HTTP host's own pin is one.
    let errors = Inventory::parse(&text, &path, None).unwrap_err().0;
    let text_of: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{text_of:#?}");
    assert!(
        text_of[0].contains("win-http-on-5986") || text_of[0].contains("cert_sha256"),
        "{text_of:#?}"
    );
    let fixed = text.replace(
        "auth = \"negotiate\"\ncert_sha256 = \"3f2a9c0d5e61b7a8c4d2e0f19a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a09\"\n",
        "auth = \"negotiate\"\n",
    );
    let inv = Inventory::parse(&fixed, &path, None).unwrap();
    let warnings = inv.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].contains(":16: host win-on-5985: https = true on port 5985")
            && warnings[0].contains("set port = 5986"),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].contains("host win-http-on-5986: https = false on port 5986"),
        "{warnings:#?}"
    );
}

#[test]
fn the_winrm_example_in_the_docs_parses() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/winrm.md"))
        .unwrap();
    // The first indented block: the example inventory.
    let example: String = doc
        .lines()
        .skip_while(|l| !l.starts_with("    [[tenant]]"))
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(example.contains("command = \"pass show"), "{example}");
    let inv = Inventory::parse(&example, Path::new("fleet.toml"), None)
        .unwrap_or_else(|e| panic!("docs/winrm.md's example: {e}\n{example}"));
    assert_eq!(inv.host_count(), 2);
}

fn parse_text(text: &str) -> Result<Inventory, InventoryErrors> {
    Inventory::parse(text, Path::new("/etc/ecfleet/fleet.toml"), None)
}

const JUMP_BASE: &str = "[defaults]\nuser = \"admin\"\nidentity_file = \"keys/id\"\nknown_hosts = \"/k/known_hosts\"\nconnect_timeout = 7\n";

#[test]
fn a_tenant_s_jump_chain_reaches_its_hosts_and_a_host_may_go_direct_or_its_own_way() {
    let inv = parse_text(&format!(
        "{JUMP_BASE}
[[tenant]]
name = \"contoso\"
jump = [\"ops@bastion.contoso.example\", {{ address = \"10.0.0.5\", port = 2022, user = \"jump\", password = {{ env = \"HOP2\" }}, known_hosts = \"hop2_known\", connect_timeout = 3 }}]
[[tenant.host]]
name = \"ec1\"
address = \"ec1.contoso.local\"
[[tenant.host]]
name = \"ec2\"
address = \"ec2.contoso.local\"
jump = []
[[tenant.host]]
name = \"ec3\"
address = \"ec3.contoso.local\"
transport = \"winrm\"
password = {{ env = \"WINRM\" }}
jump = [\"me@[fd00::1]:2200\"]
"
    ))
    .unwrap();
    let host = |n: &str| inv.hosts().find(|h| h.name == n).unwrap();
    let chain = &host("ec1").jump;
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].label(), "ops@bastion.contoso.example:22");
    assert_eq!(
        chain[0].identity_file.as_deref(),
        Some(Path::new("/etc/ecfleet/keys/id")),
        "a string hop offers the [defaults] key"
    );
    assert_eq!(chain[0].password, None);
    assert_eq!(chain[0].connect_timeout, Duration::from_secs(7));
    assert_eq!(chain[1].label(), "jump@10.0.0.5:2022");
    assert_eq!(chain[1].password, Some(SecretRef::Env("HOP2".into())));
    assert_eq!(
        chain[1].known_hosts,
        Path::new("/etc/ecfleet/hop2_known"),
        "relative to the inventory"
    );
    assert_eq!(chain[1].connect_timeout, Duration::from_secs(3));
    assert!(host("ec2").jump.is_empty(), "jump = [] is direct");
    let own = &host("ec3").jump;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].label(), "me@[fd00::1]:2200");
    assert_eq!(
        own[0].password, None,
        "a WinRM host's password is never a hop's"
    );
}

#[test]
fn a_jump_hop_that_cannot_be_used_is_an_error_with_its_place_and_fix() {
    let errors = parse_text(
        "[defaults]\nuser = \"admin\"\nknown_hosts = \"/k\"\npassword = { env = \"PW\" }\n
[[tenant]]
name = \"contoso\"
jump = [\"bastion.contoso.example\", \"ops@bastion:ssh\", \"ops@ssh://x\", 22, { user = \"ops\" }, \"ops@b2\"]
[[tenant.host]]
name = \"ec1\"
address = \"ec1\"
jump = \"ops@b\"
",
    )
    .unwrap_err()
    .0;
    let said: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{}: {} | {}", e.line, e.key, e.message, e.fix))
        .collect();
    let has = |needle: &str| {
        assert!(
            said.iter().any(|s| s.contains(needle)),
            "no error containing {needle:?} in {said:#?}"
        )
    };
    has("8:tenant[0].jump[0]: `bastion.contoso.example` names no user");
    has("tenant[0].jump[1]: `ops@bastion:ssh`: `ssh` is not a TCP port");
    has("tenant[0].jump[2]: `ops@ssh://x` is a URL");
    has("tenant[0].jump[3]: expected a string or a table, found integer");
    has("tenant[0].jump[4]: the jump host has no address");
    // No key in [defaults]: the hop has no credential (the password is the hosts', not the hop's).
    has("tenant[0].jump[5]: no credential for jump host ops@b2 | set identity_file in [defaults]");
    has("12:tenant[0].host[0].jump: expected a list of hops, found string");
    assert!(
        errors
            .iter()
            .all(|e| e.file == Path::new("/etc/ecfleet/fleet.toml")),
        "every error names the file"
    );
}

#[test]
fn kerberos_realm_and_kdc_come_from_the_host_its_tenant_or_defaults() {
    let inv = parse_text(
        "[defaults]\nuser = \"svc\"\npassword = { env = \"PW\" }\ntransport = \"winrm\"\nrealm = \"fallback.local\"\nkdc = \"dc9.fallback.local\"\n
[[tenant]]
name = \"contoso\"
realm = \"contoso.local\"
kdc = \"dc01.contoso.local:8888\"
[[tenant.host]]
name = \"ec1\"
address = \"ec1.contoso.local\"
auth = \"kerberos\"
[[tenant.host]]
name = \"ec2\"
address = \"10.0.0.2\"
spn = \"HTTP/ec2.contoso.local\"
kdc = \"[fd00::1]\"
[[tenant]]
name = \"fabrikam\"
[[tenant.host]]
name = \"fab1\"
address = \"fab1.fabrikam.local\"
",
    )
    .unwrap();
    let kerberos = |n: &str| {
        let HostTransport::WinRm(w) = &inv.hosts().find(|h| h.name == n).unwrap().transport else {
            panic!("winrm")
        };
        (w.auth, w.kerberos.clone().unwrap())
    };
    let (auth, k) = kerberos("ec1");
    assert_eq!(auth, WinRmAuth::Kerberos);
    assert_eq!(
        (k.realm.as_str(), k.kdc.clone(), k.spn),
        (
            "CONTOSO.LOCAL",
            ("dc01.contoso.local".to_string(), 8888),
            None
        )
    );
    let (auth, k) = kerberos("ec2");
    assert_eq!(auth, WinRmAuth::Negotiate);
    assert_eq!(
        k.kdc,
        ("fd00::1".to_string(), 88),
        "the host's own kdc, port 88"
    );
    assert_eq!(k.spn.as_deref(), Some("HTTP/ec2.contoso.local"));
    let (_, k) = kerberos("fab1");
    assert_eq!(
        (k.realm.as_str(), k.kdc),
        ("FALLBACK.LOCAL", ("dc9.fallback.local".to_string(), 88)),
        "[defaults] when the tenant says nothing"
    );

    let errors = parse_text(
        "[defaults]\nuser = \"svc\"\npassword = { env = \"PW\" }\n
[[tenant]]
name = \"contoso\"
kdc = \"dc01:kerberos\"
[[tenant.host]]
name = \"ec1\"
address = \"ec1\"
transport = \"winrm\"
spn = \"ec1.contoso.local\"
[[tenant.host]]
name = \"ssh1\"
address = \"ssh1\"
identity_file = \"/k\"
known_hosts = \"/kh\"
realm = \"CONTOSO.LOCAL\"
",
    )
    .unwrap_err()
    .0;
    let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for needle in [
        "tenant[0].kdc: `dc01:kerberos` is not a KDC address",
        "tenant[0].host[0].spn: `ec1.contoso.local` is not a service principal name",
        "tenant[0].host[1].realm: `realm` is a WinRM setting, and host ssh1 uses SSH",
    ] {
        assert!(
            said.iter().any(|s| s.contains(needle)),
            "{needle} not in {said:#?}"
        );
    }
}

#[test]
fn a_keytab_stands_in_for_the_password_of_kerberos_hosts_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.toml");
    let text = "[defaults]\nuser = \"svc-ec\"\ntransport = \"winrm\"\nrealm = \"CONTOSO.LOCAL\"\nkdc = \"dc01.contoso.local\"\nkeytab = \"keys/svc-ec.keytab\"\n
[[tenant]]
name = \"contoso\"
[[tenant.host]]
name = \"ec1\"
address = \"ec1.contoso.local\"
[[tenant.host]]
name = \"ec2\"
address = \"ec2.contoso.local\"
auth = \"ntlm\"
";
    std::fs::write(&file, text).unwrap();
    let errors = Inventory::load(&file, None).unwrap_err().0;
    let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].contains("no password for WinRM host ec2") && said[0].contains("keytab"),
        "{said:#?}"
    );
    std::fs::write(
        &file,
        text.replace("auth = \"ntlm\"", "auth = \"kerberos\""),
    )
    .unwrap();
    let inv = Inventory::load(&file, None).unwrap();
    let HostTransport::WinRm(w) = &inv.hosts().next().unwrap().transport else {
        panic!("winrm")
    };
    assert_eq!(
        w.kerberos.as_ref().unwrap().keytab.as_deref(),
        Some(dir.path().join("keys/svc-ec.keytab").as_path()),
        "a relative keytab is read from the inventory's folder"
    );
}

#[test]
fn realm_and_kdc_come_from_a_named_krb5_conf_and_its_faults_name_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("krb5.conf");
    std::fs::write(
        &conf,
        "[libdefaults]\n default_realm = contoso.local\n[realms]\n CONTOSO.LOCAL = {\n  kdc = tcp/dc01.contoso.local:8888\n  kdc = dc02.contoso.local\n }\n FABRIKAM.LOCAL = {\n  kdc = https://kdcproxy.fabrikam.example/KdcProxy\n }\n",
    )
    .unwrap();
    let file = dir.path().join("fleet.toml");
    let fleet = |tenant_two: &str| {
        format!(
            "[defaults]\nuser = \"svc\"\npassword = {{ env = \"PW\" }}\ntransport = \"winrm\"\nkrb5_conf = \"krb5.conf\"\n
[[tenant]]
name = \"contoso\"
[[tenant.host]]
name = \"ec1\"
address = \"ec1.contoso.local\"
auth = \"kerberos\"
[[tenant]]
name = \"fabrikam\"
{tenant_two}
[[tenant.host]]
name = \"fab1\"
address = \"fab1.fabrikam.local\"
"
        )
    };
    std::fs::write(
        &file,
        fleet("realm = \"fabrikam.local\"\nkdc = \"dc1.fabrikam.local\""),
    )
    .unwrap();
    let inv = Inventory::load(&file, None).unwrap();
    let kerberos = |n: &str| {
        let HostTransport::WinRm(w) = &inv.hosts().find(|h| h.name == n).unwrap().transport else {
            panic!("winrm")
        };
        w.kerberos.clone().unwrap()
    };
    let k = kerberos("ec1");
    assert_eq!(
        (k.realm.as_str(), k.kdc),
        ("CONTOSO.LOCAL", ("dc01.contoso.local".to_string(), 8888)),
        "default_realm, and its first kdc"
    );
    assert_eq!(
        kerberos("fab1").kdc,
        ("dc1.fabrikam.local".to_string(), 88),
        "the inventory's own keys win over the file"
    );

    std::fs::write(&file, fleet("realm = \"fabrikam.local\"")).unwrap();
    let said: Vec<String> = Inventory::load(&file, None)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].contains("tenant[1].host[0].krb5_conf")
            && said[0].contains("krb5.conf line 9")
            && said[0].contains("MS-KKDCP"),
        "{said:#?}"
    );

    std::fs::write(&file, fleet("realm = \"northwind.local\"")).unwrap();
    let said = Inventory::load(&file, None).unwrap_err().0[0].to_string();
    assert!(
        said.contains("names no kdc for the realm NORTHWIND.LOCAL"),
        "{said}"
    );
}

#[test]
fn pull_address_belongs_to_the_last_hop_and_must_be_an_address() {
    let chain = |hops: &str| {
        format!(
            "{JUMP_BASE}
[[tenant]]
name = \"contoso\"
jump = {hops}
[[tenant.host]]
name = \"ec1\"
address = \"ec1\"
"
        )
    };
    let inv = parse_text(&chain(
        "[\"ops@outer\", { address = \"inner\", user = \"ops\", pull_address = \"10.20.0.4\" }]",
    ))
    .unwrap();
    let hops = &inv.hosts().next().unwrap().jump;
    assert_eq!(
        (
            hops[0].pull_address.as_deref(),
            hops[1].pull_address.as_deref()
        ),
        (None, Some("10.20.0.4"))
    );
    let said: Vec<String> = parse_text(&chain(
        "[{ address = \"outer\", user = \"ops\", pull_address = \"10.0.0.1\" }, { address = \"inner\", user = \"ops\", pull_address = \"http://x\" }]",
    ))
    .unwrap_err()
    .0
    .iter()
    .map(|e| e.to_string())
    .collect();
    for needle in [
        "tenant[0].jump[0].pull_address: pull_address on jump host ops@outer, which is not the last hop",
        "tenant[0].jump[1].pull_address: `http://x` is not an address",
    ] {
        assert!(
            said.iter().any(|s| s.contains(needle)),
            "{needle} not in {said:#?}"
        );
    }
}

#[test]
fn notify_channels_are_references_and_a_url_in_the_file_is_refused_unrepeated() {
    let base = "[defaults]\nuser = \"svc\"\nidentity_file = \"/k\"\nknown_hosts = \"/kh\"\n";
    let inv = parse_text(&format!(
        "{base}
[notify]
teams = {{ env = \"TEAMS_URL\" }}
slack = {{ file = \"slack.url\" }}
timeout = 5
handoff_after = 30
[[tenant]]
name = \"contoso\"
notify = {{ webhook = {{ command = \"vault kv get -field=url secret/hook\" }} }}
[[tenant.host]]
name = \"ec1\"
address = \"ec1\"
"
    ))
    .unwrap();
    assert_eq!(
        inv.notify
            .channels
            .iter()
            .map(|c| c.kind)
            .collect::<Vec<_>>(),
        vec![NotifyKind::Teams, NotifyKind::Slack]
    );
    assert_eq!(
        inv.notify.channels[1].url,
        SecretRef::File("/etc/ecfleet/slack.url".into())
    );
    assert_eq!(inv.notify.timeout, Duration::from_secs(5));
    assert_eq!(inv.notify.handoff_after, Some(Duration::from_secs(1800)));
    assert_eq!(inv.tenants[0].notify.channels[0].kind, NotifyKind::Webhook);
    assert_eq!(
        inv.tenants[0].notify.timeout,
        Duration::from_secs(10),
        "the default deadline"
    );

    let errors = parse_text(&format!(
        "{base}
[notify]
teams = \"https://prod.example/workflows/abc?sig=SECRET123\"
timeout = 0
email = \"x\"
[[tenant]]
name = \"contoso\"
[[tenant.host]]
name = \"ec1\"
address = \"ec1\"
"
    ))
    .unwrap_err()
    .0;
    let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for needle in [
        "notify.teams: a webhook URL written into the inventory is not allowed",
        "notify.timeout: 0 is outside 1 to 300",
        "notify.email",
    ] {
        assert!(
            said.iter().any(|s| s.contains(needle)),
            "{needle} not in {said:#?}"
        );
    }
    assert!(
        said.iter().all(|s| !s.contains("SECRET123")),
        "the URL repeated: {said:#?}"
    );
}
