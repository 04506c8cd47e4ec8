//! `nircolor calibrate flat|color` end to end: files of a vignetted target and of a real NIR
//! frame with a colour photo become calibration files the daemon accepts; bad input is refused
//! with the reason.

mod common;

use std::path::Path;

use common::{nircolor, stderr, stdout};
use nircolor::calibrate::Calibration;
use nircolor::images::planes::Gray;

/// A 16-bit frame of a uniformly lit target seen through a lens that darkens the corners to
/// 60%, above a black level of 0.04, with a little noise.
fn vignetted(
    w: u32,
    h: u32,
    seed: u32,
    black: f32,
) -> image::ImageBuffer<image::Luma<u16>, Vec<u16>> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    image::ImageBuffer::from_fn(w, h, |x, y| {
        let fx = 2.0 * (x as f32 + 0.5) / w as f32 - 1.0;
        let fy = 2.0 * (y as f32 + 0.5) / h as f32 - 1.0;
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.02;
        let v = black + 0.5 * (1.0 - 0.2 * (fx * fx + fy * fy)) + noise;
        image::Luma([(v.clamp(0.0, 1.0) * 65535.0) as u16])
    })
}

fn folder_of(dir: &Path, frames: u32, black: f32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..frames {
        vignetted(96, 72, i, black)
            .save(dir.join(format!("f{i:02}.png")))
            .unwrap();
    }
}

/// `nircolor calibrate flat ARGS`.
fn calibrate_flat(args: &[&str]) -> std::process::Output {
    nircolor(&[&["calibrate", "flat"], args].concat())
}

/// The spread (max - min) of a corrected frame, inside a margin of 1/8 of the frame.
fn spread_after(cal: &Calibration, frame: &Gray) -> f32 {
    let mut f = frame.clone();
    cal.prepare(f.width, f.height).unwrap().nir(&mut f);
    let (w, h) = (f.width, f.height);
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for y in h / 8..h - h / 8 {
        for x in w / 8..w - w / 8 {
            lo = lo.min(f.data[y * w + x]);
            hi = hi.max(f.data[y * w + x]);
        }
    }
    hi - lo
}

#[test]
fn calibrate_flat_from_a_folder_flattens_the_fall_off() {
    let dir = tempfile::tempdir().unwrap();
    let (flat, dark) = (dir.path().join("flat"), dir.path().join("dark"));
    folder_of(&flat, 8, 0.04);
    std::fs::create_dir_all(&dark).unwrap();
    for i in 0..3 {
        image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(96, 72, image::Luma([2621u16]))
            .save(dark.join(format!("d{i}.png")))
            .unwrap();
    }
    let out = dir.path().join("calibration/cam.toml");
    let o = calibrate_flat(&[
        "--folder",
        flat.to_str().unwrap(),
        "--dark",
        dark.to_str().unwrap(),
        "--degree",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("8 frame(s) of 96x72") && text.contains("black level 0.0400"),
        "{text}"
    );
    assert!(text.contains("darkest point at 6"), "{text}");
    let cal = Calibration::load(&out).unwrap();
    assert!((cal.black_level - 0.04).abs() < 1e-3, "{cal:?}");
    let frame = nircolor::images::read::read_nir(&flat.join("f03.png")).unwrap();
    let before = spread_after(&Calibration::identity(&out), &frame);
    let after = spread_after(&cal, &frame);
    assert!(before > 0.08 && after < 0.035, "spread {before} -> {after}");

    // The image form, updating the same file: black level kept, polynomial replaced.
    let o = calibrate_flat(&[
        "--folder",
        flat.to_str().unwrap(),
        "--image",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("calibration/cam-flat.png").is_file());
    let cal = Calibration::load(&out).unwrap();
    assert!((cal.black_level - 0.04).abs() < 1e-3, "{cal:?}");
    assert!(matches!(
        cal.flat,
        Some(nircolor::calibrate::Flat::Image { .. })
    ));
    assert!(spread_after(&cal, &frame) < 0.04);
}

#[test]
fn calibrate_flat_refuses_bad_frames_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cam.toml");
    let run = |folder: &Path| {
        calibrate_flat(&[
            "--folder",
            folder.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let clipped = dir.path().join("clipped");
    std::fs::create_dir_all(&clipped).unwrap();
    image::GrayImage::from_pixel(64, 48, image::Luma([255u8]))
        .save(clipped.join("a.png"))
        .unwrap();
    let o = run(&clipped);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("saturated"), "{}", stderr(&o));

    let mixed = dir.path().join("mixed");
    folder_of(&mixed, 1, 0.0);
    common::gray(40, 30).save(mixed.join("z.png")).unwrap();
    let o = run(&mixed);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("40x30, but the first frame is 96x72"),
        "{}",
        stderr(&o)
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = run(&empty);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no frames"), "{}", stderr(&o));
    let o = run(&dir.path().join("nope"));
    assert!(
        stderr(&o).contains("nope is not a folder; give a folder of frames"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing is written when calibration fails");

    std::fs::write(&out, "gamma = 9\n").unwrap();
    let o = run(&dir.path().join("clipped"));
    assert!(
        stderr(&o).contains("cam.toml:1: gamma: 9 is out of range"),
        "a broken file to update is reported first: {}",
        stderr(&o)
    );
}

#[test]
fn calibrate_flat_captures_from_a_configured_camera() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        "[model]\nweights = \"identity\"\n[[camera]]\nid = \"blue\"\nsource = { kind = \"test\", pattern = \"blue\" }\nformat = \"GRAY8\"\nwidth = 64\nheight = 48\nfps = 30\n",
    )
    .unwrap();
    let out = dir.path().join("blue.toml");
    let o = calibrate_flat(&[
        "--config",
        config.to_str().unwrap(),
        "--camera",
        "blue",
        "--frames",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A uniform source has no fall-off at all.
    assert!(
        stdout(&o).contains("10 frame(s) of 64x48 from camera 'blue'")
            && stdout(&o).contains("darkest point at 100%"),
        "{}",
        stdout(&o)
    );
    let o = calibrate_flat(&[
        "--config",
        config.to_str().unwrap(),
        "--camera",
        "front",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("has no camera 'front'; its cameras: blue"),
        "{}",
        stderr(&o)
    );
}

/// `nircolor calibrate color --nir NIR --reference REFERENCE --out OUT` plus `extra`.
fn calibrate_color(
    nir: &Path,
    reference: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "calibrate",
        "color",
        "--nir",
        nir.to_str().unwrap(),
        "--reference",
        reference.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    nircolor(&args)
}

#[test]
fn calibrate_color_fits_a_matrix_toward_the_reference_photo() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    let nir = root.join("samples/nir/street_0001.png");
    // The reference photo with a warm cast the matrix must take on.
    let mut warm = image::open(root.join("samples/rgb/street_0001.png"))
        .unwrap()
        .to_rgb8();
    for p in warm.pixels_mut() {
        p.0 = [
            (f32::from(p.0[0]) * 1.25).min(250.0) as u8,
            p.0[1],
            (f32::from(p.0[2]) * 0.6) as u8,
        ];
    }
    let reference = dir.path().join("warm.png");
    warm.save(&reference).unwrap();
    let out = dir.path().join("cam.toml");
    std::fs::write(&out, "gamma = 1.0\n").unwrap();
    let o = calibrate_color(&nir, &reference, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let (before, after) = text
        .split("RMS error ")
        .nth(1)
        .and_then(|r| r.split(" (0-255)").next())
        .and_then(|r| r.split_once(" -> "))
        .map(|(a, b)| (a.parse::<f32>().unwrap(), b.parse::<f32>().unwrap()))
        .expect("calibrate color prints the error before and after");
    assert!(after < 0.9 * before, "{text}");
    let cal = Calibration::load(&out).unwrap();
    let m = cal.color.expect("a colour matrix is written");
    let (red, blue): (f32, f32) = (m[0].iter().sum(), m[2].iter().sum());
    assert!(
        red > blue + 0.2,
        "warm cast: red row {red}, blue row {blue}: {m:?}"
    );
    assert_eq!(cal.gamma, 1.0, "the file's other keys are kept");

    let o = calibrate_color(&nir, &reference, &out, &["--gains-only", "--model", "l3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = Calibration::load(&out).unwrap().color.unwrap();
    assert!(m[0][0] > m[2][2] && m[0][1] == 0.0, "{m:?}");

    // A reference of another shape, and a gray one, are refused.
    let wide = dir.path().join("wide.png");
    common::rgb(200, 50).save(&wide).unwrap();
    let o = calibrate_color(&nir, &wide, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("shapes differ"), "{}", stderr(&o));
    let o = calibrate_color(&nir, &nir, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("gray"), "{}", stderr(&o));
}

#[test]
fn every_shipped_calibration_file_is_valid() {
    let dir = common::root().join("calibration");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cal = Calibration::load(&path).unwrap_or_else(|e| panic!("{e}"));
            cal.prepare(640, 480).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "calibration/ holds no example");
}
