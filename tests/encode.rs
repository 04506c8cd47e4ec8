//! The encode stage against real GStreamer and real clients: recordings decoded completely by
//! ffprobe, an RTSP stream read by ffmpeg with the right colour, and recordings that survive
//! kill -9 losing at most the last second.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nircolor::encode::{Container, Encoder, EncoderSpec, RecordSpec, RtspServer};
use nircolor::planes::Rgb;

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

fn spec(camera: &str, record: Option<RecordSpec>) -> EncoderSpec {
    EncoderSpec {
        camera: camera.into(),
        width: W,
        height: H,
        fps: FPS,
        bitrate_kbps: 1000,
        record,
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

#[test]
fn recordings_split_into_complete_segments() {
    for container in [Container::Matroska, Container::FragmentedMp4] {
        let dir = tempfile::tempdir().unwrap();
        let record = RecordSpec {
            folder: dir.path().join("rec"),
            segment: Duration::from_secs(1),
            container,
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
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut enc = Encoder::start(spec("front", None), Some(feed)).unwrap();
            let start = Instant::now();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && start.elapsed() < Duration::from_secs(20)
            {
                enc.push(&frame(i), pts(i)).unwrap();
                i += 1;
                std::thread::sleep(pts(i).saturating_sub(start.elapsed()));
            }
            enc.finish(Duration::from_secs(5)).unwrap();
        })
    };
    let frames = 30;
    let out = common::read_rtsp_rgb(&url, frames);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    pusher.join().unwrap();
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
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_records_until_killed",
                "--nocapture",
            ])
            .env(CHILD_ENV, &dir)
            .spawn()
            .unwrap();
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
        child.wait().unwrap();
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
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pushers: Vec<_> = [("locked", locked), ("open", open)]
        .into_iter()
        .map(|(name, feed)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut enc = Encoder::start(spec(name, None), Some(feed)).unwrap();
                let start = Instant::now();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst)
                    && start.elapsed() < Duration::from_secs(30)
                {
                    enc.push(&frame(i), pts(i)).unwrap();
                    i += 1;
                    std::thread::sleep(pts(i).saturating_sub(start.elapsed()));
                }
                enc.finish(Duration::from_secs(5)).unwrap();
            })
        })
        .collect();
    let port = server.port;
    let anonymous = common::read_rtsp_rgb(&format!("rtsp://127.0.0.1:{port}/locked"), 5);
    let wrong = common::read_rtsp_rgb(&format!("rtsp://viewer:guess@127.0.0.1:{port}/locked"), 5);
    let right = common::read_rtsp_rgb(&format!("rtsp://viewer:s3cret@127.0.0.1:{port}/locked"), 5);
    let public = common::read_rtsp_rgb(&format!("rtsp://127.0.0.1:{port}/open"), 5);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in pushers {
        p.join().unwrap();
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
