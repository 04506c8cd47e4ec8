//! Video evaluation (`nircolor eval-video`): a paired NIR / colour clip read frame by frame, the
//! colour made as the daemon makes it (the network on every frame, or refreshing a camera's
//! coefficients at a rate), per-frame PSNR and Delta E against the truth, and flicker: the colour
//! distribution consistency of video colorization work (TCVC) and the chroma change where the
//! truth is static.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use image::RgbImage;
use serde::Serialize;

use crate::detail::lowres::{inference_size, low_resolution, shrink_to};
use crate::detail::GuidedFilter;
use crate::images::planes::{Gray, Rgb};
use crate::infer::amortised::CameraColour;
use crate::infer::service::Refreshed;
use crate::models::colorizer::Colorizer;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot open the clip {path}: {why}")]
    Open { path: PathBuf, why: String },
    #[error("cannot decode the clip {path}: {why}")]
    Decode { path: PathBuf, why: String },
    #[error("the clips differ: {nir} is {nir_w}x{nir_h} but {truth} is {truth_w}x{truth_h}; make both with the same geometry (scripts/make-video-pairs)")]
    Size {
        nir: PathBuf,
        truth: PathBuf,
        nir_w: usize,
        nir_h: usize,
        truth_w: usize,
        truth_h: usize,
    },
    #[error("{0} holds no frame")]
    Empty(PathBuf),
    #[error("the reference is {ref_w}x{ref_h} but the clip's frames are {w}x{h}; a reference must be taken from the clip's viewpoint at its size")]
    ReferenceSize {
        ref_w: usize,
        ref_h: usize,
        w: usize,
        h: usize,
    },
}

/// How long decoding may go without producing a frame before the clip counts as broken: far
/// longer than any frame of a file takes, short enough that a bad file fails a run promptly.
const STALL: Duration = Duration::from_secs(20);

/// Frames of a video file, decoded by GStreamer into GRAY8 or RGB one at a time.
pub struct ClipReader {
    path: PathBuf,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

impl ClipReader {
    /// Opens `path` for reading as `format` ("GRAY8" or "RGB").
    fn open(path: &Path, format: &str) -> Result<ClipReader, VideoError> {
        let open = |why: String| VideoError::Open {
            path: path.to_path_buf(),
            why,
        };
        gst::init().map_err(|e| open(e.to_string()))?;
        if !path.is_file() {
            return Err(open("no such file".into()));
        }
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", path.to_string_lossy().as_ref())
            .build()
            .map_err(|e| open(e.to_string()))?;
        let decode = gst::ElementFactory::make("decodebin")
            .build()
            .map_err(|e| open(e.to_string()))?;
        let convert = gst::ElementFactory::make("videoconvert")
            .build()
            .map_err(|e| open(e.to_string()))?;
        // Every frame, in order, however long the consumer takes: a file is not a camera.
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", format)
                    .build(),
            )
            .sync(false)
            .max_buffers(4)
            .drop(false)
            .build();
        pipeline
            .add_many([&src, &decode, &convert, sink.upcast_ref()])
            .map_err(|e| open(e.to_string()))?;
        src.link(&decode).map_err(|e| open(e.to_string()))?;
        convert.link(&sink).map_err(|e| open(e.to_string()))?;
        let convert_weak = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            if let Some(convert) = convert_weak.upgrade() {
                if let Some(sink_pad) = convert.static_pad("sink") {
                    if !sink_pad.is_linked() {
                        let _ = pad.link(&sink_pad);
                    }
                }
            }
        });
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| open(format!("{e}; is it a video GStreamer can decode?")))?;
        Ok(ClipReader {
            path: path.to_path_buf(),
            pipeline,
            sink,
        })
    }

    /// The next frame's sample; `None` at the end of the clip. A file that stops producing
    /// frames without ending (a decoder that failed) is an error after [`STALL`].
    fn next_sample(&mut self) -> Result<Option<gst::Sample>, VideoError> {
        let bus = self.pipeline.bus().expect("pipelines have a bus");
        let waited = Instant::now();
        loop {
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
                if let gst::MessageView::Error(e) = msg.view() {
                    return Err(self.decode_err(e.error()));
                }
            }
            if let Some(s) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                return Ok(Some(s));
            }
            if self.sink.is_eos() {
                return Ok(None);
            }
            if waited.elapsed() > STALL {
                return Err(self.decode_err(format!(
                    "no frame came out in {} s; is it a video GStreamer can decode?",
                    STALL.as_secs()
                )));
            }
        }
    }

    fn decode_err(&self, why: impl std::fmt::Display) -> VideoError {
        VideoError::Decode {
            path: self.path.clone(),
            why: why.to_string(),
        }
    }

    /// The next frame as NIR in [0, 1].
    pub fn next_gray(&mut self) -> Result<Option<Gray>, VideoError> {
        let Some(sample) = self.next_sample()? else {
            return Ok(None);
        };
        crate::capture::frame::read_sample(&sample)
            .map(|planes| Some(planes.luma))
            .map_err(|e| self.decode_err(e))
    }

    /// The next frame as 8-bit RGB.
    pub fn next_rgb(&mut self) -> Result<Option<RgbImage>, VideoError> {
        let Some(sample) = self.next_sample()? else {
            return Ok(None);
        };
        let caps = sample.caps().ok_or_else(|| self.decode_err("no caps"))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| self.decode_err(e))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| self.decode_err("no buffer"))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| self.decode_err(e))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).map_err(|e| self.decode_err(e))?;
        let mut raw = Vec::with_capacity(3 * w * h);
        for row in data.chunks(stride).take(h) {
            raw.extend_from_slice(&row[..3 * w]);
        }
        RgbImage::from_raw(w as u32, h as u32, raw)
            .map(Some)
            .ok_or_else(|| self.decode_err("short frame"))
    }
}

impl Drop for ClipReader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// How the colour is refreshed in an evaluation, in video time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum VideoRefresh {
    /// The network on every frame, no blending: the daemon's `every-frame`.
    EveryFrame,
    /// The network back to back at this many runs per second of video: each run starts on the
    /// newest frame and its colour arrives one run later, as with the daemon's model thread.
    PerSecond(f64),
    /// `PerSecond(rate)` plus the quality model (tiered refresh), run every `quality_every`
    /// seconds of video on the newest frame, its colour arriving one run later; it stays in the
    /// blocks that have not moved since.
    Tiered { rate: f64, quality_every: f64 },
}

impl VideoRefresh {
    pub fn label(&self) -> String {
        match self {
            VideoRefresh::EveryFrame => "every frame".into(),
            VideoRefresh::PerSecond(r) => format!("{r:.1} refreshes/s"),
            VideoRefresh::Tiered {
                rate,
                quality_every,
            } => format!("{rate:.1} refreshes/s + quality every {quality_every:.1} s"),
        }
    }
}

/// The models a clip is coloured with: the real-time one, and the quality one of a tiered
/// refresh (needed by [`VideoRefresh::Tiered`]).
#[derive(Clone, Copy)]
pub struct VideoModels<'a> {
    pub realtime: &'a dyn Colorizer,
    pub quality: Option<&'a dyn Colorizer>,
}

/// The daemon settings an evaluation reproduces.
#[derive(Clone, Copy, Debug)]
pub struct VideoSettings {
    pub fps: f64,
    pub scale: f64,
    pub max_pixels: usize,
    pub detail: GuidedFilter,
    pub blend: Duration,
}

/// The clip's day reference (`eval-video --reference`): colour at the clip's frame size.
pub type ClipReference<'a> = Option<&'a Rgb>;

/// One frame's figures.
#[derive(Clone, Debug, Serialize)]
pub struct FrameScore {
    pub frame: usize,
    pub psnr: f64,
    pub delta_e2000: f64,
    /// Age of the colour shown, in frames (0: computed from this frame).
    pub colour_age: usize,
}

/// Flicker of a clip: lower is steadier.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Flicker {
    /// Colour distribution consistency: the Jensen-Shannon divergence (base 2, so in [0, 1]) of
    /// the per-channel 256-bin histograms of frames 1, 2 and 4 apart, averaged over channels,
    /// frame pairs and the three distances.
    pub cdc: f64,
    /// Mean |change| of Cb plus Cr (BT.601, 8-bit levels) from one frame to the next over the
    /// pixels where the truth is static (no channel changes by more than one level).
    pub static_chroma: f64,
    /// Share of pixel pairs the truth holds static.
    pub static_share: f64,
}

/// One refresh setting's result on a clip.
#[derive(Clone, Debug, Serialize)]
pub struct VideoRun {
    pub refresh: VideoRefresh,
    pub label: String,
    /// Network runs made.
    pub refreshes: usize,
    /// Of those, how many found the day reference out of line with the NIR (the camera moved)
    /// and coloured with the network alone, as the daemon does.
    pub reference_refused: usize,
    /// Frames before the first colour arrived (gray, as a camera shows them): left out of
    /// the means.
    pub gray_frames: usize,
    pub mean_psnr: f64,
    pub mean_delta_e2000: f64,
    pub mean_colour_age_ms: f64,
    pub flicker: Flicker,
    pub frames: Vec<FrameScore>,
}

/// Runs the models over the paired clips under each refresh setting.
pub fn evaluate(
    models: VideoModels,
    nir: &Path,
    truth: &Path,
    refreshes: &[VideoRefresh],
    settings: VideoSettings,
    reference: ClipReference,
    mut tick: impl FnMut(),
) -> Result<(Vec<VideoRun>, Flicker), VideoError> {
    let (nirs, truths) = read_pair(nir, truth)?;
    if let (Some(r), Some(first)) = (reference, nirs.first()) {
        if (r.width, r.height) != (first.width, first.height) {
            return Err(VideoError::ReferenceSize {
                ref_w: r.width,
                ref_h: r.height,
                w: first.width,
                h: first.height,
            });
        }
    }
    let all: Vec<&RgbImage> = truths.iter().collect();
    let truth_flicker = flicker(&all, &all);
    let runs = refreshes
        .iter()
        .map(|&refresh| {
            let (outputs, runs, refused) =
                colour_clip(models, &nirs, refresh, settings, reference, &mut tick);
            let mut run = score(refresh, runs, &outputs, &truths, settings.fps);
            run.reference_refused = refused;
            run
        })
        .collect();
    Ok((runs, truth_flicker))
}

/// Both clips whole, checked to be the same size (the shorter one sets the length).
fn read_pair(nir: &Path, truth: &Path) -> Result<(Vec<Gray>, Vec<RgbImage>), VideoError> {
    let (mut n, mut t) = (
        ClipReader::open(nir, "GRAY8")?,
        ClipReader::open(truth, "RGB")?,
    );
    let (mut nirs, mut truths) = (Vec::new(), Vec::new());
    while let (Some(a), Some(b)) = (n.next_gray()?, t.next_rgb()?) {
        if (a.width, a.height) != (b.width() as usize, b.height() as usize) {
            return Err(VideoError::Size {
                nir: nir.to_path_buf(),
                truth: truth.to_path_buf(),
                nir_w: a.width,
                nir_h: a.height,
                truth_w: b.width() as usize,
                truth_h: b.height() as usize,
            });
        }
        nirs.push(a);
        truths.push(b);
    }
    if nirs.is_empty() {
        return Err(VideoError::Empty(nir.to_path_buf()));
    }
    Ok((nirs, truths))
}

/// The colour the daemon would show for each frame, with the age of its colour in frames
/// (`None` while still gray), how many times the network ran, and how many of those runs
/// found the reference out of line.
fn colour_clip(
    models: VideoModels,
    nirs: &[Gray],
    refresh: VideoRefresh,
    s: VideoSettings,
    reference: ClipReference,
    tick: &mut impl FnMut(),
) -> (Vec<(RgbImage, Option<usize>)>, usize, usize) {
    let mut refused = 0;
    // The reference at the inference size, made once per size (as the daemon does).
    let mut reference_low: Option<Rgb> = None;
    let t0 = Instant::now();
    let at = |i: usize| t0 + Duration::from_secs_f64(i as f64 / s.fps);
    let mut camera = CameraColour::default();
    // (frame the run started on, frame its colour arrives, the colour)
    let mut pending: Option<(usize, f64, Refreshed)> = None;
    let mut next_start = 0.0f64;
    // The quality model's run in flight: (frame its colour arrives, the colour).
    let mut quality_pending: Option<(f64, Refreshed)> = None;
    let mut next_quality = 0.0f64;
    let mut shown_from: Option<usize> = None;
    let mut runs = 0;
    let mut out = Vec::with_capacity(nirs.len());
    for (i, nir) in nirs.iter().enumerate() {
        let (lw, lh) = inference_size(nir.width, nir.height, s.scale, s.max_pixels);
        let low = shrink_to(nir, lw, lh);
        let filter = low_resolution(s.detail, lw as f32 / nir.width as f32);
        if let Some(r) = reference {
            if reference_low.as_ref().map(|l| (l.width, l.height)) != Some((lw, lh)) {
                reference_low = Some(crate::reference::shrunk(r, lw, lh));
            }
        }
        let fit = |model: &dyn Colorizer, low: Gray| {
            let colour = model.colorize(&low);
            Refreshed::fit_with(filter, low, &colour, reference_low.as_ref(), at(i))
        };
        let (rate, quality_every) = match refresh {
            VideoRefresh::EveryFrame => (None, None),
            VideoRefresh::PerSecond(r) => (Some(r), None),
            VideoRefresh::Tiered {
                rate,
                quality_every,
            } => (Some(rate), Some(quality_every)),
        };
        if let (Some(every), Some(quality)) = (quality_every, models.quality) {
            if quality_pending
                .as_ref()
                .is_some_and(|(ready, _)| i as f64 >= *ready)
            {
                let (_, q) = quality_pending.take().expect("checked just above");
                camera.accept_quality(q);
            }
            if quality_pending.is_none() && i as f64 >= next_quality {
                let period = (every * s.fps).max(1.0);
                quality_pending = Some((i as f64 + period, fit(quality, low.clone())));
                next_quality = i as f64 + period;
            }
        }
        let mut run = |low: Gray| {
            runs += 1;
            let r = fit(models.realtime, low);
            refused += usize::from(r.reference_moved);
            r
        };
        let blend = match rate {
            None => {
                camera.accept(run(low));
                shown_from = Some(i);
                Duration::ZERO
            }
            Some(rate) => {
                if let Some((start, ready, _)) = &pending {
                    if i as f64 >= *ready {
                        let start = *start;
                        let (_, _, r) = pending.take().expect("checked just above");
                        camera.accept(r);
                        shown_from = Some(start);
                    }
                }
                if pending.is_none() && i as f64 >= next_start {
                    let period = s.fps / rate;
                    pending = Some((i, i as f64 + period.max(1.0), run(low)));
                    next_start = i as f64 + period;
                }
                s.blend
            }
        };
        camera.step(at(i), blend);
        out.push((
            camera.colour(nir).to_rgb8(),
            shown_from.map(|from| i - from),
        ));
        tick();
    }
    (out, runs, refused)
}

fn score(
    refresh: VideoRefresh,
    runs: usize,
    outputs: &[(RgbImage, Option<usize>)],
    truths: &[RgbImage],
    fps: f64,
) -> VideoRun {
    let frames: Vec<FrameScore> = outputs
        .iter()
        .zip(truths)
        .enumerate()
        .filter_map(|(i, ((out, age), truth))| {
            let age = (*age)?;
            let m = crate::offline::metrics::compute(out, truth, None).ok()?;
            Some(FrameScore {
                frame: i,
                psnr: m.psnr,
                delta_e2000: m.delta_e2000,
                colour_age: age,
            })
        })
        .collect();
    let mean = |f: &dyn Fn(&FrameScore) -> f64| {
        frames.iter().map(f).sum::<f64>() / frames.len().max(1) as f64
    };
    // Flicker over the frames that show colour: the switch from the gray start is not flicker.
    let shown: Vec<usize> = frames.iter().map(|f| f.frame).collect();
    let images: Vec<&RgbImage> = shown.iter().map(|&i| &outputs[i].0).collect();
    let truths: Vec<&RgbImage> = shown.iter().map(|&i| &truths[i]).collect();
    VideoRun {
        refresh,
        label: refresh.label(),
        refreshes: runs,
        reference_refused: 0,
        gray_frames: outputs.len() - frames.len(),
        mean_psnr: mean(&|f| f.psnr),
        mean_delta_e2000: mean(&|f| f.delta_e2000),
        mean_colour_age_ms: mean(&|f| f.colour_age as f64) * 1000.0 / fps,
        flicker: flicker(&images, &truths),
        frames,
    }
}

/// The flicker of `frames`, with the static pixels taken from `truths`.
pub fn flicker(frames: &[&RgbImage], truths: &[&RgbImage]) -> Flicker {
    const DISTANCES: [usize; 3] = [1, 2, 4];
    let histograms: Vec<[[f64; 256]; 3]> = frames.iter().map(|f| histogram(f)).collect();
    let mut cdc = 0.0;
    let mut used = 0;
    for d in DISTANCES {
        if histograms.len() <= d {
            continue;
        }
        let pairs = histograms.len() - d;
        let sum: f64 = (0..pairs)
            .map(|t| {
                (0..3)
                    .map(|c| jensen_shannon(&histograms[t][c], &histograms[t + d][c]))
                    .sum::<f64>()
                    / 3.0
            })
            .sum();
        cdc += sum / pairs as f64;
        used += 1;
    }
    let (mut change, mut counted, mut total) = (0.0f64, 0u64, 0u64);
    for t in 1..frames.len().min(truths.len()) {
        let (a, b) = (truths[t - 1].as_raw(), truths[t].as_raw());
        let (p, q) = (frames[t - 1].as_raw(), frames[t].as_raw());
        for i in (0..a.len()).step_by(3) {
            total += 1;
            if (0..3).all(|c| a[i + c].abs_diff(b[i + c]) <= 1) {
                let (_, u0, v0) = chroma(&p[i..i + 3]);
                let (_, u1, v1) = chroma(&q[i..i + 3]);
                change += f64::from((u1 - u0).abs() + (v1 - v0).abs());
                counted += 1;
            }
        }
    }
    Flicker {
        cdc: if used == 0 {
            f64::NAN
        } else {
            cdc / used as f64
        },
        static_chroma: if counted == 0 {
            f64::NAN
        } else {
            change / counted as f64
        },
        static_share: counted as f64 / total.max(1) as f64,
    }
}

/// BT.601 Y, Cb, Cr of an 8-bit pixel, in 8-bit levels.
fn chroma(px: &[u8]) -> (f32, f32, f32) {
    let (y, u, v) =
        crate::images::planes::rgb_to_yuv(f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
    (y, u, v)
}

fn histogram(img: &RgbImage) -> [[f64; 256]; 3] {
    let mut h = [[0.0f64; 256]; 3];
    for px in img.as_raw().chunks_exact(3) {
        for c in 0..3 {
            h[c][px[c] as usize] += 1.0;
        }
    }
    let n = (img.width() * img.height()).max(1) as f64;
    for ch in &mut h {
        ch.iter_mut().for_each(|v| *v /= n);
    }
    h
}

/// Jensen-Shannon divergence of two distributions, base 2.
fn jensen_shannon(p: &[f64; 256], q: &[f64; 256]) -> f64 {
    let kl = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let m = 0.5 * (a + b);
            0.5 * kl(a, m) + 0.5 * kl(b, m)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jensen_shannon_is_zero_for_equal_and_one_for_disjoint_histograms() {
        let mut a = [0.0; 256];
        let mut b = [0.0; 256];
        a[10] = 1.0;
        b[200] = 1.0;
        assert_eq!(jensen_shannon(&a, &a), 0.0);
        assert!((jensen_shannon(&a, &b) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_steady_clip_has_no_flicker_and_a_flashing_one_has() {
        let gray = RgbImage::from_pixel(8, 8, image::Rgb([120, 120, 120]));
        let red = RgbImage::from_pixel(8, 8, image::Rgb([200, 60, 60]));
        let steady = vec![gray.clone(); 6];
        let steady: Vec<&RgbImage> = steady.iter().collect();
        let f = flicker(&steady, &steady);
        assert_eq!((f.cdc, f.static_chroma, f.static_share), (0.0, 0.0, 1.0));
        let flashing: Vec<RgbImage> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    gray.clone()
                } else {
                    red.clone()
                }
            })
            .collect();
        let flashing: Vec<&RgbImage> = flashing.iter().collect();
        let f = flicker(&flashing, &steady);
        // Frames 1 apart always differ, 2 and 4 apart never: a third of the distances.
        assert!((f.cdc - 1.0 / 3.0).abs() < 1e-9, "{}", f.cdc);
        assert!(f.static_chroma > 50.0, "{}", f.static_chroma);
    }
}
