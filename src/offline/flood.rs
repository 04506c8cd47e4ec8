//! Unfriendly HTTP clients for the soak bench and the tests: many connections that send half a
//! request line and then nothing, and the probe a monitor would send meanwhile.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a slow client sends: a request line cut in the middle, never finished.
const HALF_REQUEST: &[u8] = b"GET /status.json HT";
/// How often the flood looks at its connections for the server's close.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// What a flood saw by the time it stopped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloodReport {
    /// Connections opened, reopened ones included.
    pub opened: u64,
    /// Connections the server closed (with or without a 503 first).
    pub closed: u64,
    /// Of those, how many were answered 503 first.
    pub answered_503: u64,
    /// Connections that could not be opened (the server's backlog full, or no descriptors).
    pub connect_errors: u64,
    /// The longest any connection stayed open before the server closed it.
    pub longest_held: Duration,
    /// Connections still open when the flood stopped.
    pub still_open: usize,
}

/// `connections` slow clients against one address, on a thread of their own until stopped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<FloodReport>>,
}

impl Flood {
    /// Opens `connections` slow clients to `addr`. With `reopen`, each that the server closes is
    /// opened again, as a scanner or a broken client keeps doing; without, the flood ends as the
    /// server closes them.
    pub fn slow(addr: SocketAddr, connections: usize, reopen: bool) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || flood(addr, connections, reopen, &flag));
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the flood, closing what is still open, and says what it saw.
    pub fn stop(mut self) -> FloodReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }

    /// Whether every connection has been closed by the server (only without `reopen`).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.write_all(HALF_REQUEST)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn flood(addr: SocketAddr, connections: usize, reopen: bool, stop: &AtomicBool) -> FloodReport {
    let mut report = FloodReport::default();
    let mut open_now: Vec<(TcpStream, Instant)> = Vec::new();
    let connect = |report: &mut FloodReport, open_now: &mut Vec<(TcpStream, Instant)>| {
        report.opened += 1;
        match open(addr) {
            Ok(s) => open_now.push((s, Instant::now())),
            Err(_) => report.connect_errors += 1,
        }
    };
    for _ in 0..connections {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        connect(&mut report, &mut open_now);
    }
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) && (reopen || !open_now.is_empty()) {
        let mut closed = 0;
        open_now.retain_mut(|(s, since)| {
            let gone = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => {
                        if buf[..n].starts_with(b"HTTP/1.1 503") {
                            report.answered_503 += 1;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            if gone {
                closed += 1;
                report.closed += 1;
                report.longest_held = report.longest_held.max(since.elapsed());
            }
            !gone
        });
        if reopen {
            for _ in 0..closed {
                connect(&mut report, &mut open_now);
            }
            // Connections that could not be opened are tried again too.
            while open_now.len() < connections && !stop.load(Ordering::SeqCst) {
                let before = report.connect_errors;
                connect(&mut report, &mut open_now);
                if report.connect_errors > before {
                    break;
                }
            }
        }
        std::thread::sleep(LOOK_EVERY);
    }
    report.still_open = open_now.len();
    report
}

/// A plain HTTP/1.0 GET of `path` on `addr`, given up after `limit`: (status code, time to the
/// whole answer). The probe a kubelet or a scraper sends.
pub fn probe(addr: SocketAddr, path: &str, limit: Duration) -> std::io::Result<(u16, Duration)> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: probe\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let code = std::str::from_utf8(answer.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line in the answer"))?;
    Ok((code, started.elapsed()))
}
