//! A day/night camera through the real daemon and real GStreamer: a clip that goes colour, then
//! NIR, then colour (a real EPFL pair, lossless), played as a live file source. The colour comes
//! out as it went in, the NIR is colorized, the mode and its changes show in the metrics and
//! `/status.json`, and no frame is dropped at either switch.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const W: u32 = 320;
const H: u32 = 240;
const FPS: u32 = 30;
/// Seconds of each part: colour, NIR, colour. Longer than the detector's switch (1 s) plus its
/// minimum hold (3 s), so every part is seen as its own mode.
const PART: u32 = 5;

/// The clip: `street_0007`'s colour, its NIR (gray in RGB, as a camera in YUV or RGB sends
/// it), its colour again, as FFV1 in Matroska.
fn clip(dir: &std::path::Path) -> std::path::PathBuf {
    let data = common::shared_data().join("epfl-scenes");
    let (nir, rgb) = (
        data.join("nir/street_0007.png"),
        data.join("rgb/street_0007.jpg"),
    );
    let out = dir.join("daynight.mkv");
    let part = format!(
        "scale={W}:{H},setsar=1,format=rgb24,fps={FPS},trim=duration={PART},setpts=PTS-STARTPTS"
    );
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(["-loop", "1", "-i", rgb.to_str().unwrap()])
        .args(["-loop", "1", "-i", nir.to_str().unwrap()])
        .args(["-loop", "1", "-i", rgb.to_str().unwrap()])
        .args([
            "-filter_complex",
            &format!("[0]{part}[a];[1]{part}[b];[2]{part}[c];[a][b][c]concat=n=3:v=1[v]"),
        ])
        .args(["-map", "[v]", "-c:v", "ffv1", "-pix_fmt", "bgr0"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make the clip");
    out
}

/// Frames `from..from + n` of a video as packed RGB.
fn frames(video: &std::path::Path, from: u32, n: u32) -> Vec<u8> {
    let out = common::output_within(
        Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i", video.to_str().unwrap()])
            .args([
                "-vf",
                &format!("select=between(n\\,{from}\\,{})", from + n - 1),
            ])
            .args(["-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(
        out.stdout.len(),
        (n * W * H * 3) as usize,
        "frames {from}..+{n}"
    );
    out.stdout
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

/// Mean max - min channel over packed RGB.
fn chroma(rgb: &[u8]) -> f64 {
    rgb.chunks_exact(3)
        .map(|p| f64::from(p.iter().max().unwrap() - p.iter().min().unwrap()))
        .sum::<f64>()
        / (rgb.len() / 3) as f64
}

fn metric(metrics: &str, sample: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn get(port: u16, path: &str) -> Option<String> {
    common::http_get(port, path, &[])
        .ok()
        .map(|(_, _, body)| String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn colour_passes_through_by_day_and_nir_is_colorized_at_night_without_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(dir.path());
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("daynight.toml");
    std::fs::write(
        &config,
        format!(
            r#"[model]
weights = "default"
[rtsp]
port = {port}
[metrics]
bind = "127.0.0.1:{metrics_port}"
[[camera]]
id = "yard"
source = {{ kind = "file", path = "{}", loop = false }}
format = "YUY2"
day_night = true
width = {W}
height = {H}
fps = {FPS}
record = {{ folder = "rec", segment_seconds = 60, container = "mkv" }}
"#,
            video.display()
        ),
    )
    .unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Watch the modes go by: night at first, then day, night, day.
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(u64::from(3 * PART + 10)) {
        std::thread::sleep(Duration::from_millis(200));
        let Some(metrics) = get(metrics_port, "/metrics") else {
            continue;
        };
        let day = metric(&metrics, "nircolor_camera_day_mode{camera=\"yard\"}");
        if let Some(d) = day {
            let mode = if d == 1.0 { "day" } else { "night" };
            if seen.last().map(String::as_str) != Some(mode) {
                seen.push(mode.to_string());
            }
        }
        last = metrics;
        if metric(
            &last,
            "nircolor_camera_mode_transitions_total{camera=\"yard\"}",
        ) == Some(3.0)
            && started.elapsed() > Duration::from_secs(u64::from(3 * PART))
        {
            break;
        }
    }
    assert_eq!(seen.join(" "), "night day night day", "{last}");
    assert_eq!(
        metric(
            &last,
            "nircolor_camera_mode_transitions_total{camera=\"yard\"}"
        ),
        Some(3.0),
        "{last}"
    );
    let status = get(metrics_port, "/status.json").unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["cameras"][0]["mode"], "day", "{status}");
    assert_eq!(status["cameras"][0]["mode_transitions"], 3, "{status}");
    for stage in ["infer", "encode"] {
        assert_eq!(
            metric(
                &last,
                &format!("nircolor_frames_dropped_total{{camera=\"yard\",stage=\"{stage}\"}}")
            ),
            Some(0.0),
            "{last}"
        );
    }
    // The clip's end: every frame encoded.
    let all = f64::from(3 * PART * FPS);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let encoded = get(metrics_port, "/metrics")
            .and_then(|m| metric(&m, "nircolor_frames_encoded_total{camera=\"yard\"}"));
        if encoded >= Some(all) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM").success());

    let recording = std::fs::read_dir(dir.path().join("rec"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mkv"))
        .expect("a recording");
    let (count, _, _) = common::probe(&recording);
    // Every frame of the clip, with no restart and no gap at the switches.
    assert_eq!(count, u64::from(3 * PART * FPS), "frames recorded");
    // By day (the last part, after the switch), the camera's own colour: only x264 between.
    let n = 10;
    let day_from = 2 * PART * FPS + 3 * FPS;
    let (input, output) = (frames(&video, day_from, n), frames(&recording, day_from, n));
    let day_psnr = psnr(&input, &output);
    assert!(
        day_psnr >= 35.0,
        "day frames at {day_psnr:.1} dB of their input"
    );
    // At night (the middle part, after the switch), the NIR colorized: colour that the gray
    // input does not have.
    let night_from = PART * FPS + 3 * FPS;
    let (nir_in, night_out) = (
        frames(&video, night_from, n),
        frames(&recording, night_from, n),
    );
    assert!(chroma(&nir_in) < 1.0, "{}", chroma(&nir_in));
    assert!(
        chroma(&night_out) > 3.0,
        "night output chroma {}",
        chroma(&night_out)
    );
}
