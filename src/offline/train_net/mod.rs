//! Training the networks: random multi-scale crops with flips and NIR exposure jitter, the
//! papers' losses (masked), Adam with a cosine schedule, a checkpoint every epoch (and on
//! Ctrl-C) that `--resume` continues from exactly, and a stop with a clear message when the loss
//! turns NaN or explodes, keeping the last good checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use crate::models::net::{bins, layers, loss, Model, NetArch, NetConfig};
use crate::models::rng::{Rng, RngState};
use crate::models::weights::{Weights, WeightsError};
use crate::offline::data::Pair;
use crate::offline::train::{first_failure, OptionError};

mod crops;
mod history;

use crops::{chroma_histogram, make_batch, plan_crop, CropPlan, Sample, CHROMA_LOSS_STRIDE};
pub use history::{history_in, hours, lineage_of, EpochLog, Stage};
use history::{plan_epochs, TrainingClock, MINUTES_PLAN_EPOCHS};

/// Loss weights and optimisation settings; recorded in checkpoints and the model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    /// A time budget instead of `epochs`: the epoch count is planned after each of the first
    /// `MINUTES_PLAN_EPOCHS` epochs from the time left and the last epoch's duration, then
    /// fixed (and stored, so a resumed run follows the same schedule).
    pub minutes: Option<f64>,
    /// Write the checkpoint after every this many epochs (and when the run ends or is
    /// stopped): a large network's checkpoint can cost as much as a GPU epoch.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    pub batch: usize,
    /// Side of the square training crops, after multi-scale resampling.
    pub crop: usize,
    /// Smallest zoom of the multi-scale crops (1 = native pixels only).
    pub min_zoom: f64,
    pub lr: f64,
    pub seed: u64,
    pub w_l1: f64,
    /// Mean squared error: what PSNR scores (L1 alone predicts the median of ambiguous pixels).
    #[serde(default)]
    pub w_l2: f64,
    pub w_ssim: f64,
    pub w_freq: f64,
    /// Colourfulness: block-averaged chroma magnitude against the truth's.
    #[serde(default)]
    pub w_sat: f64,
    /// Chroma: L1 on Cb and Cr, so colour is not drowned by luminance in the RGB loss.
    #[serde(default)]
    pub w_chroma: f64,
    /// Binned chroma (`NetConfig::chroma_bins`): the class-rebalanced cross-entropy.
    #[serde(default)]
    pub w_bins: f64,
    pub w_gray: f64,
    pub w_grad: f64,
    pub w_cross: f64,
    /// NIR jitter: gain in [1-g, 1+g], gamma in [1/(1+y), 1+y], noise sigma up to n.
    pub jitter_gain: f64,
    pub jitter_gamma: f64,
    pub jitter_noise: f64,
    /// Distillation: the weights file of a network whose output the student also learns
    /// (recorded so a resumed run reloads it).
    #[serde(default)]
    pub teacher: Option<String>,
    /// Weight of the L1 between the student's and the teacher's output.
    #[serde(default)]
    pub w_teacher: f64,
    /// Weight of the L1 between the student's and the teacher's chroma (Cb, Cr) alone: for a
    /// teacher whose colour is better than its luminance, so the luminance is learnt from the
    /// truth only.
    #[serde(default)]
    pub w_teacher_chroma: f64,
    /// A second teacher for the luminance alone (e.g. the network being fine-tuned, so that
    /// learning a new colour does not cost the luminance it had).
    #[serde(default)]
    pub luma_teacher: Option<String>,
    /// Weight of the L1 between the student's and the luma teacher's luminance.
    #[serde(default)]
    pub w_luma_teacher: f64,
    /// Decay of the exponential moving average of the weights that is validated and saved
    /// (0: the raw weights). Smooths the step-to-step noise of small-batch training.
    #[serde(default)]
    pub ema: f64,
    /// Save the weights of the epoch with the best validation PSNR instead of the last
    /// (early stopping, for fine-tunes whose validation peaks before the schedule ends).
    #[serde(default)]
    pub keep_best: bool,
    /// The layers compute in bf16 with f32 master weights and f32 losses (`layers::with_compute`).
    #[serde(default)]
    pub bf16: bool,
}

fn default_checkpoint_every() -> usize {
    1
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 40,
            minutes: None,
            checkpoint_every: 1,
            batch: 8,
            crop: 192,
            min_zoom: 0.3,
            lr: 2e-3,
            seed: 1,
            w_l1: 1.0,
            w_l2: 0.0,
            w_ssim: 0.2,
            w_freq: 0.05,
            w_sat: 0.0,
            w_chroma: 0.0,
            w_bins: 1.0,
            teacher: None,
            w_teacher: 0.0,
            w_teacher_chroma: 0.0,
            luma_teacher: None,
            w_luma_teacher: 0.0,
            w_gray: 0.5,
            w_grad: 0.1,
            w_cross: 0.1,
            jitter_gain: 0.25,
            jitter_gamma: 0.25,
            jitter_noise: 0.02,
            ema: 0.0,
            keep_best: false,
            bf16: false,
        }
    }
}

impl TrainOptions {
    /// Every option in range, checked before the data is loaded.
    pub fn validate(&self) -> Result<(), OptionError> {
        let weights = [
            self.w_l1,
            self.w_l2,
            self.w_ssim,
            self.w_freq,
            self.w_sat,
            self.w_chroma,
            self.w_bins,
            self.w_teacher,
            self.w_teacher_chroma,
            self.w_luma_teacher,
            self.w_gray,
            self.w_grad,
            self.w_cross,
        ];
        first_failure([
            (self.batch >= 1, OptionError::new("--batch", "at least 1")),
            (self.crop >= 16, OptionError::new("--crop", "at least 16")),
            (
                self.min_zoom > 0.0 && self.min_zoom <= 1.0,
                OptionError::new("--min-zoom", "in (0, 1]"),
            ),
            (
                self.lr > 0.0 && self.lr.is_finite(),
                OptionError::new("--lr", "a positive number"),
            ),
            (self.epochs >= 1, OptionError::new("--epochs", "at least 1")),
            (
                (0.0..1.0).contains(&self.ema),
                OptionError::new(
                    "--ema",
                    "in [0, 1) (0 turns the average off; 0.999 is typical)",
                ),
            ),
            (
                weights.iter().all(|w| *w >= 0.0 && w.is_finite()),
                OptionError::new("loss weights (--w-*)", "0 or positive"),
            ),
            (
                (0.0..1.0).contains(&self.jitter_gain),
                OptionError::new("--jitter-gain", "in [0, 1)"),
            ),
            (
                (0.0..=4.0).contains(&self.jitter_gamma),
                OptionError::new("--jitter-gamma", "in [0, 4]"),
            ),
            (
                (0.0..=0.5).contains(&self.jitter_noise),
                OptionError::new("--jitter-noise", "in [0, 0.5]"),
            ),
            (
                self.minutes.is_none_or(|m| m > 0.0 && m.is_finite()),
                OptionError::new("--minutes", "a positive number"),
            ),
            (
                (1..=1000).contains(&self.checkpoint_every),
                OptionError::new("--checkpoint-every", "1 to 1000 epochs"),
            ),
        ])
    }
}

/// Why training stopped without finishing.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training pairs: give --data folders with nir/ and rgb/")]
    NoData,
    #[error("the loss became {loss} at epoch {epoch}, step {step} (recent median {median:.4}); training stopped. The last good checkpoint is {checkpoint}: resume from it with a lower --lr (now {lr}), or check the data")]
    Diverged {
        loss: f64,
        median: f64,
        epoch: usize,
        step: usize,
        checkpoint: String,
        lr: f64,
    },
    #[error("{file} is not a checkpoint of this run ({why}); start without --resume or give the matching checkpoint")]
    BadCheckpoint { file: String, why: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("cannot write {file}: {why}")]
    Write { file: String, why: String },
}

/// The networks a student learns from besides the truth, in inference mode.
#[derive(Default)]
pub struct Teachers {
    /// `TrainOptions::teacher`: its output and its chroma.
    pub output: Option<Model>,
    /// `TrainOptions::luma_teacher`: its luminance.
    pub luma: Option<Model>,
}

/// A teacher's output on the student's crop: no gradient, clamped to what it would show.
fn taught(teacher: &Model, nir: &Tensor) -> Tensor {
    let _guard = tch::no_grad_guard();
    teacher.run(nir).rgb.clamp(0.0, 1.0)
}

/// The weighted loss of one batch and its parts (for logs).
fn batch_loss(
    model: &Model,
    teachers: &Teachers,
    chroma_weights: Option<&Tensor>,
    o: &TrainOptions,
    nir: &Tensor,
    rgb: &Tensor,
    mask: &Tensor,
) -> Tensor {
    model.set_training(true);
    model.set_bf16(o.bf16);
    let run = model.run(nir);
    model.set_bf16(false);
    model.set_training(false);
    let mut total = loss::l1(&run.rgb, rgb, mask) * o.w_l1;
    // The teachers see the same jittered crop, so every epoch brings new targets.
    if let (Some(t), true) = (
        &teachers.output,
        o.w_teacher > 0.0 || o.w_teacher_chroma > 0.0,
    ) {
        let target = taught(t, nir);
        if o.w_teacher > 0.0 {
            total += loss::l1(&run.rgb, &target, mask) * o.w_teacher;
        }
        if o.w_teacher_chroma > 0.0 {
            // A deterministic teacher's colour is one target per crop, not the spread of
            // plausible colours that an L1 on the truth's chroma averages to gray.
            total += loss::chroma(&run.rgb, &target, mask) * o.w_teacher_chroma;
        }
    }
    if let (Some(t), true) = (&teachers.luma, o.w_luma_teacher > 0.0) {
        total += loss::luma(&run.rgb, &taught(t, nir), mask) * o.w_luma_teacher;
    }
    if o.w_l2 > 0.0 {
        total += loss::l2(&run.rgb, rgb, mask) * o.w_l2;
    }
    if o.w_sat > 0.0 {
        total += loss::saturation(&run.rgb, rgb, mask) * o.w_sat;
    }
    if o.w_chroma > 0.0 {
        total += loss::chroma(&run.rgb, rgb, mask) * o.w_chroma;
    }
    if o.w_ssim > 0.0 {
        total += loss::ssim(&run.rgb, rgb, mask) * o.w_ssim;
    }
    if o.w_freq > 0.0 && model.cfg.arch != NetArch::Unet {
        total += loss::frequency(&run.rgb, rgb, mask) * o.w_freq;
    }
    if let Some(gray) = &run.net.gray {
        let s = gray.size();
        let (low_rgb, low_mask) = if s[2..] == rgb.size()[2..] {
            (rgb.shallow_clone(), mask.shallow_clone())
        } else {
            (
                rgb.adaptive_avg_pool2d([s[2], s[3]]),
                mask.adaptive_avg_pool2d([s[2], s[3]])
                    .ge(0.999)
                    .to_kind(Kind::Float),
            )
        };
        let target_gray = layers::luma(&low_rgb);
        total += loss::l1(gray, &target_gray, &low_mask) * o.w_gray;
        if let (Some(logits), Some(w), true) =
            (&run.net.chroma_logits, chroma_weights, o.w_bins > 0.0)
        {
            // Every other pixel in x and y: colour changes slowly, and the k*k logits per pixel
            // (256 at 16x16 bins) make this loss cost more than the network at full density.
            let sub = |t: &Tensor| {
                let s = t.size();
                t.slice(2, 0, s[2], CHROMA_LOSS_STRIDE)
                    .slice(3, 0, s[3], CHROMA_LOSS_STRIDE)
            };
            total += loss::chroma_bins(&sub(logits), &sub(&low_rgb), &sub(&low_mask), w) * o.w_bins;
        }
        if let Some(scale) = &run.net.scale {
            let nir_low = run.low_nir.mean_dim([1i64].as_slice(), true, Kind::Float);
            total += loss::gradient(gray, &nir_low, scale, &low_mask) * o.w_grad;
            let rgb_gray = layers::luma(&run.net.rgb);
            total += loss::ssim(gray, &rgb_gray, &low_mask) * o.w_cross;
        }
    }
    total
}

/// Mean PSNR (8-bit, masked) of the model's full path over validation pairs.
pub fn validate(model: &Model, val: &[Pair]) -> f64 {
    let _guard = tch::no_grad_guard();
    let dev = model.vs.device();
    let mut sum = 0.0;
    for p in val {
        let s = Sample::from_pair(p);
        let nir = Tensor::from_slice(&s.nir)
            .view([1, 1, s.h as i64, s.w as i64])
            .to_device(dev);
        let target = Tensor::from_slice(&s.rgb)
            .view([1, 3, s.h as i64, s.w as i64])
            .to_device(dev);
        let mask = Tensor::from_slice(&s.mask)
            .view([1, 1, s.h as i64, s.w as i64])
            .to_device(dev);
        let out = (model.run(&nir).rgb.clamp(0.0, 1.0) * 255.0).round();
        let err = (out - target * 255.0).square() * &mask;
        let mse = f64::try_from(err.sum(Kind::Double)).unwrap_or(f64::NAN)
            / (3.0 * f64::try_from(mask.sum(Kind::Double)).unwrap_or(1.0)).max(1.0);
        sum += 10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10();
    }
    sum / val.len().max(1) as f64
}

/// Everything besides the weights that a resumed run needs to continue exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Progress {
    net: NetConfig,
    options: TrainOptions,
    /// Epochs planned (fixed after the first epoch with --minutes).
    planned: Option<usize>,
    epoch: usize,
    /// Position inside `epoch`'s permutation (0 at an epoch boundary).
    pos: usize,
    perm: Vec<usize>,
    step: usize,
    rng: RngState,
    history: Vec<EpochLog>,
    losses_this_epoch: Vec<f64>,
    samples: usize,
    /// The runs behind `--init` (checkpoints from before this field resume with none).
    #[serde(default)]
    lineage: Vec<Stage>,
    /// This run's command lines, the first and each resume.
    #[serde(default)]
    commands: Vec<String>,
    /// With `keep_best`: the epoch (1-based) whose weights `Trainer::best` holds.
    #[serde(default)]
    best_epoch: Option<usize>,
}

/// Adam's moments per trainable variable.
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    fn new(params: &[Tensor]) -> Adam {
        Adam {
            m: params.iter().map(Tensor::zeros_like).collect(),
            v: params.iter().map(Tensor::zeros_like).collect(),
        }
    }

    fn step(&mut self, params: &mut [Tensor], lr: f64, t: usize) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let c1 = 1.0 - b1.powi(t as i32);
        let c2 = 1.0 - b2.powi(t as i32);
        let _guard = tch::no_grad_guard();
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
            let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
            let update = (&*m / c1) / ((&*v / c2).sqrt() + eps) * lr;
            let _ = p.g_sub_(&update);
            let _ = p.grad().zero_();
        }
    }
}

/// A running training job.
pub struct Trainer {
    pub model: Model,
    params: Vec<Tensor>,
    adam: Adam,
    /// The moving average of `params` (with `--ema`), in the same order.
    ema: Option<Vec<Tensor>>,
    /// With `keep_best`: the validated weights (the average with `--ema`) of the best epoch so
    /// far, in the order of `params`.
    best: Option<Vec<Tensor>>,
    /// The networks distilled from (`TrainOptions::teacher`, `luma_teacher`).
    teachers: Teachers,
    /// With binned chroma: each bin's class-rebalancing weight, from the training colours.
    chroma_weights: Option<Tensor>,
    progress: Progress,
    rng: Rng,
    samples: Vec<Sample>,
    /// Training pairs scored every epoch beside validation (`EpochLog::fit_psnr`).
    fit_probe: Vec<Pair>,
    pub data_card: serde_json::Value,
}

/// What the trainer reports as it goes.
pub enum Event<'a> {
    Step {
        epoch: usize,
        planned: Option<usize>,
        pos: usize,
        of: usize,
        loss: f64,
    },
    Epoch(&'a EpochLog),
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    Done,
    Interrupted,
}

fn var_names(model: &Model) -> Vec<String> {
    let mut names: Vec<String> = model.vs.variables().into_keys().collect();
    names.sort();
    names
}

impl Trainer {
    /// A new run on `pairs` (`init`: start from these weights instead of random ones).
    pub fn new(
        cfg: NetConfig,
        options: TrainOptions,
        pairs: &[Pair],
        device: Device,
        init: Option<&Weights>,
    ) -> Result<Trainer, TrainError> {
        if pairs.is_empty() {
            return Err(TrainError::NoData);
        }
        let mut model = Model::new(cfg.clone(), device, options.seed);
        if let Some(w) = init {
            // Only an added chroma head may be missing from the init: the rest is its shape.
            let missing = model.load_tensors_partial(w)?;
            if let Some(name) = missing
                .iter()
                .find(|n| !n.split('.').any(|part| part == "bins"))
            {
                return Err(TrainError::Weights(w.invalid(format!(
                    "tensor '{name}' of the network to train is not in it; only the chroma bins \
                     (--chroma-bins) may be added to a trained network"
                ))));
            }
        }
        let mut rng = Rng::new(options.seed.wrapping_add(1));
        let perm = rng.permutation(pairs.len());
        let progress = Progress {
            net: cfg,
            planned: options.minutes.is_none().then_some(options.epochs),
            options: options.clone(),
            epoch: 0,
            pos: 0,
            perm,
            step: 0,
            rng: rng.state(options.seed.wrapping_add(1)),
            history: Vec::new(),
            losses_this_epoch: Vec::new(),
            samples: pairs.len(),
            lineage: init.map(|w| lineage_of(&w.card)).unwrap_or_default(),
            commands: Vec::new(),
            best_epoch: None,
        };
        Ok(Trainer::assemble(model, progress, rng, pairs))
    }

    fn assemble(model: Model, progress: Progress, rng: Rng, pairs: &[Pair]) -> Trainer {
        let names = var_names(&model);
        let vars = model.vs.variables();
        let params: Vec<Tensor> = names.iter().map(|n| vars[n].shallow_clone()).collect();
        let adam = Adam::new(&params);
        let ema = (progress.options.ema > 0.0).then(|| params.iter().map(Tensor::copy).collect());
        let samples: Vec<Sample> = pairs.par_iter().map(Sample::from_pair).collect();
        let k = model.cfg.chroma_bins;
        let chroma_weights = (k > 0).then(|| {
            let w = bins::rebalance(k as usize, &chroma_histogram(&samples, k));
            Tensor::from_slice(&w).to_device(model.vs.device())
        });
        let best = progress
            .best_epoch
            .map(|_| params.iter().map(Tensor::zeros_like).collect());
        Trainer {
            model,
            params,
            adam,
            ema,
            best,
            teachers: Teachers::default(),
            chroma_weights,
            progress,
            rng,
            samples,
            fit_probe: Vec::new(),
            data_card: serde_json::Value::Null,
        }
    }

    /// Continues the run saved in checkpoint `file`, on the same pairs.
    pub fn resume(file: &Path, pairs: &[Pair], device: Device) -> Result<Trainer, TrainError> {
        let bad = |why: String| TrainError::BadCheckpoint {
            file: file.display().to_string(),
            why,
        };
        let w = Weights::load(file)?;
        let progress: Progress = serde_json::from_value(w.card["training"].clone())
            .map_err(|e| bad(format!("no training state in it ({e})")))?;
        if progress.samples != pairs.len() {
            return Err(bad(format!(
                "it was trained on {} pairs, these folders hold {}",
                progress.samples,
                pairs.len()
            )));
        }
        let mut model = Model::new(progress.net.clone(), device, 0);
        model.load_tensors(&w.without_prefix("adam."))?;
        let rng =
            Rng::from_state(&progress.rng).ok_or_else(|| bad("unreadable RNG state".into()))?;
        let mut t = Trainer::assemble(model, progress, rng, pairs);
        let _guard = tch::no_grad_guard();
        for (i, name) in var_names(&t.model).iter().enumerate() {
            let mut state = vec![("m", &mut t.adam.m[i]), ("v", &mut t.adam.v[i])];
            if let Some(ema) = &mut t.ema {
                state.push(("ema", &mut ema[i]));
            }
            if let Some(best) = &mut t.best {
                state.push(("best", &mut best[i]));
            }
            for (which, into) in state {
                let key = format!("adam.{which}.{name}");
                let shape: Vec<Option<usize>> =
                    into.size().iter().map(|&d| Some(d as usize)).collect();
                let (_, data) = w.tensor(&key, &shape)?;
                into.copy_(&Tensor::from_slice(data).view(into.size().as_slice()));
            }
        }
        Ok(t)
    }

    /// Sets the networks the student learns from beside the truth (the files named by
    /// `TrainOptions::teacher` and `luma_teacher`, loaded by the caller on the training device).
    pub fn set_teachers(&mut self, teachers: Teachers) {
        for t in [&teachers.output, &teachers.luma].into_iter().flatten() {
            t.set_training(false);
        }
        self.teachers = teachers;
    }

    /// Scores these training pairs every epoch (`EpochLog::fit_psnr`) beside validation.
    pub fn set_fit_probe(&mut self, pairs: Vec<Pair>) {
        self.fit_probe = pairs;
    }

    /// Records the command line that started or resumed this run, for the card.
    pub fn record_command(&mut self, line: String) {
        self.progress.commands.push(line);
    }

    pub fn history(&self) -> &[EpochLog] {
        &self.progress.history
    }

    pub fn options(&self) -> &TrainOptions {
        &self.progress.options
    }

    /// The checkpoint: weights, Adam moments and the training state.
    fn checkpoint(&self) -> Weights {
        let mut w = self.model.to_weights(json!({
            "training": serde_json::to_value(&self.progress).expect("state serialises"),
        }));
        for (i, name) in var_names(&self.model).iter().enumerate() {
            let mut state = vec![("m", &self.adam.m[i]), ("v", &self.adam.v[i])];
            if let Some(ema) = &self.ema {
                state.push(("ema", &ema[i]));
            }
            if let Some(best) = &self.best {
                state.push(("best", &best[i]));
            }
            for (which, t) in state {
                let shape = t.size().iter().map(|&d| d as usize).collect();
                let data = Vec::<f32>::try_from(t.to_device(Device::Cpu).flatten(0, -1))
                    .expect("f32 moments");
                w.insert(&format!("adam.{which}.{name}"), shape, data);
            }
        }
        w
    }

    fn lr(&self) -> f64 {
        let o = &self.progress.options;
        let planned = self.progress.planned.unwrap_or(o.epochs.max(1)).max(1);
        let per_epoch = self.progress.samples.div_ceil(o.batch).max(1);
        let total = (planned * per_epoch) as f64;
        let t = (self.progress.step as f64 / total).min(1.0);
        // Short warm-up, then cosine down to 5%.
        let warm = (self.progress.step as f64 / 50.0).min(1.0);
        o.lr * warm * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }

    /// Trains until the planned epochs are done or `stop` is raised (then a checkpoint is saved
    /// and [`Finish::Interrupted`] returned). `ckpt` is written after every epoch.
    pub fn run(
        &mut self,
        val: &[Pair],
        ckpt: &Path,
        stop: &AtomicBool,
        mut report: impl FnMut(Event),
    ) -> Result<Finish, TrainError> {
        let o = self.progress.options.clone();
        let dev = self.model.vs.device();
        let fit = self.fit_probe.clone();
        let mut clock = TrainingClock::start();
        loop {
            if let Some(p) = self.progress.planned {
                if self.progress.epoch >= p {
                    return Ok(Finish::Done);
                }
            }
            let n = self.progress.perm.len();
            while self.progress.pos < n {
                if stop.load(Ordering::Relaxed) {
                    self.save_checkpoint(ckpt)?;
                    return Ok(Finish::Interrupted);
                }
                let end = (self.progress.pos + o.batch).min(n);
                let idx: Vec<usize> = self.progress.perm[self.progress.pos..end].to_vec();
                let plans: Vec<CropPlan> = idx
                    .iter()
                    .map(|&i| plan_crop(&mut self.rng, &self.samples, i, &o))
                    .collect();
                let [nir, rgb, mask] = make_batch(&self.samples, &plans, o.crop, dev);
                let loss = batch_loss(
                    &self.model,
                    &self.teachers,
                    self.chroma_weights.as_ref(),
                    &o,
                    &nir,
                    &rgb,
                    &mask,
                );
                let value = f64::try_from(&loss).unwrap_or(f64::NAN);
                let median = median(&self.progress.losses_this_epoch);
                let exploded = self.progress.losses_this_epoch.len() >= 10 && value > 20.0 * median;
                if !value.is_finite() || exploded {
                    return Err(TrainError::Diverged {
                        loss: value,
                        median,
                        epoch: self.progress.epoch + 1,
                        step: self.progress.step,
                        checkpoint: if ckpt.is_file() {
                            ckpt.display().to_string()
                        } else {
                            format!(
                                "{} (not written yet: the first epoch did not finish)",
                                ckpt.display()
                            )
                        },
                        lr: o.lr,
                    });
                }
                loss.backward();
                self.progress.step += 1;
                clock.step();
                let lr = self.lr();
                self.adam.step(&mut self.params, lr, self.progress.step);
                self.update_ema();
                self.progress.losses_this_epoch.push(value);
                self.progress.pos = end;
                self.progress.rng = self.rng.state(self.progress.rng.seed);
                report(Event::Step {
                    epoch: self.progress.epoch + 1,
                    planned: self.progress.planned,
                    pos: end,
                    of: n,
                    loss: value,
                });
            }
            let losses = std::mem::take(&mut self.progress.losses_this_epoch);
            let log = EpochLog {
                epoch: self.progress.epoch + 1,
                loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
                val_psnr: (!val.is_empty()).then(|| self.with_ema(|m| validate(m, val))),
                fit_psnr: (!fit.is_empty()).then(|| self.with_ema(|m| validate(m, &fit))),
                seconds: clock.end_epoch(),
            };
            if let Some(minutes) = o.minutes {
                if self.progress.epoch < MINUTES_PLAN_EPOCHS {
                    let done = self.progress.epoch + 1;
                    let earlier = (self.progress.history.iter().rev())
                        .take(self.progress.epoch)
                        .map(|l| l.seconds)
                        .sum::<f64>();
                    self.progress.planned = Some(plan_epochs(
                        minutes,
                        done,
                        earlier + log.seconds,
                        log.seconds,
                    ));
                }
            }
            self.keep_if_best(&log);
            self.progress.history.push(log);
            self.progress.epoch += 1;
            self.progress.pos = 0;
            self.progress.perm = self.rng.permutation(n);
            self.progress.rng = self.rng.state(self.progress.rng.seed);
            report(Event::Epoch(
                self.progress.history.last().expect("just pushed"),
            ));
            let last = self.progress.planned == Some(self.progress.epoch);
            if last || self.progress.epoch % o.checkpoint_every == 0 {
                self.save_checkpoint(ckpt)?;
            }
        }
    }

    /// With `keep_best`, copies the validated weights when `log` beats every earlier epoch.
    fn keep_if_best(&mut self, log: &EpochLog) {
        let Some(psnr) = log.val_psnr else { return };
        if !self.progress.options.keep_best {
            return;
        }
        let best_so_far = self
            .progress
            .best_epoch
            .and_then(|e| self.progress.history.get(e - 1))
            .and_then(|l| l.val_psnr);
        if best_so_far.is_some_and(|b| b >= psnr) {
            return;
        }
        let _guard = tch::no_grad_guard();
        let source = self.ema.as_ref().unwrap_or(&self.params);
        self.best = Some(source.iter().map(Tensor::copy).collect());
        self.progress.best_epoch = Some(log.epoch);
    }

    /// Moves the average toward the weights just stepped; the decay ramps up over the first
    /// steps so the average does not hold on to the initial weights.
    fn update_ema(&mut self) {
        let Some(ema) = &mut self.ema else { return };
        let step = self.progress.step as f64;
        let decay = self.progress.options.ema.min((1.0 + step) / (10.0 + step));
        let _guard = tch::no_grad_guard();
        for (avg, p) in ema.iter_mut().zip(&self.params) {
            let _ = avg.g_mul_scalar_(decay).g_add_(&(p * (1.0 - decay)));
        }
    }

    /// Runs `f` on the model holding the averaged weights (the raw ones without `--ema`).
    fn with_ema<R>(&mut self, f: impl FnOnce(&Model) -> R) -> R {
        self.swap_ema();
        let out = f(&self.model);
        self.swap_ema();
        out
    }

    fn swap_ema(&mut self) {
        if let Some(ema) = &mut self.ema {
            exchange(&mut self.params, ema);
        }
    }

    fn save_checkpoint(&self, ckpt: &Path) -> Result<(), TrainError> {
        Ok(self.checkpoint().save(ckpt)?)
    }

    /// The planned number of epochs (known after the first with --minutes).
    pub fn planned(&self) -> Option<usize> {
        self.progress.planned
    }

    /// The finished model's weights (the average with `--ema`; the best epoch's with
    /// `keep_best`) with its card (validation metrics are added by the caller).
    pub fn weights(&mut self) -> Weights {
        let card = self.card();
        match &mut self.best {
            Some(best) => {
                exchange(&mut self.params, best);
                let w = self.model.to_weights(card);
                exchange(&mut self.params, best);
                w
            }
            None => self.with_ema(|m| m.to_weights(card)),
        }
    }

    /// With `keep_best`, the epoch whose weights [`Trainer::weights`] returns.
    pub fn best_epoch(&self) -> Option<usize> {
        self.progress.best_epoch
    }

    fn card(&self) -> serde_json::Value {
        let m = &self.model;
        let o = &self.progress.options;
        let p = &self.progress;
        let own = hours(&p.history);
        let earlier: f64 = p.lineage.iter().map(|s| s.hours).sum();
        json!({
            "arch": m.cfg.arch.name(),
            "nircolor_version": env!("CARGO_PKG_VERSION"),
            "input": "one NIR plane in [0,1] (8-bit / 255, 16-bit / 65535); the network sees it shrunk by `net.scale` (area average); the fast guided filter with the full-size NIR restores the detail",
            "output": "sRGB in [0,1] at the input's size",
            "inference_size": format!("{} x the frame (e.g. {}x{} for 640x480)", m.cfg.scale, m.cfg.inference_size(640, 480).0, m.cfg.inference_size(640, 480).1),
            "parameters": m.parameters(),
            "gflops_640x480": m.gflops(640, 480),
            "hyper_parameters": o,
            "training_data": self.data_card,
            "epochs": self.progress.history.len(),
            "history": self.progress.history,
            "command": p.commands.last().cloned().unwrap_or_default(),
            "commands": p.commands,
            "training_hours": own,
            "cumulative_training_hours": earlier + own,
            "lineage": p.lineage,
            "kept_epoch": p.best_epoch,
        })
    }
}

/// Exchanges the values of `a` and `b`, tensor by tensor: the model's variables keep their
/// identity while they hold another set of weights (the average, the best epoch's).
fn exchange(a: &mut [Tensor], b: &mut [Tensor]) {
    let _guard = tch::no_grad_guard();
    for (x, y) in a.iter_mut().zip(b) {
        let held = x.copy();
        x.copy_(y);
        y.copy_(&held);
    }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s: Vec<f64> = v.iter().rev().take(50).copied().collect();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Where the checkpoint of a run writing `out` lives.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    out.with_file_name(format!("{stem}.ckpt.safetensors"))
}

/// Where the loss/PSNR curve of a run writing `out` goes.
pub fn curve_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    out.with_file_name(format!("{stem}.curve.png"))
}

#[cfg(test)]
mod tests;
