//! Encode: colour frames into H.264 once per camera (appsrc -> I420 -> x264enc), then a tee to
//! an RTSP mount (gst-rtsp-server, one shared media for every viewer) and to a crash-safe
//! recorder (splitmuxsink segments, Matroska or fragmented MP4).

mod i420;
pub mod recorder;
mod stage;
pub mod webcam;

pub use stage::{EncodeSettings, EncodeStage, Retention};

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use gstreamer_video as gst_video;

use crate::images::planes::Rgb;
use crate::runtime::histogram::Histogram;

/// What the encoder side of one camera counts.
#[derive(Debug, Default)]
pub struct EncodeStats {
    pub frames: AtomicU64,
    /// "No signal" cards shown while no frame arrived.
    pub no_signal: AtomicU64,
    /// Capture to leaving the H.264 encoder, per frame.
    pub encoded_latency: Histogram,
    /// While set, every encoded latency is also kept (ms) in `encoded_samples`, for exact
    /// quantiles in `nircolor bench pipeline`.
    pub keep_samples: std::sync::atomic::AtomicBool,
    pub encoded_samples: std::sync::Mutex<Vec<f32>>,
    /// Capture to encoder hand-off, per frame.
    pub latency: Histogram,
    /// Hand-off to leaving the H.264 encoder, per frame: the encode stage's own time.
    pub encode_time: Histogram,
    /// The recording's state, once the encode stage has started a recording camera.
    pub recorder: std::sync::OnceLock<Arc<recorder::RecorderStatus>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot load the RTSP TLS certificate {certificate} with key {key}: {why}; give PEM files (e.g. `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 825 -subj /CN=HOST`)")]
    Tls {
        certificate: PathBuf,
        key: PathBuf,
        why: String,
    },
    #[error("GStreamer cannot start ({0})")]
    Init(String),
    #[error("camera '{camera}': cannot build the encoder `{pipeline}`: {why}")]
    Build {
        camera: String,
        pipeline: String,
        why: String,
    },
    #[error("camera '{camera}': cannot create the recording folder {folder}: {why}")]
    Folder {
        camera: String,
        folder: PathBuf,
        why: String,
    },
    #[error("camera '{camera}': frame is {got_w}x{got_h} but the encoder was set up for {want_w}x{want_h}")]
    FrameSize {
        camera: String,
        got_w: usize,
        got_h: usize,
        want_w: usize,
        want_h: usize,
    },
    #[error("camera '{camera}': {width}x{height} cannot be encoded: H.264 in 4:2:0 (I420) needs an even width and height; use {even_w}x{even_h}", even_w = width & !1, even_h = height & !1)]
    OddSize {
        camera: String,
        width: usize,
        height: usize,
    },
    #[error("camera '{camera}': the encoder stopped: {why}")]
    Stream { camera: String, why: String },
    #[error("RTSP server: cannot listen on {address}:{port}: {why}")]
    Listen {
        address: String,
        port: u16,
        why: String,
    },
    #[error("RTSP mount '{0}' must start with '/' and have no spaces, e.g. /front")]
    BadMount(String),
}

/// The recording container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// Matroska: readable up to the last cluster written before a crash.
    Matroska,
    /// MP4 written in fragments of one GOP, so a crash loses at most the fragment in progress.
    FragmentedMp4,
}

impl Container {
    pub fn extension(self) -> &'static str {
        match self {
            Container::Matroska => "mkv",
            Container::FragmentedMp4 => "mp4",
        }
    }
}

/// Where and how one camera records.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSpec {
    pub folder: PathBuf,
    pub segment: Duration,
    pub container: Container,
    /// Make the encoder wait for a slow disk instead of dropping (batch jobs).
    pub lossless: bool,
    /// On a full disk, delete the camera's oldest segment and go on (a retention limit is set).
    pub prune_when_full: bool,
}

/// One camera's encoder settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSettings {
    pub camera: String,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub record: Option<RecordSpec>,
    /// Also write the colour frames to a v4l2loopback webcam.
    pub webcam: Option<webcam::WebcamSpec>,
}

/// Whether `mount` can be served: a path like "/front", with no spaces.
pub fn valid_mount(mount: &str) -> bool {
    mount.starts_with('/') && mount.len() >= 2 && !mount.contains(char::is_whitespace)
}

/// The RTSP viewers' side of one camera: the appsrc of the shared media while one exists.
#[derive(Clone, Default)]
pub struct RtspFeed {
    appsrc: Arc<Mutex<Option<gst_app::AppSrc>>>,
    /// Set when a new media appears: the encoder then forces a keyframe so viewers start at once.
    wants_keyframe: Arc<std::sync::atomic::AtomicBool>,
}

/// The RTSP server: one GLib main loop thread serving every mount.
pub struct RtspServer {
    server: rtsp::RTSPServer,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    source: Option<glib::SourceId>,
    pub port: u16,
    security: RtspSecurity,
}

/// The role of clients that gave no credentials.
const ANONYMOUS: &str = "anonymous";

/// How RTSP logins are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethods {
    /// HTTP Basic: the password crosses the network (base64, not encrypted) unless TLS is on.
    Basic,
    /// HTTP Digest: only a hash of the password crosses the network.
    Digest,
    /// Both offered; clients pick (ffmpeg and GStreamer take Digest).
    #[default]
    BasicAndDigest,
}

impl AuthMethods {
    fn basic(self) -> bool {
        self != AuthMethods::Digest
    }
    fn digest(self) -> bool {
        self != AuthMethods::Basic
    }
}

/// TLS and login settings of the RTSP server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RtspSecurity {
    /// PEM certificate (chain) and private key: with them the server speaks RTSP over TLS
    /// (`rtsps://`) on its port.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub methods: AuthMethods,
}

impl RtspServer {
    /// Listens on `address:port` (port 0 picks a free port, reported in `port`), plain RTSP.
    pub fn start(address: &str, port: u16) -> Result<RtspServer, EncodeError> {
        RtspServer::start_with(address, port, &RtspSecurity::default())
    }

    /// [`RtspServer::start`] with TLS and the login methods of `security`.
    pub fn start_with(
        address: &str,
        port: u16,
        security: &RtspSecurity,
    ) -> Result<RtspServer, EncodeError> {
        gst::init().map_err(|e| EncodeError::Init(e.to_string()))?;
        let listen = |why: String| EncodeError::Listen {
            address: address.into(),
            port,
            why,
        };
        let server = rtsp::RTSPServer::new();
        // Authentication is always on, with an anonymous default token: mounts without
        // credentials admit the anonymous role, mounts with them only their own user.
        let auth = rtsp::RTSPAuth::new();
        let mut anonymous = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ANONYMOUS)
            .build();
        auth.set_default_token(Some(&mut anonymous));
        let mut methods = 0;
        if security.methods.basic() {
            methods |= rtsp::gst_rtsp::ffi::GST_RTSP_AUTH_BASIC;
        }
        if security.methods.digest() {
            methods |= rtsp::gst_rtsp::ffi::GST_RTSP_AUTH_DIGEST;
        }
        {
            use glib::translate::ToGlibPtr;
            // The C API takes the methods as a bit mask and the Rust binding as an enum of one
            // value, so offering Basic and Digest together goes through the C call.
            // SAFETY: `auth` is a live GstRTSPAuth for the whole call, and `methods` is an OR of
            // GstRTSPAuthMethod values, which is what the function takes.
            unsafe {
                rtsp::ffi::gst_rtsp_auth_set_supported_methods(auth.to_glib_none().0, methods);
            }
        }
        if let Some((cert, key)) = &security.tls {
            let certificate =
                rtsp::gio::TlsCertificate::from_files(cert, key).map_err(|e| EncodeError::Tls {
                    certificate: cert.clone(),
                    key: key.clone(),
                    why: e.to_string(),
                })?;
            auth.set_tls_certificate(Some(&certificate));
        }
        server.set_auth(Some(&auth));
        server.set_address(address);
        server.set_service(&port.to_string());
        let context = glib::MainContext::new();
        let source = server
            .attach(Some(&context))
            .map_err(|e| listen(e.to_string()))?;
        let bound = server.bound_port();
        if bound <= 0 {
            return Err(listen("no port was bound".into()));
        }
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let (main_loop, context) = (main_loop.clone(), context.clone());
            std::thread::Builder::new()
                .name("rtsp-server".into())
                .spawn(move || {
                    let _guard = context.acquire();
                    main_loop.run();
                })
                .map_err(|e| listen(e.to_string()))?
        };
        Ok(RtspServer {
            server,
            context,
            main_loop,
            thread: Some(thread),
            source: Some(source),
            port: bound as u16,
            security: security.clone(),
        })
    }

    /// Serves `mount` (e.g. "/front") to anyone from the returned feed, which an [`Encoder`]
    /// fills.
    pub fn mount(&self, mount: &str) -> Result<RtspFeed, EncodeError> {
        self.mount_with(mount, None)
    }

    /// Like [`RtspServer::mount`]; with `credentials` (user, password) only clients that give
    /// them (HTTP Basic, e.g. rtsp://user:password@host/mount) may play it.
    pub fn mount_with(
        &self,
        mount: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<RtspFeed, EncodeError> {
        if !valid_mount(mount) {
            return Err(EncodeError::BadMount(mount.into()));
        }
        let feed = RtspFeed::default();
        let factory = rtsp::RTSPMediaFactory::new();
        // The stream arrives encoded; the media only packetises it. config-interval=1 repeats
        // SPS/PPS every second (-1 corrupts keyframes with x264's sliced zerolatency output).
        factory.set_launch(
            "( appsrc name=src is-live=true format=time \
             caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        );
        factory.set_shared(true);
        let role = match credentials {
            None => ANONYMOUS.to_string(),
            Some((user, password)) => {
                let basic = rtsp::RTSPAuth::make_basic(user, password);
                // One role per credential pair, so mounts sharing a login share a role.
                // Roles are GstStructure names (letters, digits, "-_.:/"): hex, not base64.
                let hex: String = basic.bytes().map(|b| format!("{b:02x}")).collect();
                let role = format!("user-{hex}");
                let token = rtsp::RTSPToken::builder()
                    .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, role.as_str())
                    .build();
                if let Some(auth) = self.server.auth() {
                    if self.security.methods.basic() {
                        auth.add_basic(basic.as_str(), &token);
                    }
                    if self.security.methods.digest() {
                        auth.add_digest(user, password, &token);
                    }
                }
                role
            }
        };
        factory.add_role_from_structure(
            &gst::Structure::builder(role.as_str())
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
        if role != ANONYMOUS {
            // Anonymous clients may see the mount but not play it: gst-rtsp-server answers a
            // denied construct with 401 and a challenge, so clients retry with their
            // login (a denied access would be a bare 404 that clients do not retry).
            factory.add_role_from_structure(
                &gst::Structure::builder(ANONYMOUS)
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, false)
                    .build(),
            );
        }
        {
            let feed = feed.clone();
            factory.connect_media_configure(move |_, media| {
                let bin = media.element();
                let src = bin
                    .downcast_ref::<gst::Bin>()
                    .and_then(|b| b.by_name_recurse_up("src"))
                    .and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
                if let Some(src) = src {
                    *feed.appsrc.lock().expect("feed lock") = Some(src);
                    feed.wants_keyframe
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let feed = feed.clone();
                media.connect_unprepared(move |_| {
                    *feed.appsrc.lock().expect("feed lock") = None;
                });
            });
        }
        let mounts = self
            .server
            .mount_points()
            .ok_or_else(|| EncodeError::BadMount(mount.into()))?;
        mounts.add_factory(mount, factory);
        Ok(feed)
    }

    pub fn url(&self, mount: &str) -> String {
        format!(
            "{}://{}:{}{}",
            if self.security.tls.is_some() {
                "rtsps"
            } else {
                "rtsp"
            },
            self.server
                .address()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            self.port,
            mount
        )
    }
}

/// The RTSP media's running time now, the timestamp for a buffer entering it; None while the
/// media is not playing. Stamped any earlier (by us or by appsrc's do-timestamp) a buffer can
/// get the absolute clock as its time, because the source has the clock before its base time:
/// the media's sink then waits hours for that buffer, and its viewers get no video at all.
fn media_running_time(src: &gst_app::AppSrc) -> Option<gst::ClockTime> {
    if src.current_state() != gst::State::Playing {
        return None;
    }
    src.current_running_time()
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        // The source lives in the server's own context; `SourceId::remove` would look in the
        // default one.
        if let Some(source) = self
            .source
            .take()
            .and_then(|id| self.context.find_source_by_id(&id))
        {
            source.destroy();
        }
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One camera's running encoder.
pub struct Encoder {
    spec: EncoderSettings,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    encoder: gst::Element,
    feed: Option<RtspFeed>,
    frames: u64,
    last_pts: Option<Duration>,
    /// Frames handed to the encoder and not yet out of it: (pts in ns, capture time).
    pending: Arc<Mutex<std::collections::VecDeque<(u64, Instant, Instant)>>>,
    /// The I420 buffer as the caps promise it: GStreamer pads every plane's rows to a multiple
    /// of 4 bytes, so a width such as 642 (chroma rows of 321) needs padding.
    layout: i420::Layout,
    matrix: i420::Matrix,
    webcam: Option<webcam::Webcam>,
    recorder: Option<Arc<Mutex<recorder::Recorder>>>,
    /// The recorder's keyframe request, read without taking its lock.
    recorder_keyframe: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// The offset x264enc adds to timestamps: 1000 hours.
const X264_PTS_OFFSET_NS: u64 = 1000 * 3600 * 1_000_000_000;

/// Told how long each frame took from capture to leaving the H.264 encoder.
/// Called for each frame leaving the H.264 encoder with (time since its capture, time since it
/// was pushed to the encoder).
pub type EncodedHook = Arc<dyn Fn(Duration, Duration) + Send + Sync>;

/// Whether `name` is one of `camera`'s segment files, exactly as [`segment_name`] makes them:
/// `<camera>-<digits>-<digits>.mkv|mp4`. A prefix test would also take the segments of a camera
/// `front-2` for camera `front` when both record into one folder.
fn is_segment_of(name: &str, camera: &str) -> bool {
    let Some(rest) = name.strip_prefix(camera).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let Some((stem, ext)) = rest.rsplit_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    matches!(ext, "mkv" | "mp4")
        && stem
            .split_once('-')
            .is_some_and(|(started, index)| digits(started) && digits(index))
}

/// Segment files are named `<camera>-<unix seconds at start>-<index>.<ext>`, so restarts never
/// overwrite earlier recordings and names sort by time.
fn segment_name(folder: &Path, camera: &str, started: u64, index: u32, ext: &str) -> String {
    folder
        .join(format!("{camera}-{started}-{index:05}.{ext}"))
        .to_string_lossy()
        .into_owned()
}

impl Encoder {
    /// Builds and starts the encoder; `feed` (from [`RtspServer::mount`]) receives the stream.
    pub fn start(spec: EncoderSettings, feed: Option<RtspFeed>) -> Result<Encoder, EncodeError> {
        gst::init().map_err(|e| EncodeError::Init(e.to_string()))?;
        let (w, h, fps) = (spec.width, spec.height, spec.fps.max(1));
        if w % 2 != 0 || h % 2 != 0 || w == 0 || h == 0 {
            return Err(EncodeError::OddSize {
                camera: spec.camera.clone(),
                width: w,
                height: h,
            });
        }
        let layout = i420::Layout::new(w, h).map_err(EncodeError::Init)?;
        let matrix = i420::matrix_for(h);
        // A crash loses what splitmuxsink holds back (it queues a whole GOP to decide where to
        // split): half-second GOPs keep that within a second for Matroska, which writes every
        // frame it gets. A fragmented MP4 also loses its unfinished fragment, one more GOP, so
        // its GOPs are a third of a second. Short GOPs also let RTSP viewers join sooner.
        let key_interval = match spec.record.as_ref().map(|r| r.container) {
            Some(Container::FragmentedMp4) => fps.div_ceil(3),
            _ => fps.div_ceil(2),
        };
        let rtsp_branch = if feed.is_some() {
            " t. ! queue leaky=downstream max-size-buffers=30 ! appsink name=rtsp sync=false max-buffers=30 drop=true"
        } else {
            ""
        };
        // The recorder is a pipeline of its own (see `recorder`), fed from this appsink.
        let record_branch = if spec.record.is_some() {
            " t. ! queue ! appsink name=rec sync=false"
        } else {
            ""
        };
        // trellis=false: x264enc turns trellis quantisation on by default, over the ultrafast
        // preset; measured at 4x 640x480 it was 7% of the whole daemon's CPU for a small bitrate
        // saving.
        let caps = format!(
            "video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,colorimetry={}",
            matrix.colorimetry
        );
        let description = format!(
            "appsrc name=src is-live=true format=time caps={caps} \
             ! x264enc name=enc tune=zerolatency speed-preset=ultrafast trellis=false key-int-max={key_interval} bitrate={} \
             ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! tee name=t allow-not-linked=true\
             {rtsp_branch}{record_branch}",
            spec.bitrate_kbps.max(64)
        );
        let build = |why: String| EncodeError::Build {
            camera: spec.camera.clone(),
            pipeline: description.clone(),
            why,
        };
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| build(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| build("not a pipeline".into()))?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| build("no appsrc".into()))?;
        let encoder = pipeline
            .by_name("enc")
            .ok_or_else(|| build("no encoder".into()))?;
        let pending: Arc<Mutex<std::collections::VecDeque<(u64, Instant, Instant)>>> =
            Arc::default();
        let recorder = match &spec.record {
            Some(record) => {
                // A folder that cannot even be made is a mistake in the configuration, reported
                // at start; a disk that fills or a folder that goes later only pauses recording.
                std::fs::create_dir_all(&record.folder).map_err(|e| EncodeError::Folder {
                    camera: spec.camera.clone(),
                    folder: record.folder.clone(),
                    why: e.to_string(),
                })?;
                let recorder = Arc::new(Mutex::new(recorder::Recorder::new(
                    &spec.camera,
                    record.clone(),
                    spec.bitrate_kbps,
                )));
                let sink = pipeline
                    .by_name("rec")
                    .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                    .ok_or_else(|| build("no recording appsink".into()))?;
                let target = recorder.clone();
                sink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            if let (Some(buffer), Ok(mut r)) = (sample.buffer(), target.lock()) {
                                r.push(buffer);
                            }
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                );
                Some(recorder)
            }
            None => None,
        };
        if let Some(feed) = &feed {
            let sink = pipeline
                .by_name("rtsp")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or_else(|| build("no RTSP appsink".into()))?;
            let feed = feed.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let target = feed.appsrc.lock().ok().and_then(|g| g.clone());
                        if let (Some(src), Some(buffer)) = (target, sample.buffer()) {
                            match media_running_time(&src) {
                                Some(now) => {
                                    let mut copy = buffer.copy();
                                    {
                                        let b = copy.make_mut();
                                        b.set_pts(now);
                                        b.set_dts(gst::ClockTime::NONE);
                                    }
                                    let _ = src.push_buffer(copy);
                                }
                                // Dropped while the media starts; its viewers must then begin
                                // at a keyframe.
                                None => feed
                                    .wants_keyframe
                                    .store(true, std::sync::atomic::Ordering::SeqCst),
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| build(e.to_string()))?;
        let webcam = spec
            .webcam
            .as_ref()
            .map(|w| webcam::Webcam::new(&spec.camera, w, &caps));
        Ok(Encoder {
            spec,
            pipeline,
            appsrc,
            encoder,
            feed,
            frames: 0,
            last_pts: None,
            pending,
            layout,
            matrix,
            webcam,
            recorder_keyframe: recorder
                .as_ref()
                .and_then(|r| r.lock().ok().map(|r| r.wants_keyframe.clone())),
            recorder,
        })
    }

    /// The recording's live state, when this camera records.
    pub fn recorder_status(&self) -> Option<Arc<recorder::RecorderStatus>> {
        let r = self.recorder.as_ref()?.lock().ok()?;
        Some(r.status())
    }

    /// Calls `hook` with each frame's capture-to-encoded latency (measured where the H.264
    /// leaves x264), for the metrics and `nircolor bench pipeline`.
    pub fn on_encoded(&self, hook: EncodedHook) {
        let Some(pad) = self.encoder.static_pad("src") else {
            return;
        };
        let pending = self.pending.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            // x264enc shifts every timestamp by 1000 hours (room for negative DTS); undo it.
            let pts = info
                .buffer()
                .and_then(|b| b.pts())
                .map(|t| t.nseconds())
                .map(|p| p.checked_sub(X264_PTS_OFFSET_NS).unwrap_or(p));
            if let (Some(pts), Ok(mut queue)) = (pts, pending.lock()) {
                // Entries before this pts were merged or dropped by the encoder.
                while let Some(&(p, captured, pushed)) = queue.front() {
                    if p > pts {
                        break;
                    }
                    queue.pop_front();
                    if p == pts {
                        hook(captured.elapsed(), pushed.elapsed());
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    pub fn width(&self) -> usize {
        self.spec.width
    }

    pub fn height(&self) -> usize {
        self.spec.height
    }

    /// Encodes one frame shown at `pts` (time since the camera started).
    pub fn push(&mut self, rgb: &Rgb, pts: Duration) -> Result<(), EncodeError> {
        self.push_captured(rgb, pts, Instant::now())
    }

    /// [`Encoder::push`] for a frame captured at `captured` (for the encoded-latency hook).
    pub fn push_captured(
        &mut self,
        rgb: &Rgb,
        pts: Duration,
        captured: Instant,
    ) -> Result<(), EncodeError> {
        let spec = &self.spec;
        if (rgb.width, rgb.height) != (spec.width, spec.height) {
            return Err(EncodeError::FrameSize {
                camera: spec.camera.clone(),
                got_w: rgb.width,
                got_h: rgb.height,
                want_w: spec.width,
                want_h: spec.height,
            });
        }
        self.check_bus()?;
        // A viewer joining or a recording (re)starting wants a keyframe with its headers now.
        let wanted = [
            self.feed.as_ref().map(|f| &f.wants_keyframe),
            self.recorder_keyframe.as_ref(),
        ]
        .into_iter()
        .flatten()
        // Every flag is cleared (no short-circuit): one keyframe answers them all.
        .filter(|w| w.swap(false, std::sync::atomic::Ordering::SeqCst))
        .count()
            > 0;
        if wanted {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            // Sent to the encoder's own src pad, as if from downstream.
            if let Some(pad) = self.encoder.static_pad("src") {
                pad.send_event(event);
            }
        }
        // Timestamps must rise: a "no signal" card stamped now may precede a late camera frame.
        let pts = match self.last_pts {
            Some(last) if pts <= last => last + Duration::from_micros(1),
            _ => pts,
        };
        self.last_pts = Some(pts);
        if let Ok(mut queue) = self.pending.lock() {
            // Bounded: without a hook nothing drains it but this.
            if queue.len() >= 256 {
                queue.pop_front();
            }
            queue.push_back((pts.as_nanos() as u64, captured, Instant::now()));
        }
        let mut buffer =
            gst::Buffer::from_mut_slice(i420::from_rgb(rgb, &self.layout, self.matrix));
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
            b.set_duration(gst::ClockTime::from_nseconds(
                1_000_000_000 / u64::from(spec.fps.max(1)),
            ));
        }
        if let Some(webcam) = &mut self.webcam {
            // The same buffer, shared: nothing downstream writes into it.
            webcam.push(buffer.clone());
        }
        self.appsrc
            .push_buffer(buffer)
            .map_err(|e| EncodeError::Stream {
                camera: spec.camera.clone(),
                why: e.to_string(),
            })?;
        self.frames += 1;
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn check_bus(&self) -> Result<(), EncodeError> {
        let bus = self.pipeline.bus().expect("pipelines have a bus");
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(EncodeError::Stream {
                    camera: self.spec.camera.clone(),
                    why: e.error().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Ends the stream so the last recording segment is complete, waiting up to `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Result<(), EncodeError> {
        if let Some(webcam) = self.webcam.take() {
            webcam.finish(timeout);
        }
        let _ = self.appsrc.end_of_stream();
        let recorded = self.finish_pipeline(timeout);
        // The encoder's end of stream has pushed its last frame into the recorder: end that too.
        let recording = match self.recorder.take() {
            Some(r) => r.lock().map_or(Ok(()), |mut r| r.finish(timeout)),
            None => Ok(()),
        };
        recorded?;
        recording.map_err(|why| EncodeError::Stream {
            camera: self.spec.camera.clone(),
            why,
        })
    }

    fn finish_pipeline(&self, timeout: Duration) -> Result<(), EncodeError> {
        let bus = self.pipeline.bus().expect("pipelines have a bus");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let _ = self.pipeline.set_state(gst::State::Null);
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => Err(EncodeError::Stream {
                camera: self.spec.camera.clone(),
                why: e.error().to_string(),
            }),
            _ => Err(EncodeError::Stream {
                camera: self.spec.camera.clone(),
                why: format!("no end of stream within {timeout:?}"),
            }),
        }
    }
}

impl Drop for Encoder {
    /// An encoder dropped without [`Encoder::finish`] (a camera removed, a stage that failed)
    /// still stops its pipeline: GStreamer requires NULL before the last reference goes.
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Deletes `camera`'s oldest recording segments in `folder` until none is older than `max_age`
/// and they total at most `max_total_bytes`. The newest segment (the one being written) is
/// never deleted. Returns what was deleted.
pub fn prune_recordings(
    folder: &Path,
    camera: &str,
    max_age: Option<Duration>,
    max_total_bytes: Option<u64>,
) -> std::io::Result<Vec<PathBuf>> {
    let mut segments: Vec<(PathBuf, SystemTime, u64)> = std::fs::read_dir(folder)?
        .flatten()
        .filter(|e| is_segment_of(&e.file_name().to_string_lossy(), camera))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.modified().ok()?, meta.len()))
        })
        .collect();
    // Names sort by start time and index; the last one is being written: it counts toward the
    // total but is never deleted.
    segments.sort_by(|a, b| a.0.cmp(&b.0));
    let mut total: u64 = segments.iter().map(|s| s.2).sum();
    segments.pop();
    let now = SystemTime::now();
    let mut deleted = Vec::new();
    for (path, modified, size) in segments {
        let too_old =
            max_age.is_some_and(|age| now.duration_since(modified).unwrap_or_default() > age);
        let too_big = max_total_bytes.is_some_and(|max| total > max);
        if !(too_old || too_big) {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= size;
        deleted.push(path);
    }
    Ok(deleted)
}

/// The frame an RTSP mount shows while its camera is away: dark grey with "NO SIGNAL" and the
/// camera's id, so viewers stay connected and see why the picture stopped.
pub fn no_signal_frame(camera: &str, width: usize, height: usize) -> Rgb {
    let mut img =
        image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([32, 32, 32]));
    let title = "NO SIGNAL";
    let px = ((width as u32) / (crate::images::font::width(title, 1) * 2).max(1)).clamp(1, 12);
    let x = (width as u32).saturating_sub(crate::images::font::width(title, px)) / 2;
    let y = (height as u32 / 2).saturating_sub(5 * px);
    crate::images::font::text_scaled(&mut img, x, y, px, title, image::Rgb([235, 235, 235]));
    let small = (px / 3).max(1);
    let label = format!("camera {camera}: reconnecting");
    let lx = (width as u32).saturating_sub(crate::images::font::width(&label, small)) / 2;
    crate::images::font::text_scaled(
        &mut img,
        lx,
        y + 7 * px,
        small,
        &label,
        image::Rgb([170, 170, 170]),
    );
    Rgb::from_rgb8(&img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_oldest_first_and_spares_the_live_segment() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            std::fs::write(
                dir.path().join(format!("cam-100-{i:05}.mkv")),
                vec![0u8; 1000],
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("other-100-00000.mkv"), vec![0u8; 5000]).unwrap();
        let deleted = prune_recordings(dir.path(), "cam", None, Some(2500)).unwrap();
        let names: Vec<String> = deleted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["cam-100-00000.mkv", "cam-100-00001.mkv"]);
        assert!(
            dir.path().join("other-100-00000.mkv").exists(),
            "other cameras' files are left alone"
        );
        // With everything "too old", all but the live segment go.
        let deleted = prune_recordings(dir.path(), "cam", Some(Duration::ZERO), None).unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(dir.path().join("cam-100-00003.mkv").exists());
        assert_eq!(
            segment_name(Path::new("/r"), "cam", 7, 3, "mp4"),
            "/r/cam-7-00003.mp4"
        );
    }

    #[test]
    fn pruning_one_camera_leaves_a_camera_whose_id_extends_it_alone() {
        // `front` and `front-2` recording into one folder: before, pruning `front` matched the
        // prefix "front-" and deleted `front-2`'s segments too.
        let dir = tempfile::tempdir().unwrap();
        for cam in ["front", "front-2"] {
            for i in 0..3 {
                std::fs::write(dir.path().join(format!("{cam}-100-{i:05}.mkv")), [0u8; 10])
                    .unwrap();
            }
        }
        let deleted = prune_recordings(dir.path(), "front", Some(Duration::ZERO), None).unwrap();
        assert_eq!(deleted.len(), 2, "{deleted:?}");
        assert!(deleted.iter().all(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("front-100-")));
        for i in 0..3 {
            assert!(dir.path().join(format!("front-2-100-{i:05}.mkv")).exists());
        }
        assert!(is_segment_of("front-1700000000-00012.mp4", "front"));
        assert!(!is_segment_of("front-2-1700000000-00012.mp4", "front"));
        assert!(is_segment_of("front-2-1700000000-00012.mp4", "front-2"));
        assert!(!is_segment_of(
            "front-1700000000-00012.mkv.partial",
            "front"
        ));
        assert!(!is_segment_of("front-notes.mkv", "front"));
        assert!(!is_segment_of("front-1-2-3.mkv", "front"));
    }
}
