//! nircolor: near-infrared to colour video. The library holds every stage so each can be tested
//! on its own; the `nircolor` binary (`src/main.rs`, `src/cli/`) parses commands and calls it.
//!
//! The live path, in the order a frame flows:
//!
//! | stage | what flows in | what flows out |
//! |---|---|---|
//! | [`capture`] | a V4L2 camera, a file, an RTSP stream, a test pattern | NIR frames (f32 luma) |
//! | [`calibrate`] | raw NIR | NIR as the models were trained on; output colour corrections |
//! | [`infer`] | NIR frames of every camera, batched | colour at the inference size |
//! | [`detail`] | low-resolution colour + full-resolution NIR | full-resolution colour |
//! | [`reference`] | the NIR, a camera's day reference, the network's colour | the scene's remembered colour |
//! | [`encode`] | colour frames | H.264 over RTSP, crash-safe recordings |
//!
//! [`daemon`] wires them from a checked [`daemon::config::Config`] and serves their telemetry;
//! [`runtime`] holds what they run on (queues, supervised workers, histograms, systemd notify,
//! the TOML file reader, free disk space, CUDA loading).
//!
//! Every live stage is named the same way: `*Settings` is what it is told
//! ([`capture::CaptureSettings`], [`infer::InferSettings`], [`encode::EncodeSettings`]), `*Stage`
//! the running stage on a [`runtime::worker::Worker`] ([`capture::CaptureStage`],
//! [`infer::InferStage`], [`encode::EncodeStage`]), `*Stats` its counters for `/metrics`
//! ([`capture::CaptureStats`], [`infer::InferStats`], [`encode::EncodeStats`]). Frames carry one
//! [`capture::FrameMeta`] from capture to encode.
//!
//! Beside the live path: [`models`] (the `Colorizer` interface, classical models, networks,
//! weight files), [`offline`] (paired data, metrics, evaluation, reports, fitting and training,
//! benchmarks) and [`images`] (planes, conversions, reading image files, the bitmap font). Each
//! module imports only those below it in this order (`tests/structure.rs`).
//!
//! ## The API for embedding
//!
//! What the daemon and the GStreamer element (`plugin/`, `nircolorize`) both use, re-exported
//! here; the modules stay public for the `nircolor` binary and the tests, but this is the
//! surface meant for other programs:
//! - open a model: [`open_shared`] (one copy per weights file and device in a process, with
//!   its [`SharedModel::settings`]) or [`load_bare`] for a model of one's own;
//! - the colour service: [`ColourService`], which cameras or elements join with
//!   [`ColourService::register`];
//! - per-frame apply: [`ColourClient::colour`] (or [`ColourClient::collect`],
//!   [`ColourClient::apply`] and [`ColourClient::post`] one by one), and
//!   [`ColourService::colour_whole`] for the network on every frame;
//! - statistics: [`FrameTimes`] per client, [`InferStats`] per service;
//! - calibration: [`Calibration`] and its [`Corrector`]; frames: [`Gray`], [`Rgb`];
//! - GStreamer frames of the formats in [`capture::frame::FORMATS`] read into [`Planes`] by
//!   [`capture::frame::read`] (or [`capture::frame::read_sample`] for an appsink's sample), and
//!   a frame's colorimetry as [`Ycc`].

pub use calibrate::{Calibration, Corrector};
pub use capture::frame::{FrameError, Planes, Ycc};
pub use images::planes::{Gray, Rgb};
pub use infer::service::{
    open_shared, ColourClient, ColourService, OpenError, Request, ServiceModels, SharedModel,
};
pub use infer::{FrameTimes, InferSettings, InferStats, Refresh};
pub use models::{load_bare, ColorizerError};

// The live path.
pub mod capture;
pub mod calibrate;
pub mod infer;
pub mod detail;
pub mod reference;
pub mod encode;
pub mod daemon;
pub mod runtime;

// Models, and the offline work around them.
pub mod models;
pub mod offline;
pub mod images;
pub mod fuzzing;
