//! Unit tests of `calibrate`.

use super::*;

fn parse(text: &str) -> Result<Calibration, ConfigError> {
    Calibration::parse(Path::new("/tmp/cal.toml"), text)
}

/// A vignetted frame: level `a` at the centre, falling with the squared radius.
fn vignette(w: usize, h: usize, a: f32, black: f32) -> Gray {
    let mut data = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (axis(x, w) as f32, axis(y, h) as f32);
            data.push(black + a * (1.0 - 0.3 * (fx * fx + fy * fy)));
        }
    }
    Gray::new(w, h, data)
}

#[test]
fn an_empty_file_is_the_identity() {
    let cal = parse("").unwrap();
    assert_eq!(cal, Calibration::identity(Path::new("/tmp/cal.toml")));
    let c = cal.prepare(8, 6).unwrap();
    let mut g = Gray::new(8, 6, (0..48).map(|v| v as f32 / 48.0).collect());
    let before = g.clone();
    c.nir(&mut g);
    assert_eq!(g, before);
}

#[test]
fn black_white_and_gamma_map_the_range() {
    let cal = parse("black_level = 0.1\nwhite_level = 0.6\ngamma = 2.0\n").unwrap();
    let c = cal.prepare(4, 1).unwrap();
    let mut g = Gray::new(4, 1, vec![0.05, 0.1, 0.35, 0.9]);
    c.nir(&mut g);
    let want = [0.0, 0.0, 0.5f32.sqrt(), 1.0];
    for (a, b) in g.data.iter().zip(want) {
        assert!((a - b).abs() < 2e-3, "{:?}", g.data);
    }
}

#[test]
fn the_gamma_table_follows_powf() {
    for gamma in [0.2f32, 0.5, 2.2, 5.0] {
        let lut = GammaLut::new(gamma);
        for i in 0..=1000 {
            let v = i as f32 / 1000.0;
            let want = v.powf(1.0 / gamma);
            assert!((lut.apply(v) - want).abs() < 2e-3, "gamma {gamma} at {v}");
        }
    }
}

#[test]
fn a_fitted_polynomial_flattens_a_vignetted_target() {
    let target = vignette(64, 48, 0.6, 0.05);
    let fit = fit_flat(&target, 0.05, 2).unwrap();
    assert!(fit.rms < 1e-3, "{fit:?}");
    assert!((fit.falloff - 0.4).abs() < 0.03, "{fit:?}");
    let cal = Calibration {
        black_level: 0.05,
        flat: Some(fit.flat),
        ..Calibration::identity(Path::new("x"))
    };
    let mut frame = target.clone();
    cal.prepare(64, 48).unwrap().nir(&mut frame);
    let (lo, hi) = frame
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |a, &v| (a.0.min(v), a.1.max(v)));
    assert!(hi - lo < 0.01 && (hi - 0.6).abs() < 0.01, "{lo}..{hi}");
}

#[test]
fn a_flat_image_flattens_too_and_survives_a_size_change() {
    let target = vignette(80, 60, 0.5, 0.0);
    let image = flat_image(&target, 0.0).unwrap();
    let cal = Calibration {
        flat: Some(Flat::Image {
            path: "f.png".into(),
            image,
        }),
        ..Calibration::identity(Path::new("x"))
    };
    let c = cal.prepare(80, 60).unwrap();
    for (w, h) in [(80, 60), (40, 30)] {
        let mut frame = vignette(w, h, 0.5, 0.0);
        c.nir(&mut frame);
        // The box blur flattens the peak a little and the border a little more.
        let inner: Vec<f32> = (h / 6..h - h / 6)
            .flat_map(|y| frame.data[y * w + w / 6..y * w + w - w / 6].to_vec())
            .collect();
        let (lo, hi) = inner
            .iter()
            .fold((f32::MAX, f32::MIN), |a, &v| (a.0.min(v), a.1.max(v)));
        assert!(hi - lo < 0.03, "{w}x{h}: {lo}..{hi}");
    }
}

#[test]
fn bad_flat_frames_are_refused_with_the_reason() {
    let dark = vignette(32, 24, 0.03, 0.0);
    assert!(matches!(
        fit_flat(&dark, 0.0, 2),
        Err(CalibrateError::TooDark { .. })
    ));
    let clipped = Gray::new(32, 24, vec![1.0; 32 * 24]);
    let e = fit_flat(&clipped, 0.0, 2).unwrap_err().to_string();
    assert!(
        e.contains("saturated") && e.contains("lower the exposure"),
        "{e}"
    );
}

#[test]
fn a_flat_that_falls_to_nothing_is_refused_at_prepare() {
    // 1 - x^2 is 0 at the left and right borders.
    let cal = parse("[flat]\ndegree = 2\ncoefficients = [1, 0, 0, -1, 0, 0]\n").unwrap();
    let e = cal.prepare(40, 20).unwrap_err().to_string();
    assert!(
        e.contains("/tmp/cal.toml") && e.contains("falls to") && e.contains("calibrate flat"),
        "{e}"
    );
}

#[test]
fn colour_gains_and_matrices_apply_and_clamp() {
    let cal = parse("[color]\ngains = [2.0, 1.0, 0.5]\n").unwrap();
    let mut rgb = Rgb::new(2, 1, vec![0.3, 0.6, 0.5, 0.5, 0.8, 0.8]);
    cal.prepare(2, 1).unwrap().colour(&mut rgb);
    assert_eq!(rgb.data, vec![0.6, 1.0, 0.5, 0.5, 0.4, 0.4]);
    let swap = parse("[color]\nmatrix = [[0, 0, 1], [0, 1, 0], [1, 0, 0]]\n").unwrap();
    let mut rgb = Rgb::new(1, 1, vec![0.1, 0.2, 0.3]);
    swap.prepare(1, 1).unwrap().colour(&mut rgb);
    assert_eq!(rgb.data, vec![0.3, 0.2, 0.1]);
}

#[test]
fn detail_overrides_replace_only_what_they_name() {
    let cal = parse("[detail]\nradius = 3\n").unwrap();
    let base = GuidedFilter {
        radius: 8,
        eps: 1e-3,
    };
    let f = cal.prepare(4, 4).unwrap().filter(base);
    assert_eq!((f.radius, f.eps), (3, 1e-3));
}

#[test]
fn mistakes_name_the_line_the_key_and_what_is_allowed() {
    let cases = [
        (
            "black_level = 0.7\n",
            ":1: black_level: 0.7 is out of range",
        ),
        (
            "gain = 2\nwhite_level = 0.9\n",
            ":1: gain: give gain or white_level, not both",
        ),
        (
            "black_level = 0.3\nwhite_level = 0.32\n",
            ":2: white_level: 0.32 must be at least 0.05 above",
        ),
        (
            "gamma = 0\n",
            ":1: gamma: 0 is out of range; allowed: 0.2 to 5",
        ),
        ("exposure = 1\n", "unknown field `exposure`"),
        ("gamma = \"high\"\n", "gamma"),
        (
            "\n[flat]\ndegree = 2\ncoefficients = [1, 0]\n",
            ":4: flat.coefficients: 2 coefficients given; degree 2 has 6 terms",
        ),
        (
            "[flat]\ndegree = 9\ncoefficients = []\n",
            ":2: flat.degree: 9 is out of range; allowed: 0 to 8",
        ),
        ("\n[flat]\n", ":2: flat: give either image"),
        ("[flat]\nimage = \"nope.png\"\n", ":2: flat.image: "),
        (
            "[color]\ngains = [1, 2]\n",
            ":2: color.gains: 2 values given; give 3",
        ),
        (
            "[color]\ngains = [1, 2, -1]\n",
            "color.gains: -1 is out of range",
        ),
        (
            "[color]\nmatrix = [[1, 0], [0, 1]]\n",
            "color.matrix: give 3 rows of 3 numbers",
        ),
        (
            "[color]\ngains = [1, 1, 1]\nmatrix = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]\n",
            "give gains or matrix, not both",
        ),
        (
            "[detail]\nradius = 0\n",
            "detail.radius: 0 is out of range; allowed: 1 to 64",
        ),
        ("[detail]\neps = -1.0\n", "detail.eps: -1 is out of range"),
    ];
    for (text, want) in cases {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("/tmp/cal.toml"), "{text:?}: {e}");
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn a_colour_fit_recovers_a_known_matrix() {
    let (w, h) = (64, 48);
    let n = w * h;
    // A colourful output: every pixel its own colour (a small LCG), channels independent.
    let mut state = 12345u32;
    let out: Vec<f32> = (0..3 * n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            0.15 + 0.6 * (state >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    let out = Rgb::new(w, h, out);
    let m = [[1.1f32, 0.1, -0.05], [0.0, 0.9, 0.05], [0.05, -0.1, 1.2]];
    let mut reference = out.clone();
    Calibration {
        color: Some(m),
        ..Calibration::identity(Path::new("x"))
    }
    .prepare(w, h)
    .unwrap()
    .colour(&mut reference);
    let fit = fit_color(&out, &reference, false).unwrap();
    for (a, b) in fit.matrix.iter().flatten().zip(m.iter().flatten()) {
        assert!((a - b).abs() < 0.02, "{:?}", fit.matrix);
    }
    assert!(fit.rmse_after < 0.5 && fit.rmse_before > 5.0, "{fit:?}");
    let gains = fit_color(&out, &reference, true).unwrap();
    assert!(gains.rmse_after < gains.rmse_before, "{gains:?}");
    assert_eq!(gains.matrix[0][1], 0.0);
}

#[test]
fn a_gray_output_still_gets_a_moderate_matrix() {
    let (w, h) = (40, 40);
    let n = w * h;
    let level: Vec<f32> = (0..n)
        .map(|i| 0.2 + 0.6 * (i % w) as f32 / w as f32)
        .collect();
    let gray = Rgb::new(w, h, [level.clone(), level.clone(), level.clone()].concat());
    let warm: Vec<f32> = [1.2f32, 1.0, 0.7]
        .iter()
        .flat_map(|g| level.iter().map(move |v| (v * g).min(0.97)))
        .collect();
    let fit = fit_color(&gray, &Rgb::new(w, h, warm), false).unwrap();
    assert!(
        fit.matrix.iter().flatten().all(|v| v.abs() < 2.0),
        "{fit:?}"
    );
    assert!(fit.rmse_after < fit.rmse_before / 3.0, "{fit:?}");
}

#[test]
fn a_colour_fit_needs_usable_pixels_and_one_shape() {
    let black = Rgb::new(50, 50, vec![0.0; 7500]);
    let e = fit_color(&black, &black, false).unwrap_err().to_string();
    assert!(e.contains("only 0 pixels") && e.contains("1000"), "{e}");
    let wide = Rgb::new(100, 50, vec![0.5; 15000]);
    let e = fit_color(&black, &wide, false).unwrap_err().to_string();
    assert!(e.contains("shapes differ"), "{e}");
}

#[test]
fn update_file_keeps_other_keys_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cam.toml");
    std::fs::write(&path, "black_level = 0.02\ngamma = 2.2\n").unwrap();
    let cal = update_file(&path, |t| {
        let mut color = toml::Table::new();
        color.insert(
            "gains".into(),
            toml::Value::try_from([1.5, 1.0, 0.8]).unwrap(),
        );
        t.insert("color".into(), toml::Value::Table(color));
    })
    .unwrap();
    assert_eq!((cal.black_level, cal.gamma), (0.02, 2.2));
    assert_eq!(cal.color.unwrap()[0][0], 1.5);
    assert_eq!(Calibration::load(&path).unwrap(), cal);
    std::fs::write(&path, "gamma = 99\n").unwrap();
    let e = update_file(&path, |_| {}).unwrap_err().to_string();
    assert!(e.contains("gamma: 99 is out of range"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "gamma = 99\n");
}
