//! The daemon: wires a checked [`Config`] into running stages (an RTSP server, one capture per
//! camera, one inference thread, one encoder thread per camera) and shuts them down in order so
//! every recording ends complete.

pub mod config;
pub mod http;
pub mod shard;
pub mod status;
pub mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;

use crate::capture::{Backoff, CaptureError, CaptureStage};
use crate::daemon::config::{Config, Device};
use crate::detail::GuidedFilter;
use crate::encode::{
    EncodeError, EncodeSettings, EncodeStage, EncodeStats, Encoder, EncoderSettings, RecordSpec,
    Retention, RtspServer,
};
use crate::infer::{ColourFrame, InferSettings, InferStage, Refresh};
use crate::models::ColorizerError;
use crate::runtime::queue::{lossless, newest_wins, Consumer, NewestWins};
use crate::runtime::worker::Worker;
use telemetry::{CameraTelemetry, Telemetry};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Model(#[from] ColorizerError),
    #[error(transparent)]
    Calibration(#[from] crate::daemon::config::ConfigError),
    #[error("{file}: {what} is not supported by this version of nircolor yet; remove it from the configuration")]
    Unsupported { file: String, what: String },
    #[error("{file}: model.device: {why}")]
    Device {
        file: String,
        why: crate::models::net::DeviceError,
    },
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("cannot serve metrics on {addr}: {why}; pick a free address in [metrics] bind")]
    Metrics {
        addr: std::net::SocketAddr,
        why: String,
    },
}

/// Frames a camera may have waiting for inference when the network runs on every frame: two, so
/// the newest frame always waits while one is being batched, and anything older is stale.
const CAPTURE_QUEUE_EVERY_FRAME: usize = 2;

/// ... and when colour is amortised: four, which rides out a scheduling stall of the frame
/// thread without dropping (with two, four 640x480 cameras dropped a few frames a minute here).
/// A full queue is 133 ms at 30 fps, but it rarely fills: the p99 capture-to-encoded latency of
/// four cameras stayed at 55 ms.
const CAPTURE_QUEUE_AMORTISED: usize = 4;

/// Colour frames a camera may have waiting for its encoder: one batch of up to 4 frames from
/// inference (the default `max_batch`) fits without dropping.
const COLOUR_QUEUE: usize = 4;

/// The H.264 bitrate for a camera: about 0.1 bit per pixel per frame, at least 500 kbit/s.
fn bitrate_kbps(width: u32, height: u32, fps: u32) -> u32 {
    ((u64::from(width) * u64::from(height) * u64::from(fps) / 10_000) as u32).max(500)
}

/// A running daemon.
pub struct Daemon {
    server: RtspServer,
    cameras: Vec<CaptureStage>,
    infer: Option<InferStage>,
    encoders: Vec<EncodeStage>,
    metrics: Option<Worker>,
    telemetry: Arc<Telemetry>,
    urls: Vec<String>,
    /// Per camera: whether a failure is retried rather than fatal.
    retry: Vec<bool>,
}

impl Daemon {
    /// Starts every stage of `config`.
    pub fn start(config: &Config) -> Result<Daemon, DaemonError> {
        let unsupported = |what: &str| DaemonError::Unsupported {
            file: config.file.display().to_string(),
            what: what.into(),
        };
        let mut calibrations = HashMap::new();
        for cam in &config.cameras {
            if let Some(cal) = &cam.calibration {
                let corrector = cal.prepare(cam.spec.width as usize, cam.spec.height as usize)?;
                tracing::info!(camera = %cam.spec.id, file = %cal.file.display(), "calibration loaded");
                calibrations.insert(Arc::<str>::from(cam.spec.id.as_str()), corrector);
            }
        }
        let device = match config.model.device {
            Device::Auto => crate::models::net::pick_device("auto"),
            Device::Cpu => crate::models::net::pick_device("cpu"),
            Device::Cuda => crate::models::net::pick_device("cuda"),
        }
        .map_err(|why| DaemonError::Device {
            file: config.file.display().to_string(),
            why,
        })?;
        crate::models::net::set_bf16_inference(config.model.bf16);
        let (model, net) = crate::models::load_bare(&config.model.weights, device)?;
        if config.model.device == Device::Cuda && net.is_none() {
            return Err(unsupported(
                "model.device = \"cuda\" with a classical colorizer (identity, linear and l3 run on the CPU; use a network's weights)",
            ));
        }
        tracing::info!(model = %model.name(), device = ?device, "model loaded");
        let mut model_name = model.name().to_string();
        let quality = match &config.model.quality {
            Some(q) => {
                let (quality, _) = crate::models::load_bare(q, device)?;
                tracing::info!(model = %quality.name(), device = ?device, "quality model loaded: a tiered refresh");
                model_name = format!("{model_name}, quality {}", quality.name());
                Some(quality)
            }
            None => None,
        };
        // The configured scale wins; otherwise a network's own inference size (its card), or
        // half size for the classical colorizers.
        let (scale, max_pixels) = match (config.model.scale, &net) {
            (Some(s), _) => (s, 0),
            (None, Some(cfg)) => (cfg.scale as f32, cfg.max_pixels),
            (None, None) => (0.5, 0),
        };
        let server =
            RtspServer::start_with(&config.rtsp_bind, config.rtsp_port, &config.rtsp_security)?;
        let mut inputs = Vec::new();
        let mut outputs = HashMap::new();
        let mut colour_rx: Vec<(usize, Consumer<ColourFrame>)> = Vec::new();
        let mut cameras = Vec::new();
        let mut urls = Vec::new();
        let mut telemetry = Vec::new();
        for (i, cam) in config.cameras.iter().enumerate() {
            // A batch source (realtime = false) loses no frame: its queues wait instead.
            let realtime = cam.spec.source.realtime();
            let depth = match config.model.refresh {
                Refresh::EveryFrame => CAPTURE_QUEUE_EVERY_FRAME,
                Refresh::Auto | Refresh::PerSecond(_) => CAPTURE_QUEUE_AMORTISED,
            };
            let (tx, rx) = queue(depth, realtime);
            let capture_drops = tx.drop_counter();
            let camera = CaptureStage::spawn(cam.spec.clone(), tx, Backoff::default())?;
            inputs.push(rx);
            let (tx, rx) = queue(COLOUR_QUEUE, realtime);
            let colour_drops = tx.drop_counter();
            outputs.insert(Arc::from(cam.spec.id.as_str()), tx);
            colour_rx.push((i, rx));
            urls.push(server.url(&cam.rtsp.mount));
            telemetry.push(CameraTelemetry {
                id: cam.spec.id.clone(),
                info: telemetry::CameraInfo {
                    source: cam.spec.source.describe(),
                    width: cam.spec.width,
                    height: cam.spec.height,
                    fps: cam.spec.fps,
                    rtsp_url: server.url(&cam.rtsp.mount),
                    record_folder: cam.record.as_ref().map(|r| r.folder.clone()),
                },
                status: camera.status_handle(),
                capture_drops: Box::new(move || {
                    capture_drops.load(std::sync::atomic::Ordering::Relaxed)
                }),
                colour_drops: Box::new(move || {
                    colour_drops.load(std::sync::atomic::Ordering::Relaxed)
                }),
                encode: Arc::new(EncodeStats::default()),
            });
            cameras.push(camera);
        }
        let mut encoders = Vec::new();
        for (i, rx) in colour_rx {
            let cam = &config.cameras[i];
            let credentials = cam
                .rtsp
                .credentials
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.as_str()));
            let feed = server.mount_with(&cam.rtsp.mount, credentials)?;
            let spec = EncoderSettings {
                camera: cam.spec.id.clone(),
                width: cam.spec.width as usize,
                height: cam.spec.height as usize,
                fps: cam.spec.fps,
                bitrate_kbps: bitrate_kbps(cam.spec.width, cam.spec.height, cam.spec.fps),
                record: cam.record.as_ref().map(|r| RecordSpec {
                    folder: r.folder.clone(),
                    segment: r.segment,
                    container: r.container,
                    lossless: !cam.spec.source.realtime(),
                    prune_when_full: r.max_age.is_some() || r.max_total_bytes.is_some(),
                }),
                webcam: cam.webcam.clone(),
            };
            let encoder = Encoder::start(spec, Some(feed))?;
            let settings = EncodeSettings {
                camera: cam.spec.id.clone(),
                realtime: cam.spec.source.realtime(),
                retention: cam
                    .record
                    .as_ref()
                    .filter(|r| r.max_age.is_some() || r.max_total_bytes.is_some())
                    .map(|r| Retention {
                        folder: r.folder.clone(),
                        max_age: r.max_age,
                        max_total_bytes: r.max_total_bytes,
                    }),
            };
            encoders.push(EncodeStage::spawn(
                encoder,
                rx,
                settings,
                telemetry[i].encode.clone(),
            )?);
        }
        let infer = InferStage::spawn_calibrated(
            model,
            inputs,
            outputs,
            InferSettings {
                scale,
                max_pixels,
                max_batch: config.model.max_batch,
                max_wait: config.model.max_wait,
                detail: GuidedFilter {
                    radius: config.model.radius,
                    eps: config.model.eps,
                },
                refresh: config.model.refresh,
                blend: config.model.blend,
            },
            calibrations,
            config
                .cameras
                .iter()
                .filter_map(|c| {
                    let r = c.reference.clone()?;
                    Some((Arc::<str>::from(c.spec.id.as_str()), r))
                })
                .collect(),
            quality,
        )?;
        let telemetry = Arc::new(Telemetry {
            cameras: telemetry,
            infer: infer.stats_handle(),
            model: model_name,
            device: format!("{device:?}").to_lowercase(),
            started: std::time::Instant::now(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        let access = http::Access::new(config.metrics_bind, config.metrics_token.clone());
        let site = Arc::new(http::Site::new(telemetry.clone(), access));
        let limits = config.metrics_limits.clone();
        let metrics =
            http::serve(config.metrics_bind, limits, site).map_err(|e| DaemonError::Metrics {
                addr: config.metrics_bind,
                why: e.to_string(),
            })?;
        Ok(Daemon {
            server,
            cameras,
            infer: Some(infer),
            encoders,
            metrics: Some(metrics),
            telemetry,
            urls,
            retry: config.cameras.iter().map(|c| c.retry).collect(),
        })
    }

    /// The counters every stage keeps.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Whether every camera's source has ended for good (non-looped files): a batch job is done
    /// once they have and the stages have drained.
    /// A daemon with no camera (a shard the hash gave none) is never finished: it keeps serving
    /// its probes, or its orchestrator would restart it forever.
    pub fn all_finished(&self) -> bool {
        !self.telemetry.cameras.is_empty()
            && self
                .telemetry
                .cameras
                .iter()
                .all(|c| c.status.finished.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The first camera configured with `retry = false` that has failed: (its id, why).
    pub fn failed_camera(&self) -> Option<(String, String)> {
        self.telemetry
            .cameras
            .iter()
            .zip(&self.retry)
            .find(|(c, retry)| {
                !**retry && c.status.restarts.load(std::sync::atomic::Ordering::SeqCst) > 0
            })
            .map(|(c, _)| {
                (
                    c.id.clone(),
                    c.status.last_error().unwrap_or_else(|| "failed".into()),
                )
            })
    }

    /// The RTSP URL of every camera, in configuration order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn rtsp_port(&self) -> u16 {
        self.server.port
    }

    /// (frames encoded so far over all cameras, whether any camera is delivering frames): the
    /// watchdog's view of progress. With no camera up nothing is expected to flow, and the
    /// capture supervisors retrying is progress enough.
    pub fn progress(&self) -> (u64, bool) {
        let cams = &self.telemetry.cameras;
        let encoded = cams
            .iter()
            .map(|c| c.encode.frames.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        let any_up = cams
            .iter()
            .any(|c| c.status.up.load(std::sync::atomic::Ordering::SeqCst));
        (encoded, any_up)
    }

    /// Stops capture, lets inference and encoding drain, and ends every recording cleanly.
    /// Returns the frames each camera encoded.
    pub fn shutdown(mut self) -> Vec<Result<u64, EncodeError>> {
        for camera in self.cameras.drain(..) {
            camera.stop();
        }
        // Stopping inference drops its outputs: each encoder drains its queue, sees the channel
        // close and ends its recording.
        if let Some(infer) = self.infer.take() {
            infer.stop();
        }
        let results = self.encoders.drain(..).map(EncodeStage::finish).collect();
        if let Some(metrics) = self.metrics.take() {
            metrics.stop();
        }
        results
    }
}

/// A queue between stages: newest wins for a realtime source, lossless for a batch one.
fn queue<T>(capacity: usize, realtime: bool) -> (NewestWins<T>, Consumer<T>) {
    if realtime {
        newest_wins(capacity)
    } else {
        lossless(capacity)
    }
}
