//! `nircolor train`: fit a classical model or train a network, with a progress bar and checkpoints.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use nircolor::models::l3::L3Config;
use nircolor::models::net::NetArch;
use nircolor::offline::data::{self, Dataset};
use nircolor::offline::eval;
use nircolor::offline::train::{self, Arch, ClassicalOptions};
use nircolor::offline::train_net::TrainOptions;

use super::{command_line, progress, set_threads, SelectArgs};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TrainArch {
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
    /// Network, the reproduction of DCT-RCAN: residual channel-attention groups on 4x4 DCT
    /// coefficients, at a quarter of the resolution.
    Dct,
}

impl TrainArch {
    pub(crate) fn net(self) -> Option<NetArch> {
        match self {
            TrainArch::Linear | TrainArch::L3 => None,
            TrainArch::Fast => Some(NetArch::Fast),
            TrainArch::Unet => Some(NetArch::Unet),
            TrainArch::Ring => Some(NetArch::Ring),
            TrainArch::Twobranch => Some(NetArch::Twobranch),
            TrainArch::Colornet => Some(NetArch::Colornet),
            TrainArch::Hq => Some(NetArch::Hq),
            TrainArch::Dct => Some(NetArch::Dct),
        }
    }
}

/// Options of the networks (ignored by linear and l3).
#[derive(Args)]
pub(crate) struct NetTrainArgs {
    /// Where the networks run: auto picks CUDA when a device is usable.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    pub(crate) device: String,
    /// Train for this many epochs.
    #[arg(long, conflicts_with = "minutes")]
    pub(crate) epochs: Option<usize>,
    /// Train for about this many minutes instead (the epoch count is fixed after the third).
    #[arg(long)]
    pub(crate) minutes: Option<f64>,
    /// Write the checkpoint every this many epochs (and at the end or when stopped).
    #[arg(long, default_value_t = 1)]
    pub(crate) checkpoint_every: usize,
    /// Continue the run saved in this checkpoint (written beside --out every epoch). The run
    /// keeps its own options: only --epochs, --keep-best and --checkpoint-every may change.
    #[arg(long, conflicts_with = "init")]
    pub(crate) resume: Option<PathBuf>,
    /// Start from these weights (fine-tuning, e.g. models/default.safetensors).
    #[arg(long)]
    pub(crate) init: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<i32>,
    #[arg(long, default_value_t = TrainOptions::default().batch)]
    pub(crate) batch: usize,
    /// Side of the square training crops.
    #[arg(long, default_value_t = TrainOptions::default().crop)]
    pub(crate) crop: usize,
    /// Smallest zoom of the multi-scale crops, in (0, 1].
    #[arg(long, default_value_t = TrainOptions::default().min_zoom)]
    pub(crate) min_zoom: f64,
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    pub(crate) lr: f64,
    /// Channels of the first level (the network's width).
    #[arg(long)]
    pub(crate) width: Option<i64>,
    /// dct: residual groups (default 4; the published RCAN has 10).
    #[arg(long)]
    pub(crate) groups: Option<usize>,
    /// dct: channel-attention blocks per group (default 8; the published RCAN has 20).
    #[arg(long)]
    pub(crate) blocks: Option<usize>,
    /// A cap on the network's input in pixels, whatever --scale says (fast: 19200, 160x120
    /// of a 640x480 frame; hq and dct: 76800; 0 for none). Not part of the weights' shape.
    #[arg(long)]
    pub(crate) max_pixels: Option<usize>,
    /// Inference size as a factor of the frame (fast: 0.5 by default).
    #[arg(long)]
    pub(crate) scale: Option<f64>,
    /// Restore full size by bilinear upsampling instead of the fast guided filter (ablation).
    #[arg(long)]
    pub(crate) no_guided: bool,
    /// fast: predict RGB directly instead of luminance + chroma (ablation).
    #[arg(long)]
    pub(crate) direct: bool,
    /// fast: batch normalisation after each convolution.
    #[arg(long)]
    pub(crate) norm: bool,
    /// Guided filter radius (full-resolution pixels) and eps the network trains through.
    #[arg(long, default_value_t = nircolor::detail::NET_RADIUS)]
    pub(crate) detail_radius: usize,
    #[arg(long, default_value_t = nircolor::detail::NET_EPS)]
    pub(crate) detail_eps: f64,
    /// Loss weights.
    #[arg(long, default_value_t = TrainOptions::default().w_l1)]
    pub(crate) w_l1: f64,
    /// Mean squared error (what PSNR scores); 0 turns it off.
    #[arg(long, default_value_t = TrainOptions::default().w_l2)]
    pub(crate) w_l2: f64,
    #[arg(long, default_value_t = TrainOptions::default().w_ssim)]
    pub(crate) w_ssim: f64,
    /// Frequency (FFT amplitude and phase) loss; 0 turns it off.
    #[arg(long, default_value_t = TrainOptions::default().w_freq)]
    pub(crate) w_freq: f64,
    /// Colourfulness: chroma magnitude in 8x8 blocks against the truth's (against pale output).
    #[arg(long, default_value_t = TrainOptions::default().w_sat)]
    pub(crate) w_sat: f64,
    /// Chroma: L1 on the BT.601 Cb and Cr planes, so colour gets gradient of its own beside
    /// the luminance that dominates an RGB loss.
    #[arg(long, default_value_t = TrainOptions::default().w_chroma)]
    pub(crate) w_chroma: f64,
    /// fast, hq: predict chroma as a distribution over a K x K grid of Cb, Cr bins, trained
    /// with class rebalancing, instead of regressing it (which pulls ambiguous colours to
    /// gray). With --init, adds the bins to a trained network (the rest is kept).
    #[arg(long, value_name = "K")]
    pub(crate) chroma_bins: Option<i64>,
    /// The temperature that turns the bins into one colour: 1 the mean (pale), lower values
    /// a more vivid, likelier colour.
    #[arg(long, value_name = "T")]
    pub(crate) chroma_temperature: Option<f64>,
    /// The binned chroma's class-rebalanced cross-entropy.
    #[arg(long, default_value_t = TrainOptions::default().w_bins)]
    pub(crate) w_bins: f64,
    /// Gray (luminance) branch loss.
    #[arg(long, default_value_t = TrainOptions::default().w_gray)]
    pub(crate) w_gray: f64,
    /// twobranch: gradient loss with the learned NIR-to-gray scale map.
    #[arg(long, default_value_t = TrainOptions::default().w_grad)]
    pub(crate) w_grad: f64,
    /// twobranch: SSIM cross-branch loss.
    #[arg(long, default_value_t = TrainOptions::default().w_cross)]
    pub(crate) w_cross: f64,
    /// NIR exposure jitter: gain in [1-G, 1+G] (cameras differ in exposure).
    #[arg(long, default_value_t = TrainOptions::default().jitter_gain)]
    pub(crate) jitter_gain: f64,
    /// NIR gamma jitter: gamma in [1/(1+Y), 1+Y].
    #[arg(long, default_value_t = TrainOptions::default().jitter_gamma)]
    pub(crate) jitter_gamma: f64,
    /// NIR noise: Gaussian sigma up to N (on [0, 1]).
    #[arg(long, default_value_t = TrainOptions::default().jitter_noise)]
    pub(crate) jitter_noise: f64,
    /// Validate and save an exponential moving average of the weights with this decay per
    /// step (e.g. 0.999); 0 keeps the raw weights.
    #[arg(long, default_value_t = TrainOptions::default().ema)]
    pub(crate) ema: f64,
    /// Distil from this network's weights (e.g. an `hq` model): the student also learns the
    /// teacher's output on every augmented crop. A resumed run reloads it.
    #[arg(long)]
    pub(crate) teacher: Option<PathBuf>,
    /// Weight of the teacher's output in the loss (with --teacher).
    #[arg(long, default_value_t = 1.0, requires = "teacher")]
    pub(crate) w_teacher: f64,
    /// Weight of the teacher's chroma alone (Cb, Cr L1; with --teacher): learn the colour from
    /// the teacher and the luminance from the truth.
    #[arg(long, default_value_t = 0.0, requires = "teacher")]
    pub(crate) w_teacher_chroma: f64,
    /// A second teacher for the luminance alone, e.g. the network given to --init, so that
    /// learning a teacher's colour does not cost the luminance it had. A resumed run reloads it.
    #[arg(long)]
    pub(crate) luma_teacher: Option<PathBuf>,
    /// Weight of the luma teacher's luminance (L1) in the loss (with --luma-teacher).
    #[arg(long, default_value_t = 1.0, requires = "luma_teacher")]
    pub(crate) w_luma_teacher: f64,
    /// Write the weights of the epoch with the best validation PSNR (with --val) instead of
    /// the last: early stopping, for fine-tunes that peak before their schedule ends.
    #[arg(long)]
    pub(crate) keep_best: bool,
    /// Store the final weights as F16 where they fit (half the file; checkpoints stay F32).
    #[arg(long)]
    pub(crate) half: bool,
    /// Compute the layers in bf16 (f32 master weights, f32 losses): about twice fp32's speed
    /// on CPUs with AVX-512 BF16 or AMX.
    #[arg(long)]
    pub(crate) bf16: bool,
    /// Also score, every epoch, the training pairs whose stems this file lists (e.g.
    /// data/splits/vcip2020-train-every12th.txt): the fit beside validation.
    #[arg(long, value_name = "LIST")]
    pub(crate) fit_only: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    #[arg(long, value_enum)]
    pub(crate) arch: TrainArch,
    /// Paired training folder; may be repeated.
    #[arg(long, required = true)]
    pub(crate) data: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    /// Where to write the weights (safetensors with the model card inside).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Validation folder: scored after fitting and recorded in the model card.
    #[arg(long)]
    pub(crate) val: Option<PathBuf>,
    /// Fit on every N-th pixel in x and y.
    #[arg(long, default_value_t = 2)]
    pub(crate) stride: usize,
    /// Polynomial degree (linear).
    #[arg(long, default_value_t = 3)]
    pub(crate) degree: usize,
    /// Intensity-level classes (l3).
    #[arg(long, default_value_t = L3Config::default().levels)]
    pub(crate) levels: usize,
    /// Local-contrast classes (l3).
    #[arg(long, default_value_t = L3Config::default().contrasts)]
    pub(crate) contrasts: usize,
    #[command(flatten)]
    pub(crate) net: Box<NetTrainArgs>,
    /// Context classes (l3).
    #[arg(long, default_value_t = L3Config::default().contexts)]
    pub(crate) contexts: usize,
    /// Patch radius of each class's linear filter (l3).
    #[arg(long, default_value_t = L3Config::default().patch_radius)]
    pub(crate) patch_radius: usize,
    /// Radius of the context window (l3).
    #[arg(long, default_value_t = L3Config::default().context_radius)]
    pub(crate) context_radius: usize,
}

/// The `--data` folders and every selected pair in them, loaded with a progress bar.
pub(crate) fn load_training_pairs(args: &TrainArgs) -> Result<(Vec<Dataset>, Vec<data::Pair>)> {
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

/// The flags typed on the command line, by clap id (the field's name), as opposed to those
/// left at their defaults.
#[derive(Default)]
pub(crate) struct TypedFlags(HashSet<String>);

impl TypedFlags {
    pub(crate) fn from_matches(matches: &ArgMatches) -> Self {
        Self(
            matches
                .ids()
                .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect(),
        )
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// What a resumed run may change without computing something else than the run it continues:
/// the schedule's length, early stopping from now on, and how often a checkpoint is written.
const CHANGEABLE_ON_RESUME: [&str; 3] = ["epochs", "keep_best", "checkpoint_every"];

/// The flag a user types for the clap id `id` (`keep_best` is `--keep-best`).
fn flag_of_id(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// Flags whose clap id is not the name of the setting they decide.
const FLAG_OF_SETTING: [(&str, &str); 2] = [("guided", "no_guided"), ("decoupled", "direct")];

/// The typed flags whose value differs from the resumed run's, as `--flag VALUE (the run's:
/// VALUE)`: `wanted` and `run` are one kind of settings (training options or network
/// configuration) serialised, as this command line makes them and as the checkpoint holds them.
fn overridden(
    typed: &TypedFlags,
    wanted: &serde_json::Value,
    run: &serde_json::Value,
) -> Vec<String> {
    let (Some(wanted), Some(run)) = (wanted.as_object(), run.as_object()) else {
        return Vec::new();
    };
    // Strings without their JSON quotes: an arch's or a teacher's name as typed.
    let shown = |v: &serde_json::Value| v.as_str().map_or(v.to_string(), str::to_string);
    wanted
        .iter()
        .filter(|(key, _)| !CHANGEABLE_ON_RESUME.contains(&key.as_str()))
        .filter_map(|(key, value)| {
            let flag = FLAG_OF_SETTING
                .iter()
                .find(|(setting, _)| setting == key)
                .map_or(key.as_str(), |(_, flag)| flag);
            let had = run.get(key).unwrap_or(&serde_json::Value::Null);
            (typed.has(flag) && had != value).then(|| {
                format!(
                    "{} {} (the run's: {})",
                    flag_of_id(flag),
                    shown(value),
                    shown(had)
                )
            })
        })
        .collect()
}

pub(crate) fn run_train(args: &TrainArgs, typed: &TypedFlags) -> Result<()> {
    if let Some(arch) = args.arch.net() {
        return run_train_net(args, arch, typed);
    }
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
    // The bounds the weights loaders enforce, checked before minutes of fitting.
    opts.validate()?;
    let (datasets, pairs) = load_training_pairs(args)?;
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

/// Scores `weights` on the paired folder `val`, prints the mean row, and records the scores in
/// the model card.
pub(crate) fn validate_into_card(
    weights: &mut nircolor::models::weights::Weights,
    val: &Path,
) -> Result<()> {
    let model = nircolor::models::from_weights(weights)?;
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

/// `nircolor train` for the networks: load, train with a progress bar, checkpoint, card.
pub(crate) fn run_train_net(args: &TrainArgs, arch: NetArch, typed: &TypedFlags) -> Result<()> {
    use nircolor::models::weights::Weights;
    use nircolor::offline::train_net::{self as tn, Event, Finish, Trainer};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let n = &args.net;
    set_threads(n.threads)?;
    let device = nircolor::models::net::pick_device(&n.device)?;
    let options = TrainOptions {
        epochs: n.epochs.unwrap_or(TrainOptions::default().epochs),
        minutes: n.minutes,
        checkpoint_every: n.checkpoint_every,
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
        w_bins: n.w_bins,
        teacher: n.teacher.as_ref().map(|p| p.display().to_string()),
        w_teacher: if n.teacher.is_some() {
            n.w_teacher
        } else {
            0.0
        },
        w_teacher_chroma: if n.teacher.is_some() {
            n.w_teacher_chroma
        } else {
            0.0
        },
        luma_teacher: n.luma_teacher.as_ref().map(|p| p.display().to_string()),
        w_luma_teacher: if n.luma_teacher.is_some() {
            n.w_luma_teacher
        } else {
            0.0
        },
        w_gray: n.w_gray,
        w_grad: n.w_grad,
        w_cross: n.w_cross,
        jitter_gain: n.jitter_gain,
        jitter_gamma: n.jitter_gamma,
        jitter_noise: n.jitter_noise,
        ema: n.ema,
        keep_best: n.keep_best,
        bf16: n.bf16,
    };
    options.validate()?;
    let init = n
        .init
        .as_ref()
        .map(|p| Weights::load(p).with_context(|| format!("loading --init {}", p.display())))
        .transpose()?;
    if let (Some(w), Some(p)) = (&init, &n.init) {
        if NetArch::from_name(&w.arch).is_none() {
            bail!(
                "--init {} holds the classical model '{}', which is fitted, not trained: --init takes a network's weights (fast, hq, ...), e.g. models/default.safetensors",
                p.display(),
                w.arch
            );
        }
    }
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
    if let (Some(_), Some(w)) = (&init, n.width) {
        if w != cfg.width {
            bail!(
                "--init holds a network of width {} but --width is {w}: the width is the shape of \
                 the weights; drop --width to fine-tune, or train from scratch without --init",
                cfg.width
            );
        }
    }
    if (n.groups.is_some() || n.blocks.is_some()) && arch != NetArch::Dct {
        bail!(
            "--groups and --blocks set the depth of dct; {} has its own",
            arch.name()
        );
    }
    if init.is_some()
        && (n.groups.is_some_and(|g| g != cfg.groups) || n.blocks.is_some_and(|b| b != cfg.blocks))
    {
        bail!(
            "--init holds a dct of {} groups x {} blocks: the depth is the shape of the weights; \
             drop --groups and --blocks to fine-tune it",
            cfg.groups,
            cfg.blocks
        );
    }
    // The inference size is not part of the weights' shape: fine-tuning may change it.
    if let Some(s) = n.scale {
        cfg.scale = s;
    }
    if let Some(m) = n.max_pixels {
        cfg.max_pixels = m;
    }
    if let Some(k) = n.chroma_bins {
        if init.is_some() && cfg.chroma_bins != 0 && cfg.chroma_bins != k {
            bail!(
                "--init holds a network with {0}x{0} chroma bins but --chroma-bins is {k}: drop \
                 --chroma-bins to fine-tune it, or start from a network without bins",
                cfg.chroma_bins
            );
        }
        cfg.chroma_bins = k;
    }
    if let Some(t) = n.chroma_temperature {
        cfg.chroma_temperature = t;
    }
    if init.is_none() {
        if let Some(w) = n.width {
            cfg.width = w;
        }
        cfg.groups = n.groups.unwrap_or(cfg.groups);
        cfg.blocks = n.blocks.unwrap_or(cfg.blocks);
        cfg.guided = !n.no_guided;
        cfg.decoupled = cfg.decoupled && !n.direct;
        // hq normalises by default; --norm turns it on for the others.
        cfg.norm = n.norm || cfg.norm;
        cfg.detail_radius = n.detail_radius;
        cfg.detail_eps = n.detail_eps;
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid network options: {e}"))?;
    if n.keep_best && args.val.is_none() {
        bail!("--keep-best picks the epoch with the best validation PSNR: give --val FOLDER");
    }

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
            // A flag that the checkpoint would silently overrule could cost hours of the
            // wrong run: refuse it, and say how to get either.
            let mut differ = overridden(
                typed,
                &serde_json::to_value(&options)?,
                &serde_json::to_value(t.options())?,
            );
            differ.extend(overridden(
                typed,
                &serde_json::to_value(&cfg)?,
                &serde_json::to_value(&t.model.cfg)?,
            ));
            if !differ.is_empty() {
                let may: Vec<String> = CHANGEABLE_ON_RESUME.map(flag_of_id).to_vec();
                bail!(
                    "{}: a resumed run keeps the options it was started with, and these \
                     differ: {}. Drop them to continue the run (only {} may change), or start a \
                     new run from its weights with --init",
                    file.display(),
                    differ.join(", "),
                    may.join(", ")
                );
            }
            if typed.has("checkpoint_every") {
                t.set_checkpoint_every(n.checkpoint_every);
            }
            // --epochs on a resumed run re-plans it (to extend or shorten the schedule).
            if let Some(e) = n.epochs {
                t.set_epochs(e);
            }
            // A checkpoint keeps its run's options; --keep-best is the one that can be added
            // later without changing what the run computes.
            if n.keep_best && !t.options().keep_best {
                t.keep_best_from_now();
                println!(
                    "--keep-best: the run was started without it; the best epoch from epoch {} on is kept",
                    t.history().len() + 1
                );
            }
            t
        }
        None => Trainer::new(cfg, options, &pairs, device, init.as_ref())?,
    };
    let o = trainer.options().clone();
    let teachers = tn::Teachers {
        output: o
            .teacher
            .as_deref()
            .map(|f| load_teacher("--teacher", f, device))
            .transpose()?,
        luma: o
            .luma_teacher
            .as_deref()
            .map(|f| load_teacher("--luma-teacher", f, device))
            .transpose()?,
    };
    if let (Some(t), Some(file)) = (&teachers.output, &o.teacher) {
        println!(
            "distilling from {file} ({}, {} parameters), weight {} on RGB, {} on chroma",
            t.cfg.arch.name(),
            t.parameters(),
            o.w_teacher,
            o.w_teacher_chroma
        );
    }
    if let (Some(t), Some(file)) = (&teachers.luma, &o.luma_teacher) {
        println!(
            "luminance from {file} ({}, {} parameters), weight {}",
            t.cfg.arch.name(),
            t.parameters(),
            o.w_luma_teacher
        );
    }
    trainer.set_teachers(teachers);
    if let Some(list) = &n.fit_only {
        let stems = data::read_stem_list(list)?;
        let probe: Vec<data::Pair> = pairs
            .iter()
            .filter(|p| stems.contains(&p.name))
            .cloned()
            .collect();
        if probe.is_empty() {
            bail!(
                "--fit-only {}: none of its {} stems is among the {} training pairs",
                list.display(),
                stems.len(),
                pairs.len()
            );
        }
        println!(
            "fit probe: {} training pairs scored every epoch",
            probe.len()
        );
        trainer.set_fit_probe(probe);
    }
    trainer.record_command(command_line());
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
            let fit = log
                .fit_psnr
                .map(|p| format!(", fit PSNR {p:.2} dB"))
                .unwrap_or_default();
            let line = format!(
                "epoch {}: loss {:.4}, val PSNR {}{fit}, {:.0} s",
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
    if n.half {
        weights.save_half(&args.out)?;
    } else {
        weights.save(&args.out)?;
    }
    let kept = match trainer.best_epoch() {
        Some(e) => format!(", the weights of epoch {e}, the best on validation"),
        None => String::new(),
    };
    println!(
        "wrote {} ({} epochs{kept}; curve {})",
        args.out.display(),
        history.len(),
        tn::curve_path(&args.out).display()
    );
    Ok(())
}

/// A network to learn from (`flag`: the option that named `file`, for the error).
fn load_teacher(
    flag: &str,
    file: &str,
    device: tch::Device,
) -> Result<nircolor::models::net::Model> {
    let w = nircolor::models::weights::Weights::load(Path::new(file))
        .with_context(|| format!("loading {flag} {file}"))?;
    nircolor::models::net::Model::from_weights(&w.without_prefix("adam."), device)
        .with_context(|| format!("{flag} {file} must be a network's weights (fast, hq, ...)"))
}

/// `nircolor curves`: validation PSNR of several runs against training hours, one chart.
pub(crate) fn run_curves(out: &Path, runs: &[String]) -> Result<()> {
    let mut series = Vec::new();
    for run in runs {
        let (name, file) = match run.split_once('=') {
            Some((n, f)) if !n.is_empty() => (n.to_string(), PathBuf::from(f)),
            _ => {
                let f = PathBuf::from(run);
                let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned());
                (stem.unwrap_or_else(|| run.clone()), f)
            }
        };
        let weights = nircolor::models::weights::Weights::load(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let run = nircolor::offline::curve::Run::of(name, &weights);
        if run.history.iter().all(|e| e.val_psnr.is_none()) {
            bail!(
                "{} records no validated epoch in its model card (train with --val to record one)",
                file.display()
            );
        }
        series.push(run);
    }
    nircolor::offline::curve::compare(&series, out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
