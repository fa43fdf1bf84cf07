//! Who runs this controller, as the system says it, for the run's ledger when the environment
//! does not (`$USER` and the like are read at the edge, in `main.rs`).

/// The account this process runs as, from the system (Unix: the effective uid's entry in
/// `/etc/passwd`, else `uid N`), for when the environment does not say.
#[cfg(unix)]
pub fn account_name() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid.to_string()).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// The account this process runs as, when the environment does not say (`%USERNAME%` is read
/// first on Windows).
#[cfg(not(unix))]
pub fn account_name() -> Option<String> {
    None
}
