//! `nircolor run` end to end: a live test camera served over RTSP (read by ffmpeg while the
//! daemon runs) and recorded; SIGTERM ends it with exit 0 within 5 s and a complete recording.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `nircolor run --config CONFIG` in the background, stdout and stderr piped.
fn spawn_run(config: &std::path::Path) -> common::Reaped {
    common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// A pipeline configuration on free ports: `[model]` with `model`, one `[[camera]]` with
/// `camera` (TOML lines).
fn pipeline(model: &str, camera: &str) -> String {
    pipeline_on(common::free_port(), common::free_port(), model, camera)
}

/// [`pipeline`] serving RTSP on `port` and metrics on `metrics_port`.
fn pipeline_on(port: u16, metrics_port: u16, model: &str, camera: &str) -> String {
    format!(
        "[model]\n{model}\n[rtsp]\nport = {port}\n[metrics]\nbind = \"127.0.0.1:{metrics_port}\"\n[[camera]]\n{camera}"
    )
}

/// The rest of a child's stdout, line by line.
type StdoutLines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `nircolor run CONFIG` and reads its stdout up to the line saying where to watch its
/// first camera: (the child, that RTSP URL, the lines after it).
fn spawn_and_find_url(config: &std::path::Path) -> (common::Reaped, String, StdoutLines) {
    let mut child = spawn_run(config);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split("watch ")
                .nth(1)
                .map(|rest| rest.split(',').next().unwrap().to_string())
        })
        .expect("run prints where to watch");
    (child, url, lines)
}

/// Runs CONFIG, reads `frames` frames of its first camera over RTSP once it says where to
/// watch, then stops it with SIGTERM: (ffmpeg's output, whether run exited 0).
fn run_and_watch(config: &std::path::Path, frames: usize) -> (std::process::Output, bool) {
    // Held to the end: run writes to stdout as it stops, and a closed pipe would fail it.
    let (mut child, url, _stdout) = spawn_and_find_url(config);
    let out = common::read_rtsp_rgb(&url, frames);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let ok = common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM").success();
    (out, ok)
}

/// A plain HTTP/1.0 GET on loopback: (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    try_http_get(port, path).unwrap()
}

/// [`http_get`], or the connection error while nothing listens yet.
fn try_http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let (status, body) = http_get_bytes(port, path)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of the Prometheus sample `sample` (its name and labels) in `metrics`.
fn metric(metrics: &str, sample: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// `sample` from the daemon's `/metrics` on `port`: `None` while nothing answers there or the
/// sample is not out yet.
fn live_metric(port: u16, sample: &str) -> Option<f64> {
    metric(&try_http_get(port, "/metrics").ok()?.1, sample)
}

/// A plain HTTP/1.0 GET on loopback: (status line, body bytes).
fn http_get_bytes(port: u16, path: &str) -> std::io::Result<(String, Vec<u8>)> {
    common::http_get(port, path, &[]).map(|(status, _, body)| (status, body))
}

#[test]
fn run_serves_rtsp_records_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("live.toml");
    let (port, metrics_port) = (common::free_port(), common::free_port());
    std::fs::write(
        &config,
        pipeline_on(
            port,
            metrics_port,
            "weights = \"l3\"\nscale = 0.5",
            r#"id = "live"
source = { kind = "test", pattern = "ball" }
format = "YUY2"
width = 320
height = 240
fps = 30
record = { folder = "rec", segment_seconds = 60, container = "mkv" }
"#,
        ),
    )
    .unwrap();
    let (mut child, url, lines) = spawn_and_find_url(&config);
    assert_eq!(url, format!("rtsp://127.0.0.1:{port}/live"));

    let frames = 20;
    let out = common::read_rtsp_rgb(&url, frames);
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), frames * 320 * 240 * 3);

    let (status, metrics) = http_get(metrics_port, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains("nircolor_camera_up{camera=\"live\"} 1"),
        "{metrics}"
    );
    let encoded_so_far =
        metric(&metrics, "nircolor_frames_encoded_total{camera=\"live\"}").unwrap();
    assert!(encoded_so_far >= frames as f64, "{metrics}");
    assert!(metrics.contains("nircolor_latency_seconds_count{camera=\"live\"}"));
    // Every encoded frame's capture-to-encoded latency is counted, batches ran, and the
    // encode-side drop counter is exported (and zero at this light load).
    let encoded_latency = metric(
        &metrics,
        "nircolor_encoded_latency_seconds_count{camera=\"live\"}",
    )
    .unwrap();
    assert!(encoded_latency >= frames as f64, "{metrics}");
    assert!(
        metric(&metrics, "nircolor_batches_total").unwrap() >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "nircolor_frames_dropped_total{camera=\"live\",stage=\"encode\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    for stage in ["queue", "infer", "encode"] {
        let count = metric(
            &metrics,
            &format!("nircolor_stage_latency_seconds_count{{camera=\"live\",stage=\"{stage}\"}}"),
        )
        .unwrap_or(0.0);
        assert!(count > 0.0, "no {stage} stage latency: {metrics}");
    }
    // The default refresh is amortised: the network recoloured the camera, fewer times than
    // frames were encoded is allowed, never zero, and the colour's age is reported.
    let value = |name: &str| metric(&metrics, &format!("{name}{{camera=\"live\"}}"));
    let refreshes = value("nircolor_colour_refreshes_total").unwrap_or(0.0);
    assert!(refreshes >= 1.0, "no colour refresh: {metrics}");
    let age = value("nircolor_colour_age_seconds").expect("a colour age");
    assert!((0.0..5.0).contains(&age), "colour age {age}: {metrics}");
    let (status, ready) = http_get(metrics_port, "/readyz");
    assert!(
        status.contains("200") && ready.contains("\"ready\":true"),
        "{status} {ready}"
    );
    // Snapshots of the camera's next frame: colour (the ball on its colour), and the NIR as gray.
    let (status, colour) = http_get_bytes(metrics_port, "/snapshot/live.jpg").unwrap();
    assert!(status.contains("200"), "{status}");
    let colour = image::load_from_memory(&colour).unwrap();
    assert_eq!((colour.width(), colour.height()), (320, 240));
    assert_eq!(colour.color(), image::ColorType::Rgb8);
    let (status, nir) = http_get_bytes(metrics_port, "/snapshot/live.jpg?view=nir").unwrap();
    assert!(status.contains("200"), "{status}");
    let nir = image::load_from_memory(&nir).unwrap();
    assert_eq!((nir.color(), nir.width()), (image::ColorType::L8, 320));
    for (path, code, says) in [
        (
            "/snapshot/nobody.jpg",
            "404",
            "no camera 'nobody'; cameras: live",
        ),
        (
            "/snapshot/live.jpg?view=thermal",
            "400",
            "view 'thermal' is not nir or colour",
        ),
    ] {
        let (status, body) = http_get(metrics_port, path);
        assert!(
            status.contains(code) && body.contains(says),
            "{path}: {status} {body}"
        );
    }
    let (status, health) = http_get(metrics_port, "/healthz");
    assert!(
        status.contains("200") && health.contains("\"streaming\""),
        "{status} {health}"
    );

    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "exit {status:?}; stdout {rest:?}");
    let encoded: u64 = rest
        .iter()
        .find_map(|l| {
            l.strip_prefix("camera 'live': ")
                .and_then(|r| r.strip_suffix(" frames encoded"))
        })
        .expect("run reports the frames encoded")
        .parse()
        .unwrap();
    let file = std::fs::read_dir(dir.path().join("rec"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let (decoded, _, _) = common::probe(&file);
    assert!(encoded >= 30, "only {encoded} frames in the run");
    assert_eq!(
        decoded, encoded,
        "SIGTERM finalised the recording: every encoded frame decodes"
    );
}

#[test]
fn a_camera_calibration_corrects_its_nir_and_its_colour() {
    // A white test pattern (NIR 1.0) halved by the calibration's gain, colorized by `identity`
    // (gray out = NIR in) and tinted blue by its colour gains: (0.1, 0.1, 0.5) on the wire.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cam.toml"),
        "gain = 0.5
[color]
gains = [0.2, 0.2, 1.0]
[detail]
radius = 2
",
    )
    .unwrap();
    let config = dir.path().join("cal.toml");
    std::fs::write(
        &config,
        pipeline(
            "weights = \"identity\"",
            "id = \"cal\"\nsource = { kind = \"test\", pattern = \"white\" }\nformat = \"GRAY8\"\nwidth = 160\nheight = 120\nfps = 15\ncalibration = \"cam.toml\"\n",
        ),
    )
    .unwrap();
    let (out, stopped) = run_and_watch(&config, 5);
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stopped, "run did not exit 0 on SIGTERM");
    let n = out.stdout.len() / 3;
    let mean = |c: usize| {
        out.stdout
            .iter()
            .skip(c)
            .step_by(3)
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / n as f64
    };
    let (r, g, b) = (mean(0), mean(1), mean(2));
    // videotestsrc's white is 235 of 255 in GRAY8 (video range): 0.46 blue after the gain.
    assert!((105.0..140.0).contains(&b), "blue {b} (want about 118)");
    for (name, v) in [("red", r), ("green", g)] {
        assert!(
            (v / b - 0.2).abs() < 0.05,
            "{name} {v} is not 0.2 of blue {b}"
        );
    }
}

#[test]
fn a_missing_camera_mount_shows_no_signal_instead_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("away.toml");
    let (port, metrics_port) = (common::free_port(), common::free_port());
    std::fs::write(
        &config,
        pipeline_on(
            port,
            metrics_port,
            "weights = \"l3\"",
            r#"id = "away"
source = { kind = "v4l2", device = "/dev/video-nircolor-missing" }
format = "GRAY8"
width = 160
height = 120
fps = 15
[[camera]]
id = "here"
source = { kind = "test", pattern = "ball" }
format = "GRAY8"
width = 160
height = 120
fps = 15
"#,
        ),
    )
    .unwrap();
    let mut child = spawn_run(&config);
    let started = std::time::Instant::now();
    let url = format!("rtsp://127.0.0.1:{port}/away");
    // The mount exists from the start; read it once the card is being encoded.
    let cards = "nircolor_no_signal_frames_total{camera=\"away\"}";
    while live_metric(metrics_port, cards).unwrap_or(0.0) == 0.0
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = common::read_rtsp_rgb(&url, 5);
    let (_, metrics) = http_get(metrics_port, "/metrics");
    // Within its reconnect window the camera is "reconnecting" and the daemon healthy (200);
    // past the window's 15 s it is "down" and /healthz answers 503 naming it and its error.
    let (status, health) = http_get(metrics_port, "/healthz");
    let early = started.elapsed();
    let down = loop {
        let (status, body) = http_get(metrics_port, "/healthz");
        if status.contains("503") || started.elapsed() > Duration::from_secs(40) {
            break (status, body, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // The whole daemon's figures after those 15 s.
    let last_metrics = http_get(metrics_port, "/metrics");
    let (ready_status, ready) = http_get(metrics_port, "/readyz");
    let _ = child.kill();
    common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGKILL");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = &out.stdout[out.stdout.len() - 160 * 120 * 3..];
    let dark = frame.iter().filter(|&&v| v < 60).count();
    let bright = frame.iter().filter(|&&v| v > 180).count();
    assert!(
        dark > frame.len() / 2 && bright > 100,
        "a dark card with light lettering: {dark} dark, {bright} bright values"
    );
    assert!(metric(&metrics, cards).unwrap_or(0.0) > 0.0, "{metrics}");
    assert!(
        metrics.contains("nircolor_camera_up{camera=\"away\"} 0"),
        "{metrics}"
    );
    // The other camera of the daemon streams on, every frame, while this one is missing.
    let (_, metrics) = last_metrics;
    let here =
        |name: &str| metric(&metrics, name).unwrap_or_else(|| panic!("no {name}: {metrics}"));
    assert_eq!(here("nircolor_camera_up{camera=\"here\"}"), 1.0);
    assert!(
        here("nircolor_frames_encoded_total{camera=\"here\"}") > 150.0,
        "{metrics}"
    );
    for stage in ["infer", "encode"] {
        let dropped = here(&format!(
            "nircolor_frames_dropped_total{{camera=\"here\",stage=\"{stage}\"}}"
        ));
        assert_eq!(dropped, 0.0, "{stage}: {metrics}");
    }
    if early < Duration::from_secs(14) {
        assert!(
            status.contains("200") && health.contains("\"reconnecting\""),
            "at {early:?}: {status} {health}"
        );
    }
    // Not ready while a camera does not play, naming only that one.
    assert!(
        ready_status.contains("503") && ready.contains("\"not_playing\":[\"away\"]"),
        "{ready_status} {ready}"
    );
    let (status, body, at) = down;
    assert!(
        status.contains("503"),
        "still {status} after {at:?}: {body}"
    );
    assert!(
        at >= Duration::from_secs(14),
        "down after only {at:?}: {body}"
    );
    assert!(
        body.contains("\"healthy\":false")
            && body.contains("\"down\"")
            && body.contains("video-nircolor-missing"),
        "{body}"
    );
}

#[test]
fn bench_pipeline_reports_rate_drops_and_encoded_latency() {
    let out = common::nircolor(&[
        "bench",
        "pipeline",
        "--seconds",
        "2",
        "--cases",
        "160x120x1",
        "--model",
        "l3",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("| 160x120 | 1 |"))
        .unwrap_or_else(|| panic!("no result row: {text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let fps: f64 = cells[3].parse().unwrap();
    assert!(fps > 20.0, "{row}");
    let p50: f64 = cells[5].split('/').next().unwrap().trim().parse().unwrap();
    assert!(
        p50 > 0.0 && p50 < 1000.0,
        "a measured capture-to-encoded latency: {row}"
    );
    // The refresh rate each camera got: l3 is quick at 80x60, so most frames are refreshed.
    let refresh: f64 = cells[6].split('-').next().unwrap().trim().parse().unwrap();
    assert!(
        refresh > 5.0 && refresh <= 31.0,
        "refreshes per second: {row}"
    );
    let bad = common::nircolor(&["bench", "pipeline", "--cases", "640x480"]);
    assert!(!bad.status.success() && common::stderr(&bad).contains("WIDTHxHEIGHTxCAMERAS"));
}

#[test]
fn a_batch_file_source_loses_no_frame_however_slow_the_model() {
    // 40 frames at 30 fps through the default network at full size (scale 1: several times
    // slower than the clip plays here), with realtime = false: every frame is colorized and
    // recorded with the file's own timing, and the run ends by itself.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x480:rate=30",
        ])
        .args(["-frames:v", "40", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let config = dir.path().join("batch.toml");
    std::fs::write(
        &config,
        pipeline(
            "weights = \"default\"\nscale = 1.0",
            "id = \"clip\"\nsource = { kind = \"file\", path = \"clip.mp4\", realtime = false }\n\
             format = \"GRAY8\"\nwidth = 640\nheight = 480\nfps = 30\n\
             record = { folder = \"out\", segment_seconds = 600, container = \"mkv\" }\n",
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = common::nircolor(&["run", "--config", config.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    assert!(text.contains("camera 'clip': 40 frames encoded"), "{text}");
    let file = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert_eq!(common::probe(&file), (40, 640, 480));
    let duration: f64 = String::from_utf8_lossy(
        &common::output_within(
            Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&file),
            common::CLIENT_LIMIT,
        )
        .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    assert!(
        (duration - 40.0 / 30.0).abs() < 0.1,
        "the recording lasts {duration} s, the clip 1.33 s (run took {:?})",
        started.elapsed()
    );
}

/// Mean chroma (max - min channel) of packed 8-bit RGB.
/// The mean BT.601 (Cb, Cr) of packed RGB bytes, centred on zero.
fn mean_cb_cr(rgb: &[u8]) -> (f64, f64) {
    let n = (rgb.len() / 3) as f64;
    let (mut cb, mut cr) = (0.0, 0.0);
    for p in rgb.chunks_exact(3) {
        let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
        cb += -0.168_736 * r - 0.331_264 * g + 0.5 * b;
        cr += 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    }
    (cb / n, cr / n)
}

fn mean_chroma(rgb: &[u8]) -> f64 {
    let px = rgb.len() / 3;
    rgb.chunks_exact(3)
        .map(|p| f64::from(p.iter().max().unwrap() - p.iter().min().unwrap()))
        .sum::<f64>()
        / px as f64
}

/// A real NIR still of a coloured scene in `dir/stills` (an image-folder camera plays it), and
/// the default model's colour of it offline: (that image, its mean chroma).
fn still_scene(dir: &std::path::Path) -> (std::path::PathBuf, f64) {
    let stills = dir.join("stills");
    std::fs::create_dir_all(&stills).unwrap();
    let nir = common::root().join("samples/nir/oldbuilding_0000.png");
    std::fs::copy(&nir, stills.join("a.png")).unwrap();
    let offline = dir.join("offline.png");
    let o = common::nircolor(&[
        "colorize",
        nir.to_str().unwrap(),
        "--output",
        offline.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let chroma = mean_chroma(image::open(&offline).unwrap().to_rgb8().as_raw());
    (offline, chroma)
}

#[test]
fn the_default_model_streams_real_colour_to_an_rtsp_client() {
    // A real NIR still of a coloured scene, played as a camera through the default network:
    // ffmpeg reads the expected frames over RTSP, and their colour is what the model gives
    // offline (H.264's 4:2:0 chroma keeps most of it), far from the gray of the NIR itself.
    let dir = tempfile::tempdir().unwrap();
    let (offline, offline_chroma) = still_scene(dir.path());

    let config = dir.path().join("colour.toml");
    std::fs::write(
        &config,
        pipeline(
            "weights = \"default\"",
            "id = \"scene\"\nsource = { kind = \"images\", folder = \"stills\", loop = true }\n\
             format = \"GRAY8\"\nwidth = 256\nheight = 256\nfps = 10\n",
        ),
    )
    .unwrap();
    let frames = 10;
    let (out, stopped) = run_and_watch(&config, frames);
    assert!(stopped, "run did not exit 0 on SIGTERM");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout.len(),
        frames * 256 * 256 * 3,
        "expected frame count"
    );
    // The hue is the model's, not only the amount: the mean chroma direction (Cb, Cr) over
    // RTSP points where the offline output's does (a gray or channel-swapped stream would not).
    let offline_rgb = image::open(&offline).unwrap().to_rgb8();
    let (a, b) = (mean_cb_cr(offline_rgb.as_raw()), mean_cb_cr(&out.stdout));
    let cos = (a.0 * b.0 + a.1 * b.1) / (a.0.hypot(a.1) * b.0.hypot(b.1));
    assert!(
        cos > 0.9,
        "mean (Cb, Cr): offline {a:?}, over RTSP {b:?} (cos {cos:.2})"
    );
    let streamed = mean_chroma(&out.stdout);
    eprintln!("mean chroma: offline {offline_chroma:.1}, over RTSP {streamed:.1}");
    assert!(
        offline_chroma > 6.0,
        "the default model's colour on this scene: mean chroma {offline_chroma:.1} of 255"
    );
    assert!(
        streamed > 0.6 * offline_chroma,
        "RTSP mean chroma {streamed:.1}, offline {offline_chroma:.1}"
    );
}

#[test]
fn a_tiered_refresh_gives_a_still_scene_the_quality_models_colour() {
    // The real-time model is the identity (gray); only the quality model colours. On a still
    // scene every block is static, so the stream shows the quality model's colour, and the
    // metrics count its refreshes.
    let dir = tempfile::tempdir().unwrap();
    let (_, offline_chroma) = still_scene(dir.path());
    let metrics_port = common::free_port();
    let config = dir.path().join("tiered.toml");
    std::fs::write(
        &config,
        pipeline_on(
            common::free_port(),
            metrics_port,
            "weights = \"identity\"\nquality = \"default\"",
            "id = \"scene\"\nsource = { kind = \"images\", folder = \"stills\", loop = true }\n\
             format = \"GRAY8\"\nwidth = 256\nheight = 256\nfps = 10\n",
        ),
    )
    .unwrap();
    let (mut child, url, _stdout) = spawn_and_find_url(&config);
    let frames = 30;
    let out = common::read_rtsp_rgb(&url, frames);
    let (_, metrics) = http_get(metrics_port, "/metrics");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM").success());
    let frame = 256 * 256 * 3;
    assert_eq!(
        out.stdout.len(),
        frames * frame,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = mean_chroma(&out.stdout[(frames - 5) * frame..]);
    eprintln!("mean chroma: quality model offline {offline_chroma:.1}, tiered stream {last:.1}");
    assert!(
        last > 0.6 * offline_chroma,
        "stream {last:.1}, offline {offline_chroma:.1}"
    );
    let quality = metric(
        &metrics,
        "nircolor_colour_quality_refreshes_total{camera=\"scene\"}",
    )
    .expect("the quality refresh metric");
    assert!(quality >= 1.0, "{quality} quality refreshes");
}

#[test]
fn a_camera_with_retry_false_stops_the_daemon_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strict.toml");
    std::fs::write(
        &config,
        pipeline(
            "weights = \"identity\"",
            "id = \"cabin\"\nsource = { kind = \"v4l2\", device = \"/dev/v4l/by-id/nircolor-no-such-camera\" }\n\
             format = \"GRAY8\"\nwidth = 64\nheight = 48\nfps = 10\nretry = false\n",
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = common::nircolor(&["run", "--config", config.to_str().unwrap()]);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("camera 'cabin' failed and has retry = false")
            && err.contains("/dev/v4l/by-id/nircolor-no-such-camera does not exist"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn kill_9_leaves_recordings_that_play_up_to_the_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crash.toml");
    let metrics_port = common::free_port();
    let fps: u32 = 15;
    std::fs::write(
        &config,
        pipeline_on(
            common::free_port(),
            metrics_port,
            "weights = \"identity\"",
            &format!(
                "id = \"crash\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\n\
                 format = \"GRAY8\"\nwidth = 160\nheight = 120\nfps = {fps}\n\
                 record = {{ folder = \"rec\", segment_seconds = 2, container = \"mkv\" }}\n"
            ),
        ),
    )
    .unwrap();
    let mut child = spawn_run(&config);
    // Until 5 s of video (two finished 2 s segments and one open) are encoded, not a fixed sleep.
    let encoded_now = || {
        live_metric(
            metrics_port,
            "nircolor_frames_encoded_total{camera=\"crash\"}",
        )
        .map(|v| v as u64)
    };
    let started = Instant::now();
    while encoded_now().unwrap_or(0) < u64::from(5 * fps) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not 5 s encoded in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let encoded = encoded_now().expect("frames encoded so far");
    child.kill().unwrap();
    common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGKILL");
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("rec"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut decoded = 0;
    for f in &files {
        let (frames, w, h) = common::probe(f);
        // Only the segment being written when the process died may be empty.
        assert!(
            frames > 0 || f == files.last().unwrap(),
            "{f:?} does not play"
        );
        if frames > 0 {
            assert_eq!((w, h), (160, 120));
        }
        decoded += frames;
    }
    assert!(
        decoded + u64::from(fps) >= encoded,
        "{decoded} frames play of {encoded} encoded before the kill: more than a second lost"
    );
}

#[test]
fn run_refuses_an_invalid_config_and_cuda_without_a_gpu_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let camera = "id = \"c\"\nsource = { kind = \"test\", pattern = \"ball\" }\nformat = \"GRAY8\"\nwidth = 160\nheight = 120\nfps = 15\n";
    // `run` with this [model] section: it must fail before serving; its stderr.
    let refused = |model: &str| {
        std::fs::write(&config, pipeline_on(port, metrics_port, model, camera)).unwrap();
        let out = common::nircolor(&["run", "--config", config.to_str().unwrap()]);
        assert!(!out.status.success(), "{model}: ran");
        assert!(std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err());
        common::stderr(&out)
    };
    // A mistake `check` would name: `run` names it the same way.
    let err = refused("weights = \"l3\"\nrefresh_fps = -2");
    assert!(
        err.contains("bad.toml:3: model.refresh_fps: -2 is not a refresh rate"),
        "{err}"
    );
    if !nircolor::runtime::cuda::available() {
        let err = refused("weights = \"default\"\ndevice = \"cuda\"");
        assert!(
            err.contains("cuda") && err.contains("libtorch_cuda.so"),
            "the reason CUDA is unusable: {err}"
        );
    }
}

#[test]
fn the_status_page_and_snapshots_are_off_on_a_public_bind_unless_a_token_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let camera = "[[camera]]\nid = \"c\"\nsource = { kind = \"test\", pattern = \"ball\" }\n\
                  format = \"GRAY8\"\nwidth = 160\nheight = 120\nfps = 15\n";
    let token = "a-token-of-24-characters";
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    for token_line in ["", "token_file = \"token\"\n"] {
        let config = dir.path().join("public.toml");
        let (port, metrics_port) = (common::free_port(), common::free_port());
        std::fs::write(
            &config,
            format!(
                "[model]\nweights = \"l3\"\n[rtsp]\nport = {port}\n[metrics]\nbind = \"0.0.0.0:{metrics_port}\"\n{token_line}{camera}"
            ),
        )
        .unwrap();
        let mut child = spawn_run(&config);
        let get = |path: &str, headers: &[&str]| {
            let started = Instant::now();
            loop {
                match common::http_get(metrics_port, path, headers) {
                    Ok((status, head, body)) => break (status, head, body),
                    Err(_) if started.elapsed() < Duration::from_secs(30) => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    Err(e) => panic!("no metrics server: {e}"),
                }
            }
        };
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        // Metrics and health stay available to a remote Prometheus and to probes either way.
        assert!(get("/metrics", &[]).0.contains("200"));
        let (status, _, body) = get("/snapshot/c.jpg", &[]);
        if token_line.is_empty() {
            assert!(
                status.contains("403") && text(body.clone()).contains("[metrics] token"),
                "{status} {}",
                text(body)
            );
            let (status, _, _) = get("/", &[]);
            assert!(status.contains("403"), "{status}");
        } else {
            assert!(status.contains("401"), "no token: {status}");
            let wrong = get(
                "/status.json",
                &["Authorization: Bearer a-token-of-24-characterZ"],
            );
            assert!(wrong.0.contains("401"), "a wrong token: {}", wrong.0);
            let (status, _, body) =
                get("/status.json", &[&format!("Authorization: Bearer {token}")]);
            assert!(status.contains("200"), "{status}");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["cameras"][0]["id"], "c");
            // The page's URL hands the token to a cookie, which then opens the snapshots.
            let (status, head, _) = get(&format!("/?token={token}"), &[]);
            assert!(status.contains("200"), "{status}");
            let cookie = head
                .lines()
                // Header names are case-insensitive (hyper writes them in lower case).
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("set-cookie")
                        .then(|| value.trim())
                })
                .and_then(|c| c.split(';').next())
                .expect("a cookie")
                .to_string();
            let (status, _, jpeg) =
                get("/snapshot/c.jpg?view=nir", &[&format!("Cookie: {cookie}")]);
            assert!(status.contains("200"), "{status}");
            let nir = image::load_from_memory(&jpeg).unwrap();
            assert_eq!((nir.width(), nir.height()), (160, 120));
        }
        let _ = child.kill();
        common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGKILL");
    }
}

/// The response head of an RTSP DESCRIBE of `url` without credentials, over plain TCP.
fn rtsp_describe_head(port: u16, mount: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "DESCRIBE rtsp://127.0.0.1:{port}{mount} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn rtsps_and_digest_logins_admit_the_right_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let openssl = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(openssl.status.success(), "{}", common::stderr(&openssl));
    std::fs::write(dir.path().join("password"), "right-pass\n").unwrap();
    let camera =
        "id = \"c\"\nsource = { kind = \"test\", pattern = \"ball\" }\nformat = \"GRAY8\"\n\
                  width = 160\nheight = 120\nfps = 15\n";
    let frames_from = |url: &str| {
        let out = common::read_rtsp_rgb_within(url, 2, Duration::from_secs(30));
        (out.stdout.len(), common::stderr(&out))
    };

    // TLS, with the password from a file: rtsps:// with the right password plays; a wrong one,
    // none, and plain RTSP to the TLS port do not.
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let tls = format!(
        "[model]\nweights = \"l3\"\n[rtsp]\nport = {port}\ntls_certificate = \"cert.pem\"\ntls_key = \"key.pem\"\n\
         [metrics]\nbind = \"127.0.0.1:{metrics_port}\"\n[[camera]]\n{camera}\
         rtsp = {{ user = \"viewer\", password_file = \"password\" }}\n"
    );
    let config = dir.path().join("tls.toml");
    std::fs::write(&config, tls).unwrap();
    let (mut child, url, _stdout) = spawn_and_find_url(&config);
    assert_eq!(url, format!("rtsps://127.0.0.1:{port}/c"));
    let with = |login: &str| url.replace("rtsps://", &format!("rtsps://{login}"));
    let (bytes, err) = frames_from(&with("viewer:right-pass@"));
    assert_eq!(bytes, 2 * 160 * 120 * 3, "{err}");
    let (bytes, err) = frames_from(&with("viewer:wrong-pass@"));
    assert!(bytes == 0 && err.contains("401"), "wrong password: {err}");
    let (bytes, err) = frames_from(&url);
    assert!(bytes == 0 && err.contains("401"), "no password: {err}");
    let (bytes, _) = frames_from(&with("viewer:right-pass@").replace("rtsps://", "rtsp://"));
    assert_eq!(bytes, 0, "plain RTSP reached a TLS port");
    let _ = child.kill();
    common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGKILL");

    // Digest only, with the password from the environment: the challenge offers Digest and not
    // Basic, and a client that answers it plays.
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let digest = format!(
        "[model]\nweights = \"l3\"\n[rtsp]\nport = {port}\nauth = \"digest\"\n\
         [metrics]\nbind = \"127.0.0.1:{metrics_port}\"\n[[camera]]\n{camera}\
         rtsp = {{ user = \"viewer\", password_env = \"NIRCOLOR_TEST_PASSWORD\" }}\n"
    );
    let config = dir.path().join("digest.toml");
    std::fs::write(&config, digest).unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("NIRCOLOR_TEST_PASSWORD", "env-pass")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Held to the end: run keeps writing to stdout, and a closed pipe would end it.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = stdout
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("watch ").nth(1).map(String::from))
        .expect("run prints where to watch");
    let head = rtsp_describe_head(port, "/c");
    assert!(head.starts_with("RTSP/1.0 401"), "{head}");
    assert!(head.contains("WWW-Authenticate: Digest"), "{head}");
    assert!(!head.contains("WWW-Authenticate: Basic"), "{head}");
    let (bytes, err) = frames_from(&url.replace("rtsp://", "rtsp://viewer:env-pass@"));
    assert_eq!(bytes, 2 * 160 * 120 * 3, "{err}");
    let (bytes, _) = frames_from(&url.replace("rtsp://", "rtsp://viewer:right-pass@"));
    assert_eq!(bytes, 0);
    let _ = child.kill();
    common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGKILL");

    // `check` warns about logins on a public bind without TLS, and not with it.
    let public = dir.path().join("public.toml");
    std::fs::write(
        &public,
        format!(
            "[model]\nweights = \"l3\"\n[rtsp]\nbind = \"0.0.0.0\"\n[[camera]]\n{camera}\
             rtsp = {{ user = \"viewer\", password = \"pw\" }}\n"
        ),
    )
    .unwrap();
    let out = common::nircolor(&["check", "--config", public.to_str().unwrap()]);
    let said = common::stdout(&out);
    assert!(out.status.success());
    assert!(
        said.contains("warning: RTSP is served on 0.0.0.0 with logins (c) but without TLS"),
        "{said}"
    );
    let tls_public = dir.path().join("tls-public.toml");
    std::fs::write(
        &tls_public,
        std::fs::read_to_string(&public).unwrap().replace(
            "[rtsp]\n",
            "[rtsp]\ntls_certificate = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        ),
    )
    .unwrap();
    let out = common::nircolor(&["check", "--config", tls_public.to_str().unwrap()]);
    assert!(
        !common::stdout(&out).contains("warning"),
        "{}",
        common::stdout(&out)
    );
}

#[test]
fn an_upstream_camera_that_goes_away_and_comes_back_resumes_and_ctrl_c_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // The "camera": another daemon serving a test pattern over RTSP, stopped and started again
    // on the same port.
    let camera_port = common::free_port();
    let upstream = dir.path().join("camera.toml");
    std::fs::write(
        &upstream,
        pipeline_on(
            camera_port,
            common::free_port(),
            "weights = \"identity\"",
            "id = \"nir\"\nsource = { kind = \"test\", pattern = \"ball\" }\nformat = \"GRAY8\"\n\
             width = 160\nheight = 120\nfps = 15\n",
        ),
    )
    .unwrap();
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        pipeline_on(
            port,
            metrics_port,
            "weights = \"l3\"",
            &format!(
                "id = \"gate\"\nsource = {{ kind = \"rtsp\", url = \"rtsp://127.0.0.1:{camera_port}/nir\" }}\n\
                 format = \"GRAY8\"\nwidth = 160\nheight = 120\nfps = 15\nrecord = {{ folder = \"rec\", segment_seconds = 5 }}\n"
            ),
        ),
    )
    .unwrap();
    let sample = |name: &str| format!("{name}{{camera=\"gate\"}}");
    let value = |name: &str| live_metric(metrics_port, &sample(name)).unwrap_or(-1.0);
    let wait = |what: &str, limit: u64, done: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(limit),
                "{what} within {limit} s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut camera = spawn_run(&upstream);
    let mut daemon = spawn_run(&config);
    wait("the camera up", 40, &|| value("nircolor_camera_up") == 1.0);
    let _ = camera.kill();
    common::wait_within(&mut camera, common::STOP_LIMIT, "the camera");
    wait("the camera noticed down", 30, &|| {
        value("nircolor_camera_up") == 0.0
    });
    wait("the no-signal card shown", 10, &|| {
        value("nircolor_no_signal_frames_total") > 0.0
    });

    let mut camera = spawn_run(&upstream);
    wait("the camera back", 60, &|| {
        value("nircolor_camera_up") == 1.0
    });
    assert!(value("nircolor_camera_reconnects_total") >= 1.0);
    // Frames flow again and the card has stopped.
    let cards = value("nircolor_no_signal_frames_total");
    let captured = value("nircolor_frames_captured_total");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        value("nircolor_no_signal_frames_total"),
        cards,
        "the card goes on"
    );
    assert!(
        value("nircolor_frames_captured_total") > captured + 15.0,
        "no frames after return"
    );
    let (status, body) = http_get(metrics_port, "/healthz");
    assert!(
        status.contains("200") && body.contains("\"streaming\""),
        "{status} {body}"
    );

    // Ctrl-C (SIGINT) stops the daemon like SIGTERM: exit 0, recordings complete.
    let _ = Command::new("kill")
        .args(["-INT", &daemon.id().to_string()])
        .status();
    let status = common::wait_within(&mut daemon, common::STOP_LIMIT, "run after Ctrl-C");
    assert!(status.success(), "{status:?}");
    let recordings: Vec<_> = std::fs::read_dir(dir.path().join("rec"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!recordings.is_empty());
    for r in recordings {
        assert!(
            common::probe(&r.path()).0 > 0,
            "{} does not play",
            r.path().display()
        );
    }
    let _ = camera.kill();
}
