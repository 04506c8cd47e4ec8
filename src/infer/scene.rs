//! What each camera's scene looks like over the day, for both inference stages: its
//! day/night mode (day frames pass through in colour) and its day reference (built from the
//! day's frames, used at night).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{ColourFrame, InferStats};
use crate::calibrate::Corrector;
use crate::capture::FrameMeta;
use crate::images::planes::{Gray, Rgb};
use crate::reference::daynight::{self, DayNight, Mode};
use crate::reference::store::{self, Builder, ReferenceSettings, StoredReference};
use crate::runtime::queue::NewestWins;

/// Every camera's mode and reference.
pub(super) struct Scenes {
    /// Each day/night camera's mode.
    modes: HashMap<Arc<str>, DayNight>,
    /// The day reference of each camera that keeps one.
    references: HashMap<Arc<str>, CameraReference>,
}

/// A frame that passes through in colour.
pub(super) struct DayFrame<'a> {
    pub(super) meta: FrameMeta,
    pub(super) luma: &'a Gray,
    pub(super) rgb: Rgb,
    /// The frame is colour itself and may go into the reference.
    pub(super) sample: bool,
    pub(super) started: Instant,
}

impl Scenes {
    /// Opens each camera's stored reference.
    pub(super) fn new(references: HashMap<Arc<str>, ReferenceSettings>) -> Scenes {
        Scenes {
            modes: HashMap::new(),
            references: references
                .into_iter()
                .map(|(id, settings)| {
                    let r = CameraReference::open(&id, settings);
                    (id, r)
                })
                .collect(),
        }
    }

    /// The mode of a day/night camera's frame whose colour is `colour`: `Some(sample)` when it
    /// is day (the frame passes through; `sample`: it is colour itself and may go into the
    /// reference, unlike the first second of NIR before the mode follows), `None` at night.
    pub(super) fn day(
        &mut self,
        camera: &Arc<str>,
        colour: &Rgb,
        at: Instant,
        stats: &InferStats,
    ) -> Option<bool> {
        let modes = self.modes.entry(camera.clone()).or_default();
        let before = modes.transitions();
        let chroma = daynight::chroma(colour);
        let mode = modes.observe(chroma, at);
        if let Some(t) = stats.cameras.get(camera) {
            t.day.store(mode == Mode::Day, Ordering::Relaxed);
            t.mode_transitions
                .fetch_add(modes.transitions() - before, Ordering::Relaxed);
        }
        (mode == Mode::Day).then_some(chroma >= daynight::DAY_CHROMA)
    }

    /// Counts a refresh's alignment with the camera's reference (see
    /// [`CameraReference::aligned`]).
    pub(super) fn aligned(&mut self, camera: &Arc<str>, moved: bool, stats: &InferStats) {
        if let Some(reference) = self.references.get_mut(camera) {
            if reference.aligned(camera, moved) {
                if let Some(t) = stats.cameras.get(camera) {
                    t.moved.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The camera's reference at the inference size `low` for frames of `size`, when it has
    /// one of that size; the metrics say whether it does.
    pub(super) fn reference_at(
        &mut self,
        camera: &Arc<str>,
        size: (usize, usize),
        low: (usize, usize),
        stats: &InferStats,
    ) -> Option<Arc<Rgb>> {
        let reference = self
            .references
            .get_mut(camera)
            .and_then(|r| r.at(size.0, size.1, low.0, low.1));
        if let Some(t) = stats.cameras.get(camera) {
            t.reference.store(reference.is_some(), Ordering::Relaxed);
        }
        reference
    }

    /// A day-mode frame: the camera's own colour goes out as it came (its output calibration
    /// still applies), without the network or the detail stage, and feeds its reference.
    pub(super) fn pass_through(
        &mut self,
        day: DayFrame,
        calibrations: &HashMap<Arc<str>, Corrector>,
        outputs: &HashMap<Arc<str>, NewestWins<ColourFrame>>,
        stats: &InferStats,
    ) {
        let DayFrame {
            meta,
            luma,
            mut rgb,
            sample,
            started,
        } = day;
        let camera = meta.camera.clone();
        let Some(out) = outputs.get(&camera) else {
            stats.unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(r) = self.references.get_mut(&camera).filter(|_| sample) {
            // The camera's own colour, before its output calibration (which night frames get
            // after the reference, as day frames do).
            r.day_frame(&camera, &rgb, meta.captured_at);
            if let Some(t) = stats.cameras.get(&camera) {
                t.reference.store(r.active.is_some(), Ordering::Relaxed);
            }
        }
        if let Some(c) = calibrations.get(&camera) {
            c.colour(&mut rgb);
        }
        if let Some(s) = stats.snapshots.get(&camera) {
            s.offer(luma, &rgb);
        }
        if let Some(t) = stats.cameras.get(&camera) {
            t.queued
                .observe(started.saturating_duration_since(meta.captured_at));
            t.processed.observe(started.elapsed());
            t.day_frames.fetch_add(1, Ordering::Relaxed);
        }
        out.push(ColourFrame {
            rgb,
            meta,
            batch_size: 1,
        });
    }
}

/// A camera's scene memory on the frame thread: the builder that samples its day frames, the
/// reference in use, and that reference at the inference size (made once per size).
struct CameraReference {
    settings: ReferenceSettings,
    builder: Builder,
    active: Option<StoredReference>,
    low: Option<Arc<Rgb>>,
    /// Refreshes in a row that found the reference out of line with the NIR.
    misaligned: u32,
}

/// After this many refreshes in a row find the reference out of line (each of them already
/// coloured by the network alone), the camera counts as moved: its reference is dropped and a
/// fresh one is built by day. Three keep one odd frame from costing a good reference; at the
/// default refresh rates they take well under the 2 s a moved camera may show wrong colours.
const MOVED_REFRESHES: u32 = 3;

impl CameraReference {
    /// Loads the stored reference; a corrupted one is ignored with a warning and rebuilt.
    fn open(camera: &str, settings: ReferenceSettings) -> CameraReference {
        let active = match store::load(&settings.file) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(camera, error = %e, "ignoring the stored day reference");
                None
            }
        };
        if let Some(r) = &active {
            tracing::info!(camera, file = %settings.file.display(), frames = r.meta.frames, "day reference loaded");
        }
        CameraReference {
            builder: Builder::new(settings.clone()),
            settings,
            active,
            low: None,
            misaligned: 0,
        }
    }

    /// Counts a refresh's alignment; true when the camera is found moved now.
    fn aligned(&mut self, camera: &str, moved: bool) -> bool {
        self.misaligned = if moved { self.misaligned + 1 } else { 0 };
        if self.misaligned < MOVED_REFRESHES || self.active.is_none() {
            return false;
        }
        tracing::warn!(
            camera,
            file = %self.settings.file.display(),
            "the camera moved: its day reference no longer lines up with the picture; the network colours it alone until a new reference is built by day"
        );
        self.active = None;
        self.low = None;
        self.misaligned = 0;
        self.builder = Builder::new(self.settings.clone());
        true
    }

    /// Samples a day frame; a new reference is saved and used from now on.
    fn day_frame(&mut self, camera: &str, rgb: &Rgb, at: Instant) {
        let Some(made) = self.builder.offer(rgb, at) else {
            return;
        };
        match store::save(&self.settings.file, &made) {
            Ok(()) => {
                tracing::info!(camera, file = %self.settings.file.display(), frames = made.meta.frames, stillness = made.meta.stillness, "day reference saved")
            }
            Err(e) => tracing::warn!(camera, error = %e, "day reference not saved"),
        }
        self.active = Some(made);
        self.low = None;
    }

    /// The reference at `lw` x `lh` for a frame of `w` x `h`, when one of that frame size is in
    /// use.
    fn at(&mut self, w: usize, h: usize, lw: usize, lh: usize) -> Option<Arc<Rgb>> {
        let r = self.active.as_ref()?;
        if (r.image.width, r.image.height) != (w, h) {
            return None;
        }
        if self.low.as_ref().map(|l| (l.width, l.height)) != Some((lw, lh)) {
            self.low = Some(Arc::new(crate::reference::shrunk(&r.image, lw, lh)));
        }
        self.low.clone()
    }
}
