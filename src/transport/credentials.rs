//! Credentials and key material for one run, each read once however many hosts share it, each
//! read under the deadline of the host that asked first.

use std::time::Duration;

use super::cache::OnceMap;
use crate::inventory::{Secret, SecretRef};

/// Secrets by reference, resolved at most once per run (a password command runs once, not once
/// per host). A failure is kept too: every host that shares the reference reports it.
#[derive(Default)]
pub struct SecretCache {
    secrets: OnceMap<SecretRef, Result<Secret, String>>,
}

impl SecretCache {
    pub async fn resolve(&self, reference: &SecretRef, limit: Duration) -> Result<Secret, String> {
        self.secrets
            .get_or_load(reference, || async {
                reference.resolve(limit).await.map_err(|e| e.to_string())
            })
            .await
    }
}
