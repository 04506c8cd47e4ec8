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
    clip_of(dir, &[("rgb", false), ("nir", false), ("rgb", false)])
}

/// A clip of `PART` seconds per part: `street_0007`'s colour ("rgb") or NIR ("nir"), `moved`
/// as if the camera had been bumped (the view shifted by about 5 % and zoomed).
fn clip_of(dir: &std::path::Path, parts: &[(&str, bool)]) -> std::path::PathBuf {
    let data = common::shared_data().join("epfl-scenes");
    let out = dir.join("daynight.mkv");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-loglevel", "error", "-y"]);
    let mut graph = String::new();
    for (i, (kind, moved)) in parts.iter().enumerate() {
        let file = match *kind {
            "rgb" => data.join("rgb/street_0007.jpg"),
            _ => data.join("nir/street_0007.png"),
        };
        cmd.args(["-loop", "1", "-i", file.to_str().unwrap()]);
        let bump = if *moved {
            "crop=iw-64:ih-48:56:40,"
        } else {
            ""
        };
        graph += &format!(
            "[{i}]{bump}scale={W}:{H},setsar=1,format=rgb24,fps={FPS},trim=duration={PART},setpts=PTS-STARTPTS[p{i}];"
        );
    }
    for i in 0..parts.len() {
        graph += &format!("[p{i}]");
    }
    graph += &format!("concat=n={}:v=1[v]", parts.len());
    let status = cmd
        .args(["-filter_complex", &graph])
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

/// What a run of the clip left: the last metrics, `/status.json`, and the recording.
struct Ran {
    metrics: String,
    status: serde_json::Value,
    recording: std::path::PathBuf,
    /// How long after the switch to night the camera was found moved, if it was.
    moved_after: Option<Duration>,
}

/// Plays the clip through `nircolor run` as camera `yard` (with `extra` TOML lines), watches
/// the modes go by (night at first, then day, night, day), waits for every frame to be
/// encoded, stops it with SIGTERM.
fn run(dir: &std::path::Path, video: &std::path::Path, extra: &str) -> Ran {
    run_expecting(dir, video, extra, "night day night day")
}

/// The TOML lines of the `[model]` section: the default network, refreshed at `refresh`.
fn model_section(refresh: &str) -> String {
    format!("weights = \"default\"\nrefresh_fps = \"{refresh}\"")
}

/// [`run`] of a clip whose modes go by as `modes` says.
fn run_expecting(dir: &std::path::Path, video: &std::path::Path, extra: &str, modes: &str) -> Ran {
    run_refreshed(dir, video, "auto", extra, modes)
}

/// [`run_expecting`] with `[model] refresh_fps = refresh`.
fn run_refreshed(
    dir: &std::path::Path,
    video: &std::path::Path,
    refresh: &str,
    extra: &str,
    modes: &str,
) -> Ran {
    let parts = modes.split(' ').count() as u32 - 1;
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let config = dir.join("daynight.toml");
    std::fs::write(
        &config,
        format!(
            r#"[model]
{model}
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
{extra}
"#,
            video.display(),
            model = model_section(refresh),
        ),
    )
    .unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .current_dir(dir)
            .stdout(Stdio::null())
            // To a file: a pipe nobody reads would stall the daemon once full.
            .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut last = String::new();
    let mut status = String::new();
    let all = f64::from(parts * PART * FPS);
    let changes = f64::from(parts);
    let transitions = "nircolor_camera_mode_transitions_total{camera=\"yard\"}";
    let mut moved_after = None;
    let mut night_since = None;
    while started.elapsed() < Duration::from_secs(u64::from(parts * PART + 15)) {
        std::thread::sleep(Duration::from_millis(200));
        // A daemon at the clip's end may close a connection without an answer.
        let Some(metrics) =
            get(metrics_port, "/metrics").filter(|m| m.contains("nircolor_camera_day_mode"))
        else {
            if matches!(child.0.try_wait(), Ok(Some(_))) {
                break;
            }
            continue;
        };
        if let Some(d) = metric(&metrics, "nircolor_camera_day_mode{camera=\"yard\"}") {
            let mode = if d == 1.0 { "day" } else { "night" };
            if seen.last().map(String::as_str) != Some(mode) {
                seen.push(mode.to_string());
                night_since = (mode == "night").then(Instant::now);
            }
        }
        let moved = metric(&metrics, "nircolor_camera_moved_total{camera=\"yard\"}");
        if moved >= Some(1.0) && moved_after.is_none() {
            moved_after = night_since.map(|t| t.elapsed());
        }
        last = metrics;
        if let Some(s) = get(metrics_port, "/status.json").filter(|s| s.contains("\"cameras\"")) {
            status = s;
        }
        // The clip's end: every frame encoded.
        let encoded = metric(&last, "nircolor_frames_encoded_total{camera=\"yard\"}");
        if metric(&last, transitions) == Some(changes) && encoded >= Some(all) {
            break;
        }
    }
    assert_eq!(seen.join(" "), modes, "{last}");
    assert_eq!(metric(&last, transitions), Some(changes), "{last}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM").success());
    let recording = std::fs::read_dir(dir.join("rec"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mkv"))
        .expect("a recording");
    Ran {
        metrics: last,
        status,
        recording,
        moved_after,
    }
}

/// Frames compared in each part, from 3 s into it (after the switch).
const COMPARED: u32 = 10;

#[test]
fn colour_passes_through_by_day_and_nir_is_colorized_at_night_without_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(dir.path());
    let ran = run(dir.path(), &video, "");
    assert_eq!(ran.status["cameras"][0]["mode"], "day", "{}", ran.status);
    assert_eq!(
        ran.status["cameras"][0]["mode_transitions"], 3,
        "{}",
        ran.status
    );
    assert_eq!(
        ran.status["cameras"][0]["reference"], false,
        "{}",
        ran.status
    );
    for stage in ["infer", "encode"] {
        let sample = format!("nircolor_frames_dropped_total{{camera=\"yard\",stage=\"{stage}\"}}");
        assert_eq!(metric(&ran.metrics, &sample), Some(0.0), "{}", ran.metrics);
    }
    let (count, _, _) = common::probe(&ran.recording);
    // Every frame of the clip, with no restart and no gap at the switches.
    assert_eq!(count, u64::from(3 * PART * FPS), "frames recorded");
    // By day (the last part, after the switch), the camera's own colour: only x264 between.
    let day_from = 2 * PART * FPS + 3 * FPS;
    let input = frames(&video, day_from, COMPARED);
    let output = frames(&ran.recording, day_from, COMPARED);
    let day_psnr = psnr(&input, &output);
    println!("day frames: {day_psnr:.2} dB of their input");
    assert!(
        day_psnr >= 35.0,
        "day frames at {day_psnr:.1} dB of their input"
    );
    // At night (the middle part, after the switch), the NIR colorized: colour that the gray
    // input does not have.
    let night_from = PART * FPS + 3 * FPS;
    let nir_in = frames(&video, night_from, COMPARED);
    let night_out = frames(&ran.recording, night_from, COMPARED);
    assert!(chroma(&nir_in) < 1.0, "{}", chroma(&nir_in));
    let c = chroma(&night_out);
    assert!(c > 3.0, "night output chroma {c}");
    println!(
        "night frames (network alone): {:.2} dB of the day's colour",
        psnr(&night_out, &input)
    );
}

#[test]
fn the_day_builds_a_reference_whose_colours_the_night_takes() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(dir.path());
    let ran = run(
        dir.path(),
        &video,
        r#"reference = { file = "ref/yard.png", sample_seconds = 0.5, frames = 3 }"#,
    );
    assert_eq!(
        ran.status["cameras"][0]["reference"], true,
        "{}",
        ran.status
    );
    assert_eq!(
        metric(&ran.metrics, "nircolor_camera_reference{camera=\"yard\"}"),
        Some(1.0),
        "{}",
        ran.metrics
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ref/yard.json")).unwrap())
            .unwrap();
    assert_eq!(
        (meta["frames"].as_u64(), meta["width"].as_u64()),
        (Some(3), Some(u64::from(W)))
    );
    assert!(meta["stillness"].as_f64().unwrap() < 1.0, "{meta}");
    let stored = image::open(dir.path().join("ref/yard.png"))
        .unwrap()
        .to_rgb8();
    let day = frames(&video, 2 * FPS, 1);
    assert!(
        psnr(stored.as_raw(), &day) > 40.0,
        "the reference is the day's colour"
    );
    // At night the static scene takes the reference's colours through the NIR: measured
    // 21.3 dB of the day's colour, where the network alone gives 17.2 (the other test).
    let night_from = PART * FPS + 3 * FPS;
    let night_out = frames(&ran.recording, night_from, COMPARED);
    let day_colour = frames(&video, 2 * PART * FPS + 3 * FPS, COMPARED);
    let night_psnr = psnr(&night_out, &day_colour);
    println!("night frames with the reference: {night_psnr:.2} dB of the day's colour");
    assert!(
        night_psnr > 20.0,
        "night frames at {night_psnr:.1} dB of the day's colour"
    );
    let (c_night, c_day) = (chroma(&night_out), chroma(&day_colour));
    assert!(
        (c_night - c_day).abs() < 0.25 * c_day,
        "chroma {c_night} at night, {c_day} by day"
    );
}

#[test]
fn check_validates_day_night_and_reference_settings_and_says_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let camera = |extra: &str, format: &str| {
        format!(
            "[model]\nweights = \"default\"\n[[camera]]\nid = \"yard\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\nformat = \"{format}\"\nwidth = 64\nheight = 48\nfps = 10\n{extra}\n"
        )
    };
    let check = |text: String| {
        std::fs::write(&config, text).unwrap();
        common::nircolor(&["check", "--config", config.to_str().unwrap()])
    };
    let ok = check(camera(
        "day_night = true\nreference = { file = \"ref/yard.png\", sample_seconds = 30, frames = 9 }",
        "YUY2",
    ));
    let text = common::stdout(&ok);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
    assert!(
        text.contains("day/night") && text.contains("none yet, built by day"),
        "{text}"
    );
    assert!(text.contains("a sample every 30 s, median of 9"), "{text}");
    for (extra, format, says) in [
        (
            "day_night = true",
            "GRAY16_LE",
            "GRAY16_LE sensor delivers no colour",
        ),
        (
            "reference = { file = \"r.png\", frames = 2 }",
            "YUY2",
            "frames 2 is outside 3..=31",
        ),
        ("reference = { file = \"r.jpg\" }", "YUY2", "must be a .png"),
        (
            "reference = { file = \"r.png\", sample_seconds = 0 }",
            "YUY2",
            "must be above 0",
        ),
    ] {
        let out = check(camera(extra, format));
        let err = common::stderr(&out);
        assert!(
            !out.status.success() && err.contains(says),
            "{extra}: {err}"
        );
        assert!(err.contains("yard"), "{err}");
    }
}

#[test]
fn a_camera_moved_since_its_reference_falls_back_to_the_network_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip_of(dir.path(), &[("rgb", false), ("nir", true)]);
    let ran = run_expecting(
        dir.path(),
        &video,
        r#"reference = { file = "ref/yard.png", sample_seconds = 0.5, frames = 3 }"#,
        "night day night",
    );
    assert!(dir.path().join("ref/yard.png").is_file());
    let moved = metric(&ran.metrics, "nircolor_camera_moved_total{camera=\"yard\"}");
    assert_eq!(moved, Some(1.0), "{}", ran.metrics);
    let after = ran.moved_after.expect("found moved at night");
    println!("found moved {after:?} after the switch to night");
    // The switch to night is seen up to a poll (0.2 s) late, so the bound holds with room.
    assert!(
        after < Duration::from_secs(2),
        "found moved {after:?} after the switch"
    );
    assert_eq!(
        ran.status["cameras"][0]["reference"], false,
        "{}",
        ran.status
    );
    assert_eq!(ran.status["cameras"][0]["moved"], 1, "{}", ran.status);
}

#[test]
fn with_the_network_on_every_frame_day_passes_through_and_night_takes_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(dir.path());
    let ran = run_refreshed(
        dir.path(),
        &video,
        "every-frame",
        r#"reference = { file = "ref/yard.png", sample_seconds = 0.5, frames = 3 }"#,
        "night day night day",
    );
    assert_eq!(ran.status["cameras"][0]["mode"], "day", "{}", ran.status);
    assert_eq!(
        ran.status["cameras"][0]["reference"], true,
        "{}",
        ran.status
    );
    // The network on every frame may fall behind a live source on a busy 2-core machine (the
    // suite runs these daemons side by side); then the newest frame wins and the drop is
    // counted. Every frame is accounted for, and no switch costs a restart.
    let (count, _, _) = common::probe(&ran.recording);
    let dropped: f64 = ran
        .metrics
        .lines()
        .filter(|l| l.starts_with("nircolor_frames_dropped_total{camera=\"yard\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let total = u64::from(3 * PART * FPS);
    assert_eq!(
        count + dropped as u64,
        total,
        "recorded {count}, dropped {dropped}"
    );
    assert!(
        count >= total * 95 / 100,
        "only {count} of {total} frames recorded"
    );
    let day_from = 2 * PART * FPS + 3 * FPS;
    let day_in = frames(&video, day_from, COMPARED);
    let day_psnr = psnr(&day_in, &frames(&ran.recording, day_from, COMPARED));
    println!("every-frame, day frames: {day_psnr:.2} dB of their input");
    assert!(day_psnr >= 35.0, "day frames at {day_psnr:.1} dB");
    assert!(dir.path().join("ref/yard.png").is_file());
    let night_out = frames(&ran.recording, PART * FPS + 3 * FPS, COMPARED);
    let night_psnr = psnr(&night_out, &day_in);
    println!(
        "every-frame, night frames with the reference: {night_psnr:.2} dB of the day's colour"
    );
    assert!(night_psnr > 20.0, "night frames at {night_psnr:.1} dB");
}
