//! Credentials and key material for one run, each read once however many hosts share it, each
//! read under the deadline of the host that asked first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::cache::OnceMap;
use crate::inventory::{Secret, SecretRef};
use crate::transport::winrm::keytab::Keytab;

/// Secrets by reference, resolved at most once per run (a password command runs once, not once
/// per host). A failure is kept too: every host that shares the reference reports it.
#[derive(Default)]
pub struct SecretCache {
    secrets: OnceMap<SecretRef, Result<Secret, String>>,
    keytabs: OnceMap<PathBuf, Result<Arc<Keytab>, String>>,
}

impl SecretCache {
    pub async fn resolve(&self, reference: &SecretRef, limit: Duration) -> Result<Secret, String> {
        self.secrets
            .get_or_load(reference, || async {
                reference.resolve(limit).await.map_err(|e| e.to_string())
            })
            .await
    }

    /// The keytab at `path`, read once per run within `limit` (a file on a share that hangs
    /// costs each host at most its own deadline).
    pub async fn keytab(&self, path: &Path, limit: Duration) -> Result<Arc<Keytab>, String> {
        self.keytabs
            .get_or_load(&path.to_path_buf(), || async {
                let p = path.to_path_buf();
                let read = tokio::task::spawn_blocking(move || Keytab::read(&p));
                match tokio::time::timeout(limit, read).await {
                    Err(_) => Err(format!(
                        "the keytab {} could not be read within {} s",
                        path.display(),
                        limit.as_secs()
                    )),
                    Ok(Err(join)) => Err(format!("reading the keytab {}: {join}", path.display())),
                    Ok(Ok(read)) => read.map(Arc::new),
                }
            })
            .await
    }
}
