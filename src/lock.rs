//! Holds on the share: at most one controller drives a run, and at most one drives a host,
//! whatever the run (docs/run.md, "One controller per host").
//!
//! A hold is a folder of numbered generations, `<folder>/<generation>.json`, each saying who
//! holds it (run, controller, process, user, since) and, once let go, when. The newest
//! generation is the state. Taking a hold is creating the next generation with an exclusive
//! create (a hard link, which fails when the name exists): of two controllers that saw the same
//! generation, exactly one makes the next one, the other finds it taken. Generations are never
//! removed, so a controller that looked long ago cannot create a name that was freed again.
//!
//! A holder is alive when it is this machine's process that still exists, or another machine's
//! whose heartbeat (the file's modification time, refreshed every minute while held) is fresh.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::share::{ShareError, dirs_below, replace_file, write_new_file};

/// A holder on another machine whose heartbeat is older than this is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(600);
/// How often a holder refreshes its heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Who holds (or held) a hold: one generation file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub run_id: String,
    /// The controller's host name.
    pub controller: String,
    pub pid: u32,
    #[serde(default)]
    pub user: Option<String>,
    pub since: String,
    /// When it was let go; `None` while held.
    #[serde(default)]
    pub released_at: Option<String>,
}

impl Holder {
    /// This process, working on `run_id`.
    pub fn me(run_id: &str, controller: Option<&str>, user: Option<&str>) -> Holder {
        Holder {
            run_id: run_id.to_string(),
            controller: controller.unwrap_or("unknown").to_string(),
            pid: std::process::id(),
            user: user.map(str::to_string),
            since: {
                let t = jiff::Timestamp::now();
                t.round(jiff::Unit::Second).unwrap_or(t).to_string()
            },
            released_at: None,
        }
    }

    /// "run R (controller C, process P, user U, since S)".
    pub fn describe(&self) -> String {
        format!(
            "run {} (controller {}, process {}{}, since {})",
            self.run_id,
            self.controller,
            self.pid,
            self.user
                .as_deref()
                .map(|u| format!(", user {u}"))
                .unwrap_or_default(),
            self.since
        )
    }
}

/// Why a hold was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// A live controller holds it.
    #[error("held by {}", .holder.describe())]
    Held { holder: Box<Holder>, path: PathBuf },
    /// Its holder is gone without letting go, and the caller may not take it over (another
    /// run's host left in the middle of its upgrade).
    #[error("left held by {}, whose controller is gone", .holder.describe())]
    Abandoned { holder: Box<Holder>, path: PathBuf },
    #[error(transparent)]
    Share(#[from] ShareError),
}

/// A hold this process has: let go with [`Hold::release`]. Dropped without a release (the
/// controller detached or was killed), it stays held: its heartbeat stops, and only a holder
/// allowed to take it over (`--resume` of the same run) can.
pub struct Hold {
    path: PathBuf,
    holder: Holder,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Hold {
    /// The generation file this hold is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lets go: the generation says when, and the next taker makes a new one.
    pub fn release(mut self) -> Result<(), ShareError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let mut released = self.holder.clone();
        released.released_at = Some(jiff::Timestamp::now().to_string());
        replace_file(&self.path, &to_json(&released))
    }
}

fn to_json(h: &Holder) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(h).unwrap_or_default();
    v.push(b'\n');
    v
}

/// The newest generation in `dir`: its number and what it says (`None`: unreadable, e.g. being
/// written by hand).
fn newest(dir: &Path) -> Result<Option<(u64, Option<Holder>)>, ShareError> {
    let entries = fs::read_dir(dir).map_err(|source| ShareError {
        path: dir.to_path_buf(),
        source,
    })?;
    let top = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max();
    Ok(top.map(|g| {
        let holder = crate::fsread::read_regular(&dir.join(generation_name(g)), 64 << 10)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        (g, holder)
    }))
}

fn generation_name(g: u64) -> String {
    format!("{g:08}.json")
}

/// Whether `holder` is still working: this machine's process exists, or another machine's
/// heartbeat (the file's modification time) is fresh.
fn alive(holder: &Holder, file: &Path, this_controller: &str) -> bool {
    if holder.controller == this_controller {
        return holder.pid == std::process::id() || process_alive(holder.pid);
    }
    let modified = fs::metadata(file).and_then(|m| m.modified());
    match modified {
        Ok(t) => {
            SystemTime::now()
            .duration_since(t)
            .is_ok_and(|age| age < STALE_AFTER)
            // A clock ahead of ours is not a sign of death.
            || t > SystemTime::now()
        }
        Err(_) => true,
    }
}

/// Takes the hold in `root/components…` for `me`. A free hold (none yet, or let go) is taken;
/// a live holder's is [`HoldError::Held`]; a gone holder's is taken over when
/// `may_take_over(holder)` says so, else [`HoldError::Abandoned`]. Exactly one of several
/// controllers racing for it wins.
pub fn acquire(
    root: &Path,
    components: &[&str],
    me: &Holder,
    may_take_over: impl Fn(&Holder) -> bool,
) -> Result<Hold, HoldError> {
    let dir = dirs_below(root, components)?;
    // A race lost is looked at again: the winner's generation decides.
    for _ in 0..20 {
        let next = match newest(&dir)? {
            None => 1,
            Some((g, Some(h))) if h.released_at.is_some() => g + 1,
            Some((g, Some(h))) => {
                let file = dir.join(generation_name(g));
                if alive(&h, &file, &me.controller) {
                    return Err(HoldError::Held {
                        holder: Box::new(h),
                        path: file,
                    });
                }
                if !may_take_over(&h) {
                    return Err(HoldError::Abandoned {
                        holder: Box::new(h),
                        path: file,
                    });
                }
                g + 1
            }
            Some((g, None)) => {
                // Just created by another controller (its content lands with the name), or
                // damaged: either way not ours; named so that a person can look.
                let file = dir.join(generation_name(g));
                std::thread::sleep(Duration::from_millis(50));
                if matches!(newest(&dir)?, Some((g2, None)) if g2 == g) {
                    return Err(HoldError::Share(ShareError {
                        path: file,
                        source: std::io::Error::other(
                            "cannot be read as a hold: look at it, and remove it if no controller holds it",
                        ),
                    }));
                }
                continue;
            }
        };
        let path = dir.join(generation_name(next));
        match write_new_file(&path, &to_json(me)) {
            Ok(()) => {
                let heartbeat = tokio::runtime::Handle::try_current()
                    .ok()
                    .map(|rt| rt.spawn(beat(path.clone())));
                return Ok(Hold {
                    path,
                    holder: me.clone(),
                    heartbeat,
                });
            }
            Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HoldError::Share(ShareError {
        path: dir,
        source: std::io::Error::other("contended too long: try again"),
    }))
}

/// Refreshes the hold's modification time while it is held.
async fn beat(path: PathBuf) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let touched = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        if touched.is_err() {
            return;
        }
    }
}

/// What the newest generation of the hold in `dir` says, if there is one.
pub fn current(dir: &Path) -> Option<Holder> {
    newest(dir).ok().flatten().and_then(|(_, h)| h)
}

/// Whether the holder of the hold in `dir` is held and alive, as [`acquire`] would judge it
/// from `this_controller`.
pub fn held_by_live(dir: &Path, this_controller: &str) -> Option<Holder> {
    let (g, h) = newest(dir).ok().flatten()?;
    let h = h?;
    (h.released_at.is_none() && alive(&h, &dir.join(generation_name(g)), this_controller))
        .then_some(h)
}

/// Whether a process with this id exists on this machine.
#[cfg(unix)]
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: kill(pid, 0) delivers nothing; it only says whether the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether a process with this id still runs on this machine: a handle to it can be opened and
/// it has not exited (`GetExitCodeProcess` says `STILL_ACTIVE`). A process this account may
/// not query (access denied) is taken as running, as `EPERM` is on Unix.
#[cfg(windows)]
pub fn process_alive(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_ACCESS_DENIED, GetLastError, STILL_ACTIVE,
    };
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: OpenProcess/GetExitCodeProcess/CloseHandle on a handle this function owns; the
    // exit code is written to a local.
    unsafe {
        let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if handle.is_null() {
            return GetLastError() == ERROR_ACCESS_DENIED;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(handle, &mut code) != 0;
        CloseHandle(handle);
        !ok || code == STILL_ACTIVE as u32
    }
}

/// Whether a process with this id exists on this machine: not known here, so assumed.
#[cfg(not(any(unix, windows)))]
pub fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run: &str, pid: u32) -> Holder {
        Holder {
            pid,
            ..Holder::me(run, Some("ctl"), Some("ops"))
        }
    }

    #[test]
    fn a_hold_is_taken_once_let_go_and_taken_again() {
        let share = tempfile::tempdir().unwrap();
        let me = holder("r1", std::process::id());
        let other = Holder {
            pid: 1, // alive, and not this process
            ..holder("r2", 1)
        };
        let hold = acquire(share.path(), &["locks", "t", "h"], &me, |_| true).unwrap();
        let err = acquire(share.path(), &["locks", "t", "h"], &other, |_| true)
            .err()
            .unwrap();
        assert!(
            matches!(&err, HoldError::Held { holder, .. } if holder.run_id == "r1"),
            "{err}"
        );
        assert!(err.to_string().contains("run r1 (controller ctl"), "{err}");
        hold.release().unwrap();
        let again = acquire(share.path(), &["locks", "t", "h"], &other, |_| true).unwrap();
        assert!(again.path().ends_with("00000002.json"));
    }

    #[test]
    fn a_gone_holder_is_taken_over_only_when_allowed() {
        let share = tempfile::tempdir().unwrap();
        let dead = holder("r1", 4_194_303);
        let hold = acquire(share.path(), &["h"], &dead, |_| true).unwrap();
        drop(hold); // not released: as a killed controller leaves it
        let me = holder("r2", std::process::id());
        let err = acquire(share.path(), &["h"], &me, |h| h.run_id == "r2")
            .err()
            .unwrap();
        assert!(matches!(err, HoldError::Abandoned { .. }), "{err}");
        let taken = acquire(share.path(), &["h"], &me, |h| h.run_id == "r1").unwrap();
        assert!(taken.path().ends_with("00000002.json"));
    }

    #[test]
    fn of_many_racing_for_a_gone_holders_hold_exactly_one_wins() {
        let share = tempfile::tempdir().unwrap();
        drop(acquire(share.path(), &["h"], &holder("r1", 4_194_303), |_| true).unwrap());
        let root = share.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let root = root.clone();
                std::thread::spawn(move || {
                    // This process: the winner is alive to the others.
                    let me = holder("r1", std::process::id());
                    acquire(&root, &["h"], &me, |_| true).map(std::mem::forget)
                })
            })
            .collect();
        let won = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(Result::is_ok)
            .count();
        assert_eq!(won, 1);
    }
}
