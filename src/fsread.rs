//! Reading the controller's own small input files (keys, known_hosts, password files) safely:
//! only regular files (a FIFO would block the reader until someone writes to it, a device such as
//! `/dev/zero` never ends), and never more than a cap. Callers run these reads under the host's
//! deadline as well.

use std::io::Read;
use std::path::Path;

/// What `inventory check` and the readers say about a path that is not a regular file.
#[cfg(unix)]
pub fn not_regular_reason(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a FIFO (a read would wait for a writer)")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device, not a file")
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// What `inventory check` and the readers say about a path that is not a regular file: Windows
/// has no FIFOs or device files in the file system, so a directory or a reparse point without a
/// file behind it is all there is to refuse.
#[cfg(not(unix))]
pub fn not_regular_reason(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else {
        Some("not a regular file")
    }
}

/// The whole file, when it is a regular file of at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if let Some(why) = not_regular_reason(&meta) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {why}", path.display()),
        ));
    }
    let file = std::fs::File::open(path)?;
    let mut data = Vec::with_capacity(meta.len().min(cap) as usize);
    file.take(cap + 1).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {} KiB", path.display(), cap >> 10),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_big_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Would block forever if it opened the FIFO.
        let err = read_regular(&fifo, 1024).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 1024)
            .unwrap_err()
            .to_string();
        assert!(err.contains("device"), "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(read_regular(&big, 1024).is_err());
        assert_eq!(read_regular(&big, 4096).unwrap().len(), 2048);
    }
}
