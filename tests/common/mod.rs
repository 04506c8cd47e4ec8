//! Shared helpers of the integration tests: where the real data, the reference Python and the
//! binary are, and small image fixtures.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one `nircolor` command of a test may take before it is killed (the slowest, the
/// short training runs, take well under a minute here).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// How long `nircolor run` may take to exit once signalled.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);

/// How long a client (ffmpeg, ffprobe) may take: reading a few frames or a short file.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(60);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data`, which CI places beside the clone.
pub fn shared_data() -> PathBuf {
    let d = root().join("../shared/data");
    assert!(
        d.is_dir(),
        "{} is missing: the tests use the real NIR/RGB pairs in ../shared/data",
        d.display()
    );
    d
}

/// The Python of the reference environment that `make test` (scripts/setup --venv) creates.
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make test` or `scripts/setup --venv` first",
        p.display()
    );
    p
}

/// Runs the real `nircolor` binary to completion (killed after [`COMMAND_LIMIT`]).
pub fn nircolor(args: &[&str]) -> Output {
    output_within(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(args)
            .current_dir(root()),
        COMMAND_LIMIT,
    )
}

/// Waits up to `limit` for `child` to exit; past that it is killed and the test fails naming
/// `what`. A wedged child then fails its test instead of hanging the whole suite.
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    exit_or_kill(child, limit)
        .unwrap_or_else(|| panic!("{what} was still running after {limit:?} and was killed"))
}

/// The child's exit status, or None when it was still running after `limit` and was killed.
fn exit_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("a child's status can be read") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `cmd.output()`, except that a child still running after `limit` is killed and the test
/// fails with what it had printed.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let status = exit_or_kill(&mut child, limit);
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{what} was still running after {limit:?} and was killed; its stderr:\n{}",
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// A background child that is killed and reaped when dropped, so a test that fails midway
/// leaves no daemon running (holding ports and CPU the next tests need).
pub struct Reaped(pub Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `nircolor eval ARGS --json FILE` (run in the checkout's root), which must succeed; the report.
pub fn eval_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let out = nircolor(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// The mean of `key` over the images of an `eval --json` report.
pub fn mean_of(json: &serde_json::Value, key: &str) -> f64 {
    json["mean"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("mean.{key} missing in {json}"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A gray gradient NIR of the given size.
pub fn gray(w: u32, h: u32) -> image::GrayImage {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
}

pub fn rgb(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 5 % 256) as u8, (y * 9 % 256) as u8, 80])
    })
}

/// Makes `dir/nir` and `dir/rgb` holding `n` good pairs named p0, p1, ...
pub fn dataset(dir: &Path, n: usize, w: u32, h: u32) {
    std::fs::create_dir_all(dir.join("nir")).unwrap();
    std::fs::create_dir_all(dir.join("rgb")).unwrap();
    for i in 0..n {
        gray(w, h).save(dir.join(format!("nir/p{i}.png"))).unwrap();
        rgb(w, h).save(dir.join(format!("rgb/p{i}.png"))).unwrap();
    }
}

/// Reads `frames` decoded frames of an RTSP stream with ffmpeg (a real client) as packed RGB.
/// A server that stops answering fails within 20 s (ffmpeg waits forever by default), and the
/// whole read is bounded by [`CLIENT_LIMIT`].
pub fn read_rtsp_rgb(url: &str, frames: usize) -> Output {
    read_rtsp_rgb_within(url, frames, CLIENT_LIMIT)
}

/// [`read_rtsp_rgb`] killed after `limit` (a server that sends only RTCP keeps ffmpeg's own
/// socket timeout from firing).
pub fn read_rtsp_rgb_within(url: &str, frames: usize, limit: Duration) -> Output {
    output_within(
        Command::new("ffmpeg")
            .args(["-v", "error", "-rtsp_transport", "tcp"])
            .args(["-timeout", "20000000", "-i", url])
            .args(["-frames:v", &frames.to_string()])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        limit,
    )
}

/// What ffprobe finds in a video file's first video stream: (frames it decodes, width, height);
/// zeros when it cannot read the file at all.
pub fn probe(file: &Path) -> (u64, u32, u32) {
    let out = output_within(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=nb_read_frames,width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        CLIENT_LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<u64> = text
        .trim()
        .split(',')
        .map(|v| v.trim().parse().unwrap_or(0))
        .collect();
    match f[..] {
        [w, h, n] => (n, w as u32, h as u32),
        _ => (0, 0, 0),
    }
}

/// A loopback TCP port for a test's server, never handed out twice in this process and taken
/// below Linux's ephemeral range (32768 and up), so neither a parallel test nor a client's own
/// outgoing socket (ffmpeg's, GStreamer's) can be given it before the server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    /// 20000-31999 in blocks of 200 per process: test binaries that follow one another do not
    /// reuse a port still in TIME_WAIT from the last.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 60) as u16 * 200;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(offset < 2000, "the tests ran out of ports");
        let port = base + offset % 12_000;
        let port = if port >= 32_000 { port - 12_000 } else { port };
        // Still checked: another program may hold it.
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// A plain HTTP/1.0 GET on loopback with extra `headers` ("Name: value"): (status line, the
/// response's header lines, body bytes).
pub fn http_get(
    port: u16,
    path: &str,
    headers: &[&str],
) -> std::io::Result<(String, String, Vec<u8>)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
    for h in headers {
        request += &format!("{h}\r\n");
    }
    stream.write_all(format!("{request}\r\n").as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    let (status, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
    Ok((status.to_string(), rest.to_string(), body))
}
