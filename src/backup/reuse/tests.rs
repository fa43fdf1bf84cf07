//! Taking files from an earlier backup, on real files in a temporary directory.

use super::*;
use crate::backup::store::{Content, HostBackups, Meta, NewFile, Retention, Role, Tag};
use crate::digest::hex;
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn meta(date: &str) -> Meta<'static> {
    Meta {
        tenant: "contoso",
        host: "ec01",
        tag: Tag::Nightly,
        date: date.parse().unwrap(),
        collected_at: "2026-12-02T01:00:00Z".into(),
        engine_version: Some("2.4.18.0".into()),
        run_id: None,
        warnings: vec![],
        export_method: None,
        applied_policy_created: None,
        importable: Some("MigratedPolicy.json".into()),
    }
}

const DUMP: &[u8] = b"<ma-data>an unchanged dump</ma-data>";

/// A backup of the dump, the dump taken from `from` when given and it can be.
fn back_up(b: &HostBackups, date: &str, from: Option<&Stored>) -> Stored {
    let reusable = Reusable::of(from);
    let dump = match reusable
        .find(&sha(DUMP), DUMP.len() as u64)
        .and_then(|c| take(&b.folder().unwrap(), c, DUMP.len() as u64, &sha(DUMP)))
    {
        Some((spooled, reused)) => NewFile {
            role: Role::ServerConfiguration,
            sha256: spooled.sha256.clone(),
            content: Content::Spooled(spooled),
            source_name: None,
            reused: Some(reused),
        },
        None => NewFile {
            role: Role::ServerConfiguration,
            sha256: sha(DUMP),
            content: Content::Bytes(DUMP.to_vec()),
            source_name: None,
            reused: None,
        },
    };
    let reading = format!("{{\"night\":\"{date}\"}}").into_bytes();
    let files = vec![
        dump,
        NewFile {
            role: Role::Configuration,
            sha256: sha(&reading),
            content: Content::Bytes(reading),
            source_name: None,
            reused: None,
        },
    ];
    b.store(meta(date), files).unwrap()
}

fn dump_of(s: &Stored) -> std::path::PathBuf {
    s.path_of(Role::ServerConfiguration).unwrap()
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (fs::metadata(a).unwrap(), fs::metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[test]
fn an_unchanged_file_is_the_earlier_backups_file_under_a_second_name() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let first = back_up(&b, "2026-12-01", None);
    let second = back_up(&b, "2026-12-02", Some(&first));
    let file = &second.manifest.files[0];
    assert_eq!(
        file.reused,
        Some(Reused {
            from: "EntraConnect-config-2026-12-01-nightly".into(),
            by: ReusedBy::HardLink
        })
    );
    #[cfg(unix)]
    assert!(same_file(&dump_of(&first), &dump_of(&second)));
    second.verify().unwrap();
    // No temporary name is left behind.
    let left: Vec<String> = fs::read_dir(&b.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn retention_removing_the_first_backup_leaves_the_content_a_kept_one_names() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let mut newest = back_up(&b, "2026-12-01", None);
    for day in 2..=5 {
        newest = back_up(&b, &format!("2026-12-0{day}"), Some(&newest));
    }
    let removed = b.prune(
        Retention {
            keep: Some(1),
            keep_days: None,
        },
        "2026-12-05".parse().unwrap(),
    );
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(
        !b.dir
            .join("EntraConnect-config-2026-12-01-nightly.server-configuration.tar")
            .exists()
    );
    let kept = b.list();
    assert_eq!(kept.len(), 1);
    kept[0].verify().unwrap();
    assert_eq!(fs::read(dump_of(&kept[0])).unwrap(), DUMP);
    // A backup after that still takes the content from the kept one.
    let next = back_up(&b, "2026-12-06", Some(&kept[0]));
    assert_eq!(
        next.manifest.files[0]
            .reused
            .as_ref()
            .map(|r| r.from.as_str()),
        Some("EntraConnect-config-2026-12-05-nightly")
    );
}

#[test]
fn a_changed_or_vanished_earlier_file_is_not_taken() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let first = back_up(&b, "2026-12-01", None);
    let reusable = Reusable::of(Some(&first));
    let candidate = reusable
        .find(&sha(DUMP), DUMP.len() as u64)
        .unwrap()
        .clone();
    // Changed on the share since it was stored (same size, other bytes): not taken, and the
    // temporary link is gone again.
    let mut bytes = DUMP.to_vec();
    bytes[1] ^= 1;
    fs::write(&candidate.path, &bytes).unwrap();
    assert!(take(&b.dir, &candidate, DUMP.len() as u64, &sha(DUMP)).is_none());
    assert_eq!(
        fs::read_dir(&b.dir)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
            .count(),
        0
    );
    fs::remove_file(&candidate.path).unwrap();
    assert!(take(&b.dir, &candidate, DUMP.len() as u64, &sha(DUMP)).is_none());
    // A symbolic link planted in its name, to a file with the very bytes: not taken either.
    #[cfg(unix)]
    {
        let elsewhere = share.path().join("elsewhere.tar");
        fs::write(&elsewhere, DUMP).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &candidate.path).unwrap();
        assert!(take(&b.dir, &candidate, DUMP.len() as u64, &sha(DUMP)).is_none());
    }
}

#[test]
fn where_no_link_can_be_made_the_content_is_copied_on_the_share() {
    let share = tempfile::tempdir().unwrap();
    let b = HostBackups::new(share.path(), "contoso", "ec01");
    let first = back_up(&b, "2026-12-01", None);
    let reusable = Reusable::of(Some(&first));
    let candidate = reusable.find(&sha(DUMP), DUMP.len() as u64).unwrap();
    // As NTFS answers a 1,025th link, or a share without links.
    let (copied, reused) =
        take_linking_with(&b.dir, candidate, DUMP.len() as u64, &sha(DUMP), |_, _| {
            Err(io::Error::other("too many links"))
        })
        .unwrap();
    assert_eq!(reused.by, ReusedBy::Copy);
    assert!(!copied.read_back, "a copy is read back by the store");
    assert_eq!(fs::read(&copied.path).unwrap(), DUMP);
    #[cfg(unix)]
    assert!(!same_file(&copied.path, &dump_of(&first)));
}

#[test]
fn a_first_backup_has_nothing_to_take() {
    assert!(
        Reusable::of(None)
            .find(&sha(DUMP), DUMP.len() as u64)
            .is_none()
    );
}
