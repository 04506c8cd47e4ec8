//! Pipeline configuration (`pipelines/*.toml`): cameras, model, detail, outputs. Every mistake
//! is a [`ConfigError`] naming the file, line and key, what was wrong and what is allowed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::calibrate::Calibration;
use crate::capture::{CaptureSettings, PixelFormat, Source};
use crate::encode::webcam::{WebcamFormat, WebcamSink, WebcamSpec};
use crate::encode::{AuthMethods, Container, RtspSecurity};
use crate::infer::Refresh;
use crate::models::BUILTIN;
use crate::reference::store::ReferenceSettings;
pub use crate::runtime::toml_file::ConfigError;
use crate::runtime::toml_file::{read_text, Checker};

mod metrics;
use metrics::{metrics_limits, metrics_token};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    model: RawModel,
    #[serde(default)]
    detail: RawDetail,
    #[serde(default)]
    rtsp: RawRtsp,
    #[serde(default)]
    metrics: RawMetrics,
    camera: Vec<RawCamera>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawModel {
    weights: Spanned<String>,
    #[serde(default)]
    device: Device,
    scale: Option<Spanned<f32>>,
    #[serde(default = "default_max_batch")]
    max_batch: Spanned<usize>,
    #[serde(default = "default_max_wait_ms")]
    max_wait_ms: Spanned<u64>,
    /// "auto" (the default), "every-frame", or refreshes per second per camera.
    refresh_fps: Option<Spanned<toml::Value>>,
    #[serde(default = "default_blend_ms")]
    blend_ms: Spanned<u64>,
    /// A second, slower model for a tiered refresh: it colours each camera's static scene,
    /// seconds apart, while `weights` refreshes what moves.
    quality: Option<Spanned<String>>,
    /// Networks compute their layers in bf16.
    #[serde(default)]
    bf16: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawDetail {
    #[serde(default = "default_radius")]
    radius: Spanned<usize>,
    #[serde(default = "default_eps")]
    eps: Spanned<f32>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRtsp {
    #[serde(default = "default_bind")]
    bind: Spanned<String>,
    #[serde(default = "default_rtsp_port")]
    port: Spanned<u16>,
    /// PEM certificate and key: RTSP over TLS (rtsps://).
    tls_certificate: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    #[serde(default)]
    auth: AuthName,
}

#[derive(Deserialize, Debug, Clone, Copy, Default)]
enum AuthName {
    #[serde(rename = "basic")]
    Basic,
    #[serde(rename = "digest")]
    Digest,
    #[default]
    #[serde(rename = "basic+digest")]
    BasicAndDigest,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "default_metrics")]
    bind: Spanned<String>,
    /// Guards the status page and snapshots; required for them on a non-loopback bind.
    token: Option<Spanned<String>>,
    /// ... or read from this file (a mounted secret), so the token stays out of the config.
    token_file: Option<Spanned<String>>,
    /// The HTTP side's bounds against a connection flood (`http::HttpLimits`; defaults there).
    max_connections: Option<Spanned<u64>>,
    probe_connections: Option<Spanned<u64>>,
    header_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    max_header_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    id: Spanned<String>,
    source: Spanned<RawSource>,
    format: PixelFormatName,
    width: Spanned<u32>,
    height: Spanned<u32>,
    fps: Spanned<u32>,
    calibration: Option<Spanned<String>>,
    #[serde(default = "default_true")]
    retry: bool,
    /// A day/night camera: capture colour too, and pass its colour frames through by day.
    day_night: Option<Spanned<bool>>,
    reference: Option<Spanned<RawReference>>,
    rtsp: Option<RawCameraRtsp>,
    record: Option<RawRecord>,
    webcam: Option<Spanned<RawWebcam>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawWebcam {
    device: String,
    #[serde(default)]
    format: WebcamFormatName,
}

#[derive(Deserialize, Debug, Clone, Copy, Default)]
enum WebcamFormatName {
    #[default]
    #[serde(rename = "YUY2")]
    Yuy2,
    #[serde(rename = "I420")]
    I420,
}

#[derive(Deserialize, Debug)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum RawSource {
    V4l2 {
        device: String,
    },
    File {
        path: String,
        #[serde(default, rename = "loop")]
        looped: bool,
        #[serde(default = "default_true")]
        realtime: bool,
    },
    Rtsp {
        url: String,
    },
    Test {
        #[serde(default = "default_pattern")]
        pattern: String,
    },
    Images {
        folder: String,
        #[serde(default, rename = "loop")]
        looped: bool,
        #[serde(default = "default_true")]
        realtime: bool,
    },
}

#[derive(Deserialize, Debug, Clone, Copy)]
enum PixelFormatName {
    #[serde(rename = "GRAY8")]
    Gray8,
    #[serde(rename = "GRAY16_LE")]
    Gray16Le,
    #[serde(rename = "YUY2")]
    Yuy2,
    #[serde(rename = "NV12")]
    Nv12,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawCameraRtsp {
    mount: Option<Spanned<String>>,
    user: Option<String>,
    password: Option<String>,
    /// The password read from this file (a secret kept out of the config), ...
    password_file: Option<Spanned<String>>,
    /// ... or from this environment variable.
    password_env: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawReference {
    file: String,
    #[serde(default = "default_reference_seconds")]
    sample_seconds: f64,
    #[serde(default = "default_reference_frames")]
    frames: usize,
}

fn default_reference_seconds() -> f64 {
    ReferenceSettings::default().sample_every.as_secs_f64()
}

fn default_reference_frames() -> usize {
    ReferenceSettings::default().min_frames
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    folder: String,
    #[serde(default = "default_segment")]
    segment_seconds: Spanned<u64>,
    #[serde(default)]
    container: ContainerName,
    max_age_hours: Option<Spanned<u64>>,
    max_total_mb: Option<Spanned<u64>>,
}

/// Where the model runs.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

#[derive(Deserialize, Debug, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum ContainerName {
    #[default]
    Mkv,
    Mp4,
}

fn default_max_batch() -> Spanned<usize> {
    Spanned::new(0..0, 4)
}
fn default_blend_ms() -> Spanned<u64> {
    Spanned::new(0..0, crate::infer::BLEND.as_millis() as u64)
}

fn default_max_wait_ms() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}
fn default_radius() -> Spanned<usize> {
    Spanned::new(0..0, crate::detail::DAEMON_RADIUS)
}
fn default_eps() -> Spanned<f32> {
    Spanned::new(0..0, crate::detail::DAEMON_EPS)
}
fn default_bind() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1".into())
}
fn default_rtsp_port() -> Spanned<u16> {
    Spanned::new(0..0, 8554)
}
fn default_metrics() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9464".into())
}
fn default_true() -> bool {
    true
}
fn default_pattern() -> String {
    "smpte".into()
}
fn default_segment() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}

impl Default for RawDetail {
    fn default() -> Self {
        RawDetail {
            radius: default_radius(),
            eps: default_eps(),
        }
    }
}
impl Default for RawRtsp {
    fn default() -> Self {
        RawRtsp {
            bind: default_bind(),
            port: default_rtsp_port(),
            tls_certificate: None,
            tls_key: None,
            auth: AuthName::default(),
        }
    }
}
impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            bind: default_metrics(),
            token: None,
            token_file: None,
            max_connections: None,
            probe_connections: None,
            header_timeout_ms: None,
            idle_timeout_ms: None,
            max_header_bytes: None,
        }
    }
}

/// The model section, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// A built-in colorizer name or a weights file (resolved against the config's folder).
    pub weights: String,
    /// The quality model of a tiered refresh, named the same way (`[model] quality`).
    pub quality: Option<String>,
    /// Networks compute their layers in bf16 (`[model] bf16`).
    pub bf16: bool,
    pub device: Device,
    /// Inference size as a factor of the frame; None: the model's own (a network's card, 0.5
    /// for the classical colorizers).
    pub scale: Option<f32>,
    pub max_batch: usize,
    pub max_wait: Duration,
    pub refresh: Refresh,
    pub blend: Duration,
    pub radius: usize,
    pub eps: f32,
}

/// One camera's RTSP output.
#[derive(Clone, Debug, PartialEq)]
pub struct RtspOutput {
    pub mount: String,
    pub credentials: Option<(String, String)>,
}

/// One camera's recording, with its retention.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub folder: PathBuf,
    pub segment: Duration,
    pub container: Container,
    pub max_age: Option<Duration>,
    pub max_total_bytes: Option<u64>,
}

/// One camera, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    pub spec: CaptureSettings,
    pub calibration: Option<Calibration>,
    /// Retry the camera forever when it is missing or fails (the default); otherwise its first
    /// failure stops the daemon with an error, for a supervisor to act on.
    pub retry: bool,
    pub rtsp: RtspOutput,
    pub record: Option<Recording>,
    /// The camera's day reference (scene memory), built by day and used at night.
    pub reference: Option<ReferenceSettings>,
    /// The colour stream also written to a v4l2loopback device.
    pub webcam: Option<WebcamSpec>,
}

/// A whole checked pipeline configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub file: PathBuf,
    pub model: ModelConfig,
    pub rtsp_bind: String,
    pub rtsp_port: u16,
    pub rtsp_security: RtspSecurity,
    pub metrics_bind: SocketAddr,
    /// The status page's access token (`[metrics] token` or `token_file`).
    pub metrics_token: Option<String>,
    /// The HTTP side's bounds (`[metrics] max_connections` and the rest).
    pub metrics_limits: crate::daemon::http::HttpLimits,
    pub cameras: Vec<CameraConfig>,
}

impl Config {
    /// What is valid but unwise, for `check` and the start of `run` to say.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let loopback = matches!(self.rtsp_bind.as_str(), "127.0.0.1" | "::1" | "localhost");
        let logins: Vec<&str> = self
            .cameras
            .iter()
            .filter(|c| c.rtsp.credentials.is_some())
            .map(|c| c.spec.id.as_str())
            .collect();
        if !loopback && !logins.is_empty() && self.rtsp_security.tls.is_none() {
            out.push(format!(
                "RTSP is served on {} with logins ({}) but without TLS: the video crosses the network unencrypted{}; set [rtsp] tls_certificate and tls_key",
                self.rtsp_bind,
                logins.join(", "),
                if self.rtsp_security.methods == AuthMethods::Digest {
                    ""
                } else {
                    ", and so do the Basic passwords (auth = \"digest\" keeps passwords off the wire)"
                }
            ));
        }
        out
    }

    /// Keeps only the cameras `shard` serves; returns the ids of those it leaves to others.
    pub fn keep_shard(&mut self, shard: crate::daemon::shard::Shard) -> Vec<String> {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cameras)
            .into_iter()
            .partition(|c| shard.owns(&c.spec.id));
        self.cameras = mine;
        others.into_iter().map(|c| c.spec.id).collect()
    }

    /// Reads and checks `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Config::parse(file, &read_text(file, "the configuration")?)
    }

    /// Checks `text` as if read from `file` (relative paths resolve against its folder).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let c = Checker { file, text };
        let raw: RawConfig = c.parse()?;

        let m = &raw.model;
        let model_file = |v: &Spanned<String>, key: &str| -> Result<String, ConfigError> {
            let name = v.get_ref().clone();
            if BUILTIN.contains(&name.as_str()) {
                return Ok(name);
            }
            let path = c.path(&name);
            if !path.is_file() {
                return Err(c.err(
                    &v.span(),
                    key,
                    format!(
                        "'{name}' is neither a built-in colorizer ({}) nor an existing weights file",
                        BUILTIN.join(", ")
                    ),
                ));
            }
            Ok(path.to_string_lossy().into_owned())
        };
        let weights = model_file(&m.weights, "model.weights")?;
        let quality = m
            .quality
            .as_ref()
            .map(|q| model_file(q, "model.quality"))
            .transpose()?;
        if let Some(s) = &m.scale {
            let scale = *s.get_ref();
            if !(scale > 0.0 && scale <= 1.0) {
                return Err(c.err(
                    &s.span(),
                    "model.scale",
                    format!("{scale} is out of range; allowed: above 0, at most 1"),
                ));
            }
        }
        let scale = m.scale.as_ref().map(|s| *s.get_ref());
        let eps = *raw.detail.eps.get_ref();
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(c.err(
                &raw.detail.eps.span(),
                "detail.eps",
                format!("{eps} must be a positive number (1e-5 to 1e-1 are typical)"),
            ));
        }
        let model = ModelConfig {
            weights,
            quality,
            bf16: m.bf16,
            device: m.device,
            scale,
            max_batch: c.range(&m.max_batch, "model.max_batch", 1, 64)?,
            max_wait: Duration::from_millis(c.range(
                &m.max_wait_ms,
                "model.max_wait_ms",
                0,
                1000,
            )?),
            refresh: match &m.refresh_fps {
                None => Refresh::Auto,
                Some(v) => refresh(&c, v)?,
            },
            blend: Duration::from_millis(c.range(&m.blend_ms, "model.blend_ms", 0, 10_000)?),
            radius: c.range(&raw.detail.radius, "detail.radius", 1, 64)?,
            eps,
        };
        if let (Some(q), Refresh::EveryFrame) = (&m.quality, model.refresh) {
            return Err(c.err(
                &q.span(),
                "model.quality",
                "a tiered refresh needs refresh_fps \"auto\" or a rate: with \"every-frame\" the weights' model colours every frame whole and the quality model would never show",
            ));
        }
        let rtsp_port = c.range(&raw.rtsp.port, "rtsp.port", 1, 65535)?;
        let metrics_bind: SocketAddr = raw.metrics.bind.get_ref().parse().map_err(|_| {
            c.err(
                &raw.metrics.bind.span(),
                "metrics.bind",
                format!(
                    "'{}' is not an address:port such as 127.0.0.1:9464",
                    raw.metrics.bind.get_ref()
                ),
            )
        })?;
        let metrics_token = metrics_token(&c, &raw.metrics)?;
        let metrics_limits = metrics_limits(&c, &raw.metrics)?;
        if raw.camera.is_empty() {
            return Err(c.err(
                &(0..0),
                "camera",
                "no camera is configured; add at least one [[camera]] table",
            ));
        }

        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut mounts: HashMap<String, usize> = HashMap::new();
        let mut cameras = Vec::new();
        for cam in &raw.camera {
            let id = cam.id.get_ref().clone();
            let valid_id = !id.is_empty()
                && id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !valid_id {
                return Err(c.err(
                    &cam.id.span(),
                    "camera.id",
                    format!("'{id}' is not allowed; use letters, digits, '-' and '_'"),
                ));
            }
            if let Some(first) = ids.insert(id.clone(), c.line(&cam.id.span())) {
                return Err(c.err(&cam.id.span(), "camera.id", format!("'{id}' is already the id of the camera on line {first}; ids must be unique")));
            }
            let key = |k: &str| format!("camera '{id}'.{k}");
            let width = c.range(&cam.width, &key("width"), 16, 8192)?;
            let height = c.range(&cam.height, &key("height"), 16, 8192)?;
            // The encoder's 4:2:0 chroma covers 2x2 pixels: x264 refuses odd sizes.
            for (v, span, k) in [
                (width, cam.width.span(), "width"),
                (height, cam.height.span(), "height"),
            ] {
                if v % 2 != 0 {
                    return Err(c.err(
                        &span,
                        &key(k),
                        format!(
                            "{v} is odd; H.264 in 4:2:0 needs an even {k}: use {} or {}",
                            v - 1,
                            v + 1
                        ),
                    ));
                }
            }
            let fps = c.range(&cam.fps, &key("fps"), 1, 240)?;
            let calibration = match &cam.calibration {
                Some(p) => {
                    let path = c.path(p.get_ref());
                    if !path.is_file() {
                        return Err(c.err(
                            &p.span(),
                            &key("calibration"),
                            format!("calibration file {} does not exist", path.display()),
                        ));
                    }
                    // Checked now, at its own lines, so `check` catches a bad calibration too.
                    let cal = Calibration::load(&path)?;
                    cal.prepare(width as usize, height as usize)?;
                    Some(cal)
                }
                None => None,
            };
            let (mount, mount_span, credentials) = match &cam.rtsp {
                Some(r) => {
                    let password = password(&c, r, &key("rtsp"))?;
                    let creds = match (&r.user, password) {
                        (Some(u), Some(p)) => Some((u.clone(), p)),
                        (None, None) => None,
                        _ => {
                            return Err(c.err(
                                &cam.id.span(),
                                &key("rtsp"),
                                "give both user and a password (password, password_file or password_env), or neither",
                            ))
                        }
                    };
                    match &r.mount {
                        Some(m) => (m.get_ref().clone(), m.span(), creds),
                        None => (format!("/{id}"), cam.id.span(), creds),
                    }
                }
                None => (format!("/{id}"), cam.id.span(), None),
            };
            if !crate::encode::valid_mount(&mount) {
                return Err(c.err(
                    &mount_span,
                    &key("rtsp.mount"),
                    format!("'{mount}' must start with '/' and have no spaces, e.g. /front"),
                ));
            }
            if let Some(first) = mounts.insert(mount.clone(), c.line(&mount_span)) {
                return Err(c.err(&mount_span, &key("rtsp.mount"), format!("'{mount}' is already served by the camera on line {first}; mounts must be unique")));
            }
            let reference = match &cam.reference {
                Some(r) => {
                    let raw = r.get_ref();
                    if !(raw.sample_seconds.is_finite() && raw.sample_seconds > 0.0) {
                        return Err(c.err(
                            &r.span(),
                            &key("reference.sample_seconds"),
                            format!("{} must be above 0 (seconds between two samples of the day's colour)", raw.sample_seconds),
                        ));
                    }
                    let settings = ReferenceSettings {
                        file: c.path(&raw.file),
                        sample_every: Duration::from_secs_f64(raw.sample_seconds),
                        min_frames: raw.frames,
                        max_frames: raw.frames,
                    };
                    settings
                        .validate()
                        .map_err(|why| c.err(&r.span(), &key("reference"), why))?;
                    Some(settings)
                }
                None => None,
            };
            let record = match &cam.record {
                Some(r) => Some(Recording {
                    folder: c.path(&r.folder),
                    segment: Duration::from_secs(c.range(
                        &r.segment_seconds,
                        &key("record.segment_seconds"),
                        1,
                        3600,
                    )?),
                    container: match r.container {
                        ContainerName::Mkv => Container::Matroska,
                        ContainerName::Mp4 => Container::FragmentedMp4,
                    },
                    max_age: r
                        .max_age_hours
                        .as_ref()
                        .map(|h| {
                            c.range(h, &key("record.max_age_hours"), 1, 24 * 365)
                                .map(|h| Duration::from_secs(h * 3600))
                        })
                        .transpose()?,
                    max_total_bytes: r
                        .max_total_mb
                        .as_ref()
                        .map(|mb| {
                            c.range(mb, &key("record.max_total_mb"), 1, 100_000_000)
                                .map(|mb| mb * 1_000_000)
                        })
                        .transpose()?,
                }),
                None => None,
            };
            let source = match cam.source.get_ref() {
                RawSource::V4l2 { device } => Source::V4l2 {
                    device: device.into(),
                },
                RawSource::File {
                    path,
                    looped,
                    realtime,
                } => Source::File {
                    path: c.path(path),
                    looped: *looped,
                    realtime: *realtime,
                },
                RawSource::Rtsp { url } => Source::Rtsp { url: url.clone() },
                RawSource::Test { pattern } => Source::Test {
                    pattern: pattern.clone(),
                },
                RawSource::Images {
                    folder,
                    looped,
                    realtime,
                } => Source::Images {
                    folder: c.path(folder),
                    looped: *looped,
                    realtime: *realtime,
                },
            };
            if matches!(
                cam.source.get_ref(),
                RawSource::File {
                    looped: true,
                    realtime: false,
                    ..
                } | RawSource::Images {
                    looped: true,
                    realtime: false,
                    ..
                }
            ) {
                return Err(c.err(
                    &cam.source.span(),
                    &key("source"),
                    "loop = true with realtime = false would process the same frames as fast as possible forever; realtime = false is for batch jobs (loop = false)",
                ));
            }
            let format = match cam.format {
                PixelFormatName::Gray8 => PixelFormat::Gray8,
                PixelFormatName::Gray16Le => PixelFormat::Gray16Le,
                PixelFormatName::Yuy2 => PixelFormat::Yuy2,
                PixelFormatName::Nv12 => PixelFormat::Nv12,
            };
            let day_night = cam.day_night.as_ref().is_some_and(|d| *d.get_ref());
            if let (true, Some(d), PixelFormat::Gray16Le) = (day_night, &cam.day_night, format) {
                return Err(c.err(
                    &d.span(),
                    &key("day_night"),
                    "a GRAY16_LE sensor delivers no colour to pass through by day; day_night needs an 8-bit format that can carry colour (YUY2, NV12) or a file or RTSP source",
                ));
            }
            let spec = CaptureSettings {
                id: id.clone(),
                source,
                format,
                width,
                height,
                fps,
                day_night,
            };
            // The same check the capture stage makes, reported here with a line number.
            if let Err(e) = crate::capture::pipeline_description(&spec) {
                return Err(c.err(&cam.source.span(), &key("source"), e.to_string()));
            }
            let webcam = match &cam.webcam {
                Some(w) => {
                    let device = PathBuf::from(&w.get_ref().device);
                    crate::encode::webcam::check_device(&device)
                        .map_err(|e| c.err(&w.span(), &key("webcam.device"), e.to_string()))?;
                    Some(WebcamSpec {
                        sink: WebcamSink::Device(device),
                        format: match w.get_ref().format {
                            WebcamFormatName::Yuy2 => WebcamFormat::Yuy2,
                            WebcamFormatName::I420 => WebcamFormat::I420,
                        },
                    })
                }
                None => None,
            };
            cameras.push(CameraConfig {
                spec,
                calibration,
                retry: cam.retry,
                rtsp: RtspOutput { mount, credentials },
                record,
                reference,
                webcam,
            });
        }
        let rtsp_security = rtsp_security(&c, &raw.rtsp)?;
        Ok(Config {
            file: file.to_path_buf(),
            model,
            rtsp_bind: raw.rtsp.bind.get_ref().clone(),
            rtsp_port,
            rtsp_security,
            metrics_bind,
            metrics_token,
            metrics_limits,
            cameras,
        })
    }
}

/// `[rtsp]` TLS files (both or neither, existing) and login methods.
fn rtsp_security(c: &Checker, r: &RawRtsp) -> Result<RtspSecurity, ConfigError> {
    let tls = match (&r.tls_certificate, &r.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            for (f, k) in [(cert, "rtsp.tls_certificate"), (key, "rtsp.tls_key")] {
                let path = c.path(f.get_ref());
                std::fs::File::open(&path).map_err(|e| {
                    c.err(&f.span(), k, format!("cannot read {}: {e}", path.display()))
                })?;
            }
            Some((c.path(cert.get_ref()), c.path(key.get_ref())))
        }
        (Some(f), None) | (None, Some(f)) => {
            return Err(c.err(
                &f.span(),
                "rtsp.tls_certificate",
                "give both tls_certificate and tls_key (PEM files), or neither",
            ))
        }
    };
    Ok(RtspSecurity {
        tls,
        methods: match r.auth {
            AuthName::Basic => AuthMethods::Basic,
            AuthName::Digest => AuthMethods::Digest,
            AuthName::BasicAndDigest => AuthMethods::BasicAndDigest,
        },
    })
}

/// A camera's RTSP password: given in the config, read from a file, or from the environment;
/// at most one of them.
fn password(c: &Checker, r: &RawCameraRtsp, key: &str) -> Result<Option<String>, ConfigError> {
    let given = [
        r.password.is_some(),
        r.password_file.is_some(),
        r.password_env.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        let span = r
            .password_file
            .as_ref()
            .or(r.password_env.as_ref())
            .map(|s| s.span())
            .unwrap_or(0..0);
        return Err(c.err(
            &span,
            key,
            "give one of password, password_file and password_env",
        ));
    }
    if let Some(f) = &r.password_file {
        let path = c.path(f.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            c.err(
                &f.span(),
                &format!("{key}.password_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        // A trailing newline is how editors and `echo` write files, not part of the password.
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    if let Some(v) = &r.password_env {
        return std::env::var(v.get_ref()).map(Some).map_err(|_| {
            c.err(
                &v.span(),
                &format!("{key}.password_env"),
                format!("the environment variable {} is not set", v.get_ref()),
            )
        });
    }
    Ok(r.password.clone())
}

/// `model.refresh_fps`: "auto", "every-frame", or refreshes per second per camera.
fn refresh(c: &Checker, v: &Spanned<toml::Value>) -> Result<Refresh, ConfigError> {
    match v.get_ref() {
        toml::Value::String(s) => s.parse(),
        toml::Value::Integer(i) => Refresh::per_second(*i as f64),
        toml::Value::Float(f) => Refresh::per_second(*f),
        other => Err(Refresh::allowed(other)),
    }
    .map_err(|why| c.err(&v.span(), "model.refresh_fps", why))
}
