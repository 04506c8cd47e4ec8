//! `nircolor bench filter|model|pipeline`: performance figures, printed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use nircolor::models::net::NetArch;

use super::{parse_size, progress, set_threads};

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// The guided filter (full and fast) beside OpenCV's cv2.ximgproc.guidedFilter, as Mpixel/s.
    Filter(FilterBenchArgs),
    /// A model's whole path (shrink, network, detail) per frame, beside the unet arch.
    Model(ModelBenchArgs),
    /// The whole daemon on live test cameras: frames out, drops, capture-to-encoded latency.
    Pipeline(PipelineBenchArgs),
}

#[derive(Args)]
pub(crate) struct PipelineBenchArgs {
    /// Seconds each case runs (after a 3 s warm-up that is not counted).
    #[arg(long, default_value_t = 60)]
    pub(crate) seconds: u64,
    /// Cases as WIDTHxHEIGHTxCAMERAS, comma-separated.
    #[arg(long, default_value = "640x480x1,1280x720x1,640x480x2,640x480x4")]
    pub(crate) cases: String,
    /// A weights file or built-in colorizer.
    #[arg(long, default_value = "default")]
    pub(crate) model: String,
    #[arg(long, default_value_t = 30)]
    pub(crate) fps: u32,
    /// How often the network recomputes each camera's colour: auto, every-frame, or per second.
    #[arg(long, default_value = "auto")]
    pub(crate) refresh: nircolor::infer::Refresh,
}

#[derive(Args)]
pub(crate) struct ModelBenchArgs {
    /// A weights file or built-in colorizer.
    #[arg(long, default_value = "default")]
    pub(crate) model: String,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    pub(crate) size: String,
    /// Timed frames of the model.
    #[arg(long, default_value_t = 200)]
    pub(crate) frames: usize,
    /// Timed frames of the full-resolution unet baseline (slow on a CPU); 0 skips it.
    #[arg(long, default_value_t = 20)]
    pub(crate) baseline_frames: usize,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<i32>,
}

#[derive(Args)]
pub(crate) struct FilterBenchArgs {
    /// Python with OpenCV contrib; defaults to the project's .venv (scripts/setup --venv).
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// Timed iterations per variant, size and round.
    #[arg(long, default_value_t = 30)]
    pub(crate) iterations: usize,
    /// Rounds, alternating OpenCV and ours so both see the same machine load.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    #[arg(long, default_value_t = 8)]
    pub(crate) radius: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub(crate) eps: f32,
}

/// The OpenCV side, embedded so the benchmark runs from any folder.
pub(crate) const OPENCV_SCRIPT: &str = include_str!("../../scripts/bench_guided_opencv.py");

pub(crate) fn run_bench_filter(args: &FilterBenchArgs) -> Result<()> {
    let workdir = std::env::temp_dir().join(format!("nircolor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
    let script = workdir.join("bench_guided_opencv.py");
    std::fs::write(&script, OPENCV_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let python = args
        .python
        .clone()
        .or_else(|| venv.exists().then_some(venv));
    let opts = nircolor::offline::bench::FilterBenchOptions {
        sizes: vec![(640, 480), (1920, 1080)],
        radius: args.radius,
        eps: args.eps,
        iterations: args.iterations,
        rounds: args.rounds,
        python,
        script,
        workdir: workdir.clone(),
    };
    let bar = progress(opts.rounds, "benchmark rounds");
    let rows = nircolor::offline::bench::filter_bench(&opts, |_| bar.inc(1));
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&workdir);
    print!("{}", nircolor::offline::bench::filter_table(&rows?, &opts));
    Ok(())
}

pub(crate) fn run_bench_model(args: &ModelBenchArgs) -> Result<()> {
    use nircolor::images::planes::Gray;
    use nircolor::models::net::{colorize::NetColorizer, Model};
    use nircolor::offline::bench::{self, ModelTiming};

    set_threads(args.threads)?;
    let (w, h) = parse_size(&args.size)?;
    let nir = Gray::new(w, h, bench::test_images(w, h).0);
    let model = nircolor::models::load(&args.model)
        .with_context(|| format!("loading model '{}'", args.model))?;
    let inference = match nircolor::models::load_bare(&args.model, tch::Device::Cpu) {
        Ok((_, Some(cfg))) => cfg.inference_size(w, h),
        _ => (w, h),
    };
    println!(
        "{} at {w}x{h}; {}",
        args.model,
        nircolor::runtime::cuda::describe()
    );
    let bar = progress(args.frames + args.baseline_frames, "timing");
    let mut rows: Vec<ModelTiming> = vec![bench::time_model(
        model.as_ref(),
        &nir,
        args.frames,
        inference,
        || bar.inc(1),
    )];
    if args.baseline_frames > 0 {
        let device = nircolor::models::net::pick_device("auto").unwrap_or(tch::Device::Cpu);
        let unet = Model::new(NetArch::Unet.default_config(), device, 1);
        let unet = NetColorizer::full(unet, "unet (untrained, same shape)".into());
        rows.push(bench::time_model(
            &unet,
            &nir,
            args.baseline_frames,
            (w, h),
            || bar.inc(1),
        ));
    }
    bar.finish_and_clear();
    println!("| model | frame | network input | frames | median ms | p99 ms | vs unet |");
    println!("|---|---|---|---|---|---|---|");
    let base = rows.get(1).map(|r| r.median_ms);
    for r in &rows {
        let ratio = base.map_or("-".to_string(), |b| {
            format!("{:.1}x faster", b / r.median_ms)
        });
        println!(
            "| {} | {}x{} | {}x{} | {} | {:.2} | {:.2} | {} |",
            r.model,
            r.width,
            r.height,
            r.inference.0,
            r.inference.1,
            r.frames,
            r.median_ms,
            r.p99_ms,
            ratio
        );
    }
    Ok(())
}

/// A free TCP port on loopback (bound, read, released).
pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn run_bench_pipeline(args: &PipelineBenchArgs) -> Result<()> {
    use std::sync::atomic::Ordering;
    let cases: Vec<(u32, u32, usize)> = args
        .cases
        .split(',')
        .map(|c| {
            let parse = |c: &str| -> Option<(u32, u32, usize)> {
                let mut it = c.trim().split('x');
                let v = (
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                );
                it.next().is_none().then_some(v)
            };
            parse(c)
                .filter(|&(w, h, n)| {
                    (16..=8192).contains(&w) && (16..=8192).contains(&h) && (1..=16).contains(&n)
                })
                .ok_or_else(|| {
                    anyhow::anyhow!("case '{c}' is not WIDTHxHEIGHTxCAMERAS, e.g. 640x480x2")
                })
        })
        .collect::<Result<_>>()?;
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    println!(
        "live test cameras at {} fps (videotestsrc ball, GRAY8) -> {} -> RTSP + Matroska recording, {} s per case; {}",
        args.fps, args.model, args.seconds, nircolor::runtime::cuda::describe()
    );
    println!(
        "| frame | cameras | fps out per camera (min) | dropped | capture-to-encoded p50 / p99 / max ms | refreshes/s per camera (min-max) | colour age ms (newest frame, worst camera) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (w, h, n) in cases {
        let dir = tempfile_dir()?;
        let config = nircolor::offline::bench::PipelineCase {
            model: &args.model,
            width: w,
            height: h,
            cameras: n,
            fps: args.fps,
            dir: &dir,
            rtsp_port: free_port()?,
            metrics_port: free_port()?,
            refresh: args.refresh,
        }
        .config();
        let daemon = nircolor::daemon::Daemon::start(&config)?;
        std::thread::sleep(std::time::Duration::from_secs(3));
        let t = daemon.telemetry().clone();
        let refreshes = |id: &str| {
            t.infer
                .cameras
                .get(id)
                .map_or(0, |c| c.refreshes.load(Ordering::Relaxed))
        };
        let start: Vec<(u64, u64, u64)> = t
            .cameras
            .iter()
            .map(|c| {
                (
                    c.encode.frames.load(Ordering::Relaxed),
                    (c.capture_drops)() + (c.colour_drops)(),
                    refreshes(&c.id),
                )
            })
            .collect();
        for c in &t.cameras {
            c.encode.keep_samples.store(true, Ordering::Relaxed);
        }
        let began = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_secs(args.seconds));
        let secs = began.elapsed().as_secs_f64();
        let mut fps_min = f64::INFINITY;
        let mut dropped = 0;
        let mut samples: Vec<f64> = Vec::new();
        let (mut refresh_min, mut refresh_max) = (f64::INFINITY, 0.0f64);
        let mut age_max = 0u64;
        for (c, (f0, d0, r0)) in t.cameras.iter().zip(&start) {
            let rate = (refreshes(&c.id) - r0) as f64 / secs;
            (refresh_min, refresh_max) = (refresh_min.min(rate), refresh_max.max(rate));
            if let Some(s) = t.infer.cameras.get(c.id.as_str()) {
                age_max = age_max.max(s.colour_age_us.load(Ordering::Relaxed));
            }
            c.encode.keep_samples.store(false, Ordering::Relaxed);
            let frames = c.encode.frames.load(Ordering::Relaxed) - f0;
            fps_min = fps_min.min(frames as f64 / secs);
            dropped += (c.capture_drops)() + (c.colour_drops)() - d0;
            if let Ok(v) = c.encode.encoded_samples.lock() {
                samples.extend(v.iter().map(|&x| f64::from(x)));
            }
        }
        let _ = daemon.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        let q = |p: f64| nircolor::offline::bench::quantile(&samples, p);
        println!(
            "| {w}x{h} | {n} | {fps_min:.1} | {dropped} | {:.1} / {:.1} / {:.1} | {refresh_min:.1}-{refresh_max:.1} | {:.0} |",
            q(0.5),
            q(0.99),
            q(1.0),
            age_max as f64 / 1e3
        );
    }
    Ok(())
}

pub(crate) fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "nircolor-bench-pipeline-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
