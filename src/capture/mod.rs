//! Capture: one GStreamer pipeline per camera ending in an appsink; each frame's luma goes into a
//! newest-wins channel. A supervisor thread per camera restarts the pipeline with backoff (capped)
//! when the camera is missing at start or goes away, for as long as the camera runs.

pub mod devices;
pub mod frame;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::images::planes::{Gray, Rgb};
use crate::runtime::queue::NewestWins;
use crate::runtime::worker::Worker;

/// Where a camera's frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A V4L2 device node or a /dev/v4l/by-id link.
    V4l2 { device: PathBuf },
    /// A video file, decoded; `looped` starts it over at its end. `realtime` plays it at its
    /// own rate, as a camera would deliver it (a slow pipeline drops frames); otherwise every
    /// frame is processed as fast as the slowest stage allows (a batch job: none dropped).
    File {
        path: PathBuf,
        looped: bool,
        realtime: bool,
    },
    /// An RTSP stream.
    Rtsp { url: String },
    /// GStreamer's `videotestsrc` with one of its patterns (`smpte`, `ball`, `snow`, `white`, ...).
    Test { pattern: String },
    /// A folder of NIR stills (PNG, JPEG, TIFF; 8 or 16 bit), played in name order at the
    /// camera's frame rate (or, without `realtime`, as fast as the stages take them, none
    /// dropped); `looped` starts over after the last.
    Images {
        folder: PathBuf,
        looped: bool,
        realtime: bool,
    },
}

impl Source {
    /// Whether frames come at their own pace (live sources, and files and folders played in
    /// real time); if not, nothing may be dropped and the stages set the pace.
    pub fn realtime(&self) -> bool {
        match self {
            Source::File { realtime, .. } | Source::Images { realtime, .. } => *realtime,
            _ => true,
        }
    }

    /// Names the source for messages; an RTSP URL's password is left out.
    pub fn describe(&self) -> String {
        match self {
            Source::V4l2 { device } => format!("V4L2 device {}", device.display()),
            Source::File { path, .. } => format!("file {}", path.display()),
            Source::Rtsp { url } => format!("RTSP stream {}", redact_password(url)),
            Source::Test { pattern } => format!("test pattern {pattern}"),
            Source::Images { folder, .. } => format!("image folder {}", folder.display()),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

/// The pixel format a camera delivers; nircolor keeps only its luma.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Gray8,
    Gray16Le,
    Yuy2,
    Nv12,
}

impl PixelFormat {
    /// The GStreamer caps format string.
    pub fn caps_format(self) -> &'static str {
        match self {
            PixelFormat::Gray8 => "GRAY8",
            PixelFormat::Gray16Le => "GRAY16_LE",
            PixelFormat::Yuy2 => "YUY2",
            PixelFormat::Nv12 => "NV12",
        }
    }

    /// The luma format handed to the appsink: 16-bit sensors keep their depth.
    fn luma_format(self) -> &'static str {
        match self {
            PixelFormat::Gray16Le => "GRAY16_LE",
            _ => "GRAY8",
        }
    }
}

/// One camera's capture settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureSettings {
    pub id: String,
    pub source: Source,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// A day/night camera: frames are captured in colour too ([`Frame::colour`]), so that the
    /// colour it sees by day can pass through (`reference::daynight` decides per frame).
    pub day_night: bool,
}

/// One captured frame: the luma plane in [0, 1] with where and when it came from.
#[derive(Clone, Debug)]
pub struct Frame {
    pub meta: FrameMeta,
    pub luma: Gray,
    /// The frame in colour, for a day/night camera ([`CaptureSettings::day_night`]); a NIR
    /// frame has flat chroma here.
    pub colour: Option<Rgb>,
}

/// What every frame carries from capture to encode, whatever its pixels: the NIR [`Frame`] and
/// the colour frame inference makes of it share it.
#[derive(Clone, Debug)]
pub struct FrameMeta {
    pub camera: Arc<str>,
    /// Counts up across restarts of the camera's pipeline.
    pub seq: u64,
    /// The buffer's presentation time in its pipeline, when it has one.
    pub pts: Option<Duration>,
    pub captured_at: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "GStreamer cannot start ({0}); is libgstreamer1.0 installed? scripts/setup installs it"
    )]
    Init(String),
    #[error("camera '{camera}': test pattern '{pattern}' is not a videotestsrc pattern name (e.g. smpte, ball, snow, white, black)")]
    BadPattern { camera: String, pattern: String },
    #[error("camera '{camera}': cannot build its pipeline `{pipeline}`: {why}")]
    Build {
        camera: String,
        pipeline: String,
        why: String,
    },
    #[error("camera '{camera}': V4L2 device {device} does not exist; is the camera plugged in? (`nircolor devices` lists cameras)")]
    NoDevice { camera: String, device: PathBuf },
    #[error("camera '{camera}': file {path} does not exist")]
    NoFile { camera: String, path: PathBuf },
    #[error("camera '{camera}' ({source_name}): {why}")]
    Stream {
        camera: String,
        source_name: String,
        why: String,
    },
}

/// Initialises GStreamer once; safe to call from anywhere.
pub fn init() -> Result<(), CaptureError> {
    gst::init().map_err(|e| CaptureError::Init(e.to_string()))
}

/// The pipeline for `spec`, in gst-launch syntax. User-supplied strings (paths, URLs, devices)
/// are not in it: they are set as properties of the element named `src` after parsing, so no
/// quoting can break the description.
pub fn pipeline_description(spec: &CaptureSettings) -> Result<String, CaptureError> {
    let (w, h, fps) = (spec.width, spec.height, spec.fps);
    // A day/night camera's frames come in colour; their luma is computed from it.
    let luma = if spec.day_night {
        "RGB"
    } else {
        spec.format.luma_format()
    };
    let sink = "appsink name=sink max-buffers=2 drop=false";
    // Decoded sources are scaled and rate-converted to the configured size and rate.
    let decoded = format!(
        "decodebin ! videoconvert ! videoscale ! videorate ! video/x-raw,format={luma},width={w},height={h},framerate={fps}/1"
    );
    Ok(match &spec.source {
        Source::Test { pattern } => {
            let valid = !pattern.is_empty() && pattern.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !valid {
                return Err(CaptureError::BadPattern { camera: spec.id.clone(), pattern: pattern.clone() });
            }
            format!(
                "videotestsrc name=src is-live=true pattern={pattern} ! video/x-raw,format={},width={w},height={h},framerate={fps}/1 ! videoconvert ! video/x-raw,format={luma} ! {sink} sync=false",
                spec.format.caps_format()
            )
        }
        Source::V4l2 { .. } => format!(
            "v4l2src name=src ! video/x-raw,format={},width={w},height={h},framerate={fps}/1 ! videoconvert ! video/x-raw,format={luma} ! {sink} sync=false",
            spec.format.caps_format()
        ),
        // A file in real time plays at its own rate (sync=true), as a camera would deliver it.
        Source::File { realtime: true, .. } => format!("filesrc name=src ! {decoded} ! {sink} sync=true"),
        // A batch file goes as fast as its consumer takes frames, each frame once with its own
        // time: no videorate, which would duplicate or drop frames to make the camera's rate.
        Source::File { realtime: false, .. } => format!(
            "filesrc name=src ! decodebin ! videoconvert ! videoscale ! video/x-raw,format={luma},width={w},height={h} ! {sink} sync=false"
        ),
        Source::Rtsp { .. } => format!("rtspsrc name=src latency=100 ! {decoded} ! {sink} sync=false"),
        // Read by nircolor itself (see `run_images`): no GStreamer pipeline.
        Source::Images { .. } => String::new(),
    })
}

/// Restart delays: `first`, doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// A camera's live state, shared with whoever reports it (metrics, health).
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// A frame arrived since the pipeline last (re)started.
    pub up: AtomicBool,
    /// A non-looped file reached its end: the camera is done, not failed.
    pub finished: AtomicBool,
    pub frames: AtomicU64,
    /// A frame is waiting for room downstream (lossless queues only).
    pub waiting: AtomicBool,
    pub restarts: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Since when no frame has arrived (start, or the last failure); `None` while streaming.
    pub down_since: Mutex<Option<Instant>>,
}

impl CaptureStats {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// How long the camera has been without frames; zero while it streams.
    pub fn down_for(&self) -> Duration {
        self.down_since
            .lock()
            .ok()
            .and_then(|d| d.map(|t| t.elapsed()))
            .unwrap_or_default()
    }

    fn went_down(&self) {
        self.up.store(false, Ordering::SeqCst);
        // Keeps the earliest time while it stays down.
        if let Ok(mut d) = self.down_since.lock() {
            d.get_or_insert_with(Instant::now);
        }
    }

    fn came_up(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            if let Ok(mut d) = self.down_since.lock() {
                *d = None;
            }
        }
    }
}

/// A running camera: its supervisor thread and status.
pub struct CaptureStage {
    pub id: Arc<str>,
    status: Arc<CaptureStats>,
    worker: Worker,
}

enum Ended {
    Stopped,
    Finished,
}

impl CaptureStage {
    /// Starts capturing `spec` into `out`. Errors only for what no retry can fix (a bad
    /// description); a missing or failing camera is retried with `backoff` until stopped.
    pub fn spawn(
        spec: CaptureSettings,
        out: NewestWins<Frame>,
        backoff: Backoff,
    ) -> Result<CaptureStage, CaptureError> {
        init()?;
        let description = pipeline_description(&spec)?;
        let id: Arc<str> = spec.id.as_str().into();
        let status = Arc::new(CaptureStats {
            down_since: Mutex::new(Some(Instant::now())),
            ..Default::default()
        });
        let (thread_id, thread_status) = (id.clone(), status.clone());
        let worker = Worker::spawn(format!("capture-{id}"), move |stop| {
            supervise(
                &spec,
                &description,
                &thread_id,
                &out,
                &thread_status,
                stop,
                backoff,
            )
        })
        .map_err(|e| CaptureError::Stream {
            camera: id.to_string(),
            source_name: "capture thread".into(),
            why: e.to_string(),
        })?;
        Ok(CaptureStage { id, status, worker })
    }

    pub fn status(&self) -> &CaptureStats {
        &self.status
    }

    /// The status, to share with whoever reports it.
    pub fn status_handle(&self) -> Arc<CaptureStats> {
        self.status.clone()
    }

    /// Stops the pipeline and waits for the supervisor to end (within about 100 ms).
    pub fn stop(self) {
        self.worker.stop();
    }
}

fn supervise(
    spec: &CaptureSettings,
    description: &str,
    id: &Arc<str>,
    out: &NewestWins<Frame>,
    status: &Arc<CaptureStats>,
    stop: &AtomicBool,
    backoff: Backoff,
) {
    let seq = Arc::new(AtomicU64::new(0));
    let mut attempt = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        match run_once(spec, description, id, out, status, stop, &seq) {
            Ok(Ended::Stopped) => break,
            Ok(Ended::Finished) => {
                status.finished.store(true, Ordering::SeqCst);
                tracing::info!(camera = %id, "source finished");
                break;
            }
            Err(e) => {
                status.went_down();
                // A pipeline that streamed for a while earns a fresh, short backoff.
                if started.elapsed() > backoff.max {
                    attempt = 0;
                }
                attempt += 1;
                let delay = backoff.delay(attempt);
                tracing::warn!(camera = %id, error = %e, retry_in_ms = delay.as_millis() as u64, "capture failed; retrying");
                if let Ok(mut last) = status.last_error.lock() {
                    *last = Some(e.to_string());
                }
                status.restarts.fetch_add(1, Ordering::SeqCst);
                let until = Instant::now() + delay;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    status.went_down();
}

fn run_once(
    spec: &CaptureSettings,
    description: &str,
    id: &Arc<str>,
    out: &NewestWins<Frame>,
    status: &Arc<CaptureStats>,
    stop: &AtomicBool,
    seq: &Arc<AtomicU64>,
) -> Result<Ended, CaptureError> {
    let camera = id.to_string();
    if let Source::Images { folder, looped, .. } = &spec.source {
        return run_images(spec, folder, *looped, id, out, status, stop, seq);
    }
    match &spec.source {
        Source::V4l2 { device } if !device.exists() => {
            return Err(CaptureError::NoDevice {
                camera,
                device: device.clone(),
            });
        }
        Source::File { path, .. } if !path.is_file() => {
            return Err(CaptureError::NoFile {
                camera,
                path: path.clone(),
            })
        }
        _ => {}
    }
    let build = |why: String| CaptureError::Build {
        camera: camera.clone(),
        pipeline: description.to_string(),
        why,
    };
    let pipeline = gst::parse::launch(description)
        .map_err(|e| build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| build("not a pipeline".into()))?;
    let src = pipeline
        .by_name("src")
        .ok_or_else(|| build("no element named src".into()))?;
    match &spec.source {
        Source::V4l2 { device } => src.set_property("device", device.to_string_lossy().as_ref()),
        Source::File { path, .. } => src.set_property("location", path.to_string_lossy().as_ref()),
        Source::Rtsp { url } => src.set_property("location", url.as_str()),
        Source::Test { .. } | Source::Images { .. } => {}
    }
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| build("no appsink named sink".into()))?;
    {
        let (id, out, status, seq) = (id.clone(), out.clone(), status.clone(), seq.clone());
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let frame::Planes { luma, colour } =
                        frame::read_sample(&sample).map_err(|why| {
                            tracing::error!(camera = %id, %why, "unusable frame");
                            gst::FlowError::Error
                        })?;
                    let pts = sample
                        .buffer()
                        .and_then(|b| b.pts())
                        .map(|t| Duration::from_nanos(t.nseconds()));
                    let frame = Frame {
                        meta: FrameMeta {
                            camera: id.clone(),
                            seq: seq.fetch_add(1, Ordering::SeqCst),
                            pts,
                            captured_at: Instant::now(),
                        },
                        luma,
                        colour,
                    };
                    status.came_up();
                    status.frames.fetch_add(1, Ordering::Relaxed);
                    status.waiting.store(true, Ordering::SeqCst);
                    out.push(frame);
                    status.waiting.store(false, Ordering::SeqCst);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let result = watch(&pipeline, spec, &camera, stop, status);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Plays a folder of stills at the camera's rate, scaled to its size. An unreadable image is
/// skipped with a warning (one bad file should not stop a batch); a missing or empty folder is
/// an error, retried like a missing camera.
#[allow(clippy::too_many_arguments)]
fn run_images(
    spec: &CaptureSettings,
    folder: &Path,
    looped: bool,
    id: &Arc<str>,
    out: &NewestWins<Frame>,
    status: &CaptureStats,
    stop: &AtomicBool,
    seq: &Arc<AtomicU64>,
) -> Result<Ended, CaptureError> {
    let stream = |why: String| CaptureError::Stream {
        camera: id.to_string(),
        source_name: spec.source.describe(),
        why,
    };
    let files: Vec<PathBuf> = crate::images::read::list_images(folder)
        .map_err(|e| stream(e.to_string()))?
        .into_values()
        .collect();
    if files.is_empty() {
        return Err(stream(
            "the folder holds no PNG, JPEG or TIFF images".into(),
        ));
    }
    let period = Duration::from_secs(1) / spec.fps.max(1);
    let (w, h) = (spec.width as usize, spec.height as usize);
    let start = Instant::now();
    let mut shown = 0u32;
    loop {
        for file in &files {
            if stop.load(Ordering::SeqCst) {
                return Ok(Ended::Stopped);
            }
            let nir = match crate::images::read::read_nir(file) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(camera = %id, error = %e, "skipping an unreadable image");
                    continue;
                }
            };
            let luma = if (nir.width, nir.height) == (w, h) {
                nir
            } else {
                crate::images::planes::Gray::new(
                    w,
                    h,
                    crate::detail::resize_bilinear(&nir.data, nir.width, nir.height, 1, w, h),
                )
            };
            // Paced like a camera: frame n is due at n periods after the start.
            if spec.source.realtime() {
                let due = start + period * shown;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            out.push(Frame {
                meta: FrameMeta {
                    camera: id.clone(),
                    seq: seq.fetch_add(1, Ordering::SeqCst),
                    pts: Some(period * shown),
                    captured_at: Instant::now(),
                },
                luma,
                colour: None,
            });
            status.came_up();
            status.frames.fetch_add(1, Ordering::Relaxed);
            shown += 1;
        }
        if !looped {
            return Ok(Ended::Finished);
        }
    }
}

/// How long a started pipeline may take to deliver its first frame (RTSP connection and
/// decoder negotiation included).
pub const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);

/// How long a source that has delivered frames may stay silent: ten frame periods, at least
/// 3 s, before it counts as stalled.
pub fn stall_after(fps: u32) -> Duration {
    (Duration::from_secs(10) / fps.max(1)).max(Duration::from_secs(3))
}

/// Plays `pipeline` and waits for the end: a stop request, the end of a non-looped file, or an
/// error (returned, so the supervisor retries).
fn watch(
    pipeline: &gst::Pipeline,
    spec: &CaptureSettings,
    camera: &str,
    stop: &AtomicBool,
    status: &CaptureStats,
) -> Result<Ended, CaptureError> {
    let stream = |why: String| CaptureError::Stream {
        camera: camera.to_string(),
        source_name: spec.source.describe(),
        why,
    };
    let bus = pipeline
        .bus()
        .ok_or_else(|| stream("pipeline has no bus".into()))?;
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        // The reason is on the bus; a state-change failure alone says nothing useful.
        let why = bus
            .timed_pop_filtered(
                gst::ClockTime::from_mseconds(500),
                &[gst::MessageType::Error],
            )
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(error_text(e)),
                _ => None,
            })
            .unwrap_or_else(|| "the pipeline refused to start".into());
        stream(why)
    })?;
    // A source can go silent without an error (an RTSP camera that stops sending, a wedged
    // driver): no frame for a while counts as a failure, so the supervisor restarts it.
    let (mut seen, mut since) = (status.frames.load(Ordering::Relaxed), Instant::now());
    let mut first = true;
    let patience = stall_after(spec.fps);
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(Ended::Stopped);
        }
        let now_seen = status.frames.load(Ordering::Relaxed);
        // A frame held back by a busy downstream (a batch job's lossless queue) is not a stall.
        if now_seen != seen || status.waiting.load(Ordering::SeqCst) {
            (seen, since, first) = (now_seen, Instant::now(), false);
        }
        let limit = if first { FIRST_FRAME_WITHIN } else { patience };
        if since.elapsed() > limit {
            return Err(stream(format!(
                "no frame for {:.1} s although the source reported no error; restarting it",
                since.elapsed().as_secs_f64()
            )));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return Err(stream(error_text(e))),
            gst::MessageView::Eos(_) => match spec.source {
                Source::File { looped: true, .. } => {
                    pipeline
                        .seek_simple(
                            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                            gst::ClockTime::ZERO,
                        )
                        .map_err(|e| stream(format!("cannot loop the file: {e}")))?;
                }
                Source::File { looped: false, .. } => return Ok(Ended::Finished),
                _ => return Err(stream("the stream ended".into())),
            },
            _ => {}
        }
    }
}

fn error_text(e: &gst::message::Error) -> String {
    match e.debug() {
        Some(debug) => format!("{} ({debug})", e.error()),
        None => e.error().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: Source) -> CaptureSettings {
        CaptureSettings {
            id: "cam".into(),
            source,
            format: PixelFormat::Yuy2,
            width: 64,
            height: 48,
            fps: 15,
            day_night: false,
        }
    }

    #[test]
    fn descriptions_keep_user_strings_out() {
        let d = pipeline_description(&spec(Source::V4l2 {
            device: "/dev/video0 ! evil".into(),
        }))
        .unwrap();
        assert!(d.starts_with(
            "v4l2src name=src ! video/x-raw,format=YUY2,width=64,height=48,framerate=15/1"
        ));
        assert!(!d.contains("evil") && d.contains("format=GRAY8"));
        let d = pipeline_description(&spec(Source::File {
            path: "a b.mkv".into(),
            looped: true,
            realtime: true,
        }))
        .unwrap();
        assert!(!d.contains("a b.mkv") && d.contains("sync=true"));
        let mut s16 = spec(Source::Rtsp {
            url: "rtsp://x".into(),
        });
        s16.format = PixelFormat::Gray16Le;
        assert!(pipeline_description(&s16)
            .unwrap()
            .contains("format=GRAY16_LE"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        let err = pipeline_description(&spec(Source::Test {
            pattern: "ball ! filesink".into(),
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("not a videotestsrc pattern"),
            "{err}"
        );
    }

    #[test]
    fn rtsp_passwords_stay_out_of_messages() {
        let s = Source::Rtsp {
            url: "rtsp://admin:s3cret@10.0.0.5:554/stream1".into(),
        };
        assert_eq!(
            s.describe(),
            "RTSP stream rtsp://admin:***@10.0.0.5:554/stream1"
        );
        let s = Source::Rtsp {
            url: "rtsp://cam.local/live".into(),
        };
        assert_eq!(s.describe(), "RTSP stream rtsp://cam.local/live");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::default();
        let ms: Vec<u128> = (1..=8).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
        assert_eq!(b.delay(1000), Duration::from_secs(10));
    }
}
