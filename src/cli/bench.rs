//! `nircolor bench filter|model|pipeline|soak|http-flood`: performance figures, printed.

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
    /// The daemon for minutes under overload, with a camera that fails and comes back: resident
    /// memory, open files and threads every minute and their slopes (leaks).
    Soak(SoakBenchArgs),
    /// Slow HTTP clients against a daemon's metrics port (half a request line, then nothing,
    /// reopened when closed), with `/healthz` and `/metrics` probed meanwhile: how the probes
    /// fare and what the server did with the flood.
    HttpFlood(HttpFloodBenchArgs),
}

#[derive(Args)]
pub(crate) struct HttpFloodBenchArgs {
    /// The daemon's `[metrics]` bind.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub(crate) target: std::net::SocketAddr,
    /// Slow connections to hold open.
    #[arg(long, default_value_t = 4000)]
    pub(crate) connections: usize,
    #[arg(long, default_value_t = 60)]
    pub(crate) seconds: u64,
}

#[derive(Args)]
pub(crate) struct SoakBenchArgs {
    /// Minutes to run (the first is left out of every slope).
    #[arg(long, default_value_t = 30)]
    pub(crate) minutes: u64,
    /// Minutes of warm-up (allocator arenas, GStreamer and libtorch pools filling), left out
    /// of the second set of slopes, which measure the steady state.
    #[arg(long, default_value_t = 5)]
    pub(crate) warmup: u64,
    /// Cases as WIDTHxHEIGHTxCAMERAS, comma-separated, run one after the other.
    #[arg(long, default_value = "640x480x4")]
    pub(crate) cases: String,
    /// A weights file or built-in colorizer.
    #[arg(long, default_value = "default")]
    pub(crate) model: String,
    #[arg(long, default_value_t = 30)]
    pub(crate) fps: u32,
    /// How often the network recomputes each camera's colour: every-frame overloads this CPU.
    #[arg(long, default_value = "every-frame")]
    pub(crate) refresh: nircolor::infer::Refresh,
    /// Seconds between failures of one more camera (an RTSP stream from a second process that
    /// is killed, then started again 5 s later); 0 leaves it out.
    #[arg(long, default_value_t = 30)]
    pub(crate) flap_every: u64,
    /// Slow HTTP clients held against the metrics port all along (`bench http-flood` in a
    /// second process, so its sockets are not counted as the daemon's); 0 leaves it out.
    #[arg(long, default_value_t = 2000)]
    pub(crate) http_flood: usize,
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
    /// Every camera with a day reference: the test cameras show the static colour bars and
    /// their references are the bars in colour, so each refresh fits the reference, blends the
    /// network and checks the alignment.
    #[arg(long)]
    pub(crate) reference: bool,
    /// A quality model for a tiered refresh (`[model] quality`): it refreshes each camera's
    /// static scene in turn while --model refreshes what moves.
    #[arg(long)]
    pub(crate) quality: Option<String>,
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
    /// Also times the model with its layers in bf16, in the same process.
    #[arg(long)]
    pub(crate) bf16: bool,
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
    let bar = progress(
        args.frames * (1 + usize::from(args.bf16)) + args.baseline_frames,
        "timing",
    );
    let mut rows: Vec<ModelTiming> = vec![bench::time_model(
        model.as_ref(),
        &nir,
        args.frames,
        inference,
        || bar.inc(1),
    )];
    if args.bf16 {
        // The same model in the same process, its layers in bf16: the speed-up as a ratio.
        nircolor::models::net::set_bf16_inference(true);
        let mut row =
            bench::time_model(model.as_ref(), &nir, args.frames, inference, || bar.inc(1));
        nircolor::models::net::set_bf16_inference(false);
        row.model += " (bf16)";
        rows.push(row);
    }
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
    let base = rows
        .iter()
        .find(|r| r.model.starts_with("unet"))
        .map(|r| r.median_ms);
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

/// Parses `--cases` (WIDTHxHEIGHTxCAMERAS, comma-separated).
fn parse_cases(cases: &str) -> Result<Vec<(u32, u32, usize)>> {
    cases
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
        .collect()
}

/// The soak's failing camera: a second `nircolor` process serving a test pattern over RTSP,
/// killed and started again; its resources are its own, so they do not blur the daemon's.
struct FlappingCamera {
    config: PathBuf,
    child: Option<std::process::Child>,
}

impl FlappingCamera {
    fn new(dir: &Path, port: u16, (w, h, fps): (u32, u32, u32)) -> Result<FlappingCamera> {
        let config = dir.join("flapping-camera.toml");
        std::fs::write(
            &config,
            format!(
                "[model]\nweights = \"identity\"\n[rtsp]\nport = {port}\n[metrics]\nbind = \"127.0.0.1:{}\"\n\
                 [[camera]]\nid = \"nir\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\nformat = \"GRAY8\"\n\
                 width = {w}\nheight = {h}\nfps = {fps}\n",
                free_port()?
            ),
        )?;
        let mut camera = FlappingCamera {
            config,
            child: None,
        };
        camera.start()?;
        Ok(camera)
    }

    fn start(&mut self) -> Result<()> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the flapping camera")?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for FlappingCamera {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `bench http-flood` run as a second process for the soak.
struct HttpFloodChild(std::process::Child);

impl HttpFloodChild {
    fn start(target: std::net::SocketAddr, connections: usize, seconds: u64) -> Result<Self> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(["bench", "http-flood", "--target", &target.to_string()])
            .args(["--connections", &connections.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the HTTP flood")?;
        Ok(HttpFloodChild(child))
    }

    /// What it printed (the flood's report and why probes failed, if any); it ends by itself
    /// with the soak.
    fn finish(mut self) -> String {
        let mut out = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            use std::io::Read;
            let _ = o.read_to_string(&mut out);
        }
        let _ = self.0.wait();
        if out.trim().is_empty() {
            "no report".to_string()
        } else {
            out.trim_end().to_string()
        }
    }
}

impl Drop for HttpFloodChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run_bench_http_flood(args: &HttpFloodBenchArgs) -> Result<()> {
    use nircolor::offline::flood::{probe, Flood};
    use std::time::{Duration, Instant};
    /// A probe slower than this fails, as with a kubelet's default timeout.
    const LIMIT: Duration = Duration::from_secs(1);
    const EVERY: Duration = Duration::from_millis(200);
    let started = Instant::now();
    let flood = Flood::slow(args.target, args.connections, true);
    let (mut probes, mut failed, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut why = std::collections::BTreeMap::<String, u64>::new();
    while started.elapsed() < Duration::from_secs(args.seconds) {
        for path in ["/healthz", "/metrics"] {
            probes += 1;
            match probe(args.target, path, LIMIT) {
                Ok((200, took)) => slowest = slowest.max(took),
                Ok((code, _)) => {
                    failed += 1;
                    *why.entry(format!("answered {code}")).or_default() += 1;
                }
                Err(e) => {
                    failed += 1;
                    *why.entry(e.to_string()).or_default() += 1;
                }
            }
        }
        std::thread::sleep(EVERY);
    }
    let r = flood.stop();
    println!(
        "{} slow clients on {} for {} s: {} connections opened ({} could not be), {} closed by the server (longest held {:.1} s), {} open at the end; probes of /healthz and /metrics: {probes}, {failed} failed, slowest {:.1} ms",
        args.connections,
        args.target,
        args.seconds,
        r.opened,
        r.connect_errors,
        r.closed,
        r.longest_held.as_secs_f64(),
        r.still_open,
        slowest.as_secs_f64() * 1e3
    );
    for (why, n) in why {
        println!("  {n} probes failed: {why}");
    }
    Ok(())
}

pub(crate) fn run_bench_soak(args: &SoakBenchArgs) -> Result<()> {
    // As `run` does: the soak measures the daemon as it runs in production.
    nircolor::runtime::memory::limit_malloc_arenas();
    use nircolor::offline::bench::{slope, ProcessUse};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    /// The soak's recordings are capped so a long run cannot fill the disk; pruning then runs
    /// all along, which is part of what is soaked.
    const SOAK_RECORDINGS_BYTES: u64 = 300_000_000;
    /// A probe slower than this counts as failed, as a kubelet's default timeout would.
    const PROBE_LIMIT: Duration = Duration::from_secs(1);
    /// The flapping camera stays away this long each time.
    const AWAY: Duration = Duration::from_secs(5);
    /// Resident memory moves by several MB with the frames in flight at the moment it is read;
    /// twelve readings a minute average that out of the slopes (one a minute left them at
    /// about +-1 MB per 10 minutes of noise over 30 minutes).
    const SAMPLE_EVERY: Duration = Duration::from_secs(5);
    if args.minutes < 2 {
        bail!("--minutes must be at least 2: the first minute is warm-up");
    }
    if args.warmup + 2 > args.minutes {
        bail!(
            "--warmup {} leaves fewer than 2 of the {} minutes to measure: run longer or warm up less",
            args.warmup,
            args.minutes
        );
    }
    for (w, h, n) in parse_cases(&args.cases)? {
        let dir = tempfile_dir()?;
        let case = nircolor::offline::bench::PipelineCase {
            model: &args.model,
            width: w,
            height: h,
            cameras: n,
            fps: args.fps,
            dir: &dir,
            rtsp_port: free_port()?,
            metrics_port: free_port()?,
            refresh: args.refresh,
            reference: false,
            quality: None,
        };
        let mut config = case.config();
        let mut flapping = None;
        if args.flap_every > 0 {
            let port = free_port()?;
            flapping = Some(FlappingCamera::new(&dir, port, (w, h, args.fps))?);
            config
                .cameras
                .push(case.rtsp_camera("flapping", &format!("rtsp://127.0.0.1:{port}/nir")));
        }
        for cam in &mut config.cameras {
            if let Some(r) = cam.record.as_mut() {
                r.max_total_bytes = Some(SOAK_RECORDINGS_BYTES / config_len(n, args.flap_every));
            }
        }
        println!(
            "soak: {n} x {w}x{h} test cameras at {} fps through {} (refresh {:?}){}, {} minutes; {}",
            args.fps,
            args.model,
            args.refresh,
            if args.flap_every > 0 {
                format!(
                    ", plus one RTSP camera killed every {} s and back {} s later",
                    args.flap_every,
                    AWAY.as_secs()
                )
            } else {
                String::new()
            },
            args.minutes,
            nircolor::runtime::cuda::describe()
        );
        if args.http_flood > 0 {
            println!(
                "plus {} slow HTTP clients on the metrics port all along, reopened as they are closed; /healthz probed every {} s",
                args.http_flood,
                SAMPLE_EVERY.as_secs()
            );
        }
        println!(
            "| minute | resident MB (mean of {} readings) | open files (most) | threads (most) | frames encoded | dropped | reconnects | slowest /healthz ms | failed probes |",
            60 / SAMPLE_EVERY.as_secs()
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let daemon = nircolor::daemon::Daemon::start(&config)?;
        let flood = (args.http_flood > 0)
            .then(|| HttpFloodChild::start(config.metrics_bind, args.http_flood, args.minutes * 60))
            .transpose()?;
        let t = daemon.telemetry().clone();
        let began = Instant::now();
        let mut next_flap = began + Duration::from_secs(args.flap_every);
        let mut back_at: Option<Instant> = None;
        let (mut xs, mut rss, mut fds, mut threads) = (vec![], vec![], vec![], vec![]);
        let mut next_sample = began + SAMPLE_EVERY;
        for minute in 1..=args.minutes {
            let until = began + Duration::from_secs(60 * minute);
            let mut this_minute: Vec<ProcessUse> = Vec::new();
            let (mut slowest_probe, mut failed_probes) = (Duration::ZERO, 0);
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(200));
                let now = Instant::now();
                if let Some(f) = flapping.as_mut() {
                    if back_at.is_none() && now >= next_flap {
                        f.kill();
                        back_at = Some(now + AWAY);
                        next_flap = now + Duration::from_secs(args.flap_every);
                    }
                    if back_at.is_some_and(|b| now >= b) {
                        f.start()?;
                        back_at = None;
                    }
                }
                if now >= next_sample {
                    next_sample += SAMPLE_EVERY;
                    let u = ProcessUse::now()?;
                    if minute > 1 {
                        xs.push(began.elapsed().as_secs_f64() / 60.0);
                        rss.push(u.resident_mb);
                        fds.push(u.open_files as f64);
                        threads.push(u.threads as f64);
                    }
                    this_minute.push(u);
                    match nircolor::offline::flood::probe(
                        config.metrics_bind,
                        "/healthz",
                        PROBE_LIMIT,
                    ) {
                        Ok((200, took)) => slowest_probe = slowest_probe.max(took),
                        _ => failed_probes += 1,
                    }
                }
            }
            let n = this_minute.len().max(1) as f64;
            let sum = |f: &dyn Fn(&nircolor::daemon::telemetry::CameraTelemetry) -> u64| {
                t.cameras.iter().map(f).sum::<u64>()
            };
            println!(
                "| {minute} | {:.1} | {} | {} | {} | {} | {} | {:.1} | {failed_probes} |",
                this_minute.iter().map(|u| u.resident_mb).sum::<f64>() / n,
                this_minute.iter().map(|u| u.open_files).max().unwrap_or(0),
                this_minute.iter().map(|u| u.threads).max().unwrap_or(0),
                sum(&|c| c.encode.frames.load(Ordering::Relaxed)),
                sum(&|c| (c.capture_drops)() + (c.colour_drops)()),
                sum(&|c| c.status.restarts.load(Ordering::Relaxed)),
                slowest_probe.as_secs_f64() * 1e3,
            );
        }
        drop(flapping);
        if let Some(flood) = flood {
            println!("http flood: {}", flood.finish());
        }
        let _ = daemon.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        // Over the whole run, and after the warm-up: allocators and caches fill up early
        // (arenas, GStreamer and libtorch pools), a leak keeps growing.
        let steady = xs.iter().take_while(|&&m| m < args.warmup as f64).count();
        for (from, to) in [(0, xs.len()), (steady, xs.len())] {
            let (x, r, f, t) = (
                &xs[from..to],
                &rss[from..to],
                &fds[from..to],
                &threads[from..to],
            );
            println!(
                "slopes over minutes {:.0}-{} ({} readings): resident memory {:+.2} MB per 10 minutes, open files {:+.2}, threads {:+.2} per 10 minutes",
                x.first().copied().unwrap_or(0.0).floor(),
                args.minutes,
                x.len(),
                10.0 * slope(x, r),
                10.0 * slope(x, f),
                10.0 * slope(x, t)
            );
        }
    }
    Ok(())
}

/// How many cameras record in a soak case.
fn config_len(cameras: usize, flap_every: u64) -> u64 {
    cameras as u64 + u64::from(flap_every > 0)
}

pub(crate) fn run_bench_pipeline(args: &PipelineBenchArgs) -> Result<()> {
    nircolor::runtime::memory::limit_malloc_arenas();
    use std::sync::atomic::Ordering;
    let cases = parse_cases(&args.cases)?;
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
        let case = nircolor::offline::bench::PipelineCase {
            model: &args.model,
            width: w,
            height: h,
            cameras: n,
            fps: args.fps,
            dir: &dir,
            rtsp_port: free_port()?,
            metrics_port: free_port()?,
            refresh: args.refresh,
            reference: args.reference,
            quality: args.quality.as_deref(),
        };
        if args.reference {
            case.write_references().map_err(anyhow::Error::msg)?;
        }
        let config = case.config();
        let daemon = nircolor::daemon::Daemon::start(&config)?;
        std::thread::sleep(std::time::Duration::from_secs(3));
        let t = daemon.telemetry().clone();
        let refreshes = |id: &str| {
            t.infer
                .cameras
                .get(id)
                .map_or(0, |c| c.refreshes.load(Ordering::Relaxed))
        };
        let quality_refreshes = || -> u64 {
            t.infer
                .cameras
                .values()
                .map(|c| c.quality_refreshes.load(Ordering::Relaxed))
                .sum()
        };
        let quality_start = quality_refreshes();
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
        let with_reference = t
            .infer
            .cameras
            .values()
            .filter(|c| c.reference.load(Ordering::Relaxed))
            .count();
        let moved: u64 = t
            .infer
            .cameras
            .values()
            .map(|c| c.moved.load(Ordering::Relaxed))
            .sum();
        let quality_rate = (quality_refreshes() - quality_start) as f64 / secs / n as f64;
        let _ = daemon.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(q) = &args.quality {
            println!(
                "(tiered refresh: {q} refreshed each camera's static scene {quality_rate:.2} times a second, once every {:.1} s)",
                1.0 / quality_rate.max(1e-9)
            );
        }
        if args.reference {
            println!(
                "(day reference in use on {with_reference} of {n} cameras at the end; found moved {moved} times)"
            );
        }
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
