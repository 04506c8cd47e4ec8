//! The HTTP side under a connection flood, against the real daemon on loopback: slow clients by
//! the hundred past the bounds, then clients with endless headers and huge bodies. The daemon's
//! threads stay under a ceiling and its memory barely moves, `/healthz` and `/metrics` answer
//! within a second throughout, the held connections are closed by the timeout, and RTSP keeps
//! its frame rate for a real viewer (ffmpeg).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nircolor::offline::flood::{probe, Flood};

const FPS: u32 = 30;
/// The bounds the test sets: small, so that the flood is many times past them.
const MAX_CONNECTIONS: usize = 16;
const PROBE_CONNECTIONS: usize = 4;
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slow clients: 30 times the two pools together.
const FLOOD: usize = 600;
/// The bars.
const PROBE_LIMIT: Duration = Duration::from_secs(1);
const RSS_GROWTH_MB: f64 = 20.0;
/// The HTTP side's threads: its event loop and at most 4 that wait for snapshots. The ceiling
/// allows them all over the daemon's threads before the flood.
const HTTP_THREADS: usize = 5;

struct Daemon {
    child: common::Reaped,
    metrics: SocketAddr,
    rtsp_port: u16,
    _dir: tempfile::TempDir,
}

fn start() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, metrics_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("flood.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nweights = \"l3\"\n[rtsp]\nport = {rtsp_port}\n\
             [metrics]\nbind = \"127.0.0.1:{metrics_port}\"\nmax_connections = {MAX_CONNECTIONS}\n\
             probe_connections = {PROBE_CONNECTIONS}\nheader_timeout_ms = {}\nidle_timeout_ms = 1000\n\
             max_header_bytes = 4096\n\
             [[camera]]\nid = \"c\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\nformat = \"GRAY8\"\n\
             width = 320\nheight = 240\nfps = {FPS}\n",
            HEADER_TIMEOUT.as_millis()
        ),
    )
    .unwrap();
    let child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let started = Instant::now();
    while !matches!(probe(metrics, "/healthz", PROBE_LIMIT), Ok((200, _))) {
        assert!(started.elapsed() < Duration::from_secs(30), "no /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
    Daemon {
        child,
        metrics,
        rtsp_port,
        _dir: dir,
    }
}

impl Daemon {
    /// (threads, resident MB) of the daemon now.
    fn usage(&self) -> (usize, f64) {
        let u = nircolor::offline::bench::ProcessUse::of(self.child.id()).unwrap();
        (u.threads, u.resident_mb)
    }

    fn metric(&self, sample: &str) -> f64 {
        let (_, _, body) = common::http_get(self.metrics.port(), "/metrics", &[]).unwrap();
        String::from_utf8(body)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {sample}"))
    }

    /// Probes `/healthz` and `/metrics` every 100 ms until `until` returns true or `limit`
    /// passes, sampling the daemon's threads and memory: (most threads, most resident MB,
    /// slowest probe).
    fn watch(&self, limit: Duration, until: impl Fn() -> bool) -> (usize, f64, Duration) {
        let started = Instant::now();
        let (mut threads, mut rss, mut slowest) = (0, 0.0f64, Duration::ZERO);
        while started.elapsed() < limit && !until() {
            for path in ["/healthz", "/metrics"] {
                let (code, took) = probe(self.metrics, path, PROBE_LIMIT)
                    .unwrap_or_else(|e| panic!("{path} did not answer within 1 s: {e}"));
                assert_eq!(code, 200, "{path} during the flood");
                slowest = slowest.max(took);
            }
            let (t, r) = self.usage();
            threads = threads.max(t);
            rss = rss.max(r);
            std::thread::sleep(Duration::from_millis(100));
        }
        (threads, rss, slowest)
    }
}

/// A real viewer's frame times: ffmpeg reads `frames` decoded frames from RTSP.
fn viewer(url: String, frames: usize) -> std::thread::JoinHandle<Vec<Instant>> {
    std::thread::spawn(move || {
        let (w, h) = (320, 240);
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-rtsp_transport", "tcp"])
            .args(["-timeout", "20000000", "-i", &url])
            .args(["-frames:v", &frames.to_string()])
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut frame = vec![0u8; w * h];
        let mut times = Vec::new();
        while times.len() < frames && out.read_exact(&mut frame).is_ok() {
            times.push(Instant::now());
        }
        let _ = child.kill();
        let _ = child.wait();
        times
    })
}

#[test]
fn slow_clients_far_past_the_bound_are_timed_out_while_probes_and_rtsp_carry_on() {
    let daemon = start();
    let frames = 9 * FPS as usize;
    let viewer = viewer(format!("rtsp://127.0.0.1:{}/c", daemon.rtsp_port), frames);
    // Warm: the camera streams to the viewer (its RTSP session has its threads) and the first
    // scrapes have been answered.
    std::thread::sleep(Duration::from_secs(2));
    let (threads_before, rss_before) = daemon.usage();
    let flood = Flood::slow(daemon.metrics, FLOOD, false);
    // While the first pool is held by slow clients, a page request is told why it is refused.
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, body) = common::http_get(daemon.metrics.port(), "/status.json", &[]).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(status.contains(" 503 "), "{status} {body}");
    assert!(body.contains("max_connections"), "{body}");
    let (threads, rss, slowest) = daemon.watch(HEADER_TIMEOUT * 4, || flood.finished());
    let report = flood.stop();
    eprintln!(
        "threads {threads_before} -> {threads} at most, resident {rss_before:.1} -> {rss:.1} MB at most, slowest probe {slowest:?}; flood: {report:?}"
    );
    assert_eq!(report.connect_errors, 0, "{report:?}");
    assert_eq!(
        report.still_open, 0,
        "connections held past 4 header timeouts: {report:?}"
    );
    assert_eq!(report.closed, FLOOD as u64);
    assert!(
        report.longest_held < HEADER_TIMEOUT + Duration::from_secs(1),
        "a slow client was held {:?}, the header timeout is {HEADER_TIMEOUT:?}",
        report.longest_held
    );
    assert!(
        threads <= threads_before + HTTP_THREADS,
        "threads {threads_before} -> {threads}"
    );
    assert!(
        rss - rss_before < RSS_GROWTH_MB,
        "resident memory {rss_before:.1} -> {rss:.1} MB"
    );
    // The first pool's slow clients were timed out; the rest refused or closed for room.
    let timed_out = daemon.metric("nircolor_http_requests_timed_out_total");
    let refused = daemon.metric("nircolor_http_connections_refused_total");
    assert!(timed_out >= MAX_CONNECTIONS as f64, "timed out {timed_out}");
    assert!(
        refused >= (FLOOD - MAX_CONNECTIONS - PROBE_CONNECTIONS) as f64,
        "refused {refused}"
    );
    assert!(daemon.metric("nircolor_http_connections_open") <= 2.0);
    let times = viewer.join().unwrap();
    assert_eq!(times.len(), frames, "the viewer stopped early");
    // From the second second on: the first includes ffmpeg's start and the first keyframe.
    let from = FPS as usize;
    let fps = (times.len() - 1 - from) as f64
        / times[times.len() - 1]
            .duration_since(times[from])
            .as_secs_f64();
    eprintln!("the viewer read {fps:.1} fps through the flood");
    assert!(fps > 0.95 * FPS as f64, "{fps:.1} fps");
    assert_eq!(
        daemon.metric("nircolor_frames_dropped_total{camera=\"c\",stage=\"encode\"}"),
        0.0
    );
}

/// Writes to `stream` until the server stops taking it: the bytes it took and how long that
/// was. Past the kernel's socket buffers a server that stopped reading stops the writes.
fn write_until_refused(stream: &mut TcpStream, chunk: &[u8], limit: Duration) -> (usize, Duration) {
    let started = Instant::now();
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut sent = 0;
    while started.elapsed() < limit {
        match stream.write(chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    (sent, started.elapsed())
}

/// The status line of the answer waiting on `stream`, if any.
fn status_line(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut answer = [0u8; 256];
    let n = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn endless_headers_and_huge_bodies_are_refused_with_memory_bounded() {
    let daemon = start();
    std::thread::sleep(Duration::from_secs(1));
    let (_, rss_before) = daemon.usage();
    // One of each read back: the answer names the refusal.
    let mut big_head = TcpStream::connect(daemon.metrics).unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(8192)
    );
    big_head.write_all(head.as_bytes()).unwrap();
    assert!(status_line(&mut big_head).contains(" 431 "));
    let mut body = TcpStream::connect(daemon.metrics).unwrap();
    body.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        .unwrap();
    body.write_all(&[b'x'; 4096]).unwrap();
    assert!(status_line(&mut body).contains(" 413 "));
    // Then many at once that keep sending: each is cut off, not buffered.
    const CLIENTS: usize = 40;
    const LIMIT: Duration = Duration::from_secs(10);
    let addr = daemon.metrics;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                if i % 2 == 0 {
                    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                        .unwrap();
                    write_until_refused(
                        &mut s,
                        &[b"X-Endless: ".as_slice(), &[b'h'; 1000], b"\r\n"].concat(),
                        LIMIT,
                    )
                } else {
                    s.write_all(
                        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n",
                    )
                    .unwrap();
                    write_until_refused(&mut s, &[b'b'; 16 * 1024], LIMIT)
                }
            })
        })
        .collect();
    let (_, rss, slowest) = daemon.watch(LIMIT + Duration::from_secs(1), || {
        clients.iter().all(|c| c.is_finished())
    });
    for (i, c) in clients.into_iter().enumerate() {
        let (sent, took) = c.join().unwrap();
        eprintln!("client {i}: {sent} bytes taken in {took:?}");
        assert!(took < LIMIT, "client {i} was still taken after {took:?}");
        // The request head limit (4 kB here) and the kernel's socket buffers on both sides.
        assert!(sent < 16 << 20, "client {i} sent {sent} bytes");
    }
    eprintln!("resident {rss_before:.1} -> {rss:.1} MB at most, slowest probe {slowest:?}");
    assert!(rss - rss_before < RSS_GROWTH_MB);
}
