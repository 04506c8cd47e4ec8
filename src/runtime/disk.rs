//! The space left on a filesystem: the recorder prunes by it and the status page shows it.

use std::path::Path;

/// Free bytes for an unprivileged writer on the filesystem holding `path`, or `None` when it
/// cannot be asked (the folder does not exist yet, say).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `stat` points to writable memory of the size
    // statvfs writes; it is read only when the call succeeded and so filled it.
    let stat = unsafe {
        if libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}
