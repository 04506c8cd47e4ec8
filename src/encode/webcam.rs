//! A camera's colour stream as a webcam for conferencing apps: raw frames written to a
//! v4l2loopback device (`v4l2sink`) beside RTSP and recording. It runs as its own small
//! pipeline fed the encoder's I420 buffers (shared, not copied), so a webcam that fails or is
//! unplugged never stops the camera's RTSP stream or its recording; it is retried instead.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// How long a failed webcam output waits before it is opened again.
const RETRY: Duration = Duration::from_secs(5);

/// The raw format written to the device: what the common conferencing apps accept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebcamFormat {
    /// Packed 4:2:2, the format nearly every webcam app takes.
    #[default]
    Yuy2,
    /// Planar 4:2:0.
    I420,
}

impl WebcamFormat {
    pub fn caps_name(self) -> &'static str {
        match self {
            WebcamFormat::Yuy2 => "YUY2",
            WebcamFormat::I420 => "I420",
        }
    }
}

/// Where the frames go.
#[derive(Clone, Debug, PartialEq)]
pub enum WebcamSink {
    /// A v4l2loopback device such as /dev/video10.
    Device(PathBuf),
    /// A file of raw frames at the same caps: what tests use where no loopback device can be
    /// made.
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebcamSpec {
    pub sink: WebcamSink,
    pub format: WebcamFormat,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebcamError {
    #[error("{device} does not exist: load v4l2loopback first, e.g. `sudo modprobe v4l2loopback video_nr={nr} exclusive_caps=1 card_label=\"nircolor\"`")]
    Missing { device: String, nr: String },
    #[error("{device} is not a device file: a v4l2loopback device is a character device such as /dev/video10 (`sudo modprobe v4l2loopback exclusive_caps=1` makes one)")]
    NotADevice { device: String },
    #[error("{device} is not a V4L2 device ({why}); give the /dev/videoN that v4l2loopback made (`v4l2-ctl --list-devices` names it)")]
    NotV4l2 { device: String, why: String },
    #[error("{device} ({card}) cannot take video written to it: it is a capture device, not a v4l2loopback output; `v4l2-ctl --list-devices` lists the loopback devices")]
    NotOutput { device: String, card: String },
}

/// Checks that `device` is a V4L2 device that accepts video written to it (a loopback), with
/// errors that say how to get one.
pub fn check_device(device: &Path) -> Result<(), WebcamError> {
    use std::os::unix::fs::FileTypeExt;
    let name = device.display().to_string();
    let meta = std::fs::metadata(device).map_err(|_| WebcamError::Missing {
        device: name.clone(),
        nr: name
            .trim_start_matches("/dev/video")
            .parse::<u32>()
            .map_or("10".into(), |n| n.to_string()),
    })?;
    if !meta.file_type().is_char_device() {
        return Err(WebcamError::NotADevice { device: name });
    }
    let dev = v4l::Device::with_path(device).map_err(|e| WebcamError::NotV4l2 {
        device: name.clone(),
        why: e.to_string(),
    })?;
    let caps = dev.query_caps().map_err(|e| WebcamError::NotV4l2 {
        device: name.clone(),
        why: e.to_string(),
    })?;
    let output = v4l::capability::Flags::VIDEO_OUTPUT | v4l::capability::Flags::VIDEO_OUTPUT_MPLANE;
    if !caps.capabilities.intersects(output) {
        return Err(WebcamError::NotOutput {
            device: name,
            card: caps.card,
        });
    }
    Ok(())
}

/// A running webcam output.
pub struct Webcam {
    camera: String,
    description: String,
    pipeline: Option<(gst::Pipeline, gst_app::AppSrc)>,
    /// When a failed output is opened again.
    retry_at: Option<Instant>,
}

impl Webcam {
    /// The pipeline for `spec`, fed I420 buffers with caps `input_caps`.
    pub fn new(camera: &str, spec: &WebcamSpec, input_caps: &str) -> Webcam {
        // sync=false: frames go out as they come; the encoder side already paces them. A
        // device gets a leaky queue (an app that stops reading costs frames, not latency); a
        // file keeps every frame.
        let (queue, sink) = match &spec.sink {
            WebcamSink::Device(d) => (
                "queue leaky=downstream max-size-buffers=2",
                format!("v4l2sink device=\"{}\" sync=false", d.display()),
            ),
            WebcamSink::File(f) => (
                "queue",
                format!("filesink location=\"{}\" sync=false", f.display()),
            ),
        };
        let description = format!(
            "appsrc name=src is-live=true format=time caps={input_caps} \
             ! {queue} ! videoconvert ! video/x-raw,format={} ! {sink}",
            spec.format.caps_name()
        );
        let mut webcam = Webcam {
            camera: camera.into(),
            description,
            pipeline: None,
            retry_at: None,
        };
        webcam.open();
        webcam
    }

    fn open(&mut self) {
        let started = gst::parse::launch(&self.description)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let p = p
                    .downcast::<gst::Pipeline>()
                    .map_err(|_| "not a pipeline".to_string())?;
                let src = p
                    .by_name("src")
                    .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                    .ok_or("no appsrc")?;
                p.set_state(gst::State::Playing)
                    .map_err(|e| format!("{e}: {}", bus_error(&p).unwrap_or_default()))?;
                Ok((p, src))
            });
        match started {
            Ok(p) => {
                self.pipeline = Some(p);
                self.retry_at = None;
            }
            Err(why) => self.failed(&why),
        }
    }

    /// One line per failure, not one per frame; the output is opened again after [`RETRY`].
    fn failed(&mut self, why: &str) {
        tracing::warn!(
            camera = %self.camera,
            "webcam output failed ({why}); RTSP and recording go on, retrying in {} s",
            RETRY.as_secs()
        );
        if let Some((p, _)) = self.pipeline.take() {
            let _ = p.set_state(gst::State::Null);
        }
        self.retry_at = Some(Instant::now() + RETRY);
    }

    /// Hands `buffer` (the encoder's I420 frame, shared) to the webcam.
    pub fn push(&mut self, buffer: gst::Buffer) {
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.open();
        }
        let Some((pipeline, src)) = &self.pipeline else {
            return;
        };
        if let Some(why) = bus_error(pipeline) {
            self.failed(&why);
            return;
        }
        if let Err(e) = src.push_buffer(buffer) {
            self.failed(&e.to_string());
        }
    }

    /// Ends the stream so a file sink holds every frame, waiting up to `timeout`.
    pub fn finish(mut self, timeout: Duration) {
        if let Some((pipeline, src)) = self.pipeline.take() {
            let _ = src.end_of_stream();
            if let Some(bus) = pipeline.bus() {
                let _ = bus.timed_pop_filtered(
                    gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                );
            }
            let _ = pipeline.set_state(gst::State::Null);
        }
    }
}

impl Drop for Webcam {
    fn drop(&mut self) {
        if let Some((p, _)) = self.pipeline.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

/// The pipeline's pending error, as text.
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let msg = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(format!(
            "{}{}",
            e.error(),
            e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_a_plain_file_and_a_non_video_device_are_refused_with_what_to_do() {
        let e = check_device(Path::new("/dev/video77")).unwrap_err();
        assert!(matches!(&e, WebcamError::Missing { nr, .. } if nr == "77"));
        assert!(e
            .to_string()
            .contains("modprobe v4l2loopback video_nr=77 exclusive_caps=1"));
        let file = std::env::temp_dir().join("nircolor-not-a-device");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_device(&file),
            Err(WebcamError::NotADevice { .. })
        ));
        let e = check_device(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(e, WebcamError::NotV4l2 { .. }), "{e}");
        assert!(e.to_string().contains("v4l2-ctl --list-devices"));
    }
}
