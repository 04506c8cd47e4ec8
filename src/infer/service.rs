//! The shared colour service: one model thread (and, with a tiered refresh, one quality thread)
//! refreshing the colour of every client registered with it, the daemon's cameras or the
//! `nircolorize` elements of a process, batched across them. A client's own thread only
//! applies its newest coefficients to each frame ([`ColourClient::apply`]), so it never waits
//! for the network; one weight copy serves every client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::amortised::CameraColour;
use super::{FrameTimes, InferSettings, InferStats, Refresh};
use crate::calibrate::Corrector;
use crate::detail::lowres::{inference_size, low_resolution, restore, shrink_to};
use crate::detail::{Coefficients, GuidedFilter};
use crate::images::planes::{Gray, Rgb};
use crate::models::colorizer::Colorizer;
use crate::runtime::worker::Worker;

/// How much a client's moved share raises its claim on the next refresh: a camera whose whole
/// view moved is refreshed as if its colour were five times older.
const MOTION_PRIORITY: f64 = 4.0;

/// How long the quality thread waits for a client's next frame before it passes to the next
/// client (one that is down, in day mode, or a file that ended).
const QUALITY_WAIT: Duration = Duration::from_millis(500);

/// A frame at the inference size, with what its refresh needs.
#[derive(Clone)]
pub struct Request {
    pub low: Gray,
    /// The client's day reference at the size of `low`, when it has one: the refresh fits
    /// the colour to it and takes the network's only where they disagree.
    pub reference: Option<Arc<Rgb>>,
    pub captured_at: Instant,
    /// The guided filter at the low resolution (radius scaled), as the client's calibration
    /// asks.
    pub filter: GuidedFilter,
}

impl Request {
    /// `nir` (already calibrated) shrunk to the inference size `settings` ask for, and the
    /// detail filter at that size (`calibration`'s own when it has one).
    pub fn of(
        nir: &Gray,
        settings: &InferSettings,
        calibration: Option<&Corrector>,
        captured_at: Instant,
    ) -> Request {
        let (lw, lh) = inference_size(
            nir.width,
            nir.height,
            f64::from(settings.scale),
            settings.max_pixels,
        );
        let full = calibration.map_or(settings.detail, |c| c.filter(settings.detail));
        Request {
            low: shrink_to(nir, lw, lh),
            reference: None,
            captured_at,
            filter: low_resolution(full, lw as f32 / nir.width.max(1) as f32),
        }
    }
}

/// Coefficients the network computed for one frame, with the NIR they were fitted on.
#[derive(Clone, Debug)]
pub struct Refreshed {
    pub coefficients: Coefficients,
    /// The frame's NIR at the inference size: what later frames are compared with for motion.
    pub reference: Gray,
    pub captured_at: Instant,
    /// The day reference given with the request no longer lines up with the NIR (the camera
    /// moved): these coefficients are the network's alone.
    pub reference_moved: bool,
}

impl Refreshed {
    /// [`Refreshed::fit`], with the camera's day reference at the size of `low` when it has
    /// one: fitted to the reference and blended with `colour` where they disagree
    /// ([`crate::reference::fit`]), or `colour` alone when the reference no longer lines up
    /// with the NIR (`reference_moved`).
    pub fn fit_with(
        filter: GuidedFilter,
        low: Gray,
        colour: &Rgb,
        reference: Option<&Rgb>,
        captured_at: Instant,
    ) -> Self {
        match reference {
            Some(r) if crate::reference::alignment(&low, r).moved() => Refreshed {
                reference_moved: true,
                ..Refreshed::fit(filter, low, colour, captured_at)
            },
            Some(r) => {
                let (coefficients, _) = crate::reference::fit(filter.radius, &low, r, colour, None);
                Refreshed {
                    coefficients,
                    reference: low,
                    captured_at,
                    reference_moved: false,
                }
            }
            None => Refreshed::fit(filter, low, colour, captured_at),
        }
    }

    /// Runs the fast guided filter's low-resolution half on a colorized frame.
    pub fn fit(filter: GuidedFilter, low: Gray, colour: &Rgb, captured_at: Instant) -> Self {
        let coefficients = filter.coefficients(&low.data, &colour.data, low.width, low.height, 3);
        Refreshed {
            coefficients,
            reference: low,
            captured_at,
            reference_moved: false,
        }
    }
}

/// One client's place between its thread and the model threads.
struct Slot {
    stats: Arc<FrameTimes>,
    /// At least this long between two of its refreshes (`Refresh::PerSecond`).
    min_interval: Duration,
    request: Mutex<Option<Request>>,
    result: Mutex<Option<Refreshed>>,
    /// Share of the newest frame's blocks that moved since the colour it shows was computed.
    motion: Mutex<f32>,
    /// When the model thread last refreshed it.
    refreshed_at: Mutex<Option<Instant>>,
    /// Set by the quality thread when it wants this client's next frame.
    quality_wanted: AtomicBool,
    quality_request: Mutex<Option<Request>>,
    quality_result: Mutex<Option<Refreshed>>,
}

struct Shared {
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Set when a request is posted; the model thread sleeps on it.
    posted: Mutex<bool>,
    wake: Condvar,
    /// The real-time model: the model thread's, and every-frame clients' through
    /// [`ColourService::colorize_now`].
    realtime: Mutex<Box<dyn Colorizer>>,
    name: String,
    stats: Arc<InferStats>,
}

/// The colorizers a service runs.
pub struct ServiceModels {
    /// Refreshes every client as often as the machine allows.
    pub realtime: Box<dyn Colorizer>,
    /// A tiered refresh: refreshes one client at a time, seconds apart; its colour stays
    /// wherever the scene has not moved since.
    pub quality: Option<Box<dyn Colorizer>>,
    /// At most this many clients' frames in one forward pass.
    pub max_batch: usize,
}

/// The running service; its threads stop when it is dropped.
pub struct ColourService {
    shared: Arc<Shared>,
    workers: Mutex<Vec<Worker>>,
}

impl ColourService {
    /// Starts the model thread (and the quality thread), at the idle OS priority. `stats`
    /// receives the batch and frame counts.
    pub fn start(models: ServiceModels, stats: Arc<InferStats>) -> std::io::Result<ColourService> {
        let ServiceModels {
            realtime,
            quality,
            max_batch,
        } = models;
        let shared = Arc::new(Shared {
            slots: Mutex::new(Vec::new()),
            posted: Mutex::new(false),
            wake: Condvar::new(),
            name: realtime.name(),
            realtime: Mutex::new(realtime),
            stats,
        });
        let mut workers = Vec::new();
        if let Some(q) = quality {
            let shared = shared.clone();
            workers.push(Worker::spawn("quality".into(), move |stop| {
                lower_priority();
                quality_loop(q.as_ref(), &shared, stop)
            })?);
        }
        let model_shared = shared.clone();
        workers.push(Worker::spawn("model".into(), move |stop| {
            lower_priority();
            refresh_loop(&model_shared, max_batch.max(1), stop)
        })?);
        Ok(ColourService {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// A new client: a camera or an element, refreshed at `refresh` (every frame, `Auto` and
    /// a rate all register; an every-frame client colours through [`Self::colorize_now`]),
    /// counted in `stats`. It leaves the service when dropped.
    pub fn register(&self, refresh: Refresh, stats: Arc<FrameTimes>) -> ColourClient {
        let min_interval = match refresh {
            Refresh::PerSecond(fps) => Duration::from_secs_f64(1.0 / fps),
            Refresh::Auto | Refresh::EveryFrame => Duration::ZERO,
        };
        let slot = Arc::new(Slot {
            stats,
            min_interval,
            request: Mutex::new(None),
            result: Mutex::new(None),
            motion: Mutex::new(1.0),
            refreshed_at: Mutex::new(None),
            quality_wanted: AtomicBool::new(false),
            quality_request: Mutex::new(None),
            quality_result: Mutex::new(None),
        });
        self.shared
            .slots
            .lock()
            .expect("slots lock")
            .push(slot.clone());
        ColourClient {
            shared: self.shared.clone(),
            slot,
            colour: CameraColour::default(),
        }
    }

    /// How many clients are registered now.
    pub fn clients(&self) -> usize {
        self.shared.slots.lock().expect("slots lock").len()
    }

    /// The real-time model's name.
    pub fn model_name(&self) -> &str {
        &self.shared.name
    }

    pub fn stats(&self) -> &InferStats {
        &self.shared.stats
    }

    /// The real-time model on `lows` now, on the caller's thread (the every-frame path): it
    /// waits for a refresh in progress, and counts as one batch.
    pub fn colorize_now(&self, lows: &[Gray]) -> Vec<Rgb> {
        let colours = self
            .shared
            .realtime
            .lock()
            .expect("model lock")
            .colorize_batch(lows);
        let stats = &self.shared.stats;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.frames.fetch_add(lows.len() as u64, Ordering::Relaxed);
        colours
    }

    /// Every frame through the network: `nir` (calibrated) shrunk as `settings` ask, coloured
    /// now, and its full resolution restored by the fast guided filter, as the every-frame
    /// stage does for a batch.
    pub fn colour_whole(
        &self,
        nir: &Gray,
        settings: &InferSettings,
        calibration: Option<&Corrector>,
    ) -> Rgb {
        let request = Request::of(nir, settings, calibration, Instant::now());
        self.colour_request(nir, settings, calibration, request).0
    }

    /// [`Self::colour_whole`] of a prepared request ([`Request::of`], with the client's day
    /// reference at its size when it has one); with a reference, also whether it no longer
    /// lines up with the NIR (see [`finish_frame`]).
    pub fn colour_request(
        &self,
        nir: &Gray,
        settings: &InferSettings,
        calibration: Option<&Corrector>,
        request: Request,
    ) -> (Rgb, Option<bool>) {
        let colour = self
            .colorize_now(std::slice::from_ref(&request.low))
            .remove(0);
        finish_frame(settings, calibration, nir, request, &colour)
    }

    /// Stops the model threads; clients keep the colour they had.
    pub fn stop(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        for w in workers {
            // The model thread may sleep on the condition variable: wake it to see its flag.
            self.shared.wake.notify_all();
            w.stop();
        }
    }
}

impl Drop for ColourService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a shared model could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Device(#[from] crate::models::net::DeviceError),
    #[error("model '{spec}': {source}")]
    Model {
        spec: String,
        source: Box<crate::models::ColorizerError>,
    },
    #[error("model '{spec}' on {device:?}: a classical colorizer runs on the CPU only; choose device cpu or auto, or a network's weights")]
    NotOnCuda { spec: String, device: tch::Device },
    #[error("cannot start the model thread: {0}")]
    Threads(#[from] std::io::Error),
}

/// A model opened once per process and the service that runs it, shared by every client that
/// asks for the same model on the same device (one weight copy, one model thread).
pub struct SharedModel {
    pub service: ColourService,
    /// The network's card, when the model is one: its inference size and detail filter.
    pub net: Option<crate::models::net::NetConfig>,
    pub device: tch::Device,
}

impl SharedModel {
    /// What the model was trained for: its inference size and detail filter (a network's
    /// card; half size and the still-image filter for a classical colorizer), refreshed at
    /// `refresh`, blending at [`super::BLEND`].
    pub fn settings(&self, refresh: Refresh) -> InferSettings {
        let (scale, max_pixels, detail) = match &self.net {
            Some(cfg) => (
                cfg.scale as f32,
                cfg.max_pixels,
                GuidedFilter {
                    radius: cfg.detail_radius,
                    eps: cfg.detail_eps as f32,
                },
            ),
            None => (
                0.5,
                0,
                GuidedFilter {
                    radius: crate::detail::STILL_RADIUS,
                    eps: crate::detail::STILL_EPS,
                },
            ),
        };
        InferSettings {
            scale,
            max_pixels,
            max_batch: SHARED_MAX_BATCH,
            max_wait: Duration::ZERO,
            detail,
            refresh,
            blend: super::BLEND,
        }
    }
}

/// Clients of a shared model batched in one forward pass: four 640x480 streams, what this
/// project's real-time bar asks of one machine.
pub const SHARED_MAX_BATCH: usize = 4;

type Registry = Mutex<Vec<((String, tch::Device), std::sync::Weak<SharedModel>)>>;

/// The models open in this process.
static SHARED: Registry = Mutex::new(Vec::new());

/// The model `spec` (a built-in name or a weights file) on `device` (auto, cpu, cuda), opened
/// once per process: every caller that asks for the same pair while one is alive gets that
/// one. It is closed (its threads stopped) when the last caller drops it.
pub fn open_shared(spec: &str, device_choice: &str) -> Result<Arc<SharedModel>, OpenError> {
    let device = crate::models::net::pick_device(device_choice)?;
    let key = (spec.to_string(), device);
    let mut registry = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    registry.retain(|(_, w)| w.strong_count() > 0);
    if let Some(model) = registry
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(model);
    }
    let (colorizer, net) =
        crate::models::load_bare(spec, device).map_err(|source| OpenError::Model {
            spec: spec.to_string(),
            source: Box::new(source),
        })?;
    if net.is_none() && device_choice == "cuda" {
        return Err(OpenError::NotOnCuda {
            spec: spec.to_string(),
            device,
        });
    }
    let service = ColourService::start(
        ServiceModels {
            realtime: colorizer,
            quality: None,
            max_batch: SHARED_MAX_BATCH,
        },
        Arc::new(InferStats::default()),
    )?;
    let model = Arc::new(SharedModel {
        service,
        net,
        device,
    });
    registry.push((key, Arc::downgrade(&model)));
    Ok(model)
}

/// The full-resolution colour of a frame whose request the network coloured `colour`: with
/// the request's day reference, the reference fitted per block as a refresh is
/// ([`Refreshed::fit_with`]) and applied to the frame's own NIR, and whether the reference no
/// longer lined up (`Some(moved)`); without one, the fast guided filter ([`restore_frame`]).
/// The output calibration is applied either way.
pub(super) fn finish_frame(
    settings: &InferSettings,
    calibration: Option<&Corrector>,
    nir: &Gray,
    request: Request,
    colour: &Rgb,
) -> (Rgb, Option<bool>) {
    match request.reference {
        Some(r) => {
            let fitted = Refreshed::fit_with(
                request.filter,
                request.low,
                colour,
                Some(&r),
                request.captured_at,
            );
            let (w, h) = (nir.width, nir.height);
            let mut rgb = Rgb::new(w, h, fitted.coefficients.apply(&nir.data, w, h));
            if let Some(c) = calibration {
                c.colour(&mut rgb);
            }
            (rgb, Some(fitted.reference_moved))
        }
        None => (
            restore_frame(settings, calibration, nir, &request.low, colour),
            None,
        ),
    }
}

/// Full-resolution colour for `nir` from colour computed on `low`: the detail filter at full
/// resolution (`calibration`'s own when it has one), then the output calibration.
pub(super) fn restore_frame(
    settings: &InferSettings,
    calibration: Option<&Corrector>,
    nir: &Gray,
    low: &Gray,
    colour: &Rgb,
) -> Rgb {
    let filter = calibration.map_or(settings.detail, |c| c.filter(settings.detail));
    let mut rgb = restore(
        filter,
        low.width as f32 / nir.width.max(1) as f32,
        nir,
        low,
        colour,
    );
    if let Some(c) = calibration {
        c.colour(&mut rgb);
    }
    rgb
}

/// One client of a [`ColourService`]: the colour applied to its frames, and its place in the
/// service's queue of refreshes.
pub struct ColourClient {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    colour: CameraColour,
}

impl ColourClient {
    pub fn stats(&self) -> &Arc<FrameTimes> {
        &self.slot.stats
    }

    /// Takes what the model threads finished for this client since the last frame. `Some`
    /// when a real-time refresh arrived, with whether its day reference no longer lined up.
    pub fn collect(&mut self) -> Option<bool> {
        let moved = self
            .slot
            .result
            .lock()
            .expect("result lock")
            .take()
            .map(|r| {
                let moved = r.reference_moved;
                self.colour.accept(r);
                moved
            });
        if let Some(q) = self.slot.quality_result.lock().expect("result lock").take() {
            self.colour.accept_quality(q);
        }
        moved
    }

    /// The colour of a frame captured `at`, whose calibrated NIR is `nir` and `low` at the
    /// inference size: the current coefficients, moved `blend` towards the newest refresh.
    /// Its NIR in gray until the first refresh arrives.
    pub fn apply(&mut self, nir: &Gray, low: &Gray, at: Instant, blend: Duration) -> Rgb {
        *self.slot.motion.lock().expect("motion lock") = self.colour.motion(low);
        self.colour.step(at, blend);
        if let Some(from) = self.colour.computed_from() {
            let age = at.saturating_duration_since(from);
            self.slot.stats.colour_age_us.store(
                age.as_micros().min(u128::from(u64::MAX)) as u64,
                Ordering::Relaxed,
            );
        }
        self.colour.colour(nir)
    }

    /// Hands this frame to the model threads as the client's newest, replacing an older one
    /// not yet taken.
    pub fn post(&self, request: Request) {
        if self.slot.quality_wanted.swap(false, Ordering::SeqCst) {
            *self.slot.quality_request.lock().expect("request lock") = Some(request.clone());
        }
        *self.slot.request.lock().expect("request lock") = Some(request);
        *self.shared.posted.lock().expect("post lock") = true;
        self.shared.wake.notify_one();
    }

    /// One frame after [`Self::collect`]: the colour of `nir` (already calibrated) at the
    /// request's time ([`Self::apply`], then the output calibration), and the request handed
    /// to the model threads ([`Self::post`]).
    pub fn colour(
        &mut self,
        nir: &Gray,
        request: Request,
        calibration: Option<&Corrector>,
        blend: Duration,
    ) -> Rgb {
        let mut rgb = self.apply(nir, &request.low, request.captured_at, blend);
        if let Some(c) = calibration {
            c.colour(&mut rgb);
        }
        self.post(request);
        rgb
    }
}

impl Drop for ColourClient {
    fn drop(&mut self) {
        self.shared
            .slots
            .lock()
            .expect("slots lock")
            .retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

/// A client the model thread could refresh now.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// When it was last refreshed; `None`: never (it shows gray until it is).
    pub refreshed_at: Option<Instant>,
    /// Share of its blocks that moved since its colour was computed.
    pub motion: f32,
    /// It waits until this long after its last refresh.
    pub min_interval: Duration,
}

/// The clients to refresh now, most urgent first, at most `max`: the never-refreshed, then by
/// the age of their colour weighted up by motion. Clients refreshed less than their
/// `min_interval` ago wait.
pub fn pick(candidates: &[Option<Candidate>], now: Instant, max: usize) -> Vec<usize> {
    let mut due: Vec<(f64, usize)> = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = c.as_ref()?;
            match c.refreshed_at {
                None => Some((f64::INFINITY, i)),
                Some(t) => {
                    let age = now.saturating_duration_since(t);
                    (age >= c.min_interval).then(|| {
                        (
                            age.as_secs_f64() * (1.0 + MOTION_PRIORITY * f64::from(c.motion)),
                            i,
                        )
                    })
                }
            }
        })
        .collect();
    due.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    due.into_iter().take(max).map(|(_, i)| i).collect()
}

/// The quality model's loop: client after client, it asks for the next frame, colours it and
/// hands the coefficients back.
fn quality_loop(colorizer: &dyn Colorizer, shared: &Shared, stop: &AtomicBool) {
    let mut next = 0;
    while !stop.load(Ordering::SeqCst) {
        let slot = {
            let slots = shared.slots.lock().expect("slots lock");
            if slots.is_empty() {
                None
            } else {
                Some(slots[next % slots.len()].clone())
            }
        };
        next += 1;
        let Some(slot) = slot else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        slot.quality_wanted.store(true, Ordering::SeqCst);
        let asked = Instant::now();
        let request = loop {
            if let Some(r) = slot.quality_request.lock().expect("request lock").take() {
                break Some(r);
            }
            if stop.load(Ordering::SeqCst) || asked.elapsed() > QUALITY_WAIT {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let Some(r) = request else {
            slot.quality_wanted.store(false, Ordering::SeqCst);
            continue;
        };
        let colour = colorizer
            .colorize_batch(std::slice::from_ref(&r.low))
            .remove(0);
        let refreshed = Refreshed::fit_with(
            r.filter,
            r.low,
            &colour,
            r.reference.as_deref(),
            r.captured_at,
        );
        *slot.quality_result.lock().expect("result lock") = Some(refreshed);
        slot.stats.quality_refreshes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Drops this thread to the idle scheduling class: it runs only on CPU time no other thread
/// wants, and a waking frame thread always preempts it. Threads it starts (libtorch's intra-op
/// pool is created by the first thread that runs a model) inherit the class.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives
        // the call, and failure is reported through the return value.
        let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0;
        if failed {
            tracing::warn!(
                "could not move the model thread to the idle scheduling class ({}); refreshes may slow frames when the CPU is short",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn refresh_loop(shared: &Shared, max_batch: usize, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let slots: Vec<Arc<Slot>> = shared.slots.lock().expect("slots lock").clone();
        let candidates: Vec<Option<Candidate>> = slots
            .iter()
            .map(|s| {
                let waiting = s.request.lock().expect("request lock").is_some();
                waiting.then(|| Candidate {
                    refreshed_at: *s.refreshed_at.lock().expect("refresh lock"),
                    motion: *s.motion.lock().expect("motion lock"),
                    min_interval: s.min_interval,
                })
            })
            .collect();
        let chosen = pick(&candidates, now, max_batch);
        if chosen.is_empty() {
            // Sleep until a frame is posted, or until the earliest rate-limited client is due.
            let posted = shared.posted.lock().expect("post lock");
            let wait = candidates
                .iter()
                .flatten()
                .map(|c| c.min_interval.min(Duration::from_millis(5)))
                .min()
                .unwrap_or(Duration::from_millis(50));
            let (mut posted, _) = shared
                .wake
                .wait_timeout_while(posted, wait, |p| !*p)
                .expect("post lock");
            *posted = false;
            continue;
        }
        let (mut taken, mut lows) = (Vec::new(), Vec::new());
        for i in chosen {
            if let Some(r) = slots[i].request.lock().expect("request lock").take() {
                taken.push((i, r.filter, r.captured_at, r.reference));
                lows.push(r.low);
            }
        }
        let colours = shared
            .realtime
            .lock()
            .expect("model lock")
            .colorize_batch(&lows);
        let runs = lows.len() as u64;
        for (((i, filter, captured_at, reference), low), colour) in
            taken.into_iter().zip(lows).zip(colours)
        {
            let refreshed =
                Refreshed::fit_with(filter, low, &colour, reference.as_deref(), captured_at);
            let slot = &slots[i];
            *slot.result.lock().expect("result lock") = Some(refreshed);
            let done = Instant::now();
            let previous = slot
                .refreshed_at
                .lock()
                .expect("refresh lock")
                .replace(done);
            slot.stats.refreshes.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = previous {
                slot.stats
                    .refresh_interval
                    .observe(done.saturating_duration_since(p));
            }
        }
        shared.stats.batches.fetch_add(1, Ordering::Relaxed);
        shared.stats.frames.fetch_add(runs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_go_first_to_never_refreshed_then_to_the_stalest_and_most_moved() {
        let now = Instant::now();
        let ago = |ms| Some(now - Duration::from_millis(ms));
        let c = |refreshed_at, motion, min_ms| {
            Some(Candidate {
                refreshed_at,
                motion,
                min_interval: Duration::from_millis(min_ms),
            })
        };
        let candidates = [
            c(ago(100), 0.0, 0),
            None,
            c(None, 0.0, 0),
            c(ago(50), 1.0, 0),
            c(ago(10), 0.0, 0),
        ];
        assert_eq!(pick(&candidates, now, 8), vec![2, 3, 0, 4]);
        assert_eq!(pick(&candidates, now, 2), vec![2, 3]);
        // The last at most 20 refreshes a second: refreshed 10 ms ago, it waits; the others
        // keep their order.
        let mut limited = candidates;
        limited[4] = c(ago(10), 0.0, 50);
        assert_eq!(pick(&limited, now, 8), vec![2, 3, 0]);
    }

    /// Red twice the NIR, green the NIR, blue zero: a colour no gray frame has.
    struct Tint;

    impl Colorizer for Tint {
        fn name(&self) -> String {
            "tint".into()
        }
        fn colorize(&self, nir: &Gray) -> Rgb {
            let n = nir.data.len();
            let mut data = vec![0.0; 3 * n];
            for (i, v) in nir.data.iter().enumerate() {
                data[i] = (2.0 * v).min(1.0);
                data[n + i] = *v;
            }
            Rgb::new(nir.width, nir.height, data)
        }
    }

    fn settings() -> InferSettings {
        InferSettings {
            scale: 0.5,
            max_pixels: 0,
            max_batch: 4,
            max_wait: Duration::ZERO,
            detail: GuidedFilter {
                radius: 4,
                eps: 1e-4,
            },
            refresh: Refresh::Auto,
            blend: Duration::ZERO,
        }
    }

    #[test]
    fn clients_share_one_service_and_leave_it_when_dropped() {
        let stats = Arc::new(InferStats::default());
        let service = ColourService::start(
            ServiceModels {
                realtime: Box::new(Tint),
                quality: None,
                max_batch: 4,
            },
            stats.clone(),
        )
        .unwrap();
        let nir = Gray::new(
            32,
            24,
            (0..32 * 24).map(|i| (i % 32) as f32 / 64.0).collect(),
        );
        let (ta, tb) = (Arc::<FrameTimes>::default(), Arc::<FrameTimes>::default());
        let mut a = service.register(Refresh::Auto, ta.clone());
        let mut b = service.register(Refresh::Auto, tb.clone());
        assert_eq!(service.clients(), 2);
        // Gray until a refresh arrives, then the model's colour, for each client.
        let frame = |c: &mut ColourClient| {
            c.collect();
            let request = Request::of(&nir, &settings(), None, Instant::now());
            c.colour(&nir, request, None, Duration::ZERO)
        };
        let first = frame(&mut a);
        assert_eq!(first.plane(0), first.plane(1));
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut ra, mut rb) = (first.clone(), first);
        while Instant::now() < deadline
            && (ra.plane(2) == ra.plane(1) || rb.plane(2) == rb.plane(1))
        {
            std::thread::sleep(Duration::from_millis(5));
            ra = frame(&mut a);
            rb = frame(&mut b);
        }
        for (rgb, times) in [(&ra, &ta), (&rb, &tb)] {
            let blue: f32 =
                rgb.plane(2).iter().map(|v| v.abs()).sum::<f32>() / nir.data.len() as f32;
            assert!(blue < 0.02, "blue {blue}: not the model's colour");
            assert!(times.refreshes.load(Ordering::Relaxed) >= 1);
        }
        assert!(stats.frames.load(Ordering::Relaxed) >= 2);
        drop(a);
        assert_eq!(service.clients(), 1);
        // Every frame through the network, on the caller's thread: the whole path at once.
        let whole = service.colour_whole(&nir, &settings(), None);
        assert!(whole.plane(2).iter().all(|v| v.abs() < 0.05));
        drop(b);
        assert_eq!(service.clients(), 0);
    }
}
