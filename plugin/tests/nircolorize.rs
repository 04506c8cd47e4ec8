//! `nircolorize` through GStreamer's own test harness and real pipelines: caps, renegotiation,
//! seeks, EOS, model swaps, sharing, day frames and errors.

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_check::Harness;
use gstreamer_video as gst_video;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnircolor::plugin_register_static().expect("registering nircolor");
    });
}

/// A GRAY8 caps string of `w` x `h`.
fn gray(w: u32, h: u32) -> String {
    format!("video/x-raw,format=GRAY8,width={w},height={h},framerate=30/1")
}

/// A textured NIR frame: a ramp with stripes, so that colour and detail both show.
fn nir_buffer(w: usize, h: usize, pts_ms: u64) -> gst::Buffer {
    let data: Vec<u8> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            ((x * 200 / w) as u8).wrapping_add(if (y / 4) % 2 == 0 { 30 } else { 0 })
        })
        .collect();
    let mut buffer = gst::Buffer::from_slice(data);
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(33));
    }
    buffer
}

/// Mean |R - G| + |G - B| of a packed RGB buffer: 0 for gray.
fn colourfulness(rgb: &[u8]) -> f64 {
    rgb.chunks_exact(3)
        .map(|p| {
            (f64::from(p[0]) - f64::from(p[1])).abs() + (f64::from(p[1]) - f64::from(p[2])).abs()
        })
        .sum::<f64>()
        / (rgb.len() / 3) as f64
}

/// A harness around one element, its properties set before it starts.
fn harness(properties: &[(&str, &str)]) -> Harness {
    init();
    let mut launch = String::from("nircolorize name=c");
    for (k, v) in properties {
        launch += &format!(" {k}={v}");
    }
    Harness::new_parse(&launch)
}

/// The element inside a harness of [`harness`].
fn element(h: &Harness) -> gst::Element {
    h.element()
        .unwrap()
        .downcast::<gst::Bin>()
        .unwrap()
        .by_name("c")
        .unwrap()
}

#[test]
fn every_source_format_negotiates_and_carries_colour() {
    let (w, hgt) = (64u32, 48u32);
    for (format, size) in [
        ("RGB", 3 * 64 * 48),
        ("RGBx", 4 * 64 * 48),
        ("BGRx", 4 * 64 * 48),
        ("I420", 64 * 48 * 3 / 2),
        ("NV12", 64 * 48 * 3 / 2),
    ] {
        let mut h = harness(&[("refresh-fps", "every-frame")]);
        h.set_src_caps_str(&gray(w, hgt));
        h.set_sink_caps_str(&format!(
            "video/x-raw,format={format},width={w},height={hgt},framerate=30/1"
        ));
        h.play();
        h.push(nir_buffer(w as usize, hgt as usize, 0)).unwrap();
        let out = h.pull().unwrap();
        assert_eq!(out.size(), size, "{format}: buffer size");
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(info.format().to_str(), format);
        if format == "RGB" {
            let map = out.map_readable().unwrap();
            assert!(
                colourfulness(&map) > 2.0,
                "{format}: the output is gray ({})",
                colourfulness(&map)
            );
        }
        if format == "I420" {
            // Chroma away from 128 somewhere: colour, not gray.
            let map = out.map_readable().unwrap();
            let chroma = &map[64 * 48..];
            assert!(
                chroma.iter().any(|&c| c.abs_diff(128) > 3),
                "{format}: no chroma"
            );
        }
    }
}

#[test]
fn a_new_size_in_mid_stream_is_followed_without_a_restart() {
    let mut h = harness(&[]);
    h.set_src_caps_str(&gray(64, 48));
    h.set_sink_caps_str("video/x-raw,format=RGB");
    h.play();
    for k in 0..3 {
        h.push(nir_buffer(64, 48, k * 33)).unwrap();
        assert_eq!(h.pull().unwrap().size(), 64 * 48 * 3);
    }
    h.set_src_caps_str(&gray(80, 60));
    for k in 3..6 {
        h.push(nir_buffer(80, 60, k * 33)).unwrap();
        assert_eq!(h.pull().unwrap().size(), 80 * 60 * 3);
    }
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height()), (80, 60));
}

#[test]
fn eos_and_flushes_pass_through() {
    let mut h = harness(&[]);
    h.set_src_caps_str(&gray(32, 24));
    h.set_sink_caps_str("video/x-raw,format=I420");
    h.play();
    h.push(nir_buffer(32, 24, 0)).unwrap();
    h.pull().unwrap();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    // Flushing resets the segment: a new one comes first, then frames flow again.
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    h.push(nir_buffer(32, 24, 0)).unwrap();
    assert_eq!(h.pull().unwrap().size(), 32 * 24 * 3 / 2);
    assert!(h.push_event(gst::event::Eos::new()));
    let mut saw_eos = false;
    while let Some(ev) = h.try_pull_event() {
        saw_eos |= ev.type_() == gst::EventType::Eos;
    }
    assert!(saw_eos, "EOS did not reach downstream");
}

/// An error message's text and its debug details, where the element says why.
fn error_text(e: &gst::message::Error) -> String {
    format!("{} ({})", e.error(), e.debug().unwrap_or_default())
}

/// Plays `launch` until EOS or `limit`; the bus's error text, if any.
fn run_pipeline(pipeline: &gst::Pipeline, limit: Duration) -> Result<(), String> {
    let started = pipeline.set_state(gst::State::Playing).map_err(|e| {
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(error_text(e)),
                _ => None,
            })
            .unwrap_or(e.to_string())
    });
    if let Err(e) = started {
        pipeline.set_state(gst::State::Null).unwrap();
        return Err(e);
    }
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + limit;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err("timed out".to_string());
        }
        match bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(left.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(m) => match m.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(e) => break Err(error_text(e)),
                _ => {}
            },
            None => break Err("timed out".to_string()),
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

fn pipeline(launch: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(launch)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

#[test]
fn a_flushing_seek_restarts_the_stream() {
    let p = pipeline(
        "videotestsrc pattern=ball num-buffers=90 ! video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1 ! nircolorize name=c ! video/x-raw,format=RGB ! fakesink name=sink sync=true",
    );
    p.set_state(gst::State::Paused).unwrap();
    p.state(gst::ClockTime::from_seconds(10)).0.unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let c = p.by_name("c").unwrap();
    let started = Instant::now();
    while c.property::<u64>("frames") < 20 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = c.property::<u64>("frames");
    p.seek_simple(
        gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
        gst::ClockTime::from_seconds(1),
    )
    .expect("seek");
    let result = run_pipeline(&p, Duration::from_secs(30));
    assert_eq!(result, Ok(()));
    // Whatever played before the seek, then from 1 s (frame 30) to the end (frame 90).
    let total = c.property::<u64>("frames");
    assert!(
        before < 60 && total >= before + 55,
        "{before} then {total} frames"
    );
}

#[test]
fn the_model_swaps_while_playing_and_two_elements_share_one_model() {
    // The default weights named by their file: a model no other test of this process opens
    // (they share per process, which is what is tested here).
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/default.safetensors");
    let p = pipeline(&format!(
        "videotestsrc pattern=ball is-live=true num-buffers=900 ! video/x-raw,format=GRAY8,width=160,height=120,framerate=30/1 ! tee name=t \
         t. ! queue ! nircolorize name=a model={model} ! video/x-raw,format=RGB ! appsink name=out sync=false \
         t. ! queue ! nircolorize name=b model={model} ! video/x-raw,format=I420 ! fakesink sync=false",
    ));
    let (a, b) = (p.by_name("a").unwrap(), p.by_name("b").unwrap());
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let started = Instant::now();
    while (a.property::<u64>("refreshes") == 0 || b.property::<u64>("refreshes") == 0)
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    // One weight copy: both elements are clients of one model.
    assert_eq!(a.property::<u32>("model-users"), 2);
    assert_eq!(b.property::<u32>("model-users"), 2);
    assert!(b.property::<u64>("refreshes") > 0);
    let colourful = |s: &gstreamer_app::AppSink| {
        let sample = s
            .try_pull_sample(gst::ClockTime::from_seconds(5))
            .expect("no frame within 5 s");
        let map = sample.buffer().unwrap().map_readable().unwrap();
        colourfulness(&map)
    };
    let mut coloured = 0.0;
    while coloured < 2.0 && started.elapsed() < Duration::from_secs(20) {
        coloured = colourful(&sink);
    }
    assert!(coloured >= 2.0, "never coloured: {coloured}");
    // Swap `a` to the identity (NIR in gray) while playing: the stream goes on, gray now,
    // and `a` no longer shares `b`'s model.
    a.set_property("model", "identity");
    assert_eq!(a.property::<u32>("model-users"), 1);
    assert_eq!(b.property::<u32>("model-users"), 1);
    let frames = a.property::<u64>("frames");
    let mut gray = f64::MAX;
    let swapped = Instant::now();
    while gray > 0.5 && swapped.elapsed() < Duration::from_secs(10) {
        gray = colourful(&sink);
    }
    assert!(gray <= 0.5, "still colour after the swap: {gray}");
    assert!(a.property::<u64>("frames") > frames, "the stream stopped");
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn bad_settings_are_errors_on_the_bus_with_the_reason() {
    let missing = pipeline(
        "videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=32,height=24 ! nircolorize model=/nonexistent/weights.safetensors ! fakesink",
    );
    let err = run_pipeline(&missing, Duration::from_secs(10)).unwrap_err();
    assert!(
        err.contains("/nonexistent/weights.safetensors") && err.contains("weights file"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("nircolorize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a weights file").unwrap();
    let bad = pipeline(&format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=32,height=24 ! nircolorize model={} ! fakesink",
        garbage.display()
    ));
    let err = run_pipeline(&bad, Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("garbage.safetensors"), "{err}");
    let rate = pipeline(
        "videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=32,height=24 ! nircolorize refresh-fps=fast ! fakesink",
    );
    let err = run_pipeline(&rate, Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("fast") && err.contains("every-frame"), "{err}");
    if !nircolor::runtime::cuda::available() {
        let cuda = pipeline(
            "videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=32,height=24 ! nircolorize device=cuda ! fakesink",
        );
        let err = run_pipeline(&cuda, Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("CUDA"), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn colour_frames_of_a_day_camera_pass_through() {
    let mut h = harness(&[]);
    let (w, hgt) = (64usize, 48usize);
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={w},height={hgt},framerate=30/1"
    ));
    h.set_sink_caps_str("video/x-raw,format=RGB");
    h.play();
    // A saturated scene: red left half, green-blue right half.
    let frame: Vec<u8> = (0..w * hgt)
        .flat_map(|i| {
            if i % w < w / 2 {
                [200u8, 40, 30]
            } else {
                [30u8, 160, 140]
            }
        })
        .collect();
    let e = element(&h);
    let started = Instant::now();
    let mut k = 0u64;
    // Colour for a second (the switch's hysteresis) turns the element to day mode; from then
    // on the frames pass through.
    let mut checked = 0;
    while checked < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never day mode"
        );
        let mut b = gst::Buffer::from_slice(frame.clone());
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * k));
        k += 1;
        h.push(b).unwrap();
        let out = h.pull().unwrap();
        if e.property::<u64>("day-frames") == 0 {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        checked += 1;
        let map = out.map_readable().unwrap();
        let worst = map
            .iter()
            .zip(&frame)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            worst <= 1,
            "frame {k}: the day colour changed by {worst} levels"
        );
        drop(map);
    }
    assert_eq!(e.property::<u64>("day-frames"), 5);
}

#[test]
fn a_day_reference_gives_the_night_its_colours_in_both_refresh_modes() {
    use nircolor::reference::store::{save, ReferenceMeta, StoredReference};
    use nircolor::Rgb;
    init();
    let (w, h) = (96usize, 72usize);
    let nir = nir_buffer(w, h, 0);
    let nir_values: Vec<f32> = nir
        .map_readable()
        .unwrap()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect();
    // The scene by day: the NIR's own pattern, in red (a colour no network gives this ramp).
    let n = w * h;
    let mut data = vec![0.0f32; 3 * n];
    for (i, v) in nir_values.iter().enumerate() {
        data[i] = *v;
        data[n + i] = 0.2 * v;
        data[2 * n + i] = 0.1 * v;
    }
    let dir = std::env::temp_dir().join(format!("nircolorize-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scene.png");
    save(
        &file,
        &StoredReference {
            image: Rgb::new(w, h, data),
            meta: ReferenceMeta {
                made_unix: 0,
                frames: 3,
                span_seconds: 2.0,
                stillness: 0.0,
                width: w,
                height: h,
                photo: None,
            },
        },
    )
    .unwrap();
    // Mean red minus mean green of the output: large for the reference's red scene.
    let redness = |properties: &[(&str, &str)]| -> f64 {
        let mut hn = harness(properties);
        hn.set_src_caps_str(&gray(w as u32, h as u32));
        hn.set_sink_caps_str("video/x-raw,format=RGB");
        hn.play();
        let started = Instant::now();
        let mut last = 0.0;
        // Amortised: the first frames are gray until a refresh arrives.
        for k in 0..200u64 {
            hn.push(nir_buffer(w, h, k * 33)).unwrap();
            let out = hn.pull().unwrap();
            let map = out.map_readable().unwrap();
            last = map
                .chunks_exact(3)
                .map(|p| f64::from(p[0]) - f64::from(p[1]))
                .sum::<f64>()
                / n as f64;
            if element(&hn).property::<u64>("refreshes") > 1
                || started.elapsed() > Duration::from_secs(10)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    };
    let reference = format!("{}", file.display());
    for refresh in ["every-frame", "auto"] {
        let alone = redness(&[("refresh-fps", refresh)]);
        let with = redness(&[("refresh-fps", refresh), ("reference", &reference)]);
        println!("{refresh}: red minus green {with:.1} with the reference, {alone:.1} without");
        assert!(
            with > 40.0 && with > alone + 20.0,
            "{refresh}: red minus green {with:.1} with the reference, {alone:.1} without"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_live_pipeline_gets_its_latency_through_the_element() {
    let p = pipeline(
        "videotestsrc is-live=true num-buffers=300 ! video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1 ! nircolorize name=c ! video/x-raw,format=I420 ! fakesink name=sink",
    );
    p.set_state(gst::State::Playing).unwrap();
    let c = p.by_name("c").unwrap();
    let started = Instant::now();
    while c.property::<u64>("frames") < 5 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut q = gst::query::Latency::new();
    assert!(
        c.static_pad("src").unwrap().query(&mut q),
        "no answer to a latency query"
    );
    let (live, min, _) = q.result();
    assert!(
        live,
        "a live source's latency went missing through the element"
    );
    // videotestsrc is-live reports one frame (33 ms); the element adds none.
    assert!(min >= gst::ClockTime::from_mseconds(30), "{min}");
    p.set_state(gst::State::Null).unwrap();
}
