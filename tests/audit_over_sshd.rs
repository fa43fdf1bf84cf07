//! `ecfleet audit` end to end: the real binary, real OpenSSH sshd instances on loopback, lab
//! hosts behind them, the agent pushed over SFTP and run as a real process.

mod common;

use common::*;

#[test]
fn audits_24_lab_hosts_behind_three_sshds_with_the_expected_findings() {
    let fleet = Fleet::new(24, 3);
    let inventory = fleet.write_inventory("");
    let (code, report, stderr) = fleet.audit(&inventory, &[]);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["as_of"], "2026-11-24");
    assert_eq!(report["summary"]["hosts"], 24, "{stderr}");
    assert_eq!(report["summary"]["reachable"], 24, "{report:#}");
    assert_eq!(code, 1, "findings present → exit 1");
    let expect = [
        ("t01-current", None),
        ("t03-retiring", Some("retiring-build")),
        ("t04-sync-stopped", Some("sync-stopped")),
        ("t05-v1-2012r2", Some("os-too-old")),
        ("t06-dotnet-old", Some("dotnet-too-old")),
        ("t07-tls-missing", Some("tls12-not-enforced")),
        ("t08-half-upgraded", Some("version-mismatch")),
        ("t09-recalled", Some("recalled-build")),
        ("t10-disk-low", Some("disk-low")),
        ("t11-wizard-open", Some("wizard-open")),
        ("t12-health-agent-off", Some("health-agent-stopped")),
        ("t13-sync-errors", Some("export-failed")),
        ("t02-staging", Some("staging-mode")),
        ("t15-localdb-full", Some("localdb-full")),
        ("t16-config-edited", Some("engine-config-edited")),
        ("t17-no-entra-connector", Some("entra-connector-missing")),
    ];
    for (name, code) in expect {
        let h = host(&report, name);
        assert_eq!(h["reachable"], true, "{name}: {}", h["error"]);
        match code {
            Some(c) => assert!(codes(h).contains(&c.to_string()), "{name}: {:?}", codes(h)),
            None => assert!(codes(h).is_empty(), "{name}: {:?}", codes(h)),
        }
    }
    let current = host(&report, "t01-current");
    assert_eq!(current["version"]["product"], "2.6.92.0");
    assert_eq!(current["version"]["config"], "2.6.92.0");
    assert_eq!(current["support"]["status"], "supported");
    // The newest build has no end of support yet: it ends 12 months after the next one ships.
    assert!(
        current["support"]["end_of_support"].is_null(),
        "{current:#}"
    );
    let half = host(&report, "t08-half-upgraded");
    assert_ne!(half["version"]["product"], half["version"]["config"]);
    for f in half["findings"].as_array().unwrap() {
        for key in ["code", "severity", "message", "fix"] {
            assert!(f.get(key).is_some(), "finding lacks {key}");
        }
    }
    // The snapshot is on the share, with its manifest.
    let audits = fleet.dir.path().join("share/audits");
    let snap = std::fs::read_dir(&audits)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snap.join("audit.json")).unwrap()).unwrap();
    assert_eq!(saved["summary"]["hosts"], 24);
    assert!(snap.join("SHA256SUMS").exists());

    // A second run finds the agent in place and does not upload it again.
    let agent = fleet.host_dir("t01-current").join(".ecfleet/ecfleet-agent");
    let before = std::fs::metadata(&agent).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code2, report2, _) = fleet.audit(&inventory, &["--host", "t01-current", "--no-share"]);
    assert_eq!((code2, report2["summary"]["hosts"].as_u64()), (0, Some(1)));
    assert_eq!(
        std::fs::metadata(&agent).unwrap().modified().unwrap(),
        before,
        "agent re-uploaded"
    );
    // A different (corrupted) remote copy is replaced and verified.
    std::fs::write(&agent, b"corrupt").unwrap();
    let (code3, _, _) = fleet.audit(&inventory, &["--host", "t01-current", "--no-share"]);
    assert_eq!(code3, 0);
    assert!(std::fs::metadata(&agent).unwrap().len() > 1000);
}

#[test]
fn a_changed_host_key_is_refused_naming_the_fingerprint_and_the_rest_complete() {
    let fleet = Fleet::new(6, 2);
    // Record a wrong key for the second sshd.
    let wrong = fleet.dir.path().join("wrong_host");
    keygen(&wrong);
    let wrong_pub = std::fs::read_to_string(wrong.with_extension("pub")).unwrap();
    let wrong_pub: String = wrong_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let kh = format!(
        "{}[127.0.0.1]:{} {}\n",
        fleet.sshds[0].known_hosts_line(),
        fleet.sshds[1].port,
        wrong_pub
    );
    std::fs::write(&fleet.known_hosts, &kh).unwrap();
    let inventory = fleet.write_inventory("");
    for extra in [&[][..], &["--accept-new-host-keys"][..]] {
        let (code, report, _) = fleet.audit(&inventory, extra);
        assert_eq!(code, 2, "unreachable hosts → exit 2");
        let refused: Vec<&serde_json::Value> = report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["reachable"] == false)
            .collect();
        assert!(!refused.is_empty());
        for h in &refused {
            let e = h["error"].as_str().unwrap();
            assert!(
                e.contains("HOST KEY CHANGED") && e.contains("SHA256:"),
                "{e}"
            );
            assert!(
                h["address"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{}", fleet.sshds[1].port))
            );
        }
        assert_eq!(
            report["summary"]["reachable"].as_u64().unwrap() as usize + refused.len(),
            6
        );
        assert!(report["summary"]["reachable"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        std::fs::read_to_string(&fleet.known_hosts).unwrap(),
        kh,
        "a changed key is never learned"
    );
}

#[test]
fn unknown_host_keys_are_refused_unless_new_keys_are_accepted() {
    let fleet = Fleet::new(2, 1);
    std::fs::write(&fleet.known_hosts, "").unwrap();
    let inventory = fleet.write_inventory("");
    let (code, report, _) = fleet.audit(&inventory, &[]);
    assert_eq!(code, 2);
    let e = host(&report, "t01-current")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.contains("is not in") && e.contains("SHA256:") && e.contains("--accept-new-host-keys"),
        "{e}"
    );
    let (code, report, _) = fleet.audit(&inventory, &["--accept-new-host-keys", "--no-share"]);
    assert_eq!(report["summary"]["reachable"], 2, "{report:#}");
    assert_ne!(code, 2);
    let learned = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    assert_eq!(
        learned.lines().count(),
        1,
        "one line for the one sshd: {learned}"
    );
    assert!(learned.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", fleet.sshds[0].port)));
}

#[test]
fn an_unreachable_host_and_a_hanging_host_fail_alone() {
    let fleet = Fleet::new(5, 1);
    // A first audit puts the agent on every host under the default deadline (60 s), so that the
    // short deadline below times only the agent's run, not the first upload of a 20 MB debug
    // build, which can take seconds while the other tests load the machine.
    let warm_up = fleet.write_inventory("");
    let (code, report, stderr) = fleet.audit(&warm_up, &["--no-share"]);
    assert_eq!(report["summary"]["reachable"], 5, "{stderr}");
    assert_ne!(code, 2);
    // t03 hangs for a minute; the playbook gives each host 20 s (4 s, then 10 s, were too tight
    // for the debug build's key exchange and agent while the other tests load both cores).
    let machine = fleet.host_dir("t03-retiring").join("machine.toml");
    let text = std::fs::read_to_string(&machine)
        .unwrap()
        .replace("hang_seconds = 0", "hang_seconds = 60");
    assert!(text.contains("hang_seconds = 60"));
    std::fs::write(&machine, text).unwrap();
    let playbook = fleet.dir.path().join("audit.toml");
    std::fs::write(&playbook, "schema_version = 1\nretiring_days = 90\nmin_free_gib = 2.0\nmax_sync_age_hours = 3.0\nhost_deadline_secs = 20\n").unwrap();
    let closed = free_port();
    let extra = format!(
        "[[tenant]]\nname = \"gone\"\n\n[[tenant.host]]\nname = \"gone-ec1\"\naddress = \"127.0.0.1\"\nport = {closed}\nlab_root = \"/nonexistent\"\n"
    );
    let inventory = fleet.write_inventory(&extra);
    let started = std::time::Instant::now();
    let (code, report, _) = fleet.audit(
        &inventory,
        &["--playbook", playbook.to_str().unwrap(), "--no-share"],
    );
    let took = started.elapsed();
    assert_eq!(code, 2);
    assert_eq!(report["summary"]["hosts"], 6);
    assert_eq!(report["summary"]["reachable"], 4, "{report:#}");
    let gone = host(&report, "gone-ec1");
    assert!(
        gone["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect to 127.0.0.1"),
        "{gone}"
    );
    let hung = host(&report, "t03-retiring");
    assert!(
        hung["error"]
            .as_str()
            .unwrap()
            .contains("host deadline of 20 s"),
        "{hung}"
    );
    assert!(
        took.as_secs() < 50,
        "the hung host's 60 s sleep did not hold the run ({took:?})"
    );
    for name in [
        "t01-current",
        "t02-behind",
        "t02-staging",
        "t04-sync-stopped",
    ] {
        assert_eq!(host(&report, name)["reachable"], true, "{name}");
    }
}

#[test]
fn csv_and_table_formats_carry_every_host() {
    let fleet = Fleet::new(3, 1);
    let inventory = fleet.write_inventory("");
    for (format, header) in [
        ("csv", "tenant,host,role,address,reachable"),
        ("table", "prerequisites"),
    ] {
        let out = audit_command(&inventory)
            .args(["--no-share", "--format", format])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(header), "{text}");
        for (name, _) in &fleet.hosts {
            assert!(
                text.contains(name.as_str()),
                "{format}: {name} missing\n{text}"
            );
        }
    }
}

#[test]
fn rsa_keys_authenticate_and_an_unauthorised_key_is_a_clear_per_host_error() {
    let fleet = Fleet::new(2, 1);
    let rsa = fleet.dir.path().join("id_rsa");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "3072", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(status.success());
    let authorized = fleet.dir.path().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&std::fs::read_to_string(rsa.with_extension("pub")).unwrap());
    std::fs::write(&authorized, keys).unwrap();
    let inventory = fleet.write_inventory("");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let with_rsa = text.replace(
        &format!("identity_file = \"{}\"", fleet.key.display()),
        &format!("identity_file = \"{}\"", rsa.display()),
    );
    assert_ne!(with_rsa, text);
    std::fs::write(&inventory, &with_rsa).unwrap();
    let (code, report, stderr) = fleet.audit(&inventory, &["--no-share"]);
    assert_eq!(report["summary"]["reachable"], 2, "{stderr}\n{report:#}");
    assert_ne!(code, 2);

    // A key the hosts do not know: each host fails alone, naming the user and the key tried.
    let stranger = fleet.dir.path().join("stranger");
    keygen(&stranger);
    std::fs::write(
        &inventory,
        with_rsa.replace(&rsa.display().to_string(), &stranger.display().to_string()),
    )
    .unwrap();
    let (code, report, _) = fleet.audit(&inventory, &["--no-share"]);
    assert_eq!(code, 2);
    let error = host(&report, "t01-current")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("authentication as"), "{error}");
    assert!(error.contains("stranger"), "{error}");
}

/// One lab host behind `sshd`, with an inventory whose `[defaults]` carry `auth`.
fn single_host_inventory(fleet: &Fleet, sshd: &Sshd, auth: &str) -> std::path::PathBuf {
    let known_hosts = fleet.dir.path().join("single_known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let path = fleet.dir.path().join("single.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nuser = \"{}\"\nknown_hosts = \"{}\"\nos = \"linux\"\n{auth}\n[[tenant]]\nname = \"t\"\n\n[[tenant.host]]\nname = \"single\"\naddress = \"127.0.0.1\"\nport = {}\nlab_root = \"{}\"\n",
            whoami(),
            known_hosts.display(),
            sshd.port,
            fleet.host_dir("t01-current").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn password_auth_by_reference_works_and_a_wrong_password_is_never_echoed() {
    let fleet = Fleet::new(1, 1);
    let sshd = Sshd::start_with_password(fleet.dir.path(), "pw", "c0rrect-Horse-7");
    let inventory =
        single_host_inventory(&fleet, &sshd, "password = { env = \"ECFLEET_TEST_PW\" }\n");
    let run = |password: &str| {
        let out = audit_command(&inventory)
            .args(["--format", "json", "--no-share"])
            .env("ECFLEET_TEST_PW", password)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            out.status.code(),
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, report, stderr) = run("c0rrect-Horse-7");
    assert_eq!(report["summary"]["reachable"], 1, "{stderr}\n{report:#}");
    assert_eq!(code, Some(0));
    let (code, report, stderr) = run("wrong-Battery-9");
    assert_eq!(code, Some(2));
    let error = host(&report, "single")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("authentication as"), "{error}");
    assert!(
        error.contains("environment variable ECFLEET_TEST_PW"),
        "{error}"
    );
    let everything = format!("{report}{stderr}");
    assert!(!everything.contains("wrong-Battery-9") && !everything.contains("c0rrect-Horse-7"));
}

#[test]
fn a_host_without_sftp_fails_at_once_with_the_reason() {
    let fleet = Fleet::new(1, 1);
    let authorized = fleet.dir.path().join("authorized_keys");
    let auth = format!(
        "AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n",
        authorized.display()
    );
    let sshd = Sshd::start_with(fleet.dir.path(), "nosftp", &auth, false, None);
    let inventory = single_host_inventory(
        &fleet,
        &sshd,
        &format!("identity_file = \"{}\"\n", fleet.key.display()),
    );
    let started = std::time::Instant::now();
    let (code, report, _) = fleet.audit(&inventory, &["--no-share"]);
    assert_eq!(code, 2);
    let error = host(&report, "single")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("refused the SFTP subsystem"), "{error}");
    // Well below the audit's 60 s host deadline, with room for a loaded machine.
    assert!(
        started.elapsed().as_secs() < 45,
        "no wait for the host deadline: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_second_audit_says_what_changed_since_the_first() {
    let fleet = Fleet::new(4, 1);
    let inventory = fleet.write_inventory("");
    let (_, first, _) = fleet.audit(&inventory, &[]);
    assert_eq!(
        first["changes"],
        serde_json::Value::Null,
        "nothing to compare with yet"
    );

    // Overnight: t03 was upgraded to the current build, t01's disk filled up.
    let retiring = fleet.host_dir("t03-retiring").join("machine.toml");
    let from = host(&first, "t03-retiring")["version"]["product"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&retiring)
        .unwrap()
        .replace(&from, "2.6.91.0");
    std::fs::write(&retiring, text).unwrap();
    let current = fleet.host_dir("t01-current").join("machine.toml");
    let text = std::fs::read_to_string(&current).unwrap();
    let free_line = text.lines().find(|l| l.starts_with("free_bytes")).unwrap();
    std::fs::write(&current, text.replace(free_line, "free_bytes = 1000000")).unwrap();

    // The table says it in words (without writing a snapshot, so the JSON run below still
    // compares with the first audit).
    let out = audit_command(&inventory)
        .arg("--no-share")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("since the last audit"), "{table}");
    assert!(
        table.contains(&format!("t03-retiring (tenant03): {from} → 2.6.91.0")),
        "{table}"
    );

    let (_, second, _) = fleet.audit(&inventory, &[]);
    let changes = &second["changes"];
    assert_eq!(changes["since"], first["generated_at"]);
    let changed = |name: &str| {
        changes["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == name)
            .unwrap_or_else(|| panic!("{name} not in {changes:#}"))
            .clone()
    };
    let t03 = changed("t03-retiring");
    assert_eq!(t03["version"]["from"], from.as_str());
    assert_eq!(t03["version"]["to"], "2.6.91.0");
    assert!(
        t03["resolved_findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "retiring-build"),
        "{t03}"
    );
    let t01 = changed("t01-current");
    assert_eq!(t01["new_findings"], serde_json::json!(["disk-low"]));
    assert_eq!(changes["hosts"].as_array().unwrap().len(), 2, "{changes:#}");
}

#[test]
fn blocking_credential_sources_fail_their_own_hosts_quickly() {
    let fleet = Fleet::new(3, 1);
    // t01's key "file" is a FIFO, t02's password comes from a command waiting at a prompt; t03
    // is fine. None may hold up the run past its own connect timeout.
    let fifo = fleet.dir.path().join("key.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let stranger = fleet.dir.path().join("stranger");
    keygen(&stranger);
    let inventory = fleet.write_inventory("");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let text = text.replacen(
        "[[tenant.host]]\nname = \"t01-current\"",
        &format!(
            "[[tenant.host]]\nname = \"t01-current\"\nidentity_file = \"{}\"",
            fifo.display()
        ),
        1,
    );
    let text = text.replacen(
        "[[tenant.host]]\nname = \"t02-behind\"",
        &format!(
            "[[tenant.host]]\nname = \"t02-behind\"\nconnect_timeout = 3\npassword = {{ command = \"sleep 61; echo pw\" }}\nidentity_file = \"{}\"",
            stranger.display()
        ),
        1,
    );
    std::fs::write(&inventory, &text).unwrap();
    let check = ecfleet()
        .args(["inventory", "check", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    let warnings = String::from_utf8_lossy(&check.stderr);
    assert!(
        warnings.contains("FIFO") && warnings.contains("t01-current"),
        "{warnings}"
    );
    let started = std::time::Instant::now();
    let (code, report, stderr) = fleet.audit(&inventory, &["--no-share"]);
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    assert_eq!(code, 2, "{stderr}");
    let t01 = host(&report, "t01-current");
    assert_eq!(t01["error_kind"], "credential", "{t01}");
    assert!(t01["error"].as_str().unwrap().contains("FIFO"), "{t01}");
    let t02 = host(&report, "t02-behind");
    assert_eq!(t02["error_kind"], "credential", "{t02}");
    assert!(
        t02["error"].as_str().unwrap().contains("password command"),
        "{t02}"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.starts_with("sleep 61")),
        "the password command's group was killed"
    );
    assert_eq!(host(&report, "t02-staging")["reachable"], true);
    // Out-of-range concurrency on the command line is invalid input, like in the inventory.
    for bad in ["0", "99999999"] {
        let out = audit_command(&inventory)
            .args(["--concurrency", bad, "--no-share"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "--concurrency {bad}");
    }
}
