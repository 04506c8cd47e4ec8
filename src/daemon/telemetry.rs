//! What the daemon reports about itself: Prometheus metrics, health, readiness and snapshots,
//! from counters the stages keep anyway (camera status, queue drops, batches, encoder latency).
//! [`super::http`] serves them.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::CaptureStats;
use crate::encode::EncodeStats;
use crate::infer::snapshot::View;
use crate::infer::{FrameTimes, InferStats};

/// A camera down for less than this is "reconnecting" and still healthy: just past the longest
/// backoff, so one retry cycle fits.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(15);

/// One camera's counters, gathered from its stages.
pub struct CameraTelemetry {
    pub id: String,
    /// What the status page says about the camera besides its counters.
    pub info: CameraInfo,
    pub status: Arc<CaptureStats>,
    /// Frames dropped between capture and inference, and between inference and encoding.
    pub capture_drops: Box<dyn Fn() -> u64 + Send + Sync>,
    pub colour_drops: Box<dyn Fn() -> u64 + Send + Sync>,
    pub encode: Arc<EncodeStats>,
}

/// A camera's configuration as the status page shows it.
#[derive(Clone, Debug, Default)]
pub struct CameraInfo {
    /// The source, in words (`Source::describe`).
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub rtsp_url: String,
    pub record_folder: Option<std::path::PathBuf>,
}

/// Everything `/metrics`, `/healthz` and the status page report.
pub struct Telemetry {
    pub cameras: Vec<CameraTelemetry>,
    pub infer: Arc<InferStats>,
    /// The model's name and where it runs, for the status page.
    pub model: String,
    pub device: String,
    pub started: std::time::Instant,
    /// The same moment in seconds since the Unix epoch, taken once so that it never changes
    /// while the daemon runs (alerts count its changes as restarts).
    pub started_unix: u64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Telemetry {
    /// The Prometheus text exposition.
    pub fn metrics(&self) -> String {
        let mut s = String::new();
        let family = |s: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let per_camera = |s: &mut String,
                          name: &str,
                          kind: &str,
                          help: &str,
                          value: &dyn Fn(&CameraTelemetry) -> u64| {
            family(s, name, kind, help);
            for c in &self.cameras {
                let _ = writeln!(s, "{name}{{camera=\"{}\"}} {}", escape(&c.id), value(c));
            }
        };
        per_camera(
            &mut s,
            "nircolor_camera_up",
            "gauge",
            "1 while the camera delivers frames",
            &|c| u64::from(c.status.up.load(Ordering::SeqCst)),
        );
        per_camera(
            &mut s,
            "nircolor_camera_reconnects_total",
            "counter",
            "Pipeline restarts after a failure",
            &|c| c.status.restarts.load(Ordering::SeqCst),
        );
        per_camera(
            &mut s,
            "nircolor_frames_captured_total",
            "counter",
            "Frames captured",
            &|c| c.status.frames.load(Ordering::Relaxed),
        );
        per_camera(
            &mut s,
            "nircolor_frames_encoded_total",
            "counter",
            "Frames encoded",
            &|c| c.encode.frames.load(Ordering::Relaxed),
        );
        per_camera(
            &mut s,
            "nircolor_no_signal_frames_total",
            "counter",
            "\"No signal\" cards shown while the camera delivered nothing",
            &|c| c.encode.no_signal.load(Ordering::Relaxed),
        );
        let recording = |c: &CameraTelemetry| c.encode.recorder.get().cloned();
        family(
            &mut s,
            "nircolor_recording_up",
            "gauge",
            "1 while the camera's recording writes segments, 0 after a failure (full disk, unwritable or missing folder) until it resumes",
        );
        for c in &self.cameras {
            if let Some(r) = recording(c) {
                let up = u8::from(r.up.load(Ordering::SeqCst));
                let _ = writeln!(
                    s,
                    "nircolor_recording_up{{camera=\"{}\"}} {up}",
                    escape(&c.id)
                );
            }
        }
        family(
            &mut s,
            "nircolor_recording_failures_total",
            "counter",
            "Times the camera's recording stopped on a write failure",
        );
        for c in &self.cameras {
            if let Some(r) = recording(c) {
                let n = r.failures.load(Ordering::SeqCst);
                let _ = writeln!(
                    s,
                    "nircolor_recording_failures_total{{camera=\"{}\"}} {n}",
                    escape(&c.id)
                );
            }
        }
        family(
            &mut s,
            "nircolor_recording_segments_freed_total",
            "counter",
            "Oldest segments deleted early to keep recording on a full disk (retention set)",
        );
        for c in &self.cameras {
            if let Some(r) = recording(c) {
                let n = r.freed.load(Ordering::SeqCst);
                let _ = writeln!(
                    s,
                    "nircolor_recording_segments_freed_total{{camera=\"{}\"}} {n}",
                    escape(&c.id)
                );
            }
        }
        family(
            &mut s,
            "nircolor_frames_dropped_total",
            "counter",
            "Frames dropped because the next stage was busy",
        );
        for c in &self.cameras {
            let id = escape(&c.id);
            let _ = writeln!(
                s,
                "nircolor_frames_dropped_total{{camera=\"{id}\",stage=\"infer\"}} {}",
                (c.capture_drops)()
            );
            let _ = writeln!(
                s,
                "nircolor_frames_dropped_total{{camera=\"{id}\",stage=\"encode\"}} {}",
                (c.colour_drops)()
            );
        }
        family(
            &mut s,
            "nircolor_encoded_latency_seconds",
            "histogram",
            "Capture to leaving the H.264 encoder",
        );
        for c in &self.cameras {
            c.encode.encoded_latency.render(
                "nircolor_encoded_latency_seconds",
                &format!("camera=\"{}\"", escape(&c.id)),
                &mut s,
            );
        }
        family(
            &mut s,
            "nircolor_latency_seconds",
            "histogram",
            "Capture to encoder hand-off",
        );
        for c in &self.cameras {
            c.encode.latency.render(
                "nircolor_latency_seconds",
                &format!("camera=\"{}\"", escape(&c.id)),
                &mut s,
            );
        }
        family(
            &mut s,
            "nircolor_stage_latency_seconds",
            "histogram",
            "Time a frame spends in each stage: queue (capture to its batch starting), infer (its batch: calibration, model, detail), encode (hand-off to leaving the H.264 encoder)",
        );
        for c in &self.cameras {
            let id = escape(&c.id);
            if let Some(t) = self.infer.cameras.get(c.id.as_str()) {
                t.queued.render(
                    "nircolor_stage_latency_seconds",
                    &format!("camera=\"{id}\",stage=\"queue\""),
                    &mut s,
                );
                t.processed.render(
                    "nircolor_stage_latency_seconds",
                    &format!("camera=\"{id}\",stage=\"infer\""),
                    &mut s,
                );
            }
            c.encode.encode_time.render(
                "nircolor_stage_latency_seconds",
                &format!("camera=\"{id}\",stage=\"encode\""),
                &mut s,
            );
        }
        family(
            &mut s,
            "nircolor_colour_refreshes_total",
            "counter",
            "Times the network recomputed a camera's colour (every frame with refresh_fps = \"every-frame\"); its rate is the camera's refresh rate",
        );
        self.per_camera_infer(&mut s, "nircolor_colour_refreshes_total", |t| {
            t.refreshes.load(Ordering::Relaxed) as f64
        });
        family(
            &mut s,
            "nircolor_colour_age_seconds",
            "gauge",
            "How much older than the newest frame the frame is that the network last coloured for this camera (0 with every-frame refresh)",
        );
        self.per_camera_infer(&mut s, "nircolor_colour_age_seconds", |t| {
            t.colour_age_us.load(Ordering::Relaxed) as f64 / 1e6
        });
        family(
            &mut s,
            "nircolor_camera_day_mode",
            "gauge",
            "1 while a day/night camera delivers colour and its frames pass through, 0 at night (NIR, colorized)",
        );
        self.per_camera_infer(&mut s, "nircolor_camera_day_mode", |t| {
            f64::from(u8::from(t.day.load(Ordering::Relaxed)))
        });
        family(
            &mut s,
            "nircolor_camera_reference",
            "gauge",
            "1 while a camera has a day reference of its frame size, whose colours its night frames take",
        );
        self.per_camera_infer(&mut s, "nircolor_camera_reference", |t| {
            f64::from(u8::from(t.reference.load(Ordering::Relaxed)))
        });
        family(
            &mut s,
            "nircolor_camera_moved_total",
            "counter",
            "Times a camera's picture stopped lining up with its day reference (it moved or was re-aimed): the reference was dropped and the network colours alone until a new one is built by day",
        );
        self.per_camera_infer(&mut s, "nircolor_camera_moved_total", |t| {
            t.moved.load(Ordering::Relaxed) as f64
        });
        family(
            &mut s,
            "nircolor_camera_mode_transitions_total",
            "counter",
            "Changes between day mode (colour passed through) and night mode (NIR colorized)",
        );
        self.per_camera_infer(&mut s, "nircolor_camera_mode_transitions_total", |t| {
            t.mode_transitions.load(Ordering::Relaxed) as f64
        });
        family(
            &mut s,
            "nircolor_colour_refresh_interval_seconds",
            "histogram",
            "Time between two refreshes of a camera's colour",
        );
        for c in &self.cameras {
            if let Some(t) = self.infer.cameras.get(c.id.as_str()) {
                t.refresh_interval.render(
                    "nircolor_colour_refresh_interval_seconds",
                    &format!("camera=\"{}\"", escape(&c.id)),
                    &mut s,
                );
            }
        }
        family(
            &mut s,
            "nircolor_start_time_seconds",
            "gauge",
            "When the daemon started, in seconds since the Unix epoch: its changes count restarts",
        );
        let _ = writeln!(s, "nircolor_start_time_seconds {}", self.started_unix);
        let infer = &self.infer;
        family(
            &mut s,
            "nircolor_batches_total",
            "counter",
            "Network runs (batches of frames from one or more cameras)",
        );
        let _ = writeln!(
            s,
            "nircolor_batches_total {}",
            infer.batches.load(Ordering::Relaxed)
        );
        family(
            &mut s,
            "nircolor_batched_frames_total",
            "counter",
            "Frames through inference (divide by batches for the mean batch size)",
        );
        let _ = writeln!(
            s,
            "nircolor_batched_frames_total {}",
            infer.frames.load(Ordering::Relaxed)
        );
        s
    }

    /// One sample of `name` per camera that inference serves, its value from the camera's
    /// inference figures.
    fn per_camera_infer(&self, s: &mut String, name: &str, value: impl Fn(&FrameTimes) -> f64) {
        for c in &self.cameras {
            if let Some(t) = self.infer.cameras.get(c.id.as_str()) {
                let _ = writeln!(s, "{name}{{camera=\"{}\"}} {}", escape(&c.id), value(t));
            }
        }
    }

    /// (status code, JSON body) for orchestrators' readiness probes: 200 once every camera's
    /// pipeline plays (it delivers frames, or its file has ended), 503 naming those that do not
    /// yet or no longer. Unlike `/healthz` there is no grace window: a reconnecting camera is not
    /// ready.
    pub fn ready(&self) -> (u16, String) {
        let waiting: Vec<&str> = self
            .cameras
            .iter()
            .filter(|c| {
                !c.status.up.load(Ordering::SeqCst) && !c.status.finished.load(Ordering::SeqCst)
            })
            .map(|c| c.id.as_str())
            .collect();
        let body =
            serde_json::json!({"ready": waiting.is_empty(), "not_playing": waiting}).to_string();
        (if waiting.is_empty() { 200 } else { 503 }, body)
    }

    /// `/snapshot/<camera>.jpg?view=nir|colour`, given `CAMERA.jpg` and the view (colour when
    /// none is given): a JPEG of the camera's next frame, or (status code, why).
    pub fn snapshot(&self, name: &str, view: Option<&str>) -> Result<Vec<u8>, (u16, String)> {
        /// How long a request waits for the camera's next frame: several frames even at 5 fps.
        const WAIT: Duration = Duration::from_secs(2);
        let Some(camera) = name.strip_suffix(".jpg") else {
            return Err((404, format!("'{name}' is not CAMERA.jpg")));
        };
        let view = match view.unwrap_or("") {
            "" | "colour" | "color" => View::Colour,
            "nir" => View::Nir,
            other => return Err((400, format!("view '{other}' is not nir or colour"))),
        };
        let Some(slot) = self.infer.snapshots.get(camera) else {
            let known: Vec<&str> = self.cameras.iter().map(|c| c.id.as_str()).collect();
            return Err((
                404,
                format!("no camera '{camera}'; cameras: {}", known.join(", ")),
            ));
        };
        let (nir, colour) = slot.take(WAIT).ok_or_else(|| {
            (
                503,
                format!("camera '{camera}' gave no frame in {} s", WAIT.as_secs()),
            )
        })?;
        crate::infer::snapshot::jpeg(&nir, &colour, view)
            .map_err(|e| (500, format!("encoding the snapshot: {e}")))
    }

    /// (status code, JSON body): 200 while every camera streams, has finished its file, or is
    /// inside its reconnect window; 503 naming the cameras that are not.
    pub fn health(&self) -> (u16, String) {
        let mut healthy = true;
        let cams: Vec<serde_json::Value> = self
            .cameras
            .iter()
            .map(|c| {
                let (up, finished, down_for) = (c.status.up.load(Ordering::SeqCst), c.status.finished.load(Ordering::SeqCst), c.status.down_for());
                let state = if up {
                    "streaming"
                } else if finished {
                    "finished"
                } else if down_for < RECONNECT_WINDOW {
                    "reconnecting"
                } else {
                    healthy = false;
                    "down"
                };
                // A failed recording is reported, not unhealthy: restarting the daemon would not
                // free the disk, and the camera still streams.
                let recording = c.encode.recorder.get().map(|r| {
                    serde_json::json!({
                        "state": if r.up.load(Ordering::SeqCst) { "recording" } else { "failed" },
                        "failures": r.failures.load(Ordering::SeqCst),
                        "last_error": r.last_error(),
                    })
                });
                serde_json::json!({"camera": c.id, "state": state, "down_seconds": down_for.as_secs_f64(), "last_error": c.status.last_error(), "recording": recording})
            })
            .collect();
        let body = serde_json::json!({"healthy": healthy, "cameras": cams}).to_string();
        (if healthy { 200 } else { 503 }, body)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    impl Telemetry {
        pub(crate) fn for_test(cameras: Vec<CameraTelemetry>) -> Telemetry {
            Telemetry {
                cameras,
                infer: Arc::new(InferStats::default()),
                model: "default".into(),
                device: "cpu".into(),
                started: Instant::now(),
                started_unix: 1_700_000_000,
            }
        }
    }

    pub(crate) fn camera(id: &str, up: bool, down_for: Option<Duration>) -> CameraTelemetry {
        let status = CaptureStats {
            up: AtomicBool::new(up),
            frames: AtomicU64::new(42),
            down_since: std::sync::Mutex::new(down_for.map(|d| Instant::now() - d)),
            ..Default::default()
        };
        let encode = Arc::new(EncodeStats::default());
        encode.latency.observe(Duration::from_millis(40));
        encode.latency.observe(Duration::from_secs(2));
        CameraTelemetry {
            id: id.into(),
            info: CameraInfo::default(),
            status: Arc::new(status),
            capture_drops: Box::new(|| 3),
            colour_drops: Box::new(|| 0),
            encode,
        }
    }

    #[test]
    fn health_is_503_only_for_a_camera_down_past_its_window() {
        let t = |cams| Telemetry::for_test(cams);
        let (code, body) = t(vec![
            camera("a", true, None),
            camera("b", false, Some(Duration::from_secs(3))),
        ])
        .health();
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"reconnecting\""), "{body}");
        let (code, body) = t(vec![
            camera("a", true, None),
            camera("b", false, Some(Duration::from_secs(60))),
        ])
        .health();
        assert_eq!(code, 503);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["cameras"][1]["camera"], "b");
        assert_eq!(v["cameras"][1]["state"], "down");
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let t = Telemetry::for_test(vec![camera("front\"door", true, None)]);
        let text = t.metrics();
        assert!(
            text.contains("nircolor_camera_up{camera=\"front\\\"door\"} 1"),
            "{text}"
        );
        assert!(text.contains("nircolor_frames_captured_total{camera=\"front\\\"door\"} 42"));
        assert!(text
            .contains("nircolor_frames_dropped_total{camera=\"front\\\"door\",stage=\"infer\"} 3"));
        assert!(text
            .contains("nircolor_latency_seconds_bucket{camera=\"front\\\"door\",le=\"0.05\"} 1"));
        assert!(text
            .contains("nircolor_latency_seconds_bucket{camera=\"front\\\"door\",le=\"+Inf\"} 2"));
        assert!(text.contains("nircolor_latency_seconds_count{camera=\"front\\\"door\"} 2"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
        }
    }
}
