//! Recording into a small filesystem until it fills (a size-limited tmpfs the test mounts):
//! RTSP keeps its frame rate, `/healthz` and the metrics say the recording stopped, the log
//! says it once, every segment left on disk plays, and recording resumes by itself once space
//! returns, after its folder is deleted, and after its path was unusable. With a retention limit the oldest segment
//! goes first and recording carries on.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FPS: u32 = 15;

/// A tmpfs of `mb` megabytes mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (as on the project's machines and CI): {}",
            common::stderr(&out)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with one file until a write fails.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x5au8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

fn health(port: u16) -> serde_json::Value {
    let (_, _, body) = common::http_get(port, "/healthz", &[]).unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn metric(port: u16, sample: &str) -> f64 {
    let (_, _, body) = common::http_get(port, "/metrics", &[]).unwrap();
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample}"))
}

/// Waits up to `limit` for `done`, failing with `what`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn segments(folder: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "mkv"));
    v.sort();
    v
}

/// Starts the daemon on one test camera recording into `folder`; (child, its stderr lines
/// collected by a thread, rtsp port, metrics port).
fn start(
    dir: &Path,
    folder: &Path,
    retention: &str,
) -> (common::Reaped, std::sync::mpsc::Receiver<String>, u16, u16) {
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let config = dir.join("disk.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nweights = \"l3\"\n[rtsp]\nport = {port}\n[metrics]\nbind = \"127.0.0.1:{metrics_port}\"\n\
             [[camera]]\nid = \"cam\"\nsource = {{ kind = \"test\", pattern = \"snow\" }}\nformat = \"GRAY8\"\n\
             width = 320\nheight = 240\nfps = {FPS}\n\
             record = {{ folder = \"{}\", segment_seconds = 2{retention} }}\n",
            folder.display()
        ),
    )
    .unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_for(Duration::from_secs(30), "the daemon recording", || {
        common::http_get(metrics_port, "/readyz", &[]).is_ok_and(|r| r.0.contains("200"))
            && !segments(folder).is_empty()
    });
    (child, rx, port, metrics_port)
}

fn recording_state(port: u16) -> String {
    health(port)["cameras"][0]["recording"]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_full_disk_stops_only_the_recording_which_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), 4);
    let folder = disk.0.join("rec");
    let (mut child, log, port, metrics_port) = start(dir.path(), &folder, "");

    let filler = fill(&disk.0);
    wait_for(
        Duration::from_secs(20),
        "the recording marked failed",
        || recording_state(metrics_port) == "failed",
    );
    let h = health(metrics_port);
    assert!(
        h["cameras"][0]["recording"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("full") || e.contains("free")),
        "{h}"
    );
    assert_eq!(h["healthy"], true, "the camera still streams: {h}");
    assert_eq!(
        metric(metrics_port, "nircolor_recording_up{camera=\"cam\"}"),
        0.0
    );

    // RTSP keeps its frame rate while the disk is full: 3 s of video from a real client.
    let encoded = |p| metric(p, "nircolor_frames_encoded_total{camera=\"cam\"}");
    let (before, t0) = (encoded(metrics_port), Instant::now());
    let out = common::read_rtsp_rgb(&format!("rtsp://127.0.0.1:{port}/cam"), 45);
    assert_eq!(
        out.stdout.len(),
        45 * 320 * 240 * 3,
        "{}",
        common::stderr(&out)
    );
    let rate = (encoded(metrics_port) - before) / t0.elapsed().as_secs_f64();
    assert!(
        rate > f64::from(FPS) * 0.9,
        "{rate:.1} fps encoded on a full disk"
    );

    // Space returns: recording resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let count = segments(&folder).len();
    wait_for(Duration::from_secs(20), "the recording resumed", || {
        recording_state(metrics_port) == "recording" && segments(&folder).len() > count
    });
    // The folder disappears: it is made again and recording goes on.
    std::fs::remove_dir_all(&folder).unwrap();
    wait_for(
        Duration::from_secs(30),
        "recording into a new folder",
        || segments(&folder).len() >= 2 && recording_state(metrics_port) == "recording",
    );
    // The folder's path becomes unusable (a file where the folder was; the daemon runs as
    // root here, which permissions alone would not stop): recording stops, and resumes once
    // the path is usable again.
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::write(&folder, b"not a folder").unwrap();
    wait_for(
        Duration::from_secs(20),
        "an unusable folder noticed",
        || recording_state(metrics_port) == "failed",
    );
    let why = health(metrics_port)["cameras"][0]["recording"]["last_error"].to_string();
    assert!(why.contains(&folder.display().to_string()), "{why}");
    std::fs::remove_file(&folder).unwrap();
    wait_for(
        Duration::from_secs(20),
        "recording after the folder is usable",
        || recording_state(metrics_port) == "recording" && !segments(&folder).is_empty(),
    );
    let failures = metric(
        metrics_port,
        "nircolor_recording_failures_total{camera=\"cam\"}",
    );
    assert!(failures >= 3.0, "{failures} failures");

    // Fill it again and stop there: SIGTERM leaves only segments that play.
    fill(&disk.0);
    wait_for(Duration::from_secs(20), "the second failure", || {
        recording_state(metrics_port) == "failed"
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM");
    for segment in segments(&folder) {
        let (frames, w, h) = common::probe(&segment);
        assert!(
            frames > 0 && (w, h) == (320, 240),
            "{} does not play",
            segment.display()
        );
    }
    let lines: Vec<String> = log.try_iter().collect();
    let stopped = lines
        .iter()
        .filter(|l| l.contains("recording stopped"))
        .count();
    assert!(
        (3..=4).contains(&stopped),
        "one line per failure, not per frame or retry: {stopped}\n{}",
        lines.join("\n")
    );
}

#[test]
fn with_a_retention_limit_a_full_disk_costs_the_oldest_segment_not_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), 4);
    let folder = disk.0.join("rec");
    let (mut child, _log, _, metrics_port) = start(dir.path(), &folder, ", max_total_mb = 1000");
    // Enough recorded that deleting it makes room for new segments.
    let recorded = || -> u64 {
        segments(&folder)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    };
    wait_for(Duration::from_secs(90), "1 MB of segments", || {
        segments(&folder).len() >= 3 && recorded() > 1_000_000
    });
    let oldest = segments(&folder)[0].clone();
    fill(&disk.0);
    wait_for(
        Duration::from_secs(30),
        "the oldest segment deleted",
        || {
            metric(
                metrics_port,
                "nircolor_recording_segments_freed_total{camera=\"cam\"}",
            ) >= 1.0
        },
    );
    assert!(!oldest.exists());
    // Recording carries on into the room the deleted segment left.
    let newest = segments(&folder).last().cloned();
    wait_for(
        Duration::from_secs(20),
        "a new segment after freeing",
        || segments(&folder).last() != newest.as_ref(),
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM");
    for segment in segments(&folder) {
        assert!(
            common::probe(&segment).0 > 0,
            "{} does not play",
            segment.display()
        );
    }
}
