//! The allocator settings of a long-running process: the daemon and the benchmarks that run it.

/// glibc's malloc gives threads that contend for the heap arenas of their own, up to eight per
/// core, and each arena keeps the frames freed into it. With the daemon's 80-odd threads,
/// resident memory climbed by about 140 MB over the first 15 minutes of `nircolor bench soak`
/// before it settled; with two arenas it settles within 5 minutes, about 150 MB lower, under the
/// same load (the figures are in the README's "Soak").
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`], unless `MALLOC_ARENA_MAX` is set in the
/// environment (the operator's choice wins). Returns whether the cap was applied.
pub fn limit_malloc_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a tunable of the allocator; it is thread-safe.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cap_applies_unless_the_environment_sets_one() {
        // The test binary's environment decides which branch runs; both must be consistent.
        let applied = super::limit_malloc_arenas();
        assert_eq!(applied, std::env::var_os("MALLOC_ARENA_MAX").is_none());
    }
}
