use super::*;

/// A scene of two regions (bright-NIR "grass" that is dark green, dark-NIR "road" that is
/// gray) with NIR texture, and its colour.
fn scene(w: usize, h: usize) -> (Gray, Rgb) {
    let mut nir = Vec::with_capacity(w * h);
    let mut rgb = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            let grass = x < w / 2;
            let texture = 0.05 * (((x * 7 + y * 13) % 11) as f32 / 10.0 - 0.5);
            nir.push(if grass { 0.8 } else { 0.3 } + texture);
            let i = y * w + x;
            let (r, g, b) = if grass {
                (0.15, 0.35, 0.1)
            } else {
                (0.4, 0.4, 0.42)
            };
            let shade = 1.0 + texture;
            rgb[i] = r * shade;
            rgb[w * h + i] = g * shade;
            rgb[2 * w * h + i] = b * shade;
        }
    }
    (Gray::new(w, h, nir), Rgb::new(w, h, rgb))
}

fn mean_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn the_reference_colours_a_static_scene_and_the_network_is_not_used() {
    let (nir, truth) = scene(96, 64);
    // A network that paints everything gray from the NIR: the reference must win.
    let network = nir.to_rgb();
    let out = colorize(&nir, &truth, &network, None).unwrap();
    let err = mean_abs(&out.rgb.data, &truth.data);
    let gray_err = mean_abs(&network.data, &truth.data);
    assert!(err < 0.03 && err < gray_err / 5.0, "{err} vs {gray_err}");
    // The border between the regions may raise a block a little; nothing switches.
    let max = out.network_share.iter().copied().fold(0.0, f32::max);
    let mean = out.network_share.iter().sum::<f32>() / out.network_share.len() as f32;
    assert!(max < 0.1 && mean < 0.01, "max {max}, mean {mean}");
}

#[test]
fn what_the_reference_does_not_show_takes_the_networks_colour() {
    let (w, h) = (96, 64);
    let (mut nir, truth) = scene(w, h);
    // An object with NIR unlike anything of the reference's scene at that place: very dark
    // on the grass.
    for y in 20..44 {
        for x in 10..34 {
            nir.data[y * w + x] = 0.02;
        }
    }
    let red = Rgb::new(
        w,
        h,
        [vec![0.8; w * h], vec![0.1; w * h], vec![0.1; w * h]].concat(),
    );
    let out = colorize(&nir, &truth, &red, None).unwrap();
    let (lw, _) = out.share_size;
    // The object's centre, at the fit scale.
    let centre = (32 * lw / w) * lw + 22 * lw / w;
    assert!(
        out.network_share[centre] > 0.99,
        "{}",
        out.network_share[centre]
    );
    // The far side of the frame stays the reference's.
    let far = (32 * lw / w) * lw + 80 * lw / w;
    assert!(out.network_share[far] < 0.01, "{}", out.network_share[far]);
}

#[test]
fn a_border_without_picture_is_not_judged_when_it_is_marked() {
    // A registered dataset pair: the NIR was warped onto the colour view and its left quarter
    // holds no picture (black), while the reference shows the scene there.
    let (w, h) = (96, 64);
    let (mut nir, truth) = scene(w, h);
    let valid: Vec<bool> = (0..w * h).map(|i| i % w >= w / 4).collect();
    for (v, &ok) in nir.data.iter_mut().zip(&valid) {
        if !ok {
            *v = 0.0;
        }
    }
    let network = nir.to_rgb();
    let share_near_border = |out: &ReferenceColour| {
        let (lw, lh) = out.share_size;
        // The valid fit-scale columns within 4 of the border.
        let (a, b) = (lw / 4 + 1, lw / 4 + 5);
        let cells: Vec<f32> = (0..lh)
            .flat_map(|y| (a..b).map(move |x| y * lw + x))
            .map(|i| out.network_share[i])
            .collect();
        cells.iter().sum::<f32>() / cells.len() as f32
    };
    let blind = colorize(&nir, &truth, &network, None).unwrap();
    let marked = colorize(&nir, &truth, &network, Some(&valid)).unwrap();
    // Unmarked, the black border is a dark object the reference does not show, and its
    // disagreement spreads onto the picture beside it; marked, that picture keeps the
    // reference's colour.
    assert!(
        share_near_border(&blind) > 0.5,
        "{}",
        share_near_border(&blind)
    );
    assert!(
        share_near_border(&marked) < 0.01,
        "{}",
        share_near_border(&marked)
    );
}

#[test]
fn a_reference_of_another_size_is_refused_with_both_sizes() {
    let (nir, _) = scene(40, 30);
    let (_, other) = scene(32, 32);
    let err = colorize(&nir, &other, &nir.to_rgb(), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("32x32") && err.contains("40x30"), "{err}");
}

#[test]
fn a_moved_camera_is_told_from_one_in_place() {
    // A scene with edges in both bands: blocks of different NIR and colour.
    let (w, h) = (160, 120);
    let block = |x: usize, y: usize| ((x / 12) * 7 + (y / 10) * 3) % 5;
    let nir_at = |x: usize, y: usize| 0.2 + 0.15 * block(x, y) as f32;
    let colour = |x: usize, y: usize| {
        let b = block(x, y) as f32;
        [0.1 + 0.1 * b, 0.5 - 0.05 * b, 0.2 + 0.08 * (4.0 - b)]
    };
    let reference = Rgb::new(
        w,
        h,
        (0..3)
            .flat_map(|c| (0..w * h).map(move |i| colour(i % w, i / w)[c]))
            .collect(),
    );
    let nir = |shift: usize| {
        Gray::new(
            w,
            h,
            (0..w * h)
                .map(|i| nir_at(i % w + shift, i / w + shift / 2))
                .collect(),
        )
    };
    let still = alignment(&nir(0), &reference);
    assert!(!still.moved(), "{still:?}");
    assert_eq!(still.offset, (0, 0));
    let bumped = alignment(&nir(4), &reference);
    assert!(bumped.moved(), "{bumped:?}");
}

#[test]
fn known_changes_take_the_networks_colour_exactly_there_and_the_reference_elsewhere() {
    let (w, h) = (96, 64);
    let (nir, truth) = scene(w, h);
    let red = Rgb::new(
        w,
        h,
        [vec![0.8; w * h], vec![0.1; w * h], vec![0.1; w * h]].concat(),
    );
    let known: Vec<bool> = (0..w * h).map(|i| (10..30).contains(&(i % w))).collect();
    let out = colorize_known(&nir, &truth, &red, &known).unwrap();
    let n = w * h;
    for (i, &k) in known.iter().enumerate() {
        let px = [out.data[i], out.data[n + i], out.data[2 * n + i]];
        if k {
            assert_eq!(px, [0.8, 0.1, 0.1], "pixel {i}");
        } else {
            let t = [truth.data[i], truth.data[n + i], truth.data[2 * n + i]];
            let err = px
                .iter()
                .zip(t)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            // The reference's colour through the NIR, as without a change (the region border
            // blurs a little at the fit scale).
            assert!(err < 0.12, "pixel {i}: {px:?} against {t:?}");
        }
    }
    let unknown: Vec<usize> = (0..n).filter(|&i| !known[i]).collect();
    let pick = |img: &[f32]| -> Vec<f32> {
        (0..3)
            .flat_map(|c| unknown.iter().map(move |&i| img[c * n + i]))
            .collect()
    };
    let err = mean_abs(&pick(&out.data), &pick(&truth.data));
    assert!(err < 0.03, "{err}");
    // One flag per pixel, and images of the frame's size.
    assert!(matches!(
        colorize_known(&nir, &truth, &red, &known[1..]),
        Err(ReferenceError::Known { .. })
    ));
    let small = Rgb::new(w / 2, h, vec![0.5; 3 * n / 2]);
    assert!(matches!(
        colorize_known(&nir, &truth, &small, &known),
        Err(ReferenceError::Size { .. })
    ));
}
