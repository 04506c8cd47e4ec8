//! The `nircolor` command line: evaluate, colorize, train, benchmark, calibrate and run the daemon.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use nircolor::calibrate::{self, Calibration, Flat};
use nircolor::detail::GuidedFilter;
use nircolor::images::planes::Rgb;
use nircolor::models::colorizer::{self, Colorizer, Post};
use nircolor::models::l3::L3Config;
use nircolor::models::net::NetArch;
use nircolor::offline::data::{self, Dataset};
use nircolor::offline::eval;
use nircolor::offline::report::Report;
use nircolor::offline::train::{self, Arch, ClassicalOptions};
use nircolor::offline::train_net::TrainOptions;

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
    /// Derive a camera's calibration file (calibration/*.toml).
    #[command(subcommand)]
    Calibrate(CalibrateCommand),
}

#[derive(Subcommand)]
enum CalibrateCommand {
    /// The flat field (lens and lighting fall-off) from frames of a uniformly lit target.
    Flat(FlatArgs),
    /// The output colour matrix from a NIR frame and a colour photo of the same view.
    Color(ColorArgs),
}

#[derive(Args)]
struct FlatArgs {
    /// A folder of frames of the target (PNG, JPEG or TIFF, 8 or 16 bit).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    folder: Option<PathBuf>,
    /// Capture the frames from a camera of this pipeline configuration instead (with --camera).
    #[arg(long, requires = "camera")]
    config: Option<PathBuf>,
    /// The camera id in --config.
    #[arg(long, requires = "config")]
    camera: Option<String>,
    /// Frames to average when capturing from a camera.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    frames: u32,
    /// A folder of frames taken with the lens capped: their mean becomes black_level (otherwise
    /// the file's black_level, or 0).
    #[arg(long)]
    dark: Option<PathBuf>,
    /// Degree of the fitted polynomial.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=8))]
    degree: u32,
    /// Store the smoothed mean frame as a 16-bit PNG beside the file instead of a polynomial
    /// (for fall-off a polynomial cannot follow).
    #[arg(long)]
    image: bool,
    /// The calibration file to write, or to update (its other keys are kept).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ColorArgs {
    /// A NIR frame from the camera.
    #[arg(long)]
    nir: PathBuf,
    /// A colour photo of the same view (same framing; it is resized to the NIR frame).
    #[arg(long)]
    reference: PathBuf,
    /// The model the camera's pipeline runs (a weights file or a built-in).
    #[arg(long, default_value = "default")]
    model: String,
    /// Fit white-balance gains only (a diagonal matrix) instead of a full 3x3 matrix.
    #[arg(long)]
    gains_only: bool,
    /// The calibration file to write, or to update: its NIR correction is applied to the frame
    /// before the model, as the daemon does.
    #[arg(long)]
    out: PathBuf,
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
    /// ColorNet's BFWLS: the NIR's detail (minus its bilateral and WLS bases) added to the WLS
    /// base of the output's luma, chroma kept. For offline work: about 1.5 s per 1024x680 image.
    Bfwls,
}

#[derive(Args)]
struct ModelArgs {
    /// A weights file, or a built-in colorizer: default (the real-time network), identity,
    /// linear, l3.
    #[arg(long, default_value = "default")]
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
            PostArg::Bfwls => Post::Bfwls(nircolor::detail::bfwls::Bfwls::default()),
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TrainArch {
    /// Classical: a per-pixel polynomial of the NIR (least squares).
    Linear,
    /// Classical: local, linear, learned filters per pixel class (least squares).
    L3,
    /// Network, the real-time default: reduced inference size + fast guided filter.
    Fast,
    /// Network: the plain U-Net baseline, full resolution.
    Unet,
    /// Network: grayscale-assisted two-stage (NIR -> gray -> RGB) with frequency learning.
    Ring,
    /// Network: shared encoder, gray and RGB decoders, gradient and cross-branch losses.
    Twobranch,
    /// Network: residual asymmetric encoder, global + local fusion, bilinear decoder.
    Colornet,
    /// Network, the quality model: 4x the default's inference pixels, residual levels.
    Hq,
}

impl TrainArch {
    fn net(self) -> Option<NetArch> {
        match self {
            TrainArch::Linear | TrainArch::L3 => None,
            TrainArch::Fast => Some(NetArch::Fast),
            TrainArch::Unet => Some(NetArch::Unet),
            TrainArch::Ring => Some(NetArch::Ring),
            TrainArch::Twobranch => Some(NetArch::Twobranch),
            TrainArch::Colornet => Some(NetArch::Colornet),
            TrainArch::Hq => Some(NetArch::Hq),
        }
    }
}

/// Options of the networks (ignored by linear and l3).
#[derive(Args)]
struct NetTrainArgs {
    /// Where the networks run: auto picks CUDA when a device is usable.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    device: String,
    /// Train for this many epochs.
    #[arg(long, conflicts_with = "minutes")]
    epochs: Option<usize>,
    /// Train for about this many minutes instead (the epoch count is fixed after the first).
    #[arg(long)]
    minutes: Option<f64>,
    /// Continue the run saved in this checkpoint (written beside --out every epoch).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from these weights (fine-tuning, e.g. models/default.safetensors).
    #[arg(long)]
    init: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    #[arg(long, default_value_t = TrainOptions::default().batch)]
    batch: usize,
    /// Side of the square training crops.
    #[arg(long, default_value_t = TrainOptions::default().crop)]
    crop: usize,
    /// Smallest zoom of the multi-scale crops, in (0, 1].
    #[arg(long, default_value_t = TrainOptions::default().min_zoom)]
    min_zoom: f64,
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    lr: f64,
    /// Channels of the first level (the network's width).
    #[arg(long)]
    width: Option<i64>,
    /// Inference size as a factor of the frame (fast: 0.5 by default).
    #[arg(long)]
    scale: Option<f64>,
    /// Restore full size by bilinear upsampling instead of the fast guided filter (ablation).
    #[arg(long)]
    no_guided: bool,
    /// fast: predict RGB directly instead of luminance + chroma (ablation).
    #[arg(long)]
    direct: bool,
    /// fast: batch normalisation after each convolution.
    #[arg(long)]
    norm: bool,
    /// Guided filter radius (full-resolution pixels) and eps the network trains through.
    #[arg(long, default_value_t = 8)]
    detail_radius: usize,
    #[arg(long, default_value_t = 1e-4)]
    detail_eps: f64,
    /// Loss weights.
    #[arg(long, default_value_t = TrainOptions::default().w_l1)]
    w_l1: f64,
    /// Mean squared error (what PSNR scores); 0 turns it off.
    #[arg(long, default_value_t = TrainOptions::default().w_l2)]
    w_l2: f64,
    #[arg(long, default_value_t = TrainOptions::default().w_ssim)]
    w_ssim: f64,
    /// Frequency (FFT amplitude and phase) loss; 0 turns it off.
    #[arg(long, default_value_t = TrainOptions::default().w_freq)]
    w_freq: f64,
    /// Colourfulness: chroma magnitude in 8x8 blocks against the truth's (against pale output).
    #[arg(long, default_value_t = TrainOptions::default().w_sat)]
    w_sat: f64,
    /// Chroma: L1 on the BT.601 Cb and Cr planes, so colour gets gradient of its own beside
    /// the luminance that dominates an RGB loss.
    #[arg(long, default_value_t = TrainOptions::default().w_chroma)]
    w_chroma: f64,
    /// Gray (luminance) branch loss.
    #[arg(long, default_value_t = TrainOptions::default().w_gray)]
    w_gray: f64,
    /// twobranch: gradient loss with the learned NIR-to-gray scale map.
    #[arg(long, default_value_t = TrainOptions::default().w_grad)]
    w_grad: f64,
    /// twobranch: SSIM cross-branch loss.
    #[arg(long, default_value_t = TrainOptions::default().w_cross)]
    w_cross: f64,
    /// NIR exposure jitter: gain in [1-G, 1+G] (cameras differ in exposure).
    #[arg(long, default_value_t = TrainOptions::default().jitter_gain)]
    jitter_gain: f64,
    /// NIR gamma jitter: gamma in [1/(1+Y), 1+Y].
    #[arg(long, default_value_t = TrainOptions::default().jitter_gamma)]
    jitter_gamma: f64,
    /// NIR noise: Gaussian sigma up to N (on [0,1]).
    #[arg(long, default_value_t = TrainOptions::default().jitter_noise)]
    jitter_noise: f64,
    /// Validate and save an exponential moving average of the weights with this decay per
    /// step (e.g. 0.999); 0 keeps the raw weights.
    #[arg(long, default_value_t = TrainOptions::default().ema)]
    ema: f64,
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
    #[command(flatten)]
    net: Box<NetTrainArgs>,
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
    /// A model's whole path (shrink, network, detail) per frame, beside the unet arch.
    Model(ModelBenchArgs),
    /// The whole daemon on live test cameras: frames out, drops, capture-to-encoded latency.
    Pipeline(PipelineBenchArgs),
}

#[derive(Args)]
struct PipelineBenchArgs {
    /// Seconds each case runs (after a 3 s warm-up that is not counted).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Cases as WIDTHxHEIGHTxCAMERAS, comma-separated.
    #[arg(long, default_value = "640x480x1,1280x720x1,640x480x2,640x480x4")]
    cases: String,
    /// A weights file or built-in colorizer.
    #[arg(long, default_value = "default")]
    model: String,
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

#[derive(Args)]
struct ModelBenchArgs {
    /// A weights file or built-in colorizer.
    #[arg(long, default_value = "default")]
    model: String,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    size: String,
    /// Timed frames of the model.
    #[arg(long, default_value_t = 200)]
    frames: usize,
    /// Timed frames of the full-resolution unet baseline (slow on a CPU); 0 skips it.
    #[arg(long, default_value_t = 20)]
    baseline_frames: usize,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
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
    print!("{}\n{}", eval::table(&result), eval::error_split(&result));
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

/// The `--data` folders and every selected pair in them, loaded with a progress bar.
fn load_training_pairs(args: &TrainArgs) -> Result<(Vec<Dataset>, Vec<data::Pair>)> {
    let datasets = args
        .data
        .iter()
        .map(|d| args.select.open(d))
        .collect::<Result<Vec<_>>>()?;
    let total: usize = datasets.iter().map(Dataset::len).sum();
    let bar = progress(total, "loading pairs");
    let pairs = train::load_pairs(&datasets, || bar.inc(1))?;
    bar.finish_and_clear();
    Ok((datasets, pairs))
}

fn run_train(args: &TrainArgs) -> Result<()> {
    if let Some(arch) = args.arch.net() {
        return run_train_net(args, arch);
    }
    // The bounds the weights loaders enforce, checked before minutes of fitting.
    use nircolor::models::{l3, linear};
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
    let (datasets, pairs) = load_training_pairs(args)?;
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
        _ => unreachable!("networks are trained by run_train_net"),
    };
    let total = pairs.len();
    let bar = progress(total, "fitting");
    let mut weights = train::fit_classical(arch, &pairs, &datasets, &opts, || bar.inc(1));
    bar.finish_and_clear();
    if let Some(val) = &args.val {
        validate_into_card(&mut weights, val)?;
    }
    weights.card["command"] = serde_json::json!(command_line());
    weights.save(&args.out)?;
    println!(
        "wrote {} ({} model fitted on {} pairs)",
        args.out.display(),
        arch.name(),
        total
    );
    Ok(())
}

/// The exact command line, so a model card says how to reproduce its file.
fn command_line() -> String {
    std::iter::once("nircolor".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scores `weights` on the paired folder `val`, prints the mean row, and records the scores in
/// the model card.
fn validate_into_card(weights: &mut nircolor::models::weights::Weights, val: &Path) -> Result<()> {
    let model = colorizer::from_weights(weights)?;
    let ds = Dataset::open(val)?;
    let result = eval::evaluate(model.as_ref(), &ds, |_, _, _| {})?;
    print!(
        "validation on {}:\n{}\n{}",
        val.display(),
        eval::table(&result).lines().last().unwrap_or(""),
        eval::error_split(&result)
    );
    weights.card["validation"] = serde_json::json!({"data": result.data, "mean": result.mean});
    Ok(())
}

/// Applies `--threads` to libtorch.
fn set_threads(threads: Option<i32>) -> Result<()> {
    if let Some(t) = threads {
        if t < 1 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(t);
    }
    Ok(())
}

fn run_check(file: &Path) -> Result<()> {
    let c = nircolor::daemon::config::Config::load(file)?;
    let m = &c.model;
    println!("{} is valid:", file.display());
    println!(
        "  model {} (device {}) at {} size, batches of up to {} within {} ms; detail radius {}, eps {:e}",
        m.weights,
        format!("{:?}", m.device).to_lowercase(),
        m.scale
            .map_or("the model's own inference".to_string(), |s| format!("{s}x")),
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
        if let Some(cal) = &cam.calibration {
            print!(", calibration {}", cal.file.display());
        }
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

/// The calibration already in `path`, or none when the file does not exist yet.
fn existing_calibration(path: &Path) -> Result<Calibration> {
    Ok(if path.exists() {
        Calibration::load(path)?
    } else {
        Calibration::identity(path)
    })
}

fn run_calibrate_flat(args: &FlatArgs) -> Result<()> {
    let existing = existing_calibration(&args.out)?;
    let (frames, from) = match (&args.folder, &args.config, &args.camera) {
        (Some(folder), _, _) => (
            calibrate::frames_from_folder(folder)?,
            folder.display().to_string(),
        ),
        (None, Some(config), Some(id)) => {
            let config = nircolor::daemon::config::Config::load(config)?;
            let cam = config
                .cameras
                .iter()
                .find(|c| &c.spec.id == id)
                .with_context(|| {
                    format!(
                        "{} has no camera '{id}'; its cameras: {}",
                        config.file.display(),
                        config
                            .cameras
                            .iter()
                            .map(|c| c.spec.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            println!(
                "capturing {} frames from camera '{id}' ({})",
                args.frames,
                cam.spec.source.describe()
            );
            let frames = calibrate::frames_from_camera(
                &cam.spec,
                args.frames as usize,
                5,
                Duration::from_secs(20 + u64::from(args.frames / cam.spec.fps.max(1))),
            )?;
            (frames, format!("camera '{id}'"))
        }
        _ => bail!("give --folder, or --config with --camera"),
    };
    let mean = calibrate::mean_frame(&frames);
    let black = match &args.dark {
        Some(dir) => {
            let dark = calibrate::frames_from_folder(dir)?;
            let d = calibrate::mean_frame(&dark);
            if (d.width, d.height) != (mean.width, mean.height) {
                bail!(
                    "the dark frames in {} are {}x{}, the flat frames {}x{}; take both with one camera mode",
                    dir.display(),
                    d.width,
                    d.height,
                    mean.width,
                    mean.height
                );
            }
            let level = d.data.iter().sum::<f32>() / d.data.len() as f32;
            if level > 0.5 {
                bail!(
                    "the dark frames in {} average {level:.3} of full scale; with the lens capped they should be near 0",
                    dir.display()
                );
            }
            level
        }
        None => existing.black_level,
    };
    let mut flat_table = toml::Table::new();
    let summary = if args.image {
        let image = calibrate::flat_image(&mean, black)?;
        let stem = args
            .out
            .file_stem()
            .context("--out has no file name")?
            .to_string_lossy()
            .to_string();
        let name = format!("{stem}-flat.png");
        let path = args.out.with_file_name(&name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let raw: Vec<u16> = image
            .data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
            .collect();
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(
            image.width as u32,
            image.height as u32,
            raw,
        )
        .context("flat image buffer")?
        .save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
        flat_table.insert("image".into(), toml::Value::String(name));
        let low = image.data.iter().copied().fold(f32::MAX, f32::min);
        format!(
            "flat field image {} (darkest point at {:.0}% of the brightest)",
            path.display(),
            low * 100.0
        )
    } else {
        let fit = calibrate::fit_flat(&mean, black, args.degree)?;
        let Flat::Poly {
            degree,
            coefficients,
        } = &fit.flat
        else {
            unreachable!("fit_flat returns a polynomial")
        };
        flat_table.insert("degree".into(), toml::Value::Integer(i64::from(*degree)));
        flat_table.insert(
            "coefficients".into(),
            toml::Value::Array(
                coefficients
                    .iter()
                    .map(|&c| toml::Value::Float(f64::from(c)))
                    .collect(),
            ),
        );
        format!(
            "flat field: degree {degree} polynomial, residual {:.2}% rms, darkest point at {:.0}% of the brightest",
            fit.rms * 100.0,
            fit.falloff * 100.0
        )
    };
    calibrate::update_file(&args.out, |t| {
        t.insert("flat".into(), toml::Value::Table(flat_table));
        if args.dark.is_some() {
            t.insert("black_level".into(), toml::Value::Float(f64::from(black)));
        }
    })?;
    println!(
        "{} frame(s) of {}x{} from {from}, black level {black:.4}",
        frames.len(),
        mean.width,
        mean.height
    );
    println!("{summary}");
    println!("wrote {}", args.out.display());
    Ok(())
}

fn run_calibrate_color(args: &ColorArgs) -> Result<()> {
    let existing = existing_calibration(&args.out)?;
    let mut nir = data::read_nir(&args.nir)?;
    existing.prepare(nir.width, nir.height)?.nir(&mut nir);
    let reference = Rgb::from_rgb8(&data::read_rgb(&args.reference)?);
    let model =
        colorizer::load(&args.model).with_context(|| format!("loading model '{}'", args.model))?;
    let output = model.colorize(&nir);
    let fit = calibrate::fit_color(&output, &reference, args.gains_only)?;
    let m = fit.matrix;
    calibrate::update_file(&args.out, |t| {
        let mut color = toml::Table::new();
        let num = |v: f32| toml::Value::Float((f64::from(v) * 1e4).round() / 1e4);
        if args.gains_only {
            color.insert(
                "gains".into(),
                toml::Value::Array((0..3).map(|i| num(m[i][i])).collect()),
            );
        } else {
            color.insert(
                "matrix".into(),
                toml::Value::Array(
                    m.iter()
                        .map(|row| toml::Value::Array(row.iter().map(|&v| num(v)).collect()))
                        .collect(),
                ),
            );
        }
        t.insert("color".into(), toml::Value::Table(color));
    })?;
    println!(
        "{} fit on {} pixels with {}: RMS error {:.1} -> {:.1} (0-255)",
        if args.gains_only {
            "white-balance gains"
        } else {
            "colour matrix"
        },
        fit.pixels,
        model.name(),
        fit.rmse_before,
        fit.rmse_after
    );
    for row in m {
        println!("  [{:7.4} {:7.4} {:7.4}]", row[0], row[1], row[2]);
    }
    if fit.rmse_after > 0.97 * fit.rmse_before {
        println!("note: the correction barely helps on this pair; is the reference the same view?");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

fn run_daemon(file: &Path) -> Result<()> {
    let config = nircolor::daemon::config::Config::load(file)?;
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
    nircolor::runtime::notify::notify(&format!("READY=1\nSTATUS=serving {cameras} camera(s)"))
        .context("telling systemd the daemon is ready")?;
    // Keep-alives at half the watchdog interval, and only while frames flow (or no camera is
    // up to send any): a stalled pipeline stops them and systemd restarts the service.
    let mut watchdog = nircolor::runtime::notify::watchdog_interval()
        .map(|i| nircolor::runtime::notify::Watchdog::new(i / 2, std::time::Instant::now()));
    let mut fatal = None;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if daemon.all_finished() {
            println!("every source has ended; finishing the recordings");
            break;
        }
        if let Some((id, why)) = daemon.failed_camera() {
            fatal = Some(format!("camera '{id}' failed and has retry = false: {why}"));
            break;
        }
        if let Some(w) = watchdog.as_mut() {
            let (encoded, any_up) = daemon.progress();
            match w.tick(std::time::Instant::now(), encoded, any_up) {
                Some(true) => {
                    let _ = nircolor::runtime::notify::notify("WATCHDOG=1");
                }
                Some(false) => tracing::warn!(
                    "no frame encoded since the last keep-alive while a camera is up; withholding the watchdog keep-alive"
                ),
                None => {}
            }
        }
    }
    let _ = nircolor::runtime::notify::notify("STOPPING=1");
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
    if let Some(why) = fatal {
        bail!("{why}");
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
        Command::Bench(BenchCommand::Model(a)) => run_bench_model(a),
        Command::Bench(BenchCommand::Pipeline(a)) => run_bench_pipeline(a),
        Command::Check { config } => run_check(config),
        Command::Calibrate(CalibrateCommand::Flat(a)) => run_calibrate_flat(a),
        Command::Calibrate(CalibrateCommand::Color(a)) => run_calibrate_color(a),
        Command::Run { config } => run_daemon(config),
        Command::Devices => {
            print!(
                "{}",
                nircolor::capture::devices::report(&nircolor::capture::devices::list())
            );
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

/// `nircolor train` for the networks: load, train with a progress bar, checkpoint, card.
fn run_train_net(args: &TrainArgs, arch: NetArch) -> Result<()> {
    use nircolor::models::weights::Weights;
    use nircolor::offline::train_net::{self as tn, Event, Finish, Trainer};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let n = &args.net;
    set_threads(n.threads)?;
    let device = nircolor::models::net::pick_device(&n.device).map_err(anyhow::Error::msg)?;
    let options = TrainOptions {
        epochs: n.epochs.unwrap_or(TrainOptions::default().epochs),
        minutes: n.minutes,
        batch: n.batch,
        crop: n.crop,
        min_zoom: n.min_zoom,
        lr: n.lr,
        seed: n.seed,
        w_l1: n.w_l1,
        w_l2: n.w_l2,
        w_ssim: n.w_ssim,
        w_freq: n.w_freq,
        w_sat: n.w_sat,
        w_chroma: n.w_chroma,
        w_gray: n.w_gray,
        w_grad: n.w_grad,
        w_cross: n.w_cross,
        jitter_gain: n.jitter_gain,
        jitter_gamma: n.jitter_gamma,
        jitter_noise: n.jitter_noise,
        ema: n.ema,
    };
    let checks = [
        (options.batch >= 1, "--batch must be at least 1"),
        (options.crop >= 16, "--crop must be at least 16"),
        (
            options.min_zoom > 0.0 && options.min_zoom <= 1.0,
            "--min-zoom must be in (0, 1]",
        ),
        (
            options.lr > 0.0 && options.lr.is_finite(),
            "--lr must be a positive number",
        ),
        (options.epochs >= 1, "--epochs must be at least 1"),
        (
            (0.0..1.0).contains(&options.ema),
            "--ema must be in [0, 1) (0 turns the average off; 0.999 is typical)",
        ),
        (
            [
                options.w_l1,
                options.w_l2,
                options.w_ssim,
                options.w_freq,
                options.w_sat,
                options.w_chroma,
                options.w_gray,
                options.w_grad,
                options.w_cross,
            ]
            .iter()
            .all(|w| *w >= 0.0 && w.is_finite()),
            "loss weights (--w-*) must be 0 or positive",
        ),
        (
            (0.0..1.0).contains(&options.jitter_gain)
                && (0.0..=4.0).contains(&options.jitter_gamma)
                && (0.0..=0.5).contains(&options.jitter_noise),
            "--jitter-gain must be in [0, 1), --jitter-gamma in [0, 4], --jitter-noise in [0, 0.5]",
        ),
        (
            options.minutes.is_none_or(|m| m > 0.0 && m.is_finite()),
            "--minutes must be a positive number",
        ),
    ];
    if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
        bail!("{msg}");
    }
    let init = n
        .init
        .as_ref()
        .map(|p| Weights::load(p).with_context(|| format!("loading --init {}", p.display())))
        .transpose()?;
    let mut cfg = match &init {
        // Fine-tuning keeps the network's shape; its card says what that is.
        Some(w) => nircolor::models::net::Model::from_weights(w, tch::Device::Cpu)?.cfg,
        None => arch.default_config(),
    };
    if init.as_ref().is_some_and(|_| cfg.arch != arch) {
        bail!(
            "--init holds a '{}' network but --arch is '{}'",
            cfg.arch.name(),
            arch.name()
        );
    }
    if init.is_none() {
        if let Some(w) = n.width {
            cfg.width = w;
        }
        if let Some(s) = n.scale {
            cfg.scale = s;
        }
        cfg.guided = !n.no_guided;
        cfg.decoupled = !n.direct;
        // hq normalises by default; --norm turns it on for the others.
        cfg.norm = n.norm || cfg.norm;
        cfg.detail_radius = n.detail_radius;
        cfg.detail_eps = n.detail_eps;
    }
    cfg.check()
        .map_err(|e| anyhow::anyhow!("invalid network options: {e}"))?;

    let (datasets, pairs) = load_training_pairs(args)?;
    let val = match &args.val {
        Some(v) => {
            let ds = Dataset::open(v)?;
            train::load_pairs(&[ds], || {})?
        }
        None => Vec::new(),
    };

    let ckpt = tn::checkpoint_path(&args.out);
    let mut trainer = match &n.resume {
        Some(file) => {
            let mut t = Trainer::resume(file, &pairs, device)
                .with_context(|| format!("resuming from {}", file.display()))?;
            // --epochs on a resumed run re-plans it (to extend or shorten the schedule).
            if let Some(e) = n.epochs {
                t.set_epochs(e);
            }
            t
        }
        None => Trainer::new(cfg, options, &pairs, device, init.as_ref())?,
    };
    trainer.command = command_line();
    trainer.data_card = train::data_card(&datasets);
    let m = &trainer.model;
    println!(
        "training {} ({} parameters, {:.3} GFLOPs per 640x480 frame) on {} pairs, {}; checkpoint {}",
        m.cfg.arch.name(),
        m.parameters(),
        m.gflops(640, 480),
        pairs.len(),
        nircolor::runtime::cuda::describe(),
        ckpt.display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} {elapsed_precise} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut last_val = String::from("-");
    let mut smooth: Option<f64> = None;
    let finish = trainer.run(&val, &ckpt, &stop, |ev| match ev {
        Event::Step {
            epoch,
            planned,
            pos,
            of,
            loss,
        } => {
            let planned = planned.unwrap_or(0);
            let steps = (planned.max(epoch)) as u64 * of as u64;
            bar.set_length(steps);
            bar.set_position((epoch as u64 - 1) * of as u64 + pos as u64);
            bar.set_prefix(if planned > 0 {
                format!("{epoch}/{planned}")
            } else {
                format!("{epoch}/?")
            });
            let s = smooth.map_or(loss, |s| 0.95 * s + 0.05 * loss);
            smooth = Some(s);
            bar.set_message(format!("loss {s:.4} val {last_val}"));
        }
        Event::Epoch(log) => {
            if let Some(p) = log.val_psnr {
                last_val = format!("{p:.2} dB");
            }
            let line = format!(
                "epoch {}: loss {:.4}, val PSNR {}, {:.0} s",
                log.epoch, log.loss, last_val, log.seconds
            );
            // Without a terminal (CI, journald, a log file) the bar is hidden; the epoch lines
            // still belong in the log.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
    });
    bar.finish_and_clear();
    let history = trainer.history().to_vec();
    if !history.is_empty() {
        let curve = tn::curve_path(&args.out);
        nircolor::offline::curve::write(&history, &curve)
            .with_context(|| format!("writing {}", curve.display()))?;
    }
    match finish? {
        Finish::Interrupted => {
            println!(
                "interrupted: checkpoint saved to {}; continue with --resume {}",
                ckpt.display(),
                ckpt.display()
            );
            return Ok(());
        }
        Finish::Done => {}
    }
    let mut weights = trainer.weights();
    if let Some(val) = &args.val {
        validate_into_card(&mut weights, val)?;
    }
    weights.save(&args.out)?;
    println!(
        "wrote {} ({} epochs; curve {})",
        args.out.display(),
        history.len(),
        tn::curve_path(&args.out).display()
    );
    Ok(())
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let parsed = s
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 && w <= 8192 && h <= 8192 => Ok((w, h)),
        _ => bail!("size '{s}' is not WIDTHxHEIGHT with sides from 1 to 8192, e.g. 640x480"),
    }
}

fn run_bench_model(args: &ModelBenchArgs) -> Result<()> {
    use nircolor::images::planes::Gray;
    use nircolor::models::net::{colorize::NetColorizer, Model};
    use nircolor::offline::bench::{self, ModelTiming};

    set_threads(args.threads)?;
    let (w, h) = parse_size(&args.size)?;
    let nir = Gray::new(w, h, bench::test_images(w, h).0);
    let model =
        colorizer::load(&args.model).with_context(|| format!("loading model '{}'", args.model))?;
    let inference = match colorizer::load_bare(&args.model, tch::Device::Cpu) {
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
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run_bench_pipeline(args: &PipelineBenchArgs) -> Result<()> {
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
    println!("| frame | cameras | fps out per camera (min) | dropped | capture-to-encoded p50 / p99 / max ms |");
    println!("|---|---|---|---|---|");
    for (w, h, n) in cases {
        let dir = tempfile_dir()?;
        let mut toml = format!(
            "[model]\nweights = \"{}\"\nmax_batch = {n}\nmax_wait_ms = 5\n[rtsp]\nport = {}\n[metrics]\nbind = \"127.0.0.1:{}\"\n",
            args.model,
            free_port()?,
            free_port()?
        );
        for i in 0..n {
            toml += &format!(
                "[[camera]]\nid = \"cam{i}\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\nformat = \"GRAY8\"\nwidth = {w}\nheight = {h}\nfps = {}\nrecord = {{ folder = \"rec{i}\", segment_seconds = 60, container = \"mkv\" }}\n",
                args.fps
            );
        }
        let file = dir.join("bench.toml");
        std::fs::write(&file, toml)?;
        let config = nircolor::daemon::config::Config::load(&file)?;
        let daemon = nircolor::daemon::Daemon::start(&config)?;
        std::thread::sleep(std::time::Duration::from_secs(3));
        let t = daemon.telemetry().clone();
        let start: Vec<(u64, u64)> = t
            .cameras
            .iter()
            .map(|c| {
                (
                    c.encode.frames.load(Ordering::Relaxed),
                    (c.capture_drops)() + (c.colour_drops)(),
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
        for (c, (f0, d0)) in t.cameras.iter().zip(&start) {
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
            "| {w}x{h} | {n} | {fps_min:.1} | {dropped} | {:.1} / {:.1} / {:.1} |",
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
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
