//! The capture stage against real GStreamer: test sources in every camera pixel format, files
//! looped and not, a slow consumer, and cameras that are missing (retried, clearly reported).

use std::path::Path;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use nircolor::capture::{Backoff, CaptureSettings, CaptureStage, Frame, PixelFormat, Source};
use nircolor::runtime::queue::newest_wins;

const FAST_RETRY: Backoff = Backoff {
    first: Duration::from_millis(50),
    max: Duration::from_millis(200),
};

fn spec(id: &str, source: Source, format: PixelFormat) -> CaptureSettings {
    CaptureSettings {
        id: id.into(),
        source,
        format,
        width: 160,
        height: 120,
        fps: 30,
        day_night: false,
    }
}

fn collect(camera_spec: CaptureSettings, n: usize, within: Duration) -> (Vec<Frame>, CaptureStage) {
    let (tx, rx) = newest_wins(64);
    let camera = CaptureStage::spawn(camera_spec, tx, FAST_RETRY).unwrap();
    let deadline = Instant::now() + within;
    let mut frames = Vec::new();
    while frames.len() < n && Instant::now() < deadline {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(50)) {
            frames.push(f);
        }
    }
    (frames, camera)
}

fn mean(f: &Frame) -> f32 {
    f.luma.data.iter().sum::<f32>() / f.luma.data.len() as f32
}

#[test]
fn test_source_delivers_sized_ordered_frames() {
    let (frames, camera) = collect(
        spec(
            "front",
            Source::Test {
                pattern: "ball".into(),
            },
            PixelFormat::Gray8,
        ),
        10,
        Duration::from_secs(10),
    );
    assert_eq!(
        frames.len(),
        10,
        "restarts {}, error {:?}",
        camera
            .status()
            .restarts
            .load(std::sync::atomic::Ordering::SeqCst),
        camera.status().last_error()
    );
    assert!(frames
        .iter()
        .all(|f| (f.luma.width, f.luma.height) == (160, 120) && &*f.meta.camera == "front"));
    assert!(frames
        .windows(2)
        .all(|p| p[1].meta.seq > p[0].meta.seq && p[1].meta.captured_at >= p[0].meta.captured_at));
    assert!(camera.status().up.load(std::sync::atomic::Ordering::SeqCst));
    let started = Instant::now();
    camera.stop();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        started.elapsed()
    );
}

#[test]
fn every_camera_pixel_format_yields_its_luma() {
    for format in [
        PixelFormat::Gray8,
        PixelFormat::Gray16Le,
        PixelFormat::Yuy2,
        PixelFormat::Nv12,
    ] {
        for (pattern, lo, hi) in [("white", 0.9, 1.0), ("black", 0.0, 0.1)] {
            let (frames, _camera) = collect(
                spec(
                    "f",
                    Source::Test {
                        pattern: pattern.into(),
                    },
                    format,
                ),
                2,
                Duration::from_secs(10),
            );
            assert_eq!(frames.len(), 2, "{format:?} {pattern}");
            let m = mean(&frames[1]);
            assert!(
                (lo..=hi).contains(&m),
                "{format:?} {pattern}: mean luma {m}"
            );
        }
    }
}

#[test]
fn a_slow_consumer_gets_the_newest_frames_and_drops_are_counted() {
    let (tx, rx) = newest_wins(2);
    let counter = tx.clone();
    let camera = CaptureStage::spawn(
        spec(
            "slow",
            Source::Test {
                pattern: "snow".into(),
            },
            PixelFormat::Gray8,
        ),
        tx,
        FAST_RETRY,
    )
    .unwrap();
    // Nobody reads: wait until capture has dropped at least 10 frames (no fixed sleep).
    let start = std::time::Instant::now();
    while counter.dropped() < 10 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let queued: Vec<Frame> = rx.try_iter().collect();
    camera.stop();
    assert!(queued.len() <= 2);
    assert!(counter.dropped() >= 10, "dropped {}", counter.dropped());
    let frames = camera_frames(&queued);
    assert!(frames.windows(2).all(|p| p[1] > p[0]));
    assert!(
        queued.last().unwrap().meta.seq >= counter.dropped(),
        "the queue holds the newest frames"
    );
}

fn camera_frames(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(|f| f.meta.seq).collect()
}

/// A 15-frame H.264 Matroska clip made with GStreamer itself.
fn make_clip(path: &Path) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=15 pattern=smpte ! video/x-raw,width=96,height=64,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc ! matroskamux ! filesink location={}",
        path.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap();
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "clip not written: {msg:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn files_play_once_or_loop() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    make_clip(&clip);

    let (frames, camera) = collect(
        spec(
            "once",
            Source::File {
                path: clip.clone(),
                looped: false,
                realtime: true,
            },
            PixelFormat::Gray8,
        ),
        100,
        Duration::from_secs(3),
    );
    assert_eq!(
        frames.len(),
        15,
        "a 15-frame clip at the same rate gives 15 frames"
    );
    assert!(
        frames
            .iter()
            .all(|f| (f.luma.width, f.luma.height) == (160, 120)),
        "scaled to the configured size"
    );
    assert!(camera
        .status()
        .finished
        .load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        camera
            .status()
            .restarts
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    let (frames, camera) = collect(
        spec(
            "loop",
            Source::File {
                path: clip,
                looped: true,
                realtime: true,
            },
            PixelFormat::Gray8,
        ),
        40,
        Duration::from_secs(10),
    );
    assert_eq!(frames.len(), 40, "looping goes past the clip's 15 frames");
    assert!(!camera
        .status()
        .finished
        .load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn missing_cameras_are_retried_with_a_clear_message() {
    let device = "/dev/v4l/by-id/nircolor-test-no-such-camera";
    let cases = [
        (
            Source::V4l2 {
                device: device.into(),
            },
            device,
            "does not exist",
        ),
        (
            Source::File {
                path: "/no/such/clip.mkv".into(),
                looped: true,
                realtime: true,
            },
            "/no/such/clip.mkv",
            "does not exist",
        ),
    ];
    for (source, culprit, says) in cases {
        let (frames, camera) = collect(
            spec("gone", source, PixelFormat::Yuy2),
            1,
            Duration::from_millis(800),
        );
        assert!(frames.is_empty());
        let status = camera.status();
        assert!(
            status.restarts.load(std::sync::atomic::Ordering::SeqCst) >= 3,
            "retried with backoff"
        );
        assert!(!status.up.load(std::sync::atomic::Ordering::SeqCst));
        let err = status.last_error().unwrap();
        assert!(
            err.contains("gone") && err.contains(culprit) && err.contains(says),
            "{err}"
        );
        let started = Instant::now();
        camera.stop();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "stop during backoff took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn an_unreachable_rtsp_camera_is_retried() {
    // Port 9 on loopback: nothing listens there, so the connection is refused at once.
    let (frames, camera) = collect(
        spec(
            "rtsp",
            Source::Rtsp {
                url: "rtsp://127.0.0.1:9/none".into(),
            },
            PixelFormat::Gray8,
        ),
        1,
        Duration::from_secs(3),
    );
    assert!(frames.is_empty());
    assert!(
        camera
            .status()
            .restarts
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    let err = camera.status().last_error().unwrap();
    assert!(
        err.contains("camera 'rtsp' (RTSP stream rtsp://127.0.0.1:9/none)"),
        "{err}"
    );
}

#[test]
fn a_source_that_goes_silent_is_restarted() {
    use nircolor::encode::{Encoder, EncoderSettings, RtspServer};
    use nircolor::images::planes::Rgb;
    // A real RTSP stream that stops sending after a second, without an error or EOS: the
    // connection stays open, the way a wedged IP camera behaves.
    let server = RtspServer::start("127.0.0.1", 0).unwrap();
    let feed = server.mount("/quiet").unwrap();
    let url = server.url("/quiet");
    let mut encoder = Encoder::start(
        EncoderSettings {
            camera: "quiet".into(),
            width: 160,
            height: 120,
            fps: 15,
            bitrate_kbps: 300,
            record: None,
            webcam: None,
        },
        Some(feed),
    )
    .unwrap();
    let (tx, rx) = newest_wins(64);
    let camera = CaptureStage::spawn(
        CaptureSettings {
            fps: 15,
            ..spec("quiet", Source::Rtsp { url }, PixelFormat::Gray8)
        },
        tx,
        FAST_RETRY,
    )
    .unwrap();
    let grey = Rgb::new(160, 120, vec![0.5; 3 * 160 * 120]);
    let start = Instant::now();
    let mut got = 0;
    // Feed until the camera has delivered frames and at least a second has passed.
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(15)
        && (got < 5 || start.elapsed() < Duration::from_secs(1))
    {
        encoder.push(&grey, Duration::from_millis(i * 66)).unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(66));
        while rx.try_recv().is_ok() {
            got += 1;
        }
    }
    assert!(
        got >= 5,
        "the stream delivered {got} frames before going quiet"
    );
    let silent_at = Instant::now();
    // Now nothing more is sent. The stall must be noticed within ~3 s (plus polling).
    let restarted = loop {
        let restarts = camera
            .status()
            .restarts
            .load(std::sync::atomic::Ordering::SeqCst);
        if restarts >= 1 {
            break true;
        }
        if silent_at.elapsed() > Duration::from_secs(8) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(restarted, "a silent source was never restarted");
    let err = camera.status().last_error().unwrap();
    assert!(
        err.contains("no frame for") && err.contains("quiet"),
        "{err}"
    );
    assert!(
        silent_at.elapsed() >= Duration::from_secs(2),
        "restarted too early: {err}"
    );
    camera.stop();
    drop(encoder);
}

#[test]
fn an_image_folder_plays_once_or_loops_scaled_to_the_camera() {
    let dir = tempfile::tempdir().unwrap();
    // Three stills of different sizes and brightness; names give the order.
    for (i, (w, h, v)) in [(160u32, 120u32, 40u8), (320, 240, 120), (80, 60, 200)]
        .into_iter()
        .enumerate()
    {
        image::GrayImage::from_pixel(w, h, image::Luma([v]))
            .save(dir.path().join(format!("{i:03}.png")))
            .unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let source = |looped| Source::Images {
        folder: dir.path().to_path_buf(),
        looped,
        realtime: true,
    };
    let (frames, camera) = collect(
        spec("stills", source(false), PixelFormat::Gray8),
        10,
        Duration::from_secs(2),
    );
    assert_eq!(frames.len(), 3, "each still once");
    assert!(frames
        .iter()
        .all(|f| (f.luma.width, f.luma.height) == (160, 120)));
    let means: Vec<f32> = frames.iter().map(mean).collect();
    assert!(
        means[0] < means[1] && means[1] < means[2],
        "name order: {means:?}"
    );
    assert!(camera
        .status()
        .finished
        .load(std::sync::atomic::Ordering::SeqCst));
    camera.stop();

    let (frames, camera) = collect(
        spec("stills", source(true), PixelFormat::Gray8),
        7,
        Duration::from_secs(3),
    );
    assert_eq!(frames.len(), 7, "looped past the last still");
    camera.stop();

    let empty = tempfile::tempdir().unwrap();
    let (frames, camera) = collect(
        spec(
            "none",
            Source::Images {
                folder: empty.path().to_path_buf(),
                looped: false,
                realtime: true,
            },
            PixelFormat::Gray8,
        ),
        1,
        Duration::from_millis(500),
    );
    assert!(frames.is_empty());
    let err = camera.status().last_error().unwrap();
    assert!(
        err.contains("no PNG, JPEG or TIFF") && err.contains("none"),
        "{err}"
    );
}

#[test]
fn widths_whose_rows_are_padded_arrive_unsheared_in_every_format() {
    // GStreamer pads GRAY8 rows to 4 bytes: at 642 or 854 pixels a reader that ignores the
    // stride shears the picture. SMPTE bars are vertical in their top two thirds, so every row
    // there must equal the first.
    for (w, h) in [(642u32, 480u32), (854, 480)] {
        for format in [PixelFormat::Gray8, PixelFormat::Gray16Le, PixelFormat::Yuy2] {
            let s = CaptureSettings {
                width: w,
                height: h,
                ..spec(
                    "wide",
                    Source::Test {
                        pattern: "smpte".into(),
                    },
                    format,
                )
            };
            let (frames, camera) = collect(s, 2, Duration::from_secs(10));
            camera.stop();
            let f = frames
                .last()
                .unwrap_or_else(|| panic!("{w}x{h} {format:?}: no frame"));
            assert_eq!((f.luma.width, f.luma.height), (w as usize, h as usize));
            let row = |y: usize| &f.luma.data[y * w as usize..(y + 1) * w as usize];
            let first = row(0);
            for y in 1..(h as usize * 6 / 10) {
                let off = row(y)
                    .iter()
                    .zip(first)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(off < 0.02, "{w}x{h} {format:?}: row {y} differs by {off}");
            }
            // The bars are there: bright on the left, dark on the right.
            assert!(first[2] > first[w as usize - 3] + 0.3, "{w}x{h} {format:?}");
        }
    }
}
