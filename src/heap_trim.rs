//! Handing freed heap memory back to the OS (glibc only; other C libraries do it on
//! their own, and there both functions do nothing).
//!
//! glibc's malloc keeps the memory of freed values in its heap: without help, RSS stays
//! at the load's high-water mark long after every key expired or a burst of uploads was
//! answered (`scripts/soak.sh` measures it). The only `unsafe` code of the crate is the
//! two calls into glibc in the private `glibc` module below.
//!
//! The trimmer reads the process's RSS, not glibc's own statistics: `mallinfo2` walks
//! every free chunk under each arena's lock, which under load takes tens of
//! milliseconds and holds up every allocation of that arena meanwhile.

/// Big values (request bodies, stored values of a MiB or more) get pages of their own,
/// returned to the kernel the moment they are freed. glibc starts at 128 KiB but raises
/// the threshold to the size of each mapped block freed (up to 32 MiB), after which big
/// bodies come from the heap and leave holes there when freed; a fixed threshold keeps
/// RSS after a burst of big uploads close to what the stored values need
/// (`tests/public_abuse.rs`).
///
/// Call it before any thread is started.
pub fn map_big_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !glibc::set_mmap_threshold(MMAP_THRESHOLD) {
        eprintln!("repram-flux: could not set the malloc mmap threshold; big freed values may stay in the heap");
    }
}

/// Where glibc reads its malloc tunables from, once, when the process starts.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TUNABLES: &str = "GLIBC_TUNABLES";
/// The tunable [`limit_thread_caches`] sets, and its name.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TCACHE_COUNT: &str = "glibc.malloc.tcache_count";
/// Freed chunks of each size a thread keeps for itself (glibc's default is 7).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TCACHE_CHUNKS: u32 = 1;

/// Set in the environment of the re-executed process, which removes it at once: it never
/// re-executes again, even where glibc drops `GLIBC_TUNABLES` (a setuid binary, or one
/// with file capabilities to bind a low port).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const RESTARTED: &str = "REPRAM_FLUX_RESTARTED";

/// Makes glibc's per-thread caches small: each thread keeps up to 7 freed chunks of each
/// small size for itself, where no trim reaches them, and after a wave of expiries those
/// chunks, scattered over the heap, keep hundreds of otherwise free pages resident
/// (measured in docs/performance.md). glibc reads the setting only from the environment
/// at startup, so the process executes its own file again, once, with it added to
/// `GLIBC_TUNABLES` (same pid, arguments and name); when that variable already sets
/// `glibc.malloc.tcache_count`, the operator's value stands and nothing happens. Returns
/// only if it did not re-execute.
///
/// Call it first thing, before any thread is started.
pub fn limit_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        if std::env::var_os(RESTARTED).is_some() {
            // No other thread runs yet, so changing the environment races with nothing.
            std::env::remove_var(RESTARTED);
            return;
        }
        let Some(tunables) = with_tcache_limit(std::env::var_os(TUNABLES).as_deref()) else {
            return;
        };
        let Some(program) = own_program() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(program);
        if let Some(name) = args.next() {
            command.arg0(name);
        }
        let error = command
            .args(args)
            .env(TUNABLES, tunables)
            .env(RESTARTED, "1")
            .exec();
        eprintln!(
            "repram-flux: could not restart with {TCACHE_COUNT}={TCACHE_CHUNKS} ({error}); \
             freed memory may stay resident after expiries"
        );
    }
}

/// The file to execute this program again from: its own path (executing
/// `/proc/self/exe` would rename the process `exe`), or `/proc/self/exe` when that file
/// has been replaced since; `None` when it was started through the dynamic loader, whose
/// file that is.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn own_program() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    if name.starts_with("ld-linux") || name.starts_with("ld.so") {
        return None;
    }
    if name.ends_with(" (deleted)") {
        return Some("/proc/self/exe".into());
    }
    Some(exe)
}

/// `GLIBC_TUNABLES` with the thread cache limit added, or `None` when `current` already
/// sets it.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn with_tcache_limit(current: Option<&std::ffi::OsStr>) -> Option<std::ffi::OsString> {
    let setting = format!("{TCACHE_COUNT}={TCACHE_CHUNKS}");
    let Some(current) = current.filter(|c| !c.is_empty()) else {
        return Some(setting.into());
    };
    let named = current
        .to_string_lossy()
        .split(':')
        .any(|t| t.split('=').next() == Some(TCACHE_COUNT));
    if named {
        return None;
    }
    let mut tunables = current.to_os_string();
    tunables.push(":");
    tunables.push(setting);
    Some(tunables)
}

/// Starts the `heap-trim` thread: once a second, if `purged_bytes` (bytes of expired
/// data purged so far) grew by at least 1 MiB, or RSS stands 16 MiB above where the
/// last trim left it and stopped growing (a burst of request bodies and connection
/// buffers is over), hand the free pages of the heap back to the OS. A thread of its
/// own: a trim walks the heap and must not hold up a runtime worker.
pub fn spawn(purged_bytes: impl Fn() -> u64 + Send + 'static) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let trimmer = std::thread::Builder::new()
            .name("heap-trim".into())
            .spawn(move || trim_forever(purged_bytes));
        if let Err(e) = trimmer {
            tracing::warn!(error = %e, "cannot start the heap trimmer; freed memory stays in the heap");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = purged_bytes;
}

/// Allocations of at least this size get pages of their own from the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 1 << 20;
/// Check interval of the heap trimmer.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Purged bytes that make the heap trimmer give memory back.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TRIM_AFTER_BYTES: u64 = 1 << 20;
/// Purged bytes that make it give memory back once purging has paused for a check
/// interval: the tail of a wave of expiries, below [`TRIM_AFTER_BYTES`], would otherwise
/// stay in the heap until the next wave.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TRIM_SETTLED_BYTES: u64 = 64 << 10;
/// Growth of RSS since the last trim that makes the heap trimmer give memory back once
/// RSS stops growing.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const TRIM_AFTER_RSS_BYTES: u64 = 16 << 20;

/// When to trim, from what the trimmer reads once per check interval.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
#[derive(Debug)]
struct Trigger {
    /// Purged bytes at the last trim.
    trimmed_at: u64,
    /// Purged bytes at the last check.
    last_purged: u64,
    /// RSS after the last trim, or the least seen since.
    rss_floor: u64,
    /// RSS at the last check.
    last_rss: u64,
}

#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
impl Trigger {
    fn new(purged: u64, rss: u64) -> Trigger {
        Trigger {
            trimmed_at: purged,
            last_purged: purged,
            rss_floor: rss,
            last_rss: rss,
        }
    }

    /// True when the heap should be trimmed now, given the purged bytes so far and the
    /// process's RSS.
    fn check(&mut self, purged: u64, rss: u64) -> bool {
        self.rss_floor = self.rss_floor.min(rss);
        let since_trim = purged.wrapping_sub(self.trimmed_at);
        let settled = purged == self.last_purged;
        self.last_purged = purged;
        // Growth that goes on is data or load still coming: a trim then would find
        // little and cost a walk of the heap under its locks.
        let growing = rss > self.last_rss;
        self.last_rss = rss;
        since_trim >= TRIM_AFTER_BYTES
            || (settled && since_trim >= TRIM_SETTLED_BYTES)
            || (!growing && rss.saturating_sub(self.rss_floor) >= TRIM_AFTER_RSS_BYTES)
    }

    /// A trim happened; `rss` is the process's RSS after it.
    fn trimmed(&mut self, purged: u64, rss: u64) {
        self.trimmed_at = purged;
        self.rss_floor = rss;
        self.last_rss = rss;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_forever(purged_bytes: impl Fn() -> u64) {
    // Without RSS readings (0), only purges trigger a trim.
    let rss = rss_bytes().unwrap_or_else(|| {
        tracing::warn!("cannot read /proc/self/statm; the heap is trimmed only after expiries");
        0
    });
    let mut trigger = Trigger::new(purged_bytes(), rss);
    loop {
        std::thread::sleep(TRIM_EVERY);
        let purged = purged_bytes();
        let rss = rss_bytes().unwrap_or(0);
        if trigger.check(purged, rss) {
            let t0 = std::time::Instant::now();
            glibc::trim();
            let after = rss_bytes().unwrap_or(0);
            trigger.trimmed(purged, after);
            tracing::debug!(
                took_us = t0.elapsed().as_micros() as u64,
                rss,
                after,
                "heap trimmed"
            );
        }
    }
}

/// The process's resident set in bytes, from `/proc/self/statm` (its second field, in
/// pages).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// Safe wrappers around the two glibc malloc calls used: the crate's only `unsafe`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    /// Returns the free pages of glibc's heap to the kernel.
    pub(super) fn trim() {
        // SAFETY: malloc_trim only returns free pages of glibc's own heap to the kernel;
        // it is thread-safe and touches no memory in use.
        unsafe { libc::malloc_trim(0) };
    }

    /// Sets `M_MMAP_THRESHOLD`; false if glibc refused.
    pub(super) fn set_mmap_threshold(bytes: i32) -> bool {
        // SAFETY: mallopt only changes a malloc tuning parameter (an integer in glibc's
        // state, set under its lock); no memory of ours is involved.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn the_thread_cache_limit_joins_other_tunables_and_yields_to_an_operators() {
        let limit = "glibc.malloc.tcache_count=1";
        assert_eq!(with_tcache_limit(None), Some(limit.into()));
        assert_eq!(with_tcache_limit(Some(OsStr::new(""))), Some(limit.into()));
        assert_eq!(
            with_tcache_limit(Some(OsStr::new("glibc.malloc.arena_max=2"))),
            Some(format!("glibc.malloc.arena_max=2:{limit}").into())
        );
        for set in [
            "glibc.malloc.tcache_count=7",
            "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0",
        ] {
            assert_eq!(with_tcache_limit(Some(OsStr::new(set))), None, "{set}");
        }
        // A tunable whose name only starts like it is another one.
        assert!(with_tcache_limit(Some(OsStr::new("glibc.malloc.tcache_count_x=1"))).is_some());
    }

    #[test]
    fn trims_after_a_megabyte_purged_or_when_purging_pauses() {
        let mut t = Trigger::new(0, 0);
        assert!(!t.check(0, 0), "nothing happened");
        assert!(t.check(TRIM_AFTER_BYTES, 0), "a MiB purged");
        t.trimmed(TRIM_AFTER_BYTES, 0);
        // The tail of the wave: too little to trim while purging goes on...
        let tail = TRIM_AFTER_BYTES + TRIM_SETTLED_BYTES;
        assert!(!t.check(tail, 0));
        // ...trimmed once purging has paused for a check.
        assert!(t.check(tail, 0));
        t.trimmed(tail, 0);
        assert!(!t.check(tail, 0), "once");
        // A trickle below the settled amount waits for more.
        assert!(!t.check(tail + 10, 0));
        assert!(!t.check(tail + 10, 0));
    }

    #[test]
    fn trims_when_rss_grew_and_stopped_growing() {
        const MIB: u64 = 1 << 20;
        let mut t = Trigger::new(0, 5 * MIB);
        assert!(!t.check(0, MIB));
        // A burst: RSS climbs past the least seen plus the threshold...
        assert!(!t.check(0, MIB + TRIM_AFTER_RSS_BYTES), "still growing");
        assert!(!t.check(0, 2 * MIB + TRIM_AFTER_RSS_BYTES), "still growing");
        // ...and is trimmed once it stops.
        assert!(t.check(0, 2 * MIB + TRIM_AFTER_RSS_BYTES), "stopped");
        t.trimmed(0, 2 * MIB);
        assert!(!t.check(0, 3 * MIB));
        assert!(!t.check(0, 3 * MIB), "not far enough above the trim");
    }
}
