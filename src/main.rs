//! The `nircolor` command line: evaluate, colorize, train and benchmark.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use nircolor::colorizer::{self, Colorizer, Post};
use nircolor::data::{self, Dataset};
use nircolor::detail::GuidedFilter;
use nircolor::eval;
use nircolor::l3::L3Config;
use nircolor::report::Report;
use nircolor::train::{self, Arch, ClassicalOptions};

#[derive(Parser)]
#[command(
    name = "nircolor",
    version,
    about = "Near-infrared to colour: evaluate, colorize, train, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a model on a paired folder (nir/, rgb/, optional mask/): table, JSON, HTML report.
    Eval(EvalArgs),
    /// Colorize one NIR image or a folder of them.
    Colorize(ColorizeArgs),
    /// Fit a model on paired folders and write its weights file.
    Train(TrainArgs),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// List V4L2 cameras with the formats and sizes they deliver.
    Devices,
    /// Run the daemon on a pipeline configuration until SIGTERM or Ctrl-C.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a pipeline configuration without running it.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PostArg {
    /// The colorizer's output as it is.
    None,
    /// He et al.'s guided filter with the NIR as guide (detail transfer).
    Guided,
    /// Colorize at --scale times the size, then the fast guided filter restores full
    /// resolution from the NIR (the daemon's detail stage).
    FastGuided,
}

#[derive(Args)]
struct ModelArgs {
    /// A weights file, or a built-in colorizer: identity, linear, l3.
    #[arg(long, default_value = "l3")]
    model: String,
    /// Post-processing after the colorizer.
    #[arg(long, value_enum, default_value_t = PostArg::None)]
    post: PostArg,
    /// Guided filter radius in full-resolution pixels (with --post guided or fast-guided).
    #[arg(long, default_value_t = 5)]
    radius: usize,
    /// Guided filter regularisation on [0,1] data (with --post guided or fast-guided).
    #[arg(long, default_value_t = 1e-5)]
    eps: f32,
    /// Size factor the colorizer runs at with --post fast-guided, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    scale: f32,
}

impl ModelArgs {
    fn load(&self) -> Result<Box<dyn Colorizer>> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            bail!(
                "--eps {} must be a positive number (1e-5 .. 1e-1 are typical)",
                self.eps
            );
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            bail!("--scale {} must be in (0, 1], e.g. 0.5 or 0.25", self.scale);
        }
        let inner = colorizer::load(&self.model)
            .with_context(|| format!("loading model '{}'", self.model))?;
        let filter = GuidedFilter {
            radius: self.radius,
            eps: self.eps,
        };
        let post = match self.post {
            PostArg::None => Post::None,
            PostArg::Guided => Post::Guided(filter),
            PostArg::FastGuided => Post::FastGuided {
                filter,
                scale: self.scale,
            },
        };
        Ok(colorizer::with_post(inner, post))
    }
}

#[derive(Args)]
struct SelectArgs {
    /// Use only the pairs whose stems this file lists (one per line, # comments).
    #[arg(long, value_name = "LIST")]
    only: Option<PathBuf>,
    /// Skip the pairs whose stems this file lists; may be repeated.
    #[arg(long, value_name = "LIST")]
    exclude: Vec<PathBuf>,
}

impl SelectArgs {
    fn open(&self, dir: &Path) -> Result<Dataset> {
        let only = self.only.as_deref().map(data::read_stem_list).transpose()?;
        let mut exclude = HashSet::new();
        for list in &self.exclude {
            exclude.extend(data::read_stem_list(list)?);
        }
        let ds = Dataset::open(dir)?;
        Ok(ds.select(only.as_ref(), &exclude)?)
    }
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Paired folder with nir/ and rgb/ (optional mask/).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    select: SelectArgs,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an HTML page with every picture and the table into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Args)]
struct ColorizeArgs {
    /// A NIR image, or a folder of them.
    input: PathBuf,
    /// Output image (its extension picks PNG, JPEG or TIFF), or a folder for a folder input.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum TrainArch {
    Linear,
    L3,
}

#[derive(Args)]
struct TrainArgs {
    #[arg(long, value_enum)]
    arch: TrainArch,
    /// Paired training folder; may be repeated.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    #[command(flatten)]
    select: SelectArgs,
    /// Where to write the weights (safetensors with the model card inside).
    #[arg(long)]
    out: PathBuf,
    /// Validation folder: scored after fitting and recorded in the model card.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Fit on every N-th pixel in x and y.
    #[arg(long, default_value_t = 2)]
    stride: usize,
    /// Polynomial degree (linear).
    #[arg(long, default_value_t = 3)]
    degree: usize,
    /// Intensity-level classes (l3).
    #[arg(long, default_value_t = L3Config::default().levels)]
    levels: usize,
    /// Local-contrast classes (l3).
    #[arg(long, default_value_t = L3Config::default().contrasts)]
    contrasts: usize,
    /// Context classes (l3).
    #[arg(long, default_value_t = L3Config::default().contexts)]
    contexts: usize,
    /// Patch radius of each class's linear filter (l3).
    #[arg(long, default_value_t = L3Config::default().patch_radius)]
    patch_radius: usize,
    /// Radius of the context window (l3).
    #[arg(long, default_value_t = L3Config::default().context_radius)]
    context_radius: usize,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The guided filter (full and fast) beside OpenCV's cv2.ximgproc.guidedFilter, as Mpixel/s.
    Filter(FilterBenchArgs),
}

#[derive(Args)]
struct FilterBenchArgs {
    /// Python with OpenCV contrib; defaults to the project's .venv (scripts/setup --venv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Timed iterations per variant, size and round.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Rounds, alternating OpenCV and ours so both see the same machine load.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 8)]
    radius: usize,
    #[arg(long, default_value_t = 1e-4)]
    eps: f32,
}

/// The OpenCV side, embedded so the benchmark runs from any folder.
const OPENCV_SCRIPT: &str = include_str!("../scripts/bench_guided_opencv.py");

fn run_bench_filter(args: &FilterBenchArgs) -> Result<()> {
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
    let opts = nircolor::bench::FilterBenchOptions {
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
    let rows = nircolor::bench::filter_bench(&opts, |_| bar.inc(1));
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&workdir);
    print!("{}", nircolor::bench::filter_table(&rows?, &opts));
    Ok(())
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn run_eval(args: &EvalArgs) -> Result<()> {
    let model = args.model.load()?;
    let ds = args.select.open(&args.data)?;
    let report = args.report.as_deref().map(Report::create).transpose()?;
    let bar = progress(ds.len(), "evaluating");
    let mut report_err = None;
    let result = eval::evaluate(model.as_ref(), &ds, |pair, out, _| {
        if let Some(r) = &report {
            if let Err(e) = r.add(pair, out) {
                report_err.get_or_insert(e);
            }
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if let Some(e) = report_err {
        return Err(e.into());
    }
    println!("model: {}\ndata:  {}\n", result.model, result.data);
    print!("{}", eval::table(&result));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON: {}", path.display());
    }
    if let Some(r) = &report {
        let page = r.finish(&result)?;
        println!("report: {}", page.display());
    }
    Ok(())
}

fn run_colorize(args: &ColorizeArgs) -> Result<()> {
    let model = args.model.load()?;
    let jobs: Vec<(PathBuf, PathBuf)> = if args.input.is_dir() {
        let images = data::list_images(&args.input)?;
        if images.is_empty() {
            bail!("{} holds no PNG, JPEG or TIFF images", args.input.display());
        }
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        images
            .into_iter()
            .map(|(stem, path)| (path, args.output.join(format!("{stem}.png"))))
            .collect()
    } else if args.output.is_dir() {
        let stem = args
            .input
            .file_stem()
            .context("input has no file name")?
            .to_string_lossy()
            .to_string();
        vec![(args.input.clone(), args.output.join(format!("{stem}.png")))]
    } else {
        vec![(args.input.clone(), args.output.clone())]
    };
    let bar = progress(jobs.len(), "colorizing");
    for (input, output) in &jobs {
        let nir = data::read_nir(input)?;
        model
            .colorize(&nir)
            .to_rgb8()
            .save(output)
            .with_context(|| format!("writing {}", output.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "wrote {} image(s) with {} to {}",
        jobs.len(),
        model.name(),
        args.output.display()
    );
    Ok(())
}

fn run_train(args: &TrainArgs) -> Result<()> {
    // The bounds the weights loaders enforce, checked before minutes of fitting.
    use nircolor::{l3, linear};
    let bins = 1..=l3::MAX_BINS;
    let checks = [
        (args.stride >= 1, "--stride must be at least 1".to_string()),
        (
            args.degree <= linear::MAX_DEGREE,
            format!("--degree must be from 0 to {}", linear::MAX_DEGREE),
        ),
        (
            bins.contains(&args.levels),
            format!("--levels must be from 1 to {}", l3::MAX_BINS),
        ),
        (
            bins.contains(&args.contrasts),
            format!("--contrasts must be from 1 to {}", l3::MAX_BINS),
        ),
        (
            bins.contains(&args.contexts),
            format!("--contexts must be from 1 to {}", l3::MAX_BINS),
        ),
        (
            args.patch_radius <= l3::MAX_PATCH_RADIUS,
            format!("--patch-radius must be from 0 to {}", l3::MAX_PATCH_RADIUS),
        ),
        (
            args.context_radius <= l3::MAX_CONTEXT_RADIUS,
            format!(
                "--context-radius must be from 0 to {}",
                l3::MAX_CONTEXT_RADIUS
            ),
        ),
    ];
    if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
        bail!("{msg}");
    }
    let datasets = args
        .data
        .iter()
        .map(|d| args.select.open(d))
        .collect::<Result<Vec<_>>>()?;
    let total: usize = datasets.iter().map(Dataset::len).sum();
    let bar = progress(total, "loading pairs");
    let pairs = train::load_pairs(&datasets, || bar.inc(1))?;
    bar.finish_and_clear();
    let opts = ClassicalOptions {
        degree: args.degree,
        stride: args.stride,
        l3: L3Config {
            levels: args.levels,
            contrasts: args.contrasts,
            contexts: args.contexts,
            patch_radius: args.patch_radius,
            context_radius: args.context_radius,
        },
    };
    let arch = match args.arch {
        TrainArch::Linear => Arch::Linear,
        TrainArch::L3 => Arch::L3,
    };
    let bar = progress(total, "fitting");
    let mut weights = train::fit_classical(arch, &pairs, &datasets, &opts, || bar.inc(1));
    bar.finish_and_clear();
    if let Some(val) = &args.val {
        let model = colorizer::from_weights(&weights)?;
        let ds = Dataset::open(val)?;
        let result = eval::evaluate(model.as_ref(), &ds, |_, _, _| {})?;
        println!(
            "validation on {}:\n{}",
            val.display(),
            eval::table(&result).lines().last().unwrap_or("")
        );
        weights.card["validation"] = serde_json::json!({"data": result.data, "mean": result.mean});
    }
    // The exact command, so the card says how to reproduce the file.
    let argv: Vec<String> = std::iter::once("nircolor".to_string())
        .chain(std::env::args().skip(1))
        .collect();
    weights.card["command"] = serde_json::json!(argv.join(" "));
    weights.save(&args.out)?;
    println!(
        "wrote {} ({} model fitted on {} pairs)",
        args.out.display(),
        arch.name(),
        total
    );
    Ok(())
}

fn run_check(file: &Path) -> Result<()> {
    let c = nircolor::config::Config::load(file)?;
    let m = &c.model;
    println!("{} is valid:", file.display());
    println!(
        "  model {} (device {}) at {}x size, batches of up to {} within {} ms; detail radius {}, eps {:e}",
        m.weights,
        format!("{:?}", m.device).to_lowercase(),
        m.scale,
        m.max_batch,
        m.max_wait.as_millis(),
        m.radius,
        m.eps
    );
    for cam in &c.cameras {
        let s = &cam.spec;
        print!(
            "  camera '{}': {}, {} {}x{} @ {} fps -> rtsp://{}:{}{}",
            s.id,
            s.source.describe(),
            s.format.caps_format(),
            s.width,
            s.height,
            s.fps,
            c.rtsp_bind,
            c.rtsp_port,
            cam.rtsp.mount
        );
        if let Some(r) = &cam.record {
            print!(
                ", recorded as .{} in {} every {} s",
                r.container.extension(),
                r.folder.display(),
                r.segment.as_secs()
            );
        }
        println!();
    }
    println!("  metrics on http://{}/metrics", c.metrics_bind);
    Ok(())
}

fn run_daemon(file: &Path) -> Result<()> {
    let config = nircolor::config::Config::load(file)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handlers")?;
    }
    let daemon = nircolor::daemon::Daemon::start(&config)
        .with_context(|| format!("starting {}", file.display()))?;
    for (cam, url) in config.cameras.iter().zip(daemon.urls()) {
        let recording = cam
            .record
            .as_ref()
            .map(|r| format!(", recording into {}", r.folder.display()))
            .unwrap_or_default();
        println!("camera '{}': watch {url}{recording}", cam.spec.id);
    }
    println!(
        "metrics: http://{0}/metrics, health: http://{0}/healthz",
        config.metrics_bind
    );
    println!("running; SIGTERM or Ctrl-C stops and finalises the recordings");
    let cameras = config.cameras.len();
    nircolor::notify::notify(&format!("READY=1\nSTATUS=serving {cameras} camera(s)"))
        .context("telling systemd the daemon is ready")?;
    // Keep-alives at half the watchdog interval, and only while frames flow (or no camera is
    // up to send any): a stalled pipeline stops them and systemd restarts the service.
    let watchdog = nircolor::notify::watchdog_interval().map(|i| i / 2);
    let mut last_ping = std::time::Instant::now();
    let mut last_encoded = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if let Some(every) = watchdog {
            if last_ping.elapsed() >= every {
                last_ping = std::time::Instant::now();
                let (encoded, any_up) = daemon.progress();
                if encoded > last_encoded || !any_up {
                    let _ = nircolor::notify::notify("WATCHDOG=1");
                } else {
                    tracing::warn!("no frame encoded for {every:?} while a camera is up; withholding the watchdog keep-alive");
                }
                last_encoded = encoded;
            }
        }
    }
    let _ = nircolor::notify::notify("STOPPING=1");
    let mut failed = false;
    for (cam, result) in config.cameras.iter().zip(daemon.shutdown()) {
        match result {
            Ok(frames) => println!("camera '{}': {frames} frames encoded", cam.spec.id),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some cameras did not finish cleanly");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Plain lines for journald and log files; colour only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Eval(a) => run_eval(a),
        Command::Colorize(a) => run_colorize(a),
        Command::Train(a) => run_train(a),
        Command::Bench(BenchCommand::Filter(a)) => run_bench_filter(a),
        Command::Check { config } => run_check(config),
        Command::Run { config } => run_daemon(config),
        Command::Devices => {
            print!("{}", nircolor::devices::report(&nircolor::devices::list()));
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line ("context: cause"), without a backtrace: users read it.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
