//! Host-key verification against an OpenSSH known_hosts file: plain and hashed (`|1|salt|hash`)
//! host patterns, `[host]:port`, wildcards and negations, `@revoked` and comments. A key that
//! matches is trusted; a host with a different key is *changed* (always refused); a revoked key
//! is refused wherever its line stands; a host with no entry is *unknown* (refused unless the
//! caller accepts new keys). Learning a key happens under an in-process lock and an advisory
//! lock on the file, against the file as it is at that moment (so two different keys answering
//! at one address in one run, or two ecfleet processes learning at once, can never both be
//! recorded). Lookups are indexed: plain names go through a map; only wildcard and hashed
//! entries are scanned.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    patterns: String,
    key: Option<PublicKey>,
}

/// A parsed known_hosts file.
pub struct KnownHosts {
    /// Host entries (not revoked, not cert-authority), in file order.
    entries: Vec<Entry>,
    /// Lower-cased plain names (no wildcard, negation or hash) → indexes into `entries`.
    by_name: HashMap<String, Vec<usize>>,
    /// Entries that must be matched pattern by pattern (wildcards, negations, hashes).
    scanned: Vec<usize>,
    /// Revoked keys (their key data, base64 of the wire form) → the line revoking them.
    revoked: HashMap<Vec<u8>, usize>,
}

/// The name OpenSSH records for a host: `host` on port 22, `[host]:port` otherwise.
pub fn host_pattern_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Most a known_hosts file may hold (a `/dev/zero` given by mistake must not read forever).
pub const MAX_KNOWN_HOSTS_BYTES: u64 = 64 << 20;

fn key_bytes(key: &PublicKey) -> Vec<u8> {
    key.to_bytes().unwrap_or_default()
}

fn is_plain(pattern: &str) -> bool {
    !pattern.starts_with('|') && !pattern.starts_with('!') && !pattern.contains(['*', '?'])
}

impl KnownHosts {
    /// Reads the file; a missing file is an empty one (every host is unknown). Only regular
    /// files are read, and at most [`MAX_KNOWN_HOSTS_BYTES`].
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match crate::fsread::read_regular(path, MAX_KNOWN_HOSTS_BYTES) {
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::parse("")),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> Self {
        let mut kh = KnownHosts {
            entries: Vec::new(),
            by_name: HashMap::new(),
            scanned: Vec::new(),
            revoked: HashMap::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            kh.push_line(i + 1, raw);
        }
        kh
    }

    /// Adds line number `number` of the file.
    fn push_line(&mut self, number: usize, raw: &str) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
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
        if revoked {
            // OpenSSH: a revoked key "must not ever be accepted", whatever the order of lines.
            if let Some(k) = &key {
                self.revoked.entry(key_bytes(k)).or_insert(number);
            }
            return;
        }
        if cert_authority {
            return;
        }
        let index = self.entries.len();
        if first.split(',').all(is_plain) {
            for name in first.split(',') {
                self.by_name
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .push(index);
            }
        } else {
            self.scanned.push(index);
        }
        self.entries.push(Entry {
            line: number,
            patterns: first.to_string(),
            key,
        });
    }

    /// The entries for a host name, in file order.
    fn entries_for(&self, name: &str) -> Vec<&Entry> {
        let mut found: Vec<usize> = self
            .by_name
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        found.extend(
            self.scanned
                .iter()
                .copied()
                .filter(|&i| host_matches(name, &self.entries[i].patterns)),
        );
        found.sort_unstable();
        found.dedup();
        found.into_iter().map(|i| &self.entries[i]).collect()
    }

    /// Key algorithms recorded for a host, so the client can ask the server for one it knows.
    pub fn algorithms_for(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_pattern_name(host, port);
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self.entries_for(&name) {
            if let Some(k) = &e.key
                && !out.contains(&k.algorithm())
            {
                out.push(k.algorithm());
            }
        }
        out
    }

    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> HostKeyVerdict {
        if let Some(&line) = self.revoked.get(&key_bytes(key)) {
            return HostKeyVerdict::Revoked { line };
        }
        let name = host_pattern_name(host, port);
        let mut first_other = None;
        for e in self.entries_for(&name) {
            let same = e
                .key
                .as_ref()
                .is_some_and(|k| k.key_data() == key.key_data());
            if same {
                return HostKeyVerdict::Trusted;
            }
            first_other.get_or_insert(e.line);
        }
        match first_other {
            Some(line) => HostKeyVerdict::Changed { line },
            None => HostKeyVerdict::Unknown,
        }
    }
}

/// What this process last saw of a known_hosts file it learned into: the file's length and
/// modification time then, its parse, its line count and whether it ended with a newline. A
/// learn re-reads the file only when another process changed it, so that a first run learning
/// thousands of hosts does not re-parse the whole file once per host.
struct Learned {
    path: PathBuf,
    stamp: (u64, Option<std::time::SystemTime>),
    hosts: KnownHosts,
    lines: usize,
    ends_with_newline: bool,
}

/// Serialises learning within this process (the file lock serialises processes), and keeps
/// what was learned per file.
static LEARNED: Mutex<Vec<Learned>> = Mutex::new(Vec::new());

/// How long learning waits for another process's lock on the file.
const LOCK_WAIT: Duration = Duration::from_secs(5);

fn stamp(file: &std::fs::File) -> std::io::Result<(u64, Option<std::time::SystemTime>)> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Opens the file for appending (created when missing; only a regular file) and takes its
/// advisory lock, waiting up to [`LOCK_WAIT`] for another process.
fn open_locked(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::other(format!(
                    "{} stayed locked by another process for {} s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Records a newly accepted key, checked against the file as it is now (under both locks):
/// `Trusted` when it was recorded (or already was), or the verdict that refuses it (another
/// key was recorded for the host meanwhile, by this run or another process; or it is revoked).
/// The line is appended in one write.
pub fn learn(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> std::io::Result<HostKeyVerdict> {
    let mut learned = LEARNED.lock().unwrap_or_else(|p| p.into_inner());
    let mut file = open_locked(path)?;
    let now = stamp(&file)?;
    let known = learned
        .iter()
        .position(|l| l.path == path)
        .filter(|&i| learned[i].stamp == now);
    let index = match known {
        Some(i) => i,
        None => {
            // First learn into this file, or another process changed it: read it as it is.
            let text = crate::fsread::read_regular(path, MAX_KNOWN_HOSTS_BYTES)?;
            let text = String::from_utf8_lossy(&text);
            learned.retain(|l| l.path != path);
            learned.push(Learned {
                path: path.to_path_buf(),
                stamp: now,
                hosts: KnownHosts::parse(&text),
                lines: text.lines().count(),
                ends_with_newline: text.is_empty() || text.ends_with('\n'),
            });
            learned.len() - 1
        }
    };
    let entry = &mut learned[index];
    let verdict = entry.hosts.check(host, port, key);
    if verdict != HostKeyVerdict::Unknown {
        return Ok(verdict);
    }
    let openssh = key.to_openssh().map_err(std::io::Error::other)?;
    let recorded = format!("{} {}", host_pattern_name(host, port), openssh);
    let separator = if entry.ends_with_newline { "" } else { "\n" };
    file.write_all(format!("{separator}{recorded}\n").as_bytes())?;
    file.sync_all()?;
    entry.lines += 1;
    entry.hosts.push_line(entry.lines, &recorded);
    entry.ends_with_newline = true;
    entry.stamp = stamp(&file)?;
    Ok(HostKeyVerdict::Trusted)
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
    fn a_revoked_key_is_refused_wherever_its_line_stands() {
        // The trusted line comes first: OpenSSH still refuses the key.
        let text = format!("h ssh-ed25519 {KEY_A}\n@revoked h ssh-ed25519 {KEY_A}\n");
        let kh = KnownHosts::parse(&text);
        assert_eq!(
            kh.check("h", 22, &key(KEY_A)),
            HostKeyVerdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn many_plain_and_some_wildcard_entries_are_found_through_the_index() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "10.0.{}.{} ssh-ed25519 {KEY_A}\n",
                i / 250,
                i % 250
            ));
        }
        text.push_str(&format!(
            "*.corp ssh-ed25519 {KEY_B}\n{} ssh-ed25519 {KEY_B}\n",
            hashed("hashed.example")
        ));
        let kh = KnownHosts::parse(&text);
        assert_eq!(
            kh.scanned.len(),
            2,
            "only wildcard and hashed entries are scanned"
        );
        assert_eq!(
            kh.check("10.0.19.249", 22, &key(KEY_A)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(
            kh.check("EC1.CORP", 22, &key(KEY_B)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(
            kh.check("hashed.example", 22, &key(KEY_B)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(
            kh.check("10.0.0.1", 22, &key(KEY_B)),
            HostKeyVerdict::Changed { line: 2 }
        );
    }

    #[test]
    fn learning_appends_a_line_that_is_then_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("other ssh-ed25519 {KEY_B}")).unwrap();
        assert_eq!(
            learn(&path, "127.0.0.1", 2222, &key(KEY_A)).unwrap(),
            HostKeyVerdict::Trusted
        );
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh.check("127.0.0.1", 2222, &key(KEY_A)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(kh.check("other", 22, &key(KEY_B)), HostKeyVerdict::Trusted);
        assert!(fingerprint(&key(KEY_A)).starts_with("SHA256:"));
    }

    #[test]
    fn learning_many_hosts_keeps_line_numbers_and_still_sees_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        for i in 0..300 {
            let host = format!("10.2.{}.{}", i / 250, i % 250);
            assert_eq!(
                learn(&path, &host, 22, &key(KEY_A)).unwrap(),
                HostKeyVerdict::Trusted
            );
            // What this run learned is checked from memory, with its line numbers.
            assert_eq!(
                learn(&path, &host, 22, &key(KEY_B)).unwrap(),
                HostKeyVerdict::Changed { line: i + 1 }
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 300);
        // Another process records a key meanwhile (no trailing newline): the next learn sees it.
        let mut other = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(other, "10.9.9.9 ssh-ed25519 {KEY_B}").unwrap();
        drop(other);
        assert_eq!(
            learn(&path, "10.9.9.9", 22, &key(KEY_A)).unwrap(),
            HostKeyVerdict::Changed { line: 301 }
        );
        assert_eq!(
            learn(&path, "10.9.9.10", 22, &key(KEY_A)).unwrap(),
            HostKeyVerdict::Trusted
        );
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh.check("10.9.9.9", 22, &key(KEY_B)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(
            kh.check("10.9.9.10", 22, &key(KEY_A)),
            HostKeyVerdict::Trusted
        );
        assert_eq!(kh.entries.len(), 302, "one line each, none broken");
    }

    #[test]
    fn a_second_key_at_the_same_address_in_one_run_is_refused_not_learned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        // Both connections saw an empty file when the run started; they learn concurrently.
        let threads: Vec<_> = [KEY_A, KEY_B]
            .into_iter()
            .map(|k| {
                let path = path.clone();
                std::thread::spawn(move || learn(&path, "10.1.1.1", 22, &key(k)).unwrap())
            })
            .collect();
        let verdicts: Vec<HostKeyVerdict> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == HostKeyVerdict::Trusted)
                .count(),
            1,
            "{verdicts:?}"
        );
        assert!(
            verdicts.contains(&HostKeyVerdict::Changed { line: 1 }),
            "{verdicts:?}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn learning_waits_for_another_holder_of_the_file_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, "").unwrap();
        // Another process's ecfleet holds the advisory lock (a second open file description
        // conflicts like another process would).
        let holder = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        holder.lock().unwrap();
        let p = path.clone();
        let learner = std::thread::spawn(move || learn(&p, "h", 22, &key(KEY_A)).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "waited for the lock"
        );
        holder.unlock().unwrap();
        assert_eq!(learner.join().unwrap(), HostKeyVerdict::Trusted);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
