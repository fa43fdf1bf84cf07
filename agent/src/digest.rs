//! SHA-256 of a file, streamed through one buffer: the agent proves what it received (the
//! installer), what it gathered (a backup) and what it is (its self-check) this way.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The file's SHA-256 (lower-case hex) and size, read in 64 KiB pieces.
pub fn sha256_file(path: &Path) -> Result<(String, u64), String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    sha256_reader(&mut file).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// SHA-256 and length of everything `reader` gives.
pub fn sha256_reader(reader: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = [0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, size))
}
