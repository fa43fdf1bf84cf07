//! A fetched file on its way to the share: written to a temporary file in the host's backup
//! folder as it arrives, hashed on the way, and refused past the size the host declared. The
//! controller's memory per file is the transport's buffer, whatever the host sends; the store
//! links the finished file into place ([`super::store`]) and verifies it from disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::digest::hex;

/// A file being received.
pub struct Spool {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    written: u64,
    declared: u64,
}

/// A received file, complete on disk: removed when dropped unless the store took it.
#[derive(Debug)]
pub struct Spooled {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// Already read back from the share and matched `sha256` (a file taken from an earlier
    /// backup, [`super::reuse`]): the store need not read it once more.
    pub read_back: bool,
}

/// A new temporary name in `dir`, named as the share's other temporary files, so that a
/// crash's leftover is cleaned ([`crate::share::clean_stale_temp_files_in`]).
pub fn temp_name(dir: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!(".incoming.tmp-{}-{n}", std::process::id()))
}

impl Drop for Spooled {
    fn drop(&mut self) {
        // Linked into place by the store, or not wanted: the temporary name goes either way.
        let _ = fs::remove_file(&self.path);
    }
}

impl Spool {
    /// A new temporary file in `dir` (which exists) for a file the host says is `declared`
    /// bytes. Named as the share's other temporary files, so a crash's leftover is cleaned.
    pub fn create(dir: &Path, declared: u64) -> io::Result<Spool> {
        let path = temp_name(dir);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Spool {
            path,
            file,
            hasher: Sha256::new(),
            written: 0,
            declared,
        })
    }

    /// The file complete: synced, with its size and SHA-256.
    pub fn finish(mut self) -> io::Result<Spooled> {
        self.file.flush()?;
        self.file.sync_all()?;
        let spooled = Spooled {
            path: std::mem::take(&mut self.path),
            size: self.written,
            sha256: hex(&std::mem::take(&mut self.hasher).finalize()),
            read_back: false,
        };
        // Dropped now: the file is closed; its path (taken above) is not removed.
        Ok(spooled)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.declared {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the host sent more than the {} bytes it declared",
                    self.declared
                ),
            ));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The SHA-256 of a file on disk, read a buffer at a time.
pub fn sha256_of(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    // 64 KiB: below the allocator's mmap threshold, so no fresh zeroed pages per file.
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_hashes_on_the_way_refuses_more_than_declared_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path(), 10).unwrap();
        spool.write_all(b"hello ").unwrap();
        spool.write_all(b"host").unwrap();
        let done = spool.finish().unwrap();
        assert_eq!(done.size, 10);
        assert_eq!(done.sha256, sha256_of(&done.path).unwrap());
        assert_eq!(done.sha256, hex(&Sha256::digest(b"hello host")));
        drop(done);
        let mut spool = Spool::create(dir.path(), 4).unwrap();
        let err = spool.write_all(b"too long").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        drop(spool);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
