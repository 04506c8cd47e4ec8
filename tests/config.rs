//! `nircolor check --config`: a valid pipeline is summarised; every kind of mistake exits
//! non-zero naming the file, the line and the key, what was wrong and what is allowed.

mod common;

use std::fs;
use std::path::Path;

use common::{nircolor, stderr, stdout};

const VALID: &str = r#"# two cameras
[model]
weights = "l3"
scale = 0.5
max_batch = 4

[detail]
radius = 8

[[camera]]
id = "front"
source = { kind = "test", pattern = "ball" }
format = "YUY2"
width = 640
height = 480
fps = 30
record = { folder = "rec/front", segment_seconds = 30, container = "mp4", max_total_mb = 500 }

[[camera]]
id = "cabin"
source = { kind = "v4l2", device = "/dev/v4l/by-id/usb-cabin-video-index0" }
format = "GRAY16_LE"
width = 1280
height = 720
fps = 25
rtsp = { mount = "/inside", user = "viewer", password = "pw" }
"#;

fn check(dir: &Path, text: &str) -> (bool, String) {
    let file = dir.join("pipeline.toml");
    fs::write(&file, text).unwrap();
    let out = nircolor(&["check", "--config", file.to_str().unwrap()]);
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn a_valid_config_is_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(dir.path(), VALID);
    assert!(ok, "{text}");
    assert!(text.contains("camera 'front': test pattern ball, YUY2 640x480 @ 30 fps -> rtsp://127.0.0.1:8554/front"), "{text}");
    assert!(
        text.contains("camera 'cabin': V4L2 device /dev/v4l/by-id/usb-cabin-video-index0")
            && text.contains("/inside"),
        "{text}"
    );
    assert!(text.contains("recorded as .mp4"), "{text}");
    assert!(
        text.contains("at most 128 connections (16 more for /healthz, /readyz and /metrics)"),
        "{text}"
    );
    assert!(
        text.contains("colour refreshed as often as the machine allows"),
        "{text}"
    );
    for (value, says) in [
        (
            "\"every-frame\"",
            "colour refreshed by the network on every frame",
        ),
        (
            "2.5",
            "colour refreshed at most 2.5 times a second per camera",
        ),
        ("5", "colour refreshed at most 5 times a second per camera"),
    ] {
        let text = VALID.replace(
            "max_batch = 4",
            &format!("max_batch = 4\nrefresh_fps = {value}"),
        );
        let (ok, out) = check(dir.path(), &text);
        assert!(ok && out.contains(says), "{value}: {out}");
    }
}

/// Each case: (what to replace in VALID, with what, the line and key the error must name, and a
/// phrase of its explanation).
#[test]
fn every_mistake_names_file_line_and_key() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "max_batch = 4",
            "max_batch = 4\nrefresh_fps = \"often\"",
            ":6: model.refresh_fps:",
            "often is not a refresh rate; allowed: \"auto\"",
        ),
        (
            "max_batch = 4",
            "max_batch = 4\nrefresh_fps = 0",
            ":6: model.refresh_fps:",
            "above 0 and at most 1000",
        ),
        (
            "max_batch = 4",
            "max_batch = 4\nrefresh_fps = true",
            ":6: model.refresh_fps:",
            "true is not a refresh rate",
        ),
        (
            "max_batch = 4",
            "max_batch = 4\nblend_ms = 20000",
            ":6: model.blend_ms:",
            "allowed: 0 to 10000",
        ),
        (
            "max_batch = 4",
            "max_batch = 4\nbatch_size = 2",
            ":6:",
            "unknown field `batch_size`",
        ),
        (
            "fps = 30",
            "fps = 30\nfsp = 30",
            ":17:",
            "unknown field `fsp`",
        ),
        (
            "pattern = \"ball\" }",
            "pattern = \"ball\", speed = 3 }",
            ":12:",
            "unknown field `speed`",
        ),
        (
            "fps = 30",
            "fps = \"thirty\"",
            ":16: fps:",
            "invalid type: string \"thirty\"",
        ),
        (
            "width = 640",
            "width = 64000",
            ":14: camera 'front'.width:",
            "allowed: 16 to 8192",
        ),
        (
            "fps = 25",
            "fps = 0",
            ":25: camera 'cabin'.fps:",
            "allowed: 1 to 240",
        ),
        (
            "width = 640",
            "width = 641",
            ":14: camera 'front'.width:",
            "641 is odd; H.264 in 4:2:0 needs an even width: use 640 or 642",
        ),
        (
            "scale = 0.5",
            "scale = 1.5",
            ":4: model.scale:",
            "at most 1",
        ),
        (
            "max_batch = 4",
            "max_batch = 0",
            ":5: model.max_batch:",
            "allowed: 1 to 64",
        ),
        (
            "radius = 8",
            "radius = 500",
            ":8: detail.radius:",
            "allowed: 1 to 64",
        ),
        (
            "id = \"cabin\"",
            "id = \"front\"",
            ":20: camera.id:",
            "already the id of the camera on line 11",
        ),
        (
            "mount = \"/inside\"",
            "mount = \"/front\"",
            ":26: camera 'cabin'.rtsp.mount:",
            "already served by the camera on line 11",
        ),
        (
            "weights = \"l3\"",
            "weights = \"models/missing.safetensors\"",
            ":3: model.weights:",
            "nor an existing weights file",
        ),
        (
            "fps = 30",
            "fps = 30\ncalibration = \"calibration/front.toml\"",
            ":17: camera 'front'.calibration:",
            "does not exist",
        ),
        (
            "kind = \"test\", pattern = \"ball\"",
            "kind = \"file\", path = \"clip.mp4\", loop = true, realtime = false",
            ":12: camera 'front'.source:",
            "realtime = false is for batch jobs",
        ),
        (
            "kind = \"test\"",
            "kind = \"webcam\"",
            ":12:",
            "unknown variant `webcam`",
        ),
        (
            "format = \"YUY2\"",
            "format = \"MJPG\"",
            ":13: format:",
            "unknown variant `MJPG`",
        ),
        (
            "pattern = \"ball\"",
            "pattern = \"ball ! fakesink\"",
            ":12: camera 'front'.source:",
            "not a videotestsrc pattern",
        ),
        (
            "user = \"viewer\", ",
            "",
            ":20: camera 'cabin'.rtsp:",
            "both user and a password",
        ),
        (
            "[detail]",
            "[metrics]\nbind = \"localhost\"\n[detail]",
            ":8: metrics.bind:",
            "address:port",
        ),
        (
            "max_batch = 4",
            "max_batch = 4\nquality = \"nope.safetensors\"",
            ":6: model.quality:",
            "neither a built-in colorizer",
        ),
        (
            "max_batch = 4",
            "max_batch = 4\nrefresh_fps = \"every-frame\"\nquality = \"hq\"",
            ":7: model.quality:",
            "a tiered refresh needs refresh_fps",
        ),
        (
            "[detail]",
            "[metrics]\nmax_connections = 0\n[detail]",
            ":8: metrics.max_connections:",
            "allowed: 1 to 4096",
        ),
        (
            "[detail]",
            "[metrics]\nheader_timeout_ms = 2000\nidle_timeout_ms = 4000\n[detail]",
            ":9: metrics.idle_timeout_ms:",
            "longer than the header timeout",
        ),
        (
            "[detail]",
            "[metrics]\nmax_header_bytes = 100\n[detail]",
            ":8: metrics.max_header_bytes:",
            "allowed: 1024 to 1048576",
        ),
        (
            "segment_seconds = 30",
            "segment_seconds = 0",
            ":17: camera 'front'.record.segment_seconds:",
            "allowed: 1 to 3600",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (from, to, place, says) in cases {
        assert!(
            VALID.contains(from),
            "case pattern {from:?} not in the valid config"
        );
        let (ok, text) = check(dir.path(), &VALID.replacen(from, to, 1));
        assert!(!ok, "accepted {to:?}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            text.contains(&format!("pipeline.toml{place}")),
            "{to:?}: expected pipeline.toml{place} in:\n{text}"
        );
        assert!(text.contains(says), "{to:?}: expected '{says}' in:\n{text}");
    }
}

#[test]
fn a_config_without_cameras_or_model_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(dir.path(), "camera = []\n[model]\nweights = \"l3\"\n");
    assert!(!ok && text.contains("no camera is configured"), "{text}");
    let (ok, text) = check(
        dir.path(),
        &VALID.replacen(
            "[model]\nweights = \"l3\"\nscale = 0.5\nmax_batch = 4\n",
            "",
            1,
        ),
    );
    assert!(!ok && text.contains("missing field `model`"), "{text}");
    let out = nircolor(&["check", "--config", "no/such.toml"]);
    assert!(
        !out.status.success()
            && stderr(&out).contains("no/such.toml")
            && stderr(&out).contains("cannot read")
    );
}

#[test]
fn an_image_folder_source_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let text = VALID.replace(
        r#"source = { kind = "test", pattern = "ball" }"#,
        r#"source = { kind = "images", folder = "stills", loop = true }"#,
    );
    let (ok, out) = check(dir.path(), &text);
    assert!(ok, "{out}");
    assert!(out.contains("image folder"), "{out}");
}

#[test]
fn a_broken_calibration_file_is_reported_at_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("calibration")).unwrap();
    fs::write(
        dir.path().join("calibration/front.toml"),
        "black_level = 0.02\n\n[color]\ngains = [1.1, 0.9]\n",
    )
    .unwrap();
    let text = VALID.replace(
        "fps = 30",
        "fps = 30\ncalibration = \"calibration/front.toml\"",
    );
    let (ok, out) = check(dir.path(), &text);
    assert!(!ok, "{out}");
    assert!(
        out.contains("calibration/front.toml:4: color.gains: 2 values given; give 3"),
        "{out}"
    );
    fs::write(
        dir.path().join("calibration/front.toml"),
        "black_level = 0.02\n[color]\ngains = [1.1, 1.0, 0.9]\n",
    )
    .unwrap();
    let (ok, out) = check(dir.path(), &text);
    assert!(ok, "{out}");
    assert!(out.contains("calibration/front.toml, recorded"), "{out}");
}

#[test]
fn the_pipeline_benchmark_config_built_in_code_equals_its_file_form() {
    let dir = tempfile::tempdir().unwrap();
    let case = nircolor::offline::bench::PipelineCase {
        model: "default",
        width: 640,
        height: 480,
        cameras: 2,
        fps: 30,
        dir: dir.path(),
        rtsp_port: 18554,
        metrics_port: 19464,
        refresh: nircolor::infer::Refresh::Auto,
        reference: false,
        quality: Some("hq"),
    };
    let built = case.config();
    let mut text =
        "[model]\nweights = \"default\"\nquality = \"hq\"\nmax_batch = 2\nmax_wait_ms = 5\n\
                    [rtsp]\nport = 18554\n[metrics]\nbind = \"127.0.0.1:19464\"\n"
            .to_string();
    for i in 0..2 {
        text += &format!(
            "[[camera]]\nid = \"cam{i}\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\n\
             format = \"GRAY8\"\nwidth = 640\nheight = 480\nfps = 30\n\
             record = {{ folder = \"rec{i}\", segment_seconds = 60, container = \"mkv\" }}\n"
        );
    }
    let file = dir.path().join("bench-pipeline (built in code)");
    let parsed = nircolor::daemon::config::Config::parse(&file, &text).unwrap();
    assert_eq!(built, parsed);
}

#[test]
fn a_webcam_output_needs_a_v4l2loopback_device_and_check_says_how_to_load_one() {
    let dir = tempfile::tempdir().unwrap();
    let with = |device: &str| {
        VALID.replacen(
            "fps = 30\n",
            &format!("fps = 30\nwebcam = {{ device = \"{device}\", format = \"YUY2\" }}\n"),
            1,
        )
    };
    let (ok, err) = check(dir.path(), &with("/dev/video42"));
    assert!(!ok);
    assert!(err.contains("pipeline.toml:17:"), "{err}");
    assert!(err.contains("camera 'front'.webcam.device"), "{err}");
    assert!(
        err.contains("/dev/video42 does not exist")
            && err.contains("modprobe v4l2loopback video_nr=42 exclusive_caps=1"),
        "{err}"
    );
    // A device, but not a video one.
    let (ok, err) = check(dir.path(), &with("/dev/null"));
    assert!(!ok);
    assert!(err.contains("/dev/null is not a V4L2 device"), "{err}");
    // A plain file.
    let file = dir.path().join("video0");
    fs::write(&file, b"").unwrap();
    let (ok, err) = check(dir.path(), &with(file.to_str().unwrap()));
    assert!(!ok);
    assert!(err.contains("is not a device file"), "{err}");
    // Formats are named.
    let bad = with("/dev/video42").replace("format = \"YUY2\" }", "format = \"MJPG\" }");
    let (ok, err) = check(dir.path(), &bad);
    assert!(!ok);
    assert!(err.contains("YUY2") && err.contains("I420"), "{err}");
}
