//! The share's side of backups, on real files in a temporary directory.

use super::*;
use crate::digest::hex;
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn files(content: &str) -> Vec<NewFile> {
    let make = |role, data: Vec<u8>| NewFile {
        role,
        sha256: sha(&data),
        content: Content::Bytes(data),
        source_name: None,
        reused: None,
    };
    vec![
        make(
            Role::ServerConfiguration,
            format!("tar of {content}").into_bytes(),
        ),
        make(
            Role::AppliedPolicy,
            format!("{{\"policy\":\"{content}\"}}").into_bytes(),
        ),
        make(
            Role::Configuration,
            format!("{{\"reading\":\"{content}\"}}").into_bytes(),
        ),
    ]
}

fn meta(tag: Tag, date: &str) -> Meta<'static> {
    Meta {
        tenant: "contoso",
        host: "ec01",
        tag,
        date: date.parse().unwrap(),
        collected_at: "2026-12-02T01:00:00Z".into(),
        engine_version: Some("2.4.18.0".into()),
        run_id: None,
        warnings: vec![],
        export_method: Some("MigrateSettings.ps1 (test)".into()),
        applied_policy_created: None,
        importable: Some("MigratedPolicy.json".into()),
    }
}

#[test]
fn a_second_backup_of_the_day_gets_a_new_name_and_the_first_is_untouched() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let first = b
        .store(meta(Tag::Nightly, "2026-12-02"), files("one"))
        .unwrap();
    assert_eq!(
        first.manifest.name,
        "EntraConnect-config-2026-12-02-nightly"
    );
    assert!(first.manifest.verified);
    let policy = b.dir.join("EntraConnect-config-2026-12-02-nightly.json");
    let before = std::fs::read(&policy).unwrap();
    let second = b
        .store(meta(Tag::Nightly, "2026-12-02"), files("two"))
        .unwrap();
    assert_eq!(
        second.manifest.name,
        "EntraConnect-config-2026-12-02-nightly-2"
    );
    assert_eq!(std::fs::read(&policy).unwrap(), before, "never overwritten");
    // The backup's .sha256 has a line per file in sha256sum's format, as the manifest.
    let sums = std::fs::read_to_string(
        b.dir
            .join("EntraConnect-config-2026-12-02-nightly-2.sha256"),
    )
    .unwrap();
    let lines: Vec<String> = second
        .manifest
        .files
        .iter()
        .map(|f| format!("{}  {}", f.sha256, f.name))
        .collect();
    assert_eq!(sums, format!("{}\n", lines.join("\n")));
    for f in &second.manifest.files {
        assert_eq!(sha(&std::fs::read(b.dir.join(&f.name)).unwrap()), f.sha256);
    }
    assert_eq!(
        b.list()
            .iter()
            .map(|s| s.manifest.name.as_str())
            .collect::<Vec<_>>(),
        vec![
            "EntraConnect-config-2026-12-02-nightly",
            "EntraConnect-config-2026-12-02-nightly-2"
        ]
    );
    assert_eq!(b.dir, share.path().join("tenants/contoso/ec01/backups"));
}

#[test]
fn concurrent_backups_of_one_host_never_share_a_name() {
    let share = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8)
        .map(|i| {
            let root = share.path().to_path_buf();
            std::thread::spawn(move || {
                let b = HostBackups::new(&root, "contoso", "ec01");
                b.store(meta(Tag::PreUpgrade, "2026-12-02"), files(&i.to_string()))
                    .unwrap()
                    .manifest
                    .name
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 8, "{names:?}");
}

#[test]
fn a_file_that_does_not_match_its_hash_leaves_no_backup_behind() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    b.store(meta(Tag::Nightly, "2026-12-01"), files("good"))
        .unwrap();
    let mut bad = files("bad");
    bad[0].sha256 = sha(b"something else");
    let err = b.store(meta(Tag::Nightly, "2026-12-02"), bad).unwrap_err();
    assert!(err.to_string().contains("read back with SHA-256"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&b.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("2026-12-02"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(b.list().len(), 1, "the earlier backup is intact");
}

#[test]
fn a_backup_without_its_manifest_is_incomplete_and_not_listed() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let s = b
        .store(meta(Tag::Nightly, "2026-12-02"), files("x"))
        .unwrap();
    std::fs::remove_file(b.dir.join(format!("{}.manifest.json", s.manifest.name))).unwrap();
    assert!(b.list().is_empty());
    // Its name stays taken: the next backup of the day does not reuse it.
    let next = b
        .store(meta(Tag::Nightly, "2026-12-02"), files("y"))
        .unwrap();
    assert_eq!(
        next.manifest.name,
        "EntraConnect-config-2026-12-02-nightly-2"
    );
}

#[test]
fn manifest_names_parse_with_both_tags_and_numbers() {
    let d: Date = "2026-12-02".parse().unwrap();
    let p = |n: &str| parse_manifest_name(n);
    assert_eq!(
        p("EntraConnect-config-2026-12-02-nightly.manifest.json"),
        Some((d, Tag::Nightly, 1))
    );
    assert_eq!(
        p("EntraConnect-config-2026-12-02-pre-upgrade-3.manifest.json"),
        Some((d, Tag::PreUpgrade, 3))
    );
    assert_eq!(
        p("EntraConnect-config-2026-12-02-pre-upgrade.manifest.json"),
        Some((d, Tag::PreUpgrade, 1))
    );
    assert_eq!(
        p("EntraConnect-config-2026-12-02-nightly-1.manifest.json"),
        None
    );
    assert_eq!(
        p("EntraConnect-config-2026-12-02-weekly.manifest.json"),
        None
    );
    assert_eq!(
        p("EntraConnect-config-2026-13-02-nightly.manifest.json"),
        None
    );
}

#[test]
fn retention_keeps_the_newest_and_every_pre_upgrade_backup() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    // Five nights, and an upgrade after the second (stored in that order, as time goes).
    for day in 1..=5 {
        b.store(
            meta(Tag::Nightly, &format!("2026-11-0{day}")),
            files(&day.to_string()),
        )
        .unwrap();
        if day == 2 {
            b.store(meta(Tag::PreUpgrade, "2026-11-02"), files("pre"))
                .unwrap();
        }
    }
    let today: Date = "2026-11-05".parse().unwrap();
    // Keep two nightly backups: the three oldest go; the pre-upgrade one stays.
    let removed = b.prune(
        Retention {
            keep: Some(2),
            keep_days: None,
        },
        today,
    );
    assert_eq!(
        removed,
        vec![
            "EntraConnect-config-2026-11-01-nightly",
            "EntraConnect-config-2026-11-02-nightly",
            "EntraConnect-config-2026-11-03-nightly"
        ]
    );
    let left: Vec<String> = b.list().into_iter().map(|s| s.manifest.name).collect();
    assert_eq!(
        left,
        vec![
            "EntraConnect-config-2026-11-02-pre-upgrade",
            "EntraConnect-config-2026-11-04-nightly",
            "EntraConnect-config-2026-11-05-nightly"
        ]
    );
    // Removed backups leave no file behind.
    let stray = std::fs::read_dir(&b.dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("11-01")
        })
        .count();
    assert_eq!(stray, 0);
    // By age, two weeks later: every nightly is past 3 days, but the newest stays.
    let later: Date = "2026-11-19".parse().unwrap();
    let removed = b.prune(
        Retention {
            keep: None,
            keep_days: Some(3),
        },
        later,
    );
    assert_eq!(removed, vec!["EntraConnect-config-2026-11-04-nightly"]);
    assert_eq!(
        b.newest().unwrap().manifest.name,
        "EntraConnect-config-2026-11-05-nightly"
    );
    // No retention setting: nothing is removed.
    assert!(b.prune(Retention::default(), later).is_empty());
}

#[test]
fn count_and_age_together_keep_what_either_keeps() {
    let r = Retention {
        keep: Some(1),
        keep_days: Some(7),
    };
    let today: Date = "2026-11-20".parse().unwrap();
    assert!(
        r.keeps(0, "2026-01-01".parse().unwrap(), today),
        "the newest by count"
    );
    assert!(
        r.keeps(5, "2026-11-15".parse().unwrap(), today),
        "recent by age"
    );
    assert!(!r.keeps(5, "2026-11-01".parse().unwrap(), today));
}

#[test]
fn a_backup_after_retention_never_takes_a_lower_number_and_newest_is_the_newest() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let today: Date = "2026-12-02".parse().unwrap();
    b.store(meta(Tag::Nightly, "2026-12-02"), files("1"))
        .unwrap();
    b.store(meta(Tag::Nightly, "2026-12-02"), files("2"))
        .unwrap();
    let removed = b.prune(
        Retention {
            keep: Some(1),
            keep_days: None,
        },
        today,
    );
    assert_eq!(removed, vec!["EntraConnect-config-2026-12-02-nightly"]);
    let third = b
        .store(meta(Tag::Nightly, "2026-12-02"), files("3"))
        .unwrap();
    assert_eq!(
        third.manifest.name,
        "EntraConnect-config-2026-12-02-nightly-3"
    );
    assert_eq!(b.newest().unwrap().manifest.name, third.manifest.name);
}

#[test]
fn backups_within_one_second_are_ordered_by_when_they_were_stored() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    // A nightly, then a pre-upgrade one of the same day, within the same second: the newest is
    // the pre-upgrade one, whatever the tags and numbers say.
    b.store(meta(Tag::Nightly, "2026-12-02"), files("1"))
        .unwrap();
    let pre = b
        .store(meta(Tag::PreUpgrade, "2026-12-02"), files("2"))
        .unwrap();
    assert_eq!(b.newest().unwrap().manifest.name, pre.manifest.name);
    let again = b
        .store(meta(Tag::Nightly, "2026-12-02"), files("3"))
        .unwrap();
    assert_eq!(b.newest().unwrap().manifest.name, again.manifest.name);
}
