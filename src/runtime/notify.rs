//! systemd integration: `sd_notify` messages (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...) over
//! the datagram socket systemd names in NOTIFY_SOCKET, and the watchdog interval it asks for.
//! Outside systemd (no NOTIFY_SOCKET) every call is a no-op.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `state` (newline-separated `KEY=value` lines) to systemd. Returns whether a manager was
/// there to tell.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.to_string_lossy().into_owned();
    let socket = UnixDatagram::unbound()?;
    // '@' marks a Linux abstract socket name.
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(&path)?,
    };
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// The keep-alive interval systemd expects (WatchdogSec), when it watches this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    // WATCHDOG_PID, when set, names the process meant; a child that inherited it must not ping.
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// When to send watchdog keep-alives: one is due every `every`, and is sent only if the stages
/// made progress since the last one was due, or when nothing is expected to flow (no camera up,
/// the capture supervisors retrying). A stalled stage thus stops them and systemd restarts us.
#[derive(Debug)]
pub struct Watchdog {
    every: Duration,
    due: std::time::Instant,
    progress: u64,
}

impl Watchdog {
    pub fn new(every: Duration, now: std::time::Instant) -> Watchdog {
        Watchdog {
            every,
            due: now + every,
            progress: 0,
        }
    }

    /// `None` when no keep-alive is due at `now`; `Some(true)` to send one, `Some(false)` to
    /// withhold it. `progress` is a counter that grows while frames flow.
    pub fn tick(&mut self, now: std::time::Instant, progress: u64, expected: bool) -> Option<bool> {
        if now < self.due {
            return None;
        }
        self.due = now + self.every;
        let moved = progress > self.progress;
        self.progress = progress;
        Some(moved || !expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn keep_alives_follow_progress() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Watchdog::new(ms(100), t0);
        assert_eq!(w.tick(t0 + ms(50), 5, true), None, "not due yet");
        assert_eq!(w.tick(t0 + ms(100), 5, true), Some(true), "frames flowed");
        assert_eq!(w.tick(t0 + ms(150), 9, true), None);
        assert_eq!(w.tick(t0 + ms(200), 9, true), Some(true));
        // A stalled stage: the counter stands still while a camera is up.
        assert_eq!(w.tick(t0 + ms(300), 9, true), Some(false));
        assert_eq!(w.tick(t0 + ms(400), 9, true), Some(false));
        // Every camera away: nothing can flow, and retrying is progress enough.
        assert_eq!(w.tick(t0 + ms(500), 9, false), Some(true));
        // Frames again.
        assert_eq!(w.tick(t0 + ms(600), 10, true), Some(true));
    }
}
