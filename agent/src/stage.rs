//! The `stage` step: where the installer the controller sends stands on this host. The
//! controller writes `<path>.ecfleet-partial` (resuming where a cut transfer stopped); this step
//! reports how much arrived, and once all of it has, checks its SHA-256 and moves it to
//! `<path>` in one rename, so `<path>` only ever holds a verified installer. A staged file is
//! hashed again on every check (it may have been replaced since). On Windows the signature is
//! checked too ([`crate::backend::signature`]).

use std::path::{Path, PathBuf};

use ecfleet_proto::stage::{
    PARTIAL_SUFFIX, STAGE_KIND, STAGE_SCHEMA_VERSION, StageResult, StageState,
};

use crate::backend::Backend;

/// What the controller asks for.
pub struct Request {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Remove what a cut transfer left first (the disk filled: give the space back).
    pub discard: bool,
}

fn sha256_of(path: &Path) -> Result<String, String> {
    crate::digest::sha256_file(path).map(|(hex, _)| hex)
}

fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Checks, and finishes when it can, the staging of `request.path`.
pub fn check(backend: &Backend, request: &Request) -> Result<StageResult, String> {
    let partial = PathBuf::from(format!("{}{PARTIAL_SUFFIX}", request.path.display()));
    let want = request.sha256.to_ascii_lowercase();
    let mut removed = None;
    let mut state = StageState::Absent;
    let mut bytes = 0;
    if request.discard
        && let Some(size) = size_of(&partial)
    {
        remove(&partial)?;
        removed = Some(format!(
            "the received part ({size} bytes) was removed as asked"
        ));
    }
    if let Some(size) = size_of(&request.path) {
        if size == request.size && sha256_of(&request.path)? == want {
            state = StageState::Present;
            bytes = size;
        } else {
            removed = Some(format!(
                "{} held other content ({size} bytes)",
                request.path.display()
            ));
            remove(&request.path)?;
        }
    }
    if state == StageState::Absent
        && let Some(size) = size_of(&partial)
    {
        if size < request.size {
            state = StageState::Partial;
            bytes = size;
        } else if size == request.size && sha256_of(&partial)? == want {
            std::fs::rename(&partial, &request.path)
                .map_err(|e| format!("cannot move {} into place: {e}", partial.display()))?;
            state = StageState::Verified;
            bytes = size;
        } else {
            removed = Some(format!(
                "the received file ({size} bytes) did not have SHA-256 {want}; it will be sent again"
            ));
            remove(&partial)?;
        }
    }
    let signature = match state {
        StageState::Present | StageState::Verified => {
            crate::backend::signature(backend, &request.path)?
        }
        _ => None,
    };
    Ok(StageResult {
        schema_version: STAGE_SCHEMA_VERSION,
        kind: STAGE_KIND.into(),
        path: request.path.display().to_string(),
        state,
        bytes,
        removed,
        signature,
        free_bytes: crate::backend::free_bytes(backend, &request.path),
    })
}

fn remove(path: &Path) -> Result<(), String> {
    std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use sha2::{Digest, Sha256};

    fn request(dir: &Path, data: &[u8]) -> Request {
        Request {
            path: dir.join("staged/AzureADConnect.msi"),
            sha256: Sha256::digest(data)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect(),
            size: data.len() as u64,
            discard: false,
        }
    }

    #[test]
    fn a_partial_file_is_reported_then_verified_and_moved_into_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("staged")).unwrap();
        let backend = Backend::Lab(dir.path().to_path_buf());
        let data = vec![7u8; 3000];
        let r = request(dir.path(), &data);
        assert_eq!(check(&backend, &r).unwrap().state, StageState::Absent);
        let partial = dir.path().join("staged/AzureADConnect.msi.ecfleet-partial");
        std::fs::write(&partial, &data[..1000]).unwrap();
        let got = check(&backend, &r).unwrap();
        assert_eq!((got.state, got.bytes), (StageState::Partial, 1000));
        std::fs::write(&partial, &data).unwrap();
        let got = check(&backend, &r).unwrap();
        assert_eq!(got.state, StageState::Verified);
        assert!(!partial.exists() && r.path.exists());
        assert_eq!(check(&backend, &r).unwrap().state, StageState::Present);
    }

    #[test]
    fn wrong_content_is_removed_never_kept_or_moved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("staged")).unwrap();
        let backend = Backend::Lab(dir.path().to_path_buf());
        let data = vec![7u8; 3000];
        let r = request(dir.path(), &data);
        let partial = dir.path().join("staged/AzureADConnect.msi.ecfleet-partial");
        let mut bad = data.clone();
        bad[10] = 8;
        std::fs::write(&partial, &bad).unwrap();
        let got = check(&backend, &r).unwrap();
        assert_eq!(got.state, StageState::Absent);
        assert!(got.removed.unwrap().contains("sent again"));
        assert!(!partial.exists() && !r.path.exists());
        // A staged file that was changed since is removed too.
        std::fs::write(&r.path, &bad).unwrap();
        let got = check(&backend, &r).unwrap();
        assert_eq!(got.state, StageState::Absent);
        assert!(!r.path.exists());
    }

    #[test]
    fn discard_removes_a_partial_file_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("staged")).unwrap();
        let backend = Backend::Lab(dir.path().to_path_buf());
        let data = vec![7u8; 3000];
        let mut r = request(dir.path(), &data);
        r.discard = true;
        let partial = dir.path().join("staged/AzureADConnect.msi.ecfleet-partial");
        std::fs::write(&partial, &data[..1000]).unwrap();
        let got = check(&backend, &r).unwrap();
        assert_eq!((got.state, got.bytes), (StageState::Absent, 0));
        assert!(got.removed.unwrap().contains("1000 bytes"));
        assert!(!partial.exists());
    }
}
