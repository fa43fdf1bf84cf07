//! The controller's own resource limits: open files. Each host in flight holds a socket (two
//! with the in-process lab server), so concurrency is sized to the limit instead of letting the
//! run fail host by host with "too many open files".

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
#[cfg(unix)]
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// File handles kept for the controller itself (stdio, logs, the share, key files).
const RESERVED_FILES: u64 = 64;

/// The most hosts that can be in flight with `open_files` handles (two per host: its socket
/// and one for a lab server or a password command).
pub fn concurrency_for(open_files: u64) -> usize {
    (open_files.saturating_sub(RESERVED_FILES) / 2).max(1) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn concurrency_fits_the_open_files_limit() {
        assert_eq!(super::concurrency_for(1024), 480);
        assert_eq!(super::concurrency_for(10), 1);
        assert!(super::raise_open_files_limit().unwrap_or(1024) >= 64);
    }
}
