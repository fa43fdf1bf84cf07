//! The inventory parser: walks toml's spanned document, checks every key and value, and turns
//! them into [`Inventory`] while collecting every error with its line, key path and fix.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod jump;
mod kerberos;
mod notify;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    FileTransfer, Host, HostTransport, Inventory, JumpHop, RemoteOs, Role, SecretRef, SshSettings,
    Tenant, TransportKind, WinRmAuth, WinRmSettings,
};
use crate::backup::Retention;
use crate::platform::MinOs;
use crate::window::MaintenanceWindow;

/// One problem in an inventory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    pub column: usize,
    /// Where in the document, e.g. `tenant[2].host[0].port`.
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl InventoryError {
    pub(crate) fn whole_file(file: &Path, message: String, fix: &str) -> Self {
        InventoryError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message,
            fix: fix.to_string(),
        }
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Every problem found in one inventory, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryErrors(pub Vec<InventoryError>);

impl fmt::Display for InventoryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "\n{n} error{} in the inventory",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for InventoryErrors {}

const TOP_KEYS: &[&str] = &["defaults", "share", "backup", "notify", "tenant"];
const BACKUP_KEYS: &[&str] = &["keep", "keep_days"];
const DEFAULT_KEYS: &[&str] = &[
    "user",
    "port",
    "transport",
    "identity_file",
    "known_hosts",
    "password",
    "concurrency",
    "connect_timeout",
    "os",
    "min_os",
    "https",
    "auth",
    "insecure",
    "file_transfer",
    "realm",
    "kdc",
    "keytab",
    "krb5_conf",
];
const SHARE_KEYS: &[&str] = &["path"];
const TENANT_KEYS: &[&str] = &[
    "name",
    "maintenance_window",
    "contacts",
    "min_os",
    "jump",
    "realm",
    "kdc",
    "keytab",
    "krb5_conf",
    "notify",
    "host",
];
const HOST_KEYS: &[&str] = &[
    "name",
    "address",
    "port",
    "role",
    "transport",
    "user",
    "identity_file",
    "known_hosts",
    "password",
    "lab_root",
    "os",
    "connect_timeout",
    "min_os",
    "https",
    "auth",
    "cert_sha256",
    "insecure",
    "file_transfer",
    "jump",
    "realm",
    "kdc",
    "keytab",
    "krb5_conf",
    "spn",
];
const PASSWORD_KEYS: &[&str] = &["env", "file", "command"];

const DEFAULT_CONCURRENCY: usize = 64;
const DEFAULT_CONNECT_TIMEOUT_SECS: i64 = 10;

type Table<'i> = DeTable<'i>;

/// The settings a host inherits from `[defaults]`.
#[derive(Default)]
struct Defaults {
    user: Option<String>,
    port: Option<u16>,
    transport: Option<TransportKind>,
    identity_file: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    password: Option<SecretRef>,
    connect_timeout: Option<Duration>,
    os: Option<RemoteOs>,
    min_os: Option<MinOs>,
    winrm: WinRmKeys,
}

/// The WinRM keys as written (host, else `[defaults]`).
#[derive(Default, Clone)]
struct WinRmKeys {
    https: Option<(bool, Range<usize>)>,
    auth: Option<(WinRmAuth, Range<usize>)>,
    cert_sha256: Option<(String, Range<usize>)>,
    insecure: Option<(bool, Range<usize>)>,
    file_transfer: Option<(FileTransfer, Range<usize>)>,
    /// Kerberos: the realm, its KDC (`host:port`), the host's SPN (host only), a keytab and a
    /// krb5.conf to take the realm and KDC from.
    realm: Option<(String, Range<usize>)>,
    kdc: Option<((String, u16), Range<usize>)>,
    spn: Option<(String, Range<usize>)>,
    keytab: Option<(PathBuf, Range<usize>)>,
    krb5_conf: Option<(PathBuf, Range<usize>)>,
}

impl WinRmKeys {
    fn or(self, d: &WinRmKeys) -> WinRmKeys {
        WinRmKeys {
            https: self.https.or_else(|| d.https.clone()),
            auth: self.auth.or_else(|| d.auth.clone()),
            cert_sha256: self.cert_sha256.or_else(|| d.cert_sha256.clone()),
            insecure: self.insecure.or_else(|| d.insecure.clone()),
            file_transfer: self.file_transfer.or_else(|| d.file_transfer.clone()),
            realm: self.realm.or_else(|| d.realm.clone()),
            kdc: self.kdc.or_else(|| d.kdc.clone()),
            spn: self.spn.or_else(|| d.spn.clone()),
            keytab: self.keytab.or_else(|| d.keytab.clone()),
            krb5_conf: self.krb5_conf.or_else(|| d.krb5_conf.clone()),
        }
    }

    fn any(&self) -> Option<(&'static str, Range<usize>)> {
        let key = |k: &'static str, s: &Option<Range<usize>>| s.clone().map(|s| (k, s));
        key("realm", &self.realm.as_ref().map(|x| x.1.clone()))
            .or_else(|| key("kdc", &self.kdc.as_ref().map(|x| x.1.clone())))
            .or_else(|| key("spn", &self.spn.as_ref().map(|x| x.1.clone())))
            .or_else(|| key("keytab", &self.keytab.as_ref().map(|x| x.1.clone())))
            .or_else(|| key("krb5_conf", &self.krb5_conf.as_ref().map(|x| x.1.clone())))
            .or_else(|| key("https", &self.https.as_ref().map(|x| x.1.clone())))
            .or_else(|| key("auth", &self.auth.as_ref().map(|x| x.1.clone())))
            .or_else(|| {
                key(
                    "cert_sha256",
                    &self.cert_sha256.as_ref().map(|x| x.1.clone()),
                )
            })
            .or_else(|| key("insecure", &self.insecure.as_ref().map(|x| x.1.clone())))
            .or_else(|| {
                key(
                    "file_transfer",
                    &self.file_transfer.as_ref().map(|x| x.1.clone()),
                )
            })
    }
}

fn get_bool(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    path: &str,
    key: &str,
) -> Option<(bool, Range<usize>)> {
    let v = get(table, key)?;
    match v.get_ref().as_bool() {
        Some(b) => Some((b, v.span())),
        None => {
            let found = type_name(v.get_ref());
            ctx.error(
                v.span(),
                &join(path, key),
                format!("expected true or false, found {found}"),
                format!("write {key} = true or {key} = false, without quotes"),
            );
            None
        }
    }
}

/// The WinRM keys of a host or `[defaults]` table, each checked on its own.
fn winrm_keys(ctx: &mut Ctx<'_>, t: &Table<'_>, path: &str, host: bool) -> WinRmKeys {
    let auth = get_str(ctx, t, path, "auth").and_then(|(a, span)| match a.as_str() {
        "negotiate" => Some((WinRmAuth::Negotiate, span)),
        "kerberos" => Some((WinRmAuth::Kerberos, span)),
        "ntlm" => Some((WinRmAuth::Ntlm, span)),
        "basic" => Some((WinRmAuth::Basic, span)),
        other => {
            ctx.error(
                span,
                &join(path, "auth"),
                format!("unknown WinRM authentication `{other}`"),
                "use \"negotiate\" (the default: Kerberos when a realm and KDC are known, else NTLM), \"kerberos\" (never NTLM), \"ntlm\" or \"basic\" (HTTPS only)",
            );
            None
        }
    });
    let cert_sha256 = if host {
        get_str(ctx, t, path, "cert_sha256").and_then(|(c, span)| {
            let hex: String = c.chars().filter(|ch| *ch != ':').collect();
            if hex.len() == 64 && hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
                Some((hex.to_ascii_lowercase(), span))
            } else {
                ctx.error(
                    span,
                    &join(path, "cert_sha256"),
                    format!("`{c}` is not a SHA-256 fingerprint"),
                    "give the certificate's SHA-256 as 64 hex digits (colons allowed), e.g. from (Get-ChildItem Cert:\\LocalMachine\\My\\<thumbprint>).GetCertHashString('SHA256')",
                );
                None
            }
        })
    } else {
        None
    };
    let file_transfer =
        get_str(ctx, t, path, "file_transfer").and_then(|(f, span)| match f.as_str() {
            "pull" => Some((FileTransfer::Pull, span)),
            "stdin" => Some((FileTransfer::Stdin, span)),
            other => {
                ctx.error(
                    span,
                    &join(path, "file_transfer"),
                    format!("unknown WinRM file transfer `{other}`"),
                    "use \"pull\" (the default: the host fetches from the controller, falling back to stdin) or \"stdin\" (never open a port on the controller)",
                );
                None
            }
        });
    let kerberos = kerberos::kerberos_keys(ctx, t, path);
    let spn = if host {
        get_str(ctx, t, path, "spn").and_then(|(v, span)| {
            let ok = v.split_once('/').is_some_and(|(service, name)| {
                !service.is_empty()
                    && !name.is_empty()
                    && !v.chars().any(|c| c.is_whitespace() || c.is_control())
            });
            if ok {
                Some((v, span))
            } else {
                ctx.error(
                    span,
                    &join(path, "spn"),
                    format!("`{}` is not a service principal name", escape_value(&v)),
                    "write it as the host's SPN, e.g. spn = \"HTTP/ec01.contoso.local\"",
                );
                None
            }
        })
    } else {
        None
    };
    WinRmKeys {
        https: get_bool(ctx, t, path, "https"),
        auth,
        cert_sha256,
        insecure: get_bool(ctx, t, path, "insecure"),
        file_transfer,
        realm: kerberos.realm,
        kdc: kerberos.kdc,
        spn,
        keytab: kerberos.keytab,
        krb5_conf: kerberos.krb5_conf,
    }
}

struct Ctx<'a> {
    file: &'a Path,
    base_dir: PathBuf,
    line_starts: Vec<usize>,
    errors: Vec<InventoryError>,
    krb5_confs: kerberos::Krb5Confs,
}

impl Ctx<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let col = offset - self.line_starts[line.saturating_sub(1)] + 1;
        (line, col)
    }

    fn error(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = self.position(span.start);
        self.errors.push(InventoryError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Reports keys not in `allowed`, with a did-you-mean.
    fn check_keys(&mut self, table: &Table<'_>, path: &str, allowed: &[&str]) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let best = allowed
                .iter()
                .map(|a| (strsim::jaro_winkler(name, a), *a))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let fix = match best {
                Some((_, candidate)) => format!("did you mean `{candidate}`?"),
                None => format!("the keys allowed here are: {}", allowed.join(", ")),
            };
            let full = join(path, name);
            self.error(key.span(), &full, format!("unknown key `{name}`"), fix);
        }
    }

    fn resolve_path(&self, raw: &str) -> PathBuf {
        let p = PathBuf::from(raw);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn get<'t, 'i>(table: &'t Table<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    v.type_str()
}

fn get_str(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    path: &str,
    key: &str,
) -> Option<(String, Range<usize>)> {
    let v = get(table, key)?;
    match v.get_ref().as_str() {
        Some(s) => Some((s.to_string(), v.span())),
        None => {
            let found = type_name(v.get_ref());
            ctx.error(
                v.span(),
                &join(path, key),
                format!("expected a string, found {found}"),
                format!("write it in quotes: {key} = \"…\""),
            );
            None
        }
    }
}

fn get_int(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    path: &str,
    key: &str,
) -> Option<(i64, Range<usize>)> {
    let v = get(table, key)?;
    let parsed = v.get_ref().as_integer().and_then(|i| {
        let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
        let digits = digits
            .trim_start_matches("0x")
            .trim_start_matches("0o")
            .trim_start_matches("0b");
        i64::from_str_radix(digits, i.radix()).ok()
    });
    match parsed {
        Some(n) => Some((n, v.span())),
        None => {
            let found = type_name(v.get_ref());
            ctx.error(
                v.span(),
                &join(path, key),
                format!("expected a whole number, found {found}"),
                format!("write a number without quotes: {key} = 22"),
            );
            None
        }
    }
}

fn get_table<'t, 'i>(
    ctx: &mut Ctx<'_>,
    table: &'t Table<'i>,
    path: &str,
    key: &str,
) -> Option<&'t Table<'i>> {
    let v = get(table, key)?;
    match v.get_ref().as_table() {
        Some(t) => Some(t),
        None => {
            let found = type_name(v.get_ref());
            ctx.error(
                v.span(),
                &join(path, key),
                format!("expected a table, found {found}"),
                format!("write it as a [{key}] section"),
            );
            None
        }
    }
}

fn get_tables<'t, 'i>(
    ctx: &mut Ctx<'_>,
    table: &'t Table<'i>,
    path: &str,
    key: &str,
    header: &str,
) -> Vec<(&'t Table<'i>, Range<usize>)> {
    let Some(v) = get(table, key) else {
        return Vec::new();
    };
    let Some(array) = v.get_ref().as_array() else {
        ctx.error(
            v.span(),
            &join(path, key),
            format!("expected a list of [[{header}]] sections"),
            format!("write each entry as its own [[{header}]] section"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in array.iter() {
        match item.get_ref().as_table() {
            Some(t) => out.push((t, item.span())),
            None => ctx.error(
                item.span(),
                &join(path, key),
                format!("expected a [[{header}]] section"),
                format!("write each entry as its own [[{header}]] section"),
            ),
        }
    }
    out
}

fn port(ctx: &mut Ctx<'_>, table: &Table<'_>, path: &str) -> Option<u16> {
    let (n, span) = get_int(ctx, table, path, "port")?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            ctx.error(
                span,
                &join(path, "port"),
                format!("{n} is not a TCP port"),
                "use a port from 1 to 65535 (SSH is usually 22)",
            );
            None
        }
    }
}

fn transport(ctx: &mut Ctx<'_>, table: &Table<'_>, path: &str) -> Option<TransportKind> {
    let (s, span) = get_str(ctx, table, path, "transport")?;
    match s.as_str() {
        "ssh" => Some(TransportKind::Ssh),
        "winrm" => Some(TransportKind::WinRm),
        other => {
            ctx.error(
                span,
                &join(path, "transport"),
                format!("unknown transport `{other}`"),
                "use \"ssh\" or \"winrm\"",
            );
            None
        }
    }
}

fn os(ctx: &mut Ctx<'_>, table: &Table<'_>, path: &str) -> Option<RemoteOs> {
    let (s, span) = get_str(ctx, table, path, "os")?;
    match s.as_str() {
        "linux" => Some(RemoteOs::Linux),
        "windows" => Some(RemoteOs::Windows),
        other => {
            ctx.error(
                span,
                &join(path, "os"),
                format!("unknown os `{other}`"),
                "use \"windows\" or \"linux\", or leave it out to detect it",
            );
            None
        }
    }
}

/// `min_os = "2019"` or `min_os = 17763`.
fn min_os(ctx: &mut Ctx<'_>, table: &Table<'_>, path: &str) -> Option<MinOs> {
    let v = get(table, "min_os")?;
    let text = match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => i.as_str().to_string(),
        other => {
            ctx.error(
                v.span(),
                &join(path, "min_os"),
                format!(
                    "expected a Windows Server release, found {}",
                    type_name(other)
                ),
                "write min_os = \"2019\" (or a build number, min_os = 17763)",
            );
            return None;
        }
    };
    match MinOs::parse(&text) {
        Ok(m) => Some(m),
        Err(e) => {
            ctx.error(
                v.span(),
                &join(path, "min_os"),
                e,
                "write min_os = \"2016\", \"2019\", \"2022\" or \"2025\"",
            );
            None
        }
    }
}

fn timeout(ctx: &mut Ctx<'_>, table: &Table<'_>, path: &str, key: &str) -> Option<Duration> {
    let (n, span) = get_int(ctx, table, path, key)?;
    if (1..=3600).contains(&n) {
        Some(Duration::from_secs(n as u64))
    } else {
        ctx.error(
            span,
            &join(path, key),
            format!("{n} seconds is out of range"),
            "use a number of seconds from 1 to 3600",
        );
        None
    }
}

fn password(ctx: &mut Ctx<'_>, table: &Table<'_>, path: &str) -> Option<SecretRef> {
    secret_ref(ctx, table, path, "password", "password")
}

/// A secret by reference at `key` (`{ env | file | command }`), `what` naming it in messages
/// ("password", "webhook URL"). A value written in place is refused without being repeated.
fn secret_ref(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    path: &str,
    key_name: &str,
    what: &str,
) -> Option<SecretRef> {
    let v = get(table, key_name)?;
    let key = join(path, key_name);
    let Some(t) = v.get_ref().as_table() else {
        // Never repeat the value: it may be the secret itself.
        ctx.error(
            v.span(),
            &key,
            format!("a {what} written into the inventory is not allowed (secrets are referenced, never stored)"),
            format!("use {key_name} = {{ env = \"VAR\" }}, {{ file = \"path\" }} or {{ command = \"…\" }}"),
        );
        return None;
    };
    ctx.check_keys(t, &key, PASSWORD_KEYS);
    let mut refs = Vec::new();
    for source in PASSWORD_KEYS {
        let Some((s, span)) = get_str(ctx, t, &key, source) else {
            continue;
        };
        if s.trim().is_empty() {
            ctx.error(
                span,
                &join(&key, source),
                format!("the {what} {source} is empty"),
                match *source {
                    "env" => format!(
                        "name the environment variable: {key_name} = {{ env = \"{}\" }}",
                        if what == "password" { "EC_PASSWORD" } else { "WEBHOOK_URL" }
                    ),
                    "file" => format!("give the path of a file holding the {what}"),
                    _ => format!("give the command that prints the {what}, e.g. {{ command = \"vault kv get -field=pw secret/ec\" }}"),
                },
            );
            continue;
        }
        refs.push(match *source {
            "env" => SecretRef::Env(s),
            "file" => SecretRef::File(ctx.resolve_path(&s)),
            _ => SecretRef::Command(s),
        });
    }
    if refs.is_empty() && PASSWORD_KEYS.iter().any(|k| get(t, k).is_some()) {
        return None;
    }
    match refs.len() {
        1 => refs.pop(),
        0 => {
            ctx.error(
                v.span(),
                &key,
                format!("the {what} reference is empty"),
                "give exactly one of env, file or command",
            );
            None
        }
        _ => {
            ctx.error(
                v.span(),
                &key,
                format!("the {what} reference names more than one source"),
                "give exactly one of env, file or command",
            );
            None
        }
    }
}

/// Why an `address` value cannot be used, with the fix; `None` when it can.
fn address_problem(a: &str) -> Option<(&'static str, &'static str)> {
    if a.contains("://") {
        return Some((
            "is a URL, not an address",
            "give only the DNS name or IP address; the protocol goes in transport and the port in port",
        ));
    }
    if a.starts_with('-') {
        return Some((
            "starts with `-` (it would be read as an option)",
            "give the host's DNS name or IP address",
        ));
    }
    if a.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some((
            "contains spaces or control characters",
            "give the host's DNS name or IP address",
        ));
    }
    if a.starts_with('[') || a.ends_with(']') {
        return Some((
            "is in brackets",
            "write an IPv6 address without brackets (address = \"::1\") and the port in port",
        ));
    }
    if a.matches(':').count() == 1 {
        return Some((
            "includes a port",
            "write the port on its own: address = \"host\" and port = 2222",
        ));
    }
    if a.contains(':') && a.parse::<std::net::Ipv6Addr>().is_err() {
        return Some((
            "is not a valid IPv6 address",
            "give a DNS name, an IPv4 address or an IPv6 address",
        ));
    }
    None
}

/// A value from the file as it may be shown in a message: control characters escaped.
fn escape_value(v: &str) -> String {
    v.chars().flat_map(char::escape_debug).collect()
}

/// A tenant or host name: it names folders on the share, so letters, digits, `.`, `-`, `_`,
/// and no leading dot.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn is_absolute_anywhere(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/'))
}

fn parse_defaults(ctx: &mut Ctx<'_>, t: &Table<'_>) -> (Defaults, Option<usize>) {
    let path = "defaults";
    ctx.check_keys(t, path, DEFAULT_KEYS);
    let mut d = Defaults {
        user: get_str(ctx, t, path, "user").map(|(s, _)| s),
        port: port(ctx, t, path),
        transport: transport(ctx, t, path),
        identity_file: get_str(ctx, t, path, "identity_file").map(|(s, _)| ctx.resolve_path(&s)),
        known_hosts: get_str(ctx, t, path, "known_hosts").map(|(s, _)| ctx.resolve_path(&s)),
        password: password(ctx, t, path),
        connect_timeout: timeout(ctx, t, path, "connect_timeout"),
        os: os(ctx, t, path),
        min_os: min_os(ctx, t, path),
        winrm: winrm_keys(ctx, t, path, false),
    };
    let concurrency = match get_int(ctx, t, path, "concurrency") {
        Some((n, _)) if (1..=4096).contains(&n) => Some(n as usize),
        Some((n, span)) => {
            ctx.error(
                span,
                "defaults.concurrency",
                format!("{n} hosts at once is out of range"),
                "use a number from 1 to 4096 (64 is the default)",
            );
            None
        }
        None => None,
    };
    if d.user.as_deref() == Some("") {
        d.user = None;
    }
    (d, concurrency)
}

fn host_name(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    span: &Range<usize>,
    path: &str,
) -> Option<(String, Range<usize>)> {
    match get_str(ctx, t, path, "name") {
        Some((n, nspan)) if valid_name(&n) => Some((n, nspan)),
        Some((n, nspan)) => {
            ctx.error(
                nspan,
                &join(path, "name"),
                format!("`{n}` is not a usable host name"),
                "use letters, digits, '.', '-' or '_' (it names folders on the share)",
            );
            None
        }
        None => {
            ctx.error(
                span.clone(),
                path,
                "the host has no name",
                "add name = \"…\" (unique across the inventory)",
            );
            None
        }
    }
}

fn host_address(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    span: &Range<usize>,
    path: &str,
) -> Option<String> {
    match get_str(ctx, t, path, "address") {
        Some((a, aspan)) if a.trim().is_empty() => {
            ctx.error(
                aspan,
                &join(path, "address"),
                "the address is empty",
                "give the host's DNS name or IP address",
            );
            None
        }
        Some((a, aspan)) => match address_problem(&a) {
            None => Some(a),
            Some((why, fix)) => {
                ctx.error(
                    aspan,
                    &join(path, "address"),
                    format!("`{}` {why}", escape_value(&a)),
                    fix,
                );
                None
            }
        },
        None => {
            ctx.error(
                span.clone(),
                path,
                "the host has no address",
                "add address = \"server.example.com\" (DNS name or IP)",
            );
            None
        }
    }
}

fn host_role(ctx: &mut Ctx<'_>, t: &Table<'_>, path: &str) -> Option<Role> {
    match get_str(ctx, t, path, "role") {
        None => Some(Role::Active),
        Some((r, _)) if r == "active" => Some(Role::Active),
        Some((r, _)) if r == "staging" => Some(Role::Staging),
        Some((r, rspan)) => {
            ctx.error(
                rspan,
                &join(path, "role"),
                format!("unknown role `{r}`"),
                "use \"active\" or \"staging\"",
            );
            None
        }
    }
}

/// The transport's own settings: SSH needs a known_hosts file (host keys matter only to SSH);
/// WinRM its endpoint and authentication, checked for combinations that cannot be safe.
#[allow(clippy::too_many_arguments)]
fn host_transport(
    ctx: &mut Ctx<'_>,
    span: &Range<usize>,
    path: &str,
    label: &str,
    kind: TransportKind,
    identity_file: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    winrm: WinRmKeys,
) -> Option<HostTransport> {
    match kind {
        TransportKind::WinRm => winrm_settings(ctx, path, winrm).map(HostTransport::WinRm),
        TransportKind::Ssh => {
            if let Some((key, kspan)) = winrm.any() {
                ctx.error(
                    kspan,
                    &join(path, key),
                    format!("`{key}` is a WinRM setting, and host {label} uses SSH"),
                    "remove it, or set transport = \"winrm\"",
                );
            }
            match known_hosts {
                Some(known_hosts) => Some(HostTransport::Ssh(SshSettings {
                    identity_file,
                    known_hosts,
                })),
                None => {
                    ctx.error(
                        span.clone(),
                        path,
                        format!("no known_hosts file for host {label}"),
                        "set known_hosts = \"…\" in [defaults]",
                    );
                    None
                }
            }
        }
    }
}

fn winrm_settings(ctx: &mut Ctx<'_>, path: &str, k: WinRmKeys) -> Option<WinRmSettings> {
    let https = k.https.as_ref().is_some_and(|(b, _)| *b);
    let mut ok = true;
    if let Some((WinRmAuth::Basic, span)) = &k.auth
        && !https
    {
        ctx.error(
            span.clone(),
            &join(path, "auth"),
            "Basic authentication over HTTP would send the password in the clear".to_string(),
            "set https = true (an HTTPS listener on 5986), or use auth = \"negotiate\" over HTTP",
        );
        ok = false;
    }
    for (key, span) in [
        ("cert_sha256", k.cert_sha256.as_ref().map(|x| x.1.clone())),
        (
            "insecure",
            k.insecure.as_ref().filter(|(b, _)| *b).map(|x| x.1.clone()),
        ),
    ] {
        if let Some(span) = span
            && !https
        {
            ctx.error(
                span,
                &join(path, key),
                format!("`{key}` is about the HTTPS certificate, and this host uses HTTP"),
                "set https = true, or remove it",
            );
            ok = false;
        }
    }
    if let (Some(_), Some((true, span))) = (&k.cert_sha256, &k.insecure) {
        // A pin says "exactly this certificate", insecure says "any": one of them is a mistake.
        ctx.error(
            span.clone(),
            &join(path, "insecure"),
            "`insecure = true` with `cert_sha256` contradicts itself: the pin checks one certificate, insecure accepts any",
            "keep the pin and remove insecure (a pinned certificate needs no other trust)",
        );
        ok = false;
    }
    let auth = k.auth.as_ref().map(|(a, _)| *a).unwrap_or_default();
    let kerberos = kerberos::settle(ctx, path, &k);
    if let Some((WinRmAuth::Kerberos, span)) = &k.auth
        && kerberos.is_none()
        && k.krb5_conf.is_none()
    {
        let missing = match (&k.realm, &k.kdc) {
            (None, None) => "a realm and a KDC",
            (None, Some(_)) => "a realm",
            _ => "a KDC",
        };
        ctx.error(
            span.clone(),
            &join(path, "auth"),
            format!("auth = \"kerberos\" needs {missing}"),
            "set realm = \"CONTOSO.LOCAL\" and kdc = \"dc01.contoso.local:88\" on the tenant, the host or in [defaults] (or krb5_conf = \"/etc/krb5.conf\" to take them from there)",
        );
        ok = false;
    }
    ok.then(|| WinRmSettings {
        https,
        auth,
        kerberos,
        cert_sha256: k.cert_sha256.map(|(c, _)| c),
        insecure: k.insecure.is_some_and(|(b, _)| b),
        file_transfer: k.file_transfer.map(|(f, _)| f).unwrap_or_default(),
    })
}

#[allow(clippy::too_many_arguments)]
fn parse_host(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    span: Range<usize>,
    path: &str,
    tenant: &str,
    d: &Defaults,
    tenant_min_os: Option<MinOs>,
    tenant_jump: &[JumpHop],
    tenant_winrm: &WinRmKeys,
    default_known_hosts: Option<&PathBuf>,
) -> Option<Host> {
    ctx.check_keys(t, path, HOST_KEYS);
    let name = host_name(ctx, t, &span, path);
    let address = host_address(ctx, t, &span, path);
    let role = host_role(ctx, t, path);
    let port = port(ctx, t, path);
    let transport = transport(ctx, t, path)
        .or(d.transport)
        .unwrap_or(TransportKind::Ssh);
    let user = get_str(ctx, t, path, "user")
        .map(|(s, _)| s)
        .or_else(|| d.user.clone());
    let identity_file = get_str(ctx, t, path, "identity_file")
        .map(|(s, _)| ctx.resolve_path(&s))
        .or_else(|| d.identity_file.clone());
    let known_hosts = get_str(ctx, t, path, "known_hosts")
        .map(|(s, _)| ctx.resolve_path(&s))
        .or_else(|| d.known_hosts.clone())
        .or_else(|| default_known_hosts.cloned());
    let password = password(ctx, t, path).or_else(|| d.password.clone());
    let os = os(ctx, t, path).or(d.os);
    let min_os = min_os(ctx, t, path).or(tenant_min_os).or(d.min_os);
    let connect_timeout = timeout(ctx, t, path, "connect_timeout")
        .or(d.connect_timeout)
        .unwrap_or(Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS as u64));
    let jump =
        jump::jump(ctx, t, path, d, default_known_hosts).unwrap_or_else(|| tenant_jump.to_vec());
    let lab_root = match get_str(ctx, t, path, "lab_root") {
        Some((p, pspan)) if !is_absolute_anywhere(&p) => {
            ctx.error(pspan, &join(path, "lab_root"), format!("`{p}` is not an absolute path"), "give the full path of the lab host's directory on that host, e.g. \"/srv/lab/hosts/t01-current\"");
            None
        }
        other => other.map(|(p, _)| p),
    };
    let label = name
        .as_ref()
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| path.to_string());
    if user.is_none() {
        ctx.error(
            span.clone(),
            path,
            format!("no user to log in as for host {label}"),
            "set user = \"…\" on the host or in [defaults]",
        );
    }
    if transport == TransportKind::Ssh && identity_file.is_none() && password.is_none() {
        ctx.error(span.clone(), path, format!("no credential for host {label}"), "set identity_file = \"/home/you/.ssh/id_ed25519\" (a relative path is read from the inventory's folder) or password = { env = \"VAR\" } on the host or in [defaults]");
    }
    // `[defaults]` WinRM keys are for the WinRM hosts; an SSH host is judged on its own keys.
    let own = winrm_keys(ctx, t, path, true);
    let winrm = match transport {
        TransportKind::WinRm => own.or(tenant_winrm).or(&d.winrm),
        TransportKind::Ssh => own,
    };
    let host_transport = host_transport(
        ctx,
        &span,
        path,
        &label,
        transport,
        identity_file,
        known_hosts,
        winrm,
    );
    let keytab_serves = matches!(&host_transport, Some(HostTransport::WinRm(w))
        if matches!(w.auth, WinRmAuth::Negotiate | WinRmAuth::Kerberos)
            && w.kerberos.as_ref().is_some_and(|k| k.keytab.is_some()));
    if transport == TransportKind::WinRm && password.is_none() && !keytab_serves {
        ctx.error(
            span.clone(),
            path,
            format!("no password for WinRM host {label}"),
            "set password = { env = \"VAR\" } (or file / command) on the host or in [defaults], or keytab = \"…\" with a realm and KDC for Kerberos",
        );
    }
    let port = port.or(d.port).unwrap_or(match &host_transport {
        Some(HostTransport::WinRm(w)) if w.https => 5986,
        Some(HostTransport::WinRm(_)) => 5985,
        _ => 22,
    });
    let line = ctx.position(span.start).0;
    Some(Host {
        name: name?.0,
        tenant: tenant.to_string(),
        address: address?,
        port,
        role: role?,
        transport: host_transport?,
        user: user?,
        password,
        lab_root,
        os,
        min_os,
        connect_timeout,
        jump,
        line,
    })
}

fn parse_share(ctx: &mut Ctx<'_>, root: &Table<'_>) -> Option<PathBuf> {
    let t = get_table(ctx, root, "", "share")?;
    ctx.check_keys(t, "share", SHARE_KEYS);
    let p = get_str(ctx, t, "share", "path");
    if p.is_none() {
        ctx.error(
            0..0,
            "share",
            "the [share] section has no path",
            "add path = \"/mnt/ecfleet-share\" under [share]",
        );
    }
    let (p, span) = p?;
    if p.trim().is_empty() {
        ctx.error(
            span,
            "share.path",
            "the share path is empty",
            "give the mounted share's folder: path = \"/mnt/ecfleet-share\"",
        );
        return None;
    }
    let path = ctx.resolve_path(&p);
    if let Err(why) = crate::share::check_root(&path) {
        ctx.error(
            span,
            "share.path",
            &why,
            "mount the share (or create the folder) and check that this account can write to it; ecfleet creates folders below the share, never the share itself",
        );
    }
    Some(path)
}

/// `[backup]`: how many nightly backups each host keeps (docs/backup.md).
fn parse_backup(ctx: &mut Ctx<'_>, root: &Table<'_>) -> Retention {
    let Some(t) = get_table(ctx, root, "", "backup") else {
        return Retention::default();
    };
    ctx.check_keys(t, "backup", BACKUP_KEYS);
    let mut number = |key: &str, max: i64, fix: &str| match get_int(ctx, t, "backup", key) {
        Some((n, _)) if (1..=max).contains(&n) => Some(n),
        Some((n, span)) => {
            ctx.error(
                span,
                &join("backup", key),
                format!("{n} is out of range"),
                fix,
            );
            None
        }
        None => None,
    };
    Retention {
        keep: number(
            "keep",
            100_000,
            "keep at least 1 backup per host (keep = 14)",
        )
        .map(|n| n as usize),
        keep_days: number(
            "keep_days",
            36_500,
            "keep backups at least 1 day (keep_days = 30)",
        )
        .map(|n| n as u32),
    }
}

/// Names seen so far, with their lines, so that a second use is an error naming the first.
#[derive(Default)]
struct Seen {
    tenants: HashMap<String, usize>,
    hosts: HashMap<String, usize>,
}

fn tenant_name(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    tspan: &Range<usize>,
    tpath: &str,
    seen: &mut Seen,
) -> String {
    match get_str(ctx, t, tpath, "name") {
        Some((n, nspan)) if valid_name(&n) => {
            let line = ctx.position(nspan.start).0;
            if let Some(first) = seen.tenants.insert(n.clone(), line) {
                ctx.error(
                    nspan,
                    &join(tpath, "name"),
                    format!("tenant `{n}` is listed twice (first on line {first})"),
                    "give each tenant a unique name, or merge the two sections",
                );
            }
            n
        }
        Some((n, nspan)) => {
            ctx.error(
                nspan,
                &join(tpath, "name"),
                format!("`{n}` is not a usable tenant name"),
                "use letters, digits, '.', '-' or '_' (it names folders on the share)",
            );
            String::new()
        }
        None => {
            ctx.error(
                tspan.clone(),
                tpath,
                "the tenant has no name",
                "add name = \"…\" to the [[tenant]] section",
            );
            String::new()
        }
    }
}

fn maintenance_window(ctx: &mut Ctx<'_>, t: &Table<'_>, tpath: &str) -> Option<MaintenanceWindow> {
    let (text, wspan) = get_str(ctx, t, tpath, "maintenance_window")?;
    match MaintenanceWindow::parse(&text) {
        Ok(w) => Some(w),
        Err(e) => {
            ctx.error(
                wspan,
                &join(tpath, "maintenance_window"),
                e,
                "write DAYS START-END ZONE, e.g. maintenance_window = \"Sat 22:00-02:00 Europe/London\"",
            );
            None
        }
    }
}

fn contacts(ctx: &mut Ctx<'_>, t: &Table<'_>, tpath: &str) -> Vec<String> {
    let mut contacts = Vec::new();
    let Some(v) = get(t, "contacts") else {
        return contacts;
    };
    let Some(items) = v.get_ref().as_array() else {
        ctx.error(
            v.span(),
            &join(tpath, "contacts"),
            "expected a list of strings",
            "write contacts = [\"ops@example.com\"]",
        );
        return contacts;
    };
    for item in items.iter() {
        match item.get_ref().as_str() {
            Some(s) => contacts.push(s.to_string()),
            None => ctx.error(
                item.span(),
                &join(tpath, "contacts"),
                "each contact must be a string",
                "write contacts = [\"ops@example.com\"]",
            ),
        }
    }
    contacts
}

fn parse_tenant(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    tspan: Range<usize>,
    ti: usize,
    defaults: &Defaults,
    seen: &mut Seen,
    default_known_hosts: Option<&PathBuf>,
) -> Tenant {
    let tpath = format!("tenant[{ti}]");
    ctx.check_keys(t, &tpath, TENANT_KEYS);
    let name = tenant_name(ctx, t, &tspan, &tpath, seen);
    let maintenance_window = maintenance_window(ctx, t, &tpath);
    let tenant_min_os = min_os(ctx, t, &tpath);
    let contacts = contacts(ctx, t, &tpath);
    let tenant_jump = jump::jump(ctx, t, &tpath, defaults, default_known_hosts).unwrap_or_default();
    let kerberos = kerberos::kerberos_keys(ctx, t, &tpath);
    let tenant_winrm = WinRmKeys {
        realm: kerberos.realm,
        kdc: kerberos.kdc,
        keytab: kerberos.keytab,
        krb5_conf: kerberos.krb5_conf,
        ..WinRmKeys::default()
    };
    let mut hosts = Vec::new();
    let host_tables = get_tables(ctx, t, &tpath, "host", "tenant.host");
    for (hi, (h, hspan)) in host_tables.into_iter().enumerate() {
        let hpath = format!("{tpath}.host[{hi}]");
        let Some(host) = parse_host(
            ctx,
            h,
            hspan,
            &hpath,
            &name,
            defaults,
            tenant_min_os,
            &tenant_jump,
            &tenant_winrm,
            default_known_hosts,
        ) else {
            continue;
        };
        if let Some(first) = seen.hosts.insert(host.name.clone(), host.line) {
            let nspan = get(h, "name").map(|v| v.span()).unwrap_or(0..0);
            ctx.error(
                nspan,
                &join(&hpath, "name"),
                format!(
                    "host `{}` is listed twice (first on line {first})",
                    host.name
                ),
                "host names must be unique across the inventory: rename one",
            );
        } else {
            hosts.push(host);
        }
    }
    Tenant {
        name,
        maintenance_window,
        contacts,
        notify: notify::notify(ctx, t, &tpath),
        min_os: tenant_min_os,
        hosts,
    }
}

/// `default_known_hosts` comes from the caller (the user's `~/.ssh/known_hosts`), because
/// library code does not read the environment.
pub(crate) fn parse_inventory(
    text: &str,
    file: &Path,
    default_known_hosts: Option<PathBuf>,
) -> Result<Inventory, InventoryErrors> {
    let mut line_starts = vec![0];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let mut ctx = Ctx {
        file,
        base_dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        line_starts,
        errors: Vec::new(),
        krb5_confs: Default::default(),
    };
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            ctx.error(
                span,
                "",
                format!("TOML syntax: {}", e.message().trim()),
                "fix the TOML syntax at this position",
            );
        }
        return Err(InventoryErrors(ctx.errors));
    }
    let root = doc.get_ref();
    ctx.check_keys(root, "", TOP_KEYS);

    let (defaults, concurrency) = match get_table(&mut ctx, root, "", "defaults") {
        Some(t) => parse_defaults(&mut ctx, t),
        None => (Defaults::default(), None),
    };
    let share = parse_share(&mut ctx, root);
    let backup_retention = parse_backup(&mut ctx, root);
    let fleet_notify = notify::notify(&mut ctx, root, "");

    let mut tenants = Vec::new();
    let tenant_tables = get_tables(&mut ctx, root, "", "tenant", "tenant");
    if tenant_tables.is_empty() && ctx.errors.is_empty() {
        ctx.error(
            0..0,
            "tenant",
            "the inventory lists no tenants",
            "add a [[tenant]] section with at least one [[tenant.host]]",
        );
    }
    let mut seen = Seen::default();
    for (ti, (t, tspan)) in tenant_tables.into_iter().enumerate() {
        let tenant = parse_tenant(
            &mut ctx,
            t,
            tspan,
            ti,
            &defaults,
            &mut seen,
            default_known_hosts.as_ref(),
        );
        tenants.push(tenant);
    }
    if !ctx.errors.is_empty() {
        ctx.errors.sort_by_key(|e| (e.line, e.column));
        return Err(InventoryErrors(ctx.errors));
    }
    Ok(Inventory {
        path: file.to_path_buf(),
        share,
        backup_retention,
        concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        notify: fleet_notify,
        tenants,
    })
}
