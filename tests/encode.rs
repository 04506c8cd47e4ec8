//! The encode stage against real GStreamer and real clients: recordings decoded completely by
//! ffprobe, an RTSP stream read by ffmpeg with the right colour, and recordings that survive
//! kill -9 losing at most the last second.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nircolor::encode::{Container, Encoder, EncoderSettings, RecordSpec, RtspFeed, RtspServer};
use nircolor::images::planes::Rgb;

const W: usize = 160;
const H: usize = 120;
const FPS: u32 = 30;

/// A strongly red frame with a moving bar, so colour and motion are both visible.
fn frame(i: u64) -> Rgb {
    let n = W * H;
    let mut data = vec![0.0f32; 3 * n];
    for y in 0..H {
        for x in 0..W {
            let bar = ((x as u64 + i * 3) % W as u64) < 12;
            let p = y * W + x;
            data[p] = if bar { 1.0 } else { 0.85 };
            data[n + p] = if bar { 1.0 } else { 0.15 };
            data[2 * n + p] = 0.1;
        }
    }
    Rgb::new(W, H, data)
}

fn spec(camera: &str, record: Option<RecordSpec>) -> EncoderSettings {
    EncoderSettings {
        camera: camera.into(),
        width: W,
        height: H,
        fps: FPS,
        bitrate_kbps: 1000,
        record,
        webcam: None,
    }
}

fn pts(i: u64) -> Duration {
    Duration::from_nanos(i * 1_000_000_000 / u64::from(FPS))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// An encoder on its own thread feeding an RTSP mount, one frame every `period`, until stopped.
struct Pusher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Pusher {
    fn start(camera: &'static str, feed: RtspFeed, period: Duration) -> Pusher {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut enc = Encoder::start(spec(camera, None), Some(feed)).unwrap();
                let start = Instant::now();
                // Until the test has its answers (each client read is bounded), however slow.
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(600) {
                    enc.push(&frame(i), pts(i)).unwrap();
                    i += 1;
                    let due = period * u32::try_from(i).unwrap();
                    std::thread::sleep(due.saturating_sub(start.elapsed()));
                }
                enc.finish(Duration::from_secs(5)).unwrap();
            })
        };
        Pusher { stop, thread }
    }

    /// Stops pushing and ends the encoder's stream.
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}

#[test]
fn recordings_split_into_complete_segments() {
    for container in [Container::Matroska, Container::FragmentedMp4] {
        let dir = tempfile::tempdir().unwrap();
        let record = RecordSpec {
            folder: dir.path().join("rec"),
            segment: Duration::from_secs(1),
            container,
            // Frames come faster than real time here: the recorder must wait, not drop.
            lossless: true,
            prune_when_full: false,
        };
        let mut enc = Encoder::start(spec("yard", Some(record)), None).unwrap();
        for i in 0..90 {
            enc.push(&frame(i), pts(i)).unwrap();
        }
        enc.finish(Duration::from_secs(10)).unwrap();
        let files = segments(&dir.path().join("rec"));
        assert!(
            files.len() >= 2,
            "{container:?}: 3 s in 1 s segments gave {files:?}"
        );
        let ext = container.extension();
        assert!(files.iter().all(|f| f
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("yard-")
            && f.extension().unwrap() == ext));
        let total: u64 = files.iter().map(|f| common::probe(f).0).sum();
        assert_eq!(
            total, 90,
            "{container:?}: every frame decodes from the segments {files:?}"
        );
    }
}

#[test]
fn a_wrong_frame_size_is_an_error() {
    let mut enc = Encoder::start(spec("s", None), None).unwrap();
    let err = enc
        .push(&Rgb::new(8, 8, vec![0.0; 192]), Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(err.contains("8x8") && err.contains("160x120"), "{err}");
}

#[test]
fn rtsp_viewers_get_colour_video() {
    let server = RtspServer::start("127.0.0.1", 0).unwrap();
    let feed = server.mount("/front").unwrap();
    assert!(server.mount("no-slash").is_err());
    let url = server.url("/front");
    let pusher = Pusher::start("front", feed, pts(1));
    let frames = 30;
    let out = common::read_rtsp_rgb(&url, frames);
    pusher.stop();
    assert!(
        out.status.success(),
        "ffmpeg could not read {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout.len(),
        frames * W * H * 3,
        "{frames} whole frames"
    );
    let last = &out.stdout[(frames - 1) * W * H * 3..];
    let mean =
        |c: usize| last.chunks_exact(3).map(|p| f64::from(p[c])).sum::<f64>() / (W * H) as f64;
    let (r, g, b) = (mean(0), mean(1), mean(2));
    assert!(
        r > 150.0 && g < 110.0 && b < 90.0,
        "red scene arrives red: mean RGB {r:.0} {g:.0} {b:.0}"
    );
}

const CHILD_ENV: &str = "NIRCOLOR_TEST_RECORD_DIR";

/// Run by `recordings_survive_kill_9` in a child process: records in real time until killed,
/// keeping the count of frames pushed in a file beside the recordings.
#[test]
#[ignore = "runs only as the child of recordings_survive_kill_9"]
fn child_records_until_killed() {
    let dir = PathBuf::from(std::env::var(CHILD_ENV).expect("run by recordings_survive_kill_9"));
    let container = if dir.ends_with("mp4") {
        Container::FragmentedMp4
    } else {
        Container::Matroska
    };
    let record = RecordSpec {
        folder: dir.join("rec"),
        segment: Duration::from_secs(60),
        container,
        lossless: false,
        prune_when_full: false,
    };
    let mut enc = Encoder::start(spec("crash", Some(record)), None).unwrap();
    let start = Instant::now();
    for i in 0.. {
        enc.push(&frame(i), pts(i)).unwrap();
        let tmp = dir.join("pushed.tmp");
        std::fs::write(&tmp, (i + 1).to_string()).unwrap();
        std::fs::rename(&tmp, dir.join("pushed")).unwrap();
        std::thread::sleep(pts(i + 1).saturating_sub(start.elapsed()));
    }
}

#[test]
fn recordings_survive_kill_9() {
    for kind in ["mkv", "mp4"] {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = common::Reaped(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_records_until_killed",
                    "--nocapture",
                ])
                .env(CHILD_ENV, &dir)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let pushed = |d: &Path| {
            std::fs::read_to_string(d.join("pushed"))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // Kill just before a keyframe (GOPs of 15 frames for Matroska, 10 for fragmented MP4
        // at 30 fps), when the most frames are held back: the worst case.
        let kill_at = if kind == "mkv" { 89 } else { 99 };
        while pushed(&dir) < kill_at && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap(); // SIGKILL: no chance to finalise anything
        common::wait_within(&mut child, Duration::from_secs(10), "the killed recorder");
        let pushed = pushed(&dir);
        assert!(
            pushed >= kill_at,
            "{kind}: child pushed only {pushed} frames"
        );
        let files = segments(&dir.join("rec"));
        assert_eq!(files.len(), 1, "{kind}: {files:?}");
        let decoded = common::probe(&files[0]).0;
        eprintln!("{kind}: {decoded} of {pushed} frames readable after kill -9");
        assert!(
            decoded + u64::from(FPS) >= pushed && decoded <= pushed,
            "{kind}: {decoded} of {pushed} frames readable after kill -9; at most one second ({FPS} frames) may be lost"
        );
    }
}

#[test]
fn a_mount_with_credentials_admits_only_its_user() {
    let server = RtspServer::start("127.0.0.1", 0).unwrap();
    let locked = server
        .mount_with("/locked", Some(("viewer", "s3cret")))
        .unwrap();
    let open = server.mount("/open").unwrap();
    let pushers = [
        Pusher::start("locked", locked, pts(1)),
        Pusher::start("open", open, pts(1)),
    ];
    let port = server.port;
    let anonymous = common::read_rtsp_rgb(&format!("rtsp://127.0.0.1:{port}/locked"), 5);
    let wrong = common::read_rtsp_rgb(&format!("rtsp://viewer:guess@127.0.0.1:{port}/locked"), 5);
    let right = common::read_rtsp_rgb(&format!("rtsp://viewer:s3cret@127.0.0.1:{port}/locked"), 5);
    let public = common::read_rtsp_rgb(&format!("rtsp://127.0.0.1:{port}/open"), 5);
    for p in pushers {
        p.stop();
    }
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!anonymous.status.success(), "no credentials were admitted");
    assert!(err(&anonymous).contains("401"), "{}", err(&anonymous));
    assert!(!wrong.status.success(), "a wrong password was admitted");
    assert!(right.status.success(), "{}", err(&right));
    assert_eq!(right.stdout.len(), 5 * W * H * 3);
    assert!(
        public.status.success(),
        "the open mount needs no login: {}",
        err(&public)
    );
}

#[test]
fn every_new_viewer_gets_video_however_fast_frames_arrive() {
    // Each client here is the mount's only one, so the shared media starts afresh for each,
    // while frames arrive every 2 ms: a frame that reaches the media while it is still starting
    // must not silence the stream (it did: stamped with the absolute clock, hours ahead, it
    // held the media's sink, and every viewer got nothing but RTCP).
    let server = RtspServer::start("127.0.0.1", 0).unwrap();
    let feed = server.mount("/busy").unwrap();
    let url = server.url("/busy");
    let pusher = Pusher::start("busy", feed, Duration::from_millis(2));
    let reads: Vec<_> = (0..30)
        .map(|_| common::read_rtsp_rgb_within(&url, 2, Duration::from_secs(15)))
        .collect();
    pusher.stop();
    for (n, out) in reads.iter().enumerate() {
        assert!(
            out.status.success() && out.stdout.len() == 2 * W * H * 3,
            "viewer {n} of {}: {}",
            reads.len(),
            common::stderr(out)
        );
    }
}

/// Left half red, right half blue, a white column every 64 pixels: a sheared or mis-strided
/// picture moves the columns and mixes the halves; a tint changes the halves' colour.
fn quadrant_frame(w: usize, h: usize) -> Rgb {
    let n = w * h;
    let mut data = vec![0.0f32; 3 * n];
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let (r, g, b) = if x % 64 < 4 {
                (1.0, 1.0, 1.0)
            } else if x < w / 2 {
                (0.9, 0.1, 0.1)
            } else {
                (0.1, 0.1, 0.9)
            };
            data[p] = r;
            data[n + p] = g;
            data[2 * n + p] = b;
        }
    }
    Rgb::new(w, h, data)
}

/// Checks one decoded packed-RGB frame of `quadrant_frame`.
fn assert_quadrants(rgb: &[u8], w: usize, h: usize, what: &str) {
    assert_eq!(rgb.len(), w * h * 3, "{what}: one whole frame");
    let mean = |x0: usize, x1: usize, c: usize| {
        let mut s = 0.0;
        let mut k = 0.0;
        for y in (h / 4..3 * h / 4).step_by(7) {
            for x in (x0..x1).filter(|x| x % 64 > 8 && x % 64 < 60) {
                s += f64::from(rgb[(y * w + x) * 3 + c]);
                k += 1.0;
            }
        }
        s / k
    };
    let left = (
        mean(8, w / 2 - 8, 0),
        mean(8, w / 2 - 8, 1),
        mean(8, w / 2 - 8, 2),
    );
    let right = (
        mean(w / 2 + 8, w - 8, 0),
        mean(w / 2 + 8, w - 8, 1),
        mean(w / 2 + 8, w - 8, 2),
    );
    assert!(
        left.0 > 180.0 && left.1 < 70.0 && left.2 < 70.0,
        "{what}: left half should be red, is {left:?}"
    );
    assert!(
        right.2 > 180.0 && right.0 < 70.0 && right.1 < 70.0,
        "{what}: right half should be blue, is {right:?}"
    );
    // The white columns stay where they were drawn, on every checked row.
    for y in (0..h).step_by(h / 8) {
        let px = &rgb[(y * w + 65) * 3..(y * w + 66) * 3];
        assert!(
            px.iter().all(|&v| v > 170),
            "{what}: row {y}: column 65 is {px:?}"
        );
    }
}

#[test]
fn padded_row_widths_encode_the_right_pixels_to_rtsp_and_recordings() {
    // 642 and 854 (16:9 at 480 lines): 3 * width is not a multiple of 4, so GStreamer's RGB
    // rows carry padding the frames must be written with.
    for (w, h) in [(642usize, 480usize), (854, 480), (160, 120)] {
        let dir = tempfile::tempdir().unwrap();
        let server = RtspServer::start("127.0.0.1", 0).unwrap();
        let feed = server.mount("/wide").unwrap();
        let url = server.url("/wide");
        let settings = EncoderSettings {
            width: w,
            height: h,
            record: Some(RecordSpec {
                folder: dir.path().join("rec"),
                segment: Duration::from_secs(60),
                container: Container::Matroska,
                lossless: false,
                prune_when_full: false,
            }),
            ..spec("wide", None)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let pusher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut enc = Encoder::start(settings, Some(feed)).unwrap();
                let frame = quadrant_frame(w, h);
                let start = Instant::now();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(120) {
                    enc.push(&frame, pts(i)).unwrap();
                    i += 1;
                    std::thread::sleep((pts(i)).saturating_sub(start.elapsed()));
                }
                enc.finish(Duration::from_secs(10)).unwrap();
            })
        };
        let out = common::read_rtsp_rgb(&url, 5);
        stop.store(true, Ordering::SeqCst);
        pusher.join().unwrap();
        assert!(
            out.status.success(),
            "{w}x{h}: ffmpeg: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let frame = w * h * 3;
        assert_eq!(
            out.stdout.len(),
            5 * frame,
            "{w}x{h}: five whole frames over RTSP"
        );
        assert_quadrants(
            &out.stdout[4 * frame..],
            w,
            h,
            &format!("{w}x{h} over RTSP"),
        );
        let file = &segments(&dir.path().join("rec"))[0];
        let decoded = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap();
        assert!(
            decoded.status.success(),
            "{}",
            String::from_utf8_lossy(&decoded.stderr)
        );
        assert_quadrants(&decoded.stdout, w, h, &format!("{w}x{h} recorded"));
    }
}

#[test]
fn odd_sizes_are_refused_with_the_reason() {
    for (w, h) in [(641, 480), (640, 479)] {
        let err = Encoder::start(
            EncoderSettings {
                width: w,
                height: h,
                ..spec("odd", None)
            },
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("even") && err.contains(&format!("{w}x{h}")),
            "{err}"
        );
    }
}

/// A frame of one colour.
fn solid(r: f32, g: f32, b: f32) -> Rgb {
    let n = W * H;
    let mut data = vec![r; n];
    data.extend(vec![g; n]);
    data.extend(vec![b; n]);
    Rgb::new(W, H, data)
}

#[test]
fn the_webcam_output_writes_every_colour_frame_at_its_caps() {
    use nircolor::encode::webcam::{WebcamFormat, WebcamSink, WebcamSpec};
    let dir = tempfile::tempdir().unwrap();
    for (format, pix_fmt, bytes_per_pixel) in [
        (WebcamFormat::Yuy2, "yuyv422", 2.0),
        (WebcamFormat::I420, "yuv420p", 1.5),
    ] {
        // The v4l2sink swapped for a file sink at the same caps: no loopback device exists here.
        let raw = dir
            .path()
            .join(format!("webcam-{}.raw", format.caps_name()));
        // Recorded as well: an encoder needs one output of its own to end its stream.
        let mut settings = spec(
            "cabin",
            Some(RecordSpec {
                folder: dir.path().join(format.caps_name()),
                segment: Duration::from_secs(60),
                container: Container::Matroska,
                lossless: false,
                prune_when_full: false,
            }),
        );
        settings.webcam = Some(WebcamSpec {
            sink: WebcamSink::File(raw.clone()),
            format,
        });
        let mut enc = Encoder::start(settings, None).unwrap();
        let frames = 20u64;
        for i in 0..frames {
            // Ten red frames, then ten blue.
            let rgb = if i < 10 {
                solid(0.9, 0.1, 0.1)
            } else {
                solid(0.1, 0.2, 0.9)
            };
            enc.push(&rgb, pts(i)).unwrap();
        }
        enc.finish(Duration::from_secs(10)).unwrap();
        let size = std::fs::metadata(&raw).unwrap().len();
        assert_eq!(
            size,
            (frames as f64 * (W * H) as f64 * bytes_per_pixel) as u64,
            "{pix_fmt}: every frame, at {W}x{H}"
        );
        // A real decoder reads the file at the configured caps and gets the colours back.
        let out = common::output_within(
            Command::new("ffmpeg")
                .args(["-v", "error", "-f", "rawvideo", "-pix_fmt", pix_fmt])
                .args(["-video_size", &format!("{W}x{H}"), "-i"])
                .arg(&raw)
                .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
            common::CLIENT_LIMIT,
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let frame_bytes = W * H * 3;
        assert_eq!(out.stdout.len(), frames as usize * frame_bytes);
        let centre = |f: usize| {
            let at = f * frame_bytes + (H / 2 * W + W / 2) * 3;
            [out.stdout[at], out.stdout[at + 1], out.stdout[at + 2]]
        };
        let (red, blue) = (centre(0), centre(frames as usize - 1));
        assert!(
            red[0] > 200 && red[1] < 60 && red[2] < 60,
            "{pix_fmt}: {red:?}"
        );
        assert!(blue[2] > 200 && blue[0] < 60, "{pix_fmt}: {blue:?}");
    }
}
