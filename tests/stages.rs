//! The daemon's stages wired together by hand, as `nircolor run` will wire them: a live test
//! source through capture, the shipped l3 colorizer with batching and detail transfer, and the
//! encoder's recorder; the recording must decode completely, in colour, at the camera's size.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nircolor::capture::{Backoff, CaptureSettings, CaptureStage, PixelFormat, Source};
use nircolor::detail::GuidedFilter;
use nircolor::encode::{Container, Encoder, EncoderSettings, RecordSpec};
use nircolor::infer::{InferSettings, InferStage, Refresh};
use nircolor::runtime::queue::newest_wins;

#[test]
fn test_source_to_colour_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h, fps) = (320usize, 240usize, 30u32);
    let (frames_tx, frames_rx) = newest_wins(2);
    let (colour_tx, colour_rx) = newest_wins(4);
    let camera = CaptureStage::spawn(
        CaptureSettings {
            id: "demo".into(),
            source: Source::Test {
                pattern: "ball".into(),
            },
            format: PixelFormat::Yuy2,
            width: w as u32,
            height: h as u32,
            fps,
            day_night: false,
        },
        frames_tx,
        Backoff::default(),
    )
    .unwrap();
    let infer = InferStage::spawn(
        nircolor::models::load("l3").unwrap(),
        vec![frames_rx],
        HashMap::from([(Arc::from("demo"), colour_tx)]),
        InferSettings {
            scale: 0.5,
            max_pixels: 0,
            max_batch: 4,
            max_wait: Duration::from_millis(5),
            detail: GuidedFilter {
                radius: 8,
                eps: 1e-3,
            },
            refresh: Refresh::Auto,
            blend: nircolor::infer::BLEND,
        },
    )
    .unwrap();
    let record = RecordSpec {
        folder: dir.path().to_path_buf(),
        segment: Duration::from_secs(60),
        container: Container::Matroska,
        lossless: false,
        prune_when_full: false,
    };
    let mut encoder = Encoder::start(
        EncoderSettings {
            camera: "demo".into(),
            width: w,
            height: h,
            fps,
            bitrate_kbps: 1500,
            record: Some(record),
            webcam: None,
        },
        None,
    )
    .unwrap();

    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut encoded = 0u64;
    let mut chroma = 0.0f32;
    while start.elapsed() < Duration::from_secs(3) {
        let Ok(frame) = colour_rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let t0 = *first.get_or_insert(frame.meta.captured_at);
        encoder
            .push(
                &frame.rgb,
                frame.meta.captured_at.saturating_duration_since(t0),
            )
            .unwrap();
        let n = w * h;
        chroma = (0..n)
            .map(|i| (frame.rgb.data[i] - frame.rgb.data[2 * n + i]).abs())
            .sum::<f32>()
            / n as f32;
        encoded += 1;
    }
    camera.stop();
    infer.stop();
    encoder.finish(Duration::from_secs(10)).unwrap();

    eprintln!("{encoded} frames encoded in 3 s, mean chroma |R-B| {chroma:.3}");
    assert!(
        encoded >= 45,
        "only {encoded} frames reached the encoder in 3 s at {fps} fps"
    );
    assert!(chroma > 0.02, "l3 output is not gray: mean |R-B| {chroma}");
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .next()
        .expect("a recording")
        .path();
    let (decoded, width, height) = common::probe(&file);
    assert_eq!((width, height), (320, 240));
    assert_eq!(decoded, encoded, "every encoded frame decodes");
}
