//! A camera's recording: the encoder's H.264 written into segment files by its own small
//! pipeline (`appsrc ! h264parse ! splitmuxsink`). Being apart from the encoder is what lets a
//! full disk, an unwritable folder or one that disappears stop the recording and nothing else:
//! RTSP goes on at full rate, the failure is logged once and shown in `/healthz` and the
//! metrics, segments that would not play are removed, and the recording resumes by itself when
//! it can write again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::{segment_name, Container, RecordSpec};

/// How long a failed recording waits before it tries again: a few seconds of video lost at
/// most once space returns, and no busy retrying on a full disk.
const RETRY: Duration = Duration::from_secs(3);

/// Space a recording needs before it starts, at least: below it a new segment would stop at
/// once and leave a file with a header and no picture. Beyond this floor it needs room for two
/// segments at the camera's bitrate ([`Recorder::min_free`]).
const MIN_FREE_FLOOR: u64 = 256 * 1024;

/// A segment shorter than this holds no whole keyframe (a 640x480 keyframe alone is larger):
/// left by a failure, it would not play, so it is removed.
const MIN_PLAYABLE_BYTES: u64 = 8 * 1024;

/// The live state of a camera's recording, for `/healthz`, the status page and the metrics.
#[derive(Debug, Default)]
pub struct RecorderStatus {
    /// Writing segments.
    pub up: AtomicBool,
    /// Times writing failed (full disk, unwritable or missing folder).
    pub failures: AtomicU64,
    /// Segments deleted early to make room on a full disk (retention set).
    pub freed: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl RecorderStatus {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

struct Running {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// The first buffer's time: segments start at zero whatever the encoder's clock says.
    base: Option<gst::ClockTime>,
}

/// One camera's recorder, fed by the encoder's streaming thread.
pub struct Recorder {
    camera: String,
    spec: RecordSpec,
    bitrate_kbps: u32,
    running: Option<Running>,
    retry_at: Option<Instant>,
    /// The segment being written (splitmuxsink names it in its callback).
    current: Arc<Mutex<Option<PathBuf>>>,
    status: Arc<RecorderStatus>,
    /// Raised for the encoder to send a keyframe now: a restarted recording begins at one.
    pub wants_keyframe: Arc<AtomicBool>,
}

impl Recorder {
    /// A recorder of `camera`'s H.264 at about `bitrate_kbps`.
    pub fn new(camera: &str, spec: RecordSpec, bitrate_kbps: u32) -> Recorder {
        let mut recorder = Recorder {
            camera: camera.into(),
            spec,
            bitrate_kbps,
            running: None,
            retry_at: None,
            current: Arc::default(),
            status: Arc::default(),
            wants_keyframe: Arc::default(),
        };
        if let Err(why) = recorder.start() {
            recorder.failed(&why, false);
        }
        recorder
    }

    /// Room for two segments at the camera's bitrate, so a segment started is one finished.
    fn min_free(&self) -> u64 {
        let segment = u64::from(self.bitrate_kbps) * 1000 / 8 * self.spec.segment.as_secs();
        (2 * segment).max(MIN_FREE_FLOOR)
    }

    pub fn status(&self) -> Arc<RecorderStatus> {
        self.status.clone()
    }

    fn start(&mut self) -> Result<(), String> {
        let folder = &self.spec.folder;
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        let free = self.make_room();
        if free < self.min_free() {
            return Err(format!(
                "{} has {} kB free, and two segments need {} kB",
                folder.display(),
                free / 1000,
                self.min_free() / 1000
            ));
        }
        let build = |e: &dyn std::fmt::Display| format!("cannot build the recorder: {e}");
        // A batch job loses no frame, so its recorder makes the encoder wait; a live camera's
        // drops the oldest instead, so a slow disk never stalls RTSP.
        let src = gst_app::AppSrc::builder()
            .name("src")
            .caps(
                &gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .format(gst::Format::Time)
            .is_live(true)
            .block(self.spec.lossless)
            .max_bytes(64 * 1024 * 1024)
            .build();
        if !self.spec.lossless {
            src.set_property_from_str("leaky-type", "downstream");
        }
        let parse = gst::ElementFactory::make("h264parse")
            .build()
            .map_err(|e| build(&e))?;
        let muxer = match self.spec.container {
            Container::Matroska => gst::ElementFactory::make("matroskamux").build(),
            // A fragment per GOP (mp4mux cuts at the first keyframe past the duration).
            Container::FragmentedMp4 => gst::ElementFactory::make("mp4mux")
                .property("fragment-duration", 250u32)
                .build(),
        }
        .map_err(|e| build(&e))?;
        // Unbuffered, so what the muxer wrote is on disk even if the process is killed.
        let file = gst::ElementFactory::make("filesink")
            .property_from_str("buffer-mode", "unbuffered")
            .build()
            .map_err(|e| build(&e))?;
        let split = gst::ElementFactory::make("splitmuxsink")
            .property("muxer", &muxer)
            .property("sink", &file)
            .property("max-size-time", self.spec.segment.as_nanos() as u64)
            .property("send-keyframe-requests", true)
            .build()
            .map_err(|e| build(&e))?;
        // Each start gets its own time in the names, so a restart never overwrites a segment.
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (folder, camera, ext, current) = (
            self.spec.folder.clone(),
            self.camera.clone(),
            self.spec.container.extension(),
            self.current.clone(),
        );
        split.connect("format-location", false, move |args| {
            let index = args[1].get::<u32>().unwrap_or(0);
            let name = segment_name(&folder, &camera, started, index, ext);
            if let Ok(mut c) = current.lock() {
                *c = Some(PathBuf::from(&name));
            }
            Some(name.to_value())
        });
        let pipeline = gst::Pipeline::with_name(&format!("record-{}", self.camera));
        pipeline
            .add_many([src.upcast_ref(), &parse, &split])
            .map_err(|e| build(&e))?;
        gst::Element::link_many([src.upcast_ref(), &parse, &split]).map_err(|e| build(&e))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| build(&e))?;
        self.running = Some(Running {
            pipeline,
            src,
            base: None,
        });
        self.retry_at = None;
        self.wants_keyframe.store(true, Ordering::SeqCst);
        self.status.up.store(true, Ordering::SeqCst);
        if self.status.failures.load(Ordering::SeqCst) > 0 {
            tracing::info!(camera = %self.camera, folder = %self.spec.folder.display(), "recording resumed");
        }
        Ok(())
    }

    /// Stops the pipeline, removes a segment that would not play, records why, logs it once,
    /// and schedules the next try. A full disk with retention set first gives up the oldest
    /// segment and tries again at once.
    fn failed(&mut self, why: &str, disk_full: bool) {
        if let Some(r) = self.running.take() {
            let _ = r.pipeline.set_state(gst::State::Null);
        }
        if let Some(path) = self.current.lock().ok().and_then(|mut c| c.take()) {
            let size = std::fs::metadata(&path)
                .map(|m| m.len())
                .unwrap_or(u64::MAX);
            if size < MIN_PLAYABLE_BYTES {
                let _ = std::fs::remove_file(&path);
            }
        }
        let was_up = self.status.up.swap(false, Ordering::SeqCst);
        if was_up {
            self.status.failures.fetch_add(1, Ordering::SeqCst);
        }
        if let Ok(mut e) = self.status.last_error.lock() {
            *e = Some(why.to_string());
        }
        // With a retention limit, a full disk first costs the oldest segments (start makes room).
        if disk_full && self.spec.prune_when_full && self.start().is_ok() {
            return;
        }
        if was_up || self.retry_at.is_none() {
            // One line per failure, not one per frame or per retry.
            tracing::error!(
                camera = %self.camera,
                "recording stopped: {why}; RTSP goes on, and recording resumes when {} can be written",
                self.spec.folder.display()
            );
        }
        self.retry_at = Some(Instant::now() + RETRY);
    }

    /// The free space in the folder; with a retention limit, first this camera's oldest
    /// segments are deleted until there is room for a new one (or none is left to delete).
    fn make_room(&self) -> u64 {
        let free = || crate::runtime::disk::free_bytes(&self.spec.folder).unwrap_or(u64::MAX);
        while self.spec.prune_when_full && free() < self.min_free() {
            let Some(freed) = self.free_oldest() else {
                break;
            };
            tracing::warn!(camera = %self.camera, deleted = %freed.display(), "disk full: deleted the oldest segment to keep recording");
            self.status.freed.fetch_add(1, Ordering::SeqCst);
        }
        free()
    }

    /// Deletes this camera's oldest finished segment; what it deleted.
    fn free_oldest(&self) -> Option<PathBuf> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&self.spec.folder)
            .ok()?
            .flatten()
            .filter(|e| super::is_segment_of(&e.file_name().to_string_lossy(), &self.camera))
            .map(|e| e.path())
            .collect();
        segments.sort();
        let oldest = segments.first()?.clone();
        std::fs::remove_file(&oldest).ok()?;
        Some(oldest)
    }

    /// Records one encoded access unit (the encoder's, shared).
    pub fn push(&mut self, buffer: &gst::BufferRef) {
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            if let Err(why) = self.start() {
                self.failed(&why, false);
            }
        }
        let Some(running) = &mut self.running else {
            return;
        };
        if let Some((why, disk_full)) = bus_error(&running.pipeline) {
            self.failed(&why, disk_full);
            return;
        }
        // A segment must begin at a keyframe (x264 repeats SPS/PPS on each one).
        if running.base.is_none() && buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            return;
        }
        let Some(pts) = buffer.pts() else {
            return;
        };
        let base = *running.base.get_or_insert(pts);
        let mut copy = buffer.copy();
        {
            let b = copy.make_mut();
            b.set_pts(pts.saturating_sub(base));
            b.set_dts(buffer.dts().map(|d| d.saturating_sub(base)));
        }
        if let Err(e) = running.src.push_buffer(copy) {
            self.failed(&format!("cannot record: {e}"), false);
        }
    }

    /// Ends the current segment so it is complete, waiting up to `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> Result<(), String> {
        let Some(r) = self.running.take() else {
            return Ok(());
        };
        let _ = r.src.end_of_stream();
        let bus = r.pipeline.bus().expect("pipelines have a bus");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let _ = r.pipeline.set_state(gst::State::Null);
        self.status.up.store(false, Ordering::SeqCst);
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => Err(e.error().to_string()),
            _ => Err(format!("the recording did not end within {timeout:?}")),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.pipeline.set_state(gst::State::Null);
        }
    }
}

/// The pipeline's pending error: (what, whether the disk is full).
fn bus_error(pipeline: &gst::Pipeline) -> Option<(String, bool)> {
    let msg = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => {
            let full = e.error().matches(gst::ResourceError::NoSpaceLeft)
                || e.debug()
                    .is_some_and(|d| d.contains("No space left on device"));
            let why = if full {
                "the disk is full".to_string()
            } else {
                format!(
                    "{}{}",
                    e.error(),
                    e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
                )
            };
            Some((why, full))
        }
        _ => None,
    }
}
