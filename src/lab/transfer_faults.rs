//! What the lab server does to the installer's transfer when `machine.toml` asks for it
//! (docs/lab.md): `[faults] staging_drops_at_bytes` drops the connection once when the file
//! being received reaches that offset, and `disk_fills_at_bytes` fails every write past that
//! offset as a full disk does. Only files being received for staging (`*.ecfleet-partial`
//! below `.ecfleet/staged`) are affected, and only behind the lab server: a real sshd cannot
//! be told to fail, so the same scenarios stage normally there.

use std::path::{Path, PathBuf};

use ecfleet_proto::lab::{DISK_FULL_MARK, Machine, STAGING_DROPPED_MARK};
use ecfleet_proto::stage::PARTIAL_SUFFIX;

/// The faults that apply to one open file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferFaults {
    drop_at: Option<u64>,
    fill_at: Option<u64>,
    /// The host's agent folder, where the marks go.
    folder: PathBuf,
}

/// What to do with one write of `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteVerdict {
    /// Write it all.
    Write,
    /// Write the first `n` bytes, then drop the connection.
    WriteThenDrop(usize),
    /// Write the first `n` bytes, then fail as a full disk does.
    WriteThenFull(usize),
}

impl TransferFaults {
    /// The faults for `path` on the host in `root`: none unless it is an installer being
    /// staged and the host's `machine.toml` (read now) names one.
    pub fn for_file(root: &Path, path: &Path) -> Option<TransferFaults> {
        let name = path.file_name()?.to_str()?;
        let staged = root.join(".ecfleet").join("staged");
        if !name.ends_with(PARTIAL_SUFFIX) || !path.starts_with(&staged) {
            return None;
        }
        let text = std::fs::read_to_string(root.join("machine.toml")).ok()?;
        let machine: Machine = toml::from_str(&text).ok()?;
        let faults = TransferFaults {
            drop_at: machine.faults.staging_drops_at_bytes,
            fill_at: machine.faults.disk_fills_at_bytes,
            folder: root.join(".ecfleet"),
        };
        (faults.drop_at.is_some() || faults.fill_at.is_some()).then_some(faults)
    }

    /// The verdict on a write; records a full disk (the host reports it from then on) and the
    /// dropped connection (so that it happens once).
    pub fn write(&self, offset: u64, len: usize) -> WriteVerdict {
        let end = offset + len as u64;
        let upto = |limit: u64| limit.saturating_sub(offset).min(len as u64) as usize;
        if let Some(at) = self.fill_at
            && end > at
        {
            let _ = std::fs::write(self.folder.join(DISK_FULL_MARK), b"full\n");
            return WriteVerdict::WriteThenFull(upto(at));
        }
        let dropped = self.folder.join(STAGING_DROPPED_MARK);
        if let Some(at) = self.drop_at
            && end > at
            && !dropped.exists()
            && std::fs::write(&dropped, b"dropped\n").is_ok()
        {
            return WriteVerdict::WriteThenDrop(upto(at));
        }
        WriteVerdict::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(drop_at: Option<u64>, fill_at: Option<u64>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".ecfleet/staged/abc")).unwrap();
        let mut machine = crate::lab::scenarios::healthy_machine(
            "ec01",
            "contoso",
            "2.5.190.0".parse().unwrap(),
            crate::inventory::Role::Active,
            1,
        );
        machine.faults.staging_drops_at_bytes = drop_at;
        machine.faults.disk_fills_at_bytes = fill_at;
        std::fs::write(
            root.join("machine.toml"),
            toml::to_string_pretty(&machine).unwrap(),
        )
        .unwrap();
        let file = root.join(".ecfleet/staged/abc/AzureADConnect.msi.ecfleet-partial");
        (dir, file)
    }

    #[test]
    fn the_connection_drops_once_at_its_offset() {
        let (dir, file) = host(Some(1000), None);
        let f = TransferFaults::for_file(dir.path(), &file).unwrap();
        assert_eq!(f.write(0, 600), WriteVerdict::Write);
        assert_eq!(f.write(600, 600), WriteVerdict::WriteThenDrop(400));
        // Resumed: it does not drop again.
        assert_eq!(f.write(1000, 600), WriteVerdict::Write);
        let again = TransferFaults::for_file(dir.path(), &file).unwrap();
        assert_eq!(again.write(600, 600), WriteVerdict::Write);
    }

    #[test]
    fn a_full_disk_fails_every_write_past_its_offset() {
        let (dir, file) = host(None, Some(1000));
        let f = TransferFaults::for_file(dir.path(), &file).unwrap();
        assert_eq!(f.write(0, 1000), WriteVerdict::Write);
        assert_eq!(f.write(900, 600), WriteVerdict::WriteThenFull(100));
        assert_eq!(f.write(2000, 600), WriteVerdict::WriteThenFull(0));
        assert!(dir.path().join(".ecfleet").join(DISK_FULL_MARK).exists());
    }

    #[test]
    fn other_files_and_healthy_hosts_are_left_alone() {
        let (dir, file) = host(None, Some(1000));
        let agent = dir.path().join(".ecfleet/ecfleet-agent.ecfleet-partial");
        assert_eq!(TransferFaults::for_file(dir.path(), &agent), None);
        let (healthy, file2) = host(None, None);
        assert_eq!(TransferFaults::for_file(healthy.path(), &file2), None);
        assert!(TransferFaults::for_file(dir.path(), &file).is_some());
    }
}
