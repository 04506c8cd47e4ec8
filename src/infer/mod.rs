//! Inference and detail: ONE thread owns the colorizer (one weight copy, one CUDA context later).
//! By default ([`Refresh::Auto`], [`amortised`]) the network refreshes each camera's guided-filter
//! coefficients as often as the machine allows and every frame applies them to its own NIR. With
//! [`Refresh::EveryFrame`] the thread gathers frames from every camera into a batch, closed at
//! `max_batch` frames or `max_wait` after its first frame; the batch is colorized at the
//! inference size, then the fast guided filter restores each frame's full resolution from its
//! NIR, in parallel across frames.

pub mod amortised;
mod scene;
pub mod service;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Select, TryRecvError};
use rayon::prelude::*;

use crate::calibrate::Corrector;
use crate::capture::{Frame, FrameMeta};

use crate::detail::GuidedFilter;
use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;
use crate::reference::store::ReferenceSettings;
use crate::runtime::histogram::Histogram;
use crate::runtime::queue::{Consumer, NewestWins};
use crate::runtime::worker::Worker;

/// How frames are batched and colorized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InferSettings {
    /// The colorizer sees frames shrunk by this factor, in (0, 1].
    pub scale: f32,
    /// ... and to at most this many pixels (0: no cap), as a network's card asks.
    pub max_pixels: usize,
    pub max_batch: usize,
    pub max_wait: Duration,
    /// The detail transfer; its radius is in full-resolution pixels.
    pub detail: GuidedFilter,
    /// How often the network recomputes a camera's colour.
    pub refresh: Refresh,
    /// Time constant with which a camera's colour follows a refresh (zero: at once).
    pub blend: Duration,
}

/// How often the network recomputes a camera's colour (config `[model] refresh_fps`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refresh {
    /// Every frame through the network, batched across cameras: for GPUs, and to compare with.
    EveryFrame,
    /// As often as the machine allows, cameras served by the age of their colour and their
    /// motion; the network runs at the lowest OS priority so frames are never what gives way.
    Auto,
    /// Like `Auto`, but each camera at most this many times a second.
    PerSecond(f64),
}

impl std::str::FromStr for Refresh {
    type Err = String;

    /// "auto", "every-frame", or refreshes per second per camera (above 0, at most 1000).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Refresh::Auto),
            "every-frame" => Ok(Refresh::EveryFrame),
            _ => match s.parse::<f64>() {
                Ok(r) => Refresh::per_second(r),
                Err(_) => Err(Refresh::allowed(s)),
            },
        }
    }
}

impl Refresh {
    /// A rate limit, checked: above 0 and at most 1000 per second.
    pub fn per_second(rate: f64) -> Result<Refresh, String> {
        if rate > 0.0 && rate <= 1000.0 {
            Ok(Refresh::PerSecond(rate))
        } else {
            Err(Refresh::allowed(rate))
        }
    }

    /// Why `what` is not a refresh rate, with the values that are.
    pub(crate) fn allowed(what: impl std::fmt::Display) -> String {
        format!(
            "{what} is not a refresh rate; allowed: \"auto\" (as often as the machine allows), \"every-frame\" (the network on every frame), or refreshes per second per camera, above 0 and at most 1000"
        )
    }
}

/// The time constant of the colour's moving average between refreshes: 100 ms follows a
/// refresh within about three frames at 30 fps (95% in 300 ms) yet halves the frame-to-frame
/// jitter of refreshes that disagree.
pub const BLEND: Duration = Duration::from_millis(100);

/// A colorized frame on its way to its camera's encoder.
#[derive(Clone, Debug)]
pub struct ColourFrame {
    pub meta: FrameMeta,
    pub rgb: Rgb,
    /// How many frames shared this frame's batch.
    pub batch_size: usize,
}

/// Counters the stage keeps, for metrics.
#[derive(Debug, Default)]
pub struct InferStats {
    pub batches: AtomicU64,
    pub frames: AtomicU64,
    /// Frames from a camera with no output (dropped).
    pub unrouted: AtomicU64,
    /// Per camera with an output: how long its frames waited and were worked on.
    pub cameras: HashMap<Arc<str>, Arc<FrameTimes>>,
    /// Per camera with an output: its latest frame, copied when someone asks.
    pub snapshots: HashMap<Arc<str>, snapshot::Snapshot>,
}

/// Time one camera's frames spend in the stage.
#[derive(Debug, Default)]
pub struct FrameTimes {
    /// Capture to the start of the frame's batch.
    pub queued: Histogram,
    /// The whole batch the frame was in: calibration, model, detail (amortised: the frame's
    /// own calibration and detail).
    pub processed: Histogram,
    /// Times the network recomputed this camera's colour.
    pub refreshes: AtomicU64,
    /// Times the quality model recomputed it (tiered refresh, `[model] quality`).
    pub quality_refreshes: AtomicU64,
    /// Time between two refreshes.
    pub refresh_interval: Histogram,
    /// Age of the colour on the newest frame: its capture time minus that of the frame the
    /// network last coloured, in microseconds.
    pub colour_age_us: AtomicU64,
    /// A day/night camera in day mode: its colour frames pass through, no network.
    pub day: AtomicBool,
    /// Changes between day and night mode.
    pub mode_transitions: AtomicU64,
    /// Frames passed through in colour (day mode).
    pub day_frames: AtomicU64,
    /// A day reference of this camera's frame size is in use at night.
    pub reference: AtomicBool,
    /// Times the camera was found moved against its reference (which was then dropped).
    pub moved: AtomicU64,
}

/// The running stage.
pub struct InferStage {
    stats: Arc<InferStats>,
    /// The frame thread first: stopping it drains what capture queued.
    workers: Vec<Worker>,
    /// The model threads of the amortised refresh, stopped after the frames.
    service: Option<Arc<service::ColourService>>,
}

impl InferStage {
    /// Starts the model thread reading `inputs` (one per camera) and writing each frame to the
    /// output of its camera id.
    pub fn spawn(
        colorizer: Box<dyn Colorizer>,
        inputs: Vec<Consumer<Frame>>,
        outputs: HashMap<Arc<str>, NewestWins<ColourFrame>>,
        config: InferSettings,
    ) -> std::io::Result<InferStage> {
        Self::spawn_calibrated(
            colorizer,
            inputs,
            outputs,
            config,
            HashMap::new(),
            HashMap::new(),
            None,
        )
    }

    /// [`spawn`](Self::spawn), with the calibration of each camera that has one (its NIR is
    /// corrected before the colorizer, its colour after the detail, with its own filter), the
    /// day reference of each camera that keeps one, and a quality model for a tiered refresh
    /// (the last two with the default refresh, not every frame).
    pub fn spawn_calibrated(
        colorizer: Box<dyn Colorizer>,
        inputs: Vec<Consumer<Frame>>,
        outputs: HashMap<Arc<str>, NewestWins<ColourFrame>>,
        config: InferSettings,
        calibrations: HashMap<Arc<str>, Corrector>,
        references: HashMap<Arc<str>, ReferenceSettings>,
        quality: Option<Box<dyn Colorizer>>,
    ) -> std::io::Result<InferStage> {
        let stats = Arc::new(InferStats {
            cameras: outputs
                .keys()
                .map(|id| (id.clone(), Arc::default()))
                .collect(),
            snapshots: outputs
                .keys()
                .map(|id| (id.clone(), snapshot::Snapshot::default()))
                .collect(),
            ..InferStats::default()
        });
        if config.refresh != Refresh::EveryFrame {
            let threads = amortised::spawn(
                service::ServiceModels {
                    realtime: colorizer,
                    quality,
                    max_batch: config.max_batch,
                },
                inputs,
                outputs,
                config,
                calibrations,
                references,
                stats.clone(),
            )?;
            return Ok(InferStage {
                stats,
                workers: vec![threads.frames],
                service: Some(threads.service),
            });
        }
        let thread_stats = stats.clone();
        let worker = Worker::spawn("infer".into(), move |stop| {
            let stage = Stage {
                colorizer: colorizer.as_ref(),
                outputs: &outputs,
                calibrations: &calibrations,
                config,
                stats: &thread_stats,
            };
            let mut scenes = scene::Scenes::new(references);
            run(&stage, &mut scenes, &inputs, stop)
        })?;
        Ok(InferStage {
            stats,
            workers: vec![worker],
            service: None,
        })
    }

    pub fn stats(&self) -> &InferStats {
        &self.stats
    }

    pub fn stats_handle(&self) -> Arc<InferStats> {
        self.stats.clone()
    }

    /// Finishes the batch in progress and stops; its outputs then close.
    pub fn stop(self) {
        for w in self.workers {
            w.stop();
        }
        if let Some(s) = self.service {
            s.stop();
        }
    }
}

/// Waits up to `timeout` for a frame from any live input; `None` on timeout or when all inputs
/// are gone.
fn next_frame(inputs: &[Consumer<Frame>], live: &mut [bool], timeout: Duration) -> Option<Frame> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut select = Select::new();
        let mut index = Vec::new();
        for (i, rx) in inputs.iter().enumerate() {
            if live[i] {
                select.recv(rx);
                index.push(i);
            }
        }
        if index.is_empty() {
            return None;
        }
        let op = select.select_deadline(deadline).ok()?;
        let i = index[op.index()];
        match op.recv(&inputs[i]) {
            Ok(frame) => return Some(frame),
            // That camera's capture ended; keep serving the others.
            Err(_) => live[i] = false,
        }
    }
}

/// What the model thread works with.
struct Stage<'a> {
    colorizer: &'a dyn Colorizer,
    outputs: &'a HashMap<Arc<str>, NewestWins<ColourFrame>>,
    calibrations: &'a HashMap<Arc<str>, Corrector>,
    config: InferSettings,
    stats: &'a InferStats,
}

fn run(stage: &Stage, scenes: &mut scene::Scenes, inputs: &[Consumer<Frame>], stop: &AtomicBool) {
    let config = stage.config;
    let mut live = vec![true; inputs.len()];
    let max_batch = config.max_batch.max(1);
    let n = inputs.len();
    // Round robin: the camera whose waiting frame joins the next batch first. With more
    // cameras than batch slots a fixed order would serve the first cameras every time and
    // starve the rest.
    let mut next_in_line = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut batch = Vec::with_capacity(max_batch);
        let mut closes: Option<Instant> = None;
        while batch.len() < max_batch {
            // Frames already waiting join at once, one per camera per round.
            let mut joined = false;
            for k in 0..n {
                let i = (next_in_line + k) % n;
                if !live[i] || batch.len() >= max_batch {
                    continue;
                }
                match inputs[i].try_recv() {
                    Ok(f) => {
                        batch.push(f);
                        joined = true;
                        next_in_line = (i + 1) % n;
                    }
                    Err(TryRecvError::Disconnected) => live[i] = false,
                    Err(TryRecvError::Empty) => {}
                }
            }
            if joined {
                closes.get_or_insert_with(|| Instant::now() + config.max_wait);
                continue;
            }
            // Nothing waiting: wait for a frame, briefly while the batch is empty so a stop
            // request is seen promptly, else until the batch closes.
            let timeout = match closes {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(50),
            };
            match next_frame(inputs, &mut live, timeout) {
                Some(f) => {
                    closes.get_or_insert_with(|| Instant::now() + config.max_wait);
                    batch.push(f);
                }
                None => break,
            }
        }
        if batch.is_empty() {
            if live.iter().all(|l| !l) {
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        process(stage, scenes, batch);
    }
    // Capture stops first: what it queued before is still colorized, so a batch job loses no
    // frame at its end and a stopped daemon's recordings end with the last frame captured.
    loop {
        let batch: Vec<Frame> = inputs
            .iter()
            .flat_map(|rx| rx.try_iter())
            .take(max_batch)
            .collect();
        if batch.is_empty() {
            break;
        }
        process(stage, scenes, batch);
    }
}

/// One batch: day frames pass through; the others are coloured in one forward pass and
/// restored to full size, through the camera's day reference where it has one.
fn process(stage: &Stage, scenes: &mut scene::Scenes, batch: Vec<Frame>) {
    let config = stage.config;
    let started = Instant::now();
    let mut night = Vec::with_capacity(batch.len());
    for mut f in batch {
        if let Some(day) = f.colour.take() {
            if let Some(sample) = scenes.day(&f.meta.camera, &day, f.meta.captured_at, stage.stats)
            {
                let frame = scene::DayFrame {
                    meta: f.meta,
                    luma: &f.luma,
                    rgb: day,
                    sample,
                    started,
                };
                scenes.pass_through(frame, stage.calibrations, stage.outputs, stage.stats);
                continue;
            }
        }
        night.push(f);
    }
    if night.is_empty() {
        return;
    }
    let batch = night;
    let waited: Vec<(Arc<str>, Duration)> = batch
        .iter()
        .map(|f| {
            (
                f.meta.camera.clone(),
                started.saturating_duration_since(f.meta.captured_at),
            )
        })
        .collect();
    let size = batch.len();
    let batch: Vec<Frame> = batch
        .into_par_iter()
        .map(|mut f| {
            if let Some(c) = stage.calibrations.get(&f.meta.camera) {
                c.nir(&mut f.luma);
            }
            f
        })
        .collect();
    let requests: Vec<service::Request> = batch
        .par_iter()
        .map(|f| {
            let calibration = stage.calibrations.get(&f.meta.camera);
            service::Request::of(&f.luma, &config, calibration, f.meta.captured_at)
        })
        .collect();
    let references: Vec<Option<Arc<Rgb>>> = batch
        .iter()
        .zip(&requests)
        .map(|(f, r)| {
            scenes.reference_at(
                &f.meta.camera,
                (f.luma.width, f.luma.height),
                (r.low.width, r.low.height),
                stage.stats,
            )
        })
        .collect();
    let lows: Vec<Gray> = requests.iter().map(|r| r.low.clone()).collect();
    let colours = stage.colorizer.colorize_batch(&lows);
    let coloured: Vec<(ColourFrame, Option<bool>)> = batch
        .into_par_iter()
        .zip(requests.into_par_iter().zip(references))
        .zip(colours.par_iter())
        .map(|((frame, (mut request, reference)), colour)| {
            let calibration = stage.calibrations.get(&frame.meta.camera);
            request.reference = reference;
            let (rgb, moved) =
                service::finish_frame(&config, calibration, &frame.luma, request, colour);
            if let Some(s) = stage.stats.snapshots.get(&frame.meta.camera) {
                s.offer(&frame.luma, &rgb);
            }
            let out = ColourFrame {
                rgb,
                meta: frame.meta,
                batch_size: size,
            };
            (out, moved)
        })
        .collect();
    let mut results = Vec::with_capacity(coloured.len());
    for (frame, moved) in coloured {
        if let Some(moved) = moved {
            scenes.aligned(&frame.meta.camera, moved, stage.stats);
        }
        results.push(frame);
    }
    let took = started.elapsed();
    for (camera, waited) in waited {
        if let Some(t) = stage.stats.cameras.get(&camera) {
            t.queued.observe(waited);
            t.processed.observe(took);
            // Every frame is a refresh, and its colour is its own.
            t.refreshes.fetch_add(1, Ordering::Relaxed);
            t.colour_age_us.store(0, Ordering::Relaxed);
        }
    }
    stage.stats.batches.fetch_add(1, Ordering::Relaxed);
    stage.stats.frames.fetch_add(size as u64, Ordering::Relaxed);
    for frame in results {
        match stage.outputs.get(&frame.meta.camera) {
            Some(out) => {
                out.push(frame);
            }
            None => {
                stage.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
