//! Keytab files: the keys of a Kerberos principal, as MIT's `ktutil`/`kadmin ktadd` and
//! Windows' `ktpass` write them (the MIT keytab format, version 0x502, big-endian). ecfleet
//! reads a user's AES key from one so that a WinRM host is reached with Kerberos and no
//! password. The key bytes never leave this module's types except into the Kerberos client,
//! and nothing here prints them.

use std::fmt;
use std::path::Path;

/// Most a keytab may be: a few entries are a few hundred bytes; a host's keytab with every
/// service and old key versions stays far below this.
pub const MAX_KEYTAB_BYTES: u64 = 1 << 20;

/// One key of a keytab.
#[derive(Clone)]
pub struct KeytabEntry {
    /// The principal's name components (`["alice"]`, `["HTTP", "ec01.contoso.local"]`).
    pub components: Vec<String>,
    pub realm: String,
    /// The key version number (the 32-bit one when present, else the 8-bit one).
    pub kvno: u32,
    /// RFC 3961 encryption type (17 AES128, 18 AES256, 23 RC4, …).
    pub enctype: i32,
    key: Vec<u8>,
}

impl KeytabEntry {
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn principal(&self) -> String {
        format!("{}@{}", self.components.join("/"), self.realm)
    }
}

impl fmt::Debug for KeytabEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeytabEntry({} kvno {} enctype {}, key hidden)",
            self.principal(),
            self.kvno,
            self.enctype
        )
    }
}

/// The entries of one keytab file.
#[derive(Debug, Clone, Default)]
pub struct Keytab {
    pub entries: Vec<KeytabEntry>,
}

/// The AES encryption types ecfleet's Kerberos uses, best first (RFC 3962).
const AES256: i32 = 18;
const AES128: i32 = 17;

impl Keytab {
    /// Reads `path` (a regular file of at most [`MAX_KEYTAB_BYTES`]).
    pub fn read(path: &Path) -> Result<Keytab, String> {
        let bytes = crate::fsread::read_regular(path, MAX_KEYTAB_BYTES)
            .map_err(|e| format!("cannot read the keytab {}: {e}", path.display()))?;
        Keytab::parse(&bytes).map_err(|e| format!("the keytab {} {e}", path.display()))
    }

    /// The entries of a keytab's bytes; the error says what is wrong with the file.
    pub fn parse(bytes: &[u8]) -> Result<Keytab, String> {
        let mut r = Reader { bytes, at: 0 };
        match r.u16() {
            Some(0x0502) => {}
            Some(0x0501) => {
                return Err(
                    "is in the old keytab format 0x501: write it again with ktutil or ktpass"
                        .into(),
                );
            }
            _ => return Err("is not a keytab (no 0x0502 header)".into()),
        }
        let mut entries = Vec::new();
        while r.at < bytes.len() {
            let size = r.i32().ok_or("ends inside an entry's length")?;
            let len = size.unsigned_abs() as usize;
            let body = r
                .take(len)
                .ok_or_else(|| format!("is cut: an entry of {len} bytes at byte {}", r.at))?;
            if size <= 0 {
                continue; // a hole left by a removed entry
            }
            entries.push(entry(body).ok_or_else(|| {
                format!("has a damaged entry of {len} bytes ending at byte {}", r.at)
            })?);
        }
        Ok(Keytab { entries })
    }

    /// The key to log in as `account` of `realm` (both compared without case, as Active
    /// Directory does): the newest key version, AES256 before AES128. The error names what
    /// the keytab holds instead.
    pub fn key_for(&self, account: &str, realm: &str) -> Result<&KeytabEntry, String> {
        let wanted = |e: &&KeytabEntry| {
            e.realm.eq_ignore_ascii_case(realm)
                && e.components.len() == 1
                && e.components[0].eq_ignore_ascii_case(account)
        };
        let mine: Vec<&KeytabEntry> = self.entries.iter().filter(wanted).collect();
        if mine.is_empty() {
            let mut held: Vec<String> = self.entries.iter().map(|e| e.principal()).collect();
            held.dedup();
            return Err(format!(
                "has no key for {account}@{realm} (it holds {})",
                if held.is_empty() {
                    "nothing".to_string()
                } else {
                    held.join(", ")
                }
            ));
        }
        let newest = mine.iter().map(|e| e.kvno).max().unwrap_or(0);
        // An AES key of the wrong length for its type is damage: never used.
        let sound = |e: &&&KeytabEntry| match e.enctype {
            AES256 => e.key.len() == 32,
            AES128 => e.key.len() == 16,
            _ => false,
        };
        [AES256, AES128]
            .iter()
            .find_map(|t| {
                mine.iter()
                    .filter(sound)
                    .find(|e| e.kvno == newest && e.enctype == *t)
                    .copied()
            })
            .ok_or_else(|| {
                let types: Vec<String> = mine
                    .iter()
                    .filter(|e| e.kvno == newest)
                    .map(|e| e.enctype.to_string())
                    .collect();
                format!(
                    "has no AES key for {account}@{realm} at its newest version {newest} (encryption types {}): ecfleet uses AES; write the keytab with AES256 (ktpass /crypto AES256-SHA1, or ktutil addent -e aes256-cts-hmac-sha1-96)",
                    types.join(", ")
                )
            })
    }
}

fn entry(body: &[u8]) -> Option<KeytabEntry> {
    let mut r = Reader { bytes: body, at: 0 };
    let count = r.u16()?;
    let realm = r.string()?;
    let components = (0..count).map(|_| r.string()).collect::<Option<Vec<_>>>()?;
    let _name_type = r.u32()?;
    let _timestamp = r.u32()?;
    let vno8 = r.take(1)?[0];
    let enctype = i32::from(r.u16()? as i16);
    let key_len = r.u16()? as usize;
    let key = r.take(key_len)?.to_vec();
    // A 32-bit key version follows when the entry has room for it (MIT's format notes).
    let kvno = match r.u32() {
        Some(v) if v != 0 => v,
        _ => u32::from(vno8),
    };
    Some(KeytabEntry {
        components,
        realm,
        kvno,
        enctype,
        key,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| v as i32)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        Some(String::from_utf8_lossy(raw).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry as MIT writes it.
    fn entry_bytes(
        components: &[&str],
        realm: &str,
        kvno: u32,
        enctype: u16,
        key: &[u8],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend((components.len() as u16).to_be_bytes());
        body.extend((realm.len() as u16).to_be_bytes());
        body.extend(realm.as_bytes());
        for c in components {
            body.extend((c.len() as u16).to_be_bytes());
            body.extend(c.as_bytes());
        }
        body.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
        body.extend(1_700_000_000u32.to_be_bytes());
        body.push(kvno as u8);
        body.extend(enctype.to_be_bytes());
        body.extend((key.len() as u16).to_be_bytes());
        body.extend(key);
        body.extend(kvno.to_be_bytes());
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn keytab(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0x05, 0x02];
        for e in entries {
            out.extend(e);
        }
        out
    }

    #[test]
    fn picks_the_newest_aes256_key_of_the_account() {
        let bytes = keytab(&[
            entry_bytes(&["svc-ec"], "CONTOSO.LOCAL", 2, 18, &[1; 32]),
            entry_bytes(&["svc-ec"], "CONTOSO.LOCAL", 3, 17, &[2; 16]),
            entry_bytes(&["svc-ec"], "CONTOSO.LOCAL", 3, 18, &[3; 32]),
            entry_bytes(&["svc-ec"], "CONTOSO.LOCAL", 3, 23, &[4; 16]),
            entry_bytes(
                &["HTTP", "ec01.contoso.local"],
                "CONTOSO.LOCAL",
                9,
                18,
                &[5; 32],
            ),
        ]);
        let kt = Keytab::parse(&bytes).unwrap();
        assert_eq!(kt.entries.len(), 5);
        let e = kt.key_for("SVC-EC", "contoso.local").unwrap();
        assert_eq!((e.kvno, e.enctype, e.key()), (3, 18, &[3u8; 32][..]));
        assert!(!format!("{e:?}").contains("3, 3"), "the key is not printed");
    }

    #[test]
    fn says_what_the_keytab_holds_when_the_account_is_missing() {
        let bytes = keytab(&[entry_bytes(&["bob"], "FABRIKAM.LOCAL", 1, 18, &[1; 32])]);
        let err = Keytab::parse(&bytes)
            .unwrap()
            .key_for("alice", "CONTOSO.LOCAL")
            .unwrap_err();
        assert!(err.contains("no key for alice@CONTOSO.LOCAL"), "{err}");
        assert!(err.contains("bob@FABRIKAM.LOCAL"), "{err}");
    }

    #[test]
    fn an_rc4_only_keytab_is_refused_with_the_fix() {
        let bytes = keytab(&[entry_bytes(&["alice"], "CONTOSO.LOCAL", 1, 23, &[1; 16])]);
        let err = Keytab::parse(&bytes)
            .unwrap()
            .key_for("alice", "CONTOSO.LOCAL")
            .unwrap_err();
        assert!(
            err.contains("no AES key") && err.contains("ktpass"),
            "{err}"
        );
    }

    #[test]
    fn holes_are_skipped_and_damage_is_reported() {
        let mut bytes = keytab(&[entry_bytes(&["alice"], "R", 1, 18, &[1; 32])]);
        bytes.extend((-10i32).to_be_bytes());
        bytes.extend([0u8; 10]);
        assert_eq!(Keytab::parse(&bytes).unwrap().entries.len(), 1);
        let cut = &bytes[..bytes.len() - 30];
        assert!(Keytab::parse(cut).unwrap_err().contains("is cut"));
        assert!(
            Keytab::parse(b"hello")
                .unwrap_err()
                .contains("not a keytab")
        );
        assert!(Keytab::parse(&[5, 1]).unwrap_err().contains("0x501"));
    }
}
