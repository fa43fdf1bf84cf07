//! The two facts ecfleet takes from a `krb5.conf` when the inventory names one
//! (`krb5_conf = "/etc/krb5.conf"`): the default realm (`[libdefaults] default_realm`) and a
//! realm's KDCs (`[realms] REALM = { kdc = … }`), in the syntax of MIT's krb5.conf(5): sections,
//! `tag = value` relations, `{ … }` subsections, `#`/`;` comments, and the `include FILE` and
//! `includedir DIR` directives. Nothing else in the file is read, so a setting there (DNS
//! lookup of KDCs, `udp_preference_limit`, …) changes nothing; docs/winrm.md says so.

use std::path::{Path, PathBuf};

/// Most a krb5.conf (each file of it) may be.
const MAX_CONF_BYTES: u64 = 1 << 20;
/// How deep `include` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;
/// How many files one krb5.conf may bring in, itself included.
const MAX_FILES: usize = 64;

/// What ecfleet knows from one krb5.conf and the files it includes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Krb5Conf {
    pub default_realm: Option<String>,
    /// Each realm's KDCs as written, in order, with where each was written.
    pub realms: Vec<RealmKdcs>,
    /// The files read so far: each is read once, however often it is included.
    read: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmKdcs {
    pub realm: String,
    pub kdcs: Vec<Written>,
}

/// A value and the file and line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Krb5Conf {
    /// Reads `path` and its includes.
    pub fn read(path: &Path) -> Result<Krb5Conf, String> {
        let mut conf = Krb5Conf::default();
        read_into(&mut conf, path, 0)?;
        Ok(conf)
    }

    /// The KDCs of `realm` (compared without case), in the file's order.
    pub fn kdcs(&self, realm: &str) -> Vec<&Written> {
        self.realms
            .iter()
            .filter(|r| r.realm.eq_ignore_ascii_case(realm))
            .flat_map(|r| r.kdcs.iter())
            .collect()
    }
}

fn read_into(conf: &mut Krb5Conf, path: &Path, depth: usize) -> Result<(), String> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(format!(
            "{}: includes nest deeper than {MAX_INCLUDE_DEPTH} (does a file include itself?)",
            path.display()
        ));
    }
    // A file included twice (or including itself) is read once: includes cannot multiply.
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if conf.read.contains(&canonical) {
        return Ok(());
    }
    if conf.read.len() >= MAX_FILES {
        return Err(format!(
            "{}: more than {MAX_FILES} files are included",
            path.display()
        ));
    }
    conf.read.push(canonical);
    let bytes = crate::fsread::read_regular(path, MAX_CONF_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    parse_into(conf, &text, path, depth)
}

/// One file's text; `path` is where it was read from (for messages and relative includes).
pub fn parse_into(
    conf: &mut Krb5Conf,
    text: &str,
    path: &Path,
    depth: usize,
) -> Result<(), String> {
    let mut section = String::new();
    // The subsection path inside the current section (`["CONTOSO.LOCAL"]` inside a realm).
    let mut open: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let at = |what: &str| format!("{} line {line_no}: {what}", path.display());
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("includedir") {
            let dir = PathBuf::from(rest.trim());
            if !dir.is_absolute() {
                return Err(at("an includedir must name an absolute path"));
            }
            include_dir(conf, &dir, depth).map_err(|e| at(&e))?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("include")
            && rest.starts_with(char::is_whitespace)
        {
            let file = PathBuf::from(rest.trim());
            if !file.is_absolute() {
                return Err(at("an include must name an absolute path"));
            }
            read_into(conf, &file, depth + 1)?;
            continue;
        }
        if line.starts_with('[') {
            let Some((name, _)) = line.strip_prefix('[').and_then(|l| l.split_once(']')) else {
                return Err(at("a section header needs its closing `]`"));
            };
            if !open.is_empty() {
                return Err(at("a section starts before `}` closed the one above"));
            }
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if line.starts_with('}') {
            if open.pop().is_none() {
                return Err(at("`}` closes nothing"));
            }
            continue;
        }
        let Some((tag, value)) = line.split_once('=') else {
            return Err(at("expected `tag = value`, `tag = {` or `}`"));
        };
        let tag = tag.trim();
        let value = value.trim();
        if value == "{" {
            open.push(tag.to_string());
            continue;
        }
        let value = unquote(value.trim_end_matches('*').trim());
        match (section.as_str(), open.as_slice()) {
            ("libdefaults", []) if tag == "default_realm" => {
                conf.default_realm.get_or_insert(value);
            }
            ("realms", [realm]) if tag == "kdc" => {
                let written = Written {
                    value,
                    file: path.to_path_buf(),
                    line: line_no,
                };
                match conf.realms.iter_mut().find(|r| r.realm == *realm) {
                    Some(r) => r.kdcs.push(written),
                    None => conf.realms.push(RealmKdcs {
                        realm: realm.clone(),
                        kdcs: vec![written],
                    }),
                }
            }
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err(format!(
            "{}: `{}` = {{ is never closed with `}}`",
            path.display(),
            open.join(" ")
        ));
    }
    Ok(())
}

/// `includedir`: the files whose names MIT reads (letters, digits, `-`, `_`, or ending in
/// `.conf`), in name order.
fn include_dir(conf: &mut Krb5Conf, dir: &Path, depth: usize) -> Result<(), String> {
    let listing =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(".conf")
                    || n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        })
        .collect();
    names.sort();
    for file in names {
        read_into(conf, &file, depth + 1)?;
    }
    Ok(())
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIT_EXAMPLE: &str = r#"
# as in krb5.conf(5)
[libdefaults]
    default_realm = CONTOSO.LOCAL
    dns_lookup_kdc = true

[realms]
    CONTOSO.LOCAL = {
        kdc = dc01.contoso.local
        kdc = dc02.contoso.local:750
        admin_server = dc01.contoso.local
        auth_to_local = {
            kdc = not-a-kdc
        }
    }
    FABRIKAM.LOCAL = {
        kdc = "[2001:db8::5]:88"
    }
; trailing comment
[domain_realm]
    .contoso.local = CONTOSO.LOCAL
"#;

    #[test]
    fn reads_the_default_realm_and_each_realms_kdcs_in_order() {
        let mut conf = Krb5Conf::default();
        parse_into(&mut conf, MIT_EXAMPLE, Path::new("/etc/krb5.conf"), 0).unwrap();
        assert_eq!(conf.default_realm.as_deref(), Some("CONTOSO.LOCAL"));
        let kdcs: Vec<(&str, usize)> = conf
            .kdcs("contoso.local")
            .iter()
            .map(|w| (w.value.as_str(), w.line))
            .collect();
        assert_eq!(
            kdcs,
            [("dc01.contoso.local", 9), ("dc02.contoso.local:750", 10)]
        );
        assert_eq!(conf.kdcs("FABRIKAM.LOCAL")[0].value, "[2001:db8::5]:88");
        assert!(conf.kdcs("NOWHERE").is_empty());
    }

    #[test]
    fn damage_is_named_by_file_and_line() {
        let mut conf = Krb5Conf::default();
        let err = parse_into(
            &mut conf,
            "[realms]\n R = {\n kdc = a\n",
            Path::new("/x/krb5.conf"),
            0,
        )
        .unwrap_err();
        assert!(
            err.contains("/x/krb5.conf") && err.contains("never closed"),
            "{err}"
        );
        let err = parse_into(&mut conf, "[realms]\n}\n", Path::new("/x/k"), 0).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = parse_into(&mut conf, "[realms\n", Path::new("/x/k"), 0).unwrap_err();
        assert!(err.contains("closing"), "{err}");
        let err = parse_into(&mut conf, "[realms]\nnonsense\n", Path::new("/x/k"), 0).unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("tag = value"),
            "{err}"
        );
    }

    #[test]
    fn includes_are_followed_and_a_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("krb5.conf");
        let inc = dir.path().join("conf.d");
        std::fs::create_dir(&inc).unwrap();
        std::fs::write(
            inc.join("contoso.conf"),
            "[realms]\nCONTOSO.LOCAL = {\n kdc = dc09:88\n}\n",
        )
        .unwrap();
        std::fs::write(
            inc.join("ignored.rpmsave~"),
            "[realms]\nX = {\nkdc = bad\n}\n",
        )
        .unwrap();
        std::fs::write(
            &main,
            format!(
                "[libdefaults]\ndefault_realm = CONTOSO.LOCAL\nincludedir {}\n",
                inc.display()
            ),
        )
        .unwrap();
        let conf = Krb5Conf::read(&main).unwrap();
        assert_eq!(conf.kdcs("CONTOSO.LOCAL")[0].value, "dc09:88");
        assert!(conf.kdcs("X").is_empty());
        let looping = dir.path().join("loop.conf");
        std::fs::write(&looping, format!("include {}\n", looping.display())).unwrap();
        // A file that includes itself is read once, not again and again.
        let conf = Krb5Conf::read(&looping).unwrap();
        assert!(conf.realms.is_empty() && conf.read.len() == 1);
    }
}
