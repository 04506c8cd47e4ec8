//! The element's implementation: settings (what the properties say) apart from the runtime
//! state (the shared model, this element's client of its colour service, the negotiated
//! formats).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base::prelude::*;
use gstreamer_base::subclass::prelude::*;
use gstreamer_base::subclass::BaseTransformMode;
use gstreamer_video as gst_video;
use gstreamer_video::subclass::prelude::*;

use nircolor::reference::daynight::{self, DayNight, Mode};
use nircolor::reference::store::{self, StoredReference};
use nircolor::{
    open_shared, Calibration, ColourClient, Corrector, FrameTimes, InferSettings, Planes, Refresh,
    Request, Rgb, SharedModel,
};

use super::formats;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "nircolorize",
        gst::DebugColorFlags::empty(),
        Some("near-infrared to colour"),
    )
});

const DEFAULT_MODEL: &str = "default";
const DEFAULT_DEVICE: &str = "auto";
const DEFAULT_REFRESH: &str = "auto";

/// What the properties say.
#[derive(Clone, Debug)]
struct Settings {
    model: String,
    device: String,
    refresh: String,
    calibration: Option<PathBuf>,
    reference: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.into(),
            device: DEFAULT_DEVICE.into(),
            refresh: DEFAULT_REFRESH.into(),
            calibration: None,
            reference: None,
        }
    }
}

/// The model in use: shared with every element of the process that asked for the same
/// weights on the same device, and this element's place in its service.
struct Running {
    model: Arc<SharedModel>,
    client: ColourClient,
    refresh: Refresh,
    settings: InferSettings,
}

impl Running {
    fn open(settings: &Settings, times: &Arc<FrameTimes>) -> Result<Running, String> {
        let refresh: Refresh = settings.refresh.parse()?;
        let model = open_shared(&settings.model, &settings.device).map_err(|e| e.to_string())?;
        let client = model.service.register(refresh, times.clone());
        Ok(Running {
            settings: model.settings(refresh),
            model,
            client,
            refresh,
        })
    }
}

/// What the element has while it runs.
#[derive(Default)]
struct State {
    running: Option<Running>,
    /// The calibration file, read at start; prepared for each negotiated size.
    calibration: Option<Calibration>,
    corrector: Option<Corrector>,
    reference: Option<StoredReference>,
    /// The reference at the inference size of the current frames.
    reference_low: Option<Arc<Rgb>>,
    day_night: DayNight,
}

/// Counters behind the read-only properties.
#[derive(Default)]
struct Stats {
    times: Arc<FrameTimes>,
    frames: AtomicU64,
    day_frames: AtomicU64,
}

#[derive(Default)]
pub struct NirColorize {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stats: Stats,
}

/// A poisoned lock still holds usable data: a panic elsewhere must not take the stream down
/// with another one here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NirColorize {
    /// Opens the model, the calibration and the reference the settings name.
    fn open(&self, settings: &Settings) -> Result<State, gst::ErrorMessage> {
        let running = Running::open(settings, &self.stats.times).map_err(|why| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                [
                    "nircolorize: cannot open model '{}' on device '{}': {}",
                    settings.model,
                    settings.device,
                    why
                ]
            )
        })?;
        let calibration = match &settings.calibration {
            Some(file) => Some(Calibration::load(file).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ["nircolorize: calibration {}: {}", file.display(), e]
                )
            })?),
            None => None,
        };
        let reference = match &settings.reference {
            Some(file) => match store::load(file) {
                Ok(Some(r)) => Some(r),
                Ok(None) => {
                    return Err(gst::error_msg!(
                        gst::ResourceError::NotFound,
                        ["nircolorize: no day reference at {}; set one with `nircolor calibrate reference`", file.display()]
                    ))
                }
                Err(e) => {
                    return Err(gst::error_msg!(
                        gst::ResourceError::OpenRead,
                        ["nircolorize: day reference {}: {}", file.display(), e]
                    ))
                }
            },
            None => None,
        };
        gst::info!(
            CAT,
            imp = self,
            "model {} on {:?}, {} element(s) share it",
            running.model.service.model_name(),
            running.model.device,
            running.model.service.clients()
        );
        Ok(State {
            running: Some(running),
            calibration,
            reference,
            ..State::default()
        })
    }

    /// Swaps the model of a running element; the stream goes on with the old one if the new
    /// one cannot be opened (an error on the bus says why).
    fn swap_model(&self) {
        let settings = lock(&self.settings).clone();
        if lock(&self.state).running.is_none() {
            return;
        }
        // Opened without the state's lock: the streaming thread goes on colouring with the old
        // model while the new one loads, and takes the new one at its next frame.
        match Running::open(&settings, &self.stats.times) {
            Ok(r) => {
                gst::info!(CAT, imp = self, "model swapped to {}", settings.model);
                let mut state = lock(&self.state);
                if state.running.is_some() {
                    state.running = Some(r);
                    state.reference_low = None;
                }
            }
            Err(why) => {
                self.post_error_message(gst::error_msg!(
                    gst::LibraryError::Settings,
                    ["nircolorize: cannot swap to model '{}' on device '{}': {}; the stream keeps the model it had", settings.model, settings.device, why]
                ));
            }
        }
    }

    /// The colour of one frame.
    fn colour(&self, state: &mut State, input: Planes, at: Instant) -> Result<Rgb, String> {
        let State {
            running,
            corrector,
            reference,
            reference_low,
            day_night,
            ..
        } = state;
        let running = running
            .as_mut()
            .ok_or("nircolorize is not started: no model")?;
        if let Some(colour) = input.colour {
            let chroma = daynight::chroma(&colour);
            if day_night.observe(chroma, at) == Mode::Day {
                self.stats.day_frames.fetch_add(1, Ordering::Relaxed);
                let mut rgb = colour;
                if let Some(c) = corrector.as_ref() {
                    c.colour(&mut rgb);
                }
                return Ok(rgb);
            }
        }
        let mut nir = input.luma;
        if let Some(c) = corrector.as_ref() {
            c.nir(&mut nir);
        }
        let mut request = Request::of(&nir, &running.settings, corrector.as_ref(), at);
        if let Some(r) = reference
            .as_ref()
            .filter(|r| (r.image.width, r.image.height) == (nir.width, nir.height))
        {
            let (lw, lh) = (request.low.width, request.low.height);
            if reference_low.as_ref().map(|l| (l.width, l.height)) != Some((lw, lh)) {
                *reference_low = Some(Arc::new(nircolor::reference::shrunk(&r.image, lw, lh)));
            }
            request.reference = reference_low.clone();
        }
        if running.refresh == Refresh::EveryFrame {
            let (rgb, _) = running.model.service.colour_request(
                &nir,
                &running.settings,
                corrector.as_ref(),
                request,
            );
            // Every frame is a refresh, and its colour is its own, as in the daemon.
            let times = &self.stats.times;
            times.refreshes.fetch_add(1, Ordering::Relaxed);
            times.colour_age_us.store(0, Ordering::Relaxed);
            return Ok(rgb);
        }
        let client = &mut running.client;
        client.collect();
        Ok(client.colour(&nir, request, corrector.as_ref(), running.settings.blend))
    }
}

#[glib::object_subclass]
impl ObjectSubclass for NirColorize {
    const NAME: &'static str = "GstNirColorize";
    type Type = super::NirColorize;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for NirColorize {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("A built-in model (default: the real-time network; hq: the quality network; linear, l3, identity) or a weights file (.safetensors). Changing it while playing swaps the model without stopping the stream")
                    .default_value(Some(DEFAULT_MODEL))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Where the network runs: auto (CUDA when usable, else the CPU), cpu, cuda (an error when no CUDA device is usable)")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("refresh-fps")
                    .nick("Refresh rate")
                    .blurb("How often the network recomputes the colour: auto (as often as the machine allows; every frame applies the newest colour to its own NIR), every-frame (the network on every frame), or refreshes per second (above 0, at most 1000)")
                    .default_value(Some(DEFAULT_REFRESH))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("calibration")
                    .nick("Calibration")
                    .blurb("A camera calibration file (nircolor calibrate): corrects the NIR before the model and the colour after it")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("reference")
                    .nick("Day reference")
                    .blurb("A day reference file (nircolor calibrate reference, or the daemon's stored one): the scene's colours for the night, where the NIR agrees with it")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("refreshes")
                    .nick("Refreshes")
                    .blurb("Times the network recomputed this element's colour")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("colour-age")
                    .nick("Colour age")
                    .blurb("Age of the colour on the newest frame, in milliseconds: its time minus that of the frame the network last coloured")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames")
                    .nick("Frames")
                    .blurb("Frames coloured or passed through")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("day-frames")
                    .nick("Day frames")
                    .blurb("Colour frames passed through as they came (day mode)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("model-users")
                    .nick("Model users")
                    .blurb("Elements of this process that share this element's model (one weight copy, one model thread)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let text = || value.get::<Option<String>>().ok().flatten();
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "model" => {
                let model = text().unwrap_or_else(|| DEFAULT_MODEL.into());
                if model == settings.model {
                    return;
                }
                settings.model = model;
                drop(settings);
                self.swap_model();
            }
            "device" => settings.device = text().unwrap_or_else(|| DEFAULT_DEVICE.into()),
            "refresh-fps" => settings.refresh = text().unwrap_or_else(|| DEFAULT_REFRESH.into()),
            "calibration" => settings.calibration = text().map(PathBuf::from),
            "reference" => settings.reference = text().map(PathBuf::from),
            other => gst::warning!(CAT, imp = self, "no writable property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        let times = &self.stats.times;
        match pspec.name() {
            "model" => settings.model.to_value(),
            "device" => settings.device.to_value(),
            "refresh-fps" => settings.refresh.to_value(),
            "calibration" => settings
                .calibration
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "reference" => settings
                .reference
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "refreshes" => times.refreshes.load(Ordering::Relaxed).to_value(),
            "colour-age" => (times.colour_age_us.load(Ordering::Relaxed) / 1000).to_value(),
            "frames" => self.stats.frames.load(Ordering::Relaxed).to_value(),
            "day-frames" => self.stats.day_frames.load(Ordering::Relaxed).to_value(),
            "model-users" => {
                drop(settings);
                let state = lock(&self.state);
                (state
                    .running
                    .as_ref()
                    .map_or(0, |r| r.model.service.clients()) as u32)
                    .to_value()
            }
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Late frames are dropped before the network, not after.
        self.obj().set_qos(true);
    }
}

impl GstObjectImpl for NirColorize {}

impl ElementImpl for NirColorize {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "NIR colorizer",
                "Filter/Effect/Converter/Video",
                "Colours near-infrared video with nircolor's networks (shared by every element of the process); colour day frames pass through",
                "nircolor developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = |formats: &[gst_video::VideoFormat]| {
                gst_video::VideoCapsBuilder::new()
                    .format_list(formats.iter().copied())
                    .build()
            };
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps(&formats::SRC_FORMATS),
                )
                .expect("valid src template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps(&formats::SINK_FORMATS),
                )
                .expect("valid sink template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for NirColorize {
    const MODE: BaseTransformMode = BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        *lock(&self.state) = self.open(&settings)?;
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::default();
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        // The size and rate stay; the format becomes any of the other pad's, and the
        // colorimetry is the output's own.
        let formats: &[gst_video::VideoFormat] = match direction {
            gst::PadDirection::Sink => &formats::SRC_FORMATS,
            _ => &formats::SINK_FORMATS,
        };
        let list = gst::List::new(formats.iter().map(|f| f.to_str().to_send_value()));
        let mut other = caps.clone();
        for s in other.make_mut().iter_mut() {
            s.set_value("format", list.to_send_value());
            s.remove_fields(["colorimetry", "chroma-site"]);
        }
        Some(match filter {
            Some(f) => f.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }
}

impl VideoFilterImpl for NirColorize {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "{incaps} -> {outcaps}");
        let mut state = lock(&self.state);
        // A new size (renegotiation in mid-stream): the calibration is prepared for it; the
        // colour restarts at the new size on its own.
        state.corrector = match &state.calibration {
            Some(c) => Some(
                c.prepare(in_info.width() as usize, in_info.height() as usize)
                    .map_err(|e| gst::loggable_error!(CAT, "calibration: {e}"))?,
            ),
            None => None,
        };
        state.reference_low = None;
        if (in_info.width(), in_info.height()) != (out_info.width(), out_info.height()) {
            return Err(gst::loggable_error!(
                CAT,
                "nircolorize keeps the frame size: {}x{} in, {}x{} out",
                in_info.width(),
                in_info.height(),
                out_info.width(),
                out_info.height()
            ));
        }
        Ok(())
    }

    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let fail = |what: String| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ["nircolorize: {what}"]);
            gst::FlowError::Error
        };
        let input = nircolor::capture::frame::read(inframe).map_err(|e| fail(e.to_string()))?;
        let rgb = {
            let mut state = lock(&self.state);
            self.colour(&mut state, input, Instant::now())
                .map_err(fail)?
        };
        formats::write(&rgb, outframe).map_err(fail)?;
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        Ok(gst::FlowSuccess::Ok)
    }
}
