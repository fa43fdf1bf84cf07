//! A minimal POSIX ustar writer: regular files only, read back by any `tar` (Windows 10 and
//! later ship `tar.exe`) and by Python's `tarfile` in the tests. The agent packs the
//! `Get-ADSyncServerConfiguration` dump, a folder of XML files, into one archive with it.

use std::io::Write;
use std::path::Path;

const BLOCK: usize = 512;

/// The time every entry carries (2000-01-01T00:00:00Z): the host writes the dump anew each
/// night, so its files' own times would make an unchanged configuration a different archive
/// every night, and the share could never keep one copy of it (docs/backup.md).
pub const FIXED_MTIME: u64 = 946_684_800;

/// Writes `files` (archive name, content) as a ustar archive, with `mtime` (seconds since the
/// epoch) on every entry.
pub fn write(out: &mut impl Write, files: &[(String, Vec<u8>)], mtime: u64) -> Result<(), String> {
    for (name, data) in files {
        out.write_all(&header(name, data.len() as u64, mtime)?)
            .and_then(|_| out.write_all(data))
            .and_then(|_| out.write_all(&vec![0u8; padding(data.len())]))
            .map_err(|e| format!("cannot write the archive: {e}"))?;
    }
    // Two zero blocks end the archive.
    out.write_all(&[0u8; 2 * BLOCK])
        .map_err(|e| format!("cannot write the archive: {e}"))
}

fn padding(len: usize) -> usize {
    (BLOCK - len % BLOCK) % BLOCK
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn header(name: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK], String> {
    let mut h = [0u8; BLOCK];
    let bytes = name.as_bytes();
    // Names over 100 bytes go into the 155-byte prefix, split at a '/'.
    let (prefix, rest) = if bytes.len() <= 100 {
        (&[][..], bytes)
    } else {
        let split = bytes[..bytes.len().min(156)]
            .iter()
            .rposition(|&b| b == b'/')
            .filter(|&i| bytes.len() - i - 1 <= 100)
            .ok_or_else(|| format!("the name {name} is too long for a tar archive"))?;
        (&bytes[..split], &bytes[split + 1..])
    };
    if size >= 8u64.pow(11) {
        return Err(format!("{name} is too large for a tar archive"));
    }
    h[..rest.len()].copy_from_slice(rest);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    Ok(h)
}

/// The regular files under `dir`, as (name relative to `dir` with `/` separators, content),
/// sorted by name so the same folder always makes the same archive.
pub fn files_under(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", d.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let data = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                out.push((name, data));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_read_back_by_the_system_tar() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!(
            "{}/{}.xml",
            "SynchronizationRules".repeat(5),
            "r".repeat(60)
        );
        let files = vec![
            (
                "GlobalSettings/GlobalSettings.xml".to_string(),
                b"<settings/>".to_vec(),
            ),
            (long.clone(), vec![b'x'; 1000]),
            ("empty.xml".to_string(), Vec::new()),
        ];
        let archive = dir.path().join("dump.tar");
        let mut out = Vec::new();
        write(&mut out, &files, 1_795_000_000).unwrap();
        assert_eq!(out.len() % BLOCK, 0);
        std::fs::write(&archive, &out).unwrap();
        let listed = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(text.contains("GlobalSettings/GlobalSettings.xml"), "{text}");
        assert!(text.contains(&long), "{text}");
        let extract = dir.path().join("x");
        std::fs::create_dir(&extract).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&extract)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(files_under(&extract).unwrap(), {
            let mut f = files.clone();
            f.sort_by(|a, b| a.0.cmp(&b.0));
            f
        });
    }
}
