//! What the daemon reports about itself: Prometheus metrics (a `prometheus-client` collector),
//! health, readiness and snapshots, from counters the stages keep anyway (camera status, queue
//! drops, batches, encoder latency). [`super::http`] serves them.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::CaptureStats;
use crate::encode::EncodeStats;
use crate::infer::snapshot::View;
use crate::infer::{FrameTimes, InferStats};
use crate::runtime::histogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

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

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.cameras.iter().map(|c| c.id.as_str()).collect();
        f.debug_struct("Telemetry")
            .field("cameras", &ids)
            .field("model", &self.model)
            .field("device", &self.device)
            .finish()
    }
}

/// Writes the families of one scrape into a `prometheus-client` encoder. Names are given as
/// exported: the encoders add `_total` to counters themselves, so it is taken off here.
struct Families<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl Families<'_> {
    fn family(
        &mut self,
        name: &str,
        kind: MetricType,
        help: &str,
        write: impl FnOnce(&mut MetricEncoder) -> fmt::Result,
    ) -> fmt::Result {
        let base = match kind {
            MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let mut m = self.encoder.encode_descriptor(base, help, None, kind)?;
        write(&mut m)
    }

    /// A family with one sample per item of `items`, labelled by `labels`.
    fn samples<T>(
        &mut self,
        name: &str,
        kind: MetricType,
        help: &str,
        items: impl IntoIterator<Item = (Vec<(&'static str, String)>, T)>,
    ) -> fmt::Result
    where
        T: Sample,
    {
        self.family(name, kind, help, |m| {
            for (labels, value) in items {
                value.encode(&mut m.encode_family(&labels)?, kind)?;
            }
            Ok(())
        })
    }
}

/// A sample value: a number (counter or gauge) or a histogram.
trait Sample {
    fn encode(&self, m: &mut MetricEncoder, kind: MetricType) -> fmt::Result;
}

impl Sample for f64 {
    fn encode(&self, m: &mut MetricEncoder, kind: MetricType) -> fmt::Result {
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, _, f64>(self, None),
            _ => m.encode_gauge(self),
        }
    }
}

impl Sample for u64 {
    fn encode(&self, m: &mut MetricEncoder, kind: MetricType) -> fmt::Result {
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, _, f64>(self, None),
            _ => m.encode_gauge(self),
        }
    }
}

impl Sample for &Histogram {
    fn encode(&self, m: &mut MetricEncoder, _kind: MetricType) -> fmt::Result {
        let (sum, count, buckets) = self.snapshot();
        m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

fn camera(id: &str) -> Vec<(&'static str, String)> {
    vec![("camera", id.to_string())]
}

impl Collector for Telemetry {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge, Histogram as Hist};
        let mut f = Families { encoder };
        let cams = &self.cameras;
        let per = |value: &dyn Fn(&CameraTelemetry) -> u64| -> Vec<_> {
            cams.iter().map(|c| (camera(&c.id), value(c))).collect()
        };
        f.samples(
            "nircolor_camera_up",
            Gauge,
            "1 while the camera delivers frames",
            per(&|c| u64::from(c.status.up.load(Ordering::SeqCst))),
        )?;
        f.samples(
            "nircolor_camera_reconnects_total",
            Counter,
            "Pipeline restarts after a failure",
            per(&|c| c.status.restarts.load(Ordering::SeqCst)),
        )?;
        f.samples(
            "nircolor_frames_captured_total",
            Counter,
            "Frames captured",
            per(&|c| c.status.frames.load(Ordering::Relaxed)),
        )?;
        f.samples(
            "nircolor_frames_encoded_total",
            Counter,
            "Frames encoded",
            per(&|c| c.encode.frames.load(Ordering::Relaxed)),
        )?;
        f.samples(
            "nircolor_no_signal_frames_total",
            Counter,
            "\"No signal\" cards shown while the camera delivered nothing",
            per(&|c| c.encode.no_signal.load(Ordering::Relaxed)),
        )?;
        // Only cameras that record have these.
        let recording =
            |value: &dyn Fn(&crate::encode::recorder::RecorderStatus) -> u64| -> Vec<_> {
                cams.iter()
                    .filter_map(|c| Some((camera(&c.id), value(c.encode.recorder.get()?))))
                    .collect()
            };
        f.samples(
            "nircolor_recording_up",
            Gauge,
            "1 while the camera's recording writes segments, 0 after a failure (full disk, unwritable or missing folder) until it resumes",
            recording(&|r| u64::from(r.up.load(Ordering::SeqCst))),
        )?;
        f.samples(
            "nircolor_recording_failures_total",
            Counter,
            "Times the camera's recording stopped on a write failure",
            recording(&|r| r.failures.load(Ordering::SeqCst)),
        )?;
        f.samples(
            "nircolor_recording_segments_freed_total",
            Counter,
            "Oldest segments deleted early to keep recording on a full disk (retention set)",
            recording(&|r| r.freed.load(Ordering::SeqCst)),
        )?;
        let stage =
            |id: &str, stage: &str| vec![("camera", id.to_string()), ("stage", stage.to_string())];
        f.samples(
            "nircolor_frames_dropped_total",
            Counter,
            "Frames dropped because the next stage was busy",
            cams.iter().flat_map(|c| {
                [
                    (stage(&c.id, "infer"), (c.capture_drops)()),
                    (stage(&c.id, "encode"), (c.colour_drops)()),
                ]
            }),
        )?;
        f.samples(
            "nircolor_encoded_latency_seconds",
            Hist,
            "Capture to leaving the H.264 encoder",
            cams.iter()
                .map(|c| (camera(&c.id), &c.encode.encoded_latency)),
        )?;
        f.samples(
            "nircolor_latency_seconds",
            Hist,
            "Capture to encoder hand-off",
            cams.iter().map(|c| (camera(&c.id), &c.encode.latency)),
        )?;
        let infer = |c: &CameraTelemetry| self.infer.cameras.get(c.id.as_str());
        f.samples(
            "nircolor_stage_latency_seconds",
            Hist,
            "Time a frame spends in each stage: queue (capture to its batch starting), infer (its batch: calibration, model, detail), encode (hand-off to leaving the H.264 encoder)",
            cams.iter().flat_map(|c| {
                let stages = infer(c).map(|t| {
                    [
                        (stage(&c.id, "queue"), &t.queued),
                        (stage(&c.id, "infer"), &t.processed),
                    ]
                });
                stages
                    .into_iter()
                    .flatten()
                    .chain([(stage(&c.id, "encode"), &c.encode.encode_time)])
            }),
        )?;
        let per_infer = |value: &dyn Fn(&FrameTimes) -> f64| -> Vec<_> {
            cams.iter()
                .filter_map(|c| Some((camera(&c.id), value(infer(c)?))))
                .collect()
        };
        f.samples(
            "nircolor_colour_refreshes_total",
            Counter,
            "Times the network recomputed a camera's colour (every frame with refresh_fps = \"every-frame\"); its rate is the camera's refresh rate",
            per_infer(&|t| t.refreshes.load(Ordering::Relaxed) as f64),
        )?;
        f.samples(
            "nircolor_colour_quality_refreshes_total",
            Counter,
            "Times the quality model of a tiered refresh ([model] quality) recomputed a camera's static colour; its rate is the camera's quality refresh rate",
            per_infer(&|t| t.quality_refreshes.load(Ordering::Relaxed) as f64),
        )?;
        f.samples(
            "nircolor_colour_age_seconds",
            Gauge,
            "How much older than the newest frame the frame is that the network last coloured for this camera (0 with every-frame refresh)",
            per_infer(&|t| t.colour_age_us.load(Ordering::Relaxed) as f64 / 1e6),
        )?;
        f.samples(
            "nircolor_camera_day_mode",
            Gauge,
            "1 while a day/night camera delivers colour and its frames pass through, 0 at night (NIR, colorized)",
            per_infer(&|t| f64::from(u8::from(t.day.load(Ordering::Relaxed)))),
        )?;
        f.samples(
            "nircolor_camera_reference",
            Gauge,
            "1 while a camera has a day reference of its frame size, whose colours its night frames take",
            per_infer(&|t| f64::from(u8::from(t.reference.load(Ordering::Relaxed)))),
        )?;
        f.samples(
            "nircolor_camera_moved_total",
            Counter,
            "Times a camera's picture stopped lining up with its day reference (it moved or was re-aimed): the reference was dropped and the network colours alone until a new one is built by day",
            per_infer(&|t| t.moved.load(Ordering::Relaxed) as f64),
        )?;
        f.samples(
            "nircolor_camera_mode_transitions_total",
            Counter,
            "Changes between day mode (colour passed through) and night mode (NIR colorized)",
            per_infer(&|t| t.mode_transitions.load(Ordering::Relaxed) as f64),
        )?;
        f.samples(
            "nircolor_colour_refresh_interval_seconds",
            Hist,
            "Time between two refreshes of a camera's colour",
            cams.iter()
                .filter_map(|c| Some((camera(&c.id), &infer(c)?.refresh_interval))),
        )?;
        let none = Vec::new;
        f.samples(
            "nircolor_start_time_seconds",
            Gauge,
            "When the daemon started, in seconds since the Unix epoch: its changes count restarts",
            [(none(), self.started_unix)],
        )?;
        f.samples(
            "nircolor_batches_total",
            Counter,
            "Network runs (batches of frames from one or more cameras)",
            [(none(), self.infer.batches.load(Ordering::Relaxed))],
        )?;
        f.samples(
            "nircolor_batched_frames_total",
            Counter,
            "Frames through inference (divide by batches for the mean batch size)",
            [(none(), self.infer.frames.load(Ordering::Relaxed))],
        )
    }
}

impl Telemetry {
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
    fn metrics_are_prometheus_text_or_openmetrics_when_asked() {
        let t = Telemetry::for_test(vec![camera("front\"door", true, None)]);
        let site = crate::daemon::http::Site::new(Arc::new(t), crate::daemon::http::Access::Open);
        let (open, kind) = site.metrics(true);
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(
            open.contains("# TYPE nircolor_frames_captured counter"),
            "{open}"
        );
        assert!(open.contains("nircolor_frames_captured_total{camera=\"front\\\"door\"} 42"));
        let (text, kind) = site.metrics(false);
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        assert!(
            text.contains("# TYPE nircolor_frames_captured_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE nircolor_http_connections_open gauge"),
            "{text}"
        );
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
