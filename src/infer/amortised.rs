//! Amortised inference for video: every frame gets its camera's current guided-filter
//! coefficients applied to its own full-resolution NIR, while the network refreshes those
//! coefficients, camera by camera, as often as the machine allows. Detail always comes from the
//! current frame; colour, which changes slowly in a scene, is what is amortised.
//!
//! The daemon's per-frame thread (`infer`) is here; the refreshes come from a
//! [`ColourService`] whose model thread runs at a lower OS priority, so when the machine is
//! short of CPU the refresh rate falls before any frame is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;

use super::scene::Scenes;
use super::service::{ColourClient, ColourService, Refreshed, Request, ServiceModels};
use super::{next_frame, ColourFrame, InferSettings, InferStats};
use crate::calibrate::Corrector;
use crate::capture::Frame;
use crate::detail::Coefficients;
use crate::images::planes::{Gray, Rgb};
use crate::reference::store::ReferenceSettings;
use crate::runtime::queue::{Consumer, NewestWins};
use crate::runtime::worker::Worker;

/// Side, in low-resolution pixels, of the blocks motion is measured on: 8 is 16x16 frame pixels
/// at the default half size, about the size of an H.264 macroblock, and small enough that a
/// person crossing a 640x480 view covers several blocks.
pub const MOTION_BLOCK: usize = 8;

/// Change of a block's mean NIR (in [0, 1] units) above which it counts as moved: about 5 grey
/// levels. Sensor noise averages down over the block's 64 pixels (2% per pixel is 0.25% on the
/// mean), while an object entering the block shifts its mean by a share of its contrast.
pub const MOTION_THRESHOLD: f32 = 0.02;

/// One camera's colour on the per-frame path: the coefficients applied to its frames, which
/// follow the newest refresh with a short exponential moving average (damping flicker), except
/// in blocks that moved, where they jump to it at once (no stale colour dragged behind motion).
#[derive(Debug, Default)]
pub struct CameraColour {
    applied: Option<Coefficients>,
    target: Option<Refreshed>,
    /// Per low-resolution pixel: 1 where the newest refresh replaces the colour at once.
    snap: Vec<f32>,
    /// This frame's blend weight per low-resolution pixel, kept to spare an allocation a frame.
    weights: Vec<f32>,
    last_frame: Option<Instant>,
    /// The quality model's newest refresh (tiered refresh): the colour of every block that has
    /// not moved since its frame.
    quality: Option<Refreshed>,
}

impl CameraColour {
    /// Takes a refresh as the new target. Blocks whose NIR changed between the previous
    /// target's frame and this one snap to it; a first refresh (or a new frame size) is applied
    /// whole at once.
    pub fn accept(&mut self, mut refreshed: Refreshed) {
        if let Some(q) = &self.quality {
            take_static(&mut refreshed, q);
        }
        let size = refreshed.coefficients.size();
        if self.applied.as_ref().map(Coefficients::size) != Some(size) {
            self.applied = Some(refreshed.coefficients.clone());
            self.target = None;
        }
        self.snap = match &self.target {
            Some(previous) => block_mask(&moved_blocks(&previous.reference, &refreshed.reference)),
            None => vec![1.0; size.0 * size.1],
        };
        self.target = Some(refreshed);
    }

    /// Takes the quality model's refresh (tiered refresh): from now on the blocks that have not
    /// moved since its frame show its colour, the real-time model's refreshes the others. The
    /// colour moves to it at the blend rate, as to any refresh.
    pub fn accept_quality(&mut self, quality: Refreshed) {
        if let Some(target) = &mut self.target {
            take_static(target, &quality);
        }
        self.quality = Some(quality);
    }

    /// Moves the applied coefficients towards the target for a frame captured at `at`: the
    /// fraction `1 - exp(-dt / blend)` of the way for `dt` since the previous frame (all of
    /// it when `blend` is zero), and all of it in snapped blocks.
    pub fn step(&mut self, at: Instant, blend: Duration) {
        let dt = self
            .last_frame
            .map_or(Duration::MAX, |t| at.saturating_duration_since(t));
        self.last_frame = Some(at);
        let (Some(applied), Some(target)) = (&mut self.applied, &self.target) else {
            return;
        };
        let alpha = if blend.is_zero() || dt == Duration::MAX {
            1.0
        } else {
            1.0 - (-dt.as_secs_f32() / blend.as_secs_f32()).exp()
        };
        self.weights.clear();
        self.weights.extend(self.snap.iter().map(|&s| s.max(alpha)));
        applied.blend(&target.coefficients, &self.weights);
    }

    /// Share of `low`'s blocks that moved since the target's frame (1 before any refresh).
    pub fn motion(&self, low: &Gray) -> f32 {
        match &self.target {
            Some(t) if (t.reference.width, t.reference.height) == (low.width, low.height) => {
                let moved = moved_blocks(&t.reference, low);
                let count = moved.blocks.iter().filter(|&&m| m).count();
                count as f32 / moved.blocks.len().max(1) as f32
            }
            _ => 1.0,
        }
    }

    /// The colour of a frame whose full-resolution NIR is `nir`: its NIR in every channel
    /// until the first refresh arrives.
    pub fn colour(&self, nir: &Gray) -> Rgb {
        match &self.applied {
            Some(c) => Rgb::new(
                nir.width,
                nir.height,
                c.apply(&nir.data, nir.width, nir.height),
            ),
            None => nir.to_rgb(),
        }
    }

    /// Capture time of the frame the target was computed from.
    pub fn computed_from(&self) -> Option<Instant> {
        self.target.as_ref().map(|t| t.captured_at)
    }
}

/// Gives `refreshed` the quality refresh's coefficients in every block whose NIR did not move
/// between the two frames; a quality refresh of another size (the frame size changed) is
/// ignored.
fn take_static(refreshed: &mut Refreshed, quality: &Refreshed) {
    let size = refreshed.coefficients.size();
    if quality.coefficients.size() != size
        || quality.coefficients.channels() != refreshed.coefficients.channels()
        || (quality.reference.width, quality.reference.height) != size
    {
        return;
    }
    let still: Vec<f32> = block_mask(&moved_blocks(&quality.reference, &refreshed.reference))
        .into_iter()
        .map(|moved| 1.0 - moved)
        .collect();
    refreshed.coefficients.blend(&quality.coefficients, &still);
}

/// Which blocks of `MOTION_BLOCK` pixels differ between two planes of one size.
pub struct MovedBlocks {
    pub blocks: Vec<bool>,
    pub columns: usize,
    width: usize,
    height: usize,
}

/// Blocks whose mean differs by more than [`MOTION_THRESHOLD`]; every block when the sizes
/// differ. Comparing means, not pixels, keeps noise from counting as motion.
pub fn moved_blocks(a: &Gray, b: &Gray) -> MovedBlocks {
    let (w, h) = (b.width, b.height);
    let columns = w.div_ceil(MOTION_BLOCK);
    let rows = h.div_ceil(MOTION_BLOCK);
    if (a.width, a.height) != (w, h) {
        return MovedBlocks {
            blocks: vec![true; columns * rows],
            columns,
            width: w,
            height: h,
        };
    }
    let mut sums = vec![0.0f32; columns * rows];
    let mut counts = vec![0u32; columns * rows];
    for y in 0..h {
        let (ra, rb) = (&a.data[y * w..][..w], &b.data[y * w..][..w]);
        let row = (y / MOTION_BLOCK) * columns;
        for x in 0..w {
            sums[row + x / MOTION_BLOCK] += ra[x] - rb[x];
            counts[row + x / MOTION_BLOCK] += 1;
        }
    }
    MovedBlocks {
        blocks: sums
            .iter()
            .zip(&counts)
            .map(|(&s, &n)| s.abs() > MOTION_THRESHOLD * n as f32)
            .collect(),
        columns,
        width: w,
        height: h,
    }
}

/// Per pixel: 1 inside a moved block, else 0.
fn block_mask(moved: &MovedBlocks) -> Vec<f32> {
    let mut mask = Vec::with_capacity(moved.width * moved.height);
    for y in 0..moved.height {
        let row = (y / MOTION_BLOCK) * moved.columns;
        mask.extend(
            (0..moved.width).map(|x| f32::from(u8::from(moved.blocks[row + x / MOTION_BLOCK]))),
        );
    }
    mask
}

/// The running stage: the service's model threads, and the per-frame thread.
pub(super) struct Threads {
    pub(super) frames: Worker,
    pub(super) service: Arc<ColourService>,
}

pub(super) fn spawn(
    models: ServiceModels,
    inputs: Vec<Consumer<Frame>>,
    outputs: HashMap<Arc<str>, NewestWins<ColourFrame>>,
    config: InferSettings,
    calibrations: HashMap<Arc<str>, Corrector>,
    references: HashMap<Arc<str>, ReferenceSettings>,
    stats: Arc<InferStats>,
) -> std::io::Result<Threads> {
    let service = Arc::new(ColourService::start(models, stats.clone())?);
    let clients: HashMap<Arc<str>, ColourClient> = outputs
        .keys()
        .map(|id| {
            let times = stats.cameras.get(id).cloned().unwrap_or_default();
            (id.clone(), service.register(config.refresh, times))
        })
        .collect();
    let frames = Worker::spawn("infer".into(), move |stop| {
        let mut stage = FrameStage {
            clients,
            outputs: &outputs,
            calibrations: &calibrations,
            config,
            stats: &stats,
            scenes: Scenes::new(references),
        };
        stage.run(&inputs, stop);
    })?;
    Ok(Threads { frames, service })
}

/// What the per-frame thread works with.
struct FrameStage<'a> {
    /// Each camera's colour and its place in the service's refreshes.
    clients: HashMap<Arc<str>, ColourClient>,
    outputs: &'a HashMap<Arc<str>, NewestWins<ColourFrame>>,
    calibrations: &'a HashMap<Arc<str>, Corrector>,
    config: InferSettings,
    stats: &'a InferStats,
    /// Each camera's day/night mode and day reference.
    scenes: Scenes,
}

impl FrameStage<'_> {
    fn run(&mut self, inputs: &[Consumer<Frame>], stop: &AtomicBool) {
        let n = inputs.len();
        let mut live = vec![true; n];
        let mut next_in_line = 0;
        while !stop.load(Ordering::SeqCst) {
            // Round robin over the cameras with a frame waiting, so none waits behind another's
            // burst; otherwise block briefly (a stop request is seen within 50 ms).
            let mut served = false;
            for k in 0..n {
                let i = (next_in_line + k) % n;
                if !live[i] {
                    continue;
                }
                match inputs[i].try_recv() {
                    Ok(frame) => {
                        self.frame(frame);
                        served = true;
                        next_in_line = (i + 1) % n;
                        break;
                    }
                    Err(TryRecvError::Disconnected) => live[i] = false,
                    Err(TryRecvError::Empty) => {}
                }
            }
            if served {
                continue;
            }
            match next_frame(inputs, &mut live, Duration::from_millis(50)) {
                Some(frame) => self.frame(frame),
                None if live.iter().all(|l| !l) => std::thread::sleep(Duration::from_millis(50)),
                None => {}
            }
        }
        // Capture stops first: what it queued is still coloured, so recordings end with the
        // last frame captured.
        for rx in inputs {
            for frame in rx.try_iter() {
                self.frame(frame);
            }
        }
    }

    fn frame(&mut self, mut frame: Frame) {
        let started = Instant::now();
        let camera = frame.meta.camera.clone();
        if !self.clients.contains_key(&camera) || !self.outputs.contains_key(&camera) {
            self.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let calibration = self.calibrations.get(&camera);
        if let Some(day) = frame.colour.take() {
            if let Some(sample) = self
                .scenes
                .day(&camera, &day, frame.meta.captured_at, self.stats)
            {
                let day = super::scene::DayFrame {
                    meta: frame.meta,
                    luma: &frame.luma,
                    rgb: day,
                    sample,
                    started,
                };
                self.scenes
                    .pass_through(day, self.calibrations, self.outputs, self.stats);
                return;
            }
        }
        if let Some(c) = calibration {
            c.nir(&mut frame.luma);
        }
        let mut request = Request::of(
            &frame.luma,
            &self.config,
            calibration,
            frame.meta.captured_at,
        );
        let client = self.clients.get_mut(&camera).expect("checked above");
        if let Some(moved) = client.collect() {
            self.scenes.aligned(&camera, moved, self.stats);
        }
        let (lw, lh) = (request.low.width, request.low.height);
        request.reference = self.scenes.reference_at(
            &camera,
            (frame.luma.width, frame.luma.height),
            (lw, lh),
            self.stats,
        );
        let rgb = client.colour(&frame.luma, request, calibration, self.config.blend);
        if let Some(s) = self.stats.snapshots.get(&camera) {
            s.offer(&frame.luma, &rgb);
        }

        if let Some(t) = self.stats.cameras.get(&camera) {
            t.queued
                .observe(started.saturating_duration_since(frame.meta.captured_at));
            t.processed.observe(started.elapsed());
        }
        self.outputs[&camera].push(ColourFrame {
            rgb,
            meta: frame.meta,
            batch_size: 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detail::lowres::{restore, shrink_to};
    use crate::detail::GuidedFilter;
    use crate::infer::Refresh;
    use crate::infer::BLEND;
    use crate::models::colorizer::Colorizer;
    use crate::runtime::queue::{lossless, newest_wins};

    /// A colorizer whose colour is a fixed function of the NIR, optionally slow.
    struct Tint {
        delay: Duration,
    }

    impl Colorizer for Tint {
        fn name(&self) -> String {
            "tint".into()
        }
        fn colorize(&self, nir: &Gray) -> Rgb {
            std::thread::sleep(self.delay);
            let mut data = nir.data.clone();
            data.extend(nir.data.iter().map(|v| 0.5 * v));
            data.extend(nir.data.iter().map(|v| 1.0 - v));
            Rgb::new(nir.width, nir.height, data)
        }
    }

    /// A textured NIR frame that moves with `shift`.
    fn nir(w: usize, h: usize, shift: usize) -> Gray {
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w + shift) as f32, (i / w) as f32);
                0.5 + 0.3 * (x * 0.21).sin() * (y * 0.13).cos() + 0.1 * (x * 0.05).cos()
            })
            .collect();
        Gray::new(w, h, data)
    }

    const FULL: GuidedFilter = GuidedFilter {
        radius: 8,
        eps: 1e-3,
    };
    const LOW: GuidedFilter = GuidedFilter {
        radius: 4,
        eps: 1e-3,
    };

    fn refresh_of(frame: &Gray, at: Instant) -> (Gray, Rgb, Refreshed) {
        let low = shrink_to(frame, frame.width / 2, frame.height / 2);
        let colour = Tint {
            delay: Duration::ZERO,
        }
        .colorize(&low);
        let r = Refreshed::fit(LOW, low.clone(), &colour, at);
        (low, colour, r)
    }

    /// A refresh of `frame` (at the low size) whose colour is `rgb` everywhere.
    fn flat_refresh(low: &Gray, rgb: [f32; 3], at: Instant) -> Refreshed {
        let n = low.width * low.height;
        let data = rgb
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, n))
            .collect();
        let colour = Rgb::new(low.width, low.height, data);
        Refreshed::fit(LOW, low.clone(), &colour, at)
    }

    #[test]
    fn a_tiered_refresh_shows_the_quality_colour_where_the_scene_is_still_and_the_real_time_one_where_it_moved(
    ) {
        let (w, h) = (64, 48);
        let still = nir(w, h, 0);
        // The same scene with one 16x16 block changed, as if something walked in.
        let mut moved = still.clone();
        for y in 8..24 {
            for x in 32..48 {
                moved.data[y * w + x] = 0.05;
            }
        }
        let t0 = Instant::now();
        let (low_still, low_moved) = (
            shrink_to(&still, w / 2, h / 2),
            shrink_to(&moved, w / 2, h / 2),
        );
        let mut camera = CameraColour::default();
        // The quality model saw the still scene as red, the real-time model sees blue.
        camera.accept(flat_refresh(&low_still, [0.0, 0.0, 0.8], t0));
        camera.accept_quality(flat_refresh(&low_still, [0.8, 0.0, 0.0], t0));
        camera.accept(flat_refresh(
            &low_moved,
            [0.0, 0.0, 0.8],
            t0 + Duration::from_millis(40),
        ));
        camera.step(t0 + Duration::from_millis(40), Duration::ZERO);
        let out = camera.colour(&moved);
        let px = |x: usize, y: usize| [0, 1, 2].map(|c| out.data[c * w * h + y * w + x]);
        let (corner, walked_in) = (px(4, 40), px(40, 16));
        assert!(corner[0] > 0.6 && corner[2] < 0.2, "still: {corner:?}");
        assert!(
            walked_in[2] > 0.6 && walked_in[0] < 0.2,
            "moved: {walked_in:?}"
        );
        // Without a quality refresh it is the real-time colour everywhere.
        let mut alone = CameraColour::default();
        alone.accept(flat_refresh(&low_moved, [0.0, 0.0, 0.8], t0));
        alone.step(t0, Duration::ZERO);
        let out = alone.colour(&moved);
        assert!(out.data[2 * w * h + 40 * w + 4] > 0.6);
        // A quality refresh of another frame size is ignored, not blended.
        let mut resized = CameraColour::default();
        resized.accept(flat_refresh(&low_moved, [0.0, 0.0, 0.8], t0));
        resized.accept_quality(flat_refresh(
            &shrink_to(&still, 16, 12),
            [0.8, 0.0, 0.0],
            t0,
        ));
        resized.step(t0, Duration::ZERO);
        assert!(resized.colour(&moved).data[2 * w * h + 40 * w + 4] > 0.6);
    }

    #[test]
    fn refreshed_every_frame_without_blending_it_is_the_fast_guided_filter_exactly() {
        let mut camera = CameraColour::default();
        let t0 = Instant::now();
        for k in 0..4 {
            let frame = nir(96, 64, 7 * k);
            let at = t0 + Duration::from_millis(33 * k as u64);
            let (low, colour, r) = refresh_of(&frame, at);
            camera.accept(r);
            camera.step(at, Duration::ZERO);
            let want = restore(FULL, 0.5, &frame, &low, &colour);
            assert_eq!(camera.colour(&frame), want, "frame {k}");
        }
    }

    #[test]
    fn before_any_refresh_a_camera_shows_its_nir_in_gray() {
        let camera = CameraColour::default();
        let frame = nir(32, 16, 0);
        assert_eq!(camera.colour(&frame), frame.to_rgb());
        assert_eq!(camera.motion(&frame), 1.0);
    }

    #[test]
    fn blending_converges_to_the_newest_refresh() {
        let t0 = Instant::now();
        let frame = nir(96, 64, 0);
        let mut camera = CameraColour::default();
        camera.accept(refresh_of(&frame, t0).2);
        camera.step(t0, BLEND);
        // The same NIR, coloured differently: no block moves, so the colour blends.
        let low = shrink_to(&frame, 48, 32);
        let other = Rgb::new(48, 32, vec![0.25; 3 * 48 * 32]);
        let target = Refreshed::fit(LOW, low, &other, t0);
        let goal = target.coefficients.apply(&frame.data, 96, 64);
        camera.accept(target);
        let distance = |c: &CameraColour| {
            c.colour(&frame)
                .data
                .iter()
                .zip(&goal)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        };
        let mut last = distance(&camera);
        assert!(last > 0.1, "the two refreshes should differ, by {last}");
        for k in 1..=30 {
            camera.step(t0 + Duration::from_millis(33 * k), BLEND);
            let d = distance(&camera);
            assert!(d < last, "frame {k}: {d} did not fall below {last}");
            if k == 1 {
                // One frame of 33 ms against a 100 ms time constant: 28% of the way.
                let expected = last * (-0.33f32).exp();
                assert!((d - expected).abs() < 0.01, "{d} vs {expected}");
            }
            last = d;
        }
        assert!(last < 1e-4, "after 1 s the colour is still {last} away");
    }

    #[test]
    fn a_moved_block_takes_the_new_colour_at_once_while_the_rest_blends() {
        let t0 = Instant::now();
        let (w, h) = (128, 64);
        let still = nir(w, h, 0);
        let mut camera = CameraColour::default();
        camera.accept(refresh_of(&still, t0).2);
        camera.step(t0, BLEND);
        // An object enters the top-left 32x32 (16x16 at low resolution: 2x2 motion blocks).
        let mut moved = still.clone();
        for y in 0..32 {
            for x in 0..32 {
                moved.data[y * w + x] = 0.95;
            }
        }
        let at = t0 + Duration::from_millis(33);
        let low = shrink_to(&moved, w / 2, h / 2);
        assert_eq!(camera.motion(&low), 4.0 / 32.0, "4 of 8x4 blocks moved");
        let other = Rgb::new(w / 2, h / 2, vec![0.25; 3 * (w / 2) * (h / 2)]);
        let target = Refreshed::fit(LOW, low, &other, at);
        let goal = target.coefficients.clone();
        let before = camera.applied.clone().unwrap();
        camera.accept(target);
        camera.step(at, BLEND);
        let applied = camera.applied.as_ref().unwrap();
        let alpha = 1.0 - (-0.33f32).exp();
        let (lw, k) = (w / 2, 6);
        for (q, ((a, g), b)) in applied
            .values()
            .iter()
            .zip(goal.values())
            .zip(before.values())
            .enumerate()
        {
            let (y, x) = (q / (k * lw), q % lw);
            if y < 16 && x < 16 {
                assert_eq!(a, g, "moved pixel ({x}, {y}) should snap");
            } else {
                assert!(
                    (a - (b + (g - b) * alpha)).abs() < 1e-5,
                    "static ({x}, {y})"
                );
            }
        }
    }

    #[test]
    fn sensor_noise_is_not_motion_and_an_entering_object_is() {
        let (w, h) = (64, 48);
        let still = nir(w, h, 0);
        // Noise of up to 4% of full scale on every pixel, independent per frame.
        let mut rng = crate::models::rng::Rng::new(7);
        let noisy = Gray::new(
            w,
            h,
            still
                .data
                .iter()
                .map(|v| v + rng.uniform(-0.04, 0.04) as f32)
                .collect(),
        );
        let moved = moved_blocks(&still, &noisy);
        assert!(moved.blocks.iter().all(|m| !m), "noise flagged as motion");
        // A dark 10x10 object in the block at (8..16, 8..16) and its neighbours.
        let mut object = still.clone();
        for y in 10..20 {
            for x in 10..20 {
                object.data[y * w + x] = 0.05;
            }
        }
        let moved = moved_blocks(&still, &object);
        let flagged: Vec<usize> = (0..moved.blocks.len())
            .filter(|&i| moved.blocks[i])
            .collect();
        assert_eq!(flagged, vec![9, 10, 17, 18], "blocks of 8 columns");
    }

    #[test]
    fn a_slow_network_lowers_the_refresh_rate_and_not_the_frame_rate() {
        let (w, h) = (64, 48);
        let cameras = ["a", "b"];
        let (mut ins, mut outs, mut rxs, mut inputs) =
            (Vec::new(), HashMap::new(), Vec::new(), Vec::new());
        for id in cameras {
            let (tx, rx) = newest_wins(4);
            ins.push(tx);
            inputs.push(rx);
            let (tx, rx) = lossless(64);
            outs.insert(Arc::<str>::from(id), tx);
            rxs.push(rx);
        }
        let stats = Arc::new(InferStats {
            cameras: cameras
                .iter()
                .map(|&id| (Arc::from(id), Arc::default()))
                .collect(),
            ..InferStats::default()
        });
        let settings = InferSettings {
            scale: 0.5,
            max_pixels: 0,
            max_batch: 1,
            max_wait: Duration::ZERO,
            detail: FULL,
            refresh: Refresh::Auto,
            blend: BLEND,
        };
        // 150 ms a frame: the network alone could colour under 7 frames a second.
        let slow = Box::new(Tint {
            delay: Duration::from_millis(150),
        });
        let threads = spawn(
            ServiceModels {
                realtime: slow,
                quality: None,
                max_batch: 1,
            },
            inputs,
            outs,
            settings,
            HashMap::new(),
            HashMap::new(),
            stats.clone(),
        )
        .unwrap();
        let frames = 45; // 1.5 s at 30 fps, for each camera
        let t0 = Instant::now();
        for k in 0..frames {
            let due = t0 + Duration::from_millis(33 * k);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            for (i, tx) in ins.iter().enumerate() {
                tx.push(Frame {
                    meta: crate::capture::FrameMeta {
                        camera: Arc::from(cameras[i]),
                        seq: k,
                        pts: None,
                        captured_at: Instant::now(),
                    },
                    luma: nir(w, h, k as usize),
                    colour: None,
                });
            }
        }
        let dropped: u64 = ins.iter().map(NewestWins::dropped).sum();
        assert_eq!(dropped, 0, "frames dropped before the frame thread");
        drop(ins);
        threads.frames.stop();
        threads.service.stop();
        for (i, rx) in rxs.iter().enumerate() {
            let got: Vec<ColourFrame> = rx.try_iter().collect();
            assert_eq!(got.len(), frames as usize, "camera {i}: every frame out");
            // Coloured once its first refresh arrived: G is half of R, where gray has them equal.
            let last = &got.last().unwrap().rgb;
            let n = w * h;
            let gap = (0..n)
                .map(|p| (last.data[p] - last.data[n + p]).abs())
                .sum::<f32>()
                / n as f32;
            assert!(gap > 0.1, "camera {i} still gray: R and G differ by {gap}");
        }
        for id in cameras {
            let t = &stats.cameras[id];
            let refreshes = t.refreshes.load(Ordering::Relaxed);
            // 1.5 s at 150 ms per run shared by two cameras: about 5 each, never 45.
            assert!(
                (2..=8).contains(&refreshes),
                "camera {id}: {refreshes} refreshes"
            );
            assert!(t.colour_age_us.load(Ordering::Relaxed) > 0, "camera {id}");
        }
    }
}
