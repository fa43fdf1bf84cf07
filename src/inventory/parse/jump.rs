//! `jump = [...]` on a tenant or a host: the chain of OpenSSH servers a host is reached
//! through (OpenSSH's ProxyJump). Each hop is `"user@address:port"` or an inline table with its
//! own credentials; a hop's defaults come from `[defaults]` (identity_file, known_hosts,
//! connect_timeout), never a password: a host's password is not a bastion's.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    Ctx, DEFAULT_CONNECT_TIMEOUT_SECS, Defaults, Table, address_problem, escape_value, get,
    get_str, join, password, port, timeout, type_name,
};
use crate::inventory::JumpHop;

const HOP_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "identity_file",
    "password",
    "known_hosts",
    "connect_timeout",
    "pull_address",
];

/// A chain longer than this is a mistake in the file, not a network.
const MAX_HOPS: usize = 8;

const FORM: &str = "write each hop as \"user@bastion.example.com:22\" or { address = \"bastion.example.com\", user = \"ops\", identity_file = \"…\" }";

/// The `jump` list of `t` at `path`, if it has one (`Some(vec![])`: `jump = []`, directly).
pub(super) fn jump(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    path: &str,
    d: &Defaults,
    default_known_hosts: Option<&PathBuf>,
) -> Option<Vec<JumpHop>> {
    let v = get(t, "jump")?;
    let key = join(path, "jump");
    let Some(items) = v.get_ref().as_array() else {
        ctx.error(
            v.span(),
            &key,
            format!("expected a list of hops, found {}", type_name(v.get_ref())),
            format!("{FORM}, in a list: jump = [\"ops@bastion.example.com\"]"),
        );
        return Some(Vec::new());
    };
    if items.len() > MAX_HOPS {
        ctx.error(
            v.span(),
            &key,
            format!("{} hops; at most {MAX_HOPS} are allowed", items.len()),
            "list only the servers the connection really passes through, first hop first",
        );
    }
    let mut hops = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let hpath = format!("{key}[{i}]");
        let span = item.span();
        let hop = if let Some(s) = item.get_ref().as_str() {
            written(ctx, s, span.clone(), &hpath).map(|(user, address, port)| Written {
                user: Some(user),
                address,
                port,
                ..Written::default()
            })
        } else if let Some(table) = item.get_ref().as_table() {
            in_table(ctx, table, span.clone(), &hpath)
        } else {
            ctx.error(
                span.clone(),
                &hpath,
                format!(
                    "expected a string or a table, found {}",
                    type_name(item.get_ref())
                ),
                FORM,
            );
            None
        };
        let Some(hop) = hop else { continue };
        let label = hop.label();
        if let Some((_, aspan)) = &hop.pull_address
            && i + 1 != items.len()
        {
            ctx.error(
                aspan.clone(),
                &join(&hpath, "pull_address"),
                format!("pull_address on jump host {label}, which is not the last hop"),
                "hosts pull through the last hop of the chain: move pull_address there",
            );
        }
        let Some(user) = hop.user else {
            ctx.error(
                span.clone(),
                &hpath,
                format!("jump host {label} has no user"),
                "name the account on the bastion: \"ops@bastion.example.com\" or user = \"ops\"",
            );
            continue;
        };
        let identity_file = hop.identity_file.or_else(|| d.identity_file.clone());
        if identity_file.is_none() && hop.password.is_none() {
            ctx.error(
                span.clone(),
                &hpath,
                format!("no credential for jump host {label}"),
                "set identity_file in [defaults] (a key is offered to every hop), or write the hop as a table with its own identity_file = \"…\" or password = { env = \"VAR\" }",
            );
            continue;
        }
        let Some(known_hosts) = hop
            .known_hosts
            .or_else(|| d.known_hosts.clone())
            .or_else(|| default_known_hosts.cloned())
        else {
            ctx.error(
                span,
                &hpath,
                format!("no known_hosts file for jump host {label}"),
                "set known_hosts = \"…\" in [defaults] or on the hop",
            );
            continue;
        };
        hops.push(JumpHop {
            address: hop.address,
            port: hop.port.unwrap_or(22),
            user,
            identity_file,
            password: hop.password,
            known_hosts,
            connect_timeout: hop
                .connect_timeout
                .or(d.connect_timeout)
                .unwrap_or(Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS as u64)),
            pull_address: hop
                .pull_address
                .filter(|_| i + 1 == items.len())
                .map(|(a, _)| a),
        });
    }
    Some(hops)
}

/// A hop as the file gives it, before `[defaults]` fill the rest.
#[derive(Default)]
struct Written {
    address: String,
    port: Option<u16>,
    user: Option<String>,
    identity_file: Option<PathBuf>,
    password: Option<crate::inventory::SecretRef>,
    known_hosts: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    pull_address: Option<(String, Range<usize>)>,
}

impl Written {
    fn label(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        match self.port {
            Some(p) if self.address.contains(':') => format!("{user}[{}]:{p}", self.address),
            Some(p) => format!("{user}{}:{p}", self.address),
            None => format!("{user}{}", self.address),
        }
    }
}

fn in_table(ctx: &mut Ctx<'_>, t: &Table<'_>, span: Range<usize>, path: &str) -> Option<Written> {
    ctx.check_keys(t, path, HOP_KEYS);
    let address = match get_str(ctx, t, path, "address") {
        Some((a, aspan)) => checked_address(ctx, &a, aspan, path)?,
        None => {
            ctx.error(
                span,
                path,
                "the jump host has no address",
                "add address = \"bastion.example.com\"",
            );
            return None;
        }
    };
    Some(Written {
        address,
        port: port(ctx, t, path),
        user: get_str(ctx, t, path, "user")
            .map(|(u, _)| u)
            .filter(|u| !u.is_empty()),
        identity_file: get_str(ctx, t, path, "identity_file").map(|(s, _)| ctx.resolve_path(&s)),
        password: password(ctx, t, path),
        known_hosts: get_str(ctx, t, path, "known_hosts").map(|(s, _)| ctx.resolve_path(&s)),
        connect_timeout: timeout(ctx, t, path, "connect_timeout"),
        pull_address: match get_str(ctx, t, path, "pull_address") {
            Some((a, aspan)) => {
                let key = join(path, "pull_address");
                match address_problem(&a) {
                    None if !a.trim().is_empty() => Some((a, aspan)),
                    _ => {
                        ctx.error(
                            aspan,
                            &key,
                            format!("`{}` is not an address", escape_value(&a)),
                            "give the jump host's address as the hosts behind it reach it, e.g. pull_address = \"10.20.0.4\"",
                        );
                        None
                    }
                }
            }
            None => None,
        },
    })
}

fn checked_address(ctx: &mut Ctx<'_>, a: &str, span: Range<usize>, path: &str) -> Option<String> {
    if a.trim().is_empty() {
        ctx.error(
            span,
            &join(path, "address"),
            "the address is empty",
            "give the bastion's DNS name or IP address",
        );
        return None;
    }
    match address_problem(a) {
        None => Some(a.to_string()),
        Some((why, fix)) => {
            ctx.error(
                span,
                &join(path, "address"),
                format!("`{}` {why}", escape_value(a)),
                fix,
            );
            None
        }
    }
}

/// `user@address[:port]`, `user@[v6]:port`: the user (required), address and port.
fn written(
    ctx: &mut Ctx<'_>,
    s: &str,
    span: Range<usize>,
    path: &str,
) -> Option<(String, String, Option<u16>)> {
    let bad = |ctx: &mut Ctx<'_>, why: String| {
        ctx.error(span.clone(), path, why, FORM);
        None
    };
    let shown = escape_value(s);
    if s.contains("://") {
        return bad(
            ctx,
            format!("`{shown}` is a URL; a hop is user@address:port"),
        );
    }
    let Some((user, rest)) = s.rsplit_once('@') else {
        return bad(
            ctx,
            format!("`{shown}` names no user: the account on the bastion goes before `@`"),
        );
    };
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad(ctx, format!("`{shown}` has no usable user before `@`"));
    }
    let (address, port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((a, "")) => (a, None),
            Some((a, p)) => match p.strip_prefix(':') {
                Some(p) => (a, Some(p)),
                None => return bad(ctx, format!("`{shown}`: after `]` comes `:port`")),
            },
            None => return bad(ctx, format!("`{shown}`: `[` without `]`")),
        }
    } else if rest.matches(':').count() == 1 {
        let (a, p) = rest.split_once(':').expect("one colon");
        (a, Some(p))
    } else {
        (rest, None)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return bad(
                    ctx,
                    format!("`{shown}`: `{}` is not a TCP port", escape_value(p)),
                );
            }
        },
    };
    if address.is_empty() {
        return bad(ctx, format!("`{shown}` names no address after `@`"));
    }
    if let Some((why, _)) = address_problem(address) {
        return bad(
            ctx,
            format!("`{shown}`: the address `{}` {why}", escape_value(address)),
        );
    }
    Some((user.to_string(), address.to_string(), port))
}
