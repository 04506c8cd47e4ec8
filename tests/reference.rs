//! Scene memory through the real binary: `scripts/make-reference-pairs` makes the simulated
//! day-reference protocol from real pairs, and `nircolor eval --reference` colours with it.

mod common;

use common::{eval_json, mean_of, nircolor, output_within, root, shared_data, stderr};
use std::process::Command;
use std::time::Duration;

/// The simulated protocol on four real `vcip2020/val` pairs, into a temporary folder.
fn protocol(objects: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("four.txt");
    std::fs::write(
        &list,
        "validation_0000\nvalidation_0003\nvalidation_0008\nvalidation_0013\n",
    )
    .unwrap();
    let out = output_within(
        Command::new(root().join("scripts/make-reference-pairs"))
            .arg(shared_data().join("vcip2020/val"))
            .arg(dir.path().join("p"))
            .args(["--only", list.to_str().unwrap(), "--seed", "5"])
            .args(["--objects", &objects.to_string()]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    dir
}

#[test]
fn the_protocol_writes_references_objects_and_its_draws() {
    let dir = protocol(2);
    let p = dir.path().join("p");
    for sub in ["nir", "rgb", "reference", "objects"] {
        assert_eq!(std::fs::read_dir(p.join(sub)).unwrap().count(), 4, "{sub}");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("protocol.json")).unwrap()).unwrap();
    let pair = &record["pairs"]["validation_0003"];
    let gain = pair["gain"].as_f64().unwrap();
    assert!((0.8..=1.2).contains(&gain), "{gain}");
    let shift = pair["shift_xy"].as_array().unwrap();
    assert!(shift.iter().all(|s| s.as_f64().unwrap().abs() <= 2.0));
    assert!(!pair["objects"].as_array().unwrap().is_empty());
    // The objects are in the NIR and the truth but not in the reference.
    let mask = image::open(p.join("objects/validation_0003.png"))
        .unwrap()
        .to_luma8();
    assert!(mask.pixels().any(|m| m[0] == 255));
}

#[test]
fn a_reference_beats_the_network_alone_and_objects_are_scored_apart() {
    let dir = protocol(1);
    let p = dir.path().join("p");
    let data = p.to_str().unwrap();
    let refs = p.join("reference");
    let alone = eval_json(&["--model", "default", "--data", data]);
    let report = dir.path().join("report");
    let with_reference = |extra: &[&str]| {
        let mut args = vec!["--model", "default", "--data", data];
        args.extend_from_slice(&["--reference", refs.to_str().unwrap()]);
        args.extend_from_slice(extra);
        eval_json(&args)
    };
    let with = with_reference(&["--report", report.to_str().unwrap()]);
    // The report shows each pair's reference in a column of its own.
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        page.contains("NIR input | day reference | output"),
        "{page}"
    );
    let pictures = std::fs::read_dir(report.join("images")).unwrap().count();
    let shown = std::fs::read_dir(report.join("images"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("_ref.png")
        })
        .count();
    assert!(
        shown >= 1 && pictures == 4 * shown,
        "{shown} references in {pictures} pictures"
    );
    let (a, w) = (mean_of(&alone, "psnr"), mean_of(&with, "psnr"));
    // Measured 15.4 -> 19.3 dB on the 15 val15 pairs; four pairs keep a wide margin.
    assert!(
        w > a + 1.5,
        "network alone {a:.2} dB, with the reference {w:.2}"
    );
    let de = |j: &serde_json::Value| mean_of(j, "delta_e2000");
    assert!(
        de(&with) < de(&alone) - 2.0,
        "{} vs {}",
        de(&with),
        de(&alone)
    );
    for j in [&alone, &with] {
        let o = &j["mean"]["objects"];
        assert!(
            o["inside"]["psnr"].as_f64().is_some() && o["outside"]["psnr"].as_f64().is_some(),
            "{o}"
        );
    }
    assert!(with["model"].as_str().unwrap().ends_with("+reference"));

    // With the objects known (a perfect disagreement test), the objects are exactly the
    // network's colour and the rest the reference's: the ceiling of the test.
    let known = with_reference(&["--disagreement", "objects"]);
    assert!(known["model"]
        .as_str()
        .unwrap()
        .ends_with("+reference(objects known)"));
    let inside = |j: &serde_json::Value| j["mean"]["objects"]["inside"]["psnr"].as_f64().unwrap();
    assert!(
        (inside(&known) - inside(&alone)).abs() < 1e-6,
        "inside the objects {} against the network alone's {}",
        inside(&known),
        inside(&alone)
    );
    assert!(mean_of(&known, "psnr") > a + 1.5);
}

#[test]
fn bad_references_are_refused_naming_the_file_and_the_reason() {
    let dir = protocol(0);
    let p = dir.path().join("p");
    let data = p.to_str().unwrap();
    let eval = |refs: &std::path::Path| {
        nircolor(&[
            "eval",
            "--model",
            "identity",
            "--data",
            data,
            "--reference",
            refs.to_str().unwrap(),
        ])
    };
    // Another size.
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    for entry in std::fs::read_dir(p.join("reference")).unwrap() {
        let path = entry.unwrap().path();
        let img = image::open(&path).unwrap().resize_exact(
            100,
            80,
            image::imageops::FilterType::Triangle,
        );
        img.save(small.join(path.file_name().unwrap())).unwrap();
    }
    let out = eval(&small);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("100x80") && err.contains("256x256") && err.contains("small/"),
        "{err}"
    );
    // Grayscale.
    let gray = dir.path().join("gray");
    std::fs::create_dir_all(&gray).unwrap();
    for entry in std::fs::read_dir(p.join("reference")).unwrap() {
        let path = entry.unwrap().path();
        let img = image::open(&path).unwrap().grayscale().to_rgb8();
        img.save(gray.join(path.file_name().unwrap())).unwrap();
    }
    let err = stderr(&eval(&gray));
    assert!(
        err.contains("grayscale") && err.contains("gray/validation_"),
        "{err}"
    );
    // Unreadable.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for entry in std::fs::read_dir(p.join("reference")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::write(
            broken.join(path.file_name().unwrap()),
            b"\x89PNG\r\n\x1a\ntruncated",
        )
        .unwrap();
    }
    let err = stderr(&eval(&broken));
    assert!(err.contains("broken/validation_"), "{err}");
    // Missing one.
    let missing = dir.path().join("missing");
    std::fs::create_dir_all(&missing).unwrap();
    let err = stderr(&eval(&missing));
    assert!(err.contains("no image named 'validation_"), "{err}");
    // A perfect disagreement test needs the objects marked, and a reference to disagree with.
    let val = shared_data().join("vcip2020/val");
    let (val, refs) = (val.to_str().unwrap(), p.join("reference"));
    let four = dir.path().join("four.txt");
    let mut args = vec!["eval", "--model", "identity", "--data", val];
    args.extend_from_slice(&[
        "--only",
        four.to_str().unwrap(),
        "--disagreement",
        "objects",
    ]);
    let err = stderr(&nircolor(&args));
    assert!(err.contains("--reference <DIR>"), "{err}");
    args.extend_from_slice(&["--reference", refs.to_str().unwrap()]);
    let err = stderr(&nircolor(&args));
    assert!(
        err.contains("--disagreement objects") && err.contains("no objects/ folder"),
        "{err}"
    );
}

/// `nircolor calibrate reference` on a real pair: the camera's NIR frame and photos made from
/// the pair's colour image.
#[test]
fn calibrate_reference_aligns_a_photo_and_refuses_what_does_not_line_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = shared_data().join("epfl-scenes");
    let ffmpeg = |input: &std::path::Path, filter: &str, out: &str| {
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i", input.to_str().unwrap()])
            .args(["-vf", filter])
            .arg(d.join(out))
            .status()
            .unwrap();
        assert!(status.success(), "{filter}");
    };
    let rgb = data.join("rgb/street_0007.jpg");
    ffmpeg(
        &data.join("nir/street_0007.png"),
        "scale=384:256",
        "nir.png",
    );
    // Taken from a step aside, a little closer: cropped off-centre, back to full size.
    ffmpeg(&rgb, "crop=iw-60:ih-40:50:30,scale=1024:680", "photo.png");
    ffmpeg(&data.join("rgb/urban_0005.jpg"), "null", "other.png");
    ffmpeg(&rgb, "format=gray", "gray.png");
    ffmpeg(&rgb, "scale=680:680", "square.png");
    std::fs::write(
        d.join("c.toml"),
        "[model]\nweights = \"default\"\n[[camera]]\nid = \"street\"\nsource = { kind = \"test\", pattern = \"ball\" }\nformat = \"YUY2\"\nwidth = 384\nheight = 256\nfps = 10\nreference = { file = \"ref/street.png\" }\n",
    )
    .unwrap();
    let calibrate = |image: &str| {
        nircolor(&[
            "calibrate",
            "reference",
            "--config",
            d.join("c.toml").to_str().unwrap(),
            "--camera",
            "street",
            "--image",
            d.join(image).to_str().unwrap(),
            "--nir",
            d.join("nir.png").to_str().unwrap(),
        ])
    };
    let ok = calibrate("photo.png");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ref/street.json")).unwrap()).unwrap();
    assert!(
        meta["photo"].as_str().unwrap().contains("photo.png"),
        "{meta}"
    );
    assert_eq!(
        (meta["width"].as_u64(), meta["height"].as_u64()),
        (Some(384), Some(256))
    );
    // Placed, it is closer to the camera's true view than the photo merely resized.
    let view = image::open(&rgb)
        .unwrap()
        .resize_exact(384, 256, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let photo = image::open(d.join("photo.png"))
        .unwrap()
        .resize_exact(384, 256, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let placed = image::open(d.join("ref/street.png")).unwrap().to_rgb8();
    let mse = |a: &image::RgbImage| {
        a.as_raw()
            .iter()
            .zip(view.as_raw())
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
    };
    assert!(
        mse(&placed) < 0.5 * mse(&photo),
        "{} vs {}",
        mse(&placed),
        mse(&photo)
    );
    // Another scene, a gray photo, another aspect: refused with the reason, the stored
    // reference kept.
    let before = std::fs::read(d.join("ref/street.png")).unwrap();
    for (image, says) in [
        ("other.png", "does not line up"),
        ("gray.png", "grayscale"),
        ("square.png", "aspect"),
    ] {
        let out = calibrate(image);
        let err = stderr(&out);
        assert!(
            !out.status.success() && err.contains(says) && err.contains(image),
            "{image}: {err}"
        );
    }
    assert_eq!(std::fs::read(d.join("ref/street.png")).unwrap(), before);
}
