//! The agent's `stage` step: where the installer stands on the host. The controller sends the
//! installer to `<path>.ecfleet-partial` (resuming a cut transfer); the agent checks its SHA-256
//! and moves it to `<path>` in one rename, and on Windows checks its Authenticode signature.

use serde::{Deserialize, Serialize};

pub const STAGE_SCHEMA_VERSION: u32 = 1;
pub const STAGE_KIND: &str = "ecfleet-stage";
/// The suffix of the file being received.
pub const PARTIAL_SUFFIX: &str = ".ecfleet-partial";

/// Where the installer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageState {
    /// `<path>` holds the expected content (it was already there).
    Present,
    /// The received file had the expected content and was moved to `<path>` now.
    Verified,
    /// Part of it arrived: `bytes` of it, to be continued.
    Partial,
    /// Nothing usable there (a wrong or oversized file was removed).
    Absent,
}

/// The installer's Authenticode signature (Windows hosts, from `Get-AuthenticodeSignature`),
/// with what PowerShell says beside its status: most WinVerifyTrust failures (an untrusted
/// root, a revoked or expired certificate) come back as `UnknownError` with the reason only in
/// `StatusMessage` (docs/design/DOMAIN.md §8b, S51).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `Status`: `Valid`, `NotSigned`, `HashMismatch`, `NotTrusted`, `UnknownError`, …
    pub status: String,
    /// The signer certificate's subject.
    pub signer: Option<String>,
    /// `StatusMessage`.
    #[serde(default)]
    pub status_message: Option<String>,
    /// `SignatureType`: `Authenticode`, `Catalog` or `None`.
    #[serde(default)]
    pub signature_type: Option<String>,
    /// The subject of the certificate the signer's chain ends in (built on the host).
    #[serde(default)]
    pub root: Option<String>,
}

/// The roots Microsoft signs its code under (the signer's chain must end in one of them).
pub const MICROSOFT_CODE_ROOTS: &[&str] = &[
    "Microsoft Root Certificate Authority 2011",
    "Microsoft Root Certificate Authority 2010",
    "Microsoft Root Certificate Authority",
    "Microsoft Root Authority",
];

/// The value of attribute `key` (`O`, `CN`, …) in an X.500 name as Windows renders it
/// (`CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US`;
/// values with commas come in double quotes, `""` inside them is a quote).
pub fn name_attribute(name: &str, key: &str) -> Option<String> {
    let mut parts = Vec::new();
    let (mut current, mut quoted) = (String::new(), false);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            ',' | '+' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_string())
    })
}

impl Signature {
    /// Valid, signed by Microsoft Corporation (the signer's `O` exactly), under one of
    /// Microsoft's code-signing roots.
    pub fn is_microsoft(&self) -> bool {
        self.problem().is_none()
    }

    /// Why the installer is not Microsoft's, with the fix; `None` when it is.
    pub fn problem(&self) -> Option<String> {
        let message = self
            .status_message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or("no message");
        if self.status != "Valid" {
            let lower = message.to_ascii_lowercase();
            let fix = if lower.contains("root") && lower.contains("not trusted") {
                "this host does not trust the root the signature chains to: update its root certificates (Windows Update, or certutil -generateSSTFromWU on a connected machine), then stage again; the file itself may be fine"
            } else if lower.contains("revoked") || lower.contains("expired") {
                "the signing certificate is revoked or expired on this host's view: download AzureADConnect.msi again from the Entra admin center and compare its SHA-256"
            } else {
                "download AzureADConnect.msi again from the Entra admin center and compare its SHA-256"
            };
            return Some(format!(
                "Get-AuthenticodeSignature says {} ({message}); fix: {fix}",
                self.status
            ));
        }
        let signer = self.signer.as_deref().unwrap_or("");
        if name_attribute(signer, "O").as_deref() != Some("Microsoft Corporation") {
            return Some(format!(
                "signed by {}, not by Microsoft Corporation (O=Microsoft Corporation); fix: use Microsoft's installer from the Entra admin center",
                if signer.is_empty() {
                    "an unnamed signer"
                } else {
                    signer
                }
            ));
        }
        match self.root.as_deref() {
            Some(root)
                if name_attribute(root, "CN")
                    .is_some_and(|cn| MICROSOFT_CODE_ROOTS.contains(&cn.as_str())) =>
            {
                None
            }
            Some(root) => Some(format!(
                "the signer's certificate chain ends in {root}, not in a Microsoft code-signing root; fix: use Microsoft's installer from the Entra admin center"
            )),
            None => Some(
                "the signer's certificate chain could not be built on the host; fix: update the host's root certificates and stage again".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str =
        "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";
    const ROOT: &str = "CN=Microsoft Root Certificate Authority 2010, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";

    fn sig(status: &str, signer: &str, root: Option<&str>, message: &str) -> Signature {
        Signature {
            status: status.into(),
            signer: Some(signer.into()),
            status_message: Some(message.into()),
            signature_type: Some("Authenticode".into()),
            root: root.map(str::to_string),
        }
    }

    #[test]
    fn only_microsoft_corporation_exactly_under_a_microsoft_root_passes() {
        assert!(sig("Valid", MS, Some(ROOT), "Signature verified.").is_microsoft());
        // A substring is not enough: the organisation must be Microsoft Corporation itself.
        let lookalike = "CN=x, O=\"Not Microsoft Corporation, Inc\", C=US";
        assert!(!sig("Valid", lookalike, Some(ROOT), "").is_microsoft());
        let fake = "CN=Contoso, O=Microsoft Corporation Fake, C=US";
        assert!(!sig("Valid", fake, Some(ROOT), "").is_microsoft());
        let why = sig("Valid", MS, Some("CN=Contoso Root CA, O=Contoso"), "")
            .problem()
            .unwrap();
        assert!(why.contains("Contoso Root CA"), "{why}");
        assert!(
            sig("Valid", MS, None, "")
                .problem()
                .unwrap()
                .contains("chain")
        );
    }

    #[test]
    fn an_untrusted_root_on_the_host_is_not_download_again() {
        let why = sig(
            "UnknownError",
            MS,
            None,
            "A certificate chain processed, but terminated in a root certificate which is not trusted by the trust provider.",
        )
        .problem()
        .unwrap();
        assert!(
            why.contains("UnknownError") && why.contains("root certificates"),
            "{why}"
        );
        assert!(!why.contains("download"), "{why}");
        let why = sig(
            "HashMismatch",
            MS,
            None,
            "The contents of file might have been changed",
        )
        .problem()
        .unwrap();
        assert!(why.contains("download"), "{why}");
    }

    #[test]
    fn quoted_names_are_read_whole() {
        assert_eq!(
            name_attribute("CN=a, O=\"Contoso, Ltd\", C=US", "O").as_deref(),
            Some("Contoso, Ltd")
        );
        assert_eq!(
            name_attribute(MS, "o").as_deref(),
            Some("Microsoft Corporation")
        );
        assert_eq!(name_attribute("", "O"), None);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub schema_version: u32,
    pub kind: String,
    pub path: String,
    pub state: StageState,
    /// Bytes of the file (partial: how many arrived).
    pub bytes: u64,
    /// Why a file that was there was removed (wrong content, too large).
    pub removed: Option<String>,
    /// On Windows, once the content is right; `None` on lab hosts (nothing to check there).
    pub signature: Option<Signature>,
    /// Free space on the volume the installer is received on, when the host can tell: how the
    /// controller tells a full disk from a cut transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
}
