//! Free space on a Windows volume (`GetDiskFreeSpaceExW`, the space available to the agent's
//! account), for the `stage` step: how the controller tells a disk that filled during a
//! transfer from a cut connection. Elsewhere (the agent built for Linux runs the lab backend
//! only) there is nothing to ask.

use std::path::Path;

/// Free bytes on the volume of `path`'s folder, or `None` when Windows cannot say.
#[cfg(windows)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::windows::ffi::OsStrExt;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetDiskFreeSpaceExW(
            directory: *const u16,
            free_to_caller: *mut u64,
            total: *mut u64,
            total_free: *mut u64,
        ) -> i32;
    }
    // The folder exists (the controller made it); a missing one falls back to the path's root.
    let folder = path
        .parent()
        .filter(|p| p.is_dir())
        .or_else(|| path.ancestors().last())?;
    let wide: Vec<u16> = folder.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut free = 0u64;
    // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call; `free` is a
    // valid u64 to write; the two other outputs are optional and passed as null.
    let ok = unsafe {
        GetDiskFreeSpaceExW(
            wide.as_ptr(),
            &mut free,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(free)
}

#[cfg(not(windows))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}
