//! `nircolor bench`: performance figures printed, not asserted. `filter` times the guided filter
//! (full and fast variants) against OpenCV's `cv2.ximgproc.guidedFilter` on the same images in
//! the same run, rounds interleaved so both see the same machine load.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::capture::{CaptureSettings, PixelFormat, Source};
use crate::daemon::config::{CameraConfig, Config, Device, ModelConfig, Recording, RtspOutput};
use crate::detail::{resize_area, GuidedFilter};
use crate::encode::Container;
use crate::infer::Refresh;
use crate::reference::store::ReferenceSettings;

/// What the filter benchmark runs.
#[derive(Clone, Debug)]
pub struct FilterBenchOptions {
    pub sizes: Vec<(usize, usize)>,
    pub radius: usize,
    pub eps: f32,
    pub iterations: usize,
    pub rounds: usize,
    /// The Python with OpenCV contrib (the project's `.venv`); `None` skips the comparison.
    pub python: Option<PathBuf>,
    pub script: PathBuf,
    pub workdir: PathBuf,
}

/// One size's figures: medians over rounds of each round's median, in milliseconds.
#[derive(Clone, Debug)]
pub struct FilterBenchRow {
    pub width: usize,
    pub height: usize,
    pub ours_ms: Vec<f64>,
    /// The fast variant at half resolution (coefficients at w/2 x h/2, radius / 2), resizes included.
    pub fast_ms: Vec<f64>,
    pub opencv_ms: Vec<f64>,
    /// Largest difference from OpenCV's output away from the border (OpenCV reflects at the
    /// edges where He's reference, and ours, clip the window).
    pub interior_max_abs_diff: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot use the bench folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the OpenCV side failed ({python} {script}): {why}")]
    OpenCv {
        python: String,
        script: String,
        why: String,
    },
}

/// Reproducible smooth shading, fine texture, an edge and noise, so both the variance- and the
/// eps-dominated branches of the filter occur.
pub fn test_images(w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let hash = |x: usize, y: usize, salt: u64| {
        let mut v = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ salt.wrapping_mul(0x1656_67B1_9E37_79F9);
        v ^= v >> 29;
        v = v.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        v ^= v >> 32;
        (v >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut guide = vec![0.0f32; w * h];
    let mut input = vec![0.0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let smooth = 0.45 + 0.25 * (8.0 * u + 1.5 * (5.0 * v).sin()).sin() * (6.0 * v).cos();
            let texture = 0.08 * (x as f32 * 0.21).sin() * (y as f32 * 0.17).sin();
            let step = if (u - 0.6).abs() < 0.1 && (v - 0.4).abs() < 0.15 {
                0.15
            } else {
                0.0
            };
            let g = (smooth + texture + step + 0.04 * (hash(x, y, 0) - 0.5)).clamp(0.0, 1.0);
            guide[y * w + x] = g;
            for c in 0..3 {
                let k = (c + 1) as f32;
                let colour = 0.5 + 0.3 * (3.0 * k * u + 2.0 * v + k).sin();
                let p =
                    colour + 0.4 * (g - 0.45) * k / 3.0 + 0.06 * (hash(x, y, c as u64 + 1) - 0.5);
                input[(c * h + y) * w + x] = p.clamp(0.0, 1.0);
            }
        }
    }
    (guide, input)
}

fn write_f32(path: &Path, data: &[f32]) -> Result<(), BenchError> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(path, bytes).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

fn time_ms(iterations: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: page faults, thread pool start
    let times: Vec<f64> = (0..iterations.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&times)
}

/// Runs the benchmark; `on_round` is told after each round.
pub fn filter_bench(
    opts: &FilterBenchOptions,
    mut on_round: impl FnMut(usize),
) -> Result<Vec<FilterBenchRow>, BenchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { path, source }
    };
    fs::create_dir_all(&opts.workdir).map_err(io(&opts.workdir))?;
    let filter = GuidedFilter {
        radius: opts.radius,
        eps: opts.eps,
    };
    let fast = GuidedFilter {
        radius: (opts.radius / 2).max(1),
        eps: opts.eps,
    };
    let mut images = Vec::new();
    let mut rows = Vec::new();
    for &(w, h) in &opts.sizes {
        let (guide, input) = test_images(w, h);
        let tag = format!("{w}x{h}");
        let hwc: Vec<f32> = (0..w * h)
            .flat_map(|i| (0..3).map(move |c| (c, i)))
            .map(|(c, i)| input[c * w * h + i])
            .collect();
        write_f32(&opts.workdir.join(format!("guide_{tag}.f32")), &guide)?;
        write_f32(&opts.workdir.join(format!("input_{tag}.f32")), &hwc)?;
        write_f32(
            &opts.workdir.join(format!("ours_{tag}.f32")),
            &filter.filter(&guide, w, h, &input, 3),
        )?;
        images.push((guide, input));
        rows.push(FilterBenchRow {
            width: w,
            height: h,
            ours_ms: vec![],
            fast_ms: vec![],
            opencv_ms: vec![],
            interior_max_abs_diff: None,
        });
    }
    let config = serde_json::json!({"radius": opts.radius, "eps": opts.eps, "iterations": opts.iterations, "sizes": opts.sizes});
    let config_path = opts.workdir.join("sizes.json");
    fs::write(&config_path, config.to_string()).map_err(io(&config_path))?;

    for round in 0..opts.rounds.max(1) {
        if let Some(python) = &opts.python {
            let opencv = run_opencv(python, &opts.script, &opts.workdir)?;
            for (row, r) in rows
                .iter_mut()
                .zip(opencv["results"].as_array().into_iter().flatten())
            {
                row.opencv_ms
                    .push(r["median_ms"].as_f64().unwrap_or(f64::NAN));
                row.interior_max_abs_diff = r["interior_max_abs_diff"].as_f64();
            }
        }
        for (row, (guide, input)) in rows.iter_mut().zip(&images) {
            let (w, h) = (row.width, row.height);
            row.ours_ms.push(time_ms(opts.iterations, || {
                std::hint::black_box(filter.filter(guide, w, h, input, 3));
            }));
            let (lw, lh) = (w.div_ceil(2), h.div_ceil(2));
            row.fast_ms.push(time_ms(opts.iterations, || {
                let guide_low = resize_area(guide, w, h, 1, lw, lh);
                let input_low = resize_area(input, w, h, 3, lw, lh);
                std::hint::black_box(
                    fast.filter_fast(guide, w, h, &guide_low, &input_low, lw, lh, 3),
                );
            }));
        }
        on_round(round + 1);
    }
    Ok(rows)
}

fn run_opencv(python: &Path, script: &Path, dir: &Path) -> Result<serde_json::Value, BenchError> {
    let fail = |why: String| BenchError::OpenCv {
        python: python.display().to_string(),
        script: script.display().to_string(),
        why,
    };
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unexpected output ({e})")))
}

/// The printed table: Mpixel/s per variant and the ratio ours / OpenCV (above 1: ours faster).
pub fn filter_table(rows: &[FilterBenchRow], opts: &FilterBenchOptions) -> String {
    let threads = rayon::current_num_threads();
    let mut s = format!(
        "guided filter, gray guide, 3-channel f32 input, radius {}, eps {:e}, {} threads; medians over {} rounds x {} iterations\n\n",
        opts.radius, opts.eps, threads, opts.rounds, opts.iterations
    );
    s += &format!(
        "{:<10} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11} {:>8} {:>13}\n",
        "size",
        "ours ms",
        "Mpix/s",
        "fast1/2 ms",
        "Mpix/s",
        "OpenCV ms",
        "Mpix/s",
        "ratio",
        "|ours-cv|max"
    );
    for r in rows {
        let mpix = |ms: f64| (r.width * r.height) as f64 / (ms * 1e3);
        let (ours, fast, cv) = (median(&r.ours_ms), median(&r.fast_ms), median(&r.opencv_ms));
        let diff = r
            .interior_max_abs_diff
            .map_or("-".to_string(), |d| format!("{d:.1e}"));
        s += &format!(
            "{:<10} {:>9.2} {:>9.1} {:>10.2} {:>10.1} {:>11.2} {:>11.1} {:>7.2}x {:>13}\n",
            format!("{}x{}", r.width, r.height),
            ours,
            mpix(ours),
            fast,
            mpix(fast),
            cv,
            mpix(cv),
            cv / ours,
            diff
        );
        let spread = |v: &[f64]| {
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            format!("{lo:.2}..{hi:.2}")
        };
        s += &format!(
            "{:<10} spread per round (ms): ours {}, OpenCV {}\n",
            "",
            spread(&r.ours_ms),
            spread(&r.opencv_ms)
        );
    }
    if rows.iter().all(|r| r.opencv_ms.is_empty()) {
        s += "\nOpenCV was not run (no Python with cv2): `scripts/setup --venv` installs it into .venv.\n";
    }
    s
}

/// One case of `nircolor bench pipeline`: `cameras` live test cameras (videotestsrc's moving
/// ball, GRAY8) of `width` x `height` at `fps`, each streamed over RTSP and recorded as Matroska
/// into `dir`, colorized by `model` in batches of one frame per camera.
pub struct PipelineCase<'a> {
    pub model: &'a str,
    pub width: u32,
    pub height: u32,
    pub cameras: usize,
    pub fps: u32,
    pub dir: &'a Path,
    pub rtsp_port: u16,
    pub metrics_port: u16,
    /// How often the network recomputes each camera's colour.
    pub refresh: Refresh,
    /// Every camera keeps a day reference (scene memory): the test cameras show the static
    /// colour bars, and their reference is the bars in colour ([`PipelineCase::write_references`]).
    pub reference: bool,
    /// A quality model for a tiered refresh (`[model] quality`).
    pub quality: Option<&'a str>,
}

/// Recording segments of the pipeline benchmark: longer than any run, so no segment switch
/// (with its keyframe and file creation) lands inside the measurement.
const BENCH_SEGMENT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long inference waits to fill a batch in the benchmark: short, so a batch closes as soon
/// as every camera's frame is in.
const BENCH_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

impl PipelineCase<'_> {
    fn reference_file(&self, camera: usize) -> std::path::PathBuf {
        self.dir.join(format!("reference{camera}.png"))
    }

    /// Writes each camera's reference: the colour bars its test source shows in NIR, in
    /// colour, at its size, with GStreamer's own `videotestsrc` (so they line up exactly).
    pub fn write_references(&self) -> Result<(), String> {
        let png = self.dir.join("smpte.png");
        let status = Command::new("gst-launch-1.0")
            .args(["-q", "videotestsrc", "pattern=smpte", "num-buffers=1", "!"])
            .arg(format!(
                "video/x-raw,width={},height={}",
                self.width, self.height
            ))
            .args(["!", "videoconvert", "!", "pngenc", "!", "filesink"])
            .arg(format!("location={}", png.display()))
            .status()
            .map_err(|e| format!("gst-launch-1.0: {e}"))?;
        if !status.success() {
            return Err(format!("gst-launch-1.0 could not write {}", png.display()));
        }
        let img = image::open(&png)
            .map_err(|e| format!("{}: {e}", png.display()))?
            .to_rgb8();
        let frame = crate::images::planes::Rgb::from_rgb8(&img);
        for i in 0..self.cameras {
            let meta = crate::reference::store::ReferenceMeta {
                made_unix: 0,
                frames: 1,
                span_seconds: 0.0,
                stillness: 0.0,
                width: frame.width,
                height: frame.height,
                photo: Some("videotestsrc pattern=smpte".into()),
            };
            let r = crate::reference::store::StoredReference {
                image: frame.clone(),
                meta,
            };
            crate::reference::store::save(&self.reference_file(i), &r)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    /// The daemon configuration of this case, built in code (no file behind it).
    pub fn config(&self) -> Config {
        let cameras = (0..self.cameras)
            .map(|i| {
                let id = format!("cam{i}");
                CameraConfig {
                    spec: CaptureSettings {
                        source: Source::Test {
                            pattern: if self.reference { "smpte" } else { "ball" }.into(),
                        },
                        format: PixelFormat::Gray8,
                        width: self.width,
                        height: self.height,
                        fps: self.fps,
                        id: id.clone(),
                        day_night: false,
                    },
                    calibration: None,
                    retry: true,
                    reference: self.reference.then(|| ReferenceSettings {
                        file: self.reference_file(i),
                        ..ReferenceSettings::default()
                    }),
                    rtsp: RtspOutput {
                        mount: format!("/{id}"),
                        credentials: None,
                    },
                    record: Some(Recording {
                        folder: self.dir.join(format!("rec{i}")),
                        segment: BENCH_SEGMENT,
                        container: Container::Matroska,
                        max_age: None,
                        max_total_bytes: None,
                    }),
                    webcam: None,
                }
            })
            .collect();
        Config {
            file: self.dir.join("bench-pipeline (built in code)"),
            model: ModelConfig {
                weights: self.model.to_string(),
                quality: self.quality.map(str::to_string),
                bf16: false,
                device: Device::Auto,
                scale: None,
                max_batch: self.cameras,
                max_wait: BENCH_MAX_WAIT,
                refresh: self.refresh,
                blend: crate::infer::BLEND,
                radius: crate::detail::DAEMON_RADIUS,
                eps: crate::detail::DAEMON_EPS,
            },
            rtsp_bind: "127.0.0.1".into(),
            rtsp_port: self.rtsp_port,
            metrics_bind: std::net::SocketAddr::from(([127, 0, 0, 1], self.metrics_port)),
            metrics_token: None,
            metrics_limits: Default::default(),
            rtsp_security: Default::default(),
            cameras,
        }
    }
}

impl PipelineCase<'_> {
    /// One more camera for the case: `id` reading the RTSP stream at `url` (the soak's camera
    /// that fails and comes back), at the case's size and rate, recorded like the others.
    pub fn rtsp_camera(&self, id: &str, url: &str) -> CameraConfig {
        let mut cam = self.config().cameras.remove(0);
        cam.spec.id = id.into();
        cam.spec.source = Source::Rtsp { url: url.into() };
        cam.rtsp.mount = format!("/{id}");
        if let Some(r) = cam.record.as_mut() {
            r.folder = self.dir.join(format!("rec-{id}"));
        }
        cam
    }
}

/// What a process holds, read from /proc: the figures a soak test watches for leaks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUse {
    pub resident_mb: f64,
    pub open_files: usize,
    pub threads: usize,
}

impl ProcessUse {
    /// This process, now.
    pub fn now() -> std::io::Result<ProcessUse> {
        Self::read(std::path::Path::new("/proc/self"))
    }

    /// Process `pid` (a daemon a test started), now.
    pub fn of(pid: u32) -> std::io::Result<ProcessUse> {
        Self::read(&std::path::Path::new("/proc").join(pid.to_string()))
    }

    fn read(proc: &std::path::Path) -> std::io::Result<ProcessUse> {
        let status = std::fs::read_to_string(proc.join("status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(ProcessUse {
            resident_mb: field("VmRSS:") / 1024.0,
            open_files: std::fs::read_dir(proc.join("fd"))?.count(),
            threads: field("Threads:") as usize,
        })
    }
}

/// The least-squares slope of `ys` against `xs` (0 with fewer than two points).
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return 0.0;
    }
    let (mx, my) = (
        xs[..n].iter().sum::<f64>() / n as f64,
        ys[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for i in 0..n {
        sxy += (xs[i] - mx) * (ys[i] - my);
        sxx += (xs[i] - mx) * (xs[i] - mx);
    }
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Per-frame times of one model at one size.
#[derive(Clone, Debug, Serialize)]
pub struct ModelTiming {
    pub model: String,
    pub width: usize,
    pub height: usize,
    /// The size the network itself ran at.
    pub inference: (usize, usize),
    pub frames: usize,
    pub median_ms: f64,
    pub p99_ms: f64,
}

/// The `q` quantile (0..1) of `v`, nearest rank.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Times `colorizer` (its whole path: shrink, network, detail) on `frames` copies of `nir`,
/// after three warm-up frames.
pub fn time_model(
    colorizer: &dyn crate::models::colorizer::Colorizer,
    nir: &crate::images::planes::Gray,
    frames: usize,
    inference: (usize, usize),
    mut tick: impl FnMut(),
) -> ModelTiming {
    for _ in 0..3 {
        colorizer.colorize(nir);
    }
    let times: Vec<f64> = (0..frames.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(colorizer.colorize(nir));
            tick();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ModelTiming {
        model: colorizer.name(),
        width: nir.width,
        height: nir.height,
        inference,
        frames: times.len(),
        median_ms: median(&times),
        p99_ms: quantile(&times, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_the_least_squares_line_and_the_process_is_read() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        assert!((slope(&xs, &[1.0, 3.0, 5.0, 7.0]) - 2.0).abs() < 1e-12);
        assert_eq!(slope(&xs, &[4.0; 4]), 0.0);
        assert_eq!(slope(&[1.0], &[1.0]), 0.0);
        let now = ProcessUse::now().unwrap();
        assert!(
            now.resident_mb > 1.0 && now.open_files >= 3 && now.threads >= 1,
            "{now:?}"
        );
    }
}
