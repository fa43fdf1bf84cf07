//! The Kerberos keys of the inventory (`realm`, `kdc`, `keytab`, `krb5_conf` on `[defaults]`, a
//! tenant or a host; `spn` on a host) and how a host's realm and KDC are settled: the
//! inventory's own keys first, then the `krb5.conf` it names (its `default_realm`, the realm's
//! first `kdc`). A krb5.conf is read only when the inventory names one, so a workstation's own
//! Kerberos set-up never changes a fleet's behaviour unasked.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use super::{Ctx, Table, WinRmKeys, address_problem, escape_value, get_str, join};
use crate::inventory::KerberosSettings;
use crate::inventory::krb5_conf::Krb5Conf;

/// The Kerberos keys of one table, each checked on its own.
pub(super) struct KerberosKeys {
    pub realm: Option<(String, Range<usize>)>,
    pub kdc: Option<((String, u16), Range<usize>)>,
    pub keytab: Option<(PathBuf, Range<usize>)>,
    pub krb5_conf: Option<(PathBuf, Range<usize>)>,
}

pub(super) fn kerberos_keys(ctx: &mut Ctx<'_>, t: &Table<'_>, path: &str) -> KerberosKeys {
    let realm = get_str(ctx, t, path, "realm").and_then(|(r, span)| {
        if is_realm(&r) {
            Some((r.to_ascii_uppercase(), span))
        } else {
            ctx.error(
                span,
                &join(path, "realm"),
                format!("`{}` is not a Kerberos realm", escape_value(&r)),
                "give the domain's realm, e.g. realm = \"CONTOSO.LOCAL\"",
            );
            None
        }
    });
    let kdc = get_str(ctx, t, path, "kdc").and_then(|(k, span)| match parse_kdc(&k) {
        Ok(kdc) => Some((kdc, span)),
        Err(_) => {
            ctx.error(
                span,
                &join(path, "kdc"),
                format!("`{}` is not a KDC address", escape_value(&k)),
                "give a domain controller's name and Kerberos port, e.g. kdc = \"dc01.contoso.local:88\"",
            );
            None
        }
    });
    let keytab = get_str(ctx, t, path, "keytab").map(|(k, span)| (ctx.resolve_path(&k), span));
    let krb5_conf =
        get_str(ctx, t, path, "krb5_conf").map(|(k, span)| (ctx.resolve_path(&k), span));
    KerberosKeys {
        realm,
        kdc,
        keytab,
        krb5_conf,
    }
}

fn is_realm(r: &str) -> bool {
    !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `host`, `host:port` or `[v6]:port` (port 88 when not given); MIT's `tcp/` and `udp/`
/// prefixes are accepted (ecfleet asks over TCP either way). A KDC proxy URL (MS-KKDCP) is
/// refused: ecfleet does not speak it.
pub(super) fn parse_kdc(k: &str) -> Result<(String, u16), &'static str> {
    if k.starts_with("http://") || k.starts_with("https://") {
        return Err("a KDC proxy (MS-KKDCP) URL, which ecfleet does not speak");
    }
    let k = k
        .strip_prefix("tcp/")
        .or_else(|| k.strip_prefix("udp/"))
        .unwrap_or(k);
    let (host, port) = if let Some(v6) = k.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h.to_string(), Some("88")),
            Some((h, p)) => (h.to_string(), p.strip_prefix(':')),
            None => (String::new(), None),
        }
    } else if k.matches(':').count() == 1 {
        let (h, p) = k.split_once(':').expect("one colon");
        (h.to_string(), Some(p))
    } else {
        (k.to_string(), Some("88"))
    };
    match (
        port.and_then(|p| p.parse::<u16>().ok()),
        address_problem(&host),
    ) {
        (Some(port), None) if port > 0 && !host.is_empty() => Ok((host, port)),
        _ => Err("not a host and port"),
    }
}

/// The krb5.conf files read so far in this inventory, each once however many hosts name it.
#[derive(Default)]
pub(super) struct Krb5Confs {
    read: HashMap<PathBuf, Result<Krb5Conf, String>>,
}

/// A host's Kerberos settings from its merged keys: `None` when no realm and KDC are known
/// (then Negotiate means NTLM). Errors in a named krb5.conf are the inventory's errors, at the
/// `krb5_conf` key, naming the krb5.conf's own file and line.
pub(super) fn settle(ctx: &mut Ctx<'_>, path: &str, k: &WinRmKeys) -> Option<KerberosSettings> {
    let mut realm = k.realm.as_ref().map(|(r, _)| r.clone());
    let mut kdc = k.kdc.as_ref().map(|(d, _)| d.clone());
    if let Some((conf_path, span)) = &k.krb5_conf
        && (realm.is_none() || kdc.is_none())
    {
        let key = join(path, "krb5_conf");
        let conf = ctx
            .krb5_confs
            .read
            .entry(conf_path.clone())
            .or_insert_with(|| Krb5Conf::read(conf_path))
            .clone();
        match conf {
            Err(e) => {
                ctx.error(
                    span.clone(),
                    &key,
                    e,
                    "fix that krb5.conf, or set realm and kdc in the inventory instead",
                );
                return None;
            }
            Ok(conf) => {
                if realm.is_none() {
                    realm = match conf.default_realm.as_deref().filter(|r| is_realm(r)) {
                        Some(r) => Some(r.to_ascii_uppercase()),
                        None => {
                            ctx.error(
                                span.clone(),
                                &key,
                                format!(
                                    "{} sets no default_realm in [libdefaults]",
                                    conf_path.display()
                                ),
                                "set realm = \"CONTOSO.LOCAL\" in the inventory, or default_realm in that file",
                            );
                            return None;
                        }
                    };
                }
                if kdc.is_none() {
                    let wanted = realm.as_deref().unwrap_or_default();
                    let Some(first) = conf.kdcs(wanted).into_iter().next() else {
                        ctx.error(
                            span.clone(),
                            &key,
                            format!(
                                "{} names no kdc for the realm {wanted} in [realms] (ecfleet does not look KDCs up in DNS)",
                                conf_path.display()
                            ),
                            format!(
                                "add `{wanted} = {{ kdc = dc01.example:88 }}` under [realms] there, or set kdc in the inventory"
                            ),
                        );
                        return None;
                    };
                    match parse_kdc(&first.value) {
                        Ok(d) => kdc = Some(d),
                        Err(why) => {
                            ctx.error(
                                span.clone(),
                                &key,
                                format!(
                                    "{} line {}: kdc = {} is {why}",
                                    first.file.display(),
                                    first.line,
                                    escape_value(&first.value)
                                ),
                                "give the realm's first kdc as host:port there, or set kdc in the inventory",
                            );
                            return None;
                        }
                    }
                }
            }
        }
    }
    Some(KerberosSettings {
        realm: realm?,
        kdc: kdc?,
        spn: k.spn.as_ref().map(|(s, _)| s.clone()),
        keytab: k.keytab.as_ref().map(|(p, _)| p.clone()),
    })
}
