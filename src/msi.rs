//! Entra Connect installers (`AzureADConnect.msi`) on the controller: read an MSI's own identity
//! from its Property table (`ProductName`, `ProductVersion`, `UpgradeCode`, …) with a real MSI
//! database reader, hash the file, and decide whether it is an Entra Connect installer at all.
//! Also writes lab installers: valid MSI databases with the same Property rows, optionally padded
//! to a realistic size, so that tests and demos exercise the real reader.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::EcVersion;
use crate::digest::hex;

/// What ecfleet knows about one installer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsiInfo {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub product_name: String,
    pub product_version: String,
    pub upgrade_code: Option<String>,
    pub product_code: Option<String>,
    pub manufacturer: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MsiError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid MSI database ({detail}); download AzureADConnect.msi again from the Entra admin center"
    )]
    NotMsi { path: PathBuf, detail: String },
    #[error("{path} has no {property} in its Property table; it is not a usable installer")]
    MissingProperty {
        path: PathBuf,
        property: &'static str,
    },
    #[error(
        "{path} is not an Entra Connect installer: its ProductName is \"{product_name}\" (UpgradeCode {upgrade_code}); use AzureADConnect.msi from the Entra admin center"
    )]
    Foreign {
        path: PathBuf,
        product_name: String,
        upgrade_code: String,
    },
    #[error(
        "{path} has SHA-256 {actual}, but --sha256 pins {expected}: the file is not the one you meant, or it was altered"
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// The product names Microsoft has shipped the installer under (both brandings).
const PRODUCT_NAMES: &[&str] = &["azure ad connect", "entra connect"];

/// What the lab's installers carry. The real wizard MSI's UpgradeCode is not documented; this is
/// one of the codes the wizard itself looks up (docs/design/DOMAIN.md §2, marked [?] there).
pub const LAB_UPGRADE_CODE: &str = "{DC9E604E-37B0-4EFC-B429-21721CF49D0D}";
pub const LAB_PRODUCT_NAME: &str = "Microsoft Entra Connect";

impl MsiInfo {
    pub fn version(&self) -> Option<EcVersion> {
        self.product_version.parse().ok()
    }

    /// `Ok` when the product name is one of Entra Connect's.
    pub fn check_is_entra_connect(&self) -> Result<(), MsiError> {
        let name = self.product_name.to_ascii_lowercase();
        if PRODUCT_NAMES.iter().any(|n| name.contains(n)) {
            Ok(())
        } else {
            Err(MsiError::Foreign {
                path: self.path.clone(),
                product_name: self.product_name.clone(),
                upgrade_code: self.upgrade_code.clone().unwrap_or_else(|| "none".into()),
            })
        }
    }

    /// `Ok` when `pin` (hex, any case) is this file's SHA-256.
    pub fn check_pin(&self, pin: &str) -> Result<(), MsiError> {
        if pin.trim().eq_ignore_ascii_case(&self.sha256) {
            Ok(())
        } else {
            Err(MsiError::HashMismatch {
                path: self.path.clone(),
                expected: pin.trim().to_ascii_lowercase(),
                actual: self.sha256.clone(),
            })
        }
    }
}

/// SHA-256 and size of a file, read in 1 MiB pieces.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Reads an installer's identity and hash. Does not judge it (see
/// [`MsiInfo::check_is_entra_connect`]).
pub fn read(path: &Path) -> Result<MsiInfo, MsiError> {
    let io = |source| MsiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (sha256, size) = hash_file(path).map_err(io)?;
    let file = std::fs::File::open(path).map_err(io)?;
    parse(path, file, sha256, size)
}

/// [`read`] on an installer already in memory (`data`, whose SHA-256 is `sha256`): the bytes
/// judged are the bytes that will be sent, read and hashed once.
pub fn read_bytes(path: &Path, data: &[u8], sha256: String) -> Result<MsiInfo, MsiError> {
    parse(path, std::io::Cursor::new(data), sha256, data.len() as u64)
}

fn parse<F: Read + std::io::Seek>(
    path: &Path,
    reader: F,
    sha256: String,
    size: u64,
) -> Result<MsiInfo, MsiError> {
    let not_msi = |detail: String| MsiError::NotMsi {
        path: path.to_path_buf(),
        detail,
    };
    let mut package = msi::Package::open(reader).map_err(|e| not_msi(e.to_string()))?;
    if !package.has_table("Property") {
        return Err(not_msi("it has no Property table".into()));
    }
    // Named columns: a malformed Property table is an error here, never an index out of range.
    let rows = package
        .select_rows(msi::Select::table("Property").columns(&["Property", "Value"]))
        .map_err(|e| not_msi(e.to_string()))?;
    let mut props = std::collections::HashMap::new();
    for row in rows {
        if let (Some(k), Some(v)) = (row[0].as_str(), row[1].as_str()) {
            props.insert(k.to_string(), v.to_string());
        }
    }
    let required = |property: &'static str| {
        props
            .get(property)
            .cloned()
            .ok_or(MsiError::MissingProperty {
                path: path.to_path_buf(),
                property,
            })
    };
    Ok(MsiInfo {
        path: path.to_path_buf(),
        sha256,
        size,
        product_name: required("ProductName")?,
        product_version: required("ProductVersion")?,
        upgrade_code: props.get("UpgradeCode").cloned(),
        product_code: props.get("ProductCode").cloned(),
        manufacturer: props.get("Manufacturer").cloned(),
    })
}

/// A GUID derived from text, so that a lab installer for a version is always the same file.
fn stable_guid(seed: &str) -> String {
    let h = hex(&Sha256::digest(seed.as_bytes())).to_ascii_uppercase();
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Writes a lab installer for `version`: a valid MSI database whose Property table says it is
/// Entra Connect `version`, padded with a `Disk1.cab` stream of pseudo-random bytes to about
/// `size_bytes` (0: no padding). `product_name` overrides the name, to make a foreign MSI.
pub fn write_lab_msi(
    path: &Path,
    version: &str,
    product_name: Option<&str>,
    size_bytes: u64,
) -> Result<MsiInfo, MsiError> {
    let io = |source| MsiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("msi.tmp");
    {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        let mut package = msi::Package::create(msi::PackageType::Installer, file).map_err(io)?;
        let name = product_name.unwrap_or(LAB_PRODUCT_NAME);
        package
            .summary_info_mut()
            .set_title("Installation Database");
        package.summary_info_mut().set_subject(name);
        package
            .summary_info_mut()
            .set_author("Microsoft Corporation");
        package.summary_info_mut().set_arch("x64");
        package
            .summary_info_mut()
            .set_comments(format!("ecfleet lab installer for {name} {version}"));
        package
            .create_table(
                "Property",
                vec![
                    msi::Column::build("Property").primary_key().id_string(72),
                    msi::Column::build("Value").text_string(0),
                ],
            )
            .map_err(io)?;
        let rows: Vec<(&str, String)> = vec![
            ("ProductName", name.to_string()),
            ("ProductVersion", version.to_string()),
            ("Manufacturer", "Microsoft Corporation".into()),
            ("UpgradeCode", LAB_UPGRADE_CODE.into()),
            ("ProductCode", stable_guid(&format!("{name} {version}"))),
            ("ProductLanguage", "1033".into()),
            ("ALLUSERS", "1".into()),
        ];
        package
            .insert_rows(
                msi::Insert::into("Property").rows(
                    rows.into_iter()
                        .map(|(k, v)| vec![msi::Value::from(k), msi::Value::Str(v)])
                        .collect(),
                ),
            )
            .map_err(io)?;
        if size_bytes > 0 {
            let mut stream = package.write_stream("Disk1.cab").map_err(io)?;
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ size_bytes;
            let mut block = vec![0u8; 1 << 20];
            let mut left = size_bytes;
            while left > 0 {
                for chunk in block.chunks_mut(8) {
                    // xorshift64: cheap bytes that no file system or transfer can compress away.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
                }
                let n = left.min(block.len() as u64) as usize;
                stream.write_all(&block[..n]).map_err(io)?;
                left -= n as u64;
            }
        }
        package.flush().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_installer_reads_back_through_the_real_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("AzureADConnect.msi");
        let written = write_lab_msi(&path, "2.6.91.0", None, 3 << 20).unwrap();
        let read_back = read(&path).unwrap();
        assert_eq!(written, read_back);
        assert_eq!(read_back.product_version, "2.6.91.0");
        assert_eq!(read_back.product_name, "Microsoft Entra Connect");
        assert_eq!(read_back.upgrade_code.as_deref(), Some(LAB_UPGRADE_CODE));
        assert!(read_back.size > 3 << 20, "padded: {}", read_back.size);
        read_back.check_is_entra_connect().unwrap();
        read_back
            .check_pin(&read_back.sha256.to_uppercase())
            .unwrap();
        assert!(matches!(
            read_back.check_pin(&"0".repeat(64)),
            Err(MsiError::HashMismatch { .. })
        ));
        // The same version gives the same file.
        let again = dir.path().join("again.msi");
        assert_eq!(
            write_lab_msi(&again, "2.6.91.0", None, 3 << 20)
                .unwrap()
                .sha256,
            read_back.sha256
        );
    }

    #[test]
    fn foreign_and_corrupt_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("7z.msi");
        let info = write_lab_msi(&foreign, "24.8.0.0", Some("7-Zip 24.08 (x64)"), 0).unwrap();
        let err = info.check_is_entra_connect().unwrap_err().to_string();
        assert!(err.contains("not an Entra Connect installer"), "{err}");
        assert!(err.contains("7-Zip"), "{err}");

        let corrupt = dir.path().join("corrupt.msi");
        std::fs::write(&corrupt, b"MZ this is not an OLE compound file").unwrap();
        let err = read(&corrupt).unwrap_err().to_string();
        assert!(err.contains("is not a valid MSI database"), "{err}");

        // A good MSI cut short is corrupt too.
        let good = dir.path().join("good.msi");
        write_lab_msi(&good, "2.6.91.0", None, 1 << 20).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let truncated = dir.path().join("truncated.msi");
        std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
        assert!(matches!(read(&truncated), Err(MsiError::NotMsi { .. })));

        let missing = read(&dir.path().join("nope.msi")).unwrap_err().to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
