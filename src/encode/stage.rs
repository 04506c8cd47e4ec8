//! The encode stage: one [`Worker`] per camera takes that camera's colour frames from inference,
//! stamps them, feeds its [`Encoder`], shows the "no signal" card while frames stop, prunes old
//! recordings, and finishes the recording when it is stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::{no_signal_frame, prune_recordings, EncodeError, EncodeStats, Encoder};
use crate::images::planes::Rgb;
use crate::infer::ColourFrame;
use crate::runtime::queue::Consumer;
use crate::runtime::worker::Worker;

/// How long without a frame before a mount shows the "no signal" card: longer than any frame
/// interval a live camera has (1 fps and up), short enough that a viewer sees why it froze.
const NO_SIGNAL_AFTER: Duration = Duration::from_secs(1);

/// How long the stage waits for a frame before it looks again at the card, the stop flag and
/// pruning; also the card's interval (about 10 a second keeps RTSP viewers connected).
const POLL: Duration = Duration::from_millis(100);

/// How often recordings are pruned: retention limits are hours or gigabytes, a half-minute
/// late deletion costs nothing, and each pruning lists the folder.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// How long finishing a recording may take at stop before it is abandoned.
const FINISH_TIMEOUT: Duration = Duration::from_secs(4);

/// The retention limits of a camera's recordings (either set: pruning runs).
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    pub folder: PathBuf,
    pub max_age: Option<Duration>,
    pub max_total_bytes: Option<u64>,
}

/// What the stage does besides encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeSettings {
    pub camera: String,
    /// A live source: frame times are capture times and silence gets the "no signal" card. A
    /// batch source (a file played faster than real time) keeps its own frame times.
    pub realtime: bool,
    pub retention: Option<Retention>,
}

/// A running encode stage.
pub struct EncodeStage {
    worker: Worker,
    result: Arc<Mutex<Option<Result<u64, EncodeError>>>>,
}

impl EncodeStage {
    /// Starts encoding the frames from `rx` into `encoder`, counting into `stats`.
    pub fn spawn(
        encoder: Encoder,
        rx: Consumer<ColourFrame>,
        settings: EncodeSettings,
        stats: Arc<EncodeStats>,
    ) -> std::io::Result<EncodeStage> {
        if let Some(status) = encoder.recorder_status() {
            let _ = stats.recorder.set(status);
        }
        let result = Arc::new(Mutex::new(None));
        let out = result.clone();
        let worker = Worker::spawn(format!("encode-{}", settings.camera), move |stop| {
            let r = run(encoder, &rx, &settings, &stats, stop);
            if let Ok(mut slot) = out.lock() {
                *slot = Some(r);
            }
        })?;
        Ok(EncodeStage { worker, result })
    }

    /// Encodes what is still queued, ends the recording and returns the frames encoded. Stop
    /// inference first: frames it sends later are not waited for.
    pub fn finish(self) -> Result<u64, EncodeError> {
        self.worker.stop();
        self.result
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .unwrap_or_else(|| Err(EncodeError::Init("encoder thread panicked".into())))
    }
}

/// Per-frame timing and counting, shared by the frame and card paths.
struct Clock {
    realtime: bool,
    first: Option<Instant>,
    first_pts: Option<Duration>,
}

impl Clock {
    /// A frame's time in the stream: its capture time since the first frame for a realtime
    /// source (so gaps stay gaps), its own time since the first for a batch one.
    fn frame(&mut self, frame: &ColourFrame) -> Duration {
        let t0 = *self.first.get_or_insert(frame.meta.captured_at);
        match (self.realtime, frame.meta.pts) {
            (false, Some(pts)) => pts.saturating_sub(*self.first_pts.get_or_insert(pts)),
            _ => frame.meta.captured_at.saturating_duration_since(t0),
        }
    }

    fn now(&mut self) -> Duration {
        self.first.get_or_insert_with(Instant::now).elapsed()
    }
}

fn encode_frame(
    encoder: &mut Encoder,
    clock: &mut Clock,
    stats: &EncodeStats,
    frame: &ColourFrame,
) -> Result<(), EncodeError> {
    let pts = clock.frame(frame);
    encoder.push_captured(&frame.rgb, pts, frame.meta.captured_at)?;
    stats.frames.fetch_add(1, Ordering::Relaxed);
    stats.latency.observe(frame.meta.captured_at.elapsed());
    Ok(())
}

/// The stage's loop: until the queue closes (inference stopped and everything it sent is
/// encoded) or `stop` is raised (then what is queued is still encoded), then the recording is
/// finished.
fn run(
    mut encoder: Encoder,
    rx: &Consumer<ColourFrame>,
    settings: &EncodeSettings,
    stats: &Arc<EncodeStats>,
    stop: &AtomicBool,
) -> Result<u64, EncodeError> {
    let camera = settings.camera.as_str();
    let mut clock = Clock {
        realtime: settings.realtime,
        first: None,
        first_pts: None,
    };
    let mut last_prune = Instant::now();
    let mut last_frame = Instant::now();
    {
        let stats = stats.clone();
        encoder.on_encoded(Arc::new(move |d, in_encoder| {
            stats.encoded_latency.observe(d);
            stats.encode_time.observe(in_encoder);
            if stats.keep_samples.load(Ordering::Relaxed) {
                if let Ok(mut v) = stats.encoded_samples.lock() {
                    v.push(d.as_secs_f32() * 1e3);
                }
            }
        }));
    }
    let fail = |e: EncodeError| {
        tracing::error!(camera, error = %e, "encoding failed");
        e
    };
    let mut card: Option<Rgb> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            while let Ok(frame) = rx.try_recv() {
                encode_frame(&mut encoder, &mut clock, stats, &frame).map_err(fail)?;
            }
            break;
        }
        match rx.recv_timeout(POLL) {
            Ok(frame) => {
                last_frame = Instant::now();
                encode_frame(&mut encoder, &mut clock, stats, &frame).map_err(fail)?;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                // No frame for a while (camera away, reconnecting, or stalled): the card keeps
                // RTSP viewers connected and recordings show the gap.
                if settings.realtime && last_frame.elapsed() > NO_SIGNAL_AFTER {
                    let card = card.get_or_insert_with(|| {
                        no_signal_frame(camera, encoder.width(), encoder.height())
                    });
                    let pts = clock.now();
                    encoder.push(card, pts).map_err(fail)?;
                    stats.no_signal.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(r) = &settings.retention {
            if last_prune.elapsed() > PRUNE_EVERY {
                last_prune = Instant::now();
                match prune_recordings(&r.folder, camera, r.max_age, r.max_total_bytes) {
                    Ok(deleted) if !deleted.is_empty() => {
                        tracing::info!(camera, deleted = deleted.len(), "old recordings removed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(camera, error = %e, "cannot prune recordings"),
                }
            }
        }
    }
    let frames = encoder.frames();
    encoder.finish(FINISH_TIMEOUT)?;
    Ok(frames)
}
