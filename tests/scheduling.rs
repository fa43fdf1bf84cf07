//! docs/scheduling.md's systemd units, taken from the page itself, checked by systemd's own
//! `systemd-analyze verify` (Debian's systemd): no error and no warning, with the documented
//! ExecStart pointing at the built binary.

use std::path::Path;
use std::process::Command;

/// The ```ini blocks of the page that start with `# /etc/systemd/system/<name>`: (name, text).
fn units(page: &str) -> Vec<(String, String)> {
    page.split("```ini\n")
        .skip(1)
        .filter_map(|block| {
            let text = block.split("```").next()?;
            let name = text
                .lines()
                .next()?
                .strip_prefix("# /etc/systemd/system/")?
                .trim()
                .to_string();
            Some((name, text.to_string()))
        })
        .collect()
}

fn verify(dir: &Path, names: &[String]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(names)
        .current_dir(dir)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_documented_timers_and_services_pass_systemd_analyze_verify() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scheduling.md"))
            .unwrap();
    let units = units(&page);
    let names: Vec<String> = units.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        names,
        [
            "ecfleet-audit.service",
            "ecfleet-audit.timer",
            "ecfleet-backup.service",
            "ecfleet-backup.timer"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &units {
        let text = text.replace("/usr/local/bin/ecfleet", env!("CARGO_BIN_EXE_ecfleet"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (ok, said) = verify(dir.path(), &names);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    // The check can fail: a misspelt key is reported.
    let timer = dir.path().join("ecfleet-audit.timer");
    let text = std::fs::read_to_string(&timer).unwrap();
    std::fs::write(&timer, text.replace("OnCalendar=", "OnCalender=")).unwrap();
    let (_, said) = verify(dir.path(), &names);
    assert!(said.contains("OnCalender"), "{said}");
}
