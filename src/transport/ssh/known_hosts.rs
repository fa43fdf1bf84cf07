//! Host-key verification against an OpenSSH known_hosts file: plain and hashed (`|1|salt|hash`)
//! host patterns, `[host]:port`, wildcards and negations, `@revoked` and comments. A key that
//! matches is trusted; a host with a different key is *changed* (always refused); a host with no
//! entry is *unknown* (refused unless the caller accepts new keys, which appends it).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;

/// What the known_hosts file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    Trusted,
    /// No entry for this host.
    Unknown,
    /// The host is known with another key; `line` is the first conflicting entry.
    Changed {
        line: usize,
    },
    /// The key is marked `@revoked`.
    Revoked {
        line: usize,
    },
}

struct Entry {
    line: usize,
    revoked: bool,
    cert_authority: bool,
    patterns: String,
    key: Option<PublicKey>,
}

/// A parsed known_hosts file.
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// The name OpenSSH records for a host: `host` on port 22, `[host]:port` otherwise.
pub fn host_pattern_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

impl KnownHosts {
    /// Reads the file; a missing file is an empty one (every host is unknown).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts {
                entries: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let (mut revoked, mut cert_authority) = (false, false);
            if first == "@revoked" || first == "@cert-authority" {
                revoked = first == "@revoked";
                cert_authority = first == "@cert-authority";
                first = fields.next().unwrap_or_default();
            }
            let _algorithm = fields.next();
            // A key we cannot parse (an algorithm this build lacks) is kept as "some other key".
            let key = fields
                .next()
                .and_then(|b64| russh::keys::parse_public_key_base64(b64).ok());
            entries.push(Entry {
                line: i + 1,
                revoked,
                cert_authority,
                patterns: first.to_string(),
                key,
            });
        }
        KnownHosts { entries }
    }

    fn entries_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| !e.cert_authority && host_matches(name, &e.patterns))
    }

    /// Key algorithms recorded for a host, so the client can ask the server for one it knows.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_pattern_name(host, port);
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self.entries_for(&name).filter(|e| !e.revoked) {
            if let Some(k) = &e.key
                && !out.contains(&k.algorithm())
            {
                out.push(k.algorithm());
            }
        }
        out
    }

    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> HostKeyVerdict {
        let name = host_pattern_name(host, port);
        let mut first_other = None;
        for e in self.entries_for(&name) {
            let same = e
                .key
                .as_ref()
                .is_some_and(|k| k.key_data() == key.key_data());
            if e.revoked {
                if same {
                    return HostKeyVerdict::Revoked { line: e.line };
                }
                continue;
            }
            if same {
                return HostKeyVerdict::Trusted;
            }
            first_other.get_or_insert(e.line);
        }
        // Revoked keys can also be listed without a host pattern match ("*").
        match first_other {
            Some(line) => HostKeyVerdict::Changed { line },
            None => HostKeyVerdict::Unknown,
        }
    }
}

/// Serialises appends from concurrent connections to the same file.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

/// Appends a newly accepted key (never used for changed keys). Concurrent connections to the
/// same host (several inventory hosts behind one address) record it once.
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    let _guard = LEARN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if KnownHosts::load(path)?.check(host, port, key) == HostKeyVerdict::Trusted {
        return Ok(());
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    let openssh = key.to_openssh().map_err(std::io::Error::other)?;
    writeln!(file, "{} {}", host_pattern_name(host, port), openssh)?;
    file.sync_all()
}

/// `SHA256:…`, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// OpenSSH pattern-list matching: comma-separated, `*` and `?` wildcards, `!` negation, and
/// hashed `|1|salt|hash` entries.
fn host_matches(name: &str, patterns: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            if hashed_matches(name, hashed) {
                matched = true;
            }
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(negated, name) {
                return false;
            }
        } else if wildcard(pattern, name) {
            matched = true;
        }
    }
    matched
}

fn hashed_matches(name: &str, hashed: &str) -> bool {
    let mut parts = hashed.split('|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    /// `|1|salt|hash` for a name, as `ssh-keygen -H` writes it.
    fn hashed(name: &str) -> String {
        let salt = [7u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            BASE64.encode(&salt),
            BASE64.encode(&mac.finalize().into_bytes())
        )
    }

    #[test]
    fn plain_hashed_and_port_entries_are_trusted() {
        let text = format!(
            "# comment\n[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n{} ssh-ed25519 {KEY_B}\nweb1,web2 ssh-ed25519 {KEY_A}\n",
            hashed("[10.0.0.9]:2200")
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(
            kh.check("127.0.0.1", 2222, &key(KEY_A)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(
            kh.check("10.0.0.9", 2200, &key(KEY_B)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(kh.check("web2", 22, &key(KEY_A)), HostKeyVerdict::Trusted);
        assert_eq!(
            kh.check("127.0.0.1", 22, &key(KEY_A)),
            HostKeyVerdict::Unknown,
            "port matters"
        );
        assert_eq!(
            kh.algorithms_for("127.0.0.1", 2222),
            vec![Algorithm::Ed25519]
        );
    }

    #[test]
    fn a_different_key_is_changed_and_names_the_line() {
        let kh = KnownHosts::parse(&format!("\n[h]:2222 ssh-ed25519 {KEY_A}\n"));
        assert_eq!(
            kh.check("h", 2222, &key(KEY_B)),
            HostKeyVerdict::Changed { line: 2 }
        );
        let hashed_kh = KnownHosts::parse(&format!("{} ssh-ed25519 {KEY_A}\n", hashed("h")));
        assert_eq!(
            hashed_kh.check("h", 22, &key(KEY_B)),
            HostKeyVerdict::Changed { line: 1 }
        );
    }

    #[test]
    fn revoked_wildcard_and_negated_entries() {
        let text =
            format!("@revoked * ssh-ed25519 {KEY_B}\n*.corp,!bad.corp ssh-ed25519 {KEY_A}\n");
        let kh = KnownHosts::parse(&text);
        assert_eq!(
            kh.check("ec1.corp", 22, &key(KEY_A)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(
            kh.check("bad.corp", 22, &key(KEY_A)),
            HostKeyVerdict::Unknown
        );
        assert_eq!(
            kh.check("ec1.corp", 22, &key(KEY_B)),
            HostKeyVerdict::Revoked { line: 1 }
        );
    }

    #[test]
    fn learning_appends_a_line_that_is_then_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("other ssh-ed25519 {KEY_B}")).unwrap();
        learn(&path, "127.0.0.1", 2222, &key(KEY_A)).unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh.check("127.0.0.1", 2222, &key(KEY_A)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(kh.check("other", 22, &key(KEY_B)), HostKeyVerdict::Trusted);
        assert!(fingerprint(&key(KEY_A)).starts_with("SHA256:"));
    }
}
