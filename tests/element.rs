//! The GStreamer element as its users meet it: `gst-inspect-1.0`, a `gst-launch-1.0` pipeline
//! whose frames match `nircolor colorize`, and PyGObject. They load the plugin the build made
//! (target/release/libgstnircolor.so, `make build` or `make plugin`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{output_within, root, stderr, stdout};

/// The folder of libgstnircolor.so.
fn plugin_dir() -> PathBuf {
    let dir = root().join("target/release");
    assert!(
        dir.join("libgstnircolor.so").is_file(),
        "{} has no libgstnircolor.so: build it with `make plugin` (make test builds it)",
        dir.display()
    );
    dir
}

/// A GStreamer tool with the plugin on its path and a registry of its own (a stale user
/// registry must not hide the element).
fn gst(tool: &str, registry: &std::path::Path) -> Command {
    let mut c = Command::new(tool);
    c.env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", registry);
    c
}

#[test]
fn gst_inspect_lists_the_element_its_pads_and_documented_properties() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output_within(
        gst("gst-inspect-1.0", &tmp.path().join("registry.bin")).arg("nircolorize"),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "NIR colorizer",
        "SINK template: 'sink'",
        "SRC template: 'src'",
        "GRAY16_LE",
        "NV12",
        "model ",
        "refresh-fps",
        "calibration",
        "reference",
        "colour-age",
        "model-users",
        "changeable in NULL, READY, PAUSED or PLAYING state",
        "every-frame (the network on every frame)",
    ] {
        assert!(
            text.contains(needle),
            "gst-inspect has no '{needle}':\n{text}"
        );
    }
}

#[test]
fn a_gst_launch_pipeline_writes_the_pixels_nircolor_colorize_does() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry.bin");
    let samples = root().join("samples/nir");
    let mut compared = 0;
    for entry in std::fs::read_dir(&samples).unwrap() {
        let input = entry.unwrap().path();
        if input.extension().and_then(|e| e.to_str()) != Some("png") {
            continue;
        }
        let stem = input.file_stem().unwrap().to_string_lossy().to_string();
        let element = tmp.path().join(format!("{stem}-element.png"));
        let cli = tmp.path().join(format!("{stem}-cli.png"));
        let launch = output_within(
            gst("gst-launch-1.0", &registry).args([
                "-q",
                "filesrc",
                &format!("location={}", input.display()),
                "!",
                "decodebin",
                "!",
                "videoconvert",
                "!",
                "video/x-raw,format=GRAY8",
                "!",
                "nircolorize",
                "refresh-fps=every-frame",
                "!",
                "video/x-raw,format=RGB",
                "!",
                "pngenc",
                "!",
                "filesink",
                &format!("location={}", element.display()),
            ]),
            Duration::from_secs(120),
        );
        assert!(launch.status.success(), "{}", stderr(&launch));
        let out = common::nircolor(&[
            "colorize",
            input.to_str().unwrap(),
            "-o",
            cli.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let a = image::open(&element).unwrap().to_rgb8();
        let b = image::open(&cli).unwrap().to_rgb8();
        assert_eq!(a.dimensions(), b.dimensions(), "{stem}");
        let worst = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap();
        assert!(
            worst <= 1,
            "{stem}: element and colorize differ by {worst} levels"
        );
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} sample images");
}

#[test]
fn python_drives_a_pipeline_and_reads_the_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    // The system Python: PyGObject comes from Debian's python3-gi.
    let out = output_within(
        Command::new("/usr/bin/python3")
            .arg(root().join("tests/element.py"))
            .arg("60")
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("GST_REGISTRY", tmp.path().join("registry.bin")),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(stats["eos"], true, "{stats}");
    assert_eq!(stats["frames"], 60, "{stats}");
    assert!(stats["refreshes"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["model-users"], 1, "{stats}");
    assert_eq!(stats["model"], "default", "{stats}");
    // Refreshed well within the clip: the colour on the last frame is recent.
    assert!(stats["colour-age"].as_u64().unwrap() < 1000, "{stats}");
}

#[test]
fn nan_weights_are_an_error_on_the_bus_not_a_grey_stream() {
    use nircolor::models::net::Model;
    use nircolor::models::weights::Weights;
    let tmp = tempfile::tempdir().unwrap();
    let model = Model::from_weights(
        &Weights::load(&root().join("models/default.safetensors")).unwrap(),
        tch::Device::Cpu,
    )
    .unwrap();
    {
        let _guard = tch::no_grad_guard();
        let (_, mut first) = model.vs.variables().into_iter().next().unwrap();
        let _ = first.fill_(f64::NAN);
    }
    let file = tmp.path().join("diverged.safetensors");
    model.to_weights(serde_json::json!({})).save(&file).unwrap();
    let out = output_within(
        gst("gst-launch-1.0", &tmp.path().join("registry.bin")).args([
            "videotestsrc",
            "num-buffers=5",
            "!",
            "video/x-raw,format=GRAY8,width=64,height=48",
            "!",
            "nircolorize",
            &format!("model={}", file.display()),
            "!",
            "fakesink",
        ]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "the pipeline ran on NaN weights");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("diverged.safetensors") && text.contains("NaN"),
        "{text}"
    );
}
