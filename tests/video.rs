//! `nircolor eval-video` on a tiny paired clip made here with ffmpeg from a bundled sample pair
//! (the same pan applied to its NIR and its colour), and its errors.

mod common;

use std::path::Path;
use std::process::Command;

use common::{nircolor, stderr, stdout, CLIENT_LIMIT};

/// A 12-frame 160x120 pan over the sample pair `street_0001` into `dir`: (nir, truth).
fn tiny_clips(dir: &Path) -> (String, String) {
    let root = common::root().join("samples");
    let pan =
        "scale=480:-2,zoompan=z=1.5:x='(iw-iw/zoom)*on/12':y='(ih-ih/zoom)/2':d=1:s=160x120:fps=30";
    let make = |input: &Path, format: &str, pix: &str, out: &Path| {
        let o = common::output_within(
            Command::new("ffmpeg").args([
                "-loglevel",
                "error",
                "-y",
                "-loop",
                "1",
                "-framerate",
                "30",
                "-i",
                input.to_str().unwrap(),
                "-vf",
                &format!("format={format},{pan}"),
                "-frames:v",
                "12",
                "-c:v",
                "ffv1",
                "-pix_fmt",
                pix,
                out.to_str().unwrap(),
            ]),
            CLIENT_LIMIT,
        );
        assert!(o.status.success(), "ffmpeg: {}", stderr(&o));
    };
    let (nir, truth) = (dir.join("nir.mkv"), dir.join("rgb.mkv"));
    make(&root.join("nir/street_0001.png"), "gray", "gray", &nir);
    make(&root.join("rgb/street_0001.png"), "rgb24", "bgr0", &truth);
    (
        nir.to_string_lossy().into_owned(),
        truth.to_string_lossy().into_owned(),
    )
}

#[test]
fn eval_video_scores_every_frame_and_amortised_refreshes_with_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let (nir, truth) = tiny_clips(dir.path());
    let json = dir.path().join("v.json");
    let plot = dir.path().join("v.png");
    let out = nircolor(&[
        "eval-video",
        "--model",
        "default",
        "--nir",
        &nir,
        "--truth",
        &truth,
        "--refresh",
        "every-frame",
        "--refresh",
        "10",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("| every frame |") && text.contains("| 10.0 refreshes/s |"),
        "{text}"
    );

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let (every, amortised) = (&runs[0], &runs[1]);
    // Every frame coloured from itself: 12 frames scored, colour age 0.
    assert_eq!(every["frames"].as_array().unwrap().len(), 12);
    assert_eq!(every["gray_frames"], 0);
    assert!(every["frames"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["colour_age"] == 0));
    // 10 refreshes a second at 30 fps: the first colour arrives 3 frames in (the camera shows
    // gray until then), and each colour is then 0 to 5 frames old.
    assert_eq!(amortised["gray_frames"], 3, "{amortised}");
    let ages: Vec<u64> = amortised["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["colour_age"].as_u64().unwrap())
        .collect();
    assert_eq!(ages.len(), 9);
    assert!(ages.iter().all(|&a| (3..=5).contains(&a)), "{ages:?}");
    for run in runs {
        let psnr = run["mean_psnr"].as_f64().unwrap();
        // The shipped model on this street scene: colour, not noise (gray NIR scores ~13 dB
        // on this pair, a broken pipeline far below).
        assert!((13.0..30.0).contains(&psnr), "{run}");
        let cdc = run["flicker"]["cdc"].as_f64().unwrap();
        assert!((0.0..0.2).contains(&cdc), "{run}");
    }
    // The truth pans smoothly: its own flicker is small, and some of its pixels are static.
    let truth_cdc = v["truth_flicker"]["cdc"].as_f64().unwrap();
    assert!(truth_cdc < 0.05, "{v}");
    let img = image::open(&plot).unwrap();
    assert_eq!((img.width(), img.height()), (900, 640));
}

#[test]
fn eval_video_names_a_missing_clip_and_clips_of_different_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (nir, _) = tiny_clips(dir.path());
    let out = nircolor(&[
        "eval-video",
        "--nir",
        &nir,
        "--truth",
        "/nonexistent/rgb.mkv",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot open the clip /nonexistent/rgb.mkv: no such file"),
        "{err}"
    );

    // A truth of another size: both sizes named.
    let small = dir.path().join("small.mkv");
    let o = common::output_within(
        Command::new("ffmpeg").args([
            "-loglevel",
            "error",
            "-y",
            "-i",
            &nir,
            "-vf",
            "scale=80:60,format=rgb24",
            "-c:v",
            "ffv1",
            "-pix_fmt",
            "bgr0",
            small.to_str().unwrap(),
        ]),
        CLIENT_LIMIT,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = nircolor(&[
        "eval-video",
        "--nir",
        &nir,
        "--truth",
        small.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("is 160x120 but") && err.contains("is 80x60"),
        "{err}"
    );

    // Not a video at all.
    let junk = dir.path().join("junk.mkv");
    std::fs::write(&junk, b"not a video").unwrap();
    let out = nircolor(&[
        "eval-video",
        "--nir",
        junk.to_str().unwrap(),
        "--truth",
        &nir,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("junk.mkv"), "{}", stderr(&out));

    let out = nircolor(&[
        "eval-video",
        "--nir",
        &nir,
        "--truth",
        &nir,
        "--refresh",
        "often",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("often is not a refresh rate"),
        "{}",
        stderr(&out)
    );
}

/// A still 12-frame 160x120 clip of the sample pair `street_0001` and its colour as one image
/// (the day reference of that view): (nir clip, truth clip, reference image).
fn still_clips(dir: &Path) -> (String, String, String) {
    let root = common::root().join("samples");
    let make = |input: &Path, args: &[&str], out: &Path| {
        let o = common::output_within(
            Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-loop", "1", "-framerate", "30"])
                .arg("-i")
                .arg(input)
                .args(args)
                .arg(out),
            CLIENT_LIMIT,
        );
        assert!(o.status.success(), "ffmpeg: {}", stderr(&o));
    };
    let clip = ["-frames:v", "12", "-c:v", "ffv1"];
    let (nir, truth, reference) = (
        dir.join("still-nir.mkv"),
        dir.join("still-rgb.mkv"),
        dir.join("reference.png"),
    );
    let gray = [
        &["-vf", "format=gray,scale=160:120", "-pix_fmt", "gray"][..],
        &clip,
    ]
    .concat();
    make(&root.join("nir/street_0001.png"), &gray, &nir);
    let rgb = [
        &["-vf", "format=rgb24,scale=160:120", "-pix_fmt", "bgr0"][..],
        &clip,
    ]
    .concat();
    make(&root.join("rgb/street_0001.png"), &rgb, &truth);
    make(
        &root.join("rgb/street_0001.png"),
        &["-vf", "scale=160:120", "-frames:v", "1"],
        &reference,
    );
    let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    (s(nir), s(truth), s(reference))
}

/// `eval-video --nir NIR --truth TRUTH ARGS --json JSON`, which must succeed: (the JSON, stdout).
fn eval_video_json(
    json: &Path,
    nir: &str,
    truth: &str,
    args: &[&str],
) -> (serde_json::Value, String) {
    let mut all = vec!["eval-video", "--nir", nir, "--truth", truth];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let out = nircolor(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let v = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (v, stdout(&out))
}

#[test]
fn eval_video_with_a_reference_takes_the_scenes_colours_and_refuses_another_size() {
    let dir = tempfile::tempdir().unwrap();
    let (nir, truth, reference) = still_clips(dir.path());
    let json = |name: &str, extra: &[&str]| {
        let mut args = vec!["--refresh", "every-frame"];
        args.extend_from_slice(extra);
        let (v, _) = eval_video_json(&dir.path().join(name), &nir, &truth, &args);
        // A still camera's reference lines up on every refresh.
        assert_eq!(v["runs"][0]["reference_refused"], 0, "{v}");
        v["runs"][0]["mean_psnr"].as_f64().unwrap()
    };
    let alone = json("alone.json", &[]);
    let with = json("with.json", &["--reference", &reference]);
    println!("still clip: network alone {alone:.2} dB, with the reference {with:.2}");
    assert!(
        with > alone + 2.0,
        "network alone {alone:.2} dB, with the reference {with:.2}"
    );
    // A reference of another size is refused with both sizes.
    let big = dir.path().join("big.png");
    image::RgbImage::from_pixel(320, 240, image::Rgb([90, 120, 60]))
        .save(&big)
        .unwrap();
    let out = nircolor(&[
        "eval-video",
        "--nir",
        &nir,
        "--truth",
        &truth,
        "--reference",
        big.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("320x240") && err.contains("160x120"),
        "{err}"
    );
    let _ = stdout(&out);
}

#[test]
fn eval_video_with_a_quality_model_adds_a_tiered_run_that_takes_its_colour_on_a_still_clip() {
    // The real-time model is the identity (gray); on a still clip every block is static, so the
    // tiered run shows the quality model's colour and scores what that model scores alone (on
    // this gray street, less than gray itself: it is the colour that is checked, not a gain).
    let dir = tempfile::tempdir().unwrap();
    let (nir, truth, _) = still_clips(dir.path());
    // (the JSON of `eval-video ARGS` on the still clip at 10 refreshes a second, its stdout)
    let run = |name: &str, args: &[&str]| {
        let mut all = vec!["--refresh", "10"];
        all.extend_from_slice(args);
        eval_video_json(&dir.path().join(name), &nir, &truth, &all)
    };
    let (v, text) = run(
        "tiered.json",
        &[
            "--model",
            "identity",
            "--quality",
            "default",
            "--quality-every",
            "0.1",
        ],
    );
    assert!(
        text.contains("| 10.0 refreshes/s + quality every 0.1 s |"),
        "{text}"
    );
    let (alone, _) = run("alone.json", &["--model", "default"]);
    let psnr = |v: &serde_json::Value, i: usize| v["runs"][i]["mean_psnr"].as_f64().unwrap();
    let (gray, tiered, quality) = (psnr(&v, 0), psnr(&v, 1), psnr(&alone, 0));
    println!("still clip: identity {gray:.2} dB, tiered {tiered:.2}, the quality model alone {quality:.2}");
    assert!((tiered - quality).abs() < 0.5, "{text}");
    assert!((tiered - gray).abs() > 2.0, "{text}");
    // Without a rate-limited refresh the quality model would never show: refused.
    let out = nircolor(&[
        "eval-video",
        "--quality",
        "default",
        "--nir",
        &nir,
        "--truth",
        &truth,
        "--refresh",
        "every-frame",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--quality needs a rate-limited --refresh"),
        "{}",
        stderr(&out)
    );
}
