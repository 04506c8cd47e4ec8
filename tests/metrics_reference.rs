//! Every metric against scikit-image and colour-science on real pairs from ../shared/data and on
//! edge cases. The issue asks for 1e-4 relative; they agree to about 1e-13, so this asserts 1e-9.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use image::{GrayImage, RgbImage};
use nircolor::offline::data::Dataset;
use nircolor::offline::metrics::{self, Metrics};

struct Case {
    name: String,
    pred: RgbImage,
    truth: RgbImage,
    mask: Option<Vec<bool>>,
    /// The truth's own file (a JPEG) for the reference to decode itself, instead of a PNG of
    /// our decoding: then the metrics agree only if both decoders give the same pixels.
    truth_file: Option<std::path::PathBuf>,
}

fn real_cases() -> Vec<Case> {
    let data = common::shared_data();
    let mut cases = Vec::new();
    let vcip = Dataset::open(&data.join("vcip2020/val")).unwrap();
    let l3 = nircolor::models::load("l3").unwrap();
    let identity = nircolor::models::load("identity").unwrap();
    for i in 0..3 {
        let pair = vcip.load(i).unwrap();
        let model = if i == 0 { &identity } else { &l3 };
        let pred = model.colorize(&pair.nir).to_rgb8();
        cases.push(Case {
            name: format!("vcip_{}", pair.name),
            pred,
            truth: pair.rgb,
            mask: None,
            truth_file: None,
        });
    }
    let holdout = nircolor::offline::data::read_stem_list(
        &common::root().join("data/splits/epfl-scenes-holdout.txt"),
    )
    .unwrap();
    let epfl = Dataset::open(&data.join("epfl-scenes"))
        .unwrap()
        .select(Some(&holdout), &Default::default())
        .unwrap();
    for i in [0, 9] {
        let pair = epfl.load(i).unwrap();
        let pred = l3.colorize(&pair.nir).to_rgb8();
        let jpeg = data.join(format!("epfl-scenes/rgb/{}.jpg", pair.name));
        assert!(jpeg.is_file(), "{} is not a JPEG truth", pair.name);
        cases.push(Case {
            name: format!("epfl_{}_masked", pair.name),
            pred,
            truth: pair.rgb,
            mask: pair.mask,
            truth_file: Some(jpeg),
        });
    }
    cases
}

fn edge_cases() -> Vec<Case> {
    let (w, h) = (32, 24);
    let flat = |v: [u8; 3]| RgbImage::from_pixel(w, h, image::Rgb(v));
    let textured = common::rgb(w, h);
    // Black pixels on either side: the angle must skip them.
    let mut with_black = textured.clone();
    for x in 0..w {
        with_black.put_pixel(x, 3, image::Rgb([0, 0, 0]));
    }
    let mut other_black = flat([90, 140, 30]);
    for y in 0..h {
        other_black.put_pixel(5, y, image::Rgb([0, 0, 0]));
    }
    // Saturated hues on both sides of CIEDE2000's hue wrap-around.
    let hues = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([[255, 0, 0], [255, 0, 255], [0, 0, 255], [255, 255, 0]][((x + y) % 4) as usize])
    });
    let hues2 = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb(
            [[250, 0, 40], [40, 0, 255], [255, 0, 200], [0, 255, 0]][((x + 2 * y) % 4) as usize],
        )
    });
    let partial: Vec<bool> = (0..w * h).map(|i| (i % w) < 20 && (i / w) > 4).collect();
    let c = |name: &str, pred: RgbImage, truth: RgbImage, mask: Option<Vec<bool>>| Case {
        name: name.into(),
        pred,
        truth,
        mask,
        truth_file: None,
    };
    vec![
        c(
            "constant_vs_constant",
            flat([128, 128, 128]),
            flat([100, 100, 100]),
            None,
        ),
        c(
            "constant_vs_textured",
            flat([60, 120, 200]),
            textured.clone(),
            None,
        ),
        c("identical", textured.clone(), textured.clone(), None),
        c("black_pixels", with_black, other_black, None),
        c("hue_wrap", hues, hues2, None),
        c(
            "gray_vs_colour",
            flat([128, 128, 128]),
            textured.clone(),
            Some(partial),
        ),
        c(
            "smallest_ssim_window",
            RgbImage::from_fn(11, 13, |x, y| {
                image::Rgb([(x * 20) as u8, (y * 19) as u8, 7])
            }),
            common::rgb(11, 13),
            None,
        ),
    ]
}

fn reference(cases: &[Case]) -> BTreeMap<String, serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut list = Vec::new();
    for case in cases {
        let pred = dir.path().join(format!("{}_pred.png", case.name));
        case.pred.save(&pred).unwrap();
        let truth = match &case.truth_file {
            Some(file) => file.clone(),
            None => {
                let png = dir.path().join(format!("{}_truth.png", case.name));
                case.truth.save(&png).unwrap();
                png
            }
        };
        let mask = case.mask.as_ref().map(|m| {
            let path = dir.path().join(format!("{}_mask.png", case.name));
            let raw = m.iter().map(|&v| if v { 255 } else { 0 }).collect();
            GrayImage::from_raw(case.pred.width(), case.pred.height(), raw)
                .unwrap()
                .save(&path)
                .unwrap();
            path
        });
        list.push(
            serde_json::json!({"name": case.name, "pred": pred, "truth": truth, "mask": mask}),
        );
    }
    let cases_json = dir.path().join("cases.json");
    std::fs::write(&cases_json, serde_json::to_string(&list).unwrap()).unwrap();
    let out = common::output_within(
        Command::new(common::python())
            .arg(common::root().join("tests/reference/metrics.py"))
            .arg(&cases_json),
        common::COMMAND_LIMIT,
    );
    assert!(
        out.status.success(),
        "reference script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check(cases: Vec<Case>) {
    let want = reference(&cases);
    let mut failures = Vec::new();
    for case in &cases {
        let got: Metrics = metrics::compute(&case.pred, &case.truth, case.mask.as_deref()).unwrap();
        let r = &want[&case.name];
        for (name, value) in Metrics::NAMES.iter().zip(got.values()) {
            match r[name].as_f64() {
                Some(expected) => {
                    let rel = (value - expected).abs() / expected.abs().max(1e-12);
                    let both_zero = value.abs() < 1e-9 && expected.abs() < 1e-9;
                    if !(rel <= 1e-9 || both_zero) {
                        failures.push(format!(
                            "{} {name}: ours {value} vs reference {expected} (rel {rel:e})",
                            case.name
                        ));
                    }
                }
                None if *name == "psnr" => assert!(
                    r["psnr_is_inf"].as_bool().unwrap() && value.is_infinite(),
                    "{}: psnr",
                    case.name
                ),
                None => assert!(
                    value.is_nan(),
                    "{} {name}: reference has none, ours {value}",
                    case.name
                ),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "metrics disagree with scikit-image / colour-science:\n{}",
        failures.join("\n")
    );
}

#[test]
fn metrics_match_the_references_on_real_pairs() {
    check(real_cases());
}

#[test]
fn metrics_match_the_references_on_edge_cases() {
    check(edge_cases());
}

#[test]
fn jpeg_truths_decode_to_the_pixels_pil_gives() {
    // Every JPEG ground truth of ../shared/data, decoded by nircolor (libjpeg-turbo) and by PIL,
    // the decoder scikit-image and the published evaluations read them with: identical.
    let dir = common::shared_data().join("epfl-scenes/rgb");
    let mut jpegs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    assert!(jpegs.len() >= 50, "{} JPEGs", jpegs.len());
    // (width, height, sum of values, sum of value x (index mod 65521 + 1)) per image: equal
    // checksums of both kinds over millions of pixels leave no room for a differing pixel.
    let script = "import sys, json, numpy as np\nfrom PIL import Image\nout = []\n\
for f in sys.argv[1:]:\n    a = np.asarray(Image.open(f).convert('RGB')).astype(np.uint64).ravel()\n    \
w = np.arange(a.size, dtype=np.uint64) % 65521 + 1\n    \
im = Image.open(f)\n    out.append([im.width, im.height, int(a.sum()), int((a * w).sum())])\nprint(json.dumps(out))";
    let out = common::output_within(
        Command::new(common::python())
            .args(["-c", script])
            .args(&jpegs),
        common::COMMAND_LIMIT,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let pil: Vec<[u64; 4]> = serde_json::from_slice(&out.stdout).unwrap();
    let mut differing = Vec::new();
    for (path, want) in jpegs.iter().zip(&pil) {
        let ours = nircolor::images::read::read_rgb(path).unwrap();
        let (mut sum, mut weighted) = (0u64, 0u64);
        for (i, &v) in ours.as_raw().iter().enumerate() {
            sum += u64::from(v);
            weighted += u64::from(v) * (i as u64 % 65521 + 1);
        }
        let got = [
            u64::from(ours.width()),
            u64::from(ours.height()),
            sum,
            weighted,
        ];
        if got != *want {
            differing.push(format!("{}: ours {got:?}, PIL {want:?}", path.display()));
        }
    }
    assert!(
        differing.is_empty(),
        "{} of {} differ:\n{}",
        differing.len(),
        jpegs.len(),
        differing.join("\n")
    );
}
